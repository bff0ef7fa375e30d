//! `ahp-bench dg`: the leave-one-domain-out benchmark.
//!
//! For every target domain, method and seed it trains with `ahp-train`'s library (model
//! selection on the sources' held-out split, as DomainBed's training-domain validation) and
//! records the target accuracy. Two analyses of the learned gates follow, on the AHP run of the
//! first seed of every target:
//!
//! * **head dropping** (the paper's Figure 1): the base CLIP's target accuracy as heads are
//!   removed (their `out_proj` columns zeroed) in the order of the learned gates, lowest first,
//!   vs. in random orders;
//! * **gate heatmap**: the gate of every head of every block.
//!
//! Every run directory keeps a `bench.json`; a rerun with the same settings reuses it, so an
//! interrupted benchmark continues where it stopped.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use ahp_data::{DomainBedDataset, ScanOptions, Split, SplitOptions, Style, SynthConfig};
use ahp_export::fold::{build_model, gate_values, load_weights};
use ahp_export::prune::{mask_pruned_heads, PrunePlan};
use ahp_model::{pixel_batch, Checkpoint, LoadedClip, ZeroShotClassifier};
use ahp_spec::run::Method;
use ahp_train::{train, TrainOptions};
use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor, D};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use crate::plot;

/// Options of `ahp-bench dg`.
#[derive(clap::Args, Debug, Clone)]
pub struct DgArgs {
    /// Base CLIP checkpoint (directory or cached repo id, e.g. openai/clip-vit-base-patch16).
    #[arg(long, default_value = "models/ahp-synth-clip")]
    clip: String,
    /// DomainBed-layout dataset (`root/<domain>/<class>/<image>`, e.g. PACS). Default: the
    /// synthetic domains, rendered into OUT/data.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Output directory: runs, results.json, dg.md and the PNG charts.
    #[arg(long, default_value = "bench-out/dg")]
    out: PathBuf,
    /// Target domains, comma-separated (default: every domain of the dataset in turn).
    #[arg(long, value_delimiter = ',')]
    targets: Vec<String>,
    /// Methods, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "zero-shot,lora,ha-lora,dig,ahp"
    )]
    methods: Vec<Method>,
    /// Training seeds per target and method (zero-shot is deterministic and runs once).
    #[arg(long, default_value_t = 3)]
    seeds: u64,
    /// Synthetic data: classes (default: the classes the checkpoint's vocabulary names, else 6).
    #[arg(long)]
    classes: Option<usize>,
    /// Synthetic data: images per class and domain.
    #[arg(long, default_value_t = 48)]
    per_class: usize,
    /// Synthetic data: seed (the pretraining images come from another seed).
    #[arg(long, default_value_t = 7)]
    data_seed: u64,
    /// Training steps per run.
    #[arg(long, default_value_t = 200)]
    steps: u64,
    /// Images per training step.
    #[arg(long, default_value_t = 24)]
    batch_size: usize,
    /// Peak LoRA learning rate.
    #[arg(long, default_value_t = 3e-3)]
    lr: f64,
    /// Peak gate learning rate.
    #[arg(long, default_value_t = 1e-2)]
    gate_lr: f64,
    /// Weight of the MMD loss (DIG, AHP).
    #[arg(long, default_value_t = 1.0)]
    mmd_weight: f64,
    /// Runs trained at the same time.
    #[arg(long, default_value_t = 2)]
    jobs: usize,
    /// CPU threads of the tensor kernels per process (0 = all cores). Small models train
    /// fastest with one thread per run and `--jobs` runs side by side.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Random head orders averaged in the head-dropping analysis.
    #[arg(long, default_value_t = 3)]
    random_orders: usize,
    /// Heads removed between two points of the head-dropping curve.
    #[arg(long, default_value_t = 2)]
    drop_step: usize,
    /// Images per evaluation forward pass.
    #[arg(long, default_value_t = 64)]
    eval_batch_size: usize,
    /// Device of training and evaluation: cpu, or cuda (built with `--features cuda`).
    #[arg(long, default_value = "cpu")]
    device: String,
}

