//! `ahp demo`: the whole job on the embedded default, with nothing to download.
//!
//! 1. renders synthetic multi-domain data in DomainBed layout (`ahp-data synth`);
//! 2. evaluates the embedded CLIP zero-shot and trains it leave-one-domain-out with AHP
//!    (`ahp-train`; its report compares zero-shot and purified accuracy per domain and split);
//! 3. folds the adapters into plain weights and writes a validated ONNX model (`ahp-export`);
//! 4. classifies the unseen target domain's images with ONNX Runtime (`ahp-predict`'s library).

use std::path::{Path, PathBuf};
use std::time::Instant;

use ahp_data::{Shape, Style, SynthConfig};
use ahp_export::{export, ExportOptions, Prepared, Source};
use ahp_runtime::{Classifier, ExecutionProvider};
use ahp_spec::train_config::TrainArgs;
use ahp_spec::{ClipConfig, TrainConfig};
use ahp_train::{train, TrainOptions};
use anyhow::{bail, Context, Result};

/// Options of `ahp demo`.
#[derive(clap::Args)]
pub struct DemoArgs {
    /// Base CLIP checkpoint (directory or cached repo id); the default is the embedded model,
    /// pretrained on the synthetic domains by `ahp-pretrain`.
    #[arg(long, default_value = "models/ahp-synth-clip")]
    clip: String,
    /// Where the data, the run directory and the ONNX model go.
    #[arg(long, default_value = "demo-out")]
    out: PathBuf,
    /// The unseen domain (photo, sketch, cartoon, painting); the others are the sources.
    #[arg(long, default_value = "painting")]
    target_domain: String,
    /// Images rendered per class and domain.
    #[arg(long, default_value_t = 24)]
    per_class: usize,
    /// Seed of the data (different from the pretraining images); also the training and split
    /// seed unless --seed / --split-seed are given.
    #[arg(long, default_value_t = DEMO_SEED)]
    data_seed: u64,
    /// No progress bars.
    #[arg(long)]
    quiet: bool,
    /// The training settings (the defaults of `ahp-train`; the demo pins only the seeds).
    #[command(flatten)]
    train: TrainArgs,
}

/// The demo's data seed (the embedded model was pretrained on other seeds' images).
pub const DEMO_SEED: u64 = 7;

impl DemoArgs {
    /// The demo's training configuration: `ahp-train`'s defaults, `--config`, the flags, and
    /// the seeds pinned to the data seed unless given.
    pub fn train_config(&self) -> Result<TrainConfig> {
        let mut train = self.train.clone();
        train.pin_seed(self.data_seed);
        train.pin_split_seed(self.data_seed);
        Ok(train.resolve()?)
    }
}

/// The pretrained model's class names: the words of its vocabulary that name a shape, in the
/// generator's class order.
fn classes_of(checkpoint: &Path) -> Result<usize> {
    let path = checkpoint.join("tokenizer.json");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("{}: cannot read the tokenizer", path.display()))?;
    let known = ahp_data::synth::classes_named_in(&text);
    if known < 2 {
        bail!(
            "{}: the demo needs a checkpoint whose vocabulary names the synthetic classes ({}); \
             found {known}",
            path.display(),
            Shape::ALL.map(Shape::name).join(", ")
        );
    }
    Ok(known)
}

