//! The micro-batcher: requests (v1 and v2 alike) queue their preprocessed images as one job; a
//! task packs queued jobs into model runs of at most `max_batch` images.
//!
//! The batcher takes the first queued job, waits for a free session, then collects whatever else
//! is queued, waiting at most [`ServerConfig::batch_window`](super::ServerConfig) for more, until
//! the next job would take the batch over `max_batch` images (that job starts the next batch),
//! and runs the batch on the blocking pool. Under load, jobs that arrive while a batch runs form
//! the next batch.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot, Semaphore};

use super::metrics::Metrics;
use crate::Classifier;

/// What a job gets back: its rows of each output, and how many images shared the model run.
#[derive(Debug)]
pub(crate) struct JobOutput {
    /// `logits`, one row per image of the job.
    pub logits: Vec<Vec<f32>>,
    /// `image_embeds`, one row per image, when the model has that output.
    pub image_embeds: Option<Vec<Vec<f32>>>,
    /// Images in the model run this job was part of.
    pub batch: usize,
}

/// A job's result; the error is the model run's message.
pub(crate) type JobResult = Result<JobOutput, String>;

/// One request's images, preprocessed (`images x 3 x H x W` values).
pub(crate) struct Job {
    pub pixels: Vec<f32>,
    pub images: usize,
    pub enqueued: Instant,
    pub reply: oneshot::Sender<JobResult>,
}

/// Clears the batcher's liveness flag when the batcher ends, however it ends.
pub(crate) struct AliveGuard(pub Arc<AtomicBool>);

impl Drop for AliveGuard {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

/// Batching parameters and what the batcher shares with the handlers.
pub(crate) struct Batcher {
    pub classifier: Arc<Classifier>,
    pub max_batch: usize,
    pub window: Duration,
    pub metrics: Arc<Metrics>,
    /// Held while the batcher runs: clears the liveness flag when it stops.
    pub alive: AliveGuard,
}

impl Batcher {
    /// Runs until every sender of `rx` is dropped.
    pub(crate) async fn run(self, mut rx: mpsc::Receiver<Job>) {
        let _alive = &self.alive;
        // One batch per session may run at once.
        let runners = Arc::new(Semaphore::new(self.classifier.num_sessions()));
        let mut pending: Option<Job> = None;
        loop {
            let first = match pending.take() {
                Some(job) => job,
                None => match rx.recv().await {
                    Some(job) => job,
                    None => break,
                },
            };
            let Ok(permit) = Arc::clone(&runners).acquire_owned().await else {
                break;
            };
            let (mut jobs, next) = self.collect(first, &mut rx).await;
            pending = next;
            // Requests that timed out or whose client left are not run.
            jobs.retain(|job| !job.reply.is_closed());
            if jobs.is_empty() {
                continue;
            }
            let classifier = Arc::clone(&self.classifier);
            let metrics = Arc::clone(&self.metrics);
            tokio::task::spawn_blocking(move || {
                let _permit = permit;
                run_batch(&classifier, &metrics, jobs);
            });
        }
    }

    /// `first` and the jobs queued after it, up to `max_batch` images in all (a job larger than
    /// that runs alone); the job that did not fit, if any, is returned for the next batch.
    async fn collect(&self, first: Job, rx: &mut mpsc::Receiver<Job>) -> (Vec<Job>, Option<Job>) {
        let mut images = first.images;
        let mut jobs = vec![first];
        // `window` is bounded by `validate`; an overflow would mean "no deadline to wait for".
        let deadline = tokio::time::Instant::now().checked_add(self.window);
        while images < self.max_batch {
            let job = match rx.try_recv() {
                Ok(job) => job,
                Err(mpsc::error::TryRecvError::Disconnected) => break,
                Err(mpsc::error::TryRecvError::Empty) => {
                    let Some(deadline) = deadline.filter(|_| !self.window.is_zero()) else {
                        break;
                    };
                    match tokio::time::timeout_at(deadline, rx.recv()).await {
                        Ok(Some(job)) => job,
                        _ => break,
                    }
                }
            };
            if images + job.images > self.max_batch {
                return (jobs, Some(job));
            }
            images += job.images;
            jobs.push(job);
        }
        (jobs, None)
    }
}

/// Runs the jobs as one model run and answers each with its rows.
fn run_batch(classifier: &Classifier, metrics: &Metrics, jobs: Vec<Job>) {
    let n: usize = jobs.iter().map(|j| j.images).sum();
    let start = Instant::now();
    let mut pixels = Vec::with_capacity(n * classifier.pixels_per_image());
    for job in &jobs {
        metrics.observe_queue(start.saturating_duration_since(job.enqueued));
        pixels.extend_from_slice(&job.pixels);
    }
    let result = classifier.run(&pixels, n);
    metrics.observe_run(n, start.elapsed(), result.is_ok());
    match result {
        Ok(out) => {
            let mut logits = out.logits.into_iter();
            let mut embeds = out.image_embeds.map(Vec::into_iter);
            for job in jobs {
                let output = JobOutput {
                    logits: logits.by_ref().take(job.images).collect(),
                    image_embeds: embeds
                        .as_mut()
                        .map(|e| e.by_ref().take(job.images).collect()),
                    batch: n,
                };
                let _ = job.reply.send(Ok(output));
            }
        }
        Err(e) => {
            let message = e.to_string();
            for job in jobs {
                let _ = job.reply.send(Err(message.clone()));
            }
        }
    }
}
