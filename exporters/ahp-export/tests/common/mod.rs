//! Shared helpers of the integration tests: fixture paths, seeded random adapters, run
//! directories and `.npy` files.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use ahp_model::{Adapter, HeadHooks, HeadLowRank};
use ahp_spec::run::{
    BaseModel, LoraSpec, Method, Projection, RunManifest, WeightFile, ADAPTER_FILE, FORMAT_VERSION,
    MANIFEST_FILE,
};
use ahp_spec::ClipConfig;
use candle_core::{DType, Device, Tensor};

pub const MODELS: [&str; 2] = ["clip-tiny-a", "clip-tiny-b"];
pub const LABELS: [&str; 6] = ["dog", "cat", "car", "tree", "house", "star"];

pub fn labels() -> Vec<String> {
    LABELS.iter().map(|s| s.to_string()).collect()
}

pub fn model_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/models")
        .join(name)
}

pub fn reference(name: &str) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(model_dir(name).join("reference.safetensors"), &Device::Cpu)
        .expect("reference.safetensors")
}

pub fn config(name: &str) -> ClipConfig {
    ClipConfig::from_file(&model_dir(name).join("config.json")).expect("config.json")
}

pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims(), "shape mismatch");
    ahp_export::validate::max_abs_diff(a, b).expect("diff")
}

/// splitmix64-based uniform values in [-1, 1).
pub struct Rng(pub u64);

impl Rng {
    pub fn next_f32(&mut self) -> f32 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        (z >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }

    pub fn tensor(&mut self, shape: &[usize], scale: f32) -> Tensor {
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|_| self.next_f32() * scale).collect();
        Tensor::from_vec(v, shape, &Device::Cpu).expect("tensor")
    }
}

/// Layout of a random adapter.
#[derive(Debug, Clone)]
pub struct AdapterSpec {
    pub per_head: bool,
    pub ranks: Vec<usize>,
    pub alpha: f64,
    pub gates: bool,
    pub classes: usize,
    pub seed: u64,
}

impl AdapterSpec {
    pub fn ahp(cfg: &ClipConfig, seed: u64) -> Self {
        let l = cfg.vision_config.num_hidden_layers;
        Self {
            per_head: true,
            // a rank-0 block in the middle exercises blocks without deltas
            ranks: (0..l).map(|i| if i == 1 { 0 } else { 2 + i }).collect(),
            alpha: 8.0,
            gates: true,
            classes: 6,
            seed,
        }
    }

    pub fn lora(cfg: &ClipConfig, seed: u64) -> Self {
        Self {
            per_head: false,
            ranks: vec![3; cfg.vision_config.num_hidden_layers],
            gates: false,
            ..Self::ahp(cfg, seed)
        }
    }

    pub fn lora_spec(&self) -> LoraSpec {
        LoraSpec {
            alpha: self.alpha,
            ranks: self.ranks.clone(),
            targets: vec![Projection::Q, Projection::V],
            per_head: self.per_head,
        }
    }
}

/// Random non-trivial adapter: random A, non-zero B, random gate logits, random class
/// embeddings.
pub fn random_adapter(cfg: &ClipConfig, spec: &AdapterSpec) -> Adapter {
    let v = &cfg.vision_config;
    let (h, d, dh) = (v.num_attention_heads, v.hidden_size, v.head_dim());
    let (g, w) = if spec.per_head { (h, dh) } else { (1, d) };
    let mut rng = Rng(spec.seed);
    let mut hooks = Vec::new();
    for (i, &r) in spec.ranks.iter().enumerate() {
        let mut hook = HeadHooks::default();
        if r > 0 {
            let scaling = spec.alpha / r as f64;
            for proj in [Projection::Q, Projection::V] {
                let a = rng.tensor(&[g, r, d], 0.3);
                let b = rng.tensor(&[g, w, r], 0.1);
                let lr = HeadLowRank::new(a, b, scaling, &format!("vision.layers.{i}.{proj:?}"))
                    .expect("low rank");
                match proj {
                    Projection::Q => hook.q = Some(lr),
                    Projection::V => hook.v = Some(lr),
                }
            }
        }
        if spec.gates {
            hook.gate_logits = Some(rng.tensor(&[h], 1.0));
        }
        hooks.push(hook);
    }
    let te = rng.tensor(&[spec.classes, cfg.projection_dim], 1.0);
    let text_embeds = ahp_model::l2_normalize(&te).expect("normalize");
    Adapter {
        hooks,
        text_embeds,
        logit_scale: Tensor::new(2.0f32, &Device::Cpu).expect("scalar"),
    }
}

pub fn manifest(
    base: &str,
    spec: &AdapterSpec,
    method: Method,
    weights: Vec<WeightFile>,
) -> RunManifest {
    RunManifest {
        format_version: FORMAT_VERSION,
        run_id: format!("test-{}-{}", method.as_str(), spec.seed),
        base: BaseModel {
            location: base.to_string(),
            dir: base.to_string(),
            weights,
        },
        classes: labels()[..spec.classes].to_vec(),
        templates: vec![ahp_model::DEFAULT_TEMPLATE.into()],
        method,
        lora: if method.has_lora() {
            Some(spec.lora_spec())
        } else {
            None
        },
        gates: spec.gates,
        domains: vec!["photo".into(), "sketch".into()],
        target_domains: vec!["sketch".into()],
        split_seed: 0,
        holdout_fraction: 0.2,
        config: ahp_spec::TrainConfig {
            method,
            steps: 10,
            batch_size: 4,
            lr: 1e-3,
            warmup_steps: Some(0),
            seed: spec.seed,
            split_seed: Some(0),
            eval_every: Some(5),
            ..Default::default()
        }
        .resolved(),
        best_step: 10,
        best_source_val_acc: 0.5,
    }
}

/// Writes `run.json` and `adapter.safetensors` into `dir` for the fixture `model`; returns
/// the adapter.
pub fn write_run(dir: &Path, model: &str, spec: &AdapterSpec, method: Method) -> Adapter {
    let cfg = config(model);
    let adapter = random_adapter(&cfg, spec);
    let base = model_dir(model);
    let sha = ahp_export::fold::sha256_file(&base.join("model.safetensors")).expect("sha");
    let m = manifest(
        base.to_str().expect("utf-8"),
        spec,
        method,
        vec![WeightFile {
            name: "model.safetensors".into(),
            sha256: sha,
        }],
    );
    std::fs::create_dir_all(dir).expect("mkdir");
    std::fs::write(
        dir.join(MANIFEST_FILE),
        serde_json::to_string_pretty(&m).expect("json"),
    )
    .expect("write run.json");
    adapter.save(&dir.join(ADAPTER_FILE)).expect("save adapter");
    adapter
}

/// Writes a float32 `.npy` file.
pub fn write_npy(path: &Path, t: &Tensor) {
    let shape = t.dims();
    let shape_str = match shape.len() {
        1 => format!("({},)", shape[0]),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape_str}, }}");
    let total = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - total % 64) % 64));
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    let data = t
        .to_dtype(DType::F32)
        .expect("f32")
        .flatten_all()
        .expect("flatten")
        .to_vec1::<f32>()
        .expect("vec");
    for v in data {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    std::fs::write(path, bytes).expect("write npy");
}