/// One training run of the grid.
#[derive(Debug, Clone)]
struct Job {
    target: String,
    method: Method,
    seed: u64,
}

/// What one run measured (its `bench.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct RunResult {
    target: String,
    method: Method,
    seed: u64,
    /// Target accuracy of the checkpoint selected on the sources' held-out split.
    target_acc: f64,
    /// Its pooled source held-out accuracy.
    source_val_acc: f64,
    best_step: u64,
    seconds: f64,
    /// The settings the run was made with; a cached result is reused only when they match.
    settings: serde_json::Value,
}

/// Head-dropping curves of one target.
#[derive(Debug, Clone, Serialize)]
struct HeadDrop {
    target: String,
    /// Gate values per block (the order's source).
    gates: Vec<Vec<f32>>,
    /// Numbers of heads removed.
    dropped: Vec<usize>,
    /// Target accuracy with heads removed lowest gate first.
    gate_order: Vec<f64>,
    /// Target accuracy with heads removed in each random order.
    random_orders: Vec<Vec<f64>>,
}

fn run_dir(out: &Path, job: &Job) -> PathBuf {
    out.join("runs")
        .join(&job.target)
        .join(job.method.as_str())
        .join(format!("seed{}", job.seed))
}

fn settings(a: &DgArgs, data: &Path, job: &Job) -> serde_json::Value {
    serde_json::json!({
        "clip": a.clip,
        "data": data.display().to_string(),
        "target": job.target,
        "method": job.method,
        "seed": job.seed,
        "steps": a.steps,
        "batch_size": a.batch_size,
        "lr": a.lr,
        "gate_lr": a.gate_lr,
        "mmd_weight": a.mmd_weight,
    })
}

fn train_options(a: &DgArgs, data: &Path, dir: &Path, job: &Job, device: &Device) -> TrainOptions {
    TrainOptions {
        clip: a.clip.clone(),
        data: data.to_path_buf(),
        target_domains: vec![job.target.clone()],
        out: dir.to_path_buf(),
        method: job.method,
        steps: a.steps,
        batch_size: a.batch_size,
        eval_batch_size: a.eval_batch_size,
        lr: a.lr,
        gate_lr: a.gate_lr,
        weight_decay: 0.0,
        warmup_steps: a.steps / 10,
        grad_clip: 1.0,
        mmd_weight: a.mmd_weight,
        ranks: None,
        alpha: 8.0,
        seed: job.seed,
        // The same in/out split for every seed and method: only training varies.
        split_seed: a.data_seed,
        holdout_fraction: 0.2,
        template: ahp_model::DEFAULT_TEMPLATE.to_string(),
        allow_missing_classes: false,
        eval_every: (a.steps / 4).max(1),
        resume: false,
        progress: false,
        device: device.clone(),
    }
}

/// Trains one run, or reads its cached `bench.json`.
fn run_job(a: &DgArgs, data: &Path, job: &Job, device: &Device) -> Result<(RunResult, bool)> {
    let dir = run_dir(&a.out, job);
    let cache = dir.join("bench.json");
    let want = settings(a, data, job);
    if let Ok(text) = std::fs::read_to_string(&cache) {
        if let Ok(r) = serde_json::from_str::<RunResult>(&text) {
            if r.settings == want {
                return Ok((r, true));
            }
        }
    }
    if dir.exists() {
        std::fs::remove_dir_all(&dir)
            .with_context(|| format!("{}: cannot remove the stale run", dir.display()))?;
    }
    let t0 = Instant::now();
    let summary = train(&train_options(a, data, &dir, job, device)).with_context(|| {
        format!(
            "training {} with target {} seed {}",
            job.method.as_str(),
            job.target,
            job.seed
        )
    })?;
    let target_acc = ahp_train::eval::split_accuracy(&summary.trained, "target");
    let result = RunResult {
        target: job.target.clone(),
        method: job.method,
        seed: job.seed,
        target_acc,
        source_val_acc: summary.best_source_val_acc,
        best_step: summary.best_step,
        seconds: t0.elapsed().as_secs_f64(),
        settings: want,
    };
    ahp_train::state::write_atomic(&cache, serde_json::to_string_pretty(&result)?.as_bytes())?;
    Ok((result, false))
}

