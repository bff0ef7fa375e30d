//! `ahp demo`: the whole job on an embedded model, downloading nothing but packages.
//!
//! 1. the data, in DomainBed layout: by default the emoji benchmark (real artwork by five
//!    designers from pinned npm packages, `ahp-data emoji`), or `--data synthetic` (rendered
//!    shapes, offline, `ahp-data synth`);
//! 2. evaluates the embedded CLIP zero-shot and trains it leave-one-domain-out with AHP
//!    (`ahp-train`; its report compares zero-shot and purified accuracy per domain and split);
//! 3. folds the adapters into plain weights and writes a validated ONNX model (`ahp-export`);
//! 4. classifies the unseen target domain's images with ONNX Runtime (`ahp-predict`'s library)
//!    and draws `demo.png`: the gates and a few unseen images with their predictions.

mod picture;

use std::path::{Path, PathBuf};
use std::time::Instant;

use ahp_data::emoji::Role;
use ahp_data::{Shape, Style, SynthConfig};
use ahp_export::{export, ExportOptions, Prepared, Source};
use ahp_runtime::{Classifier, ExecutionProvider};
use ahp_spec::train_config::TrainArgs;
use ahp_spec::TrainConfig;
use ahp_train::embedded::{self, Embedded, EmojiArgs};
use ahp_train::{train, TrainOptions};
use anyhow::{bail, Context, Result};

/// The demo's default unseen domain of each embedded benchmark.
fn default_target(data: Embedded) -> &'static str {
    match data {
        // openmoji was fixed as the demo's target before the emoji benchmark ran.
        Embedded::Emoji => "openmoji",
        Embedded::Synthetic => "painting",
    }
}

/// Options of `ahp demo`.
#[derive(clap::Args)]
pub struct DemoArgs {
    /// The data: emoji (real artwork, the default) or synthetic.
    #[arg(long, value_enum, default_value = "emoji")]
    data: Embedded,
    /// Base CLIP checkpoint (directory or cached repo id) [default: models/ahp-emoji-clip for
    /// emoji, models/ahp-synth-clip for synthetic: the embedded models, pretrained by
    /// `ahp-pretrain`].
    #[arg(long)]
    clip: Option<String>,
    /// Where the data, the run directory, the ONNX model and demo.png go.
    #[arg(long, default_value = "demo-out")]
    out: PathBuf,
    /// The unseen domain; the others are the sources [default: openmoji for emoji (one of
    /// openmoji, openmoji-black, emojione, emojione-monotone, streamline-emojis), painting for
    /// synthetic (photo, sketch, cartoon, painting)].
    #[arg(long)]
    target_domain: Option<String>,
    /// The emoji data's flags.
    #[command(flatten)]
    emoji: EmojiArgs,
    /// Synthetic: images rendered per class and domain.
    #[arg(long, default_value_t = 24)]
    per_class: usize,
    /// Seed of the synthetic data (different from the pretraining images); also the training
    /// and split seed unless --seed / --split-seed are given.
    #[arg(long, default_value_t = DEMO_SEED)]
    data_seed: u64,
    /// No progress bars.
    #[arg(long)]
    quiet: bool,
    /// The training settings (the defaults of `ahp-train`; the demo pins only the seeds and,
    /// for emoji, the prompt `an emoji of a {}.`, the one the emoji CLIP was pretrained with).
    #[command(flatten)]
    train: TrainArgs,
}

/// The demo's data seed (the embedded model was pretrained on other seeds' images).
pub const DEMO_SEED: u64 = 7;

impl DemoArgs {
    /// The demo's training configuration: `ahp-train`'s defaults, `--config`, the flags, and
    /// the seeds (and the emoji prompt) pinned unless given.
    pub fn train_config(&self) -> Result<TrainConfig> {
        let mut train = self.train.clone();
        train.pin_seed(self.data_seed);
        train.pin_split_seed(self.data_seed);
        train.pin_templates(&[self.data.template()]);
        Ok(train.resolve()?)
    }

    fn clip(&self) -> String {
        self.clip
            .clone()
            .unwrap_or_else(|| self.data.clip().to_string())
    }

    fn target(&self) -> String {
        self.target_domain
            .clone()
            .unwrap_or_else(|| default_target(self.data).to_string())
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
            "{}: the synthetic demo needs a checkpoint whose vocabulary names the synthetic \
             classes ({}); found {known}",
            path.display(),
            Shape::ALL.map(Shape::name).join(", ")
        );
    }
    Ok(known)
}

