//! What `ahp-predict` prints: the table (or one JSON object per image) on stdout, the errors of
//! failed images on stderr, and the progress bar.

use std::io::{IsTerminal, Write};
use std::path::Path;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use super::batch::Outcome;
use super::inputs::Input;

/// Show a progress bar from this many images on (and only on a terminal).
const PROGRESS_MIN_IMAGES: usize = 64;

/// The progress bar of `images` images on stderr: hidden when stderr is not a terminal or there
/// are fewer than [`PROGRESS_MIN_IMAGES`].
pub(super) fn progress_bar(images: usize) -> ProgressBar {
    if !(std::io::stderr().is_terminal() && images >= PROGRESS_MIN_IMAGES) {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(images as u64), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} images ({per_sec}, eta {eta})",
    ) {
        bar.set_style(style);
    }
    bar
}

/// One line of `--json` output for a classified image.
#[derive(Serialize)]
struct JsonPrediction<'a> {
    path: &'a Path,
    top: Vec<JsonLabel<'a>>,
    ms: f64,
}

/// One line of `--json` output for a failed image.
#[derive(Serialize)]
struct JsonFailure<'a> {
    path: &'a Path,
    error: &'a str,
}

/// One prediction of a [`JsonPrediction`].
#[derive(Serialize)]
struct JsonLabel<'a> {
    label: &'a str,
    prob: f32,
}

/// Writes the outcomes to `out` (a table, or JSON lines) and counts them.
pub(super) struct Report<W> {
    out: W,
    json: bool,
    /// Width of the table's IMAGE column.
    path_width: usize,
    /// Width of the table's LABEL column.
    label_width: usize,
    /// Images classified so far.
    pub(super) done: usize,
    /// Images that failed so far.
    pub(super) failed: usize,
}

impl<W: Write> Report<W> {
    /// A report of `files` classified among `labels`; `json` for JSON lines instead of a table.
    pub(super) fn new(out: W, json: bool, files: &[Input], labels: &[String]) -> Self {
        let path_width = files
            .iter()
            .map(|p| p.path().display().to_string().chars().count())
            .max()
            .unwrap_or(4)
            .clamp(4, 60);
        let label_width = labels
            .iter()
            .map(|l| l.chars().count())
            .max()
            .unwrap_or(5)
            .clamp(5, 40);
        Self {
            out,
            json,
            path_width,
            label_width,
            done: 0,
            failed: 0,
        }
    }

    /// The table's header line (nothing with `--json`).
    pub(super) fn header(&mut self) -> std::io::Result<()> {
        if self.json {
            return Ok(());
        }
        let (path_width, label_width) = (self.path_width, self.label_width);
        writeln!(
            self.out,
            "{:<path_width$}  {:>4}  {:<label_width$}  {:>8}",
            "IMAGE", "RANK", "LABEL", "PROB"
        )
    }

    /// Reports one outcome: its predictions, or its error.
    pub(super) fn outcome(&mut self, outcome: &Outcome) -> anyhow::Result<()> {
        match &outcome.result {
            Ok(top) => {
                self.done += 1;
                self.prediction(&outcome.path, top, outcome.ms)
            }
            Err(e) => {
                self.failed += 1;
                self.failure(&outcome.path, e)
            }
        }
    }

    /// A classified image: one table row per prediction, or one JSON line.
    fn prediction(&mut self, path: &Path, top: &[(String, f32)], ms: f64) -> anyhow::Result<()> {
        if self.json {
            let line = JsonPrediction {
                path,
                top: top
                    .iter()
                    .map(|(label, prob)| JsonLabel { label, prob: *prob })
                    .collect(),
                ms,
            };
            writeln!(self.out, "{}", serde_json::to_string(&line)?)?;
            return Ok(());
        }
        let (path_width, label_width) = (self.path_width, self.label_width);
        for (rank, (label, prob)) in top.iter().enumerate() {
            let path = if rank == 0 {
                path.display().to_string()
            } else {
                String::new()
            };
            writeln!(
                self.out,
                "{path:<path_width$}  {:>4}  {label:<label_width$}  {prob:>8.4}",
                rank + 1
            )?;
        }
        Ok(())
    }

    /// A failed image: its error on stderr (and, with `--json`, as a JSON line).
    fn failure(&mut self, path: &Path, error: &str) -> anyhow::Result<()> {
        eprintln!("ahp-predict: error: {error}");
        if self.json {
            let line = JsonFailure { path, error };
            writeln!(self.out, "{}", serde_json::to_string(&line)?)?;
        }
        Ok(())
    }

    /// Flushes what was written (after each batch).
    pub(super) fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}
