//! What pretraining learns from: each step's images and captions, made ahead of the optimizer
//! on a thread of their own, and the zero-shot report of the finished checkpoint.

use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::thread::JoinHandle;

use ahp_model::{ClipTokenizer, LoadedClip};
use ahp_spec::Preprocessed;
use candle_core::Device;

use super::DomainZeroShot;
use crate::error::{Result, TrainError};

/// One step's images and the captions they are paired with.
pub(super) struct Batch {
    /// The preprocessed (augmented) images.
    pub(super) images: Vec<Preprocessed>,
    /// The caption of each image: an index into `captions`, or into the fixed caption set.
    pub(super) caption_of: Vec<u32>,
    /// This step's captions, each once (images of one concept share it, so they are positives
    /// of each other, never negatives); `None`: the source's fixed caption set.
    pub(super) captions: Option<Vec<String>>,
}

/// A source of pretraining data. A batch is a pure function of the step, so a resumed run
/// sees exactly the batches an uninterrupted one would.
pub(super) trait BatchSource: Send + Sync {
    /// The batch of `step`.
    fn batch(&self, step: u64) -> Result<Batch>;
}

/// Everything pretraining needs from its data, beyond the batches.
pub(super) trait PretrainSource: BatchSource {
    /// The tokenizer's words (besides the special tokens).
    fn vocabulary(&self) -> Result<Vec<String>>;
    /// The caption set every step is scored against, if the source has a fixed one.
    fn fixed_captions(&self) -> Option<Vec<String>>;
    /// Text positions the model needs (its `max_position_embeddings`).
    fn text_positions(&self) -> Result<usize>;
    /// Captions per class in the fixed set (`caption = style * classes + class`), for the
    /// class and style accuracies of the log; `None` when captions are not laid out so.
    fn log_classes(&self) -> Option<usize>;
    /// The zero-shot prompt template.
    fn template(&self) -> &str;
    /// What identifies the data and how batches are drawn from it (part of the resumable
    /// state's fingerprint).
    fn fingerprint(&self) -> String;
    /// Fails when the written tokenizer cannot spell what the zero-shot report asks.
    fn check_tokenizer(&self, tokenizer: &ClipTokenizer) -> Result<()>;
    /// Zero-shot accuracy of the written checkpoint per domain.
    fn zero_shot(&self, clip: &LoadedClip, device: &Device) -> Result<Vec<DomainZeroShot>>;
}

/// Batches made on their own thread, two ahead of the optimizer.
pub(super) struct Prefetch {
    batches: Receiver<Result<Batch>>,
    thread: JoinHandle<()>,
}

impl Prefetch {
    /// Starts making the batches of steps `start..end`.
    pub(super) fn spawn(source: Arc<dyn PretrainSource>, start: u64, end: u64) -> Self {
        let (tx, rx) = std::sync::mpsc::sync_channel(2);
        let thread = std::thread::spawn(move || {
            for step in start..end {
                let batch = source.batch(step);
                let failed = batch.is_err();
                if tx.send(batch).is_err() || failed {
                    return;
                }
            }
        });
        Self {
            batches: rx,
            thread,
        }
    }

    /// The next step's batch (or the error that stopped the thread).
    pub(super) fn next(&self) -> Result<Batch> {
        self.batches
            .recv()
            .map_err(|_| TrainError::run_dir("pretraining data", "the batch thread panicked"))?
    }

    /// Waits for the thread to end.
    pub(super) fn join(self) -> Result<()> {
        drop(self.batches);
        self.thread
            .join()
            .map_err(|_| TrainError::run_dir("pretraining data", "the batch thread panicked"))
    }
}
