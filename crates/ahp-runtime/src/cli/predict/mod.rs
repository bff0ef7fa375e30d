//! `ahp-predict` / `ahp predict`: classify image files with an exported ahp model on ONNX
//! Runtime.
//!
//! Prints a table (or, with `--json`, one JSON object per image) on stdout; errors, the progress
//! bar and the throughput summary go to stderr. Unreadable or undecodable files are reported and
//! counted while the others are processed; the exit code is 1 if any file failed, 2 if the model
//! could not be loaded.

mod batch;
mod inputs;
mod report;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use ahp_spec::preprocess::IMAGE_EXTENSIONS;

use super::{parse_device, ImageLimitArgs};
use crate::{Classifier, ExecutionProvider};
use inputs::Input;
use report::Report;

/// Classify images with an exported ahp model (ONNX) on ONNX Runtime.
///
/// ONNX Runtime is loaded from ORT_DYLIB_PATH or from the directory scripts/fetch-onnxruntime.sh
/// fills (${AHP_ORT_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ahp/onnxruntime}).
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  ahp-predict model.onnx photos/ more.jpg
  ahp-predict model.onnx photos/ --top-k 3 --json > predictions.jsonl
  ahp-predict model.onnx photos/ --device cuda --strict --batch-size 32")]
pub struct PredictArgs {
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

/// Runs `ahp-predict` with these arguments: exit code 0 when every image was classified, 1 when
/// some failed (each reported), 2 on an error (printed).
pub fn main(args: PredictArgs) -> ExitCode {
    super::init_logger(args.verbose);
    ahp_spec::exit::finish(run(&args), 2)
}

/// Loads the model and classifies the inputs.
fn run(args: &PredictArgs) -> anyhow::Result<ExitCode> {
    let files = collect_inputs(&args.inputs)?;
    let classifier = load(args)?;
    let failed = classify_all(args, &classifier, &files)?;
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The inputs to classify; none is an error.
fn collect_inputs(inputs: &[PathBuf]) -> anyhow::Result<Vec<Input>> {
    let files = inputs::collect_inputs(inputs);
    if files.is_empty() {
        anyhow::bail!(
            "no image files ({}) in the given inputs; name other files explicitly",
            IMAGE_EXTENSIONS.join(", ")
        );
    }
    Ok(files)
}

/// Loads the model as the flags say, and says so on stderr.
fn load(args: &PredictArgs) -> anyhow::Result<Classifier> {
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
    Ok(classifier)
}

/// Classifies `files` a batch at a time, printing each outcome as it comes, then the summary;
/// returns the number of failed images.
fn classify_all(
    args: &PredictArgs,
    classifier: &Classifier,
    files: &[Input],
) -> anyhow::Result<usize> {
    let progress = report::progress_bar(files.len());
    let top_k = args.top_k as usize;
    let limits = args.limits.limits();
    let stdout = std::io::stdout();
    let mut report = Report::new(stdout.lock(), args.json, files, classifier.labels());
    progress.suspend(|| report.header())?;

    let start = Instant::now();
    for chunk in files.chunks(args.batch_size as usize) {
        for outcome in batch::classify_chunk(classifier, chunk, top_k, &limits) {
            progress.suspend(|| report.outcome(&outcome))?;
            progress.inc(1);
        }
        report.flush()?;
    }
    progress.finish_and_clear();
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "ahp-predict: {} image(s) classified, {} failed, in {secs:.2} s ({:.1} images/s, batch size {}, {})",
        report.done,
        report.failed,
        report.done as f64 / secs.max(1e-9),
        args.batch_size,
        classifier.execution_provider()
    );
    Ok(report.failed)
}
