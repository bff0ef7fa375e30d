//! DomainBed-layout datasets: `<root>/<domain>/<class>/<image>`.
//!
//! [`DomainBedDataset::scan`] lists domains, classes and images (everything sorted, hidden
//! entries ignored); [`DomainBedDataset::split`] holds out target domains entirely and splits
//! every source domain into an *in* part (training) and an *out* part (model selection), as
//! DomainBed does, deterministically by seed.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use rand::seq::SliceRandom;

use crate::error::{DataError, Result};
use crate::seed::rng_for;

/// File extensions (lowercase, compared case-insensitively) treated as images.
pub const IMAGE_EXTENSIONS: [&str; 8] = ["png", "jpg", "jpeg", "bmp", "gif", "webp", "tiff", "tif"];

/// Options of [`DomainBedDataset::scan`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanOptions {
    /// Accept domains that lack some classes (by default every domain must have at least one
    /// image of every class).
    pub allow_missing_classes: bool,
}

/// One image: its file, the index of its domain in [`DomainBedDataset::domains`] and of its
/// class in [`DomainBedDataset::classes`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sample {
    /// The image file.
    pub path: PathBuf,
    /// Domain index.
    pub domain: u32,
    /// Class index (the label).
    pub class: u32,
}

/// A scanned DomainBed-layout directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainBedDataset {
    root: PathBuf,
    domains: Vec<String>,
    classes: Vec<String>,
    samples: Vec<Vec<Sample>>,
}

