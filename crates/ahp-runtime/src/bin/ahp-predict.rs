//! `ahp-predict`: classify image files with an exported ahp model on ONNX Runtime.
//!
//! Prints a table (or, with `--json`, one JSON object per image) on stdout; errors, the progress
//! bar and the throughput summary go to stderr. Unreadable or undecodable files are reported and
//! counted while the others are processed; the exit code is 1 if any file failed, 2 if the model
//! could not be loaded.

use std::collections::HashSet;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use ahp_runtime::cli::ImageLimitArgs;
use ahp_runtime::preprocess::ImageLimits;
use ahp_runtime::{Classifier, ExecutionProvider};
use clap::Parser;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rayon::prelude::*;
use serde::Serialize;

/// Image extensions picked up when walking directories (explicitly named files are always
/// tried).
const IMAGE_EXTENSIONS: [&str; 8] = ["png", "jpg", "jpeg", "gif", "bmp", "webp", "tif", "tiff"];

/// Show a progress bar from this many images on (and only on a terminal).
const PROGRESS_MIN_IMAGES: usize = 64;

/// Classify images with an exported ahp model (ONNX) on ONNX Runtime.
///
/// ONNX Runtime is loaded from ORT_DYLIB_PATH or from the directory scripts/fetch-onnxruntime.sh
/// fills (${AHP_ORT_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ahp/onnxruntime}).
#[derive(Debug, Parser)]
#[command(name = "ahp-predict", version)]
struct Args {
    /// The exported model (.onnx, with ahp.* metadata).
    model: PathBuf,
    /// Image files and/or directories (searched recursively for image files).
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// Predictions per image.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    top_k: u32,
    /// One JSON object per image on stdout: {"path", "top": [{"label", "prob"}], "ms"}
    /// (failed images: {"path", "error"}).
    #[arg(long)]
    json: bool,
    /// Preferred execution provider; falls back to the next ones (tensorrt → cuda → cpu)
    /// unless --strict. Default: the best compiled in.
    #[arg(long, value_parser = parse_device)]
    device: Option<ExecutionProvider>,
    /// Fail instead of falling back to another execution provider.
    #[arg(long)]
    strict: bool,
    /// Images per model run.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..))]
    batch_size: u32,
    /// Also print informational messages (library loaded, provider chosen).
    #[arg(short, long)]
    verbose: bool,
    /// ONNX Runtime intra-op threads (default: ONNX Runtime's choice).
    #[arg(long)]
    threads: Option<usize>,
    #[command(flatten)]
    limits: ImageLimitArgs,
}

fn parse_device(s: &str) -> Result<ExecutionProvider, String> {
    s.parse()
}

/// One input to classify: a file, or an entry of a walked directory that cannot be used
/// (reported like an undecodable image, while the others are classified).
enum Input {
    File(PathBuf),
    Unusable(PathBuf, String),
}

impl Input {
    fn path(&self) -> &Path {
        match self {
            Self::File(p) | Self::Unusable(p, _) => p,
        }
    }
}

/// The inputs to classify: explicit files as given, directories walked recursively (sorted,
/// image extensions only). Each real directory is visited once, so symlink loops end; an
/// unreadable directory and a non-regular `*.png` (a FIFO, a device) become per-entry errors.
fn collect_inputs(inputs: &[PathBuf]) -> Vec<Input> {
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

#[derive(Serialize)]
struct JsonLabel<'a> {
    label: &'a str,
    prob: f32,
}

