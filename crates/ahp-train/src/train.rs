//! The training loop: balanced multi-domain batches, classification loss for LoRA and gates,
//! MMD for the gates only, model selection on the source domains' held-out split, atomic run
//! directory, bit-exact resume.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use ahp_data::{
    BalancedBatcher, DomainBedDataset, LoaderConfig, Sample, ScanOptions, Split, SplitOptions,
};
use ahp_model::{l2_normalize, LoadedClip, ZeroShotClassifier};
use ahp_spec::run::{
    BaseModel, Method, RunManifest, Selection, WeightFile, ADAPTER_FILE, FORMAT_VERSION,
    MANIFEST_FILE, METRICS_FILE, REPORT_FILE,
};
use candle_core::{Device, Tensor};
use serde::Serialize;
use sha2::Digest;

use crate::error::{Result, TrainError};
use crate::eval::{evaluate_samples, split_accuracy, DomainAccuracy, Evaluation, Outcomes};
use crate::mmd::head_mmd_loss;
use crate::optim::{lr_at, ParamGroup};
use crate::state::{load_state, lock_run_dir, save_state, StateMeta, STATE_FILE};
use crate::trainable::{default_ranks, AdapterSpec, Trainable};
use ahp_spec::files::write_atomic;
use ahp_spec::TrainConfig;

/// Everything `ahp-train` needs: where the model, data and run directory are, and the
/// [`TrainConfig`] of the run.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    /// Checkpoint directory or cached repo id.
    pub clip: String,
    /// DomainBed-layout root.
    pub data: PathBuf,
    /// Held-out target domains.
    pub target_domains: Vec<String>,
    /// Run directory.
    pub out: PathBuf,
    /// What to train and how (the defaults of every entry point: [`TrainConfig::default`]).
    pub config: TrainConfig,
    /// Continue an interrupted run in `out`.
    pub resume: bool,
    /// Show a progress bar.
    pub progress: bool,
    /// Device.
    pub device: Device,
}

impl TrainOptions {
    /// A run of `clip` on `data` with `target_domains` held out, written to `out`, with
    /// `config`, on the CPU, without a progress bar.
    pub fn new(
        clip: &str,
        data: &Path,
        target_domains: &[String],
        out: &Path,
        config: TrainConfig,
    ) -> Self {
        Self {
            clip: clip.to_string(),
            data: data.to_path_buf(),
            target_domains: target_domains.to_vec(),
            out: out.to_path_buf(),
            config,
            resume: false,
            progress: false,
            device: Device::Cpu,
        }
    }
}

/// What a finished run reports.
#[derive(Debug, Clone, Serialize)]
pub struct TrainSummary {
    /// The run directory.
    pub run_dir: PathBuf,
    /// How the kept checkpoint was chosen.
    pub selection: Selection,
    /// Step of the kept checkpoint.
    pub best_step: u64,
    /// Its source-validation accuracy.
    pub best_source_val_acc: f64,
    /// Every evaluation of the run (step, source-val and target accuracy), in step order.
    pub evaluations: Vec<Evaluation>,
    /// Per-image outcome of the kept checkpoint on the target images (the targets' samples in
    /// split order, concatenated).
    pub target_outcomes: Outcomes,
    /// Zero-shot accuracies.
    pub zero_shot: Vec<DomainAccuracy>,
    /// Accuracies of the kept checkpoint.
    pub trained: Vec<DomainAccuracy>,
    /// Trainable parameters.
    pub parameters: usize,
    /// Training images per second (augmentation, forward, backward, update).
    pub images_per_sec: f64,
    /// Images skipped as unreadable during training.
    pub skipped_images: u64,
    /// Cross-entropy of every step run in this process, in order.
    pub loss_history: Vec<f64>,
    /// The markdown report (also written to the run directory): zero-shot and trained
    /// accuracy per domain and split.
    pub report: String,
}

#[derive(Debug, Serialize)]
struct MetricsLine<'a> {
    step: u64,
    loss: f64,
    ce: f64,
    mmd: f64,
    train_acc: f64,
    lr: f64,
    gate_lr: f64,
    source_val_acc: f64,
    target_acc: f64,
    best: bool,
    gates: &'a [Vec<f32>],
}

