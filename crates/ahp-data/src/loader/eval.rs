//! Fixed-order evaluation batches with plain CLIP preprocessing.

use ahp_spec::preprocess::PreprocessConfig;

use super::batch::{load_batch, plain_preprocess, Batch};
use super::config::check_crop_size;
use crate::domainbed::Sample;
use crate::error::{DataError, Result};

/// Fixed-order evaluation batches over a list of samples, with plain CLIP preprocessing
/// (`ahp_spec::preprocess::preprocess`), in chunks of `batch_size` (the last may be smaller).
#[derive(Debug)]
pub struct EvalBatches<'a> {
    samples: &'a [Sample],
    cfg: PreprocessConfig,
    batch_size: usize,
    next_chunk: usize,
    warn_on_skip: bool,
    skipped: u64,
}

impl<'a> EvalBatches<'a> {
    /// Evaluation batches of `samples`. Errors: batch size 0 or a zero crop size.
    pub fn new(samples: &'a [Sample], batch_size: usize, cfg: &PreprocessConfig) -> Result<Self> {
        if batch_size == 0 {
            return Err(DataError::option("batch_size", "must be at least 1"));
        }
        check_crop_size(cfg)?;
        Ok(Self {
            samples,
            cfg: cfg.clone(),
            batch_size,
            next_chunk: 0,
            warn_on_skip: true,
            skipped: 0,
        })
    }

    /// Whether skipped images are reported on stderr (default true).
    pub fn warn_on_skip(mut self, warn: bool) -> Self {
        self.warn_on_skip = warn;
        self
    }

    /// Number of batches in total.
    pub fn num_batches(&self) -> usize {
        self.samples.len().div_ceil(self.batch_size)
    }

    /// Images skipped so far.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }
}

impl Iterator for EvalBatches<'_> {
    type Item = Result<Batch>;

    fn next(&mut self) -> Option<Result<Batch>> {
        let start = self.next_chunk * self.batch_size;
        if start >= self.samples.len() {
            return None;
        }
        let end = (start + self.batch_size).min(self.samples.len());
        let plan: Vec<&Sample> = self.samples[start..end].iter().collect();
        let step = self.next_chunk as u64;
        self.next_chunk += 1;
        let cfg = &self.cfg;
        let batch = load_batch(step, &plan, cfg, self.warn_on_skip, |_, image| {
            plain_preprocess(image, cfg)
        });
        self.skipped += match &batch {
            Ok(b) => b.skipped.len() as u64,
            Err(_) => plan.len() as u64,
        };
        Some(batch)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.num_batches().saturating_sub(self.next_chunk);
        (left, Some(left))
    }
}
