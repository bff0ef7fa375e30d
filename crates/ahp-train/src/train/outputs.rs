//! Writing the run directory: `adapter.safetensors` and `run.json` of the kept snapshot, the
//! `metrics.jsonl` lines of every evaluation, and the checkpoint after each evaluation.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use ahp_spec::files::write_atomic;
use ahp_spec::run::{
    BaseModel, RunManifest, Selection, ADAPTER_FILE, FORMAT_VERSION, MANIFEST_FILE,
};
use ahp_spec::TrainConfig;
use candle_core::Tensor;
use serde::Serialize;

use super::context::Context;
use super::resume::{save_full_state, RunState};
use crate::error::{Result, TrainError};
use crate::eval::{split_accuracy, Evaluation};
use crate::state::{StateMeta, STATE_FILE};
use crate::trainable::{AdapterSpec, Trainable};

/// One line of `metrics.jsonl`: the step's losses, rates and accuracies, and the gates.
#[derive(Debug, Serialize)]
pub(super) struct MetricsLine<'a> {
    pub(super) step: u64,
    pub(super) loss: f64,
    pub(super) ce: f64,
    pub(super) mmd: f64,
    pub(super) train_acc: f64,
    pub(super) lr: f64,
    pub(super) gate_lr: f64,
    pub(super) source_val_acc: f64,
    pub(super) target_acc: f64,
    pub(super) best: bool,
    pub(super) gates: &'a [Vec<f32>],
}

/// The gate values (H · softmax) of every gated block.
pub(super) fn gate_values(trainable: &Trainable) -> Result<Vec<Vec<f32>>> {
    trainable
        .gate_vars()
        .iter()
        .map(|(_, v)| Ok(ahp_model::gates_from_logits(&v.as_tensor().detach())?.to_vec1::<f32>()?))
        .collect()
}

/// One evaluation's result: its accuracies and whether its snapshot became the kept one.
pub(super) struct EvalLine {
    pub(super) eval: Evaluation,
    pub(super) kept: bool,
}

/// What writes the run directory.
pub(super) struct Outputs<'a> {
    pub(super) ctx: &'a Context,
    pub(super) trainable: &'a Trainable,
    pub(super) run_id: &'a str,
    pub(super) layout: &'a AdapterSpec,
    pub(super) hp: &'a TrainConfig,
}

impl Outputs<'_> {
    /// Evaluates the current adapters after `taken` steps, keeps the snapshot if the selection
    /// says so, and saves the resumable state and the run directory.
    pub(super) fn evaluate_and_checkpoint(
        &self,
        st: &mut RunState,
        taken: u64,
    ) -> Result<EvalLine> {
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
    pub(super) fn write(&self, best: &HashMap<String, Tensor>, meta: &StateMeta) -> Result<()> {
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

/// Writes `adapter.safetensors` and `run.json` of the snapshot `best`.
pub(super) fn write_outputs(
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

/// Appends one line to `metrics.jsonl`.
pub(super) fn append_metrics(path: &Path, line: &MetricsLine) -> Result<()> {
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
pub(super) fn truncate_metrics(path: &Path, step: u64) -> Result<()> {
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
