//! Folding a trained adapter into plain CLIP weights (pure functions, f32).
//!
//! Every hook of [`HeadHooks`] is linear in the weights it touches, so it folds exactly:
//!
//! * HA-LoRA / LoRA on Q or V: `W += scaling * [B_0 A_0; ...; B_{G-1} A_{G-1}]`
//!   ([`HeadLowRank::delta_weight`], `[D, D]` for both the per-head and the one-group layout);
//!   the bias is unchanged, since the model adds the delta of `x W^T` only;
//! * gates `g = H * softmax(logits)`: the columns of `out_proj.weight` that read head `h` are
//!   multiplied by `g_h` ([`fold_gates_into_out_proj`]); the bias is unchanged;
//! * the classifier: normalized class embeddings times `exp(logit_scale)`, one `[C, P]` matrix.
//!
//! The result is a map of plain Hugging Face tensor names, from which [`build_model`] makes an
//! ordinary [`ClipModel`] (no hooks) that computes what the adapted model computes.

use std::collections::HashMap;
use std::path::PathBuf;

use crate::clip::{l2_normalize, ClipModel};
use crate::heads::{fold_gates_into_out_proj, gates_from_logits, HeadHooks, HeadLowRank};
use ahp_spec::ClipConfig;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;

use crate::error::{ModelError, Result};

/// Hugging Face name of a vision block's tensor: `vision_model.encoder.layers.{block}.{leaf}`.
pub fn vision_layer_key(block: usize, leaf: &str) -> String {
    format!("vision_model.encoder.layers.{block}.{leaf}")
}

/// Hugging Face name of a vision attention projection's tensor, e.g.
/// `vision_model.encoder.layers.0.self_attn.q_proj.weight` for `(0, "q", "weight")`.
pub fn attn_key(block: usize, proj: &str, leaf: &str) -> String {
    vision_layer_key(block, &format!("self_attn.{proj}_proj.{leaf}"))
}

/// Errors unless every value of `t` is finite; `name` names the tensor in the error.
pub fn check_finite(t: &Tensor, name: &str) -> Result<()> {
    let values = t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
    let bad = values.iter().filter(|v| !v.is_finite()).count();
    if bad > 0 {
        return Err(ModelError::tensor(
            name,
            format!("{bad} of {} values are not finite", values.len()),
        ));
    }
    Ok(())
}

/// Reads every tensor of the safetensors `files` on the CPU; floating-point tensors are
/// converted to f32. Errors name the file.
pub fn load_weights(files: &[PathBuf]) -> Result<HashMap<String, Tensor>> {
    let mut map = HashMap::new();
    for file in files {
        let tensors = candle_core::safetensors::load(file, &Device::Cpu)
            .map_err(|e| ModelError::file(file, format!("not a valid safetensors file: {e}")))?;
        for (name, t) in tensors {
            let t = if t.dtype().is_float() {
                t.to_dtype(DType::F32)?
            } else {
                t
            };
            map.insert(name, t);
        }
    }
    Ok(map)
}

fn get<'a>(weights: &'a HashMap<String, Tensor>, name: &str) -> Result<&'a Tensor> {
    weights
        .get(name)
        .ok_or_else(|| ModelError::tensor(name, "missing from the base weights"))
}

fn check_shape(t: &Tensor, name: &str, shape: &[usize]) -> Result<()> {
    if t.dims() != shape {
        return Err(ModelError::tensor(
            name,
            format!("has shape {:?}, expected {shape:?}", t.dims()),
        ));
    }
    Ok(())
}

/// `weight + delta` for a `[D, D]` projection weight; `hook_name` names the adapter tensor.
fn add_delta(weight: &Tensor, lr: &HeadLowRank, name: &str, hook_name: &str) -> Result<Tensor> {
    let delta = lr.delta_weight()?;
    check_finite(&delta, &format!("{hook_name} (delta weight)"))?;
    if delta.dims() != weight.dims() {
        return Err(ModelError::tensor(
            hook_name,
            format!(
                "delta weight {:?} does not match `{name}` {:?}",
                delta.dims(),
                weight.dims()
            ),
        ));
    }
    Ok((weight.to_dtype(DType::F32)? + delta)?)
}