/// Runs the demo: data, training, export, ONNX Runtime, picture, summary.
pub fn run(a: DemoArgs) -> Result<()> {
    let t0 = Instant::now();
    let (clip, target) = (a.clip(), a.target());
    let checkpoint =
        ahp_model::Checkpoint::resolve(&clip).with_context(|| format!("--clip {clip}"))?;
    let size = checkpoint.config.vision_config.image_size as u32;
    let config = a.train_config()?;
    let data = make_data(&a, &checkpoint.dir, &target, size)?;
    let run_dir = a.out.join("run");
    let (zs, purified) = train_run(&a, &clip, &target, &data, &run_dir, config)?;
    let onnx_path = a.out.join("model.onnx");
    let (bytes, gates) = export_run(&run_dir, &onnx_path)?;
    let examples = predict_target(&a, &target, &data, &onnx_path)?;
    let picture = a.out.join("demo.png");
    let title = match (zs, purified) {
        (Some(z), Some(p)) => format!(
            "unseen `{target}`: zero-shot {:.1}% -> purified {:.1}%",
            100.0 * z,
            100.0 * p
        ),
        _ => format!("unseen `{target}`"),
    };
    picture::draw(&picture, &title, &gates, &examples.shown)?;
    println!("\n== summary");
    if let (Some(z), Some(p)) = (zs, purified) {
        println!(
            "unseen domain `{target}`: zero-shot {:.2}% -> purified {:.2}% (candle), {:.2}% (exported ONNX on ONNX Runtime)",
            100.0 * z,
            100.0 * p,
            100.0 * examples.accuracy
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
    println!(
        "  picture       {} (gates, unseen images with predictions)",
        picture.display()
    );
    println!("done in {:.0} s", t0.elapsed().as_secs_f64());
    Ok(())
}

/// Step 1: the data under `out/data`: the emoji benchmark tree, or the synthetic domains.
fn make_data(a: &DemoArgs, checkpoint: &Path, target: &str, size: u32) -> Result<PathBuf> {
    let data = a.out.join("data");
    match a.data {
        Embedded::Emoji => {
            ahp_data::emoji::designer(target)
                .filter(|d| d.role == Role::Benchmark)
                .with_context(|| {
                    format!(
                        "--target-domain {target}: not a benchmark designer ({})",
                        embedded::benchmark_designers()
                    )
                })?;
            let summary = a.emoji.benchmark(&data, size, !a.quiet).build()?;
            println!(
                "== 1/4 emoji artwork by five designers (DomainBed layout, from npm)\n{summary}\n"
            );
        }
        Embedded::Synthetic => {
            if let Some(flag) = a.emoji.first_given() {
                bail!("{flag}: only with --data emoji");
            }
            let classes = classes_of(checkpoint)?;
            Style::parse(target).context("--target-domain")?;
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
        }
    }
    Ok(data)
}

/// The domains (subdirectories) of a DomainBed tree, sorted.
fn domains_of(data: &Path) -> Result<Vec<String>> {
    let mut names: Vec<String> = std::fs::read_dir(data)
        .with_context(|| format!("{}: cannot list", data.display()))?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .collect();
    names.sort();
    Ok(names)
}

/// Step 2: zero-shot evaluation and leave-one-domain-out purification training into a fresh
/// `run_dir`. Returns the target accuracy zero-shot and purified.
fn train_run(
    a: &DemoArgs,
    clip: &str,
    target: &str,
    data: &Path,
    run_dir: &Path,
    config: TrainConfig,
) -> Result<(Option<f64>, Option<f64>)> {
    println!(
        "== 2/4 ahp-train: target domain `{target}` held out, sources {}",
        domains_of(data)?
            .into_iter()
            .filter(|s| s != target)
            .collect::<Vec<_>>()
            .join(", ")
    );
    if run_dir.exists() {
        std::fs::remove_dir_all(run_dir)
            .with_context(|| format!("{}: cannot remove the previous run", run_dir.display()))?;
    }
    let summary = train(&TrainOptions {
        progress: !a.quiet,
        ..TrainOptions::new(clip, data, &[target.to_string()], run_dir, config)
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

/// Step 3: folds the run and writes the validated ONNX model; returns its size in bytes and
/// the folded gates per block.
fn export_run(run_dir: &Path, onnx_path: &Path) -> Result<(u64, Vec<Option<Vec<f32>>>)> {
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
    Ok((exported.bytes, prepared.gates.clone()))
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

/// Examples shown (printed and drawn) of the unseen domain: the first image of this many
/// classes spread evenly over the label order.
const SHOWN: usize = 8;

/// What step 4 found: the accuracy and the examples shown.
struct Predictions {
    accuracy: f64,
    shown: Vec<picture::Example>,
}

/// Step 4: classifies the unseen domain with ONNX Runtime, printing a few examples; returns
/// the top-1 accuracy and those examples.
fn predict_target(
    a: &DemoArgs,
    target: &str,
    data: &Path,
    onnx_path: &Path,
) -> Result<Predictions> {
    println!("== 4/4 ahp-predict (ONNX Runtime) on the unseen `{target}` images");
    let classifier = Classifier::builder()
        .device(ExecutionProvider::Cpu)
        .commit_from_file(onnx_path)
        .context("ONNX Runtime (scripts/fetch-onnxruntime.sh fetches it)")?;
    let labels = &classifier.info().labels;
    let files = target_files(&data.join(target), labels)?;
    let n = labels.len().min(SHOWN);
    let examples: Vec<&PathBuf> = (0..n)
        .filter_map(|i| {
            let label = &labels[i * labels.len() / n.max(1)];
            files.iter().find(|(l, _)| l == label).map(|(_, p)| p)
        })
        .collect();
    let t_predict = Instant::now();
    let (mut correct, mut shown) = (0usize, Vec::new());
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
                let rendered: Vec<String> =
                    top.iter().map(|(l, p)| format!("{l} {p:.3}")).collect();
                println!(
                    "  {:<44} {}  {}",
                    path.strip_prefix(&a.out).unwrap_or(path).display(),
                    rendered.join("  "),
                    if hit { "ok" } else { "wrong" }
                );
                shown.push(picture::Example {
                    path: path.clone(),
                    truth: label.clone(),
                    predicted: top.first().map(|(l, _)| l.clone()).unwrap_or_default(),
                });
            }
        }
    }
    let accuracy = correct as f64 / files.len().max(1) as f64;
    println!(
        "  ... {} images ({} shown), top-1 {:.2}% with ONNX Runtime ({}), {:.0} images/s",
        files.len(),
        shown.len(),
        100.0 * accuracy,
        classifier.execution_provider(),
        files.len() as f64 / t_predict.elapsed().as_secs_f64().max(1e-9)
    );
    Ok(Predictions { accuracy, shown })
}