/// Names and sha256 of the base model's weight files (hashed once per run).
fn base_weight_files(clip: &LoadedClip) -> Result<Vec<WeightFile>> {
    clip.checkpoint
        .weight_files
        .iter()
        .map(|p| {
            Ok(WeightFile {
                name: p
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                sha256: ahp_spec::files::sha256_file(p)?,
            })
        })
        .collect()
}

fn validate(o: &TrainOptions) -> Result<()> {
    o.config
        .validate()
        .map_err(|e| TrainError::option(e.flag, e.message))?;
    if o.target_domains.is_empty() {
        return Err(TrainError::option(
            "target-domain",
            "give at least one held-out target domain",
        ));
    }
    Ok(())
}

struct Context {
    clip: LoadedClip,
    split: Split,
    classifier: ZeroShotClassifier,
    opts: TrainOptions,
    /// Names and sha256 of the base model's weight files.
    base_weights: Vec<WeightFile>,
}

impl Context {
    fn outcomes(&self, hooks: &[ahp_model::HeadHooks], samples: &[Sample]) -> Result<Outcomes> {
        evaluate_samples(
            &self.clip.model,
            &self.classifier,
            hooks,
            samples,
            self.opts.config.eval_batch_size,
            &self.clip.preprocess,
            &self.opts.device,
        )
    }

    /// Accuracy rows of the requested splits (`in`, `out`, `target`) and the per-image outcomes
    /// of the target images.
    fn evaluate(
        &self,
        hooks: &[ahp_model::HeadHooks],
        splits: &[&str],
    ) -> Result<(Vec<DomainAccuracy>, Outcomes)> {
        let mut rows = Vec::new();
        let mut push = |name: &str, split: &str, o: &Outcomes| {
            rows.push(DomainAccuracy {
                domain: name.to_string(),
                split: split.to_string(),
                images: o.evaluated(),
                correct: o.correct(),
                skipped: o.skipped(),
            })
        };
        for s in &self.split.sources {
            for (split, samples) in [("in", &s.in_split), ("out", &s.out_split)] {
                if splits.contains(&split) {
                    push(&s.name, split, &self.outcomes(hooks, samples)?);
                }
            }
        }
        let mut target = Outcomes::default();
        if splits.contains(&"target") {
            for t in &self.split.targets {
                let o = self.outcomes(hooks, &t.samples)?;
                push(&t.name, "target", &o);
                target.0.extend(o.0);
            }
        }
        Ok((rows, target))
    }
}

/// What `--resume` must find unchanged: the base weights (by hash) and the data (by
/// [`data_digest`]), not how their paths are spelled, plus every setting that shapes the run.
fn fingerprint(ctx: &Context, layout: &AdapterSpec, hp: &TrainConfig) -> Result<serde_json::Value> {
    let o = &ctx.opts;
    let classes = &ctx.split.classes;
    Ok(serde_json::json!({
        "base_weights": ctx.base_weights,
        "data": data_digest(&o.data, &ctx.split)?,
        "target_domains": o.target_domains,
        "method": o.config.method,
        "lora": layout.lora,
        "gates": layout.gates,
        "config": hp,
        "classes": classes,
    }))
}

