//! Training and evaluation batches.
//!
//! [`BalancedBatcher`] draws every training batch from all source domains (the batch size split
//! as evenly as possible, the remainder rotating over domains from step to step), walking each
//! domain's in-split in seeded shuffled epochs. Batch `k` is a pure function of
//! `(seed, k)`, so [`BalancedBatcher::batch_at`] lets a run resumed at step `k` see exactly the
//! batches an uninterrupted run would. Images are decoded in parallel (rayon), augmented
//! ([`augment`]: random resized crop, bicubic resize, horizontal flip, CLIP normalization) and
//! concatenated as `[B, 3, H, W]`; [`BalancedBatcher::prefetch`] produces them on a background
//! thread through a bounded channel.
//!
//! [`EvalBatches`] walks a list of samples in fixed order with plain CLIP preprocessing.
//!
//! Unreadable images are skipped (listed in [`Batch::skipped`], counted in [`LoaderStats`],
//! optionally reported on stderr); a batch with no readable image is an error.

mod augment;
mod balanced;
mod batch;
mod config;
mod eval;
mod prefetch;
mod stats;

pub use augment::{augment, random_resized_crop_params, AugmentConfig, ColorJitter, CropBox};
pub use balanced::BalancedBatcher;
pub use batch::{Batch, SkippedImage};
pub use config::LoaderConfig;
pub use eval::EvalBatches;
pub use prefetch::Prefetcher;
pub use stats::LoaderStats;