struct Outcome {
    path: PathBuf,
    result: Result<Vec<(String, f32)>, String>,
    ms: f64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    ahp_runtime::init_stderr_logger(if args.verbose {
        log::LevelFilter::Info
    } else {
        log::LevelFilter::Warn
    });
    match run(&args) {
        Ok(0) => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(1),
        Err(e) => {
            eprintln!("ahp-predict: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Returns the number of failed images.
fn run(args: &Args) -> anyhow::Result<usize> {
    let files = collect_inputs(&args.inputs);
    if files.is_empty() {
        anyhow::bail!(
            "no image files ({}) in the given inputs; name other files explicitly",
            IMAGE_EXTENSIONS.join(", ")
        );
    }

    let load_start = Instant::now();
    let mut builder = Classifier::builder().strict(args.strict);
    if let Some(device) = args.device {
        builder = builder.device(device);
    }
    if let Some(threads) = args.threads {
        builder = builder.intra_threads(threads);
    }
    let classifier = builder.commit_from_file(&args.model)?;
    let load_s = load_start.elapsed().as_secs_f64();
    eprintln!(
        "ahp-predict: {} ({} classes) on the {} execution provider, loaded in {:.2} s",
        args.model.display(),
        classifier.labels().len(),
        classifier.execution_provider(),
        load_s
    );

    let progress = if std::io::stderr().is_terminal() && files.len() >= PROGRESS_MIN_IMAGES {
        let bar =
            ProgressBar::with_draw_target(Some(files.len() as u64), ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} images ({per_sec}, eta {eta})",
        ) {
            bar.set_style(style);
        }
        bar
    } else {
        ProgressBar::hidden()
    };

    let top_k = args.top_k as usize;
    let limits = args.limits.limits();
    let path_width = files
        .iter()
        .map(|p| p.path().display().to_string().chars().count())
        .max()
        .unwrap_or(4)
        .clamp(4, 60);
    let label_width = classifier
        .labels()
        .iter()
        .map(|l| l.chars().count())
        .max()
        .unwrap_or(5)
        .clamp(5, 40);
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if !args.json {
        progress.suspend(|| {
            writeln!(
                out,
                "{:<path_width$}  {:>4}  {:<label_width$}  {:>8}",
                "IMAGE", "RANK", "LABEL", "PROB"
            )
        })?;
    }

    let start = Instant::now();
    let mut failed = 0usize;
    let mut done = 0usize;
    for chunk in files.chunks(args.batch_size as usize) {
        let outcomes = classify_chunk(&classifier, chunk, top_k, &limits);
        for o in outcomes {
            progress.suspend(|| -> anyhow::Result<()> {
                match &o.result {
                    Ok(top) => {
                        done += 1;
                        if args.json {
                            let line = JsonPrediction {
                                path: &o.path,
                                top: top
                                    .iter()
                                    .map(|(label, prob)| JsonLabel { label, prob: *prob })
                                    .collect(),
                                ms: o.ms,
                            };
                            writeln!(out, "{}", serde_json::to_string(&line)?)?;
                        } else {
                            for (rank, (label, prob)) in top.iter().enumerate() {
                                let path = if rank == 0 {
                                    o.path.display().to_string()
                                } else {
                                    String::new()
                                };
                                writeln!(
                                    out,
                                    "{path:<path_width$}  {:>4}  {label:<label_width$}  {prob:>8.4}",
                                    rank + 1
                                )?;
                            }
                        }
                    }
                    Err(e) => {
                        failed += 1;
                        eprintln!("ahp-predict: error: {e}");
                        if args.json {
                            let line = JsonFailure {
                                path: &o.path,
                                error: e,
                            };
                            writeln!(out, "{}", serde_json::to_string(&line)?)?;
                        }
                    }
                }
                Ok(())
            })?;
            progress.inc(1);
        }
        out.flush()?;
    }
    progress.finish_and_clear();
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "ahp-predict: {done} image(s) classified, {failed} failed, in {secs:.2} s ({:.1} images/s, batch size {}, {})",
        done as f64 / secs.max(1e-9),
        args.batch_size,
        classifier.execution_provider()
    );
    Ok(failed)
}

/// Decodes and preprocesses a chunk of files in parallel, runs the good ones as one batch and
/// returns one outcome per file, in order. `ms` per image: its own decode + preprocess time plus
/// its share of the batch's model run.
fn classify_chunk(
    classifier: &Classifier,
    chunk: &[Input],
    top_k: usize,
    limits: &ImageLimits,
) -> Vec<Outcome> {
    let cfg = classifier.preprocess_config();
    let prepared: Vec<(Result<Vec<f32>, String>, f64)> = chunk
        .par_iter()
        .map(|input| {
            let t = Instant::now();
            let r = match input {
                Input::File(path) => {
                    ahp_runtime::preprocess::preprocess_file_with(path, cfg, limits)
                        .map(|p| p.data)
                        .map_err(|e| e.to_string())
                }
                Input::Unusable(_, why) => Err(why.clone()),
            };
            (r, t.elapsed().as_secs_f64() * 1e3)
        })
        .collect();
    let good: Vec<&Vec<f32>> = prepared
        .iter()
        .filter_map(|(r, _)| r.as_ref().ok())
        .collect();
    let n = good.len();
    let t = Instant::now();
    let batch_result = if n == 0 {
        Ok(Vec::new())
    } else {
        let pixels: Vec<f32> = good.iter().flat_map(|p| p.iter().copied()).collect();
        classifier
            .classify_pixels(&pixels, n, top_k)
            .map_err(|e| e.to_string())
    };
    let run_share = t.elapsed().as_secs_f64() * 1e3 / n.max(1) as f64;
    let mut predictions = match batch_result {
        Ok(p) => p.into_iter().map(Ok).collect::<Vec<_>>(),
        Err(e) => vec![Err(e); n],
    }
    .into_iter();
    chunk
        .iter()
        .map(Input::path)
        .zip(prepared)
        .map(|(path, (r, ms))| match r {
            Ok(_) => Outcome {
                path: path.to_path_buf(),
                result: predictions.next().unwrap_or_else(|| {
                    Err(format!(
                        "{}: the model run returned fewer predictions than images",
                        path.display()
                    ))
                }),
                ms: ms + run_share,
            },
            Err(e) => Outcome {
                path: path.to_path_buf(),
                result: Err(e),
                ms,
            },
        })
        .collect()
}
