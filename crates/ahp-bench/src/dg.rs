//! `ahp-bench dg`: the leave-one-domain-out benchmark.
//!
//! Protocol (DomainBed's training-domain validation, nothing chosen by a target):
//!
//! 1. For every target domain, method and hyper-parameter configuration of the grid
//!    (`--sweep`; without it one configuration from the flags), train `--sweep-seeds` seeds with
//!    `ahp-train`'s library. Every run keeps the checkpoint selected on the sources' held-out
//!    split (never its untrained step 0) and also records its last step and the oracle (best
//!    target accuracy over its evaluations: an upper bound, never used to choose).
//! 2. Per target and method, choose the configuration with the best mean source-validation
//!    accuracy ([`grid::choose`] sees source-validation accuracies only) and train it for
//!    `--seeds` seeds (the sweep's seeds are reused).
//! 3. Report target accuracy under the three selections, the chosen hyper-parameters, paired
//!    bootstrap 95% intervals of AHP − zero-shot, AHP − HA-LoRA and HA-LoRA − LoRA, and the
//!    head-importance analysis (random drop, drop by cross-validation, adapt & drop) on the
//!    base CLIP, plus the gate heatmap.
//!
//! Every run directory keeps a `bench.json`; a rerun with the same settings reuses it, so an
//! interrupted benchmark continues where it stopped.

use std::path::{Path, PathBuf};
use std::time::Instant;

use ahp_data::{DomainBedDataset, ScanOptions, SplitOptions, Style, SynthConfig};
use ahp_model::fold::load_weights;
use ahp_model::{Checkpoint, LoadedClip, ZeroShotClassifier};
use ahp_spec::run::Method;
use ahp_spec::train_config::TrainArgs;
use ahp_spec::TrainConfig;
use ahp_train::embedded::{Embedded, EmojiArgs};
use ahp_train::eval::Outcomes;
use ahp_train::TrainOptions;
use anyhow::{bail, Context, Result};

use crate::grid::{choose, sweep_grid, Common, HyperConfig, Job, RunResult};
use crate::headdrop::{head_drop, DropEval, DropPlan, HeadDrop};
use crate::report::{self, Choice, Comparison, Pick, Table};
use crate::stats::{paired_bootstrap, Paired};