/// The top-level keys whose values differ between two fingerprints (states written by older
/// versions hold other keys, e.g. the data path instead of its digest: they differ too).
fn differing_keys(saved: &serde_json::Value, now: &serde_json::Value) -> Vec<String> {
    let empty = serde_json::Map::new();
    let (a, b) = (
        saved.as_object().unwrap_or(&empty),
        now.as_object().unwrap_or(&empty),
    );
    let mut keys: Vec<String> = a
        .keys()
        .chain(b.keys())
        .filter(|k| a.get(*k) != b.get(*k))
        .cloned()
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

/// sha256 over every sample of the split: its split, path relative to the dataset root, labels
/// and file size. A resumed run refuses a data set that gained, lost or changed an image.
fn data_digest(root: &Path, split: &Split) -> Result<String> {
    let mut hasher = sha2::Sha256::new();
    let mut add = |tag: &str, samples: &[Sample]| -> Result<()> {
        for s in samples {
            let size = std::fs::metadata(&s.path)
                .map_err(|e| TrainError::run_dir(&s.path, format!("cannot read: {e}")))?
                .len();
            let rel = s.path.strip_prefix(root).unwrap_or(&s.path);
            let line = format!(
                "{tag}\t{}\t{}\t{}\t{size}\n",
                rel.display(),
                s.domain,
                s.class
            );
            hasher.update(line.as_bytes());
        }
        Ok(())
    };
    for s in &split.sources {
        add("in", &s.in_split)?;
        add("out", &s.out_split)?;
    }
    for t in &split.targets {
        add("target", &t.samples)?;
    }
    Ok(format!("{:x}", hasher.finalize()))
}

fn gate_values(trainable: &Trainable) -> Result<Vec<Vec<f32>>> {
    trainable
        .gate_vars()
        .iter()
        .map(|(_, v)| Ok(ahp_model::gates_from_logits(&v.as_tensor().detach())?.to_vec1::<f32>()?))
        .collect()
}

/// Source-validation selection needs a held-out split that can rank checkpoints: every source
/// domain must hold at least `min_holdout` images out.
fn check_holdout(opts: &TrainOptions, split: &Split) -> Result<()> {
    if opts.config.method == Method::ZeroShot || opts.config.selection != Selection::SourceVal {
        return Ok(());
    }
    for s in &split.sources {
        if s.out_split.len() < opts.config.min_holdout.max(1) {
            return Err(TrainError::option(
                "holdout-fraction",
                format!(
                    "source domain `{}` holds out {} of its {} images ({}), fewer than the {} \
                     that selection by source validation needs; raise --holdout-fraction, \
                     lower --min-holdout, or keep the last step with --select last",
                    s.name,
                    s.out_split.len(),
                    s.out_split.len() + s.in_split.len(),
                    opts.config.holdout_fraction,
                    opts.config.min_holdout.max(1)
                ),
            ));
        }
    }
    Ok(())
}

/// Loads the model and data and builds the classifier and the trainable adapters.
fn prepare(opts: &TrainOptions) -> Result<(Context, Trainable, AdapterSpec)> {
    let device = opts.device.clone();
    let clip = LoadedClip::load(&opts.clip, &device)?;
    let vision = clip.model.config().vision_config.clone();
    let dataset = DomainBedDataset::scan(
        &opts.data,
        &ScanOptions {
            allow_missing_classes: opts.config.allow_missing_classes,
        },
    )?;
    let split = dataset.split(&SplitOptions {
        target_domains: opts.target_domains.clone(),
        holdout_fraction: opts.config.holdout_fraction,
        seed: opts.config.split_seed(),
    })?;
    if opts.config.batch_size < split.sources.len() {
        return Err(TrainError::option(
            "batch-size",
            format!(
                "{} is smaller than the number of source domains ({}); every batch must hold every domain",
                opts.config.batch_size,
                split.sources.len()
            ),
        ));
    }
    check_holdout(opts, &split)?;
    let classifier = ZeroShotClassifier::with_templates(
        &clip.model,
        &clip.tokenizer,
        &split.classes,
        &opts.config.templates,
    )?;
    let ranks = match &opts.config.ranks {
        None => default_ranks(vision.num_hidden_layers),
        Some(r) if r.len() == 1 => vec![r[0]; vision.num_hidden_layers],
        Some(r) => r.clone(),
    };
    let layout = AdapterSpec::with_rule(
        opts.config.method,
        &ranks,
        opts.config.alpha,
        &vision,
        opts.config.lora_ranks,
    )?;
    let trainable = Trainable::init(layout.clone(), &vision, opts.config.seed, &device)?;
    let base_weights = base_weight_files(&clip)?;
    let ctx = Context {
        clip,
        split,
        classifier,
        opts: opts.clone(),
        base_weights,
    };
    Ok((ctx, trainable, layout))
}

/// The mutable state of a run: the two optimizer groups, the kept snapshot and the scalars.
struct RunState {
    lora: ParamGroup,
    gates: ParamGroup,
    best: HashMap<String, Tensor>,
    meta: StateMeta,
    /// The run directory's lock, held until the run ends.
    _lock: std::fs::File,
}

/// A fresh state (after the zero-shot evaluation), or the one of an interrupted run.
fn start_or_resume(
    ctx: &Context,
    trainable: &Trainable,
    fp: serde_json::Value,
) -> Result<RunState> {
    let opts = &ctx.opts;
    std::fs::create_dir_all(&opts.out)
        .map_err(|e| TrainError::run_dir(&opts.out, format!("cannot create: {e}")))?;
    let lock = lock_run_dir(&opts.out)?;
    let state_path = opts.out.join(STATE_FILE);
    let mut lora = ParamGroup::new(
        trainable.lora_vars(),
        opts.config.lr,
        opts.config.weight_decay,
        opts.config.grad_clip,
    )?;
    let mut gates = ParamGroup::new(
        trainable.gate_vars(),
        opts.config.gate_lr,
        opts.config.gate_weight_decay,
        opts.config.gate_grad_clip,
    )?;
    if opts.resume && state_path.is_file() {
        let (tensors, mut meta) = load_state(&state_path, &opts.device)?;
        if meta.fingerprint != fp {
            return Err(TrainError::run_dir(
                &state_path,
                format!(
                    "the run was started with different settings (differs: {}); resume with the same options or use a new --out",
                    differing_keys(&meta.fingerprint, &fp).join(", ")
                ),
            ));
        }
        let strip = |prefix: &str| -> HashMap<String, Tensor> {
            tensors
                .iter()
                .filter_map(|(k, v)| k.strip_prefix(prefix).map(|n| (n.to_string(), v.clone())))
                .collect()
        };
        let stale = |e: TrainError| {
            TrainError::run_dir(
                &state_path,
                format!("{e}; it was written by another version or other settings: delete it, or train into a new --out"),
            )
        };
        trainable.restore(&strip("param.")).map_err(stale)?;
        let opt_state = strip("opt.");
        lora.optimizer_mut()
            .load_state(&opt_state, meta.lora_t)
            .map_err(stale)?;
        gates
            .optimizer_mut()
            .load_state(&opt_state, meta.gate_t)
            .map_err(stale)?;
        eprintln!("resuming {} at step {}", opts.out.display(), meta.next_step);
        truncate_metrics(&opts.out.join(METRICS_FILE), meta.next_step)?;
        if meta.run_id.is_empty() {
            meta.run_id = new_run_id(opts);
        }
        return Ok(RunState {
            lora,
            gates,
            best: strip("best."),
            meta,
            _lock: lock,
        });
    }
    if !opts.resume && (state_path.exists() || opts.out.join(MANIFEST_FILE).exists()) {
        return Err(TrainError::run_dir(
            &opts.out,
            "already holds a run; pass --resume to continue it or choose another --out",
        ));
    }
    let (zero_shot, _) = ctx.evaluate(&[], &["in", "out", "target"])?;
    let _ = std::fs::remove_file(opts.out.join(METRICS_FILE));
    Ok(RunState {
        lora,
        gates,
        best: trainable.snapshot()?,
        meta: StateMeta {
            next_step: 0,
            lora_t: 0,
            gate_t: 0,
            best_step: 0,
            best_acc: split_accuracy(&zero_shot, "out"),
            evaluations: Vec::new(),
            zero_shot,
            fingerprint: fp,
            run_id: new_run_id(opts),
        },
        _lock: lock,
    })
}

/// `method-targets-sSEED-UNIXTIME`, fixed when a run starts (a resume keeps it).
fn new_run_id(opts: &TrainOptions) -> String {
    format!(
        "{}-{}-s{}-{}",
        opts.config.method.as_str(),
        opts.target_domains.join("+"),
        opts.config.seed,
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    )
}

fn progress_bar(show: bool, steps: u64, position: u64) -> indicatif::ProgressBar {
    if !show {
        return indicatif::ProgressBar::hidden();
    }
    let b = indicatif::ProgressBar::new(steps);
    b.set_style(
        indicatif::ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    b.set_position(position);
    b
}

/// Runs a training (or, for `zero-shot`, only the evaluation) and leaves the run directory with
/// the checkpoint chosen by `opts.config.selection` (never the untrained step 0 of a trained method).
pub fn train(opts: &TrainOptions) -> Result<TrainSummary> {
    validate(opts)?;
    let opts = &TrainOptions {
        config: opts.config.resolved(),
        ..opts.clone()
    };
    let (ctx, trainable, layout) = prepare(opts)?;
    let hp = &opts.config;
    let fp = fingerprint(&ctx, &layout, hp)?;
    let mut st = start_or_resume(&ctx, &trainable, fp)?;
    let run_id = st.meta.run_id.clone();
    let out = Outputs {
        ctx: &ctx,
        trainable: &trainable,
        run_id: &run_id,
        layout: &layout,
        hp,
    };
    let steps = if opts.config.method == Method::ZeroShot {
        0
    } else {
        opts.config.steps
    };
    let loader_cfg = LoaderConfig::new(
        opts.config.batch_size,
        opts.config.seed,
        ctx.clip.preprocess.clone(),
    );
    let batcher = BalancedBatcher::new(&ctx.split, loader_cfg)?;
    let t0 = Instant::now();
    let trained = train_steps(&out, &batcher, &mut st, steps)?;
    let secs = t0.elapsed().as_secs_f64();
    // Final outputs from the kept snapshot (also for zero-shot and for a resumed finished run).
    out.write(&st.best, &st.meta)?;
    let best_hooks = trainable
        .adapter_from(
            &st.best,
            ctx.classifier.class_embeds(),
            ctx.classifier.logit_scale(),
        )?
        .hooks;
    let (rows, target_outcomes) = ctx.evaluate(&best_hooks, &["in", "out", "target"])?;
    let skipped_train = batcher.stats().skipped;
    let mut report = render_report(opts, &st.meta, &rows, trainable.num_parameters(), &layout);
    if skipped_train > 0 {
        report.push_str(&format!(
            "\n{skipped_train} unreadable training images were skipped.\n"
        ));
    }
    write_atomic(&opts.out.join(REPORT_FILE), report.as_bytes())?;
    Ok(TrainSummary {
        run_dir: opts.out.clone(),
        selection: opts.config.selection,
        best_step: st.meta.best_step,
        best_source_val_acc: st.meta.best_acc,
        evaluations: st.meta.evaluations.clone(),
        target_outcomes,
        zero_shot: st.meta.zero_shot.clone(),
        trained: rows,
        parameters: trainable.num_parameters(),
        images_per_sec: trained.images as f64 / secs.max(1e-9),
        skipped_images: skipped_train,
        loss_history: trained.losses,
        report,
    })
}

/// What the steps run in this process did.
struct StepsDone {
    images: usize,
    losses: Vec<f64>,
}

/// Runs steps `st.meta.next_step..steps`, evaluating and checkpointing every `eval_every`
/// steps and at the end.
fn train_steps(
    out: &Outputs<'_>,
    batcher: &BalancedBatcher,
    st: &mut RunState,
    steps: u64,
) -> Result<StepsDone> {
    let (ctx, opts) = (out.ctx, &out.ctx.opts);
    let device = &opts.device;
    let bar = progress_bar(opts.progress, steps, st.meta.next_step);
    let mut done = StepsDone {
        images: 0,
        losses: Vec::new(),
    };
    let (mut run_correct, mut run_total) = (0usize, 0usize);
    if st.meta.next_step >= steps {
        return Ok(done);
    }
    let prefetch = batcher.prefetch(st.meta.next_step, 2)?;
    for (step, batch) in (st.meta.next_step..steps).zip(prefetch) {
        let batch = batch?;
        let [b, c, h, w] = batch.shape();
        let pixels = Tensor::from_vec(batch.images.clone(), (b, c, h, w), device)?;
        let labels = Tensor::from_vec(batch.labels.clone(), b, device)?;
        let mut sg = step_gradients(
            &ctx.clip.model,
            &ctx.classifier,
            out.trainable,
            &pixels,
            &labels,
            &batch.domains,
            opts.config.mmd_weight,
        )?;
        run_correct += sg.correct;
        run_total += b;
        done.losses.push(sg.ce);
        let loss = sg.ce + opts.config.mmd_weight * sg.mmd;
        if !loss.is_finite() {
            return Err(TrainError::Diverged {
                step,
                message: format!("loss is {loss}"),
            });
        }
        let lr = lr_at(step, st.lora.lr, opts.config.warmup_steps(), steps);
        let gate_lr = lr_at(step, st.gates.lr, opts.config.warmup_steps(), steps);
        for (group, norm) in [
            ("LoRA", st.lora.step(&mut sg.lora, lr)?),
            ("gate", st.gates.step(&mut sg.gates, gate_lr)?),
        ] {
            if !norm.is_finite() {
                return Err(TrainError::Diverged {
                    step,
                    message: format!("the {group} gradient norm is not finite"),
                });
            }
        }
        done.images += b;
        bar.inc(1);
        let train_acc = run_correct as f64 / run_total.max(1) as f64;
        bar.set_message(format!(
            "loss {loss:.3} (ce {:.3} mmd {:.4}) acc {train_acc:.3}",
            sg.ce, sg.mmd
        ));
        let taken = step + 1;
        if taken % opts.config.eval_every() == 0 || taken == steps {
            let line = out.evaluate_and_checkpoint(st, taken)?;
            append_metrics(
                &opts.out.join(METRICS_FILE),
                &MetricsLine {
                    step: taken,
                    loss,
                    ce: sg.ce,
                    mmd: sg.mmd,
                    train_acc,
                    lr,
                    gate_lr,
                    source_val_acc: line.eval.source_val_acc,
                    target_acc: line.eval.target_acc,
                    best: line.kept,
                    gates: &gate_values(out.trainable)?,
                },
            )?;
            bar.println(format!(
                "step {taken}: source-val {:.2}% target {:.2}%{}",
                100.0 * line.eval.source_val_acc,
                100.0 * line.eval.target_acc,
                if line.kept { " (kept)" } else { "" }
            ));
            run_correct = 0;
            run_total = 0;
        }
    }
    bar.finish_and_clear();
    Ok(done)
}

/// One evaluation's result: its accuracies and whether its snapshot became the kept one.
struct EvalLine {
    eval: Evaluation,
    kept: bool,
}

/// What writes the run directory.
struct Outputs<'a> {
    ctx: &'a Context,
    trainable: &'a Trainable,
    run_id: &'a str,
    layout: &'a AdapterSpec,
    hp: &'a TrainConfig,
}

impl Outputs<'_> {
    /// Evaluates the current adapters after `taken` steps, keeps the snapshot if the selection
    /// says so, and saves the resumable state and the run directory.
    fn evaluate_and_checkpoint(&self, st: &mut RunState, taken: u64) -> Result<EvalLine> {
        let ctx = self.ctx;
        let hooks = self
            .trainable
            .adapter_from(
                &self.trainable.snapshot()?,
                ctx.classifier.class_embeds(),
                ctx.classifier.logit_scale(),
            )?
            .hooks;
        let (rows, _) = ctx.evaluate(&hooks, &["out", "target"])?;
        let eval = Evaluation {
            step: taken,
            source_val_acc: split_accuracy(&rows, "out"),
            target_acc: split_accuracy(&rows, "target"),
        };
        // The first evaluation after an update is always kept: a trained method never keeps its
        // untrained state.
        let kept = match ctx.opts.config.selection {
            Selection::Last => true,
            Selection::SourceVal => {
                st.meta.best_step == 0 || eval.source_val_acc > st.meta.best_acc
            }
        };
        if kept {
            st.best = self.trainable.snapshot()?;
            st.meta.best_acc = eval.source_val_acc;
            st.meta.best_step = taken;
        }
        st.meta.evaluations.push(eval);
        st.meta.next_step = taken;
        st.meta.lora_t = st.lora.optimizer().steps();
        st.meta.gate_t = st.gates.optimizer().steps();
        save_full_state(
            &ctx.opts.out.join(STATE_FILE),
            self.trainable,
            [st.lora.optimizer(), st.gates.optimizer()],
            &st.best,
            &st.meta,
        )?;
        self.write(&st.best, &st.meta)?;
        Ok(EvalLine { eval, kept })
    }

    /// Writes `adapter.safetensors` (from `best`) and `run.json`.
    fn write(&self, best: &HashMap<String, Tensor>, meta: &StateMeta) -> Result<()> {
        write_outputs(
            self.ctx,
            self.trainable,
            best,
            meta,
            self.run_id,
            self.layout,
            self.hp,
        )
    }
}

