//! The micro-batcher: requests (v1 and v2 alike) queue their preprocessed images as one job;
//! one thread per ONNX Runtime session packs queued jobs into model runs of at most `max_batch`
//! images and runs them.
//!
//! A batch thread takes the first queued job, then whatever else is queued, waiting at most
//! [`ServerConfig::batch_window`](super::ServerConfig) for more, until the next job would take
//! the batch over `max_batch` images (that job starts the next batch), and runs the batch. Under
//! load, jobs that arrive while a batch runs form the next batch. The threads are plain OS
//! threads, as a Triton model instance's: between two runs nothing waits for the async runtime,
//! which is busy answering the previous batch's requests.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

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

/// Clears the batcher's liveness flag when the batcher ends, however it ends (dropped with the
/// last batch thread's handle on it).
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
    /// Held while a batch thread runs: clears the liveness flag when the last one stops.
    pub alive: AliveGuard,
}

/// The queue the batch threads share: the jobs, and the one that did not fit the last batch.
struct Queue {
    rx: Receiver<Job>,
    pending: Option<Job>,
}

impl Batcher {
    /// Starts one batch thread per session; they stop when every sender of the returned
    /// channel is dropped.
    pub(crate) fn start(self) -> std::io::Result<Sender<Job>> {
        let (tx, rx) = mpsc::channel();
        let queue = Arc::new(Mutex::new(Queue { rx, pending: None }));
        let shared = Arc::new(self);
        for i in 0..shared.classifier.num_sessions() {
            let (queue, batcher) = (Arc::clone(&queue), Arc::clone(&shared));
            std::thread::Builder::new()
                .name(format!("ahp-batch-{i}"))
                .spawn(move || batcher.run(&queue))?;
        }
        Ok(tx)
    }

    /// Takes batches off the queue and runs them until the queue is closed.
    fn run(&self, queue: &Mutex<Queue>) {
        let _alive = &self.alive;
        loop {
            let jobs = {
                let mut q = queue.lock().unwrap_or_else(PoisonError::into_inner);
                match self.collect(&mut q) {
                    Some(jobs) => jobs,
                    None => break,
                }
            };
            if !jobs.is_empty() {
                run_batch(&self.classifier, &self.metrics, jobs);
            }
        }
    }

    /// The next batch: the first job and those queued after it, up to `max_batch` images in all
    /// (a job larger than that runs alone); the job that did not fit stays for the next batch.
    /// Jobs whose client left or timed out are dropped unrun. `None` once the queue is closed.
    fn collect(&self, q: &mut Queue) -> Option<Vec<Job>> {
        let first = match q.pending.take() {
            Some(job) => job,
            None => q.rx.recv().ok()?,
        };
        let mut images = first.images;
        let mut jobs = vec![first];
        // `window` is bounded by `validate`; an overflow would mean "no deadline to wait for".
        let deadline = Instant::now().checked_add(self.window);
        while images < self.max_batch {
            let job = match q.rx.try_recv() {
                Ok(job) => job,
                Err(TryRecvError::Disconnected) => break,
                Err(TryRecvError::Empty) => {
                    let left = deadline.map_or(Duration::ZERO, |d| {
                        d.saturating_duration_since(Instant::now())
                    });
                    if left.is_zero() {
                        break;
                    }
                    match q.rx.recv_timeout(left) {
                        Ok(job) => job,
                        Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
                    }
                }
            };
            if job.reply.is_closed() {
                continue;
            }
            if images + job.images > self.max_batch {
                q.pending = Some(job);
                break;
            }
            images += job.images;
            jobs.push(job);
        }
        jobs.retain(|job| !job.reply.is_closed());
        Some(jobs)
    }
}

/// Runs the jobs as one model run and answers each with its rows. When a run of several jobs
/// fails (a non-finite output, say), each job is run alone, so that one request's failure is not
/// every batched request's.
fn run_batch(classifier: &Classifier, metrics: &Metrics, jobs: Vec<Job>) {
    let start = Instant::now();
    for job in &jobs {
        metrics.observe_queue(start.saturating_duration_since(job.enqueued));
    }
    let n: usize = jobs.iter().map(|j| j.images).sum();
    let mut pixels = Vec::with_capacity(n * classifier.pixels_per_image());
    for job in &jobs {
        pixels.extend_from_slice(&job.pixels);
    }
    match run_once(classifier, metrics, &pixels, n) {
        Ok(out) => answer(jobs, out, n),
        Err(message) if jobs.len() == 1 => {
            for job in jobs {
                let _ = job.reply.send(Err(message.clone()));
            }
        }
        Err(_) => {
            for job in jobs {
                let images = job.images;
                match run_once(classifier, metrics, &job.pixels, images) {
                    Ok(out) => answer(vec![job], out, images),
                    Err(message) => {
                        let _ = job.reply.send(Err(message));
                    }
                }
            }
        }
    }
}

/// One model run of `n` images, observed.
fn run_once(
    classifier: &Classifier,
    metrics: &Metrics,
    pixels: &[f32],
    n: usize,
) -> Result<crate::Outputs, String> {
    let start = Instant::now();
    let result = classifier.run(pixels, n);
    metrics.observe_run(n, start.elapsed(), result.is_ok());
    result.map_err(|e| e.to_string())
}

/// Hands each job its rows of `out` (in job order), saying that `batch` images ran together.
fn answer(jobs: Vec<Job>, out: crate::Outputs, batch: usize) {
    let mut logits = out.logits.into_iter();
    let mut embeds = out.image_embeds.map(Vec::into_iter);
    for job in jobs {
        let output = JobOutput {
            logits: logits.by_ref().take(job.images).collect(),
            image_embeds: embeds
                .as_mut()
                .map(|e| e.by_ref().take(job.images).collect()),
            batch,
        };
        let _ = job.reply.send(Ok(output));
    }
}
