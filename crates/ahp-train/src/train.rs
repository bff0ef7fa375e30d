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
    BaseModel, Hyperparameters, Method, RunManifest, WeightFile, ADAPTER_FILE, FORMAT_VERSION,
    MANIFEST_FILE, METRICS_FILE, REPORT_FILE,
};
use candle_core::{Device, Tensor};
use serde::Serialize;
use sha2::Digest;

use crate::adapters::{default_ranks, Layout, Trainable};
use crate::error::{Result, TrainError};
use crate::eval::{count_correct, split_accuracy, DomainAccuracy};
use crate::mmd::head_mmd_loss;
use crate::optim::{clip_grad_norm, lr_at, AdamW, AdamWConfig};
use crate::state::{load_state, save_state, write_atomic, StateMeta, STATE_FILE};

/// Everything `ahp-train` needs.
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
    /// Method.
    pub method: Method,
    /// Optimizer steps (computed from epochs by the CLI when given).
    pub steps: u64,
    /// Images per step.
    pub batch_size: usize,
    /// Images per evaluation forward pass.
    pub eval_batch_size: usize,
    /// Peak LoRA learning rate.
    pub lr: f64,
    /// Peak gate learning rate.
    pub gate_lr: f64,
    /// LoRA weight decay.
    pub weight_decay: f64,
    /// Warmup steps.
    pub warmup_steps: u64,
    /// Gradient clipping (0 = off).
    pub grad_clip: f64,
    /// MMD weight.
    pub mmd_weight: f64,
    /// HA-LoRA ranks per block (`None` = the paper's default; one value = every block).
    pub ranks: Option<Vec<usize>>,
    /// LoRA alpha.
    pub alpha: f64,
    /// Seed of initialization, batches and augmentation.
    pub seed: u64,
    /// Seed of the in/out split.
    pub split_seed: u64,
    /// Held-out fraction of each source domain.
    pub holdout_fraction: f64,
    /// Prompt template.
    pub template: String,
    /// Accept domains lacking some classes.
    pub allow_missing_classes: bool,
    /// Evaluate (and checkpoint) every this many steps.
    pub eval_every: u64,
    /// Continue an interrupted run in `out`.
    pub resume: bool,
    /// Show a progress bar.
    pub progress: bool,
    /// Device.
    pub device: Device,
}

/// What a finished run reports.
#[derive(Debug, Clone, Serialize)]
pub struct TrainSummary {
    /// The run directory.
    pub run_dir: PathBuf,
    /// Step of the kept checkpoint.
    pub best_step: u64,
    /// Its source-validation accuracy.
    pub best_source_val_acc: f64,
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

fn sha256_file(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path)
        .map_err(|e| TrainError::run_dir(path, format!("cannot read: {e}")))?;
    let mut hasher = sha2::Sha256::new();
    std::io::copy(&mut f, &mut hasher)
        .map_err(|e| TrainError::run_dir(path, format!("cannot read: {e}")))?;
    Ok(format!("{:x}", hasher.finalize()))
}

fn validate(o: &TrainOptions) -> Result<()> {
    if o.batch_size == 0 {
        return Err(TrainError::option("batch-size", "must be at least 1"));
    }
    if o.eval_batch_size == 0 {
        return Err(TrainError::option("eval-batch-size", "must be at least 1"));
    }
    if o.eval_every == 0 {
        return Err(TrainError::option("eval-every", "must be at least 1"));
    }
    for (name, v) in [("lr", o.lr), ("gate-lr", o.gate_lr)] {
        if !(v.is_finite() && v >= 0.0) {
            return Err(TrainError::option(
                name,
                format!("must be a finite number >= 0, got {v}"),
            ));
        }
    }
    if !(o.mmd_weight.is_finite() && o.mmd_weight >= 0.0) {
        return Err(TrainError::option("mmd-weight", "must be >= 0"));
    }
    if o.target_domains.is_empty() {
        return Err(TrainError::option(
            "target-domain",
            "give at least one held-out target domain",
        ));
    }
    if o.method != Method::ZeroShot && o.steps == 0 {
        return Err(TrainError::option(
            "steps",
            "must be at least 1 (or use --method zero-shot)",
        ));
    }
    Ok(())
}

struct Context {
    clip: LoadedClip,
    split: Split,
    classifier: ZeroShotClassifier,
    opts: TrainOptions,
}

