//! One batch of preprocessed images, and loading one: decoding and transforming the planned
//! samples in parallel, skipping the unreadable ones.

use std::fmt::Display;
use std::path::{Path, PathBuf};

use ahp_spec::preprocess::{load_image, preprocess, PreprocessConfig, Preprocessed};
use image::DynamicImage;
use rayon::prelude::*;

use crate::domainbed::Sample;
use crate::error::{DataError, Result};

/// An image left out of a batch because it could not be read, decoded or preprocessed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedImage {
    /// The file.
    pub path: PathBuf,
    /// Why (the message names the file).
    pub error: String,
}

/// One batch of preprocessed images.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// The training step (or, for evaluation, the chunk index).
    pub step: u64,
    /// `[B, 3, height, width]` values, image after image, each channel-major.
    pub images: Vec<f32>,
    /// Class index of each image.
    pub labels: Vec<u32>,
    /// Domain index (as in the dataset) of each image.
    pub domains: Vec<u32>,
    /// File of each image.
    pub paths: Vec<PathBuf>,
    /// Image rows.
    pub height: u32,
    /// Image columns.
    pub width: u32,
    /// Images of the planned batch that were skipped.
    pub skipped: Vec<SkippedImage>,
}

impl Batch {
    /// Number of images in the batch.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the batch has no image (never true for a batch returned by this crate).
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// `[B, 3, height, width]`.
    pub fn shape(&self) -> [usize; 4] {
        [self.len(), 3, self.height as usize, self.width as usize]
    }

    /// An empty batch with room for `capacity` images of `height x width`.
    fn with_capacity(step: u64, capacity: usize, height: u32, width: u32) -> Self {
        Self {
            step,
            images: Vec::with_capacity(capacity * 3 * height as usize * width as usize),
            labels: Vec::with_capacity(capacity),
            domains: Vec::with_capacity(capacity),
            paths: Vec::with_capacity(capacity),
            height,
            width,
            skipped: Vec::new(),
        }
    }

    /// Adds `sample`'s image (`per_image` values) or, if it failed, records it as skipped.
    fn push(&mut self, sample: &Sample, result: std::result::Result<Preprocessed, String>) {
        let per_image = 3 * self.height as usize * self.width as usize;
        match result {
            Ok(p) if p.data.len() == per_image => {
                self.images.extend_from_slice(&p.data);
                self.labels.push(sample.class);
                self.domains.push(sample.domain);
                self.paths.push(sample.path.clone());
            }
            Ok(p) => self.skipped.push(SkippedImage {
                path: sample.path.clone(),
                error: format!(
                    "{}: preprocessed to {} values, expected {per_image}",
                    sample.path.display(),
                    p.data.len()
                ),
            }),
            Err(error) => self.skipped.push(SkippedImage {
                path: sample.path.clone(),
                error,
            }),
        }
    }
}

/// The error of a transform of an image held in memory (the loader prefixes the file).
pub(super) fn in_memory_image_error(e: impl Display) -> DataError {
    DataError::Image {
        path: PathBuf::from("<image>"),
        message: e.to_string(),
    }
}

/// Plain CLIP preprocessing of a decoded image (no augmentation).
pub(super) fn plain_preprocess(
    image: &DynamicImage,
    cfg: &PreprocessConfig,
) -> Result<Preprocessed> {
    preprocess(image, cfg).map_err(in_memory_image_error)
}

/// Decodes and transforms `plan` in parallel; `transform(position, image)` gives the tensor.
/// Unreadable images are skipped (reported on stderr if `warn`); an error if none is readable.
pub(super) fn load_batch<F>(
    step: u64,
    plan: &[&Sample],
    cfg: &PreprocessConfig,
    warn: bool,
    transform: F,
) -> Result<Batch>
where
    F: Fn(usize, &DynamicImage) -> Result<Preprocessed> + Sync,
{
    let results: Vec<std::result::Result<Preprocessed, String>> = plan
        .par_iter()
        .enumerate()
        .map(|(j, sample)| load_one(&sample.path, j, &transform))
        .collect();
    let mut batch = Batch::with_capacity(step, plan.len(), cfg.crop_height, cfg.crop_width);
    for (sample, result) in plan.iter().zip(results) {
        batch.push(sample, result);
    }
    if warn {
        for s in &batch.skipped {
            eprintln!("warning: skipping unreadable image: {}", s.error);
        }
    }
    if batch.is_empty() {
        return Err(DataError::UnreadableBatch {
            step,
            count: plan.len(),
            first_error: batch
                .skipped
                .first()
                .map_or_else(|| "empty batch".to_string(), |s| s.error.clone()),
        });
    }
    Ok(batch)
}

/// Decodes and transforms the image at `path` (position `j` of its batch); the error names
/// the file.
fn load_one<F>(path: &Path, j: usize, transform: &F) -> std::result::Result<Preprocessed, String>
where
    F: Fn(usize, &DynamicImage) -> Result<Preprocessed> + Sync,
{
    let image = load_image(path).map_err(|e| e.to_string())?;
    transform(j, &image).map_err(|e| match e {
        DataError::Image { message, .. } => format!("{}: {message}", path.display()),
        other => format!("{}: {other}", path.display()),
    })
}
