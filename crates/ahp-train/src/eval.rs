//! Accuracy per domain and split.

use ahp_data::{EvalBatches, Sample};
use ahp_model::{ClipModel, HeadHooks, ZeroShotClassifier};
use ahp_spec::PreprocessConfig;
use candle_core::{Device, Tensor};
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

/// One evaluation during training: pooled accuracies of the sources' held-out split and of the
/// target domains at `step`. The target accuracy is logged for the oracle upper bound of the
/// benchmark only; nothing is chosen by it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// Steps taken.
    pub step: u64,
    /// Pooled accuracy of the sources' held-out split.
    pub source_val_acc: f64,
    /// Pooled accuracy of the target domains.
    pub target_acc: f64,
}

/// Per-image top-1 outcome over `samples`, in their order: `Some(correct)`, or `None` for an
/// image skipped as unreadable.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Outcomes(pub Vec<Option<bool>>);

impl Outcomes {
    /// Correct predictions.
    pub fn correct(&self) -> usize {
        self.0.iter().filter(|o| **o == Some(true)).count()
    }
    /// Images evaluated (not skipped).
    pub fn evaluated(&self) -> usize {
        self.0.iter().filter(|o| o.is_some()).count()
    }
    /// Images skipped.
    pub fn skipped(&self) -> u64 {
        self.0.iter().filter(|o| o.is_none()).count() as u64
    }
    /// One character per image: `1` correct, `0` wrong, `-` skipped (compact for JSON).
    pub fn to_code(&self) -> String {
        self.0
            .iter()
            .map(|o| match o {
                Some(true) => '1',
                Some(false) => '0',
                None => '-',
            })
            .collect()
    }
    /// Parses [`Self::to_code`]'s string.
    pub fn from_code(code: &str) -> Option<Self> {
        code.chars()
            .map(|c| match c {
                '1' => Some(Some(true)),
                '0' => Some(Some(false)),
                '-' => Some(None),
                _ => None,
            })
            .collect::<Option<Vec<_>>>()
            .map(Self)
    }
}

/// Top-1 outcome of every image of `samples` with the given hooks (`&[]` = plain CLIP).
pub fn evaluate_samples(
    model: &ClipModel,
    classifier: &ZeroShotClassifier,
    hooks: &[HeadHooks],
    samples: &[Sample],
    batch_size: usize,
    preprocess: &PreprocessConfig,
    device: &Device,
) -> Result<Outcomes> {
    let mut outcomes = Vec::with_capacity(samples.len());
    let mut next = 0usize;
    for batch in EvalBatches::new(samples, batch_size, preprocess)? {
        let batch = batch?;
        let mut correct = std::collections::HashMap::new();
        if !batch.is_empty() {
            let [b, c, h, w] = batch.shape();
            let pixels = Tensor::from_vec(batch.images, (b, c, h, w), device)?;
            let pred = classifier.top1(model, &pixels, hooks)?;
            for ((p, l), path) in pred.iter().zip(&batch.labels).zip(batch.paths) {
                correct.insert(path, p == l);
            }
        }
        // The batch is the next `batch_size` samples, minus the skipped ones, in order.
        let end = (next + batch_size).min(samples.len());
        for s in &samples[next..end] {
            outcomes.push(correct.get(&s.path).copied());
        }
        next = end;
    }
    Ok(Outcomes(outcomes))
}

/// `(correct, images)` of top-1 predictions over labelled pixel batches already in memory (the
/// pretraining zero-shot check, the head-drop analysis); files go through
/// [`evaluate_samples`]. Both score with [`ZeroShotClassifier::top1`].
pub fn accuracy(
    model: &ClipModel,
    classifier: &ZeroShotClassifier,
    hooks: &[HeadHooks],
    batches: &[(Tensor, Vec<u32>)],
) -> Result<(usize, usize)> {
    let (mut correct, mut total) = (0usize, 0usize);
    for (pixels, labels) in batches {
        let pred = classifier.top1(model, pixels, hooks)?;
        correct += pred.iter().zip(labels).filter(|(p, l)| p == l).count();
        total += labels.len();
    }
    Ok((correct, total))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_codes_round_trip() {
        let o = Outcomes(vec![Some(true), Some(false), None, Some(true)]);
        assert_eq!(o.to_code(), "10-1");
        assert_eq!(Outcomes::from_code("10-1"), Some(o.clone()));
        assert_eq!((o.correct(), o.evaluated(), o.skipped()), (2, 3, 1));
        assert_eq!(Outcomes::from_code("1x"), None);
    }
}