/// Runs `jobs` on `workers` threads; results in job order.
fn run_grid(a: &DgArgs, data: &Path, jobs: &[Job], device: &Device) -> Result<Vec<RunResult>> {
    let queue = Mutex::new(jobs.iter().cloned().enumerate().collect::<VecDeque<_>>());
    let results: Mutex<Vec<Option<RunResult>>> = Mutex::new(vec![None; jobs.len()]);
    let failure: Mutex<Option<anyhow::Error>> = Mutex::new(None);
    let done = Mutex::new(0usize);
    let total = jobs.len();
    std::thread::scope(|s| {
        for _ in 0..a.jobs.max(1).min(total.max(1)) {
            s.spawn(|| loop {
                if failure.lock().map(|f| f.is_some()).unwrap_or(true) {
                    return;
                }
                let next = queue.lock().ok().and_then(|mut q| q.pop_front());
                let Some((i, job)) = next else { return };
                match run_job(a, data, &job, device) {
                    Ok((r, cached)) => {
                        let n = done.lock().map(|mut d| {
                            *d += 1;
                            *d
                        });
                        println!(
                            "[{}/{total}] {:<9} target {:<10} seed {}: target {:6.2}%  source-val {:6.2}%  {}",
                            n.unwrap_or(0),
                            job.method.as_str(),
                            job.target,
                            job.seed,
                            100.0 * r.target_acc,
                            100.0 * r.source_val_acc,
                            if cached {
                                "(cached)".to_string()
                            } else {
                                format!("{:.0} s", r.seconds)
                            }
                        );
                        if let Ok(mut res) = results.lock() {
                            res[i] = Some(r);
                        }
                    }
                    Err(e) => {
                        if let Ok(mut f) = failure.lock() {
                            f.get_or_insert(e);
                        }
                        return;
                    }
                }
            });
        }
    });
    if let Some(e) = failure.into_inner().ok().flatten() {
        return Err(e);
    }
    results
        .into_inner()
        .map_err(|_| anyhow::anyhow!("a worker panicked"))?
        .into_iter()
        .map(|r| r.context("a run did not finish"))
        .collect()
}

/// Mean and sample standard deviation (0 for a single value).
fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    if v.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let m = v.iter().sum::<f64>() / n;
    if v.len() < 2 {
        return (m, 0.0);
    }
    let var = v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0);
    (m, var.sqrt())
}

/// Per method: per target the accuracies over seeds, and the average over targets per seed.
struct Table {
    targets: Vec<String>,
    methods: Vec<Method>,
    /// `(method, target) -> accuracies over seeds` (percent).
    cells: BTreeMap<(usize, usize), Vec<f64>>,
}

impl Table {
    fn new(targets: &[String], methods: &[Method], results: &[RunResult]) -> Self {
        let mut cells: BTreeMap<(usize, usize), Vec<f64>> = BTreeMap::new();
        for r in results {
            let mi = methods.iter().position(|m| *m == r.method);
            let ti = targets.iter().position(|t| *t == r.target);
            if let (Some(mi), Some(ti)) = (mi, ti) {
                cells
                    .entry((mi, ti))
                    .or_default()
                    .push(100.0 * r.target_acc);
            }
        }
        Self {
            targets: targets.to_vec(),
            methods: methods.to_vec(),
            cells,
        }
    }

    fn cell(&self, m: usize, t: usize) -> (f64, f64) {
        self.cells
            .get(&(m, t))
            .map_or((f64::NAN, f64::NAN), |v| mean_std(v))
    }