/// Options of `ahp-bench dg`.
#[derive(clap::Args, Debug, Clone)]
pub struct DgArgs {
    /// Base CLIP checkpoint (directory or cached repo id, e.g. openai/clip-vit-base-patch16)
    /// [default: the embedded CLIP of `--data emoji` / `synthetic`: models/ahp-emoji-clip,
    /// models/ahp-synth-clip; required with a dataset directory].
    #[arg(long = "clip", value_name = "CLIP")]
    clip_flag: Option<String>,
    /// The data: `emoji` (the emoji benchmark: five designers the emoji CLIP never saw; the npm
    /// packages are fetched into ~/.cache/ahp/npm and rendered into OUT/data; prompt
    /// `an emoji of a {}.` unless --template or --config sets one),
    /// `synthetic` (shapes in four styles, rendered into OUT/data), or a DomainBed-layout
    /// directory (`root/<domain>/<class>/<image>`, e.g. PACS; write `./emoji` for a directory
    /// of that name).
    #[arg(long, value_parser = parse_data, default_value = "emoji")]
    data: BenchData,
    /// The emoji data's flags.
    #[command(flatten)]
    emoji: EmojiArgs,
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
    /// Training seeds per target and method, for the reported runs (zero-shot is
    /// deterministic and runs once).
    #[arg(long, default_value_t = 5)]
    seeds: u64,
    /// Tune every method on the sources' held-out split over a grid (see --sweep-lr,
    /// --sweep-gate-lr, --sweep-mmd; plain LoRA also tries both rank rules) before the
    /// reported runs. Without it every method runs with --lr, --gate-lr, --mmd-weight.
    #[arg(long)]
    sweep: bool,
    /// Seeds per grid point in the sweep (seeds 0.. ; reused by the reported runs).
    #[arg(long, default_value_t = 1)]
    sweep_seeds: u64,
    /// Sweep: LoRA learning rates (LoRA, HA-LoRA, AHP).
    #[arg(long, value_delimiter = ',', default_value = "1e-3,3e-3,1e-2")]
    sweep_lr: Vec<f64>,
    /// Sweep: gate learning rates (DIG; AHP keeps --gate-lr).
    #[arg(long, value_delimiter = ',', default_value = "1e-2,3e-2")]
    sweep_gate_lr: Vec<f64>,
    /// Sweep: MMD weights (DIG, AHP).
    #[arg(long, value_delimiter = ',', default_value = "1,10")]
    sweep_mmd: Vec<f64>,
    /// Synthetic data: classes (default: the classes the checkpoint's vocabulary names, else 6).
    #[arg(long)]
    classes: Option<usize>,
    /// Synthetic data: images per class and domain.
    #[arg(long, default_value_t = 48)]
    per_class: usize,
    /// Synthetic data: seed (the pretraining images come from another seed); also the seed of
    /// the sources' in/out split, the same for every run.
    #[arg(long, default_value_t = 7)]
    data_seed: u64,
    /// Runs trained at the same time.
    #[arg(long, default_value_t = 2)]
    jobs: usize,
    /// CPU threads of the tensor kernels per process (0 = all cores). Small models train
    /// fastest with one thread per run and `--jobs` runs side by side.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Random head orders averaged in the head-importance analysis.
    #[arg(long, default_value_t = 5)]
    random_orders: usize,
    /// Heads removed between two points of the head-dropping curves (and per greedy round of
    /// drop by cross-validation).
    #[arg(long, default_value_t = 2)]
    drop_step: usize,
    /// Most heads drop by cross-validation removes (0 = all).
    #[arg(long, default_value_t = 0)]
    cv_max_drop: usize,
    /// Bootstrap replicates of the confidence intervals.
    #[arg(long, default_value_t = 2000)]
    bootstrap: usize,
    /// Device of training and evaluation: cpu, or cuda (built with `--features cuda`).
    #[arg(long, default_value = "cpu")]
    device: String,
    /// The training settings every run shares (`--method`, `--seed`, `--split-seed` and
    /// `--select` are set per run: by `--methods`, the seed index, `--data-seed` and the three
    /// selections).
    #[command(flatten)]
    train: TrainArgs,
    /// `train` resolved (defaults, `--config`, flags), set by [`run`].
    #[arg(skip)]
    config: TrainConfig,
    /// The checkpoint: `--clip` or the data's embedded CLIP, set by [`run`].
    #[arg(skip)]
    clip: String,
}

/// The benchmark's data: an embedded benchmark or a DomainBed directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BenchData {
    /// Built into OUT/data, with its embedded CLIP and prompt as defaults.
    Embedded(Embedded),
    /// A DomainBed-layout directory.
    Tree(PathBuf),
}

fn parse_data(s: &str) -> std::result::Result<BenchData, String> {
    match s {
        "emoji" => Ok(BenchData::Embedded(Embedded::Emoji)),
        "synthetic" => Ok(BenchData::Embedded(Embedded::Synthetic)),
        "" => Err("give emoji, synthetic or a dataset directory".into()),
        dir => Ok(BenchData::Tree(PathBuf::from(dir))),
    }
}

impl DgArgs {
    fn base_config(&self) -> HyperConfig {
        HyperConfig {
            lr: self.config.lr,
            gate_lr: self.config.gate_lr,
            mmd_weight: self.config.mmd_weight,
            lora_ranks: self.config.lora_ranks,
        }
    }

    /// The training configuration every run starts from (before the per-run method, seed
    /// and swept values): the defaults, `--config`, the flags, the split seed pinned to
    /// `--data-seed`.
    pub fn base_train_config(&self) -> Result<TrainConfig> {
        let mut a = self.clone();
        a.resolve_config()?;
        Ok(a.config)
    }

