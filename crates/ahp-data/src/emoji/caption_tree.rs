//! Reading a pretraining tree back (`ahp-data emoji --pretraining`): the image–caption pairs
//! the embedded CLIP is pretrained on. `ROOT/captions.jsonl` names, per codepoint, its
//! emojibase label and tags and the designers that draw it; each drawing is
//! `ROOT/<designer>/<codepoint>.png`.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::captions::is_codepoint;
use super::pretraining::CAPTIONS_FILE;
use crate::error::{DataError, Result};

/// The largest `captions.jsonl` read (the full pretraining set's is ~0.6 MB).
const MAX_CAPTIONS_BYTES: u64 = 64 << 20;

/// One line of `captions.jsonl`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    codepoint: String,
    label: String,
    tags: Vec<String>,
    designers: Vec<String>,
}

/// One emoji concept with its caption words and its drawings.
#[derive(Debug, Clone, PartialEq)]
pub struct CaptionedEmoji {
    /// Normalized codepoint (lowercase hex, `-` separated, no `fe0f`).
    pub codepoint: String,
    /// emojibase label ("dog", "red apple").
    pub label: String,
    /// emojibase tags.
    pub tags: Vec<String>,
    /// `(designer, image path)` of every drawing, in the file's designer order.
    pub images: Vec<(String, PathBuf)>,
}

/// A pretraining tree, read and checked.
#[derive(Debug, Clone)]
pub struct CaptionTree {
    /// The tree's root.
    pub root: PathBuf,
    /// Every concept of `captions.jsonl`, in file order.
    pub emoji: Vec<CaptionedEmoji>,
    /// The designers (directories) that occur, sorted.
    pub designers: Vec<String>,
}

impl CaptionTree {
    /// Reads `root/captions.jsonl` and checks that every drawing it names exists; errors name
    /// the file and line.
    pub fn load(root: &Path) -> Result<Self> {
        if !root.is_dir() {
            return Err(DataError::RootNotFound {
                path: root.to_path_buf(),
            });
        }
        let path = root.join(CAPTIONS_FILE);
        let bytes = ahp_spec::files::read_regular(&path, MAX_CAPTIONS_BYTES)?;
        let text = std::str::from_utf8(&bytes).map_err(|e| DataError::Image {
            path: path.clone(),
            message: format!("not UTF-8: {e}"),
        })?;
        let mut emoji: Vec<CaptionedEmoji> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (i, raw) in text.lines().enumerate() {
            if raw.trim().is_empty() {
                continue;
            }
            let at_line = |m: String| DataError::Image {
                path: path.clone(),
                message: format!("line {}: {m}", i + 1),
            };
            let e = concept(root, raw).map_err(at_line)?;
            if !seen.insert(e.codepoint.clone()) {
                return Err(at_line(format!(
                    "{}: a second line for this codepoint",
                    e.codepoint
                )));
            }
            emoji.push(e);
        }
        if emoji.is_empty() {
            return Err(DataError::Image {
                path,
                message: "no captions".into(),
            });
        }
        let mut designers: Vec<String> = emoji
            .iter()
            .flat_map(|e| e.images.iter().map(|(d, _)| d.clone()))
            .collect();
        designers.sort();
        designers.dedup();
        Ok(Self {
            root: root.to_path_buf(),
            emoji,
            designers,
        })
    }

    /// Number of drawings.
    pub fn images(&self) -> usize {
        self.emoji.iter().map(|e| e.images.len()).sum()
    }

    /// The concept of a codepoint (normalized), if the tree has it.
    pub fn get(&self, codepoint: &str) -> Option<&CaptionedEmoji> {
        self.emoji.iter().find(|e| e.codepoint == codepoint)
    }
}

