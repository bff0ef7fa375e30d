//! The inputs to classify: files named on the command line, and the image files of the
//! directories named, walked recursively.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use ahp_spec::preprocess::IMAGE_EXTENSIONS;

/// One input to classify: a file, or an entry of a walked directory that cannot be used
/// (reported like an undecodable image, while the others are classified).
pub(super) enum Input {
    File(PathBuf),
    Unusable(PathBuf, String),
}

impl Input {
    /// The file or directory the input is about.
    pub(super) fn path(&self) -> &Path {
        match self {
            Self::File(p) | Self::Unusable(p, _) => p,
        }
    }
}

/// The inputs to classify: explicit files as given, directories walked recursively (sorted,
/// image extensions only). Each real directory is visited once, so symlink loops end; an
/// unreadable directory and a non-regular `*.png` (a FIFO, a device) become per-entry errors.
pub(super) fn collect_inputs(inputs: &[PathBuf]) -> Vec<Input> {
    let mut walker = Walker::default();
    for input in inputs {
        if input.is_dir() {
            walker.walk(input);
        } else {
            // Missing and non-regular files are reported per image, like undecodable ones.
            walker.out.push(Input::File(input.clone()));
        }
    }
    walker.out
}

#[derive(Default)]
struct Walker {
    visited: HashSet<PathBuf>,
    out: Vec<Input>,
}

impl Walker {
    fn walk(&mut self, dir: &Path) {
        match std::fs::canonicalize(dir) {
            Ok(real) => {
                if !self.visited.insert(real) {
                    return;
                }
            }
            Err(e) => return self.unusable(dir, format!("cannot resolve directory: {e}")),
        }
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) => return self.unusable(dir, format!("cannot read directory: {e}")),
        };
        let mut paths = Vec::new();
        for entry in entries {
            match entry {
                Ok(entry) => paths.push(entry.path()),
                // The entries read so far are still classified.
                Err(e) => self.unusable(dir, format!("cannot read a directory entry: {e}")),
            }
        }
        paths.sort();
        for path in paths {
            match std::fs::metadata(&path) {
                Ok(m) if m.is_dir() => self.walk(&path),
                _ if !has_image_extension(&path) => {}
                Ok(m) if !m.is_file() => {
                    self.unusable(&path, "not a regular file: skipped".to_string())
                }
                // Regular files, and dangling links (reported when read).
                _ => self.out.push(Input::File(path)),
            }
        }
    }

    fn unusable(&mut self, path: &Path, why: String) {
        let message = format!("{}: {why}", path.display());
        self.out.push(Input::Unusable(path.to_path_buf(), message));
    }
}

fn has_image_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}
