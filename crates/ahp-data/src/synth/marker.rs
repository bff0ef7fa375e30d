//! The marker file of a generated directory (what it holds), and readying a directory for a
//! new generation so that no stale image of a previous one stays behind.

use std::path::Path;

use super::config::SynthConfig;
use super::names;
use super::shape::Shape;
use super::style::Style;
use crate::error::{DataError, Result};

/// Marker written into a generated directory: what it holds, so that generating into it again
/// removes the images of the previous run that the new one does not write.
const MARKER_FILE: &str = ".ahp-synth.json";

/// The domains, classes and images per class of a generated directory.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub(super) struct Marker {
    domains: Vec<String>,
    classes: Vec<String>,
    per_class: usize,
}

impl Marker {
    /// What generating `cfg` (whose classes are `shapes`) writes.
    pub(super) fn new(cfg: &SynthConfig, shapes: &[Shape]) -> Self {
        Self {
            domains: names(&cfg.domains, Style::name),
            classes: names(shapes, Shape::name),
            per_class: cfg.per_class,
        }
    }

    /// Only style and shape names and a sane count: a hand-edited marker can never make
    /// `prepare_out_dir` remove files outside the data set or loop for ages.
    fn is_plausible(&self) -> bool {
        self.domains.iter().all(|d| Style::from_name(d).is_some())
            && self.classes.iter().all(|c| Shape::from_name(c).is_some())
            && self.per_class <= 1_000_000
    }

    /// Both markers' contents: what the directory may hold while a generation runs.
    pub(super) fn union(&self, other: &Marker) -> Marker {
        let merge = |a: &[String], b: &[String]| {
            let mut v = a.to_vec();
            v.extend(b.iter().filter(|x| !a.contains(x)).cloned());
            v
        };
        Marker {
            domains: merge(&self.domains, &other.domains),
            classes: merge(&self.classes, &other.classes),
            per_class: self.per_class.max(other.per_class),
        }
    }

    /// Writes the marker into `out` (atomically).
    pub(super) fn write(&self, out: &Path) -> Result<()> {
        let json = serde_json::to_vec_pretty(self)
            .map_err(|e| DataError::option("synth", format!("cannot serialize the marker: {e}")))?;
        Ok(ahp_spec::files::write_atomic(
            &out.join(MARKER_FILE),
            &json,
        )?)
    }
}

/// Readies `out` for `next`: a new or empty directory is fine; one written before by
/// [`generate`](super::generate) (it has the marker) loses the previous images `next` does not
/// rewrite; any other non-empty directory is refused, so stale images never mix into the data
/// set. Returns the previous marker, if any.
pub(super) fn prepare_out_dir(out: &Path, next: &Marker) -> Result<Option<Marker>> {
    let Ok(mut entries) = std::fs::read_dir(out) else {
        return Ok(None);
    };
    if entries.next().is_none() {
        return Ok(None);
    }
    let previous = read_marker(out)?;
    remove_stale(out, &previous, next)?;
    Ok(Some(previous))
}

/// The marker of the non-empty directory `out` (or what a directory written before markers
/// existed holds); an error if it has none.
fn read_marker(out: &Path) -> Result<Marker> {
    std::fs::read(out.join(MARKER_FILE))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .filter(Marker::is_plausible)
        .or_else(|| legacy_marker(out))
        .ok_or_else(|| DataError::OutputDir {
            path: out.to_path_buf(),
            message: format!(
                "is not empty and was not written by `ahp-data synth` (no {MARKER_FILE}); choose a new or empty directory"
            ),
        })
}

/// Removes the images `previous` wrote that `next` will not rewrite, then the class and domain
/// directories `next` does not use, if they are empty.
fn remove_stale(out: &Path, previous: &Marker, next: &Marker) -> Result<()> {
    for domain in &previous.domains {
        for class in &previous.classes {
            let dir = out.join(domain).join(class);
            let keep = next.domains.contains(domain) && next.classes.contains(class);
            for index in 0..previous.per_class {
                if !keep || index >= next.per_class {
                    remove_if_present(&dir.join(format!("{index}.png")))?;
                }
            }
            if !keep {
                // Only empty directories go; anything else put there stays.
                let _ = std::fs::remove_dir(&dir);
            }
        }
        if !next.domains.contains(domain) {
            let _ = std::fs::remove_dir(out.join(domain));
        }
    }
    Ok(())
}

/// Removes `file`; one already gone is fine.
fn remove_if_present(file: &Path) -> Result<()> {
    match std::fs::remove_file(file) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(DataError::io(file, "remove stale image", e)),
    }
}

/// What a directory written before markers existed holds, if it looks like one: only
/// directories named after styles, holding directories named after shapes, holding `N.png`.
fn legacy_marker(out: &Path) -> Option<Marker> {
    let entry_names = |dir: &Path| -> Option<Vec<String>> {
        std::fs::read_dir(dir)
            .ok()?
            .map(|e| e.ok().and_then(|e| e.file_name().into_string().ok()))
            .collect()
    };
    let domains = entry_names(out)?;
    let mut per_class = 0;
    for d in &domains {
        Style::from_name(d)?;
        for c in entry_names(&out.join(d))? {
            Shape::from_name(&c)?;
            for f in entry_names(&out.join(d).join(&c))? {
                let index: usize = f.strip_suffix(".png")?.parse().ok()?;
                per_class = per_class.max(index + 1);
            }
        }
    }
    Some(Marker {
        domains,
        classes: names(&Shape::ALL, Shape::name),
        per_class,
    })
}