    /// The average over targets, per seed, then mean ± std over seeds.
    fn avg(&self, m: usize) -> (f64, f64) {
        let per_target: Vec<&Vec<f64>> = (0..self.targets.len())
            .filter_map(|t| self.cells.get(&(m, t)))
            .collect();
        if per_target.len() != self.targets.len() {
            return (f64::NAN, f64::NAN);
        }
        let n = per_target.iter().map(|v| v.len()).min().unwrap_or(0);
        let per_seed: Vec<f64> = (0..n)
            .map(|s| per_target.iter().map(|v| v[s]).sum::<f64>() / per_target.len() as f64)
            .collect();
        mean_std(&per_seed)
    }

    fn markdown(&self) -> String {
        let fmt = |(m, s): (f64, f64), n: usize| {
            if n > 1 {
                format!("{m:.2} ± {s:.2}")
            } else {
                format!("{m:.2}")
            }
        };
        let mut out = format!("| method | {} | avg |\n", self.targets.join(" | "));
        out.push_str(&format!(
            "|---|{}---:|\n",
            "---:|".repeat(self.targets.len())
        ));
        for (mi, m) in self.methods.iter().enumerate() {
            let n = self.cells.get(&(mi, 0)).map_or(0, Vec::len);
            out.push_str(&format!("| {} |", m.as_str()));
            for ti in 0..self.targets.len() {
                out.push_str(&format!(" {} |", fmt(self.cell(mi, ti), n)));
            }
            out.push_str(&format!(" {} |\n", fmt(self.avg(mi), n)));
        }
        out
    }

    fn chart(&self, path: &Path, title: &str) -> Result<()> {
        let mut groups = self.targets.clone();
        groups.push("avg".into());
        let series: Vec<plot::BarSeries> = self
            .methods
            .iter()
            .enumerate()
            .map(|(mi, m)| plot::BarSeries {
                label: m.as_str().to_string(),
                values: (0..self.targets.len())
                    .map(|ti| self.cell(mi, ti))
                    .chain(std::iter::once(self.avg(mi)))
                    .map(|(m, s)| m.is_finite().then_some((m, s)))
                    .collect(),
            })
            .collect();
        let width = (240 * groups.len() as u32).max(720);
        plot::save_png(path, width, 480, |root| {
            plot::grouped_bars(root, title, &groups, &series, "target accuracy (%)")
        })
    }
}

/// Target accuracy of the base CLIP with the `removed[block]` heads removed.
struct DropEval<'a> {
    device: &'a Device,
    base: &'a std::collections::HashMap<String, Tensor>,
    checkpoint: &'a Checkpoint,
    classifier: &'a ZeroShotClassifier,
    /// Preprocessed target images in batches, and their labels.
    batches: Vec<(Tensor, Vec<u32>)>,
}

impl DropEval<'_> {
    fn accuracy(&self, removed: Vec<Vec<usize>>) -> Result<f64> {
        let h = self.checkpoint.config.vision_config.num_attention_heads;
        let kept = removed
            .iter()
            .map(|r| (0..h).filter(|i| !r.contains(i)).collect())
            .collect();
        let plan = PrunePlan {
            threshold: f32::NAN,
            kept,
            removed,
        };
        let weights = mask_pruned_heads(self.base, &self.checkpoint.config, &plan)?;
        let model = build_model(&weights, &self.checkpoint.config, self.device)?;
        let (mut correct, mut total) = (0usize, 0usize);
        for (pixels, labels) in &self.batches {
            let logits = self.classifier.logits_for_pixels(&model, pixels, &[])?;
            let pred = logits.argmax(D::Minus1)?.to_vec1::<u32>()?;
            correct += pred.iter().zip(labels).filter(|(p, l)| p == l).count();
            total += labels.len();
        }
        Ok(correct as f64 / total.max(1) as f64)
    }

    /// Accuracies after removing the first `k` heads of `order`, for every `k` in `ks`.
    fn curve(&self, order: &[(usize, usize)], ks: &[usize], blocks: usize) -> Result<Vec<f64>> {
        ks.iter()
            .map(|&k| {
                let mut removed = vec![Vec::new(); blocks];
                for &(b, h) in &order[..k] {
                    removed[b].push(h);
                }
                self.accuracy(removed)
            })
            .collect()
    }
}

