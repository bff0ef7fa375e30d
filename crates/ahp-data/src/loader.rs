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

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

use ahp_spec::preprocess::{
    load_image, normalize, preprocess, resize_bicubic, to_rgb8, PreprocessConfig, Preprocessed,
};
use image::{DynamicImage, RgbImage};
use rand::seq::SliceRandom;
use rand::Rng;
use rayon::prelude::*;

use crate::domainbed::{Sample, Split};
use crate::error::{DataError, Result};
use crate::seed::rng_for;

/// Training augmentation parameters (torchvision `RandomResizedCrop` + `RandomHorizontalFlip`).
#[derive(Debug, Clone, PartialEq)]
pub struct AugmentConfig {
    /// Range of the crop's area as a fraction of the image's (default `0.7..=1.0`).
    pub scale: (f64, f64),
    /// Range of the crop's aspect ratio, width / height (default `3/4..=4/3`, sampled
    /// log-uniformly).
    pub ratio: (f64, f64),
    /// Probability of a horizontal flip (default 0.5).
    pub flip_probability: f64,
}

impl Default for AugmentConfig {
    fn default() -> Self {
        Self {
            scale: (0.7, 1.0),
            ratio: (3.0 / 4.0, 4.0 / 3.0),
            flip_probability: 0.5,
        }
    }
}

impl AugmentConfig {
    /// Checks the ranges; errors name the field.
    pub fn validate(&self) -> Result<()> {
        let (s0, s1) = self.scale;
        if !(s0.is_finite() && s1.is_finite() && 0.0 < s0 && s0 <= s1 && s1 <= 1.0) {
            return Err(DataError::option(
                "augment.scale",
                format!("({s0}, {s1}) must satisfy 0 < min <= max <= 1"),
            ));
        }
        let (r0, r1) = self.ratio;
        if !(r0.is_finite() && r1.is_finite() && 0.0 < r0 && r0 <= r1) {
            return Err(DataError::option(
                "augment.ratio",
                format!("({r0}, {r1}) must satisfy 0 < min <= max"),
            ));
        }
        if !(0.0..=1.0).contains(&self.flip_probability) {
            return Err(DataError::option(
                "augment.flip_probability",
                format!("{} is not in [0, 1]", self.flip_probability),
            ));
        }
        Ok(())
    }
}

/// A crop rectangle in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CropBox {
    /// Left column.
    pub x: u32,
    /// Top row.
    pub y: u32,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
}

fn uniform(rng: &mut impl Rng, lo: f64, hi: f64) -> f64 {
    lo + (hi - lo) * rng.random::<f64>()
}

/// torchvision's `RandomResizedCrop.get_params`: up to 10 tries of a random area fraction in
/// `scale` and a log-uniform aspect ratio in `ratio`; if none fits, a center crop with the
/// aspect ratio clamped to `ratio`. Rounding is Python's (half to even).
pub fn random_resized_crop_params(
    width: u32,
    height: u32,
    scale: (f64, f64),
    ratio: (f64, f64),
    rng: &mut impl Rng,
) -> CropBox {
    let (wf, hf) = (f64::from(width), f64::from(height));
    let area = wf * hf;
    let (lr0, lr1) = (ratio.0.ln(), ratio.1.ln());
    for _ in 0..10 {
        let target_area = area * uniform(rng, scale.0, scale.1);
        let aspect = uniform(rng, lr0, lr1).exp();
        let w = (target_area * aspect).sqrt().round_ties_even();
        let h = (target_area / aspect).sqrt().round_ties_even();
        if w > 0.0 && w <= wf && h > 0.0 && h <= hf {
            let (w, h) = (w as u32, h as u32);
            let y = rng.random_range(0..=height - h);
            let x = rng.random_range(0..=width - w);
            return CropBox {
                x,
                y,
                width: w,
                height: h,
            };
        }
    }
    let in_ratio = wf / hf;
    let (w, h) = if in_ratio < ratio.0 {
        (
            width,
            ((wf / ratio.0).round_ties_even() as u32).clamp(1, height),
        )
    } else if in_ratio > ratio.1 {
        (
            ((hf * ratio.1).round_ties_even() as u32).clamp(1, width),
            height,
        )
    } else {
        (width, height)
    };
    CropBox {
        x: (width - w) / 2,
        y: (height - h) / 2,
        width: w,
        height: h,
    }
}

