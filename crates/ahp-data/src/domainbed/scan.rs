//! Scanning a DomainBed-layout directory: listing its domains, classes and images.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::{is_image, DomainBedDataset, Sample, IMAGE_EXTENSIONS};
use crate::error::{DataError, Result};

/// Options of [`DomainBedDataset::scan`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanOptions {
    /// Accept domains that lack some classes (by default every domain must have at least one
    /// image of every class).
    pub allow_missing_classes: bool,
}

/// A class directory's name and its images.
type ClassImages = (String, Vec<PathBuf>);

/// A domain directory's name and its non-empty classes.
type DomainListing = (String, Vec<ClassImages>);

impl DomainBedDataset {
    /// Scans `root`: domains are its sorted subdirectories, classes the sorted union of the
    /// class subdirectories holding images, images the files with an [`IMAGE_EXTENSIONS`]
    /// extension, sorted. Entries whose names start with `.` are ignored.
    ///
    /// Errors: `root` missing or not a directory, no domain directories, a domain without any
    /// image, and (unless [`ScanOptions::allow_missing_classes`]) a domain without images of
    /// some class.
    pub fn scan(root: &Path, options: &ScanOptions) -> Result<Self> {
        check_root(root)?;
        let listing = list_domains(root)?;
        let classes = class_union(&listing);
        if !options.allow_missing_classes {
            check_every_class_present(root, &listing, &classes)?;
        }
        Ok(Self::from_listing(root, listing, classes))
    }

    /// The dataset of a listing: every image labelled with its domain's position in `listing`
    /// and its class's position in `classes`.
    fn from_listing(root: &Path, listing: Vec<DomainListing>, classes: Vec<String>) -> Self {
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
        Self {
            root: root.to_path_buf(),
            domains,
            classes,
            samples,
        }
    }
}

/// `root` exists and is a directory.
fn check_root(root: &Path) -> Result<()> {
    match std::fs::metadata(root) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(DataError::RootNotFound {
            path: root.to_path_buf(),
        }),
        Err(e) => Err(DataError::io(root, "read metadata of", e)),
        Ok(m) if !m.is_dir() => Err(DataError::NotADirectory {
            path: root.to_path_buf(),
        }),
        Ok(_) => Ok(()),
    }
}

/// Every domain directory of `root` with its classes; an error for a domain without images
/// or a root without domains.
fn list_domains(root: &Path) -> Result<Vec<DomainListing>> {
    let mut listing = Vec::new();
    for domain_dir in list_dir(root)?.into_iter().filter(|e| e.is_dir) {
        let domain = utf8_name(&domain_dir.path)?;
        let classes = list_classes(&domain_dir.path)?;
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
    Ok(listing)
}

/// The class directories of `domain_dir` that hold images, with their images.
fn list_classes(domain_dir: &Path) -> Result<Vec<ClassImages>> {
    let mut classes = Vec::new();
    for class_dir in list_dir(domain_dir)?.into_iter().filter(|e| e.is_dir) {
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
    Ok(classes)
}

/// The sorted names of the classes present in any domain.
fn class_union(listing: &[DomainListing]) -> Vec<String> {
    listing
        .iter()
        .flat_map(|(_, cs)| cs.iter().map(|(c, _)| c.clone()))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// Every domain has images of every class; the error names the first missing one.
fn check_every_class_present(
    root: &Path,
    listing: &[DomainListing],
    classes: &[String],
) -> Result<()> {
    for (domain, present) in listing {
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
    Ok(())
}

/// A directory entry: its path and whether it is (or links to) a directory.
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

/// The file name of `path` as UTF-8 (domain and class names must be).
fn utf8_name(path: &Path) -> Result<String> {
    path.file_name()
        .and_then(|n| n.to_str())
        .map(str::to_string)
        .ok_or_else(|| DataError::NonUtf8Name {
            path: path.to_path_buf(),
        })
}
