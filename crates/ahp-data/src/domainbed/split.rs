//! Splitting a scanned dataset into held-out target domains and source domains, each of
//! these split into an *in* (training) and an *out* (model selection) part.

use rand::seq::SliceRandom;

use super::{DomainBedDataset, Sample};
use crate::error::{DataError, Result};
use crate::seed::rng_for;

/// Options of [`DomainBedDataset::split`].
#[derive(Debug, Clone, PartialEq)]
pub struct SplitOptions {
    /// Domains held out entirely (the unseen test domains).
    pub target_domains: Vec<String>,
    /// Fraction of each source domain held out for model selection (default 0.2).
    pub holdout_fraction: f64,
    /// Seed of the per-domain shuffles.
    pub seed: u64,
}

impl Default for SplitOptions {
    /// No target domain, 20% holdout, seed 0.
    fn default() -> Self {
        Self {
            target_domains: Vec::new(),
            holdout_fraction: 0.2,
            seed: 0,
        }
    }
}

/// A source domain's two parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceSplit {
    /// Domain index in [`Split::domains`].
    pub domain: u32,
    /// Domain name.
    pub name: String,
    /// Training images, sorted by path.
    pub in_split: Vec<Sample>,
    /// Held-out images of the source domain (model selection), sorted by path.
    pub out_split: Vec<Sample>,
}

/// A target (unseen) domain: all of its images are held out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetDomain {
    /// Domain index in [`Split::domains`].
    pub domain: u32,
    /// Domain name.
    pub name: String,
    /// All its images, sorted by path.
    pub samples: Vec<Sample>,
}

/// The result of [`DomainBedDataset::split`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    /// All domain names of the dataset (indexed by `Sample::domain`).
    pub domains: Vec<String>,
    /// All class names (indexed by `Sample::class`).
    pub classes: Vec<String>,
    /// Source domains, in domain order.
    pub sources: Vec<SourceSplit>,
    /// Target domains, in domain order.
    pub targets: Vec<TargetDomain>,
}

impl Split {
    /// Names of the source domains.
    pub fn source_names(&self) -> Vec<&str> {
        self.sources.iter().map(|s| s.name.as_str()).collect()
    }

    /// Names of the target domains.
    pub fn target_names(&self) -> Vec<&str> {
        self.targets.iter().map(|t| t.name.as_str()).collect()
    }

    /// All out-split images of the source domains, in domain order (the DomainBed validation
    /// set for training-domain model selection).
    pub fn source_out_samples(&self) -> Vec<Sample> {
        self.sources
            .iter()
            .flat_map(|s| s.out_split.iter().cloned())
            .collect()
    }
}

impl DomainBedDataset {
    /// Splits the dataset: the target domains are held out entirely; every other (source)
    /// domain's images, sorted by path, are shuffled with a generator seeded from
    /// `(seed, domain name)`; the first `floor(n * holdout_fraction)` form the *out* split and
    /// the rest the *in* split (both returned sorted by path). A domain's split therefore
    /// depends only on the seed, its name and its files, not on the other domains nor on the
    /// order of directory listing.
    ///
    /// Errors: unknown target domain (listing the available ones), holdout fraction outside
    /// `[0, 1)`, no source domain left, or a source domain whose in-split is empty.
    pub fn split(&self, options: &SplitOptions) -> Result<Split> {
        let f = options.holdout_fraction;
        if !f.is_finite() || !(0.0..1.0).contains(&f) {
            return Err(DataError::option(
                "holdout_fraction",
                format!("{f} is not in [0, 1)"),
            ));
        }
        let is_target = self.target_mask(&options.target_domains)?;
        let mut sources = Vec::new();
        let mut targets = Vec::new();
        for (d, name) in self.domains.iter().enumerate() {
            let mut samples = self.samples[d].clone();
            samples.sort();
            if is_target[d] {
                targets.push(TargetDomain {
                    domain: d as u32,
                    name: name.clone(),
                    samples,
                });
            } else {
                sources.push(split_source(d as u32, name, samples, f, options.seed)?);
            }
        }
        Ok(Split {
            domains: self.domains.clone(),
            classes: self.classes.clone(),
            sources,
            targets,
        })
    }

    /// Which domains are targets; an error for an unknown name or when no source is left.
    fn target_mask(&self, target_domains: &[String]) -> Result<Vec<bool>> {
        let mut is_target = vec![false; self.domains.len()];
        for t in target_domains {
            let idx = self
                .domain_index(t)
                .ok_or_else(|| DataError::UnknownDomain {
                    domain: t.clone(),
                    field: "target_domains",
                    available: self.domains.clone(),
                })?;
            is_target[idx] = true;
        }
        if is_target.iter().all(|&t| t) {
            return Err(DataError::NoSourceDomains {
                targets: target_domains.to_vec(),
            });
        }
        Ok(is_target)
    }
}

/// Splits a source domain's `samples` (sorted by path): a seeded shuffle, the first
/// `floor(n * holdout_fraction)` out, the rest in, both sorted again.
fn split_source(
    domain: u32,
    name: &str,
    mut samples: Vec<Sample>,
    holdout_fraction: f64,
    seed: u64,
) -> Result<SourceSplit> {
    let total = samples.len();
    let n_out = (total as f64 * holdout_fraction).floor() as usize;
    samples.shuffle(&mut rng_for(seed, &[b"split", name.as_bytes()]));
    let mut in_split = samples.split_off(n_out);
    let mut out_split = samples;
    if in_split.is_empty() {
        return Err(DataError::EmptySourceSplit {
            domain: name.to_string(),
            holdout_fraction,
            total,
        });
    }
    in_split.sort();
    out_split.sort();
    Ok(SourceSplit {
        domain,
        name: name.to_string(),
        in_split,
        out_split,
    })
}
