//! The resumable state of a run: a fresh one after the zero-shot evaluation, or the one an
//! interrupted run saved, refused when the run's fingerprint (base weights, data, settings)
//! changed.

use std::collections::HashMap;
use std::path::Path;

use ahp_spec::run::{MANIFEST_FILE, METRICS_FILE};
use ahp_spec::TrainConfig;
use candle_core::Tensor;

use super::context::{data_digest, Context};
use super::outputs::truncate_metrics;
use super::TrainOptions;
use crate::error::{Result, TrainError};
use crate::eval::split_accuracy;
use crate::optim::ParamGroup;
use crate::state::{load_state, lock_run_dir, save_state, StateMeta, STATE_FILE};
use crate::trainable::{AdapterSpec, Trainable};

/// What `--resume` must find unchanged: the base weights (by hash) and the data (by
/// [`data_digest`]), not how their paths are spelled, plus every setting that shapes the run.
pub(super) fn fingerprint(
    ctx: &Context,
    layout: &AdapterSpec,
    hp: &TrainConfig,
) -> Result<serde_json::Value> {
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
pub(super) fn differing_keys(saved: &serde_json::Value, now: &serde_json::Value) -> Vec<String> {
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

/// The mutable state of a run: the two optimizer groups, the kept snapshot and the scalars.
pub(super) struct RunState {
    pub(super) lora: ParamGroup,
    pub(super) gates: ParamGroup,
    pub(super) best: HashMap<String, Tensor>,
    pub(super) meta: StateMeta,
    /// The run directory's lock, held until the run ends.
    _lock: std::fs::File,
}

/// A fresh state (after the zero-shot evaluation), or the one of an interrupted run.
pub(super) fn start_or_resume(
    ctx: &Context,
    trainable: &Trainable,
    fp: serde_json::Value,
) -> Result<RunState> {
    let opts = &ctx.opts;
    std::fs::create_dir_all(&opts.out)
        .map_err(|e| TrainError::run_dir(&opts.out, format!("cannot create: {e}")))?;
    let lock = lock_run_dir(&opts.out)?;
    let state_path = opts.out.join(STATE_FILE);
    let (mut lora, mut gates) = param_groups(trainable, &opts.config)?;
    if opts.resume && state_path.is_file() {
        let (best, meta) = resume(ctx, trainable, &state_path, fp, [&mut lora, &mut gates])?;
        return Ok(RunState {
            lora,
            gates,
            best,
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

/// The two optimizer groups: HA-LoRA factors and gate logits, each with its own rate, decay
/// and clipping.
fn param_groups(trainable: &Trainable, c: &TrainConfig) -> Result<(ParamGroup, ParamGroup)> {
    Ok((
        ParamGroup::new(trainable.lora_vars(), c.lr, c.weight_decay, c.grad_clip)?,
        ParamGroup::new(
            trainable.gate_vars(),
            c.gate_lr,
            c.gate_weight_decay,
            c.gate_grad_clip,
        )?,
    ))
}

/// Restores the parameters and optimizer moments of the interrupted run saved at
/// `state_path` (refused when its fingerprint differs from `fp`); returns its kept snapshot
/// and metadata.
fn resume(
    ctx: &Context,
    trainable: &Trainable,
    state_path: &Path,
    fp: serde_json::Value,
    [lora, gates]: [&mut ParamGroup; 2],
) -> Result<(HashMap<String, Tensor>, StateMeta)> {
    let opts = &ctx.opts;
    let (tensors, mut meta) = load_state(state_path, &opts.device)?;
    if meta.fingerprint != fp {
        return Err(TrainError::run_dir(
            state_path,
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
            state_path,
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
    Ok((strip("best."), meta))
}

/// `method-targets-sSEED-UNIXTIME`, fixed when a run starts (a resume keeps it).
pub(super) fn new_run_id(opts: &TrainOptions) -> String {
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

/// Saves parameters, optimizer moments and the kept snapshot with the metadata, in one file.
pub(super) fn save_full_state(
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