/// Gradients of one training step, per optimizer group.
#[derive(Debug)]
pub struct StepGradients {
    /// Gradient per LoRA factor (by `adapter.safetensors` name): the classification gradient
    /// alone.
    pub lora: HashMap<String, Tensor>,
    /// Gradient per gate-logit tensor: classification + `mmd_weight` × MMD.
    pub gates: HashMap<String, Tensor>,
    /// Cross-entropy of the batch.
    pub ce: f64,
    /// MMD loss of the batch (0 when the method has no gates).
    pub mmd: f64,
    /// Correct top-1 predictions in the batch.
    pub correct: usize,
}

/// Forward pass and the two backward passes of one step: the classification loss reaches LoRA
/// and gates; the MMD loss is differentiated separately and only its gate gradients are used.
pub fn step_gradients(
    model: &ahp_model::ClipModel,
    classifier: &ZeroShotClassifier,
    trainable: &Trainable,
    pixels: &Tensor,
    labels: &Tensor,
    domains: &[u32],
    mmd_weight: f64,
) -> Result<StepGradients> {
    let gates_on = trainable.spec().gates;
    let hooks = trainable.hooks()?;
    let feats = model.image_features(pixels, &hooks, gates_on)?;
    let logits = (l2_normalize(&feats.embeds)?.matmul(&classifier.class_embeds().t()?)?
        * f64::from(classifier.logit_scale()).exp())?;
    let ce = candle_nn::loss::cross_entropy(&logits, labels)?;
    let pred = logits.argmax(candle_core::D::Minus1)?.to_vec1::<u32>()?;
    let label_vec = labels.to_vec1::<u32>()?;
    let correct = pred.iter().zip(&label_vec).filter(|(p, l)| p == l).count();
    let ce_grads = ce.backward()?;
    let pick = |vars: Vec<(String, candle_core::Var)>| -> HashMap<String, Tensor> {
        vars.into_iter()
            .filter_map(|(name, var)| ce_grads.get(var.as_tensor()).map(|g| (name, g.clone())))
            .collect()
    };
    let lora = pick(trainable.lora_vars());
    let mut gates = pick(trainable.gate_vars());
    let mut mmd_value = 0f64;
    if gates_on && mmd_weight > 0.0 {
        if let Some(mmd) = head_mmd_loss(&feats.tower.heads, domains)? {
            mmd_value = f64::from(mmd.to_scalar::<f32>()?);
            let mmd_grads = mmd.backward()?;
            for (name, var) in trainable.gate_vars() {
                if let Some(g) = mmd_grads.get(var.as_tensor()) {
                    let scaled = (g * mmd_weight)?;
                    let entry = match gates.remove(&name) {
                        Some(prev) => (prev + scaled)?,
                        None => scaled,
                    };
                    gates.insert(name, entry);
                }
            }
        }
    }
    Ok(StepGradients {
        lora,
        gates,
        ce: f64::from(ce.to_scalar::<f32>()?),
        mmd: mmd_value,
        correct,
    })
}

