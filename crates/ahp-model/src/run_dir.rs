//! The trained adapter of a run directory (`adapter.safetensors` + `run.json`, see
//! [`ahp_spec::run`]): per-block HA-LoRA factors and gate logits, the class embeddings and the
//! logit scale. Saving is atomic (temp file + rename); loading checks every tensor's presence,
//! shape and finiteness and names the tensor and file in errors.

use std::collections::HashMap;
use std::path::Path;

use ahp_spec::run::{
    adapter_key, gate_key, Projection, RunManifest, ADAPTER_FILE, LOGIT_SCALE_KEY, MANIFEST_FILE,
    TEXT_EMBEDS_KEY,
};
use ahp_spec::ClipConfig;
use candle_core::{DType, Device, Tensor};

use crate::error::{ModelError, Result};
use crate::heads::{HeadHooks, HeadLowRank};

/// Per-block hooks plus the classifier of a trained run.
#[derive(Debug, Clone)]
pub struct Adapter {
    /// One entry per vision block.
    pub hooks: Vec<HeadHooks>,
    /// L2-normalized class embeddings `[C, P]`.
    pub text_embeds: Tensor,
    /// Raw logit scale `[]` (before `exp`).
    pub logit_scale: Tensor,
}

fn err(path: &Path, message: impl Into<String>) -> ModelError {
    ModelError::Checkpoint {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Errors unless every value of `t` is finite; `name` and `path` name it.
pub fn check_finite(t: &Tensor, name: &str, path: &Path) -> Result<()> {
    let bad = t
        .to_dtype(DType::F32)?
        .flatten_all()?
        .to_vec1::<f32>()?
        .iter()
        .filter(|v| !v.is_finite())
        .count();
    if bad > 0 {
        return Err(err(
            path,
            format!("tensor `{name}` has {bad} non-finite values"),
        ));
    }
    Ok(())
}

impl Adapter {
    /// The tensors under their `adapter.safetensors` names.
    pub fn tensors(&self) -> HashMap<String, Tensor> {
        let mut map = HashMap::new();
        for (i, h) in self.hooks.iter().enumerate() {
            for (proj, lr) in [(Projection::Q, &h.q), (Projection::V, &h.v)] {
                if let Some(lr) = lr {
                    map.insert(adapter_key(i, proj, "lora_a"), lr.a().clone());
                    map.insert(adapter_key(i, proj, "lora_b"), lr.b().clone());
                }
            }
            if let Some(g) = &h.gate_logits {
                map.insert(gate_key(i), g.clone());
            }
        }
        map.insert(TEXT_EMBEDS_KEY.to_string(), self.text_embeds.clone());
        map.insert(LOGIT_SCALE_KEY.to_string(), self.logit_scale.clone());
        map
    }

    /// Writes `adapter.safetensors` atomically (temp file in the same directory, then rename).
    pub fn save(&self, path: &Path) -> Result<()> {
        let tmp = ahp_spec::files::TempFile::next_to(path)?;
        let tensors: HashMap<String, Tensor> = self
            .tensors()
            .into_iter()
            .map(|(k, v)| Ok((k, v.to_dtype(DType::F32)?.contiguous()?)))
            .collect::<Result<_>>()?;
        candle_core::safetensors::save(&tensors, tmp.path())
            .map_err(|e| err(tmp.path(), format!("cannot write: {e}")))?;
        Ok(tmp.persist()?)
    }

    /// Loads `adapter.safetensors` as `manifest` describes it, for a base model with `config`.
    pub fn load(
        path: &Path,
        manifest: &RunManifest,
        config: &ClipConfig,
        device: &Device,
    ) -> Result<Self> {
        let mut tensors = candle_core::safetensors::load(path, device)
            .map_err(|e| err(path, format!("not a valid safetensors file: {e}")))?;
        let v = &config.vision_config;
        let (h, d, dh) = (v.num_attention_heads, v.hidden_size, v.head_dim());
        let mut take = |name: &str, shape: &[usize]| -> Result<Tensor> {
            let t = tensors
                .remove(name)
                .ok_or_else(|| err(path, format!("missing tensor `{name}`")))?;
            if t.dims() != shape {
                return Err(err(
                    path,
                    format!(
                        "tensor `{name}` has shape {:?}, expected {shape:?}",
                        t.dims()
                    ),
                ));
            }
            check_finite(&t, name, path)?;
            Ok(t.to_dtype(DType::F32)?)
        };
        let mut hooks = Vec::with_capacity(v.num_hidden_layers);
        if let Some(lora) = &manifest.lora {
            if lora.ranks.len() != v.num_hidden_layers {
                return Err(err(
                    &path.with_file_name(MANIFEST_FILE),
                    format!(
                        "lora.ranks has {} entries, the vision tower has {} blocks",
                        lora.ranks.len(),
                        v.num_hidden_layers
                    ),
                ));
            }
        }
        for i in 0..v.num_hidden_layers {
            let mut hook = HeadHooks::default();
            if let Some(lora) = &manifest.lora {
                if let Some(scaling) = lora.scaling(i) {
                    let r = lora.ranks[i];
                    let (g, w) = if lora.per_head { (h, dh) } else { (1, d) };
                    for proj in &lora.targets {
                        let a = take(&adapter_key(i, *proj, "lora_a"), &[g, r, d])?;
                        let b = take(&adapter_key(i, *proj, "lora_b"), &[g, w, r])?;
                        let lr = HeadLowRank::new(a, b, scaling, &adapter_key(i, *proj, ""))?;
                        match proj {
                            Projection::Q => hook.q = Some(lr),
                            Projection::V => hook.v = Some(lr),
                        }
                    }
                }
            }
            if manifest.gates {
                hook.gate_logits = Some(take(&gate_key(i), &[h])?);
            }
            hooks.push(hook);
        }
        let text_embeds = take(
            TEXT_EMBEDS_KEY,
            &[manifest.classes.len(), config.projection_dim],
        )?;
        let logit_scale = take(LOGIT_SCALE_KEY, &[])?;
        if let Some(extra) = tensors.keys().next() {
            return Err(err(
                path,
                format!("unexpected tensor `{extra}` (not described by run.json)"),
            ));
        }
        Ok(Self {
            hooks,
            text_embeds,
            logit_scale,
        })
    }
}

/// Reads `run.json` of a run directory.
pub fn read_manifest(run_dir: &Path) -> Result<RunManifest> {
    let path = run_dir.join(MANIFEST_FILE);
    let text =
        std::fs::read_to_string(&path).map_err(|e| err(&path, format!("cannot read: {e}")))?;
    Ok(RunManifest::from_json_str(&text, &path)?)
}

/// Loads a run directory's manifest and adapter for a base model with `config`.
pub fn load_run(
    run_dir: &Path,
    config: &ClipConfig,
    device: &Device,
) -> Result<(RunManifest, Adapter)> {
    let manifest = read_manifest(run_dir)?;
    let adapter = Adapter::load(&run_dir.join(ADAPTER_FILE), &manifest, config, device)?;
    Ok((manifest, adapter))
}
