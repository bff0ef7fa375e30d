//! Producing training batches on a background thread through a bounded channel.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

use super::balanced::BalancedBatcher;
use super::batch::Batch;
use crate::error::{DataError, Result};

impl BalancedBatcher {
    /// Starts a background thread producing batches `start_step, start_step + 1, ...` into a
    /// channel holding at most `capacity` ready batches (plus the one being sent). The thread
    /// stops after the first error (which the iterator yields) or when the [`Prefetcher`] is
    /// dropped. Yields exactly what [`Self::iter_from`] would.
    pub fn prefetch(&self, start_step: u64, capacity: usize) -> Result<Prefetcher> {
        let (tx, rx): (SyncSender<Result<Batch>>, Receiver<Result<Batch>>) =
            std::sync::mpsc::sync_channel(capacity);
        let stop = Arc::new(AtomicBool::new(false));
        let batcher = self.clone();
        let thread_stop = Arc::clone(&stop);
        let handle = std::thread::Builder::new()
            .name("ahp-data-prefetch".into())
            .spawn(move || {
                let mut step = start_step;
                while !thread_stop.load(Ordering::Relaxed) {
                    let batch = batcher.batch_at(step);
                    let failed = batch.is_err();
                    if tx.send(batch).is_err() || failed {
                        break;
                    }
                    step += 1;
                }
            })
            .map_err(|source| DataError::SpawnThread { source })?;
        Ok(Prefetcher {
            rx: Some(rx),
            stop,
            handle: Some(handle),
            start_step,
            finished: false,
        })
    }
}

/// Batches produced on a background thread (see [`BalancedBatcher::prefetch`]). Dropping it
/// stops and joins the thread.
pub struct Prefetcher {
    rx: Option<Receiver<Result<Batch>>>,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
    start_step: u64,
    finished: bool,
}

impl std::fmt::Debug for Prefetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prefetcher")
            .field("start_step", &self.start_step)
            .field("finished", &self.finished)
            .finish()
    }
}

impl Iterator for Prefetcher {
    type Item = Result<Batch>;

    fn next(&mut self) -> Option<Result<Batch>> {
        if self.finished {
            return None;
        }
        let received = self.rx.as_ref()?.recv();
        match received {
            Ok(Ok(batch)) => Some(Ok(batch)),
            Ok(Err(e)) => {
                self.finished = true;
                Some(Err(e))
            }
            Err(_) => {
                self.finished = true;
                Some(Err(DataError::PrefetchStopped {
                    start_step: self.start_step,
                }))
            }
        }
    }
}

impl Drop for Prefetcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Dropping the receiver unblocks a thread waiting in `send`.
        drop(self.rx.take());
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}
