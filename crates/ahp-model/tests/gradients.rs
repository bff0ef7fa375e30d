//! The hooks are trainable: gradients reach per-head LoRA factors and gate logits through the
//! whole vision tower (candle's fused LayerNorm/softmax kernels have no backward pass, so the
//! model must switch to differentiable ops when a gradient is tracked).

use std::path::Path;

use ahp_model::{HeadHooks, HeadLowRank, LoadedClip};
use candle_core::{DType, Device, Tensor, Var};

#[test]
fn gradients_reach_lora_and_gates() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/models/clip-tiny-a");
    let clip = LoadedClip::load(dir.to_str().expect("utf-8"), &Device::Cpu).expect("load");
    let vc = clip.model.config().vision_config.clone();
    let (h, d, dh, r) = (vc.num_attention_heads, vc.hidden_size, vc.head_dim(), 2);
    let dev = Device::Cpu;
    let mut vars = Vec::new();
    let hooks: Vec<HeadHooks> = (0..vc.num_hidden_layers)
        .map(|_| {
            let a = Var::from_tensor(&Tensor::randn(0f32, 0.3, (h, r, d), &dev).expect("a"))
                .expect("var");
            // B starts at zero, as in LoRA: its gradient must still be non-zero.
            let b = Var::zeros((h, dh, r), DType::F32, &dev).expect("var");
            let g = Var::zeros(h, DType::F32, &dev).expect("var");
            vars.push((a.clone(), b.clone(), g.clone()));
            HeadHooks {
                q: Some(
                    HeadLowRank::new(a.as_tensor().clone(), b.as_tensor().clone(), 1.0, "q")
                        .expect("q"),
                ),
                v: None,
                gate_logits: Some(g.as_tensor().clone()),
            }
        })
        .collect();
    let pixels =
        Tensor::randn(0f32, 1.0, (2, 3, vc.image_size, vc.image_size), &dev).expect("pixels");
    let out = clip
        .model
        .image_features(&pixels, &hooks, true)
        .expect("forward");
    assert_eq!(out.tower.heads.len(), vc.num_hidden_layers);
    let target = Tensor::randn(0f32, 1.0, out.embeds.dims(), &dev).expect("target");
    let loss = (out.embeds - target)
        .expect("sub")
        .sqr()
        .expect("sqr")
        .sum_all()
        .expect("sum");
    let grads = loss.backward().expect("backward");
    for (i, (a, b, g)) in vars.iter().enumerate() {
        let gb = grads.get(b.as_tensor()).expect("grad of B");
        let gg = grads.get(g.as_tensor()).expect("grad of gate logits");
        let nb = gb
            .abs()
            .expect("abs")
            .sum_all()
            .expect("sum")
            .to_scalar::<f32>()
            .expect("s");
        let ng = gg
            .abs()
            .expect("abs")
            .sum_all()
            .expect("sum")
            .to_scalar::<f32>()
            .expect("s");
        assert!(nb > 0.0, "block {i}: zero gradient for lora_b");
        assert!(ng > 0.0, "block {i}: zero gradient for gate logits");
        // A's gradient is exactly zero while B is zero (d/dA of B A x is B^T ...).
        if let Some(ga) = grads.get(a.as_tensor()) {
            let na = ga
                .abs()
                .expect("abs")
                .sum_all()
                .expect("sum")
                .to_scalar::<f32>()
                .expect("s");
            assert_eq!(na, 0.0, "block {i}");
        }
        // The gates sum to H whatever their logits' gradient.
        let gates = ahp_model::gates_from_logits(g.as_tensor()).expect("gates");
        let sum: f32 = gates.to_vec1::<f32>().expect("vec").iter().sum();
        assert!((sum - h as f32).abs() < 1e-5);
    }
}

