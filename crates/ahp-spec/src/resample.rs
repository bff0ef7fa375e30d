//! Pillow-exact bicubic resampling of 8-bit images.
//!
//! transformers' `CLIPImageProcessor` resizes with Pillow, and no maintained Rust crate
//! reproduces Pillow's output exactly (`fast_image_resize`'s Catmull-Rom convolution was
//! measured here at up to 24 8-bit levels off on upscales). This is the algorithm of Pillow's
//! `Resample.c` (`ImagingResample` with `BICUBIC`): separable convolution, horizontal pass then
//! vertical pass, kernel support scaled by the downscale factor, coefficients normalized in f64
//! then quantized to 22-bit fixed point, each pass rounded and clipped to 8 bits.

const PRECISION_BITS: u32 = 32 - 8 - 2;
const BICUBIC_SUPPORT: f64 = 2.0;

fn bicubic(x: f64) -> f64 {
    // Keys cubic with a = -0.5 (Catmull-Rom), as Pillow's `bicubic_filter`.
    const A: f64 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * A
    } else {
        0.0
    }
}

/// Per output index of a range: first input index and fixed-point weights.
struct Coeffs {
    bounds: Vec<(usize, usize)>,
    ksize: usize,
    weights: Vec<i32>,
}

impl Coeffs {
    /// Input indices `[first, end)` read by the outputs of this range.
    fn input_span(&self) -> (usize, usize) {
        let first = self.bounds.iter().map(|b| b.0).min().unwrap_or(0);
        let end = self.bounds.iter().map(|b| b.0 + b.1).max().unwrap_or(first);
        (first, end)
    }
}

/// Pillow's `precompute_coeffs` for the output indices `outputs` of an `in_size -> out_size`
/// resize (each output's coefficients depend only on its own index, so a range gives exactly
/// the values of the full table).
fn precompute(in_size: usize, out_size: usize, outputs: std::ops::Range<usize>) -> Coeffs {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = BICUBIC_SUPPORT * filterscale;
    // Never wider than the input: the kernel cannot read more pixels than there are.
    let ksize = (support.ceil() as usize * 2 + 1).min(in_size + 1);
    let mut bounds = Vec::with_capacity(outputs.len());
    let mut weights = vec![0i32; outputs.len() * ksize];
    let mut k = vec![0f64; ksize];
    for (i, xx) in outputs.enumerate() {
        let center = (xx as f64 + 0.5) * scale;
        let ss = 1.0 / filterscale;
        // C's (int) cast truncates toward zero; negatives are clamped to 0 right after.
        let xmin = ((center - support + 0.5) as i64).max(0) as usize;
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
        let n = xmax.saturating_sub(xmin).min(ksize);
        let mut ww = 0.0;
        for (x, kx) in k.iter_mut().enumerate().take(n) {
            let w = bicubic(((x + xmin) as f64 - center + 0.5) * ss);
            *kx = w;
            ww += w;
        }
        for x in 0..n {
            let w = if ww != 0.0 { k[x] / ww } else { k[x] };
            let fixed = w * f64::from(1u32 << PRECISION_BITS);
            weights[i * ksize + x] = if w < 0.0 {
                (-0.5 + fixed) as i32
            } else {
                (0.5 + fixed) as i32
            };
        }
        bounds.push((xmin, n));
    }
    Coeffs {
        bounds,
        ksize,
        weights,
    }
}

fn clip8(v: i64) -> u8 {
    let shifted = v >> PRECISION_BITS;
    shifted.clamp(0, 255) as u8
}

/// A rectangle of the resized image: columns `x..x + width`, rows `y..y + height`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// First column.
    pub x: usize,
    /// First row.
    pub y: usize,
    /// Columns.
    pub width: usize,
    /// Rows.
    pub height: usize,
}

/// Resizes an interleaved 8-bit image with `channels` channels from `in_w x in_h` to
/// `out_w x out_h` exactly as Pillow's `Image.resize(..., BICUBIC)` does.
pub fn resize_u8(
    src: &[u8],
    in_w: usize,
    in_h: usize,
    channels: usize,
    out_w: usize,
    out_h: usize,
) -> Vec<u8> {
    let all = Window {
        x: 0,
        y: 0,
        width: out_w,
        height: out_h,
    };
    resize_window_u8(src, in_w, in_h, channels, out_w, out_h, all)
}

