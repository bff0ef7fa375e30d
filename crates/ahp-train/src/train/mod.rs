//! The training loop: balanced multi-domain batches, classification loss for LoRA and gates,
//! MMD for the gates only, model selection on the source domains' held-out split, atomic run
//! directory, bit-exact resume.

mod context;
mod outputs;
mod report;
mod resume;
mod step;

use std::path::{Path, PathBuf};
use std::time::Instant;

use ahp_data::{BalancedBatcher, LoaderConfig};
use ahp_spec::files::write_atomic;
use ahp_spec::run::{Method, Selection, REPORT_FILE};
use ahp_spec::TrainConfig;
use candle_core::Device;
use serde::Serialize;

pub use step::{step_gradients, StepGradients};

use crate::error::{Result, TrainError};
use crate::eval::{DomainAccuracy, Evaluation, Outcomes};
use context::prepare;
use outputs::Outputs;
use report::render_report;
use resume::{fingerprint, start_or_resume};
use step::train_steps;

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

/// Refuses options no run can start with, naming the flag.
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

/// The progress bar of a run of `steps` steps, at `position` (hidden unless `show`).
pub(super) fn progress_bar(show: bool, steps: u64, position: u64) -> indicatif::ProgressBar {
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
