//! Domain-balanced, resumable training batches.

use std::sync::Arc;

use ahp_spec::preprocess::{to_rgb8, Preprocessed};
use image::DynamicImage;
use rand::seq::SliceRandom;

use super::augment::augment;
use super::batch::{load_batch, plain_preprocess, Batch};
use super::config::{check_crop_size, LoaderConfig};
use super::stats::{AtomicStats, LoaderStats};
use crate::domainbed::{Sample, Split};
use crate::error::{DataError, Result};
use crate::seed::rng_for;

/// What the clones of a batcher share.
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
        check_domains(&domains, cfg.batch_size)?;
        check_crop_size(&cfg.preprocess)?;
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
                    perm = Some((epoch, self.epoch_order(i, epoch)));
                }
                if let Some((_, order)) = &perm {
                    out.push(&samples[order[(pos % len) as usize]]);
                }
            }
        }
        out
    }

    /// The order in which epoch `epoch` visits domain `i`'s samples.
    fn epoch_order(&self, i: usize, epoch: u64) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.inner.domains[i].len()).collect();
        order.shuffle(&mut rng_for(
            self.inner.cfg.seed,
            &[b"epoch", &(i as u64).to_le_bytes(), &epoch.to_le_bytes()],
        ));
        order
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
            |j, image| self.transform(step, j, image),
        );
        match &batch {
            Ok(b) => self.inner.stats.add(b),
            Err(_) => self.inner.stats.add_skipped(plan.len()),
        }
        batch
    }

    /// The tensor of image `j` of batch `step`: augmented, or plainly preprocessed when the
    /// configuration has no augmentation.
    fn transform(&self, step: u64, j: usize, image: &DynamicImage) -> Result<Preprocessed> {
        let cfg = &self.inner.cfg;
        match &cfg.augment {
            Some(aug) => {
                let mut rng = rng_for(
                    cfg.seed,
                    &[b"augment", &step.to_le_bytes(), &(j as u64).to_le_bytes()],
                );
                augment(&to_rgb8(image), &cfg.preprocess, aug, &mut rng)
            }
            None => plain_preprocess(image, &cfg.preprocess),
        }
    }

    /// Batches `start_step, start_step + 1, ...`, loaded synchronously (an endless iterator).
    pub fn iter_from(&self, start_step: u64) -> impl Iterator<Item = Result<Batch>> + '_ {
        (start_step..).map(move |step| self.batch_at(step))
    }
}

/// At least one domain, none empty, and room in a batch for one image of each.
fn check_domains(domains: &[Vec<Sample>], batch_size: usize) -> Result<()> {
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
    if batch_size < domains.len() {
        return Err(DataError::option(
            "batch_size",
            format!(
                "{} is smaller than the number of source domains ({}); every batch must \
                 hold at least one image of each",
                batch_size,
                domains.len()
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use ahp_spec::preprocess::PreprocessConfig;

    use super::*;

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
