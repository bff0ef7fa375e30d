//! `ahp classify`: zero-shot classification of images with any Hugging Face CLIP checkpoint
//! (candle; no training, no export).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use ahp_model::{pixel_batch, LoadedClip, Prediction, ZeroShotClassifier, DEFAULT_TEMPLATE};
use ahp_spec::preprocess::{preprocess_file_with, ImageLimits, IMAGE_EXTENSIONS};
use anyhow::{bail, Context, Result};
use candle_core::Device;

/// Options of `ahp classify`.
#[derive(clap::Args)]
pub struct ClassifyArgs {
    /// Checkpoint directory or Hugging Face repo id present in the local cache.
    #[arg(long)]
    clip: String,
    /// Comma-separated class labels.
    #[arg(long, value_delimiter = ',', required = true)]
    classes: Vec<String>,
    /// Prompt template; `{}` is replaced by the label.
    #[arg(long, default_value = DEFAULT_TEMPLATE)]
    template: String,
    /// Labels shown per image.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    top_k: u32,
    /// Images per forward pass.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..))]
    batch_size: u32,
    /// One JSON object per image instead of a table.
    #[arg(long)]
    json: bool,
    /// Image files or directories (searched non-recursively, sorted).
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    #[command(flatten)]
    limits: ahp_runtime::cli::ImageLimitArgs,
}

/// The images of a directory (by extension, sorted); an error when there are none.
fn images_in(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("{}: cannot list directory", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && p.extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
        })
        .collect();
    found.sort();
    if found.is_empty() {
        bail!(
            "{}: no images ({}) in this directory",
            dir.display(),
            IMAGE_EXTENSIONS.join(", ")
        );
    }
    Ok(found)
}

fn expand_inputs(inputs: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for input in inputs {
        if input.is_dir() {
            files.extend(images_in(input)?);
        } else {
            files.push(input.clone());
        }
    }
    Ok(files)
}

/// The trimmed labels: at least one, none empty, none twice.
fn checked_labels(classes: &[String]) -> Result<Vec<String>> {
    ahp_spec::run::check_labels(classes).map_err(|m| anyhow::anyhow!("--classes: {m}"))
}

/// How the results are printed: a table, or one JSON object per image.
struct Printer {
    json: bool,
}

impl Printer {
    fn error(&self, path: &Path, e: &dyn std::fmt::Display) {
        if self.json {
            println!(
                "{}",
                serde_json::json!({"path": path.display().to_string(), "error": e.to_string()})
            );
        } else {
            eprintln!("error: {e}");
        }
    }

    fn prediction(&self, path: &Path, pred: &Prediction, ms: f64) {
        if self.json {
            let top: Vec<_> = pred
                .top
                .iter()
                .map(|(l, p)| serde_json::json!({"label": l, "prob": p}))
                .collect();
            println!(
                "{}",
                serde_json::json!({"path": path.display().to_string(), "top": top, "ms": ms})
            );
        } else {
            let top: Vec<String> = pred
                .top
                .iter()
                .map(|(l, p)| format!("{l} {p:.3}"))
                .collect();
            println!("{:<40} {}", path.display().to_string(), top.join("  "));
        }
    }
}

/// The model and classifier of a run.
struct Session {
    clip: LoadedClip,
    zs: ZeroShotClassifier,
    limits: ImageLimits,
    top_k: usize,
    printer: Printer,
}

impl Session {
    /// Classifies one batch of files; returns (classified, failed).
    fn batch(&self, chunk: &[PathBuf]) -> Result<(usize, usize)> {
        let device = Device::Cpu;
        let mut ok_paths: Vec<&Path> = Vec::new();
        let mut images = Vec::new();
        let mut failed = 0;
        for path in chunk {
            match preprocess_file_with(path, &self.clip.preprocess, &self.limits) {
                Ok(img) => {
                    ok_paths.push(path);
                    images.push(img);
                }
                Err(e) => {
                    failed += 1;
                    self.printer.error(path, &e);
                }
            }
        }
        if images.is_empty() {
            return Ok((0, failed));
        }
        let tb = Instant::now();
        let pixels = pixel_batch(&images, &device)?;
        let logits = self.zs.logits_for_pixels(&self.clip.model, &pixels, &[])?;
        let preds = self.zs.predict(&logits, self.top_k)?;
        let ms = tb.elapsed().as_secs_f64() * 1e3 / images.len() as f64;
        for (path, pred) in ok_paths.iter().zip(&preds) {
            self.printer.prediction(path, pred, ms);
        }
        Ok((preds.len(), failed))
    }
}

fn load(args: &ClassifyArgs) -> Result<(Session, f64)> {
    let t0 = Instant::now();
    let clip = LoadedClip::load(&args.clip, &Device::Cpu)?;
    let labels = checked_labels(&args.classes)?;
    ahp_spec::run::check_templates(std::slice::from_ref(&args.template))
        .map_err(|m| anyhow::anyhow!("--template: {m}"))?;
    let zs = ZeroShotClassifier::new(&clip.model, &clip.tokenizer, &labels, &args.template)?;
    let load_ms = t0.elapsed().as_secs_f64() * 1e3;
    let session = Session {
        clip,
        zs,
        limits: args.limits.limits(),
        top_k: args.top_k as usize,
        printer: Printer { json: args.json },
    };
    Ok((session, load_ms))
}

/// Classifies every input; fails when any could not be read.
pub fn run(args: ClassifyArgs) -> Result<ExitCode> {
    let (session, load_ms) = load(&args)?;
    let files = expand_inputs(&args.inputs)?;
    if !args.json {
        println!(
            "model {} ({} classes, template \"{}\"), loaded in {load_ms:.0} ms",
            session.clip.checkpoint.dir.display(),
            session.zs.labels().len(),
            args.template
        );
    }
    let t1 = Instant::now();
    let (mut done, mut failed) = (0usize, 0usize);
    for chunk in files.chunks(args.batch_size as usize) {
        let (d, f) = session.batch(chunk)?;
        done += d;
        failed += f;
    }
    if !args.json {
        println!(
            "{done} images classified, {failed} failed, {:.1} images/s",
            done as f64 / t1.elapsed().as_secs_f64().max(1e-9)
        );
    }
    if failed > 0 {
        bail!("{failed} of {} inputs could not be read", files.len());
    }
    Ok(ExitCode::SUCCESS)
}
