//! [`ImageLimitArgs`]: the image-limit flags every command that reads images takes.

use ahp_spec::preprocess::ImageLimits;

/// Limits on the images read (see [`ImageLimits`]; larger images are refused with an error
/// naming the image and the limit).
#[derive(Debug, Clone, clap::Args)]
pub struct ImageLimitArgs {
    /// Largest image accepted, in pixels (width x height, read from the file's header before
    /// decoding).
    #[arg(long, default_value_t = ImageLimits::default().max_pixels, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_image_pixels: u64,
    /// Largest image file accepted, in bytes.
    #[arg(long, default_value_t = ImageLimits::default().max_file_bytes, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_image_bytes: u64,
    /// Largest ratio of an image's long side to its short side.
    #[arg(long, default_value_t = ImageLimits::default().max_aspect_ratio, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_aspect_ratio: u32,
}

impl ImageLimitArgs {
    /// The limits these flags give.
    pub fn limits(&self) -> ImageLimits {
        ImageLimits {
            max_file_bytes: self.max_image_bytes,
            max_pixels: self.max_image_pixels,
            max_aspect_ratio: self.max_aspect_ratio,
        }
    }
}
