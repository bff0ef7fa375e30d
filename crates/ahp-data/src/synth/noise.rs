//! Deterministic lattice noise: hashed uniforms, smooth value noise, fractal noise and
//! approximately normal per-pixel noise.

use crate::seed::splitmix64;

/// Uniform in `[0, 1)` from a lattice point.
pub(super) fn hash01(seed: u64, a: i64, b: i64) -> f32 {
    let h = splitmix64(
        seed ^ splitmix64(
            (a as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
                ^ (b as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F),
        ),
    );
    (h >> 40) as f32 / (1u64 << 24) as f32
}

/// Smooth value noise in `[0, 1]`, one lattice cell per unit.
pub(super) fn value_noise(seed: u64, x: f32, y: f32) -> f32 {
    let (fx, fy) = (x.floor(), y.floor());
    let (ix, iy) = (fx as i64, fy as i64);
    let (tx, ty) = (x - fx, y - fy);
    let (ux, uy) = (tx * tx * (3.0 - 2.0 * tx), ty * ty * (3.0 - 2.0 * ty));
    let a = hash01(seed, ix, iy);
    let b = hash01(seed, ix + 1, iy);
    let c = hash01(seed, ix, iy + 1);
    let d = hash01(seed, ix + 1, iy + 1);
    let top = a + (b - a) * ux;
    let bottom = c + (d - c) * ux;
    top + (bottom - top) * uy
}

/// Fractal value noise (3 octaves) in `[0, 1]`.
pub(super) fn fbm(seed: u64, x: f32, y: f32) -> f32 {
    let mut sum = 0.0;
    let mut amp = 0.5;
    let mut freq = 1.0;
    let mut norm = 0.0;
    for octave in 0..3u64 {
        sum += amp * value_noise(seed.wrapping_add(octave), x * freq, y * freq);
        norm += amp;
        amp *= 0.5;
        freq *= 2.03;
    }
    sum / norm
}

/// Approximately normal noise with standard deviation 1 (sum of three uniforms).
pub(super) fn gauss(seed: u64, a: i64, b: i64) -> f32 {
    let u = hash01(seed, a, b) + hash01(seed ^ 0x5151, a, b) + hash01(seed ^ 0xA3A3, a, b);
    (u - 1.5) * 2.0
}
