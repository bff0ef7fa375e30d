//! DomainBed-layout datasets: `<root>/<domain>/<class>/<image>`.
//!
//! [`DomainBedDataset::scan`] lists domains, classes and images (everything sorted, hidden
//! entries ignored); [`DomainBedDataset::split`] holds out target domains entirely and splits
//! every source domain into an *in* part (training) and an *out* part (model selection), as
//! DomainBed does, deterministically by seed.

mod scan;
mod split;

use std::path::{Path, PathBuf};

pub use scan::ScanOptions;
pub use split::{SourceSplit, Split, SplitOptions, TargetDomain};

/// File extensions (lowercase, compared case-insensitively) treated as images.
pub const IMAGE_EXTENSIONS: [&str; 8] = ["png", "jpg", "jpeg", "bmp", "gif", "webp", "tiff", "tif"];

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
}

/// Whether `path` has an image extension (case-insensitive).
pub fn is_image(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.iter().any(|x| e.eq_ignore_ascii_case(x)))
}