/// The base model the head-dropping analysis removes heads from.
#[derive(Clone, Copy)]
struct BaseModel<'a> {
    checkpoint: &'a Checkpoint,
    clip: &'a LoadedClip,
    /// Its weights by Hugging Face name.
    weights: &'a std::collections::HashMap<String, Tensor>,
    device: &'a Device,
}

fn head_drop(
    a: &DgArgs,
    split: &Split,
    model: &BaseModel<'_>,
    gates_run: &Path,
    target: &str,
) -> Result<HeadDrop> {
    let BaseModel {
        checkpoint,
        clip,
        weights: base,
        device,
    } = *model;
    let config = &checkpoint.config;
    let (_, adapter) = ahp_model::adapter::load_run(gates_run, config, device)
        .with_context(|| format!("{}: cannot load the run", gates_run.display()))?;
    let gates: Vec<Vec<f32>> = gate_values(&adapter.hooks)?
        .into_iter()
        .map(|g| g.context("a block of the run has no gates"))
        .collect::<Result<_>>()?;
    let classifier = ZeroShotClassifier::new(
        &clip.model,
        &clip.tokenizer,
        &split.classes,
        ahp_model::DEFAULT_TEMPLATE,
    )?;
    let samples = &split
        .targets
        .iter()
        .find(|t| t.name == target)
        .with_context(|| format!("target domain `{target}` is not in the split"))?
        .samples;
    let mut batches = Vec::new();
    for chunk in samples.chunks(a.eval_batch_size.max(1)) {
        let mut images = Vec::with_capacity(chunk.len());
        for s in chunk {
            images.push(
                ahp_spec::preprocess::preprocess_file(&s.path, &clip.preprocess)
                    .with_context(|| format!("{}: cannot read", s.path.display()))?,
            );
        }
        let labels = chunk.iter().map(|s| s.class).collect();
        batches.push((pixel_batch(&images, device)?, labels));
    }
    let eval = DropEval {
        device,
        base,
        checkpoint,
        classifier: &classifier,
        batches,
    };
    let blocks = gates.len();
    let mut order: Vec<(usize, usize)> = gates
        .iter()
        .enumerate()
        .flat_map(|(b, g)| (0..g.len()).map(move |h| (b, h)))
        .collect();
    order.sort_by(|x, y| gates[x.0][x.1].total_cmp(&gates[y.0][y.1]).then(x.cmp(y)));
    let total = order.len();
    let step = a.drop_step.max(1);
    let mut ks: Vec<usize> = (0..=total).step_by(step).collect();
    if ks.last() != Some(&total) {
        ks.push(total);
    }
    let gate_order = eval.curve(&order, &ks, blocks)?;
    let mut random_orders = Vec::new();
    for r in 0..a.random_orders {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1000 + r as u64);
        let mut shuffled = order.clone();
        shuffled.shuffle(&mut rng);
        random_orders.push(eval.curve(&shuffled, &ks, blocks)?);
    }
    Ok(HeadDrop {
        target: target.to_string(),
        gates,
        dropped: ks,
        gate_order,
        random_orders,
    })
}

fn head_drop_markdown(drops: &[HeadDrop]) -> String {
    let Some(first) = drops.first() else {
        return String::new();
    };
    let total = first.dropped.last().copied().unwrap_or(0);
    // A few columns: 0, ~1/8, 1/4, 1/2, 3/4 of the heads.
    let marks: Vec<usize> = [0, total / 8, total / 4, total / 2, 3 * total / 4]
        .into_iter()
        .map(|k| {
            first
                .dropped
                .iter()
                .copied()
                .min_by_key(|d| d.abs_diff(k))
                .unwrap_or(0)
        })
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut out = format!(
        "| target | order | {} |\n|---|---|{}\n",
        marks
            .iter()
            .map(|k| format!("{k} heads removed"))
            .collect::<Vec<_>>()
            .join(" | "),
        "---:|".repeat(marks.len())
    );
    for d in drops {
        let at = |curve: &[f64], k: usize| {
            d.dropped
                .iter()
                .position(|x| *x == k)
                .map_or(f64::NAN, |i| 100.0 * curve[i])
        };
        out.push_str(&format!("| {} | learned gates, lowest first |", d.target));
        for &k in &marks {
            out.push_str(&format!(" {:.2} |", at(&d.gate_order, k)));
        }
        out.push_str(&format!(
            "\n| {} | random (mean of {}) |",
            d.target,
            d.random_orders.len()
        ));
        for &k in &marks {
            let v: Vec<f64> = d.random_orders.iter().map(|c| at(c, k)).collect();
            let (m, s) = mean_std(&v);
            out.push_str(&format!(" {m:.2} ± {s:.2} |"));
        }
        out.push('\n');
    }
    out
}