    /// Resolves the training settings and pins what the benchmark fixes: the same in/out split
    /// (`--data-seed`) for every seed and method, so that only training varies.
    fn resolve_config(&mut self) -> Result<()> {
        if let Some(flag) = self
            .train
            .first_given(&["method", "seed", "split-seed", "select"])
        {
            bail!("--{flag}: ahp-bench dg sets it per run (--methods, --seeds, --data-seed, three selections)");
        }
        let mut train = self.train.clone();
        self.clip = match (&self.clip_flag, &self.data) {
            (Some(clip), _) => clip.clone(),
            (None, BenchData::Embedded(e)) => e.clip().to_string(),
            (None, BenchData::Tree(dir)) => bail!(
                "--data {}: give --clip too (the embedded CLIPs are pretrained for --data emoji \
                 and --data synthetic)",
                dir.display()
            ),
        };
        if let BenchData::Embedded(e) = self.data {
            train.pin_templates(&[e.template()]);
        }
        self.config = TrainConfig {
            split_seed: Some(self.data_seed),
            ..train.resolve()?
        };
        Ok(())
    }

    fn grid(&self, method: Method) -> Vec<HyperConfig> {
        let base = self.base_config();
        if !self.sweep {
            return vec![base.for_method(method, &base)];
        }
        sweep_grid(
            method,
            &base,
            &self.sweep_lr,
            &self.sweep_gate_lr,
            &self.sweep_mmd,
        )
    }

    fn train_options(&self, data: &Path, device: &candle_core::Device) -> TrainOptions {
        TrainOptions {
            device: device.clone(),
            ..TrainOptions::new(&self.clip, data, &[], &self.out, self.config.clone())
        }
    }
}

/// The given dataset, or the embedded benchmark's data built into OUT/data.
fn dataset_root(a: &DgArgs, checkpoint: &Checkpoint) -> Result<PathBuf> {
    let size = checkpoint.config.vision_config.image_size as u32;
    match &a.data {
        BenchData::Tree(dir) => Ok(dir.clone()),
        BenchData::Embedded(Embedded::Synthetic) => synthetic_data(a, checkpoint, size),
        BenchData::Embedded(Embedded::Emoji) => {
            let dir = a.out.join("data");
            let progress = std::io::IsTerminal::is_terminal(&std::io::stderr());
            let summary = a.emoji.benchmark(&dir, size, progress).build()?;
            println!("emoji data: {summary}");
            Ok(dir)
        }
    }
}

