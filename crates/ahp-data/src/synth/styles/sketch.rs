//! The sketch style: grayscale, off-white paper with grain, dark thin wobbly double outlines,
//! diagonal hatching inside the object and faint construction lines.

use std::f32::consts::PI;

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::units;
use crate::synth::canvas::{stroke, Canvas};
use crate::synth::color::lerp;
use crate::synth::geometry::{segment_distance, V2};
use crate::synth::noise::{fbm, hash01, value_noise};
use crate::synth::placement::Placement;
use crate::synth::shape::Shape;

/// Renders `shape` at `pl` as a pencil sketch.
pub(super) fn render(shape: Shape, pl: &Placement, size: usize, rng: &mut ChaCha8Rng) -> Canvas {
    let (s, u) = units(size);
    let paper = rng.random_range(0.9..0.97);
    let ink = rng.random_range(0.08..0.3);
    let mut canvas = paper_with_grain(size, s, paper, rng);
    add_construction_lines(&mut canvas, pl, u, ink, rng);
    let pencil = Pencil::random(s, u, rng);
    add_outlines_and_hatching(&mut canvas, shape, pl, ink, &pencil);
    canvas
}

/// Off-white paper of brightness `paper` with low-frequency and per-pixel grain.
fn paper_with_grain(size: usize, s: f32, paper: f32, rng: &mut ChaCha8Rng) -> Canvas {
    let grain_seed: u64 = rng.random();
    Canvas::from_fn(size, |x, y| {
        let v = paper
            + 0.03 * (fbm(grain_seed, x / (s / 6.0), y / (s / 6.0)) - 0.5)
            + 0.02 * (hash01(grain_seed ^ 0x9a9, x as i64, y as i64) - 0.5);
        [v; 3]
    })
}

/// One to three faint construction lines through the object.
fn add_construction_lines(
    canvas: &mut Canvas,
    pl: &Placement,
    u: f32,
    ink: f32,
    rng: &mut ChaCha8Rng,
) {
    let lines = rng.random_range(1..=3);
    for _ in 0..lines {
        let a = rng.random_range(0.0..PI);
        let off = rng.random_range(-0.6..0.6) * pl.r;
        let (dx, dy) = (a.cos(), a.sin());
        let c = V2::new(pl.cx - dy * off, pl.cy + dx * off);
        let half = 1.3 * pl.r;
        let (p0, p1) = (c - V2::new(dx, dy) * half, c + V2::new(dx, dy) * half);
        let alpha = rng.random_range(0.15..0.3);
        canvas.apply(|p, x, y| {
            let d = segment_distance(x, y, p0, p1);
            let t = alpha * stroke(d, 0.35 * u.max(0.8));
            *p = lerp(*p, [ink; 3], t);
        });
    }
}

/// How the object is drawn: outline wobble, hatching direction, spacing and strength, the
/// offset of the second outline and the line half-width.
struct Pencil {
    s: f32,
    wobble: f32,
    j1: u64,
    j2: u64,
    hx: f32,
    hy: f32,
    spacing: f32,
    hatch_alpha: f32,
    ox: f32,
    oy: f32,
    hw: f32,
}

impl Pencil {
    /// Random pencil settings for an `s`-pixel image with length unit `u`.
    fn random(s: f32, u: f32, rng: &mut ChaCha8Rng) -> Self {
        let wobble = 0.025 * s;
        let j1: u64 = rng.random();
        let j2: u64 = rng.random();
        let hatch_angle: f32 =
            rng.random_range(0.5..1.1) * if rng.random_bool(0.5) { 1.0 } else { -1.0 };
        let (hx, hy) = (hatch_angle.cos(), hatch_angle.sin());
        let spacing: f32 = (rng.random_range(0.05..0.07) * s).max(2.5);
        let hatch_alpha: f32 = rng.random_range(0.45..0.7);
        let (ox, oy) = (
            rng.random_range(-0.8..0.8) * u,
            rng.random_range(-0.8..0.8) * u,
        );
        let hw = (0.011 * s).max(0.45);
        Self {
            s,
            wobble,
            j1,
            j2,
            hx,
            hy,
            spacing,
            hatch_alpha,
            ox,
            oy,
            hw,
        }
    }
}

/// Hatching inside the (wobbly) object, its outline and a fainter, offset second outline.
fn add_outlines_and_hatching(
    canvas: &mut Canvas,
    shape: Shape,
    pl: &Placement,
    ink: f32,
    pen: &Pencil,
) {
    let s = pen.s;
    canvas.apply(|p, x, y| {
        let d = pl.dist(shape, x, y);
        let d1 = d + pen.wobble * (2.0 * fbm(pen.j1, x / (s / 8.0), y / (s / 8.0)) - 1.0);
        let d2 = pl.dist(shape, x - pen.ox, y - pen.oy)
            + pen.wobble * (2.0 * fbm(pen.j2, x / (s / 8.0), y / (s / 8.0)) - 1.0);
        if d1 < -0.04 * s {
            let t = (x * pen.hx + y * pen.hy) / pen.spacing
                + 0.3 * (value_noise(pen.j2 ^ 0x44, x / (s / 10.0), y / (s / 10.0)) - 0.5);
            let f = (t - t.round()).abs() * pen.spacing;
            let cov = (0.7 - f).clamp(0.0, 1.0) * pen.hatch_alpha;
            *p = lerp(*p, [ink; 3], cov);
        }
        *p = lerp(*p, [ink; 3], 0.9 * stroke(d1, pen.hw));
        *p = lerp(*p, [ink; 3], 0.5 * stroke(d2, pen.hw * 0.8));
    });
}