/// The gate values `H * softmax(logits)` of every block (`None` for blocks without gates).
pub fn gate_values(hooks: &[HeadHooks]) -> Result<Vec<Option<Vec<f32>>>> {
    hooks
        .iter()
        .enumerate()
        .map(|(i, h)| {
            h.gate_logits
                .as_ref()
                .map(|logits| -> Result<Vec<f32>> {
                    let name = ahp_spec::run::gate_key(i);
                    check_finite(logits, &name)?;
                    let g = gates_from_logits(&logits.to_dtype(DType::F32)?)?;
                    check_finite(&g, &format!("{name} (gates)"))?;
                    Ok(g.to_vec1::<f32>()?)
                })
                .transpose()
        })
        .collect()
}

/// Folds `hooks` (empty, or one entry per vision block) into a copy of `base` (Hugging Face
/// names, as [`load_weights`] returns). Only the Q/V/out projection weights of hooked blocks
/// change; every changed tensor is checked to be finite.
pub fn fold_hooks(
    base: &HashMap<String, Tensor>,
    hooks: &[HeadHooks],
    config: &ClipConfig,
) -> Result<HashMap<String, Tensor>> {
    let v = &config.vision_config;
    let (d, h) = (v.hidden_size, v.num_attention_heads);
    let mut out = base.clone();
    if hooks.is_empty() {
        return Ok(out);
    }
    if hooks.len() != v.num_hidden_layers {
        return Err(ModelError::Input(format!(
            "{} hook sets given for {} vision blocks",
            hooks.len(),
            v.num_hidden_layers
        )));
    }
    let gates = gate_values(hooks)?;
    for (i, hook) in hooks.iter().enumerate() {
        for (proj, lr, target) in [
            ("q", &hook.q, ahp_spec::run::Projection::Q),
            ("v", &hook.v, ahp_spec::run::Projection::V),
        ] {
            let Some(lr) = lr else { continue };
            let name = attn_key(i, proj, "weight");
            let w = get(base, &name)?;
            check_shape(w, &name, &[d, d])?;
            let hook_name = ahp_spec::run::adapter_key(i, target, "lora_{a,b}");
            let folded = add_delta(w, lr, &name, &hook_name)?;
            check_finite(&folded, &name)?;
            out.insert(name, folded);
        }
        if let Some(g) = &gates[i] {
            if g.len() != h {
                return Err(ModelError::tensor(
                    ahp_spec::run::gate_key(i),
                    format!("has {} entries, the block has {h} heads", g.len()),
                ));
            }
            let name = attn_key(i, "out", "weight");
            let w = get(base, &name)?;
            check_shape(w, &name, &[d, d])?;
            let g = Tensor::from_vec(g.clone(), h, &Device::Cpu)?;
            let folded = fold_gates_into_out_proj(&w.to_device(&Device::Cpu)?, &g)?;
            check_finite(&folded, &name)?;
            out.insert(name, folded);
        }
    }
    Ok(out)
}

/// The folded classifier `[C, P]`: each row of `text_embeds` L2-normalized, times
/// `exp(logit_scale)`, so `logits = normalize(image_embeds) @ classifier^T`.
pub fn classifier_matrix(text_embeds: &Tensor, logit_scale: f32) -> Result<Tensor> {
    check_finite(text_embeds, ahp_spec::run::TEXT_EMBEDS_KEY)?;
    if !logit_scale.is_finite() {
        return Err(ModelError::tensor(
            ahp_spec::run::LOGIT_SCALE_KEY,
            format!("{logit_scale} is not finite"),
        ));
    }
    let (c, _) = text_embeds
        .dims2()
        .map_err(|_| ModelError::tensor("text_embeds", "expected [C, P]"))?;
    if c == 0 {
        return Err(ModelError::Input("no classes".into()));
    }
    let normed = l2_normalize(&text_embeds.to_dtype(DType::F32)?)?;
    let m = (normed * f64::from(logit_scale).exp())?;
    check_finite(&m, "classifier (normalized text_embeds x exp(logit_scale))")?;
    Ok(m)
}

/// Builds a plain [`ClipModel`] from Hugging Face-named tensors (e.g. [`fold_hooks`]'s
/// output); every tensor the config implies must be present with its shape.
pub fn build_model(
    weights: &HashMap<String, Tensor>,
    config: &ClipConfig,
    device: &Device,
) -> Result<ClipModel> {
    let vb = VarBuilder::from_tensors(weights.clone(), DType::F32, device);
    ClipModel::new(vb, config).map_err(|e| ModelError::Input(format!("weights: {e}")))
}
