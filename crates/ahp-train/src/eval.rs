//! Accuracy per domain and split.

use ahp_data::{EvalBatches, Sample};
use ahp_model::{ClipModel, HeadHooks, ZeroShotClassifier};
use ahp_spec::PreprocessConfig;
use candle_core::{Device, Tensor, D};
use serde::{Deserialize, Serialize};

use crate::error::Result;

/// Accuracy of one domain on one split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DomainAccuracy {
    /// Domain name.
    pub domain: String,
    /// `in` (source training images), `out` (source held-out), or `target`.
    pub split: String,
    /// Images evaluated.
    pub images: usize,
    /// Correct top-1 predictions.
    pub correct: usize,
    /// Images skipped as unreadable.
    pub skipped: u64,
}

impl DomainAccuracy {
    /// Top-1 accuracy in [0, 1].
    pub fn accuracy(&self) -> f64 {
        if self.images == 0 {
            0.0
        } else {
            self.correct as f64 / self.images as f64
        }
    }
}

/// Top-1 correct count over `samples` with the given hooks (`&[]` = plain CLIP).
pub fn count_correct(
    model: &ClipModel,
    classifier: &ZeroShotClassifier,
    hooks: &[HeadHooks],
    samples: &[Sample],
    batch_size: usize,
    preprocess: &PreprocessConfig,
    device: &Device,
) -> Result<(usize, usize, u64)> {
    let mut batches = EvalBatches::new(samples, batch_size, preprocess)?;
    let (mut correct, mut total) = (0usize, 0usize);
    for batch in batches.by_ref() {
        let batch = batch?;
        let [b, c, h, w] = batch.shape();
        let pixels = Tensor::from_vec(batch.images, (b, c, h, w), device)?;
        let logits = classifier.logits_for_pixels(model, &pixels, hooks)?;
        let pred = logits.argmax(D::Minus1)?.to_vec1::<u32>()?;
        correct += pred
            .iter()
            .zip(&batch.labels)
            .filter(|(p, l)| p == l)
            .count();
        total += b;
    }
    Ok((correct, total, batches.skipped()))
}

/// Mean accuracy over a list (weighted by images).
pub fn pooled_accuracy(rows: &[&DomainAccuracy]) -> f64 {
    let images: usize = rows.iter().map(|r| r.images).sum();
    let correct: usize = rows.iter().map(|r| r.correct).sum();
    if images == 0 {
        0.0
    } else {
        correct as f64 / images as f64
    }
}

/// Pooled accuracy of the rows of one split (`"in"`, `"out"` or `"target"`).
pub fn split_accuracy(rows: &[DomainAccuracy], split: &str) -> f64 {
    let rows: Vec<&DomainAccuracy> = rows.iter().filter(|r| r.split == split).collect();
    pooled_accuracy(&rows)
}
