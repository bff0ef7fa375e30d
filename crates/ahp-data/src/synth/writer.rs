//! Writing the data set in DomainBed layout: [`generate`], its [`SynthSummary`] and the
//! deterministic PNG encoding of an image.

use std::fmt;
use std::path::{Path, PathBuf};

use image::{ImageEncoder, RgbImage};
use rayon::prelude::*;

use super::config::SynthConfig;
use super::marker::{prepare_out_dir, Marker};
use super::shape::Shape;
use super::style::Style;
use super::{names, render_sample};
use crate::error::{DataError, Result};

/// What [`generate`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SynthSummary {
    /// The output directory.
    pub out_dir: PathBuf,
    /// Image side in pixels.
    pub size: u32,
    /// Class names, in class order.
    pub classes: Vec<String>,
    /// Images written per domain, in the configured order.
    pub per_domain: Vec<(String, usize)>,
    /// Images written in total.
    pub total: usize,
}

impl fmt::Display for SynthSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "wrote {} images ({}x{} px, {} domains x {} classes) to {}",
            self.total,
            self.size,
            self.size,
            self.per_domain.len(),
            self.classes.len(),
            self.out_dir.display()
        )?;
        for (domain, count) in &self.per_domain {
            writeln!(f, "  {domain:<10} {count:>6} images")?;
        }
        write!(f, "classes: {}", self.classes.join(", "))
    }
}

/// One image to write: its domain, class and index.
type Job = (Style, Shape, usize);

/// Writes the data set in DomainBed layout, `out/<domain>/<class>/<index>.png`, rendering in
/// parallel. Each file is written to a hidden temporary file in its directory and renamed into
/// place, so readers never see partial images. Generating into a directory written before
/// removes the previous images the new settings do not produce (no stale images); a non-empty
/// directory not written by this function is refused.
pub fn generate(cfg: &SynthConfig, out: &Path) -> Result<SynthSummary> {
    cfg.validate()?;
    let shapes = cfg.shapes()?;
    let marker = Marker::new(cfg, shapes);
    let previous = prepare_out_dir(out, &marker)?;
    // Until the generation completes the directory may hold both sets (a killed run).
    create_dir(out)?;
    previous
        .map_or(marker.clone(), |p| p.union(&marker))
        .write(out)?;
    for style in &cfg.domains {
        for shape in shapes {
            create_dir(&out.join(style.name()).join(shape.name()))?;
        }
    }
    let jobs = jobs(cfg, shapes);
    write_images(cfg, out, &jobs)?;
    marker.write(out)?;
    Ok(summary(cfg, shapes, out, jobs.len()))
}

/// Creates `dir` and its parents.
fn create_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| DataError::io(dir, "create directory", e))
}

/// Every image of `cfg`, domain by domain, class by class, index by index.
fn jobs(cfg: &SynthConfig, shapes: &'static [Shape]) -> Vec<Job> {
    cfg.domains
        .iter()
        .flat_map(|&style| {
            shapes
                .iter()
                .flat_map(move |&shape| (0..cfg.per_class).map(move |i| (style, shape, i)))
        })
        .collect()
}

/// Renders, encodes and atomically writes every job's image, in parallel.
fn write_images(cfg: &SynthConfig, out: &Path, jobs: &[Job]) -> Result<()> {
    jobs.par_iter().try_for_each(|&(style, shape, index)| {
        let path = out
            .join(style.name())
            .join(shape.name())
            .join(format!("{index}.png"));
        let image = render_sample(cfg.seed, style, shape, index, cfg.size);
        let bytes = encode_png(&image, &path)?;
        Ok::<(), DataError>(ahp_spec::files::write_atomic(&path, &bytes)?)
    })
}

/// What writing `total` images of `cfg` into `out` produced.
fn summary(cfg: &SynthConfig, shapes: &[Shape], out: &Path, total: usize) -> SynthSummary {
    let per_class_domain = shapes.len() * cfg.per_class;
    SynthSummary {
        out_dir: out.to_path_buf(),
        size: cfg.size,
        classes: names(shapes, Shape::name),
        per_domain: cfg
            .domains
            .iter()
            .map(|d| (d.name().to_string(), per_class_domain))
            .collect(),
        total,
    }
}

/// Encodes an image as PNG in memory (deterministic: same pixels, same bytes). `name` is used
/// in errors.
pub fn encode_png(image: &RgbImage, name: &Path) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    image::codecs::png::PngEncoder::new(&mut bytes)
        .write_image(
            image.as_raw(),
            image.width(),
            image.height(),
            image::ExtendedColorType::Rgb8,
        )
        .map_err(|e| DataError::Image {
            path: name.to_path_buf(),
            message: format!("cannot encode PNG: {e}"),
        })?;
    Ok(bytes)
}
