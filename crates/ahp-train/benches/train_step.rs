//! Training-step throughput at ViT-B/16 shape (random weights), batch 32, CPU: one full AHP
//! step (HA-LoRA with the paper's ranks, gates, class-token MMD over 4 source domains,
//! classification loss, both backward passes, clipping, AdamW). Prints images/s.
//!
//! `benches/train_step.sh` runs this and the PyTorch peer (`benches/train_step_torch.py`) side
//! by side and prints the ratio. Environment: `AHP_BENCH_STEPS` (default 3), `AHP_BENCH_BATCH`
//! (default 32), `RAYON_NUM_THREADS`.

use std::collections::HashMap;
use std::time::Instant;

use ahp_model::{ClipModel, ZeroShotClassifier};
use ahp_spec::run::Method;
use ahp_spec::{ClipConfig, ClipTextConfig, ClipVisionConfig, TrainConfig};
use ahp_train::optim::ParamGroup;
use ahp_train::train::step_gradients;
use ahp_train::trainable::{default_ranks, AdapterSpec, Trainable};
use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};

// As in the ahp-train binary: large activations are freed and re-allocated every step; mimalloc
// reuses them instead of returning them to the OS and faulting them in again.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// ViT-B/16's vision tower with the default text tower.
fn vit_b16_config() -> ClipConfig {
    ClipConfig {
        text_config: ClipTextConfig::default(),
        vision_config: ClipVisionConfig {
            patch_size: 16,
            ..Default::default()
        },
        projection_dim: 512,
        logit_scale_init_value: 2.6592,
    }
}

/// A CLIP with random weights: every tensor name and shape is recorded with a VarMap, then the
/// model is rebuilt from plain (non-trainable) random tensors so that only the adapters track
/// gradients.
fn random_model(cfg: &ClipConfig, device: &Device) -> anyhow::Result<ClipModel> {
    let varmap = VarMap::new();
    ClipModel::new(VarBuilder::from_varmap(&varmap, DType::F32, device), cfg)?;
    let mut tensors = HashMap::new();
    for (name, var) in varmap
        .data()
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .iter()
    {
        tensors.insert(name.clone(), Tensor::randn(0f32, 0.02, var.dims(), device)?);
    }
    Ok(ClipModel::new(
        VarBuilder::from_tensors(tensors, DType::F32, device),
        cfg,
    )?)
}

/// Peak resident memory of the process in MiB (Linux `VmHWM`), the figure to compare with
/// PyTorch's; NaN elsewhere.
fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn main() -> anyhow::Result<()> {
    ahp_train::retain_freed_memory();
    let steps = env("AHP_BENCH_STEPS", 3);
    let batch = env("AHP_BENCH_BATCH", 32);
    let device = Device::Cpu;
    let cfg = vit_b16_config();
    let model = random_model(&cfg, &device)?;
    let classes: Vec<String> = (0..7).map(|i| format!("class{i}")).collect();
    let embeds = Tensor::randn(0f32, 1.0, (7, 512), &device)?;
    let classifier =
        ZeroShotClassifier::from_parts(classes, vec!["a photo of a {}.".into()], &embeds, 2.6592)?;
    let vision = &cfg.vision_config;
    let ranks = default_ranks(vision.num_hidden_layers);
    let spec = AdapterSpec::new(Method::Ahp, &ranks, 8.0, vision)?;
    let trainable = Trainable::init(spec, vision, 0, &device)?;
    // The optimizer settings of every entry point's default run.
    let c = TrainConfig::default();
    let mut lora_group = ParamGroup::new(trainable.lora_vars(), c.lr, 0.0, c.grad_clip)?;
    let mut gate_group = ParamGroup::new(trainable.gate_vars(), c.gate_lr, 0.0, c.gate_grad_clip)?;
    let pixels = Tensor::randn(0f32, 1.0, (batch, 3, 224, 224), &device)?;
    let labels: Vec<u32> = (0..batch as u32).map(|i| i % 7).collect();
    let labels = Tensor::from_vec(labels, batch, &device)?;
    let domains: Vec<u32> = (0..batch as u32).map(|i| i % 4).collect();
    let mut run = || -> anyhow::Result<()> {
        let mut sg = step_gradients(
            &model,
            &classifier,
            &trainable,
            &pixels,
            &labels,
            &domains,
            c.mmd_weight,
        )?;
        lora_group.step(&mut sg.lora, c.lr)?;
        gate_group.step(&mut sg.gates, c.gate_lr)?;
        Ok(())
    };
    run()?; // warmup
    let t0 = Instant::now();
    for _ in 0..steps {
        run()?;
    }
    let dt = t0.elapsed().as_secs_f64() / steps as f64;
    println!(
        "ahp-train (candle) {:.2} images/s ({:.0} ms/step, {} trainable parameters, batch {batch}, peak RSS {:.0} MiB)",
        batch as f64 / dt,
        dt * 1e3,
        trainable.num_parameters(),
        peak_rss_mib()
    );
    Ok(())
}
