//! The object classes of the synthetic data set and their signed distance fields.

use std::f32::consts::PI;
use std::fmt;

use super::geometry::{sd_box, sd_equilateral_triangle, sd_heart, sd_polygon, sd_star5, V2};

/// An object class of the synthetic data set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Shape {
    /// A filled disc.
    Circle,
    /// An (almost axis-aligned) square.
    Square,
    /// An equilateral triangle pointing up.
    Triangle,
    /// A five-pointed star.
    Star,
    /// A plus-shaped cross.
    Cross,
    /// An annulus.
    Ring,
    /// A heart.
    Heart,
    /// An arrow (shaft and head), any direction.
    Arrow,
    /// A tall rhombus.
    Diamond,
    /// A crescent moon.
    Moon,
}

impl Shape {
    /// All classes, in the order `--classes N` takes them from.
    pub const ALL: [Shape; 10] = [
        Shape::Circle,
        Shape::Square,
        Shape::Triangle,
        Shape::Star,
        Shape::Cross,
        Shape::Ring,
        Shape::Heart,
        Shape::Arrow,
        Shape::Diamond,
        Shape::Moon,
    ];

    /// The class name (a lowercase English word, used as the directory name and in prompts).
    pub fn name(self) -> &'static str {
        match self {
            Shape::Circle => "circle",
            Shape::Square => "square",
            Shape::Triangle => "triangle",
            Shape::Star => "star",
            Shape::Cross => "cross",
            Shape::Ring => "ring",
            Shape::Heart => "heart",
            Shape::Arrow => "arrow",
            Shape::Diamond => "diamond",
            Shape::Moon => "moon",
        }
    }

    /// The class with this name, if any.
    pub fn from_name(name: &str) -> Option<Shape> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }

    /// Largest rotation (radians, either direction) applied to this shape. Limited for shapes
    /// that would turn into another class (a square rotated by 45 degrees is a diamond).
    pub(super) fn max_rotation(self) -> f32 {
        match self {
            Shape::Circle | Shape::Ring | Shape::Star | Shape::Arrow | Shape::Moon => PI,
            Shape::Square | Shape::Cross | Shape::Diamond => 0.3,
            Shape::Triangle | Shape::Heart => 0.4,
        }
    }

    /// Signed distance (negative inside) in unit coordinates: the shape fits in about
    /// `[-1, 1]^2`, y points up.
    pub(super) fn sdf(self, p: V2) -> f32 {
        match self {
            Shape::Circle => p.len() - 0.9,
            Shape::Square => sd_box(p, V2::new(0.78, 0.78)),
            Shape::Triangle => sd_equilateral_triangle(V2::new(p.x, p.y + 0.2), 0.98),
            Shape::Star => sd_star5(p, 1.0, 0.42),
            Shape::Cross => sd_box(p, V2::new(0.95, 0.3)).min(sd_box(p, V2::new(0.3, 0.95))),
            Shape::Ring => (p.len() - 0.68).abs() - 0.24,
            Shape::Heart => {
                const K: f32 = 0.55;
                sd_heart(V2::new(p.x * K, p.y * K + 0.55)) / K
            }
            Shape::Arrow => sd_polygon(p, &ARROW),
            Shape::Diamond => sd_polygon(p, &DIAMOND),
            Shape::Moon => {
                let outer = p.len() - 0.92;
                let bite = (p - V2::new(0.42, 0.22)).len() - 0.74;
                outer.max(-bite)
            }
        }
    }
}

/// The arrow's outline: shaft from the left, head pointing right.
const ARROW: [V2; 7] = [
    V2::new(-0.95, 0.2),
    V2::new(0.12, 0.2),
    V2::new(0.12, 0.58),
    V2::new(0.95, 0.0),
    V2::new(0.12, -0.58),
    V2::new(0.12, -0.2),
    V2::new(-0.95, -0.2),
];

/// The diamond's outline: a tall rhombus.
const DIAMOND: [V2; 4] = [
    V2::new(0.0, 1.0),
    V2::new(0.62, 0.0),
    V2::new(0.0, -1.0),
    V2::new(-0.62, 0.0),
];

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_are_inside_the_unit_square_and_contain_their_centre_region() {
        for shape in Shape::ALL {
            // Some point near the centre region is inside; the corners are outside.
            let inside = (-4..=4)
                .flat_map(|i| (-4..=4).map(move |j| V2::new(i as f32 * 0.1, j as f32 * 0.1)))
                .any(|p| shape.sdf(p) < 0.0);
            assert!(inside, "{shape} has no interior near the centre");
            for corner in [
                V2::new(1.2, 1.2),
                V2::new(-1.2, 1.2),
                V2::new(1.2, -1.2),
                V2::new(-1.2, -1.2),
            ] {
                assert!(shape.sdf(corner) > 0.0, "{shape} covers {corner:?}");
            }
        }
    }

    #[test]
    fn names_round_trip() {
        for shape in Shape::ALL {
            assert_eq!(Shape::from_name(shape.name()), Some(shape));
        }
    }
}
