//! The marker of an emoji tree (`.ahp-emoji.json`: designers, classes, render settings), so that
//! writing into it again keeps what is still valid and removes only what it wrote before.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::classes::{benchmark_classes, EmojiClass};
use super::designers::{designer, Designer};
use super::render::RenderOptions;
use crate::error::{DataError, Result};

const MARKER_FILE: &str = ".ahp-emoji.json";

/// What a tree holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct Marker {
    designers: Vec<String>,
    classes: Vec<String>,
    size: u32,
    margin: f32,
    background: [u8; 3],
}

impl Marker {
    pub(super) fn new(o: &RenderOptions, designers: &[&Designer], classes: &[EmojiClass]) -> Self {
        Self {
            designers: designers.iter().map(|d| d.name.to_string()).collect(),
            classes: classes.iter().map(|c| c.name.clone()).collect(),
            size: o.size,
            margin: o.margin,
            background: o.background,
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

    fn same_pixels(&self, other: &Marker) -> bool {
        (self.size, self.margin, self.background) == (other.size, other.margin, other.background)
    }

    /// Known designer and class names only: a hand-edited marker can never make
    /// [`prepare_out_dir`] remove anything outside the tree.
    fn is_plausible(&self) -> bool {
        let classes = benchmark_classes();
        self.designers.iter().all(|d| designer(d).is_some())
            && self
                .classes
                .iter()
                .all(|c| classes.iter().any(|k| &k.name == c))
    }
}

/// Readies `out` for `next`: a missing or empty directory is fine; in a tree written before
/// (it has the marker) the designers and classes `next` does not write are removed, and
/// everything when the pixels would differ (size, margin, background); any other non-empty
/// directory is refused.
pub(super) fn prepare_out_dir(out: &Path, next: &Marker) -> Result<()> {
    let Ok(mut entries) = std::fs::read_dir(out) else {
        return Ok(());
    };
    if entries.next().is_none() {
        return Ok(());
    }
    let path = out.join(MARKER_FILE);
    let refuse = |why: &str| DataError::OutputDir {
        path: out.to_path_buf(),
        message: format!(
            "{why}; ahp-data emoji writes only into an empty directory or one it wrote before"
        ),
    };
    let bytes = ahp_spec::files::read_regular(&path, 1 << 20)
        .map_err(|_| refuse("not empty and has no .ahp-emoji.json"))?;
    let previous: Marker =
        serde_json::from_slice(&bytes).map_err(|_| refuse("has an unreadable .ahp-emoji.json"))?;
    if !previous.is_plausible() {
        return Err(refuse(
            "has a .ahp-emoji.json naming unknown designers or classes",
        ));
    }
    for d in &previous.designers {
        let dir = out.join(d);
        if !next.designers.contains(d) || !previous.same_pixels(next) {
            remove(&dir)?;
            continue;
        }
        for c in previous
            .classes
            .iter()
            .filter(|c| !next.classes.contains(c))
        {
            remove(&dir.join(c))?;
        }
    }
    Ok(())
}

fn remove(dir: &Path) -> Result<()> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(DataError::io(dir, "remove", e)),
        _ => Ok(()),
    }
}