fn save_full_state(
    path: &Path,
    trainable: &Trainable,
    optimizers: [&crate::optim::AdamW; 2],
    best: &HashMap<String, Tensor>,
    meta: &StateMeta,
) -> Result<()> {
    let mut tensors = HashMap::new();
    for (k, v) in trainable.snapshot()? {
        tensors.insert(format!("param.{k}"), v);
    }
    for opt in optimizers {
        for (k, v) in opt.state().0 {
            tensors.insert(format!("opt.{k}"), v);
        }
    }
    for (k, v) in best {
        tensors.insert(format!("best.{k}"), v.clone());
    }
    save_state(path, &tensors, meta)
}

fn write_outputs(
    ctx: &Context,
    trainable: &Trainable,
    best: &HashMap<String, Tensor>,
    meta: &StateMeta,
    run_id: &str,
    layout: &AdapterSpec,
    hp: &TrainConfig,
) -> Result<()> {
    let o = &ctx.opts;
    let adapter = trainable.adapter_from(
        best,
        ctx.classifier.class_embeds(),
        ctx.classifier.logit_scale(),
    )?;
    adapter.save(&o.out.join(ADAPTER_FILE))?;
    let weights = ctx.base_weights.clone();
    let manifest = RunManifest {
        format_version: FORMAT_VERSION,
        run_id: run_id.to_string(),
        base: BaseModel {
            location: o.clip.clone(),
            dir: ctx.clip.checkpoint.dir.display().to_string(),
            weights,
        },
        classes: ctx.split.classes.clone(),
        templates: o.config.templates.clone(),
        method: o.config.method,
        lora: layout.lora.clone(),
        gates: layout.gates,
        domains: ctx.split.domains.clone(),
        target_domains: o.target_domains.clone(),
        split_seed: o.config.split_seed(),
        holdout_fraction: o.config.holdout_fraction,
        config: hp.clone(),
        best_step: meta.best_step,
        best_source_val_acc: meta.best_acc,
    };
    let json = serde_json::to_string_pretty(&manifest)
        .map_err(|e| TrainError::run_dir(o.out.join(MANIFEST_FILE), e.to_string()))?;
    Ok(write_atomic(&o.out.join(MANIFEST_FILE), json.as_bytes())?)
}