/// One parsed and checked line.
fn concept(root: &Path, raw: &str) -> std::result::Result<CaptionedEmoji, String> {
    let line: Line = serde_json::from_str(raw).map_err(|e| e.to_string())?;
    if !is_codepoint(&line.codepoint) {
        return Err(format!("`{}` is not a codepoint", line.codepoint));
    }
    if line.label.trim().is_empty() {
        return Err(format!("{}: empty label", line.codepoint));
    }
    if line.designers.is_empty() {
        return Err(format!("{}: no designer", line.codepoint));
    }
    let mut images = Vec::with_capacity(line.designers.len());
    for (k, d) in line.designers.iter().enumerate() {
        if line.designers[..k].contains(d) {
            return Err(format!("{}: designer `{d}` is named twice", line.codepoint));
        }
    }
    for d in &line.designers {
        if !is_plain_name(d) {
            return Err(format!("{}: `{d}` is not a designer name", line.codepoint));
        }
        let image = root.join(d).join(format!("{}.png", line.codepoint));
        if !image.is_file() {
            return Err(format!("{} is missing", image.display()));
        }
        images.push((d.clone(), image));
    }
    Ok(CaptionedEmoji {
        codepoint: line.codepoint,
        label: line.label,
        tags: line.tags,
        images,
    })
}

/// A single, ordinary path component (no separator, no `.`/`..`, not hidden).
fn is_plain_name(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('.')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(lines: &str, files: &[&str]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(dir.path().join(CAPTIONS_FILE), lines).unwrap_or_else(|e| panic!("{e}"));
        for f in files {
            let p = dir.path().join(f);
            std::fs::create_dir_all(p.parent().unwrap_or(dir.path()))
                .unwrap_or_else(|e| panic!("{e}"));
            std::fs::write(p, b"png").unwrap_or_else(|e| panic!("{e}"));
        }
        dir
    }

    #[test]
    fn reads_concepts_and_designers() -> Result<()> {
        let d = tree(
            "{\"codepoint\":\"1f415\",\"label\":\"dog\",\"tags\":[\"pet\"],\"designers\":[\"noto\",\"twemoji\"]}\n\
             {\"codepoint\":\"1f355\",\"label\":\"pizza\",\"tags\":[],\"designers\":[\"noto\"]}\n",
            &["noto/1f415.png", "twemoji/1f415.png", "noto/1f355.png"],
        );
        let t = CaptionTree::load(d.path())?;
        assert_eq!(t.emoji.len(), 2);
        assert_eq!(t.images(), 3);
        assert_eq!(t.designers, ["noto", "twemoji"]);
        assert_eq!(t.get("1f355").map(|e| e.label.as_str()), Some("pizza"));
        Ok(())
    }

    #[test]
    fn a_codepoint_on_two_lines_is_refused() {
        let line =
            "{\"codepoint\":\"1f415\",\"label\":\"dog\",\"tags\":[],\"designers\":[\"noto\"]}\n";
        let d = tree(&line.repeat(2), &["noto/1f415.png"]);
        let e = CaptionTree::load(d.path())
            .map(|_| ())
            .err()
            .map(|e| e.to_string());
        let e = e.unwrap_or_default();
        assert!(e.contains("line 2") && e.contains("second line"), "{e}");
    }

    #[test]
    fn errors_name_the_line_and_the_problem() {
        let cases = [
            (
                "{\"codepoint\":\"1f415\",\"label\":\"dog\",\"tags\":[],\"designers\":[\"noto\"]}",
                "line 1: ",
                "missing",
            ),
            (
                "{\"codepoint\":\"zz\",\"label\":\"dog\",\"tags\":[],\"designers\":[\"noto\"]}",
                "line 1: ",
                "not a codepoint",
            ),
            (
                "{\"codepoint\":\"1f415\",\"label\":\"dog\",\"tags\":[],\"designers\":[\"../x\"]}",
                "line 1: ",
                "not a designer",
            ),
            (
                "{\"codepoint\":\"1f415\",\"label\":\"\",\"tags\":[],\"designers\":[\"noto\"]}",
                "line 1: ",
                "empty label",
            ),
            ("not json", "line 1: ", "expected"),
            ("", "captions.jsonl", "no captions"),
            ("{\"codepoint\":\"1f415\",\"label\":\"dog\",\"tags\":[],\"designers\":[\"noto\",\"noto\"]}", "line 1: ", "named twice"),
        ];
        for (text, place, what) in cases {
            let d = tree(text, &[]);
            let e = CaptionTree::load(d.path())
                .map(|_| ())
                .err()
                .map(|e| e.to_string());
            let e = e.unwrap_or_default();
            assert!(e.contains(place) && e.contains(what), "{text}: {e}");
        }
    }
}
