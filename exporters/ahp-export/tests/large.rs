//! A ViT-B/16-sized vision tower (random weights, 12 blocks x 12 heads, 224 px): the export
//! validates at full depth and size. Ignored by default (writes ~350 MB, takes ~1 min):
//! `cargo test -p ahp-export --test large -- --ignored --nocapture`.

mod common;

use std::collections::HashMap;
use std::time::Instant;

use ahp_export::export::{export, ExportOptions, Prepared, Source};
use ahp_export::onnx::OnnxOptions;
use ahp_spec::run::{Method, ADAPTER_FILE, MANIFEST_FILE};
use ahp_spec::ClipConfig;
use candle_core::Tensor;
use common::{manifest, random_adapter, AdapterSpec, Rng};

const CONFIG: &str = r#"{
  "projection_dim": 512,
  "logit_scale_init_value": 2.6592,
  "text_config": {"vocab_size": 64, "hidden_size": 512, "intermediate_size": 2048,
                  "num_hidden_layers": 1, "num_attention_heads": 8, "max_position_embeddings": 77},
  "vision_config": {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12,
                    "num_attention_heads": 12, "image_size": 224, "patch_size": 16,
                    "hidden_act": "quick_gelu"}
}"#;

fn random_checkpoint(cfg: &ClipConfig) -> HashMap<String, Tensor> {
    let mut rng = Rng(7);
    let mut m = HashMap::new();
    let mut put = |name: String, shape: &[usize], scale: f32, offset: f32| {
        let t = (rng.tensor(shape, scale) + f64::from(offset)).expect("offset");
        m.insert(name, t);
    };
    for (tower, d, m_dim, layers) in [
        (
            "vision_model",
            cfg.vision_config.hidden_size,
            cfg.vision_config.intermediate_size,
            cfg.vision_config.num_hidden_layers,
        ),
        (
            "text_model",
            cfg.text_config.hidden_size,
            cfg.text_config.intermediate_size,
            cfg.text_config.num_hidden_layers,
        ),
    ] {
        let s = 1.7 / (d as f32).sqrt();
        for i in 0..layers {
            let p = format!("{tower}.encoder.layers.{i}");
            for proj in ["q", "k", "v", "out"] {
                put(format!("{p}.self_attn.{proj}_proj.weight"), &[d, d], s, 0.0);
                put(format!("{p}.self_attn.{proj}_proj.bias"), &[d], 0.02, 0.0);
            }
            put(format!("{p}.mlp.fc1.weight"), &[m_dim, d], s, 0.0);
            put(format!("{p}.mlp.fc1.bias"), &[m_dim], 0.02, 0.0);
            put(
                format!("{p}.mlp.fc2.weight"),
                &[d, m_dim],
                1.7 / (m_dim as f32).sqrt(),
                0.0,
            );
            put(format!("{p}.mlp.fc2.bias"), &[d], 0.02, 0.0);
            for ln in ["layer_norm1", "layer_norm2"] {
                put(format!("{p}.{ln}.weight"), &[d], 0.2, 1.0);
                put(format!("{p}.{ln}.bias"), &[d], 0.1, 0.0);
            }
        }
    }
    let v = &cfg.vision_config;
    let t = &cfg.text_config;
    let (d, p) = (v.hidden_size, v.patch_size);
    put(
        "vision_model.embeddings.patch_embedding.weight".into(),
        &[d, 3, p, p],
        0.1,
        0.0,
    );
    put(
        "vision_model.embeddings.class_embedding".into(),
        &[d],
        0.1,
        0.0,
    );
    put(
        "vision_model.embeddings.position_embedding.weight".into(),
        &[v.num_positions(), d],
        0.1,
        0.0,
    );
    for ln in ["vision_model.pre_layrnorm", "vision_model.post_layernorm"] {
        put(format!("{ln}.weight"), &[d], 0.2, 1.0);
        put(format!("{ln}.bias"), &[d], 0.1, 0.0);
    }
    put(
        "visual_projection.weight".into(),
        &[cfg.projection_dim, d],
        1.7 / (d as f32).sqrt(),
        0.0,
    );
    let td = t.hidden_size;
    put(
        "text_model.embeddings.token_embedding.weight".into(),
        &[t.vocab_size, td],
        0.1,
        0.0,
    );
    put(
        "text_model.embeddings.position_embedding.weight".into(),
        &[t.max_position_embeddings, td],
        0.1,
        0.0,
    );
    put("text_model.final_layer_norm.weight".into(), &[td], 0.2, 1.0);
    put("text_model.final_layer_norm.bias".into(), &[td], 0.1, 0.0);
    put(
        "text_projection.weight".into(),
        &[cfg.projection_dim, td],
        0.05,
        0.0,
    );
    m.insert(
        "logit_scale".into(),
        Tensor::new(4.6052f32, &candle_core::Device::Cpu).expect("scalar"),
    );
    m
}

#[test]
#[ignore = "large: ViT-B/16-sized export (~350 MB on disk, about a minute)"]
fn vit_b16_sized_export_validates() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = dir.path().join("clip-b16-random");
    std::fs::create_dir(&base).expect("mkdir");
    std::fs::write(base.join("config.json"), CONFIG).expect("config");
    let cfg = ClipConfig::from_file(&base.join("config.json")).expect("parse");
    let t0 = Instant::now();
    candle_core::safetensors::save(&random_checkpoint(&cfg), base.join("model.safetensors"))
        .expect("save");
    eprintln!("random checkpoint: {:.1}s", t0.elapsed().as_secs_f64());

    let spec = AdapterSpec {
        per_head: true,
        ranks: vec![4; 12],
        alpha: 8.0,
        gates: true,
        classes: 6,
        seed: 99,
    };
    let adapter = random_adapter(&cfg, &spec);
    let run = dir.path().join("run");
    std::fs::create_dir(&run).expect("mkdir");
    let m = manifest(base.to_str().expect("utf-8"), &spec, Method::Ahp, vec![]);
    std::fs::write(
        run.join(MANIFEST_FILE),
        serde_json::to_string(&m).expect("json"),
    )
    .expect("run.json");
    adapter.save(&run.join(ADAPTER_FILE)).expect("adapter");

    let t0 = Instant::now();
    let prepared = Prepared::load(&Source::Run {
        run_dir: run,
        base: None,
        verify_base_sha256: true,
    })
    .expect("load");
    eprintln!("load + fold: {:.1}s", t0.elapsed().as_secs_f64());
    for fp16 in [false, true] {
        let path = dir.path().join(format!("b16-fp16-{fp16}.onnx"));
        let t0 = Instant::now();
        let options = ExportOptions {
            onnx: OnnxOptions { opset: 17, fp16 },
            ..ExportOptions::default()
        };
        let summary = export(&prepared, &path, &options).expect("export");
        eprintln!(
            "fp16={fp16}: export + tract validation (batch 2): {:.1}s, {} bytes, {} nodes, {} initializers",
            t0.elapsed().as_secs_f64(),
            summary.bytes,
            summary.graph.nodes,
            summary.graph.initializers
        );
        for o in &summary.validation.expect("validated").outputs {
            eprintln!(
                "  {} {:?}: max |tract - candle| = {:.3e} (tolerance {:.1e})",
                o.name, o.shape, o.max_abs_diff, o.tolerance
            );
        }
    }
}
