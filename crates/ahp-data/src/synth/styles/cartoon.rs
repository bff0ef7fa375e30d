//! The cartoon style: plain bright background, flat saturated fill with a hard cel shadow and
//! a highlight, thick black outline, no noise at all.

use std::f32::consts::TAU;

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::synth::canvas::{coverage, stroke, Canvas};
use crate::synth::color::{hsv, lerp};
use crate::synth::placement::Placement;
use crate::synth::shape::Shape;

/// Renders `shape` at `pl` as a cartoon.
pub(super) fn render(shape: Shape, pl: &Placement, size: usize, rng: &mut ChaCha8Rng) -> Canvas {
    let s = size as f32;
    let bg_h: f32 = rng.random();
    let bg = hsv(
        bg_h,
        rng.random_range(0.35..0.6),
        rng.random_range(0.92..1.0),
    );
    let fg_h = bg_h + rng.random_range(0.33..0.67);
    let (fg_s, fg_v) = (rng.random_range(0.8..1.0), rng.random_range(0.85..1.0));
    let fill = hsv(fg_h, fg_s, fg_v);
    let shadow = hsv(fg_h, fg_s, fg_v * 0.72);
    let outline = [0.05, 0.04, 0.06];
    let hw = (0.028 * s).max(1.0);
    let la = rng.random_range(0.0..TAU);
    let (lx, ly) = (la.cos(), la.sin());
    let (hx, hy) = (pl.cx - lx * 0.4 * pl.r, pl.cy - ly * 0.4 * pl.r);
    let hr = 0.13 * pl.r;
    Canvas::from_fn(size, |x, y| {
        let d = pl.dist(shape, x, y);
        let mut p = bg;
        if d < hw + 1.0 {
            let side = ((x - pl.cx) * lx + (y - pl.cy) * ly) / pl.r - 0.25;
            let body = lerp(fill, shadow, coverage(-side * pl.r, 1.0));
            p = lerp(p, body, coverage(d, 1.0));
            if d < -1.5 * hw {
                let hd = ((x - hx).powi(2) + (y - hy).powi(2)).sqrt() - hr;
                p = lerp(p, [1.0; 3], 0.9 * coverage(hd, 1.0));
            }
            p = lerp(p, outline, stroke(d, hw));
        }
        p
    })
}
