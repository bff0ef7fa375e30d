//! The resumable pretraining state: parameters, both optimizers' moments and the log so far,
//! saved atomically every `save_every` steps into `OUT/pretrain-state.safetensors` (removed once
//! the checkpoint is written). Batches are functions of the step, so a resumed run continues
//! exactly where the interrupted one stopped and ends with the same weights.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor, Var};
use serde::{Deserialize, Serialize};

use super::log::LogLine;
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
/// state file, an error when its fingerprint is not `fingerprint` (other settings) or a tensor is
/// missing or misshapen.
pub(super) fn restore(
    out: &Path,
    vars: &[(String, Var)],
    optimizers: &mut Optimizers,
    fingerprint: &str,
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
            "was written by a pretraining with other settings; rerun with those, or remove it to start over",
        ));
    }
    for (name, var) in vars {
        let key = format!("param.{name}");
        let t = tensors
            .get(&key)
            .ok_or_else(|| TrainError::run_dir(&path, format!("missing tensor `{key}`")))?;
        if t.dims() != var.dims() {
            return Err(TrainError::run_dir(
                &path,
                format!(
                    "tensor `{key}` has shape {:?}, the model {:?}",
                    t.dims(),
                    var.dims()
                ),
            ));
        }
        var.set(t)?;
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
        opt.load_state(&own, t)?;
    }
    Ok(Some(meta))
}