impl DomainBedDataset {
    /// Scans `root`: domains are its sorted subdirectories, classes the sorted union of the
    /// class subdirectories holding images, images the files with an [`IMAGE_EXTENSIONS`]
    /// extension, sorted. Entries whose names start with `.` are ignored.
    ///
    /// Errors: `root` missing or not a directory, no domain directories, a domain without any
    /// image, and (unless [`ScanOptions::allow_missing_classes`]) a domain without images of
    /// some class.
    pub fn scan(root: &Path, options: &ScanOptions) -> Result<Self> {
        match std::fs::metadata(root) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(DataError::RootNotFound {
                    path: root.to_path_buf(),
                })
            }
            Err(e) => return Err(DataError::io(root, "read metadata of", e)),
            Ok(m) if !m.is_dir() => {
                return Err(DataError::NotADirectory {
                    path: root.to_path_buf(),
                })
            }
            Ok(_) => {}
        }
        let mut listing: Vec<(String, Vec<ClassImages>)> = Vec::new();
        for domain_dir in list_dir(root)?.into_iter().filter(|e| e.is_dir) {
            let domain = utf8_name(&domain_dir.path)?;
            let mut classes = Vec::new();
            for class_dir in list_dir(&domain_dir.path)?.into_iter().filter(|e| e.is_dir) {
                let class = utf8_name(&class_dir.path)?;
                let images: Vec<PathBuf> = list_dir(&class_dir.path)?
                    .into_iter()
                    .filter(|e| !e.is_dir && is_image(&e.path))
                    .map(|e| e.path)
                    .collect();
                if !images.is_empty() {
                    classes.push((class, images));
                }
            }
            if classes.is_empty() {
                return Err(DataError::EmptyDomain {
                    domain,
                    path: domain_dir.path,
                    extensions: IMAGE_EXTENSIONS.join(", "),
                });
            }
            listing.push((domain, classes));
        }
        if listing.is_empty() {
            return Err(DataError::NoDomains {
                root: root.to_path_buf(),
            });
        }
        let classes: Vec<String> = listing
            .iter()
            .flat_map(|(_, cs)| cs.iter().map(|(c, _)| c.clone()))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        if !options.allow_missing_classes {
            for (domain, present) in &listing {
                if let Some(missing) = classes
                    .iter()
                    .find(|c| !present.iter().any(|(p, _)| p == *c))
                {
                    return Err(DataError::MissingClass {
                        domain: domain.clone(),
                        class: missing.clone(),
                        path: root.join(domain).join(missing),
                    });
                }
            }
        }
        let mut domains = Vec::with_capacity(listing.len());
        let mut samples = Vec::with_capacity(listing.len());
        for (d, (domain, present)) in listing.into_iter().enumerate() {
            let mut list = Vec::new();
            for (class, images) in present {
                let class_idx = classes.iter().position(|c| *c == class).unwrap_or(0);
                list.extend(images.into_iter().map(|path| Sample {
                    path,
                    domain: d as u32,
                    class: class_idx as u32,
                }));
            }
            domains.push(domain);
            samples.push(list);
        }
        Ok(Self {
            root: root.to_path_buf(),
            domains,
            classes,
            samples,
        })
    }

    /// The directory scanned.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Domain names, sorted; a sample's `domain` indexes this.
    pub fn domains(&self) -> &[String] {
        &self.domains
    }

    /// Class names, sorted; a sample's `class` indexes this.
    pub fn classes(&self) -> &[String] {
        &self.classes
    }

    /// Index of the domain called `name`.
    pub fn domain_index(&self, name: &str) -> Option<usize> {
        self.domains.iter().position(|d| d == name)
    }

    /// The samples of domain `domain` (sorted by path), or an empty slice if out of range.
    pub fn domain_samples(&self, domain: usize) -> &[Sample] {
        self.samples.get(domain).map_or(&[], Vec::as_slice)
    }

    /// Number of images over all domains.
    pub fn len(&self) -> usize {
        self.samples.iter().map(Vec::len).sum()
    }

    /// Whether there are no images (never true for a successfully scanned dataset).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

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
        let mut is_target = vec![false; self.domains.len()];
        for t in &options.target_domains {
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
                targets: options.target_domains.clone(),
            });
        }
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
                continue;
            }
            let total = samples.len();
            let n_out = (total as f64 * f).floor() as usize;
            samples.shuffle(&mut rng_for(options.seed, &[b"split", name.as_bytes()]));
            let mut in_split = samples.split_off(n_out);
            let mut out_split = samples;
            if in_split.is_empty() {
                return Err(DataError::EmptySourceSplit {
                    domain: name.clone(),
                    holdout_fraction: f,
                    total,
                });
            }
            in_split.sort();
            out_split.sort();
            sources.push(SourceSplit {
                domain: d as u32,
                name: name.clone(),
                in_split,
                out_split,
            });
        }
        Ok(Split {
            domains: self.domains.clone(),
            classes: self.classes.clone(),
            sources,
            targets,
        })
    }
}

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

/// A class directory's name and its images.
type ClassImages = (String, Vec<PathBuf>);

struct Entry {
    path: PathBuf,
    is_dir: bool,
}

/// Non-hidden entries of `dir`, sorted by name. Symlinks are followed; an entry whose target
/// cannot be read counts as a file.
fn list_dir(dir: &Path) -> Result<Vec<Entry>> {
    let read = std::fs::read_dir(dir).map_err(|e| DataError::io(dir, "read directory", e))?;
    let mut entries = Vec::new();
    for entry in read {
        let entry = entry.map_err(|e| DataError::io(dir, "read directory", e))?;
        let name = entry.file_name();
        if name.as_encoded_bytes().first() == Some(&b'.') {
            continue;
        }
        let path = entry.path();
        let is_dir = std::fs::metadata(&path).is_ok_and(|m| m.is_dir());
        entries.push(Entry { path, is_dir });
    }
    entries.sort_by(|a, b| a.path.file_name().cmp(&b.path.file_name()));
    Ok(entries)
}

fn utf8_name(path: &Path) -> Result<String> {
    path.file_name()
        .and_then(|n| n.to_str())
        .map(str::to_string)
        .ok_or_else(|| DataError::NonUtf8Name {
            path: path.to_path_buf(),
        })
}

/// Whether `path` has an image extension (case-insensitive).
pub fn is_image(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.iter().any(|x| e.eq_ignore_ascii_case(x)))
}
