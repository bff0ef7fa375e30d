//! The floating-point pixel canvas the styles paint on, and the anti-aliased coverage of
//! shapes and strokes.

use image::RgbImage;

use super::color::Rgb;

/// Hermite interpolation of `x` between the edges `e0` and `e1`, in `[0, 1]`.
pub(super) fn smoothstep(e0: f32, e1: f32, x: f32) -> f32 {
    let t = ((x - e0) / (e1 - e0)).clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}

/// Anti-aliased coverage of the inside (`d < 0`) with an edge `width` pixels wide.
pub(super) fn coverage(d: f32, width: f32) -> f32 {
    (0.5 - d / width).clamp(0.0, 1.0)
}

/// Coverage of a stroke of half-width `hw` centred on the zero level set.
pub(super) fn stroke(d: f32, hw: f32) -> f32 {
    (0.5 - (d.abs() - hw)).clamp(0.0, 1.0)
}

/// A square image of [`Rgb`] pixels, row after row.
pub(super) struct Canvas {
    size: usize,
    px: Vec<Rgb>,
}

impl Canvas {
    /// A `size x size` canvas whose pixel at centre `(x, y)` is `f(x, y)`, row by row.
    pub(super) fn from_fn(size: usize, mut f: impl FnMut(f32, f32) -> Rgb) -> Self {
        let mut px = Vec::with_capacity(size * size);
        for y in 0..size {
            for x in 0..size {
                px.push(f(x as f32 + 0.5, y as f32 + 0.5));
            }
        }
        Self { size, px }
    }

    /// Applies `f(pixel, x, y)` to every pixel (pixel-centre coordinates).
    pub(super) fn apply(&mut self, mut f: impl FnMut(&mut Rgb, f32, f32)) {
        for (i, p) in self.px.iter_mut().enumerate() {
            let (x, y) = (i % self.size, i / self.size);
            f(p, x as f32 + 0.5, y as f32 + 0.5);
        }
    }

    /// Separable `[1 4 6 4 1] / 16` blur with clamped borders.
    pub(super) fn blur(&mut self) {
        const K: [f32; 5] = [1.0 / 16.0, 4.0 / 16.0, 6.0 / 16.0, 4.0 / 16.0, 1.0 / 16.0];
        let n = self.size as i64;
        let at = |v: i64| v.clamp(0, n - 1) as usize;
        for horizontal in [true, false] {
            let src = self.px.clone();
            for y in 0..n {
                for x in 0..n {
                    let mut acc = [0.0; 3];
                    for (k, w) in K.iter().enumerate() {
                        let o = k as i64 - 2;
                        let (sx, sy) = if horizontal { (x + o, y) } else { (x, y + o) };
                        let p = src[at(sy) * self.size + at(sx)];
                        for c in 0..3 {
                            acc[c] += w * p[c];
                        }
                    }
                    self.px[y as usize * self.size + x as usize] = acc;
                }
            }
        }
    }

    /// The 8-bit image (channels clamped to `[0, 1]`, then rounded).
    pub(super) fn into_image(self) -> RgbImage {
        let side = self.size as u32;
        let mut raw = Vec::with_capacity(self.px.len() * 3);
        for p in &self.px {
            for c in p {
                raw.push((c.clamp(0.0, 1.0) * 255.0).round() as u8);
            }
        }
        RgbImage::from_raw(side, side, raw).unwrap_or_else(|| RgbImage::new(side, side))
    }
}