fn head_drop_chart(path: &Path, drops: &[HeadDrop]) -> Result<()> {
    let cols = drops.len().clamp(1, 2);
    let rows = drops.len().div_ceil(cols).max(1);
    plot::save_png(path, 560 * cols as u32, 400 * rows as u32, |root| {
        let areas = root.split_evenly((rows, cols));
        for (d, area) in drops.iter().zip(areas.iter()) {
            let xs: Vec<f64> = d.dropped.iter().map(|k| *k as f64).collect();
            let pct = |c: &[f64]| c.iter().map(|v| 100.0 * v).collect::<Vec<_>>();
            let randoms: Vec<Vec<f64>> = d.random_orders.iter().map(|c| pct(c)).collect();
            let n = xs.len();
            let stat = |i: usize| mean_std(&randoms.iter().map(|c| c[i]).collect::<Vec<_>>());
            let mean: Vec<f64> = (0..n).map(|i| stat(i).0).collect();
            let sd: Vec<f64> = (0..n).map(|i| stat(i).1).collect();
            let mut series = vec![plot::Line {
                label: "learned gates, lowest first".into(),
                points: xs.iter().copied().zip(pct(&d.gate_order)).collect(),
                band: None,
                color: 4,
            }];
            if !randoms.is_empty() {
                series.push(plot::Line {
                    label: format!("random order (mean ± std of {})", randoms.len()),
                    points: xs.iter().copied().zip(mean.iter().copied()).collect(),
                    band: Some((
                        mean.iter().zip(&sd).map(|(m, s)| m - s).collect(),
                        mean.iter().zip(&sd).map(|(m, s)| m + s).collect(),
                    )),
                    color: 1,
                });
            }
            plot::lines(
                area,
                &format!("target {}: base CLIP, heads removed", d.target),
                "heads removed",
                "target accuracy (%)",
                &series,
            )?;
        }
        Ok(())
    })
}

fn gates_chart(path: &Path, drops: &[HeadDrop], method: Method) -> Result<()> {
    let cols = drops.len().clamp(1, 2);
    let rows = drops.len().div_ceil(cols).max(1);
    let heads = drops
        .first()
        .and_then(|d| d.gates.first())
        .map_or(8, Vec::len);
    let blocks = drops.first().map_or(6, |d| d.gates.len());
    let w = (70 * heads as u32 + 120).max(420);
    let h = (36 * blocks as u32 + 110).max(300);
    plot::save_png(path, w * cols as u32, h * rows as u32, |root| {
        let areas = root.split_evenly((rows, cols));
        for (d, area) in drops.iter().zip(areas.iter()) {
            plot::heatmap(
                area,
                &format!("gates of {} (seed 0), target {}", method.as_str(), d.target),
                &d.gates,
            )?;
        }
        Ok(())
    })
}

