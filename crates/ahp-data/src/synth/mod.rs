//! Procedural multi-domain data set: simple object classes drawn in four styles.
//!
//! Each image shows one object (a [`Shape`]) with a random position, scale, rotation, aspect
//! and colour, rendered in one [`Style`]:
//!
//! * **photo**: gradient background with soft clutter (blobs, thin lines), a textured and shaded
//!   object with a drop shadow, per-pixel sensor noise;
//! * **sketch**: grayscale, off-white paper with grain, dark thin wobbly double outlines,
//!   diagonal hatching inside the object and faint construction lines;
//! * **cartoon**: plain bright background, flat saturated fill with a hard cel shadow and a
//!   highlight, thick black outline, no noise at all;
//! * **painting**: low-frequency colour blotches, directional brush-stroke streaks, a soft
//!   wobbly object boundary, and a final blur.
//!
//! Every image is a pure function of `(seed, style, shape, index, size)`: its generator is a
//! `ChaCha8Rng` seeded with [`image_seed`], so [`generate`] can render in parallel and the same
//! configuration always writes byte-identical PNG files.
//!
//! Layout: the classes ([`Shape`], with their distance fields over `geometry`) and domains
//! ([`Style`]); [`SynthConfig`]; the object's placement; noise, colour and the canvas; one
//! renderer per style (`styles`); the data-set writer ([`generate`]) with its marker file; and
//! the preview [`contact_sheet`].

mod canvas;
mod color;
mod config;
mod geometry;
mod marker;
mod noise;
mod placement;
mod preview;
mod shape;
mod style;
mod styles;
mod writer;

use image::RgbImage;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

pub use config::{SynthConfig, MAX_SIZE, MIN_SIZE};
pub use preview::contact_sheet;
pub use shape::Shape;
pub use style::Style;
pub use writer::{encode_png, generate, SynthSummary};

use crate::seed::derive_seed;
use placement::Placement;

/// The seed of one image's generator, derived from `(seed, style, shape, index)`.
pub fn image_seed(seed: u64, style: Style, shape: Shape, index: usize) -> u64 {
    derive_seed(
        seed,
        &[
            b"synth",
            style.name().as_bytes(),
            shape.name().as_bytes(),
            &(index as u64).to_le_bytes(),
        ],
    )
}

/// Renders image `index` of class `shape` in domain `style`, exactly as [`generate`] writes it.
pub fn render_sample(seed: u64, style: Style, shape: Shape, index: usize, size: u32) -> RgbImage {
    render(style, shape, size, image_seed(seed, style, shape, index))
}

/// Renders one `size x size` image from an explicit generator seed. Sizes below 1 are treated
/// as 1 (use at least [`MIN_SIZE`] for recognizable images).
pub fn render(style: Style, shape: Shape, size: u32, seed: u64) -> RgbImage {
    let size = size.max(1);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let place = Placement::random(shape, size as f32, &mut rng);
    styles::paint(style, shape, &place, size as usize, &mut rng).into_image()
}

/// The names of `items` (shapes or styles), in order, as owned strings.
fn names<T: Copy>(items: &[T], name: fn(T) -> &'static str) -> Vec<String> {
    items.iter().map(|&item| name(item).to_string()).collect()
}

/// How many of the generator's classes, in [`Shape::ALL`] order, `vocabulary` names as quoted
/// words (e.g. the text of a word-level `tokenizer.json`): the classes that a checkpoint
/// pretrained on this generator (`ahp-pretrain`) knows.
pub fn classes_named_in(vocabulary: &str) -> usize {
    Shape::ALL
        .iter()
        .take_while(|s| vocabulary.contains(&format!("\"{}\"", s.name())))
        .count()
}