impl Context {
    fn evaluate(
        &self,
        hooks: &[ahp_model::HeadHooks],
        splits: &[&str],
    ) -> Result<Vec<DomainAccuracy>> {
        let mut rows = Vec::new();
        let mut push = |name: &str, split: &str, samples: &[Sample]| -> Result<()> {
            let (correct, images, skipped) = count_correct(
                &self.clip.model,
                &self.classifier,
                hooks,
                samples,
                self.opts.eval_batch_size,
                &self.clip.preprocess,
                &self.opts.device,
            )?;
            rows.push(DomainAccuracy {
                domain: name.to_string(),
                split: split.to_string(),
                images,
                correct,
                skipped,
            });
            Ok(())
        };
        for s in &self.split.sources {
            if splits.contains(&"in") {
                push(&s.name, "in", &s.in_split)?;
            }
            if splits.contains(&"out") {
                push(&s.name, "out", &s.out_split)?;
            }
        }
        if splits.contains(&"target") {
            for t in &self.split.targets {
                push(&t.name, "target", &t.samples)?;
            }
        }
        Ok(rows)
    }
}

fn fingerprint(
    o: &TrainOptions,
    layout: &Layout,
    hp: &Hyperparameters,
    classes: &[String],
) -> serde_json::Value {
    serde_json::json!({
        "clip": o.clip,
        "data": o.data.display().to_string(),
        "target_domains": o.target_domains,
        "method": o.method,
        "lora": layout.lora,
        "gates": layout.gates,
        "hyperparameters": hp,
        "split_seed": o.split_seed,
        "holdout_fraction": o.holdout_fraction,
        "template": o.template,
        "classes": classes,
    })
}

fn gate_values(trainable: &Trainable) -> Result<Vec<Vec<f32>>> {
    trainable
        .gate_vars()
        .iter()
        .map(|(_, v)| Ok(ahp_model::gates_from_logits(&v.as_tensor().detach())?.to_vec1::<f32>()?))
        .collect()
}

