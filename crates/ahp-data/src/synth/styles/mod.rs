//! The four renderers, one per [`Style`]. Each paints one object on a fresh canvas and draws
//! all of its randomness from the image's generator, in a fixed order (changing that order
//! changes every image of the data set).

mod cartoon;
mod painting;
mod photo;
mod sketch;

use rand_chacha::ChaCha8Rng;

use super::canvas::Canvas;
use super::placement::Placement;
use super::shape::Shape;
use super::style::Style;

/// Paints `shape` at `pl` in `style` on a `size x size` canvas.
pub(super) fn paint(
    style: Style,
    shape: Shape,
    pl: &Placement,
    size: usize,
    rng: &mut ChaCha8Rng,
) -> Canvas {
    match style {
        Style::Photo => photo::render(shape, pl, size, rng),
        Style::Sketch => sketch::render(shape, pl, size, rng),
        Style::Cartoon => cartoon::render(shape, pl, size, rng),
        Style::Painting => painting::render(shape, pl, size, rng),
    }
}

/// The image side `s` in pixels and the length unit `u = s / 64` (the styles' widths and
/// offsets are tuned for 64-pixel images).
fn units(size: usize) -> (f32, f32) {
    let s = size as f32;
    (s, s / 64.0)
}
