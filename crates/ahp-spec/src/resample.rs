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

/// Per output index: first input index and fixed-point weights.
struct Coeffs {
    bounds: Vec<(usize, usize)>,
    ksize: usize,
    weights: Vec<i32>,
}

fn precompute(in_size: usize, out_size: usize) -> Coeffs {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = BICUBIC_SUPPORT * filterscale;
    let ksize = support.ceil() as usize * 2 + 1;
    let mut bounds = Vec::with_capacity(out_size);
    let mut weights = vec![0i32; out_size * ksize];
    let mut k = vec![0f64; ksize];
    for xx in 0..out_size {
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
            weights[xx * ksize + x] = if w < 0.0 {
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
    debug_assert_eq!(src.len(), in_w * in_h * channels);
    let round = 1i64 << (PRECISION_BITS - 1);
    // Horizontal pass (skipped, like Pillow, when the width does not change).
    let horizontal = if out_w != in_w {
        let c = precompute(in_w, out_w);
        let mut tmp = vec![0u8; out_w * in_h * channels];
        for y in 0..in_h {
            let row = &src[y * in_w * channels..(y + 1) * in_w * channels];
            for (xx, &(xmin, n)) in c.bounds.iter().enumerate() {
                let k = &c.weights[xx * c.ksize..xx * c.ksize + n];
                for ch in 0..channels {
                    let mut acc = round;
                    for (x, &w) in k.iter().enumerate() {
                        acc += i64::from(row[(xmin + x) * channels + ch]) * i64::from(w);
                    }
                    tmp[(y * out_w + xx) * channels + ch] = clip8(acc);
                }
            }
        }
        tmp
    } else {
        src.to_vec()
    };
    if out_h == in_h {
        return horizontal;
    }
    // Vertical pass.
    let c = precompute(in_h, out_h);
    let mut out = vec![0u8; out_w * out_h * channels];
    let stride = out_w * channels;
    for (yy, &(ymin, n)) in c.bounds.iter().enumerate() {
        let k = &c.weights[yy * c.ksize..yy * c.ksize + n];
        for i in 0..stride {
            let mut acc = round;
            for (y, &w) in k.iter().enumerate() {
                acc += i64::from(horizontal[(ymin + y) * stride + i]) * i64::from(w);
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
    fn identity_size_is_a_copy() {
        let src: Vec<u8> = (0..4 * 3 * 3).map(|i| i as u8).collect();
        assert_eq!(resize_u8(&src, 4, 3, 3, 4, 3), src);
    }
}