/// Runs a training (or, for `zero-shot`, only the evaluation) and leaves the run directory with
/// the best checkpoint by source-validation accuracy.
pub fn train(opts: &TrainOptions) -> Result<TrainSummary> {
    validate(opts)?;
    let device = opts.device.clone();
    let clip = LoadedClip::load(&opts.clip, &device)?;
    let vision = clip.model.config().vision_config.clone();
    let dataset = DomainBedDataset::scan(
        &opts.data,
        &ScanOptions {
            allow_missing_classes: opts.allow_missing_classes,
        },
    )?;
    let split = dataset.split(&SplitOptions {
        target_domains: opts.target_domains.clone(),
        holdout_fraction: opts.holdout_fraction,
        seed: opts.split_seed,
    })?;
    if opts.batch_size < split.sources.len() {
        return Err(TrainError::option(
            "batch-size",
            format!(
                "{} is smaller than the number of source domains ({}); every batch must hold every domain",
                opts.batch_size,
                split.sources.len()
            ),
        ));
    }
    let classes = split.classes.clone();
    let classifier =
        ZeroShotClassifier::new(&clip.model, &clip.tokenizer, &classes, &opts.template)?;
    let ranks = match &opts.ranks {
        None => default_ranks(vision.num_hidden_layers),
        Some(r) if r.len() == 1 => vec![r[0]; vision.num_hidden_layers],
        Some(r) => r.clone(),
    };
    let layout = Layout::new(opts.method, &ranks, opts.alpha, &vision)?;
    let trainable = Trainable::init(layout.clone(), &vision, opts.seed, &device)?;
    let hp = Hyperparameters {
        steps: opts.steps,
        batch_size: opts.batch_size,
        lr: opts.lr,
        gate_lr: opts.gate_lr,
        weight_decay: opts.weight_decay,
        warmup_steps: opts.warmup_steps,
        grad_clip: opts.grad_clip,
        mmd_weight: opts.mmd_weight,
        seed: opts.seed,
        eval_every: opts.eval_every,
    };
    let fp = fingerprint(opts, &layout, &hp, &classes);
    let ctx = Context {
        clip,
        split,
        classifier,
        opts: opts.clone(),
    };

    std::fs::create_dir_all(&opts.out)
        .map_err(|e| TrainError::run_dir(&opts.out, format!("cannot create: {e}")))?;
    let state_path = opts.out.join(STATE_FILE);
    let mut lora_opt = AdamW::new(
        trainable.lora_vars(),
        AdamWConfig {
            weight_decay: opts.weight_decay,
            ..Default::default()
        },
    )?;
    let mut gate_opt = AdamW::new(trainable.gate_vars(), AdamWConfig::default())?;
    let mut meta;
    let mut best: HashMap<String, Tensor>;
    if opts.resume && state_path.is_file() {
        let (tensors, m) = load_state(&state_path, &device)?;
        if m.fingerprint != fp {
            return Err(TrainError::run_dir(
                &state_path,
                "the run was started with different settings; resume with the same options or use a new --out",
            ));
        }
        let strip = |prefix: &str| -> HashMap<String, Tensor> {
            tensors
                .iter()
                .filter_map(|(k, v)| k.strip_prefix(prefix).map(|n| (n.to_string(), v.clone())))
                .collect()
        };
        trainable.restore(&strip("param."))?;
        let opt_state = strip("opt.");
        lora_opt.load_state(&opt_state, m.lora_t)?;
        gate_opt.load_state(&opt_state, m.gate_t)?;
        best = strip("best.");
        meta = m;
        eprintln!("resuming {} at step {}", opts.out.display(), meta.next_step);
        truncate_metrics(&opts.out.join(METRICS_FILE), meta.next_step)?;
    } else {
        if !opts.resume && (state_path.exists() || opts.out.join(MANIFEST_FILE).exists()) {
            return Err(TrainError::run_dir(
                &opts.out,
                "already holds a run; pass --resume to continue it or choose another --out",
            ));
        }
        let zero_shot = ctx.evaluate(&[], &["in", "out", "target"])?;
        meta = StateMeta {
            next_step: 0,
            lora_t: 0,
            gate_t: 0,
            best_step: 0,
            best_acc: split_accuracy(&zero_shot, "out"),
            zero_shot,
            fingerprint: fp.clone(),
        };
        best = trainable.snapshot()?;
        let _ = std::fs::remove_file(opts.out.join(METRICS_FILE));
    }

    let loader_cfg = LoaderConfig::new(opts.batch_size, opts.seed, ctx.clip.preprocess.clone());
    let batcher = BalancedBatcher::new(&ctx.split, loader_cfg)?;
    let run_id = format!(
        "{}-{}-s{}-{}",
        opts.method.as_str(),
        opts.target_domains.join("+"),
        opts.seed,
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    );
    let steps = if opts.method == Method::ZeroShot {
        0
    } else {
        opts.steps
    };
    let bar = if opts.progress {
        let b = indicatif::ProgressBar::new(steps);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{elapsed_precise} [{bar:30}] {pos}/{len} {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b.set_position(meta.next_step);
        b
    } else {
        indicatif::ProgressBar::hidden()
    };
    let t0 = Instant::now();
    let mut images_seen = 0usize;
    let mut loss_history = Vec::new();
    let (mut run_correct, mut run_total) = (0usize, 0usize);
    if meta.next_step < steps {
        let prefetch = batcher.prefetch(meta.next_step, 2)?;
        for (step, batch) in (meta.next_step..steps).zip(prefetch) {
            let batch = batch?;
            let [b, c, h, w] = batch.shape();
            let pixels = Tensor::from_vec(batch.images.clone(), (b, c, h, w), &device)?;
            let labels = Tensor::from_vec(batch.labels.clone(), b, &device)?;
            let sg = step_gradients(
                &ctx.clip.model,
                &ctx.classifier,
                &trainable,
                &pixels,
                &labels,
                &batch.domains,
                opts.mmd_weight,
            )?;
            run_correct += sg.correct;
            run_total += b;
            loss_history.push(sg.ce);
            let mut grads = sg.grads;
            let (ce_value, mmd_value) = (sg.ce, sg.mmd);
            let loss = ce_value + opts.mmd_weight * mmd_value;
            if !loss.is_finite() {
                return Err(TrainError::Diverged {
                    step,
                    message: format!("loss is {loss}"),
                });
            }
            let norm = clip_grad_norm(&mut grads, opts.grad_clip)?;
            if !norm.is_finite() {
                return Err(TrainError::Diverged {
                    step,
                    message: "gradient norm is not finite".into(),
                });
            }
            let lr = lr_at(step, opts.lr, opts.warmup_steps, steps);
            let gate_lr = lr_at(step, opts.gate_lr, opts.warmup_steps, steps);
            lora_opt.step(&grads, lr)?;
            gate_opt.step(&grads, gate_lr)?;
            images_seen += b;
            bar.inc(1);
            bar.set_message(format!(
                "loss {loss:.3} (ce {ce_value:.3} mmd {mmd_value:.4}) acc {:.3}",
                run_correct as f64 / run_total.max(1) as f64
            ));

            let done = step + 1;
            if done % opts.eval_every == 0 || done == steps {
                let eval_hooks = trainable
                    .adapter_from(
                        &trainable.snapshot()?,
                        ctx.classifier.class_embeds(),
                        ctx.classifier.logit_scale(),
                    )?
                    .hooks;
                let rows = ctx.evaluate(&eval_hooks, &["out", "target"])?;
                let val = split_accuracy(&rows, "out");
                let target = split_accuracy(&rows, "target");
                let improved = val > meta.best_acc;
                if improved {
                    best = trainable.snapshot()?;
                    meta.best_acc = val;
                    meta.best_step = done;
                }
                meta.next_step = done;
                meta.lora_t = lora_opt.steps();
                meta.gate_t = gate_opt.steps();
                save_full_state(&state_path, &trainable, &lora_opt, &gate_opt, &best, &meta)?;
                let gates = gate_values(&trainable)?;
                append_metrics(
                    &opts.out.join(METRICS_FILE),
                    &MetricsLine {
                        step: done,
                        loss,
                        ce: ce_value,
                        mmd: mmd_value,
                        train_acc: run_correct as f64 / run_total.max(1) as f64,
                        lr,
                        gate_lr,
                        source_val_acc: val,
                        target_acc: target,
                        best: improved,
                        gates: &gates,
                    },
                )?;
                write_outputs(&ctx, &trainable, &best, &meta, &run_id, &layout, &hp)?;
                bar.println(format!(
                    "step {done}: source-val {:.2}% target {:.2}%{}",
                    100.0 * val,
                    100.0 * target,
                    if improved { " (best)" } else { "" }
                ));
                run_correct = 0;
                run_total = 0;
            }
        }
    }
    bar.finish_and_clear();
    let secs = t0.elapsed().as_secs_f64();
    // Final outputs from the best snapshot (also for zero-shot and for a resumed finished run).
    write_outputs(&ctx, &trainable, &best, &meta, &run_id, &layout, &hp)?;
    let best_hooks = trainable
        .adapter_from(
            &best,
            ctx.classifier.class_embeds(),
            ctx.classifier.logit_scale(),
        )?
        .hooks;
    let trained = ctx.evaluate(&best_hooks, &["in", "out", "target"])?;
    let skipped_train = batcher.stats().skipped;
    let mut report = render_report(opts, &meta, &trained, trainable.num_parameters(), &layout);
    if skipped_train > 0 {
        report.push_str(&format!(
            "
{skipped_train} unreadable training images were skipped.
"
        ));
    }
    write_atomic(&opts.out.join(REPORT_FILE), report.as_bytes())?;
    Ok(TrainSummary {
        run_dir: opts.out.clone(),
        best_step: meta.best_step,
        best_source_val_acc: meta.best_acc,
        zero_shot: meta.zero_shot.clone(),
        trained,
        parameters: trainable.num_parameters(),
        images_per_sec: images_seen as f64 / secs.max(1e-9),
        skipped_images: skipped_train,
        loss_history,
        report,
    })
}

/// Gradients of one training step.
#[derive(Debug)]
pub struct StepGradients {
    /// Gradient per trainable tensor (by `adapter.safetensors` name): LoRA factors get the
    /// classification gradient only; gate logits get classification + `mmd_weight` × MMD.
    pub grads: HashMap<String, Tensor>,
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
    let gates_on = trainable.layout().gates;
    let hooks = trainable.hooks()?;
    let feats = model.image_features(pixels, &hooks, gates_on)?;
    let logits = (l2_normalize(&feats.embeds)?.matmul(&classifier.class_embeds().t()?)?
        * f64::from(classifier.logit_scale()).exp())?;
    let ce = candle_nn::loss::cross_entropy(&logits, labels)?;
    let pred = logits.argmax(candle_core::D::Minus1)?.to_vec1::<u32>()?;
    let label_vec = labels.to_vec1::<u32>()?;
    let correct = pred.iter().zip(&label_vec).filter(|(p, l)| p == l).count();
    let ce_grads = ce.backward()?;
    let mut grads: HashMap<String, Tensor> = HashMap::new();
    for (name, var) in trainable
        .lora_vars()
        .into_iter()
        .chain(trainable.gate_vars())
    {
        if let Some(g) = ce_grads.get(var.as_tensor()) {
            grads.insert(name, g.clone());
        }
    }
    let mut mmd_value = 0f64;
    if gates_on && mmd_weight > 0.0 {
        if let Some(mmd) = head_mmd_loss(&feats.tower.heads, domains)? {
            mmd_value = f64::from(mmd.to_scalar::<f32>()?);
            let mmd_grads = mmd.backward()?;
            for (name, var) in trainable.gate_vars() {
                if let Some(g) = mmd_grads.get(var.as_tensor()) {
                    let scaled = (g * mmd_weight)?;
                    let entry = match grads.remove(&name) {
                        Some(prev) => (prev + scaled)?,
                        None => scaled,
                    };
                    grads.insert(name, entry);
                }
            }
        }
    }
    Ok(StepGradients {
        grads,
        ce: f64::from(ce.to_scalar::<f32>()?),
        mmd: mmd_value,
        correct,
    })
}

fn save_full_state(
    path: &Path,
    trainable: &Trainable,
    lora_opt: &AdamW,
    gate_opt: &AdamW,
    best: &HashMap<String, Tensor>,
    meta: &StateMeta,
) -> Result<()> {
    let mut tensors = HashMap::new();
    for (k, v) in trainable.snapshot()? {
        tensors.insert(format!("param.{k}"), v);
    }
    for opt in [lora_opt, gate_opt] {
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
    layout: &Layout,
    hp: &Hyperparameters,
) -> Result<()> {
    let o = &ctx.opts;
    let adapter = trainable.adapter_from(
        best,
        ctx.classifier.class_embeds(),
        ctx.classifier.logit_scale(),
    )?;
    adapter.save(&o.out.join(ADAPTER_FILE))?;
    let weights = ctx
        .clip
        .checkpoint
        .weight_files
        .iter()
        .map(|p| {
            Ok(WeightFile {
                name: p
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                sha256: sha256_file(p)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let manifest = RunManifest {
        format_version: FORMAT_VERSION,
        run_id: run_id.to_string(),
        base: BaseModel {
            location: o.clip.clone(),
            dir: ctx.clip.checkpoint.dir.display().to_string(),
            weights,
        },
        classes: ctx.split.classes.clone(),
        template: o.template.clone(),
        method: o.method,
        lora: layout.lora.clone(),
        gates: layout.gates,
        domains: ctx.split.domains.clone(),
        target_domains: o.target_domains.clone(),
        split_seed: o.split_seed,
        holdout_fraction: o.holdout_fraction,
        hyperparameters: hp.clone(),
        best_step: meta.best_step,
        best_source_val_acc: meta.best_acc,
    };
    let json = serde_json::to_string_pretty(&manifest)
        .map_err(|e| TrainError::run_dir(o.out.join(MANIFEST_FILE), e.to_string()))?;
    write_atomic(&o.out.join(MANIFEST_FILE), json.as_bytes())
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
    write_atomic(path, kept.as_bytes())
}

fn render_report(
    o: &TrainOptions,
    meta: &StateMeta,
    trained: &[DomainAccuracy],
    parameters: usize,
    layout: &Layout,
) -> String {
    let mut s = String::new();
    s.push_str(&format!(
        "# ahp-train report\n\nmethod `{}`, target {}, best step {} (source-val {:.2}%), {} trainable parameters{}\n\n",
        o.method.as_str(),
        o.target_domains.join(", "),
        meta.best_step,
        100.0 * meta.best_acc,
        parameters,
        layout
            .lora
            .as_ref()
            .map(|l| format!(", LoRA ranks {:?} alpha {}", l.ranks, l.alpha))
            .unwrap_or_default()
    ));
    s.push_str(&format!(
        "| domain | split | images | zero-shot | {} |\n|---|---|---:|---:|---:|\n",
        o.method.as_str()
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