/// The pixels of `window` of the `out_w x out_h` Pillow-bicubic resize of `src`, computed
/// without the rest of the resized image: time and memory follow the window and the input
/// rows it reads, not the resized size (an aspect-ratio bomb resized to 32 x 320,000,000
/// costs a 32 x 32 window). The values are exactly those of [`resize_u8`] (Pillow's output).
/// `window` must lie inside the resized image.
pub fn resize_window_u8(
    src: &[u8],
    in_w: usize,
    in_h: usize,
    channels: usize,
    out_w: usize,
    out_h: usize,
    window: Window,
) -> Vec<u8> {
    debug_assert_eq!(src.len(), in_w * in_h * channels);
    debug_assert!(window.x + window.width <= out_w && window.y + window.height <= out_h);
    // Vertical coefficients first: they say which input rows the horizontal pass must produce.
    let vertical =
        (out_h != in_h).then(|| precompute(in_h, out_h, window.y..window.y + window.height));
    let (row0, row1) = match &vertical {
        Some(c) => c.input_span(),
        None => (window.y, window.y + window.height),
    };
    let rows = horizontal_pass(src, in_w, channels, out_w, row0..row1, window);
    match vertical {
        None => rows,
        Some(c) => vertical_pass(&rows, row0, window.width * channels, &c),
    }
}

/// The columns of `window` for input rows `rows` (Pillow skips the pass when the width does
/// not change; then the columns are copied).
fn horizontal_pass(
    src: &[u8],
    in_w: usize,
    channels: usize,
    out_w: usize,
    rows: std::ops::Range<usize>,
    window: Window,
) -> Vec<u8> {
    let stride = window.width * channels;
    let mut out = vec![0u8; rows.len() * stride];
    if out_w == in_w {
        for (i, y) in rows.enumerate() {
            let from = (y * in_w + window.x) * channels;
            out[i * stride..(i + 1) * stride].copy_from_slice(&src[from..from + stride]);
        }
        return out;
    }
    let round = 1i64 << (PRECISION_BITS - 1);
    let c = precompute(in_w, out_w, window.x..window.x + window.width);
    for (i, y) in rows.enumerate() {
        let row = &src[y * in_w * channels..(y + 1) * in_w * channels];
        for (xx, &(xmin, n)) in c.bounds.iter().enumerate() {
            let k = &c.weights[xx * c.ksize..xx * c.ksize + n];
            for ch in 0..channels {
                let mut acc = round;
                for (x, &w) in k.iter().enumerate() {
                    acc += i64::from(row[(xmin + x) * channels + ch]) * i64::from(w);
                }
                out[i * stride + xx * channels + ch] = clip8(acc);
            }
        }
    }
    out
}

/// The vertical pass over `rows` (input rows from `row0` on, `stride` bytes each).
fn vertical_pass(rows: &[u8], row0: usize, stride: usize, c: &Coeffs) -> Vec<u8> {
    let round = 1i64 << (PRECISION_BITS - 1);
    let mut out = vec![0u8; c.bounds.len() * stride];
    for (yy, &(ymin, n)) in c.bounds.iter().enumerate() {
        let k = &c.weights[yy * c.ksize..yy * c.ksize + n];
        let base = ymin - row0;
        for i in 0..stride {
            let mut acc = round;
            for (y, &w) in k.iter().enumerate() {
                acc += i64::from(rows[(base + y) * stride + i]) * i64::from(w);
            }
            out[yy * stride + i] = clip8(acc);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_image_stays_constant() {
        let src = vec![77u8; 13 * 9 * 3];
        for (w, h) in [(5, 4), (26, 18), (13, 30)] {
            let out = resize_u8(&src, 13, 9, 3, w, h);
            assert!(out.iter().all(|&v| v == 77), "{w}x{h}");
        }
    }

    #[test]
    fn windows_equal_the_full_resize() {
        let (w, h) = (19, 13);
        let src: Vec<u8> = (0..w * h * 3).map(|i| ((i * 37) % 251) as u8).collect();
        for (ow, oh) in [(7, 5), (40, 29), (19, 31), (11, 13)] {
            let full = resize_u8(&src, w, h, 3, ow, oh);
            let win = Window {
                x: ow / 3,
                y: oh / 4,
                width: ow / 2,
                height: oh / 2,
            };
            let part = resize_window_u8(&src, w, h, 3, ow, oh, win);
            for r in 0..win.height {
                let a = ((win.y + r) * ow + win.x) * 3;
                assert_eq!(
                    &part[r * win.width * 3..(r + 1) * win.width * 3],
                    &full[a..a + win.width * 3],
                    "{ow}x{oh} row {r}"
                );
            }
        }
    }

    #[test]
    fn a_window_of_a_huge_resize_is_cheap() {
        // 1 x 100,000 resized to 32 x 3,200,000: only the 32 x 32 window is computed.
        let src = vec![200u8; 100_000 * 3];
        let win = Window {
            x: 0,
            y: 1_600_000,
            width: 32,
            height: 32,
        };
        let part = resize_window_u8(&src, 1, 100_000, 3, 32, 3_200_000, win);
        assert_eq!(part.len(), 32 * 32 * 3);
        assert!(part.iter().all(|&v| v == 200));
    }

    #[test]
    fn identity_size_is_a_copy() {
        let src: Vec<u8> = (0..4 * 3 * 3).map(|i| i as u8).collect();
        assert_eq!(resize_u8(&src, 4, 3, 3, 4, 3), src);
    }
}