/// Runs the demo: data, training, export, ONNX Runtime, summary.
pub fn run(a: DemoArgs) -> Result<()> {
    let t0 = Instant::now();
    let checkpoint =
        ahp_model::Checkpoint::resolve(&a.clip).with_context(|| format!("--clip {}", a.clip))?;
    let config: &ClipConfig = &checkpoint.config;
    let size = config.vision_config.image_size as u32;
    let classes = classes_of(&checkpoint.dir)?;
    Style::parse(&a.target_domain).context("--target-domain")?;
    let config = a.train_config()?;
    let data = make_data(&a, classes, size)?;
    let run_dir = a.out.join("run");
    let (zs, purified) = train_run(&a, &data, &run_dir, config)?;
    let onnx_path = a.out.join("model.onnx");
    let bytes = export_run(&run_dir, &onnx_path)?;
    let ort_acc = predict_target(&a, &data, &onnx_path)?;
    println!("\n== summary");
    if let (Some(z), Some(p)) = (zs, purified) {
        println!(
            "unseen domain `{}`: zero-shot {:.2}% -> purified {:.2}% (candle), {:.2}% (exported ONNX on ONNX Runtime)",
            a.target_domain,
            100.0 * z,
            100.0 * p,
            100.0 * ort_acc
        );
    }
    println!("artifacts:");
    println!("  data          {}", data.display());
    println!(
        "  run directory {} (adapter.safetensors, run.json, metrics.jsonl, report.md)",
        run_dir.display()
    );
    println!(
        "  ONNX model    {} ({:.1} MB; try it in the browser page web/ or with ahp-serve)",
        onnx_path.display(),
        bytes as f64 / 1e6
    );
    println!("done in {:.0} s", t0.elapsed().as_secs_f64());
    Ok(())
}

/// Step 1: renders the synthetic domains under `out/data`.
fn make_data(a: &DemoArgs, classes: usize, size: u32) -> Result<PathBuf> {
    let data = a.out.join("data");
    let synth = ahp_data::synth::generate(
        &SynthConfig {
            seed: a.data_seed,
            classes,
            domains: Style::ALL.to_vec(),
            per_class: a.per_class,
            size,
        },
        &data,
    )?;
    println!("== 1/4 synthetic data (DomainBed layout)\n{synth}\n");
    Ok(data)
}

/// Step 2: zero-shot evaluation and leave-one-domain-out purification training into a fresh
/// `run_dir`. Returns the target accuracy zero-shot and purified.
fn train_run(
    a: &DemoArgs,
    data: &Path,
    run_dir: &Path,
    config: TrainConfig,
) -> Result<(Option<f64>, Option<f64>)> {
    println!(
        "== 2/4 ahp-train: target domain `{}` held out, sources {}",
        a.target_domain,
        Style::ALL
            .iter()
            .map(|s| s.name())
            .filter(|s| *s != a.target_domain)
            .collect::<Vec<_>>()
            .join(", ")
    );
    if run_dir.exists() {
        std::fs::remove_dir_all(run_dir)
            .with_context(|| format!("{}: cannot remove the previous run", run_dir.display()))?;
    }
    let summary = train(&TrainOptions {
        progress: !a.quiet,
        ..TrainOptions::new(
            &a.clip,
            data,
            std::slice::from_ref(&a.target_domain),
            run_dir,
            config,
        )
    })?;
    let acc = |rows: &[ahp_train::eval::DomainAccuracy]| {
        rows.iter()
            .find(|r| r.split == "target")
            .map(|r| r.correct as f64 / r.images.max(1) as f64)
    };
    println!("{}", summary.report);
    println!(
        "kept step {} (source-val {:.2}%), {:.0} train images/s\n",
        summary.best_step,
        100.0 * summary.best_source_val_acc,
        summary.images_per_sec
    );
    Ok((acc(&summary.zero_shot), acc(&summary.trained)))
}

/// Step 3: folds the run and writes the validated ONNX model; returns its size in bytes.
fn export_run(run_dir: &Path, onnx_path: &Path) -> Result<u64> {
    println!("== 3/4 ahp-export: fold HA-LoRA and gates into plain weights, write ONNX");
    let prepared = Prepared::load(&Source::Run {
        run_dir: run_dir.to_path_buf(),
        base: None,
        verify_base_sha256: true,
    })?;
    let exported = export(&prepared, onnx_path, &ExportOptions::default())?;
    if let Some(v) = &exported.validation {
        for o in &v.outputs {
            println!(
                "  {} {:?}: max |onnx (tract) - candle adapted| = {:.2e} (tolerance {:.0e})",
                o.name, o.shape, o.max_abs_diff, o.tolerance
            );
        }
    }
    println!(
        "  graph: {} nodes, {} parameters (the same graph as a plain CLIP)",
        exported.graph.nodes, exported.graph.parameters
    );
    print_gates(&prepared.gates);
    println!();
    Ok(exported.bytes)
}