/// The synthetic domains, rendered once into OUT/data.
fn synthetic_data(a: &DgArgs, checkpoint: &Checkpoint, size: u32) -> Result<PathBuf> {
    let classes = match a.classes {
        Some(c) => c,
        None => {
            let vocab =
                std::fs::read_to_string(checkpoint.dir.join("tokenizer.json")).unwrap_or_default();
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
        size,
    };
    let summary = ahp_data::synth::generate(&cfg, &dir)?;
    println!("synthetic data: {summary}");
    Ok(dir)
}

fn check_args(a: &DgArgs) -> Result<()> {
    if a.seeds == 0 || a.sweep_seeds == 0 {
        bail!("--seeds and --sweep-seeds must be at least 1");
    }
    if a.sweep_seeds > a.seeds {
        bail!(
            "--sweep-seeds ({}) cannot exceed --seeds ({})",
            a.sweep_seeds,
            a.seeds
        );
    }
    if a.methods.is_empty() {
        bail!("--methods: give at least one method");
    }
    if a.sweep && (a.sweep_lr.is_empty() || a.sweep_gate_lr.is_empty() || a.sweep_mmd.is_empty()) {
        bail!("--sweep-lr, --sweep-gate-lr and --sweep-mmd need at least one value each");
    }
    if a.bootstrap == 0 {
        bail!("--bootstrap must be at least 1");
    }
    if let Some(flag) = a.emoji.first_given() {
        if a.data != BenchData::Embedded(Embedded::Emoji) {
            bail!("{flag}: only with --data emoji");
        }
    }
    if a.data != BenchData::Embedded(Embedded::Synthetic) && a.classes.is_some() {
        bail!("--classes: only with --data synthetic (the emoji benchmark's: --emoji-classes)");
    }
    Ok(())
}

/// An emoji tree gains the classes of every run written into it: refuse one that holds other
/// classes than this run asks for, instead of benchmarking them.
fn check_emoji_classes(a: &DgArgs, dataset: &DomainBedDataset, data: &Path) -> Result<()> {
    if a.data != BenchData::Embedded(Embedded::Emoji) {
        return Ok(());
    }
    let asked = a
        .emoji
        .emoji_classes
        .as_ref()
        .map_or(ahp_data::emoji::benchmark_classes().len(), Vec::len);
    if dataset.classes().len() != asked {
        bail!(
            "{}: holds {} classes, this run asks for {asked} (an earlier run with other \
             --emoji-classes wrote into it); choose another --out or remove {}",
            data.display(),
            dataset.classes().len(),
            data.display()
        );
    }
    Ok(())
}

/// sha256 over the scanned tree: per image its path relative to the root, domain, class and
/// size. The run cache keys on it, so a tree that changed is never served stale results.
fn dataset_digest(dataset: &DomainBedDataset) -> Result<String> {
    use sha2::Digest as _;
    let mut hasher = sha2::Sha256::new();
    for d in 0..dataset.domains().len() {
        for s in dataset.domain_samples(d) {
            let size = std::fs::metadata(&s.path)
                .with_context(|| format!("{}: cannot read", s.path.display()))?
                .len();
            let rel = s.path.strip_prefix(dataset.root()).unwrap_or(&s.path);
            hasher.update(format!(
                "{}\t{}\t{}\t{size}\n",
                rel.display(),
                s.domain,
                s.class
            ));
        }
    }
    Ok(format!("{:x}", hasher.finalize()))
}

fn targets_of(a: &DgArgs, dataset: &DomainBedDataset, data: &Path) -> Result<Vec<String>> {
    if dataset.domains().len() < 3 {
        bail!(
            "{}: leave-one-domain-out needs at least 3 domains (2 sources for the MMD), found {}",
            data.display(),
            dataset.domains().len()
        );
    }
    if a.targets.is_empty() {
        return Ok(dataset.domains().to_vec());
    }
    for t in &a.targets {
        if dataset.domain_index(t).is_none() {
            bail!(
                "--targets: `{t}` is not a domain of {} (domains: {})",
                data.display(),
                dataset.domains().join(", ")
            );
        }
    }
    Ok(a.targets.clone())
}

/// The reported runs: one configuration per target and method, chosen by source validation.
struct Chosen {
    runs: Vec<RunResult>,
    choices: Vec<Choice>,
    sweep: Vec<RunResult>,
}

/// Steps 1 and 2 of the protocol.
fn sweep_and_choose(a: &DgArgs, common: &Common<'_>, targets: &[String]) -> Result<Chosen> {
    let seeds_of = |m: Method, n: u64| if m == Method::ZeroShot { 1 } else { n };
    let mut sweep_jobs = Vec::new();
    for t in targets {
        for &m in &a.methods {
            for config in a.grid(m) {
                for seed in 0..seeds_of(m, a.sweep_seeds) {
                    sweep_jobs.push(Job {
                        target: t.clone(),
                        method: m,
                        config: config.clone(),
                        seed,
                    });
                }
            }
        }
    }
    println!(
        "sweep: {} runs ({} targets x {} methods, grid per method {}, {} seed(s) each)",
        sweep_jobs.len(),
        targets.len(),
        a.methods.len(),
        a.methods
            .iter()
            .map(|m| format!("{} {}", m.as_str(), a.grid(*m).len()))
            .collect::<Vec<_>>()
            .join(", "),
        a.sweep_seeds
    );
    let sweep = common.run_all(&sweep_jobs)?;
    let mut choices = Vec::new();
    let mut final_jobs = Vec::new();
    for t in targets {
        for &m in &a.methods {
            let grid = a.grid(m);
            let source_val: Vec<Vec<f64>> = grid
                .iter()
                .map(|c| {
                    sweep
                        .iter()
                        .filter(|r| r.target == *t && r.method == m && r.config == *c)
                        .map(|r| r.source_val.source_val_acc)
                        .collect()
                })
                .collect();
            let best = choose(&source_val);
            let n = source_val[best].len().max(1) as f64;
            choices.push(Choice {
                method: m,
                target: t.clone(),
                chosen: grid[best].describe(m),
                source_val: 100.0 * source_val[best].iter().sum::<f64>() / n,
                tried: grid.len(),
            });
            for seed in 0..seeds_of(m, a.seeds) {
                final_jobs.push(Job {
                    target: t.clone(),
                    method: m,
                    config: grid[best].clone(),
                    seed,
                });
            }
        }
    }
    println!(
        "reported runs: {} (chosen configuration x seeds)",
        final_jobs.len()
    );
    let runs = common.run_all(&final_jobs)?;
    Ok(Chosen {
        runs,
        choices,
        sweep,
    })
}

/// Paired bootstrap intervals of the three comparisons the method is about.
fn comparisons(a: &DgArgs, targets: &[String], runs: &[RunResult]) -> Result<Vec<Comparison>> {
    let pairs = [
        (Method::Ahp, Method::ZeroShot),
        (Method::Ahp, Method::HaLora),
        (Method::HaLora, Method::Lora),
    ];
    let outcomes: Vec<(&RunResult, Outcomes)> = runs
        .iter()
        .map(|r| {
            Outcomes::from_code(&r.target_outcomes)
                .map(|o| (r, o))
                .with_context(|| format!("{}: bad target outcomes", r.target))
        })
        .collect::<Result<_>>()?;
    let of = |m: Method, t: &str| -> Vec<&Outcomes> {
        outcomes
            .iter()
            .filter(|(r, _)| r.method == m && r.target == t)
            .map(|(_, o)| o)
            .collect()
    };
    let mut out = Vec::new();
    for (i, (x, y)) in pairs.into_iter().enumerate() {
        if !(a.methods.contains(&x) && a.methods.contains(&y)) {
            continue;
        }
        let paired: Vec<Paired<'_>> = targets
            .iter()
            .map(|t| Paired {
                target: t,
                a: of(x, t),
                b: of(y, t),
            })
            .collect();
        let (per_target, avg) = paired_bootstrap(&paired, a.bootstrap, 17 + i as u64)?;
        out.push(Comparison {
            name: format!("{} − {}", x.as_str(), y.as_str()),
            per_target,
            avg,
        });
    }
    Ok(out)
}

/// Step 3's head-importance analysis on the AHP (or DIG) run of seed 0 of every target,
/// `--jobs` targets at a time.
fn head_importance(
    a: &DgArgs,
    common: &Common<'_>,
    dataset: &DomainBedDataset,
    targets: &[String],
    chosen: &Chosen,
    device: &candle_core::Device,
) -> Result<Option<(Method, Vec<HeadDrop>)>> {
    let Some(method) = [Method::Ahp, Method::Dig]
        .into_iter()
        .find(|m| a.methods.contains(m))
    else {
        return Ok(None);
    };
    let checkpoint = Checkpoint::resolve(&a.clip)?;
    let clip = LoadedClip::load(&a.clip, device)?;
    let base = load_weights(&checkpoint.weight_files)?;
    let model = HeadModel {
        checkpoint: &checkpoint,
        clip: &clip,
        base: &base,
        device,
    };
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<std::sync::Mutex<Option<Result<HeadDrop>>>> = targets
        .iter()
        .map(|_| std::sync::Mutex::new(None))
        .collect();
    std::thread::scope(|s| {
        for _ in 0..a.jobs.clamp(1, targets.len().max(1)) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Some(t) = targets.get(i) else { return };
                let r = target_head_drop(a, common, dataset, &model, chosen, method, t);
                if let Ok(mut slot) = results[i].lock() {
                    *slot = Some(r);
                }
            });
        }
    });
    let mut drops = Vec::new();
    for (t, slot) in targets.iter().zip(results) {
        let d = slot
            .into_inner()
            .map_err(|_| anyhow::anyhow!("a worker panicked"))?
            .with_context(|| format!("head importance of target {t} did not run"))??;
        println!(
            "head importance, target {t}: {} points x (adapt & drop, cross-validation, {} random orders)",
            d.dropped.len(),
            d.random_orders.len()
        );
        drops.push(d);
    }
    Ok(Some((method, drops)))
}

