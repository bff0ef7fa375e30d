//! The preview contact sheet: one tile per domain and class.

use image::RgbImage;

use super::config::SynthConfig;
use super::render_sample;
use crate::error::Result;

/// A preview grid: one row per domain of `cfg`, one column per class, showing image `index`
/// of each, separated by 2-pixel white gutters.
pub fn contact_sheet(cfg: &SynthConfig, index: usize) -> Result<RgbImage> {
    cfg.validate()?;
    let shapes = cfg.shapes()?;
    let gap = 2u32;
    let cell = cfg.size + gap;
    let mut sheet = RgbImage::from_pixel(
        shapes.len() as u32 * cell + gap,
        cfg.domains.len() as u32 * cell + gap,
        image::Rgb([255, 255, 255]),
    );
    for (row, &style) in cfg.domains.iter().enumerate() {
        for (col, &shape) in shapes.iter().enumerate() {
            let tile = render_sample(cfg.seed, style, shape, index, cfg.size);
            image::imageops::replace(
                &mut sheet,
                &tile,
                i64::from(gap + col as u32 * cell),
                i64::from(gap + row as u32 * cell),
            );
        }
    }
    Ok(sheet)
}
