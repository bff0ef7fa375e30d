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
