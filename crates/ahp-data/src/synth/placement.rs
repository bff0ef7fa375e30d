//! Where the object of an image sits: its random centre, size, rotation and aspect.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::geometry::V2;
use super::shape::Shape;

/// Where the object sits: centre, radius (pixels), rotation and aspect.
pub(super) struct Placement {
    pub(super) cx: f32,
    pub(super) cy: f32,
    pub(super) r: f32,
    cos: f32,
    sin: f32,
    sx: f32,
    sy: f32,
}

impl Placement {
    /// A random placement of `shape` that keeps it inside an `s x s` image.
    pub(super) fn random(shape: Shape, s: f32, rng: &mut ChaCha8Rng) -> Self {
        let r = s * rng.random_range(0.24..0.34);
        let margin = r * 1.18;
        let cx = rng.random_range(margin..(s - margin).max(margin + 1e-3));
        let cy = rng.random_range(margin..(s - margin).max(margin + 1e-3));
        let max_rot = shape.max_rotation();
        let angle = rng.random_range(-max_rot..max_rot);
        let sx = rng.random_range(0.85..1.15);
        let sy = rng.random_range(0.85..1.15);
        Self {
            cx,
            cy,
            r,
            cos: angle.cos(),
            sin: angle.sin(),
            sx,
            sy,
        }
    }

    /// Signed distance in pixels from the centre of pixel-space point `(x, y)` to the shape.
    pub(super) fn dist(&self, shape: Shape, x: f32, y: f32) -> f32 {
        let dx = x - self.cx;
        let dy = self.cy - y;
        let lx = self.cos * dx + self.sin * dy;
        let ly = -self.sin * dx + self.cos * dy;
        let p = V2::new(lx / (self.r * self.sx), ly / (self.r * self.sy));
        shape.sdf(p) * self.r * self.sx.min(self.sy)
    }
}
