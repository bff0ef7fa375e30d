//! The photo style: gradient background with soft clutter (blobs, thin lines), a textured and
//! shaded object with a drop shadow, per-pixel sensor noise.

use std::f32::consts::{PI, TAU};

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::units;
use crate::synth::canvas::{coverage, smoothstep, stroke, Canvas};
use crate::synth::color::{hsv, lerp, scale, Rgb};
use crate::synth::geometry::{segment_distance, V2};
use crate::synth::noise::{fbm, gauss, hash01};
use crate::synth::placement::Placement;
use crate::synth::shape::Shape;

/// Renders `shape` at `pl` as a photo.
pub(super) fn render(shape: Shape, pl: &Placement, size: usize, rng: &mut ChaCha8Rng) -> Canvas {
    let (s, u) = units(size);
    let mut canvas = background(size, s, rng);
    add_clutter(&mut canvas, s, u, rng);
    add_drop_shadow(&mut canvas, shape, pl, u, rng);
    add_object(&mut canvas, shape, pl, s, u, rng);
    add_sensor_noise(&mut canvas, rng);
    canvas
}

/// Two muted colours along a random direction, low-frequency light variation.
fn background(size: usize, s: f32, rng: &mut ChaCha8Rng) -> Canvas {
    let h1: f32 = rng.random();
    let c1 = hsv(
        h1,
        rng.random_range(0.15..0.45),
        rng.random_range(0.35..0.85),
    );
    let c2 = hsv(
        h1 + rng.random_range(-0.2..0.2),
        rng.random_range(0.1..0.4),
        rng.random_range(0.3..0.9),
    );
    let angle = rng.random_range(0.0..TAU);
    let (dx, dy) = (angle.cos(), angle.sin());
    let light_seed: u64 = rng.random();
    Canvas::from_fn(size, |x, y| {
        let t = (((x - s / 2.0) * dx + (y - s / 2.0) * dy) / s + 0.5).clamp(0.0, 1.0);
        let light = 0.9 + 0.2 * fbm(light_seed, x / (s / 4.0), y / (s / 4.0));
        scale(lerp(c1, c2, t), light)
    })
}

/// Clutter: 4 to 8 translucent soft blobs and thin lines.
fn add_clutter(canvas: &mut Canvas, s: f32, u: f32, rng: &mut ChaCha8Rng) {
    let clutter = rng.random_range(4..=8);
    for _ in 0..clutter {
        let color = hsv(
            rng.random(),
            rng.random_range(0.1..0.45),
            rng.random_range(0.2..0.95),
        );
        let alpha = rng.random_range(0.25..0.55);
        if rng.random_bool(0.6) {
            add_blob(canvas, color, alpha, s, u, rng);
        } else {
            add_line(canvas, color, alpha, s, u, rng);
        }
    }
}

/// A soft rotated ellipse of `color` at opacity `alpha`, anywhere in the image.
fn add_blob(canvas: &mut Canvas, color: Rgb, alpha: f32, s: f32, u: f32, rng: &mut ChaCha8Rng) {
    let (ex, ey) = (rng.random_range(0.0..s), rng.random_range(0.0..s));
    let (ra, rb) = (
        rng.random_range(0.04..0.14) * s,
        rng.random_range(0.03..0.1) * s,
    );
    let rot = rng.random_range(0.0..PI);
    let (c, sn) = (rot.cos(), rot.sin());
    canvas.apply(|p, x, y| {
        let (lx, ly) = (x - ex, y - ey);
        let (a, b) = ((c * lx + sn * ly) / ra, (-sn * lx + c * ly) / rb);
        let d = ((a * a + b * b).sqrt() - 1.0) * ra.min(rb);
        *p = lerp(*p, color, alpha * coverage(d, 2.0 * u.max(0.5)));
    });
}

/// A thin straight line of `color` at opacity `alpha` between two random points.
fn add_line(canvas: &mut Canvas, color: Rgb, alpha: f32, s: f32, u: f32, rng: &mut ChaCha8Rng) {
    let a = V2::new(rng.random_range(0.0..s), rng.random_range(0.0..s));
    let b = V2::new(rng.random_range(0.0..s), rng.random_range(0.0..s));
    let hw = rng.random_range(0.3..0.8) * u.max(0.6);
    canvas.apply(|p, x, y| {
        let d = segment_distance(x, y, a, b);
        *p = lerp(*p, color, alpha * stroke(d, hw));
    });
}

/// The object's shadow, offset down and to the right.
fn add_drop_shadow(
    canvas: &mut Canvas,
    shape: Shape,
    pl: &Placement,
    u: f32,
    rng: &mut ChaCha8Rng,
) {
    let (ox, oy) = (
        rng.random_range(1.0..3.0) * u,
        rng.random_range(1.0..3.0) * u,
    );
    canvas.apply(|p, x, y| {
        let d = pl.dist(shape, x - ox, y - oy);
        *p = scale(*p, 1.0 - 0.4 * coverage(d, 3.0 * u.max(0.5)));
    });
}

/// The object: textured, lit from a random direction, darker near its rim.
fn add_object(
    canvas: &mut Canvas,
    shape: Shape,
    pl: &Placement,
    s: f32,
    u: f32,
    rng: &mut ChaCha8Rng,
) {
    let base = hsv(
        rng.random(),
        rng.random_range(0.45..0.85),
        rng.random_range(0.55..0.9),
    );
    let tex_seed: u64 = rng.random();
    let la = rng.random_range(0.0..TAU);
    let (lx, ly) = (la.cos(), la.sin());
    canvas.apply(|p, x, y| {
        let d = pl.dist(shape, x, y);
        let cov = coverage(d, 1.0);
        if cov > 0.0 {
            let tex = 0.72
                + 0.56 * fbm(tex_seed, x / (s / 14.0), y / (s / 14.0)) * 0.7
                + 0.3 * hash01(tex_seed ^ 0x7e7, x as i64, y as i64) * 0.5;
            let shade = 1.0 + 0.25 * ((x - pl.cx) * lx + (y - pl.cy) * ly) / pl.r;
            let rim = 0.75 + 0.25 * smoothstep(0.0, 3.0 * u, -d);
            *p = lerp(*p, scale(base, tex * shade * rim), cov);
        }
    });
}

/// Per-pixel, per-channel sensor noise.
fn add_sensor_noise(canvas: &mut Canvas, rng: &mut ChaCha8Rng) {
    let noise_seed: u64 = rng.random();
    canvas.apply(|p, x, y| {
        for (c, v) in p.iter_mut().enumerate() {
            *v += 0.045 * gauss(noise_seed.wrapping_add(c as u64), x as i64, y as i64);
        }
    });
}
