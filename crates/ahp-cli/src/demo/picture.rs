//! `demo.png`: what purification did and what it gives — the folded gates per block and head
//! (ahp-bench's heatmap) beside a few images of the unseen domain with their true class and the
//! purified model's prediction (green when right, red when wrong).

use std::path::{Path, PathBuf};

use ahp_bench::plot::{heatmap, save_png, FAMILY};
use anyhow::{anyhow, Result};
use plotters::coord::Shift;
use plotters::prelude::*;

/// One unseen image and what the exported model said.
pub struct Example {
    /// The image file.
    pub path: PathBuf,
    /// Its class.
    pub truth: String,
    /// The top-1 prediction.
    pub predicted: String,
}

const WIDTH: u32 = 1000;
const HEIGHT: u32 = 560;
/// Side of a drawn example image.
const THUMB: i32 = 96;
/// Example columns.
const COLUMNS: usize = 4;

fn err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("drawing demo.png: {e:?}")
}

/// Writes the picture to `path` (temp file, then rename).
pub fn draw(
    path: &Path,
    title: &str,
    gates: &[Option<Vec<f32>>],
    examples: &[Example],
) -> Result<()> {
    let images = examples
        .iter()
        .map(|e| ahp_runtime::preprocess::load_image(&e.path).map(|i| i.to_rgb8()))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    save_png(path, WIDTH, HEIGHT, |root| {
        let root = root.titled(title, (FAMILY, 22)).map_err(err)?;
        let (left, right) = root.split_horizontally(WIDTH as i32 * 11 / 20);
        let rows: Vec<Vec<f32>> = gates.iter().flatten().cloned().collect();
        if rows.is_empty() {
            left.draw(&Text::new(
                "no gates (a method without DIG)",
                (40, 200),
                (FAMILY, 16),
            ))
            .map_err(err)?;
        } else {
            heatmap(
                &left,
                "gates H * softmax per block (< 1: suppressed head)",
                &rows,
            )?;
        }
        for (i, (e, img)) in examples.iter().zip(&images).enumerate() {
            let x = 10 + (i % COLUMNS) as i32 * (THUMB + 14);
            let y = 40 + (i / COLUMNS) as i32 * (THUMB + 120);
            example(&right, (x, y), e, img)?;
        }
        Ok(())
    })
}

/// One example at `(x, y)` of `area`: the image scaled to [`THUMB`] px, its class and the
/// prediction below.
fn example(
    area: &DrawingArea<BitMapBackend<'_>, Shift>,
    (x, y): (i32, i32),
    e: &Example,
    img: &image::RgbImage,
) -> Result<()> {
    let (w, h) = (img.width().max(1), img.height().max(1));
    for dy in 0..THUMB {
        for dx in 0..THUMB {
            let sx = (dx as u32 * w / THUMB as u32).min(w - 1);
            let sy = (dy as u32 * h / THUMB as u32).min(h - 1);
            let p = img.get_pixel(sx, sy);
            area.draw_pixel((x + dx, y + dy), &RGBColor(p[0], p[1], p[2]))
                .map_err(err)?;
        }
    }
    let hit = e.truth == e.predicted;
    let colour = if hit {
        RGBColor(26, 128, 56)
    } else {
        RGBColor(200, 30, 40)
    };
    let lines = [
        (short(&e.truth, 16), BLACK),
        (format!("said: {}", short(&e.predicted, 10)), colour),
        ((if hit { "right" } else { "wrong" }).to_string(), colour),
    ];
    for (k, (text, c)) in lines.iter().enumerate() {
        let style = (FAMILY, 13).into_font().color(c);
        area.draw(&Text::new(
            text.clone(),
            (x, y + THUMB + 8 + 18 * k as i32),
            style,
        ))
        .map_err(err)?;
    }
    Ok(())
}

/// A label cut to `max` characters to fit under an image.
fn short(label: &str, max: usize) -> String {
    if label.chars().count() <= max {
        label.to_string()
    } else {
        format!(
            "{}...",
            label
                .chars()
                .take(max.saturating_sub(3))
                .collect::<String>()
        )
    }
}
