//! The marker of an emoji tree (`.ahp-emoji.json`: role, designers, classes, render settings and
//! a fingerprint of the packages, the class table and the renderer), so that writing into the
//! tree again resumes it and never mixes in images made differently. Nothing is ever removed:
//! a tree made with other settings is refused, and a run with fewer designers or classes keeps
//! the others (the marker then lists both).

use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::classes::{benchmark_classes, EmojiClass, CLASSES_TSV};
use super::designers::{designer, Designer, Role, DESIGNERS, EMOJIBASE, NAME_TABLES};
use super::render::RenderOptions;
use crate::error::{DataError, Result};

const MARKER_FILE: &str = ".ahp-emoji.json";

/// What a tree holds and how it was made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct Marker {
    role: String,
    designers: Vec<String>,
    classes: Vec<String>,
    size: u32,
    margin: f32,
    background: [u8; 3],
    /// sha256 over the pinned packages, the class table and the renderer's version.
    fingerprint: String,
}

/// What makes the same names render to other pixels: every pinned package (by integrity), the
/// committed class table and the renderer.
fn fingerprint() -> String {
    let mut h = Sha256::new();
    for d in &DESIGNERS {
        h.update(format!("{} {}\n", d.name, d.package.integrity));
    }
    for p in NAME_TABLES.iter().chain([&EMOJIBASE]) {
        h.update(format!("{}\n", p.integrity));
    }
    h.update(CLASSES_TSV);
    h.update("resvg 0.49.0, usvg without text, fit-to-square v1");
    format!("{:x}", h.finalize())
}

impl Marker {
    pub(super) fn new(
        role: Role,
        o: &RenderOptions,
        designers: &[&Designer],
        classes: &[EmojiClass],
    ) -> Self {
        Self {
            role: format!("{role:?}").to_lowercase(),
            designers: designers.iter().map(|d| d.name.to_string()).collect(),
            classes: classes.iter().map(|c| c.name.clone()).collect(),
            size: o.size,
            margin: o.margin,
            background: o.background,
            fingerprint: fingerprint(),
        }
    }

    /// Written before rendering, so an interrupted run is recognised and resumed.
    pub(super) fn write(&self, out: &Path) -> Result<()> {
        std::fs::create_dir_all(out).map_err(|e| DataError::io(out, "create directory", e))?;
        let json = serde_json::to_vec_pretty(self)
            .map_err(|e| DataError::option("emoji", format!("cannot serialize the marker: {e}")))?;
        Ok(ahp_spec::files::write_atomic(
            &out.join(MARKER_FILE),
            &json,
        )?)
    }

    /// How `self` (the tree's) differs from `next` in anything that changes pixels.
    fn differences(&self, next: &Marker) -> Vec<String> {
        let mut d = Vec::new();
        if self.role != next.role {
            d.push(format!(
                "it is a {} tree, not a {} one",
                self.role, next.role
            ));
        }
        if self.size != next.size {
            d.push(format!("size {} (asked {})", self.size, next.size));
        }
        if self.margin != next.margin {
            d.push(format!("margin {} (asked {})", self.margin, next.margin));
        }
        if self.background != next.background {
            d.push(format!(
                "background {:?} (asked {:?})",
                self.background, next.background
            ));
        }
        if self.fingerprint != next.fingerprint {
            d.push("other packages, class table or renderer (another ahp version)".to_string());
        }
        d
    }

    /// Both markers' designers and classes.
    fn union(mut self, next: &Marker) -> Marker {
        for d in &next.designers {
            if !self.designers.contains(d) {
                self.designers.push(d.clone());
            }
        }
        for c in &next.classes {
            if !self.classes.contains(c) {
                self.classes.push(c.clone());
            }
        }
        self
    }

    /// Known designer and class names only.
    fn is_plausible(&self) -> bool {
        let classes = benchmark_classes();
        self.designers.iter().all(|d| designer(d).is_some())
            && self
                .classes
                .iter()
                .all(|c| classes.iter().any(|k| &k.name == c))
    }
}

/// The marker to write before rendering `next` into `out`: `next` itself for a missing or empty
/// directory, the union with the tree's own for a tree made the same way; a tree made with other
/// settings, and any other non-empty directory, are refused (and left untouched).
pub(super) fn prepare_out_dir(out: &Path, next: &Marker) -> Result<Marker> {
    let Ok(mut entries) = std::fs::read_dir(out) else {
        return Ok(next.clone());
    };
    if entries.next().is_none() {
        return Ok(next.clone());
    }
    let refuse = |why: String| {
        DataError::OutputDir {
        path: out.to_path_buf(),
        message: format!(
            "{why}; ahp-data emoji writes only into an empty directory or one it wrote the same way \
             (choose another --out, or remove this one)"
        ),
    }
    };
    let bytes = ahp_spec::files::read_regular(&out.join(MARKER_FILE), 1 << 20)
        .map_err(|_| refuse("not empty and has no .ahp-emoji.json".to_string()))?;
    let previous: Marker = serde_json::from_slice(&bytes)
        .map_err(|_| refuse("has an unreadable .ahp-emoji.json".to_string()))?;
    if !previous.is_plausible() {
        return Err(refuse(
            "has a .ahp-emoji.json naming unknown designers or classes".to_string(),
        ));
    }
    let differences = previous.differences(next);
    if !differences.is_empty() {
        return Err(refuse(format!(
            "was rendered differently: {}",
            differences.join(", ")
        )));
    }
    Ok(previous.union(next))
}