/// Training augmentation of one RGB image: random resized crop ([`random_resized_crop_params`]),
/// bicubic resize of the crop to `crop_height x crop_width` (ahp-spec's `resize_bicubic`),
/// horizontal flip with probability `flip_probability`, then ahp-spec's `normalize`.
pub fn augment(
    image: &RgbImage,
    pre: &PreprocessConfig,
    aug: &AugmentConfig,
    rng: &mut impl Rng,
) -> Result<Preprocessed> {
    if image.width() == 0 || image.height() == 0 {
        return Err(DataError::Image {
            path: PathBuf::from("<image>"),
            message: "image has zero width or height".into(),
        });
    }
    let b = random_resized_crop_params(image.width(), image.height(), aug.scale, aug.ratio, rng);
    let crop = image::imageops::crop_imm(image, b.x, b.y, b.width, b.height).to_image();
    let mut resized =
        resize_bicubic(&crop, pre.crop_height, pre.crop_width).map_err(|e| DataError::Image {
            path: PathBuf::from("<image>"),
            message: e.to_string(),
        })?;
    if rng.random::<f64>() < aug.flip_probability {
        image::imageops::flip_horizontal_in_place(&mut resized);
    }
    Ok(normalize(&resized, pre))
}

/// Loader settings.
#[derive(Debug, Clone, PartialEq)]
pub struct LoaderConfig {
    /// Images per batch (before skipping unreadable ones).
    pub batch_size: usize,
    /// Seed of the epoch shuffles and augmentations.
    pub seed: u64,
    /// The model's preprocessing; batches are `crop_height x crop_width`.
    pub preprocess: PreprocessConfig,
    /// Training augmentation; `None` applies plain CLIP preprocessing instead.
    pub augment: Option<AugmentConfig>,
    /// Print a warning on stderr for every skipped image.
    pub warn_on_skip: bool,
}

impl LoaderConfig {
    /// Default augmentation, warnings on.
    pub fn new(batch_size: usize, seed: u64, preprocess: PreprocessConfig) -> Self {
        Self {
            batch_size,
            seed,
            preprocess,
            augment: Some(AugmentConfig::default()),
            warn_on_skip: true,
        }
    }
}

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
}

/// Counters of a [`BalancedBatcher`] (shared by its clones and prefetchers; every produced
/// batch counts, including prefetched ones not yet consumed).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoaderStats {
    /// Batches produced.
    pub batches: u64,
    /// Images delivered.
    pub images: u64,
    /// Images skipped as unreadable.
    pub skipped: u64,
}

#[derive(Default)]
struct AtomicStats {
    batches: AtomicU64,
    images: AtomicU64,
    skipped: AtomicU64,
}

impl AtomicStats {
    fn add(&self, batch: &Batch) {
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.images.fetch_add(batch.len() as u64, Ordering::Relaxed);
        self.skipped
            .fetch_add(batch.skipped.len() as u64, Ordering::Relaxed);
    }

    fn add_skipped(&self, n: usize) {
        self.skipped.fetch_add(n as u64, Ordering::Relaxed);
    }

    fn snapshot(&self) -> LoaderStats {
        LoaderStats {
            batches: self.batches.load(Ordering::Relaxed),
            images: self.images.load(Ordering::Relaxed),
            skipped: self.skipped.load(Ordering::Relaxed),
        }
    }
}

struct Inner {
    domains: Vec<Vec<Sample>>,
    cfg: LoaderConfig,
    stats: AtomicStats,
}

/// Domain-balanced, resumable training batches (cheap to clone: clones share samples and
/// statistics).
#[derive(Clone)]
pub struct BalancedBatcher {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for BalancedBatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BalancedBatcher")
            .field(
                "domain_sizes",
                &self.inner.domains.iter().map(Vec::len).collect::<Vec<_>>(),
            )
            .field("cfg", &self.inner.cfg)
            .finish()
    }
}

impl BalancedBatcher {
    /// A batcher over the in-splits of `split`'s source domains.
    pub fn new(split: &Split, cfg: LoaderConfig) -> Result<Self> {
        Self::from_domains(
            split.sources.iter().map(|s| s.in_split.clone()).collect(),
            cfg,
        )
    }

