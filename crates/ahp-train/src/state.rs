//! The resumable training state (`state.safetensors`: parameters,
//! optimizer moments and the best snapshot as tensors, the rest as JSON metadata, in one file
//! so a crash can never leave them inconsistent).

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};

/// File name of the resumable state in a run directory.
pub const STATE_FILE: &str = "state.safetensors";
const META_KEY: &str = "ahp.state";

/// Scalars of the training state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StateMeta {
    /// The next step to run.
    pub next_step: u64,
    /// Steps taken by the LoRA optimizer.
    pub lora_t: u64,
    /// Steps taken by the gate optimizer.
    pub gate_t: u64,
    /// Step of the kept snapshot (0 until the first evaluation after an update).
    pub best_step: u64,
    /// Its source-validation accuracy (the zero-shot one until then).
    pub best_acc: f64,
    /// Every evaluation so far, in step order.
    #[serde(default)]
    pub evaluations: Vec<crate::eval::Evaluation>,
    /// Zero-shot accuracies, `domain -> split -> accuracy`.
    pub zero_shot: Vec<crate::eval::DomainAccuracy>,
    /// Settings that must match on `--resume`.
    pub fingerprint: serde_json::Value,
    /// The run's id, kept across `--resume` (empty in states written before it was stored).
    #[serde(default)]
    pub run_id: String,
}

/// File name of the run directory's lock.
pub const LOCK_FILE: &str = ".lock";

/// Takes the exclusive lock of a run directory for as long as the returned file lives, so two
/// trainings can never write one directory. A second one gets an error naming the directory.
pub fn lock_run_dir(dir: &Path) -> Result<std::fs::File> {
    let path = dir.join(LOCK_FILE);
    let file = std::fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| TrainError::run_dir(&path, format!("cannot open the run lock: {e}")))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(TrainError::run_dir(
            dir,
            "another training is using this run directory (its lock is held); wait for it or choose another --out",
        )),
        Err(std::fs::TryLockError::Error(e)) => Err(TrainError::run_dir(
            &path,
            format!("cannot lock the run directory: {e}"),
        )),
    }
}

/// Saves tensors (converted to f32) plus `meta` atomically.
pub fn save_state(path: &Path, tensors: &HashMap<String, Tensor>, meta: &StateMeta) -> Result<()> {
    save_tensors(path, tensors, META_KEY, meta)
}

/// Loads a state written by [`save_state`].
pub fn load_state(path: &Path, device: &Device) -> Result<(HashMap<String, Tensor>, StateMeta)> {
    load_tensors(path, device, META_KEY)
}

/// Saves tensors (converted to f32) and `meta` as JSON under the metadata key `key`, in one
/// safetensors file written atomically.
pub fn save_tensors<M: Serialize>(
    path: &Path,
    tensors: &HashMap<String, Tensor>,
    key: &str,
    meta: &M,
) -> Result<()> {
    let mut names: Vec<&String> = tensors.keys().collect();
    names.sort();
    let mut owned: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::with_capacity(names.len());
    for name in names {
        let t = tensors[name]
            .to_dtype(DType::F32)?
            .to_device(&Device::Cpu)?;
        let shape = t.dims().to_vec();
        let bytes: Vec<u8> = t
            .flatten_all()?
            .to_vec1::<f32>()?
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        owned.push((name.clone(), shape, bytes));
    }
    let views = owned
        .iter()
        .map(|(n, s, b)| {
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b)
                .map(|v| (n.clone(), v))
                .map_err(|e| TrainError::run_dir(path, format!("tensor `{n}`: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    let meta_json = serde_json::to_string(meta)
        .map_err(|e| TrainError::run_dir(path, format!("cannot encode state: {e}")))?;
    let metadata: HashMap<String, String> = [(key.to_string(), meta_json)].into();
    let bytes = safetensors::serialize(views, Some(metadata))
        .map_err(|e| TrainError::run_dir(path, format!("cannot encode state: {e}")))?;
    Ok(ahp_spec::files::write_atomic(path, &bytes)?)
}

/// Loads a file written by [`save_tensors`] with the same `key`.
pub fn load_tensors<M: serde::de::DeserializeOwned>(
    path: &Path,
    device: &Device,
    key: &str,
) -> Result<(HashMap<String, Tensor>, M)> {
    let bytes =
        std::fs::read(path).map_err(|e| TrainError::run_dir(path, format!("cannot read: {e}")))?;
    let bad = |m: String| TrainError::run_dir(path, m);
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes)
        .map_err(|e| bad(format!("not a valid state file: {e}")))?;
    let meta_json = header
        .metadata()
        .as_ref()
        .and_then(|m| m.get(key))
        .ok_or_else(|| bad(format!("missing `{key}` metadata")))?;
    let meta: M =
        serde_json::from_str(meta_json).map_err(|e| bad(format!("invalid state metadata: {e}")))?;
    let st = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| bad(format!("not a valid state file: {e}")))?;
    let mut tensors = HashMap::new();
    for (name, view) in st.tensors() {
        let values: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        tensors.insert(name, Tensor::from_vec(values, view.shape(), device)?);
    }
    Ok((tensors, meta))
}
