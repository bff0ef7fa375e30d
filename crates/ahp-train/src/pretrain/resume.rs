//! The resumable pretraining state: parameters, both optimizers' moments and the log so far,
//! saved atomically every `save_every` steps into `OUT/pretrain-state.safetensors` (removed once
//! the checkpoint is written). Batches are functions of the step, so a resumed run continues
//! exactly where the interrupted one stopped and ends with the same weights.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor, Var};
use serde::{Deserialize, Serialize};

use super::log::{LogLine, Window};
use super::Optimizers;
use crate::error::{Result, TrainError};
use crate::state::{load_tensors, save_tensors};

/// File name of the state in the output directory.
pub const STATE_FILE: &str = "pretrain-state.safetensors";
const META_KEY: &str = "ahp.pretrain_state";

/// The scalars of the state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Meta {
    /// The next step to run.
    pub(super) next_step: u64,
    /// Steps taken by the two optimizers.
    pub(super) optimizer_steps: (u64, u64),
    /// Everything that decides the trajectory; must match to resume.
    pub(super) fingerprint: String,
    /// The log lines so far.
    pub(super) log: Vec<LogLine>,
    /// The running sums of the current logging window.
    pub(super) window: Window,
}

/// The state file of an output directory.
pub(super) fn state_path(out: &Path) -> PathBuf {
    out.join(STATE_FILE)
}

/// Saves the parameters, the optimizers and `meta`.
pub(super) fn save(
    out: &Path,
    vars: &[(String, Var)],
    optimizers: &Optimizers,
    meta: &Meta,
) -> Result<()> {
    let mut tensors: HashMap<String, Tensor> = vars
        .iter()
        .map(|(n, v)| (format!("param.{n}"), v.as_tensor().clone()))
        .collect();
    for (prefix, opt) in [
        ("decayed", &optimizers.decayed),
        ("plain", &optimizers.plain),
    ] {
        let (state, _) = opt.state();
        tensors.extend(state.into_iter().map(|(k, t)| (format!("{prefix}.{k}"), t)));
    }
    save_tensors(&state_path(out), &tensors, META_KEY, meta)
}

/// Restores a saved state into `vars` and `optimizers` when one exists: `Ok(None)` without a
/// state file; an error naming the file when its fingerprint is not `fingerprint` (other
/// settings or data), its counters do not fit a run of `steps` steps, or a tensor is missing or
/// misshapen.
pub(super) fn restore(
    out: &Path,
    vars: &[(String, Var)],
    optimizers: &mut Optimizers,
    (fingerprint, steps): (&str, u64),
    device: &Device,
) -> Result<Option<Meta>> {
    let path = state_path(out);
    if !path.is_file() {
        return Ok(None);
    }
    let (tensors, meta): (HashMap<String, Tensor>, Meta) = load_tensors(&path, device, META_KEY)?;
    if meta.fingerprint != fingerprint {
        return Err(TrainError::run_dir(
            &path,
            "was written by a pretraining with other settings or data; rerun with those, or remove it to start over",
        ));
    }
    let n = meta.next_step;
    if n == 0 || n >= steps || meta.optimizer_steps != (n, n) || meta.log.iter().any(|l| l.step > n)
    {
        return Err(TrainError::run_dir(
            &path,
            format!(
                "inconsistent state: next step {n} of {steps}, optimizer steps {:?}; remove it to start over",
                meta.optimizer_steps
            ),
        ));
    }
    check_shapes(&path, vars, &tensors)?;
    for (name, var) in vars {
        var.set(&tensors[&format!("param.{name}")])?;
    }
    for (prefix, opt, t) in [
        ("decayed", &mut optimizers.decayed, meta.optimizer_steps.0),
        ("plain", &mut optimizers.plain, meta.optimizer_steps.1),
    ] {
        let own: HashMap<String, Tensor> = tensors
            .iter()
            .filter_map(|(k, v)| {
                k.strip_prefix(prefix)
                    .and_then(|r| r.strip_prefix('.'))
                    .map(|r| (r.to_string(), v.clone()))
            })
            .collect();
        opt.load_state(&own, t)
            .map_err(|e| TrainError::run_dir(&path, e.to_string()))?;
    }
    Ok(Some(meta))
}

/// Every parameter (and every optimizer moment the file has) exists with the model's shape.
fn check_shapes(
    path: &Path,
    vars: &[(String, Var)],
    tensors: &HashMap<String, Tensor>,
) -> Result<()> {
    let shapes: HashMap<&str, &[usize]> =
        vars.iter().map(|(n, v)| (n.as_str(), v.dims())).collect();
    for (name, dims) in &shapes {
        let key = format!("param.{name}");
        let t = tensors
            .get(&key)
            .ok_or_else(|| TrainError::run_dir(path, format!("missing tensor `{key}`")))?;
        if t.dims() != *dims {
            return Err(TrainError::run_dir(
                path,
                format!(
                    "tensor `{key}` has shape {:?}, the model {dims:?}",
                    t.dims()
                ),
            ));
        }
    }
    for (key, t) in tensors {
        let var = ["decayed.m.", "decayed.v.", "plain.m.", "plain.v."]
            .iter()
            .find_map(|p| key.strip_prefix(p));
        if let Some(dims) = var.and_then(|v| shapes.get(v)) {
            if t.dims() != *dims {
                return Err(TrainError::run_dir(
                    path,
                    format!(
                        "tensor `{key}` has shape {:?}, the model {dims:?}",
                        t.dims()
                    ),
                ));
            }
        }
    }
    Ok(())
}
