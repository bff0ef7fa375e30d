//! Counters of a batcher, shared by its clones and prefetch threads.

use std::sync::atomic::{AtomicU64, Ordering};

use super::batch::Batch;

/// Counters of a [`BalancedBatcher`](super::BalancedBatcher) (shared by its clones and
/// prefetchers; every produced batch counts, including prefetched ones not yet consumed).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoaderStats {
    /// Batches produced.
    pub batches: u64,
    /// Images delivered.
    pub images: u64,
    /// Images skipped as unreadable.
    pub skipped: u64,
}

/// [`LoaderStats`] updated concurrently.
#[derive(Default)]
pub(super) struct AtomicStats {
    batches: AtomicU64,
    images: AtomicU64,
    skipped: AtomicU64,
}

impl AtomicStats {
    /// Counts a produced batch, its images and its skipped images.
    pub(super) fn add(&self, batch: &Batch) {
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.images.fetch_add(batch.len() as u64, Ordering::Relaxed);
        self.skipped
            .fetch_add(batch.skipped.len() as u64, Ordering::Relaxed);
    }

    /// Counts `n` skipped images (of a batch that failed).
    pub(super) fn add_skipped(&self, n: usize) {
        self.skipped.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// The counters now.
    pub(super) fn snapshot(&self) -> LoaderStats {
        LoaderStats {
            batches: self.batches.load(Ordering::Relaxed),
            images: self.images.load(Ordering::Relaxed),
            skipped: self.skipped.load(Ordering::Relaxed),
        }
    }
}