/// The base model the head-importance analysis removes heads from.
struct HeadModel<'a> {
    checkpoint: &'a Checkpoint,
    clip: &'a LoadedClip,
    base: &'a std::collections::HashMap<String, candle_core::Tensor>,
    device: &'a candle_core::Device,
}

fn target_head_drop(
    a: &DgArgs,
    common: &Common<'_>,
    dataset: &DomainBedDataset,
    model: &HeadModel<'_>,
    chosen: &Chosen,
    method: Method,
    t: &str,
) -> Result<HeadDrop> {
    let split = dataset.split(&SplitOptions {
        target_domains: vec![t.to_string()],
        holdout_fraction: a.config.holdout_fraction,
        seed: a.data_seed,
    })?;
    let clip = model.clip;
    let classifier = ZeroShotClassifier::with_templates(
        &clip.model,
        &clip.tokenizer,
        &split.classes,
        &a.config.templates,
    )?;
    let run = chosen
        .runs
        .iter()
        .find(|r| r.target == t && r.method == method && r.seed == 0)
        .context("the gated method's seed-0 run is missing")?;
    let gates_run = common.run_dir(&Job {
        target: t.to_string(),
        method,
        config: run.config.clone(),
        seed: 0,
    });
    let target_samples: Vec<_> = split
        .targets
        .iter()
        .flat_map(|d| d.samples.clone())
        .collect();
    let source_val: Vec<_> = split
        .sources
        .iter()
        .flat_map(|d| d.out_split.clone())
        .collect();
    let eval = DropEval::new(
        model.device,
        model.base,
        model.checkpoint,
        clip,
        &classifier,
        &target_samples,
        &source_val,
        a.config.eval_batch_size,
    )?;
    let vision = &model.checkpoint.config.vision_config;
    let heads = vision.num_attention_heads * vision.num_hidden_layers;
    head_drop(
        &eval,
        &DropPlan {
            target: t,
            gates_run: &gates_run,
            step: a.drop_step,
            random_orders: a.random_orders,
            cv_max_drop: if a.cv_max_drop == 0 {
                heads
            } else {
                a.cv_max_drop
            },
        },
    )
}