/// Training through frozen weights uses fused kernels (`ahp_model::ops`: linear without the
/// weight gradient, LayerNorm, scaled softmax, QuickGELU); with trainable weights (as in
/// `ahp-pretrain`) the model keeps candle's primitive ops. Both must give the same features
/// and the same adapter gradients, batch 2, HA-LoRA on Q and V and gates in every block.
#[test]
fn fused_training_path_equals_primitive_ops() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/models/clip-tiny-a");
    let dev = Device::Cpu;
    let cfg: ahp_spec::ClipConfig =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).expect("config"))
            .expect("parse config");
    let weights = candle_core::safetensors::load(dir.join("model.safetensors"), &dev).expect("w");
    let frozen = ahp_model::ClipModel::new(
        candle_nn::VarBuilder::from_tensors(weights.clone(), DType::F32, &dev),
        &cfg,
    )
    .expect("frozen model");
    let varmap = candle_nn::VarMap::new();
    {
        let mut data = varmap.data().lock().expect("lock");
        for (k, v) in &weights {
            data.insert(k.clone(), Var::from_tensor(v).expect("var"));
        }
    }
    let trainable = ahp_model::ClipModel::new(
        candle_nn::VarBuilder::from_varmap(&varmap, DType::F32, &dev),
        &cfg,
    )
    .expect("trainable model");

    let vc = &cfg.vision_config;
    let (h, d, dh) = (vc.num_attention_heads, vc.hidden_size, vc.head_dim());
    let mut vars = Vec::new();
    let hooks: Vec<HeadHooks> = (0..vc.num_hidden_layers)
        .map(|i| {
            let r = 1 + i % 2;
            let mk = |shape: (usize, usize, usize)| {
                Var::from_tensor(&Tensor::randn(0f32, 0.3, shape, &dev).expect("rand")).expect("v")
            };
            let (qa, qb, va, vb) = (mk((h, r, d)), mk((h, dh, r)), mk((h, r, d)), mk((h, dh, r)));
            let g = Var::from_tensor(&Tensor::randn(0f32, 0.5, h, &dev).expect("g")).expect("v");
            let lr = |a: &Var, b: &Var| {
                HeadLowRank::new(a.as_tensor().clone(), b.as_tensor().clone(), 2.0, "t")
                    .expect("lr")
            };
            let hooks = HeadHooks {
                q: Some(lr(&qa, &qb)),
                v: Some(lr(&va, &vb)),
                gate_logits: Some(g.as_tensor().clone()),
            };
            vars.extend([qa, qb, va, vb, g]);
            hooks
        })
        .collect();
    let pixels =
        Tensor::randn(0f32, 1.0, (2, 3, vc.image_size, vc.image_size), &dev).expect("pixels");
    let w = Tensor::randn(0f32, 1.0, (2, cfg.projection_dim), &dev).expect("w");
    let run = |model: &ahp_model::ClipModel| {
        let out = model
            .image_features(&pixels, &hooks, true)
            .expect("forward");
        // A loss through both the embedding and every block's per-head outputs (as the MMD).
        let mut loss = (&out.embeds * &w).expect("mul").sum_all().expect("sum");
        for heads in &out.tower.heads {
            let t = heads.sqr().expect("sqr").mean_all().expect("mean");
            loss = (loss + t).expect("add");
        }
        let grads = loss.backward().expect("backward");
        let gs: Vec<Vec<f32>> = vars
            .iter()
            .map(|v| {
                grads
                    .get(v.as_tensor())
                    .expect("adapter gradient")
                    .flatten_all()
                    .expect("flat")
                    .to_vec1::<f32>()
                    .expect("vec")
            })
            .collect();
        let emb = out
            .embeds
            .flatten_all()
            .expect("f")
            .to_vec1::<f32>()
            .expect("v");
        (emb, gs)
    };
    let (e1, g1) = run(&frozen);
    let (e2, g2) = run(&trainable);
    let rel = |a: &[f32], b: &[f32]| {
        let scale = b.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
        a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale
    };
    assert!(rel(&e1, &e2) < 1e-4, "embeddings differ: {}", rel(&e1, &e2));
    for (i, (a, b)) in g1.iter().zip(&g2).enumerate() {
        assert!(
            b.iter().any(|v| *v != 0.0),
            "adapter tensor {i}: zero gradient"
        );
        assert!(
            rel(a, b) < 1e-4,
            "adapter tensor {i}: gradients differ by {}",
            rel(a, b)
        );
    }
}
