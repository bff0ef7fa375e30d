//! The training steps: per step, the classification loss reaches HA-LoRA and gates and the MMD
//! loss only the gates; every `eval_every` steps an evaluation and a checkpoint.

use std::collections::HashMap;

use ahp_data::BalancedBatcher;
use ahp_model::{l2_normalize, ZeroShotClassifier};
use ahp_spec::run::METRICS_FILE;
use candle_core::Tensor;

use super::outputs::{append_metrics, gate_values, MetricsLine, Outputs};
use super::progress_bar;
use super::resume::RunState;
use crate::error::{Result, TrainError};
use crate::mmd::head_mmd_loss;
use crate::optim::lr_at;
use crate::trainable::Trainable;

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

/// What the steps run in this process did.
pub(super) struct StepsDone {
    pub(super) images: usize,
    pub(super) losses: Vec<f64>,
}

/// Runs steps `st.meta.next_step..steps`, evaluating and checkpointing every `eval_every`
/// steps and at the end.
pub(super) fn train_steps(
    out: &Outputs<'_>,
    batcher: &BalancedBatcher,
    st: &mut RunState,
    steps: u64,
) -> Result<StepsDone> {
    let opts = &out.ctx.opts;
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
        let taken_step = take_step(out, st, &batch?, step, steps)?;
        run_correct += taken_step.grads.correct;
        run_total += taken_step.images;
        done.losses.push(taken_step.grads.ce);
        done.images += taken_step.images;
        bar.inc(1);
        let train_acc = run_correct as f64 / run_total.max(1) as f64;
        bar.set_message(format!(
            "loss {:.3} (ce {:.3} mmd {:.4}) acc {train_acc:.3}",
            taken_step.loss, taken_step.grads.ce, taken_step.grads.mmd
        ));
        let taken = step + 1;
        if taken % opts.config.eval_every() == 0 || taken == steps {
            let line = evaluate_and_log(out, st, taken, &taken_step, train_acc)?;
            bar.println(line);
            run_correct = 0;
            run_total = 0;
        }
    }
    bar.finish_and_clear();
    Ok(done)
}

/// What one optimizer step did.
struct TakenStep {
    grads: StepGradients,
    images: usize,
    loss: f64,
    lr: f64,
    gate_lr: f64,
}

/// Gradients and the update of both groups for one batch; fails on a non-finite loss or
/// gradient norm.
fn take_step(
    out: &Outputs<'_>,
    st: &mut RunState,
    batch: &ahp_data::Batch,
    step: u64,
    steps: u64,
) -> Result<TakenStep> {
    let (ctx, opts) = (out.ctx, &out.ctx.opts);
    let device = &opts.device;
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
    Ok(TakenStep {
        grads: sg,
        images: b,
        loss,
        lr,
        gate_lr,
    })
}

/// Evaluates and checkpoints after `taken` steps, appends the metrics line, and returns the
/// progress line to print.
fn evaluate_and_log(
    out: &Outputs<'_>,
    st: &mut RunState,
    taken: u64,
    last: &TakenStep,
    train_acc: f64,
) -> Result<String> {
    let line = out.evaluate_and_checkpoint(st, taken)?;
    append_metrics(
        &out.ctx.opts.out.join(METRICS_FILE),
        &MetricsLine {
            step: taken,
            loss: last.loss,
            ce: last.grads.ce,
            mmd: last.grads.mmd,
            train_acc,
            lr: last.lr,
            gate_lr: last.gate_lr,
            source_val_acc: line.eval.source_val_acc,
            target_acc: line.eval.target_acc,
            best: line.kept,
            gates: &gate_values(out.trainable)?,
        },
    )?;
    Ok(format!(
        "step {taken}: source-val {:.2}% target {:.2}%{}",
        100.0 * line.eval.source_val_acc,
        100.0 * line.eval.target_acc,
        if line.kept { " (kept)" } else { "" }
    ))
}
