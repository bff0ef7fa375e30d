//! The painting style: low-frequency colour blotches, directional brush-stroke streaks, a soft
//! wobbly object boundary, and a final blur.

use std::f32::consts::PI;

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::units;
use crate::synth::canvas::{smoothstep, Canvas};
use crate::synth::color::{hsv, lerp, scale};
use crate::synth::noise::fbm;
use crate::synth::placement::Placement;
use crate::synth::shape::Shape;

/// Renders `shape` at `pl` as a painting.
pub(super) fn render(shape: Shape, pl: &Placement, size: usize, rng: &mut ChaCha8Rng) -> Canvas {
    let (s, u) = units(size);
    let h0: f32 = rng.random();
    let mut palette = [[0.0; 3]; 3];
    for c in &mut palette {
        *c = hsv(
            h0 + rng.random_range(-0.1..0.1),
            rng.random_range(0.25..0.55),
            rng.random_range(0.35..0.85),
        );
    }
    let fg = hsv(
        h0 + rng.random_range(0.25..0.75),
        rng.random_range(0.5..0.85),
        rng.random_range(0.55..0.9),
    );
    let (b1, b2, b3): (u64, u64, u64) = (rng.random(), rng.random(), rng.random());
    let (sa, ss, ws): (u64, u64, u64) = (rng.random(), rng.random(), rng.random());
    let a0 = rng.random_range(0.0..PI);
    let edge = 0.025 * s;
    let mut canvas = Canvas::from_fn(size, |x, y| {
        let t1 = smoothstep(0.3, 0.7, fbm(b1, x / (s / 3.0), y / (s / 3.0)));
        let t2 = smoothstep(0.35, 0.75, fbm(b2, x / (s / 3.0), y / (s / 3.0)));
        let bg = lerp(lerp(palette[0], palette[1], t1), palette[2], t2);
        // Soft, wobbly object boundary.
        let d =
            pl.dist(shape, x, y) + 0.04 * s * (2.0 * fbm(ws, x / (s / 6.0), y / (s / 6.0)) - 1.0);
        let cov = smoothstep(1.5 * edge, -1.5 * edge, d);
        let obj = scale(fg, 0.85 + 0.3 * fbm(b3, x / (s / 5.0), y / (s / 5.0)));
        let mut p = lerp(bg, obj, 0.95 * cov);
        // Brush streaks: noise stretched along a slowly turning stroke direction.
        let a = a0 + 1.2 * (fbm(sa, x / (s / 2.0), y / (s / 2.0)) - 0.5);
        let (c, sn) = (a.cos(), a.sin());
        let (su, sv) = (x * c + y * sn, -x * sn + y * c);
        let streak = fbm(ss, su / (s / 4.0), sv / (1.6 * u.max(0.5)));
        p = scale(p, 1.0 + 0.3 * (streak - 0.5));
        p
    });
    canvas.blur();
    canvas
}