/// Runs the benchmark.
pub fn run(mut a: DgArgs) -> Result<()> {
    let t0 = Instant::now();
    ahp_train::set_cpu_threads(a.threads);
    a.resolve_config()?;
    check_args(&a)?;
    std::fs::create_dir_all(&a.out)
        .with_context(|| format!("{}: cannot create", a.out.display()))?;
    let checkpoint = Checkpoint::resolve(&a.clip).with_context(|| format!("--clip {}", a.clip))?;
    let device = ahp_train::select_device(&a.device)?;
    let data = dataset_root(&a, &checkpoint)?;
    let dataset = DomainBedDataset::scan(&data, &ScanOptions::default())?;
    check_emoji_classes(&a, &dataset, &data)?;
    let targets = targets_of(&a, &dataset, &data)?;
    let common = Common {
        base: a.train_options(&data, &device),
        out: &a.out,
        jobs: a.jobs,
        data_digest: dataset_digest(&dataset)?,
    };
    let chosen = sweep_and_choose(&a, &common, &targets)?;
    let reported: Vec<&RunResult> = chosen.runs.iter().collect();
    let tables = [Pick::SourceVal, Pick::Last, Pick::Oracle]
        .map(|p| Table::new(&targets, &a.methods, &reported, p));
    let title = format!(
        "leave-one-domain-out target accuracy, {} ({} seeds, source-val selection)",
        checkpoint
            .dir
            .file_name()
            .map_or(a.clip.clone(), |n| n.to_string_lossy().into_owned()),
        a.seeds
    );
    tables[0].chart(&a.out.join("dg.png"), &title)?;
    let cis = comparisons(&a, &targets, &chosen.runs)?;
    let gated = head_importance(&a, &common, &dataset, &targets, &chosen, &device)?;
    if let Some((method, drops)) = &gated {
        report::head_drop_chart(&a.out.join("head_drop.png"), drops)?;
        report::gates_chart(&a.out.join("gates.png"), drops, *method)?;
    }
    write_results(&a, &data, &chosen, &cis, gated.as_ref().map(|g| &g.1))?;
    let md = markdown(&a, &data, &targets, &tables, &chosen, &cis, gated.as_ref());
    ahp_spec::files::write_atomic(&a.out.join("dg.md"), md.as_bytes())?;
    println!("\n{}", tables[0].markdown());
    println!("{}", report::comparisons_markdown(&targets, &cis));
    if let Some((_, drops)) = &gated {
        println!("{}", report::head_drop_markdown(drops));
    }
    println!(
        "wrote {}/{{dg.md, dg.png, head_drop.png, gates.png, results.json}} in {:.0} s",
        a.out.display(),
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}

fn write_results(
    a: &DgArgs,
    data: &Path,
    chosen: &Chosen,
    cis: &[Comparison],
    drops: Option<&Vec<HeadDrop>>,
) -> Result<()> {
    let json = serde_json::json!({
        "clip": a.clip,
        "data": data.display().to_string(),
        "steps": a.config.steps,
        "batch_size": a.config.batch_size,
        "seeds": a.seeds,
        "sweep": a.sweep,
        "sweep_seeds": a.sweep_seeds,
        "templates": a.config.templates,
        "chosen": chosen.choices.iter().map(|c| serde_json::json!({
            "method": c.method, "target": c.target, "config": c.chosen,
            "source_val": c.source_val, "tried": c.tried,
        })).collect::<Vec<_>>(),
        "intervals": cis.iter().map(|c| serde_json::json!({
            "comparison": c.name, "per_target": c.per_target, "avg": c.avg,
        })).collect::<Vec<_>>(),
        "runs": chosen.runs,
        "sweep_runs": chosen.sweep,
        "head_drop": drops,
    });
    ahp_spec::files::write_atomic(
        &a.out.join("results.json"),
        serde_json::to_string_pretty(&json)?.as_bytes(),
    )?;
    Ok(())
}

/// Kept steps per method: how often the first evaluation was kept, and the mean kept step.
fn kept_steps(a: &DgArgs, runs: &[RunResult]) -> String {
    let first_eval = a.config.eval_every();
    let mut out = String::from(
        "| method | runs | mean kept step | kept the first evaluation (step {first}) |\n|---|---:|---:|---:|\n",
    )
    .replace("{first}", &first_eval.to_string());
    for &m in a.methods.iter().filter(|m| **m != Method::ZeroShot) {
        let steps: Vec<u64> = runs
            .iter()
            .filter(|r| r.method == m)
            .map(|r| r.source_val.step)
            .collect();
        let mean = steps.iter().sum::<u64>() as f64 / steps.len().max(1) as f64;
        let first = steps.iter().filter(|s| **s == first_eval).count();
        out.push_str(&format!(
            "| {} | {} | {mean:.0} | {first} |\n",
            m.as_str(),
            steps.len()
        ));
    }
    out
}

fn markdown(
    a: &DgArgs,
    data: &Path,
    targets: &[String],
    tables: &[Table; 3],
    chosen: &Chosen,
    cis: &[Comparison],
    gated: Option<&(Method, Vec<HeadDrop>)>,
) -> String {
    let tuning = if a.sweep {
        format!(
            "Each method's hyper-parameters were chosen per target by the mean source-validation \
             accuracy of {} seed(s) per grid point (grid: LoRA learning rate {:?} — plain LoRA also \
             with both rank rules, budget and as-given; gate learning rate {:?} for DIG; MMD \
             weight {:?} for DIG and AHP; AHP's gate learning rate {:e}); never by a target.",
            a.sweep_seeds, a.sweep_lr, a.sweep_gate_lr, a.sweep_mmd, a.config.gate_lr
        )
    } else {
        "One configuration for every method (no sweep): the flags' learning rates and MMD weight."
            .to_string()
    };
    let mut md = format!(
        "# Leave-one-domain-out benchmark (`ahp-bench dg`)\n\n\
         Checkpoint `{}`, data `{}`; {} steps of batch {} per run, {} seeds per reported cell, \
         prompts {}. Target accuracy (%), mean ± std over seeds (zero-shot is deterministic); \
         `avg` averages the targets per seed. {tuning}\n\n\
         ## Source-validation selection (the headline)\n\n\
         The checkpoint with the best pooled accuracy on the sources' held-out {:.0}%, among the \
         evaluations after training started (every {} steps).\n\n",
        a.clip,
        data.display(),
        a.config.steps,
        a.config.batch_size,
        a.seeds,
        a.config
            .templates
            .iter()
            .map(|t| format!("`{t}`"))
            .collect::<Vec<_>>()
            .join(" + "),
        100.0 * a.config.holdout_fraction,
        a.config.eval_every()
    );
    md.push_str(&tables[0].markdown());
    md.push_str("\n![target accuracy per method](dg.png)\n\n## Last step\n\n");
    md.push_str(&tables[1].markdown());
    md.push_str(
        "\n## Oracle (upper bound only)\n\nThe evaluation with the best *target* accuracy of \
         each run. It peeks at the target, so it is not a result: it shows how much a perfect \
         checkpoint choice could add. Nothing in the benchmark is chosen by it.\n\n",
    );
    md.push_str(&tables[2].markdown());
    md.push_str("\n## Paired bootstrap 95% confidence intervals (CI)\n\nDifferences of target accuracy in percentage points under source-val selection, resampling seeds and target images (the same images for both methods); ");
    md.push_str(&format!(
        "{} replicates. `*`: the interval excludes 0.\n\n",
        a.bootstrap
    ));
    md.push_str(&report::comparisons_markdown(targets, cis));
    md.push_str("\n## Chosen hyper-parameters\n\n");
    md.push_str(&report::choices_markdown(&chosen.choices));
    md.push_str("\n## Kept checkpoints\n\n");
    md.push_str(&kept_steps(a, &chosen.runs));
    if let Some((method, drops)) = gated {
        md.push_str(&format!(
            "\n## Head importance\n\nTarget accuracy of the base CLIP (zero-shot, no adapters) as \
             heads are removed (`out_proj` columns zeroed), by the paper's strategies: random \
             drop ({} orders), drop by cross-validation (greedy: each round removes the {} head(s) \
             whose removal gives the best accuracy on the sources' held-out split), adapt & drop \
             (the gates `{}` learned on the sources, seed 0, lowest first).\n\n",
            a.random_orders,
            a.drop_step,
            method.as_str()
        ));
        md.push_str(&report::head_drop_markdown(drops));
        md.push_str(
            "\n![head dropping](head_drop.png)\n\n## Gates\n\n\
             `H * softmax(logits)` per block: 1 = untouched, below 1 (blue) = suppressed, \
             above 1 (red) = amplified.\n\n![gates](gates.png)\n",
        );
    }
    md
}