/// The folded gates per block, with the most suppressed and most amplified head.
fn print_gates(gates: &[Option<Vec<f32>>]) {
    println!("gates (H * softmax per block; 1 = untouched, < 1 = suppressed head):");
    for (i, g) in gates.iter().enumerate() {
        if let Some(g) = g {
            let values: Vec<String> = g.iter().map(|v| format!("{v:.2}")).collect();
            let (lo, hi) = g.iter().enumerate().fold((0, 0), |(lo, hi), (h, v)| {
                (
                    if *v < g[lo] { h } else { lo },
                    if *v > g[hi] { h } else { hi },
                )
            });
            println!(
                "  block {i:>2}: [{}]  most suppressed head {lo}, most amplified head {hi}",
                values.join(" ")
            );
        }
    }
}

/// The target domain's images with their class, class by class in the model's label order.
fn target_files(target_dir: &Path, labels: &[String]) -> Result<Vec<(String, PathBuf)>> {
    let mut files = Vec::new();
    for class in labels {
        let dir = target_dir.join(class);
        let mut in_class: Vec<PathBuf> = std::fs::read_dir(&dir)
            .with_context(|| format!("{}: cannot list", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        in_class.sort();
        files.extend(in_class.into_iter().map(|p| (class.clone(), p)));
    }
    Ok(files)
}

/// Step 4: classifies the unseen domain with ONNX Runtime, printing one image per class;
/// returns the top-1 accuracy.
fn predict_target(a: &DemoArgs, data: &Path, onnx_path: &Path) -> Result<f64> {
    println!(
        "== 4/4 ahp-predict (ONNX Runtime) on the unseen `{}` images",
        a.target_domain
    );
    let classifier = Classifier::builder()
        .device(ExecutionProvider::Cpu)
        .commit_from_file(onnx_path)
        .context("ONNX Runtime (scripts/fetch-onnxruntime.sh fetches it)")?;
    let labels = &classifier.info().labels;
    let files = target_files(&data.join(&a.target_domain), labels)?;
    // One example printed per class: its first image.
    let examples: Vec<&PathBuf> = labels
        .iter()
        .filter_map(|label| files.iter().find(|(l, _)| l == label).map(|(_, p)| p))
        .collect();
    let t_predict = Instant::now();
    let (mut correct, mut shown) = (0usize, 0usize);
    for chunk in files.chunks(32) {
        let images = chunk
            .iter()
            .map(|(_, p)| ahp_runtime::preprocess::load_image(p))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let tops = classifier.classify_batch(&images, 2)?;
        for ((label, path), top) in chunk.iter().zip(&tops) {
            let hit = top.first().is_some_and(|(l, _)| l == label);
            correct += usize::from(hit);
            if examples.contains(&path) {
                shown += 1;
                let rendered: Vec<String> =
                    top.iter().map(|(l, p)| format!("{l} {p:.3}")).collect();
                println!(
                    "  {:<44} {}  {}",
                    path.strip_prefix(&a.out).unwrap_or(path).display(),
                    rendered.join("  "),
                    if hit { "ok" } else { "wrong" }
                );
            }
        }
    }
    let ort_acc = correct as f64 / files.len().max(1) as f64;
    println!(
        "  ... {} images ({} shown), top-1 {:.2}% with ONNX Runtime ({}), {:.0} images/s",
        files.len(),
        shown,
        100.0 * ort_acc,
        classifier.execution_provider(),
        files.len() as f64 / t_predict.elapsed().as_secs_f64().max(1e-9)
    );
    Ok(ort_acc)
}