    /// A batcher over explicit per-domain sample lists (one list per source domain, in a fixed
    /// order: the epoch shuffles are seeded by the list's position).
    ///
    /// Errors: no domain, an empty domain, batch size smaller than the number of domains,
    /// invalid augmentation or crop size.
    pub fn from_domains(domains: Vec<Vec<Sample>>, cfg: LoaderConfig) -> Result<Self> {
        if domains.is_empty() {
            return Err(DataError::option(
                "domains",
                "no source domain to draw from",
            ));
        }
        if let Some(i) = domains.iter().position(Vec::is_empty) {
            return Err(DataError::option(
                "domains",
                format!("source domain #{i} has no samples"),
            ));
        }
        if cfg.batch_size < domains.len() {
            return Err(DataError::option(
                "batch_size",
                format!(
                    "{} is smaller than the number of source domains ({}); every batch must \
                     hold at least one image of each",
                    cfg.batch_size,
                    domains.len()
                ),
            ));
        }
        if cfg.preprocess.crop_height == 0 || cfg.preprocess.crop_width == 0 {
            return Err(DataError::option("preprocess", "crop size must be > 0"));
        }
        if let Some(aug) = &cfg.augment {
            aug.validate()?;
        }
        Ok(Self {
            inner: Arc::new(Inner {
                domains,
                cfg,
                stats: AtomicStats::default(),
            }),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &LoaderConfig {
        &self.inner.cfg
    }

    /// Number of source domains.
    pub fn num_domains(&self) -> usize {
        self.inner.domains.len()
    }

    /// Counters so far.
    pub fn stats(&self) -> LoaderStats {
        self.inner.stats.snapshot()
    }

    /// Images drawn from each domain at `step`: `batch_size / n` each, and one more for
    /// `batch_size % n` domains chosen in rotation (domain `i` gets one when
    /// `(i + step) mod n < batch_size mod n`).
    pub fn domain_counts(&self, step: u64) -> Vec<usize> {
        let n = self.inner.domains.len();
        let (base, rem) = (self.inner.cfg.batch_size / n, self.inner.cfg.batch_size % n);
        (0..n)
            .map(|i| base + usize::from(Self::has_extra(i, step, n, rem)))
            .collect()
    }

    fn has_extra(i: usize, step: u64, n: usize, rem: usize) -> bool {
        ((i as u64 + step % n as u64) % n as u64) < rem as u64
    }

    /// Number of images drawn from domain `i` before `step`.
    fn drawn_before(&self, i: usize, step: u64) -> u64 {
        let n = self.inner.domains.len();
        let (base, rem) = (self.inner.cfg.batch_size / n, self.inner.cfg.batch_size % n);
        let n64 = n as u64;
        let partial = (0..step % n64)
            .filter(|&s| Self::has_extra(i, s, n, rem))
            .count() as u64;
        step * base as u64 + (step / n64) * rem as u64 + partial
    }

    /// The samples of batch `step`, grouped by domain (no decoding). Domain `i`'s stream is its
    /// in-split in consecutive epochs, each shuffled with a generator seeded from
    /// `(seed, i, epoch)`; batch `step` takes the next [`Self::domain_counts`] items of every
    /// stream.
    pub fn plan(&self, step: u64) -> Vec<&Sample> {
        let counts = self.domain_counts(step);
        let mut out = Vec::with_capacity(self.inner.cfg.batch_size);
        for (i, (samples, count)) in self.inner.domains.iter().zip(counts).enumerate() {
            let len = samples.len() as u64;
            let start = self.drawn_before(i, step);
            let mut perm: Option<(u64, Vec<usize>)> = None;
            for pos in start..start + count as u64 {
                let epoch = pos / len;
                if perm.as_ref().is_none_or(|(e, _)| *e != epoch) {
                    let mut order: Vec<usize> = (0..samples.len()).collect();
                    order.shuffle(&mut rng_for(
                        self.inner.cfg.seed,
                        &[b"epoch", &(i as u64).to_le_bytes(), &epoch.to_le_bytes()],
                    ));
                    perm = Some((epoch, order));
                }
                if let Some((_, order)) = &perm {
                    out.push(&samples[order[(pos % len) as usize]]);
                }
            }
        }
        out
    }

    /// Loads batch `step`: the [`Self::plan`]ned images, decoded in parallel, augmented with a
    /// generator seeded from `(seed, step, position in batch)`. Unreadable images are skipped;
    /// an error if none is readable.
    pub fn batch_at(&self, step: u64) -> Result<Batch> {
        let cfg = &self.inner.cfg;
        let plan = self.plan(step);
        let batch = load_batch(
            step,
            &plan,
            &cfg.preprocess,
            cfg.warn_on_skip,
            |j, image| match &cfg.augment {
                Some(aug) => {
                    let mut rng = rng_for(
                        cfg.seed,
                        &[b"augment", &step.to_le_bytes(), &(j as u64).to_le_bytes()],
                    );
                    augment(&to_rgb8(image), &cfg.preprocess, aug, &mut rng)
                }
                None => preprocess(image, &cfg.preprocess).map_err(|e| DataError::Image {
                    path: PathBuf::from("<image>"),
                    message: e.to_string(),
                }),
            },
        );
        match &batch {
            Ok(b) => self.inner.stats.add(b),
            Err(_) => self.inner.stats.add_skipped(plan.len()),
        }
        batch
    }

    /// Batches `start_step, start_step + 1, ...`, loaded synchronously (an endless iterator).
    pub fn iter_from(&self, start_step: u64) -> impl Iterator<Item = Result<Batch>> + '_ {
        (start_step..).map(move |step| self.batch_at(step))
    }

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
        if cfg.crop_height == 0 || cfg.crop_width == 0 {
            return Err(DataError::option("preprocess", "crop size must be > 0"));
        }
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
            preprocess(image, cfg).map_err(|e| DataError::Image {
                path: PathBuf::from("<image>"),
                message: e.to_string(),
            })
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

/// Decodes and transforms `plan` in parallel; `transform(position, image)` gives the tensor.
fn load_batch<F>(
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
    let (h, w) = (cfg.crop_height, cfg.crop_width);
    let per_image = 3 * h as usize * w as usize;
    let mut batch = Batch {
        step,
        images: Vec::with_capacity(plan.len() * per_image),
        labels: Vec::with_capacity(plan.len()),
        domains: Vec::with_capacity(plan.len()),
        paths: Vec::with_capacity(plan.len()),
        height: h,
        width: w,
        skipped: Vec::new(),
    };
    for (sample, result) in plan.iter().zip(results) {
        match result {
            Ok(p) if p.data.len() == per_image => {
                batch.images.extend_from_slice(&p.data);
                batch.labels.push(sample.class);
                batch.domains.push(sample.domain);
                batch.paths.push(sample.path.clone());
            }
            Ok(p) => batch.skipped.push(SkippedImage {
                path: sample.path.clone(),
                error: format!(
                    "{}: preprocessed to {} values, expected {per_image}",
                    sample.path.display(),
                    p.data.len()
                ),
            }),
            Err(error) => batch.skipped.push(SkippedImage {
                path: sample.path.clone(),
                error,
            }),
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn crop_params_respect_scale_and_ratio() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for _ in 0..500 {
            let b = random_resized_crop_params(64, 48, (0.7, 1.0), (0.75, 4.0 / 3.0), &mut rng);
            assert!(b.x + b.width <= 64 && b.y + b.height <= 48, "{b:?}");
            let frac = f64::from(b.width * b.height) / f64::from(64 * 48);
            // Rounding to whole pixels moves the area slightly outside the nominal range.
            assert!((0.66..=1.0).contains(&frac), "{b:?} area {frac}");
            let r = f64::from(b.width) / f64::from(b.height);
            assert!((0.72..=1.37).contains(&r), "{b:?} ratio {r}");
        }
    }

    #[test]
    fn crop_falls_back_to_center_crop_with_clamped_ratio() {
        // A 100x10 strip can never hold a 3/4..4/3 crop of >= 70% of its area.
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let b = random_resized_crop_params(100, 10, (0.7, 1.0), (0.75, 4.0 / 3.0), &mut rng);
        assert_eq!(
            b,
            CropBox {
                x: 43,
                y: 0,
                width: 13,
                height: 10
            }
        );
    }

    #[test]
    fn domain_counts_rotate_the_remainder() {
        let samples = |d: u32| -> Vec<Sample> {
            (0..5)
                .map(|i| Sample {
                    path: PathBuf::from(format!("{d}/{i}.png")),
                    domain: d,
                    class: 0,
                })
                .collect()
        };
        let b = BalancedBatcher::from_domains(
            vec![samples(0), samples(1), samples(2)],
            LoaderConfig::new(8, 0, PreprocessConfig::clip(8)),
        )
        .expect("valid batcher");
        let mut totals = [0usize; 3];
        for step in 0..6 {
            let c = b.domain_counts(step);
            assert_eq!(c.iter().sum::<usize>(), 8);
            assert!(c.iter().all(|&x| x == 2 || x == 3), "{c:?}");
            for (t, x) in totals.iter_mut().zip(&c) {
                *t += x;
            }
            for (i, &count) in c.iter().enumerate() {
                assert_eq!(
                    b.drawn_before(i, step + 1) - b.drawn_before(i, step),
                    count as u64
                );
            }
        }
        assert_eq!(totals, [16, 16, 16]);
        // Each epoch visits every sample of a domain exactly once.
        let mut seen: Vec<&Sample> = (0..15).flat_map(|s| b.plan(s)).collect();
        seen.retain(|s| s.domain == 0);
        assert_eq!(seen.len(), 40);
        let mut first_epoch: Vec<_> = seen[..5].iter().map(|s| s.path.clone()).collect();
        first_epoch.sort();
        first_epoch.dedup();
        assert_eq!(first_epoch.len(), 5);
    }
}