fn append_metrics(path: &Path, line: &MetricsLine) -> Result<()> {
    let text = serde_json::to_string(line).map_err(|e| TrainError::run_dir(path, e.to_string()))?;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| TrainError::run_dir(path, format!("cannot open: {e}")))?;
    writeln!(f, "{text}").map_err(|e| TrainError::run_dir(path, format!("cannot write: {e}")))?;
    Ok(())
}

/// Drops evaluations after `step` (written by an interrupted run after its last state).
fn truncate_metrics(path: &Path, step: u64) -> Result<()> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(());
    };
    let kept: String = text
        .lines()
        .filter(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .ok()
                .and_then(|v| v["step"].as_u64())
                .is_some_and(|s| s <= step)
        })
        .map(|l| format!("{l}\n"))
        .collect();
    Ok(write_atomic(path, kept.as_bytes())?)
}

fn render_report(
    o: &TrainOptions,
    meta: &StateMeta,
    trained: &[DomainAccuracy],
    parameters: usize,
    layout: &AdapterSpec,
) -> String {
    let mut s = String::new();
    let kept = match (o.config.method, o.config.selection) {
        (Method::ZeroShot, _) => "no training".to_string(),
        (_, Selection::SourceVal) => format!(
            "kept step {} (selected by source-val {:.2}%)",
            meta.best_step,
            100.0 * meta.best_acc
        ),
        (_, Selection::Last) => format!(
            "kept step {} (the last step; source-val {:.2}%)",
            meta.best_step,
            100.0 * meta.best_acc
        ),
    };
    s.push_str(&format!(
        "# ahp-train report\n\nmethod `{}`, target {}, {kept}, {} trainable parameters{}\n\n",
        o.config.method.as_str(),
        o.target_domains.join(", "),
        parameters,
        layout
            .lora
            .as_ref()
            .map(|l| format!(", LoRA ranks {:?} alpha {}", l.ranks, l.alpha))
            .unwrap_or_default()
    ));
    s.push_str(&format!(
        "| domain | split | images | zero-shot | {} |\n|---|---|---:|---:|---:|\n",
        o.config.method.as_str()
    ));
    for row in trained {
        let zs = meta
            .zero_shot
            .iter()
            .find(|z| z.domain == row.domain && z.split == row.split)
            .map(|z| format!("{:.2}%", 100.0 * z.accuracy()))
            .unwrap_or_else(|| "-".into());
        s.push_str(&format!(
            "| {} | {} | {} | {} | {:.2}% |\n",
            row.domain,
            row.split,
            row.images,
            zs,
            100.0 * row.accuracy()
        ));
    }
    let skipped: u64 = trained.iter().map(|r| r.skipped).sum();
    if skipped > 0 {
        s.push_str(&format!(
            "\n{skipped} unreadable images were skipped during evaluation.\n"
        ));
    }
    s
}
