//! transformers' CLIP weight initialization, reproduced for training from scratch.

use ahp_spec::ClipConfig;
use candle_core::Tensor;
use candle_nn::VarMap;
use rand::Rng;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::error::{Result, TrainError};

/// transformers' CLIP initialization (`CLIPPreTrainedModel._init_weights`, factor 1), seeded
/// per tensor name so it does not depend on iteration order.
pub(super) fn init_weights(varmap: &VarMap, cfg: &ClipConfig, seed: u64) -> Result<()> {
    let data = varmap
        .data()
        .lock()
        .map_err(|_| TrainError::run_dir("varmap", "poisoned lock"))?;
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    for name in names {
        let var = &data[name];
        let dims = var.dims().to_vec();
        let n: usize = dims.iter().product();
        let width = if name.starts_with("text_model") {
            cfg.text_config.hidden_size
        } else {
            cfg.vision_config.hidden_size
        } as f64;
        let layers = if name.starts_with("text_model") {
            cfg.text_config.num_hidden_layers
        } else {
            cfg.vision_config.num_hidden_layers
        } as f64;
        let std = if name.ends_with(".bias") {
            0.0
        } else if name.contains("layer_norm")
            || name.contains("layrnorm")
            || name.contains("layernorm")
        {
            -1.0 // ones
        } else if name == "logit_scale" {
            -2.0
        } else if name.contains("self_attn.out_proj") {
            width.powf(-0.5)
        } else if name.contains("self_attn") {
            width.powf(-0.5) * (2.0 * layers).powf(-0.5)
        } else if name.contains("mlp.fc1") {
            (2.0 * width).powf(-0.5)
        } else if name.contains("mlp.fc2") {
            width.powf(-0.5) * (2.0 * layers).powf(-0.5)
        } else if name.contains("class_embedding") || name.contains("_projection") {
            width.powf(-0.5)
        } else {
            0.02
        };
        let mut rng =
            ChaCha8Rng::seed_from_u64(ahp_data::seed::derive_seed(seed, &[name.as_bytes()]));
        let values: Vec<f32> = if std == -1.0 {
            vec![1.0; n]
        } else if std == -2.0 {
            vec![cfg.logit_scale_init_value as f32; n]
        } else if std == 0.0 {
            vec![0.0; n]
        } else {
            (0..n)
                .map(|_| {
                    // Box-Muller normal.
                    let u1: f64 = rng.random_range(f64::EPSILON..1.0);
                    let u2: f64 = rng.random_range(0.0..1.0);
                    ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos() * std) as f32
                })
                .collect()
        };
        var.set(&Tensor::from_vec(values, dims, var.device())?.to_dtype(var.dtype())?)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pretrain::checkpoint::config;
    use crate::pretrain::PretrainOptions;
    use ahp_model::ClipModel;
    use candle_core::{DType, Device};
    use candle_nn::VarBuilder;

    #[test]
    fn init_sets_layer_norms_to_one_and_biases_to_zero() -> Result<()> {
        let o = PretrainOptions {
            image_size: 16,
            vision: (32, 1, 4),
            text: (32, 1, 4),
            projection_dim: 16,
            ..Default::default()
        };
        let cfg = config(&o, 30, 16);
        let varmap = VarMap::new();
        ClipModel::new(
            VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu),
            &cfg,
        )?;
        init_weights(&varmap, &cfg, 0)?;
        let data = varmap
            .data()
            .lock()
            .map_err(|_| TrainError::run_dir("varmap", "poisoned lock"))?;
        for (name, var) in data.iter() {
            let v = var.as_tensor().flatten_all()?.to_vec1::<f32>()?;
            if name.ends_with(".bias") {
                assert!(v.iter().all(|&x| x == 0.0), "{name}");
            } else if name.contains("norm") {
                assert!(v.iter().all(|&x| x == 1.0), "{name}");
            } else if name == "logit_scale" {
                assert!((v[0] - 2.6592).abs() < 1e-6);
            } else {
                let std = (v.iter().map(|x| x * x).sum::<f32>() / v.len() as f32).sqrt();
                assert!(std > 0.005 && std < 0.2, "{name}: std {std}");
            }
        }
        Ok(())
    }
}
