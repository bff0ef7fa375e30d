//! A contact sheet of an emoji tree: per designer a grid of its classes, for checking by eye
//! that every class shows the same concept in every designer.

use std::path::Path;

use image::{imageops, RgbImage};

use super::classes::EmojiClass;
use super::image_path;
use crate::error::{DataError, Result};

/// Classes per row of a designer's grid.
const COLUMNS: usize = 16;

/// The sheet of `designers` × `classes` read from the tree at `out`: one block per designer
/// (rows of 16 classes, in table order), blocks stacked top to bottom with a gap.
pub fn contact_sheet(
    out: &Path,
    designers: &[&str],
    classes: &[EmojiClass],
    cell: u32,
) -> Result<RgbImage> {
    let rows = classes.len().div_ceil(COLUMNS) as u32;
    let gap = cell / 2;
    let block = rows * cell + gap;
    let mut sheet = RgbImage::from_pixel(
        COLUMNS as u32 * cell,
        designers.len() as u32 * block,
        image::Rgb([128, 128, 128]),
    );
    for (di, d) in designers.iter().enumerate() {
        for (ci, class) in classes.iter().enumerate() {
            let path = image_path(out, d, class);
            let img = image::open(&path)
                .map_err(|e| DataError::Image {
                    path: path.clone(),
                    message: e.to_string(),
                })?
                .to_rgb8();
            let img = imageops::resize(&img, cell, cell, imageops::FilterType::Triangle);
            let x = (ci % COLUMNS) as u32 * cell;
            let y = di as u32 * block + (ci / COLUMNS) as u32 * cell;
            imageops::replace(&mut sheet, &img, i64::from(x), i64::from(y));
        }
    }
    Ok(sheet)
}