/// Runs the benchmark.
pub fn run(a: DgArgs) -> Result<()> {
    let t0 = Instant::now();
    ahp_train::set_cpu_threads(a.threads);
    if a.seeds == 0 {
        bail!("--seeds must be at least 1");
    }
    if a.methods.is_empty() {
        bail!("--methods: give at least one method");
    }
    std::fs::create_dir_all(&a.out)
        .with_context(|| format!("{}: cannot create", a.out.display()))?;
    let checkpoint = Checkpoint::resolve(&a.clip).with_context(|| format!("--clip {}", a.clip))?;
    let device = ahp_train::select_device(&a.device)?;

    // Data.
    let data = match &a.data {
        Some(d) => d.clone(),
        None => {
            let classes = match a.classes {
                Some(c) => c,
                None => {
                    let vocab = std::fs::read_to_string(checkpoint.dir.join("tokenizer.json"))
                        .unwrap_or_default();
                    match ahp_data::synth::classes_named_in(&vocab) {
                        n if n >= 2 => n,
                        _ => 6,
                    }
                }
            };
            let dir = a.out.join("data");
            let cfg = SynthConfig {
                seed: a.data_seed,
                classes,
                domains: Style::ALL.to_vec(),
                per_class: a.per_class,
                size: checkpoint.config.vision_config.image_size as u32,
            };
            let summary = ahp_data::synth::generate(&cfg, &dir)?;
            println!("synthetic data: {summary}");
            dir
        }
    };
    let dataset = DomainBedDataset::scan(&data, &ScanOptions::default())?;
    let targets: Vec<String> = if a.targets.is_empty() {
        dataset.domains().to_vec()
    } else {
        for t in &a.targets {
            if dataset.domain_index(t).is_none() {
                bail!(
                    "--targets: `{t}` is not a domain of {} (domains: {})",
                    data.display(),
                    dataset.domains().join(", ")
                );
            }
        }
        a.targets.clone()
    };
    if dataset.domains().len() < 3 {
        bail!(
            "{}: leave-one-domain-out needs at least 3 domains (2 sources for the MMD), found {}",
            data.display(),
            dataset.domains().len()
        );
    }

    // The grid.
    let mut jobs = Vec::new();
    for t in &targets {
        for &m in &a.methods {
            let seeds = if m == Method::ZeroShot { 1 } else { a.seeds };
            for seed in 0..seeds {
                jobs.push(Job {
                    target: t.clone(),
                    method: m,
                    seed,
                });
            }
        }
    }
    println!(
        "{} runs ({} targets x {} methods, {} seeds; zero-shot once), {} at a time, {} thread(s) each",
        jobs.len(),
        targets.len(),
        a.methods.len(),
        a.seeds,
        a.jobs,
        a.threads
    );
    let results = run_grid(&a, &data, &jobs, &device)?;
    let table = Table::new(&targets, &a.methods, &results);
    let title = format!(
        "leave-one-domain-out target accuracy, {} ({} seeds)",
        checkpoint
            .dir
            .file_name()
            .map_or(a.clip.clone(), |n| n.to_string_lossy().into_owned()),
        a.seeds
    );
    table.chart(&a.out.join("dg.png"), &title)?;

    // Gate analyses on the first seed of the gated method.
    let gated = [Method::Ahp, Method::Dig]
        .into_iter()
        .find(|m| a.methods.contains(m));
    let mut drops = Vec::new();
    if let Some(method) = gated {
        let clip = LoadedClip::load(&a.clip, &device)?;
        let base = load_weights(&checkpoint.weight_files)?;
        for t in &targets {
            let split = dataset.split(&SplitOptions {
                target_domains: vec![t.clone()],
                holdout_fraction: 0.2,
                seed: a.data_seed,
            })?;
            let run = run_dir(
                &a.out,
                &Job {
                    target: t.clone(),
                    method,
                    seed: 0,
                },
            );
            let model = BaseModel {
                checkpoint: &checkpoint,
                clip: &clip,
                weights: &base,
                device: &device,
            };
            let d = head_drop(&a, &split, &model, &run, t)?;
            println!(
                "head dropping, target {t}: {} points x (gate order + {} random orders)",
                d.dropped.len(),
                d.random_orders.len()
            );
            drops.push(d);
        }
        head_drop_chart(&a.out.join("head_drop.png"), &drops)?;
        gates_chart(&a.out.join("gates.png"), &drops, method)?;
    }

    // Reports.
    let json = serde_json::json!({
        "clip": a.clip,
        "data": data.display().to_string(),
        "steps": a.steps,
        "batch_size": a.batch_size,
        "seeds": a.seeds,
        "runs": results,
        "head_drop": drops,
    });
    ahp_train::state::write_atomic(
        &a.out.join("results.json"),
        serde_json::to_string_pretty(&json)?.as_bytes(),
    )?;
    let mut md = format!(
        "# Leave-one-domain-out benchmark (`ahp-bench dg`)\n\n\
         Checkpoint `{}`, data `{}`; {} steps of batch {} per run, {} seeds. Target accuracy (%) \
         of the checkpoint selected on the sources' held-out 20%, mean ± std over seeds \
         (zero-shot is deterministic); `avg` averages the targets per seed.\n\n",
        a.clip,
        data.display(),
        a.steps,
        a.batch_size,
        a.seeds
    );
    md.push_str(&table.markdown());
    md.push_str("\n![target accuracy per method](dg.png)\n");
    if let Some(method) = gated {
        md.push_str(&format!(
            "\n## Head dropping\n\nTarget accuracy of the base CLIP (zero-shot, no adapters) as \
             heads are removed (`out_proj` columns zeroed): in the order of the gates `{}` learned \
             on the sources (seed 0; lowest gate first) vs. random orders.\n\n",
            method.as_str()
        ));
        md.push_str(&head_drop_markdown(&drops));
        md.push_str(
            "\n![head dropping](head_drop.png)\n\n## Gates\n\n\
             `H * softmax(logits)` per block: 1 = untouched, below 1 (blue) = suppressed, \
             above 1 (red) = amplified.\n\n![gates](gates.png)\n",
        );
    }
    ahp_train::state::write_atomic(&a.out.join("dg.md"), md.as_bytes())?;
    println!("\n{}", table.markdown());
    if !drops.is_empty() {
        println!("{}", head_drop_markdown(&drops));
    }
    println!(
        "wrote {}/{{dg.md, dg.png, head_drop.png, gates.png, results.json}} in {:.0} s",
        a.out.display(),
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_and_sample_std() {
        assert_eq!(mean_std(&[1.0]), (1.0, 0.0));
        let (m, s) = mean_std(&[1.0, 2.0, 3.0]);
        assert!((m - 2.0).abs() < 1e-12 && (s - 1.0).abs() < 1e-12);
    }

    #[test]
    fn table_averages_targets_per_seed() {
        let r = |t: &str, m: Method, seed: u64, acc: f64| RunResult {
            target: t.into(),
            method: m,
            seed,
            target_acc: acc,
            source_val_acc: 0.0,
            best_step: 0,
            seconds: 0.0,
            settings: serde_json::Value::Null,
        };
        let targets = vec!["a".to_string(), "b".to_string()];
        let methods = vec![Method::ZeroShot, Method::Ahp];
        let results = vec![
            r("a", Method::ZeroShot, 0, 0.5),
            r("b", Method::ZeroShot, 0, 0.3),
            r("a", Method::Ahp, 0, 0.6),
            r("a", Method::Ahp, 1, 0.8),
            r("b", Method::Ahp, 0, 0.4),
            r("b", Method::Ahp, 1, 0.2),
        ];
        let t = Table::new(&targets, &methods, &results);
        assert_eq!(t.cell(0, 0), (50.0, 0.0));
        let (m, _) = t.cell(1, 0);
        assert!((m - 70.0).abs() < 1e-9);
        // Per seed: (60 + 40) / 2 = 50 and (80 + 20) / 2 = 50.
        let (m, s) = t.avg(1);
        assert!((m - 50.0).abs() < 1e-9 && s.abs() < 1e-9, "{m} {s}");
        let md = t.markdown();
        assert!(md.contains("| zero-shot | 50.00 | 30.00 | 40.00 |"), "{md}");
        assert!(
            md.contains("| ahp | 70.00 ± 14.14 | 30.00 ± 14.14 | 50.00 ± 0.00 |"),
            "{md}"
        );
    }
}
