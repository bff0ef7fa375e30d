//! Folding: the plain model built from folded weights computes what the base model with the
//! adapter hooks computes, for per-head (HA-LoRA) and one-group (LoRA) layouts, with gates.

mod common;

use ahp_export::fold;
use ahp_model::{ClipModel, ZeroShotClassifier};
use candle_core::{Device, Tensor};
use common::{config, max_abs_diff, model_dir, random_adapter, reference, AdapterSpec, MODELS};

struct Outputs {
    embeds: Tensor,
    logits: Tensor,
}

fn run(
    model: &ClipModel,
    hooks: &[ahp_model::HeadHooks],
    zs: &ZeroShotClassifier,
    px: &Tensor,
) -> Outputs {
    let embeds = model
        .image_features(px, hooks, false)
        .expect("features")
        .embeds;
    let logits = zs.logits(&embeds).expect("logits");
    Outputs { embeds, logits }
}

fn check_layout(name: &str, spec: &AdapterSpec) {
    let cfg = config(name);
    let files = vec![model_dir(name).join("model.safetensors")];
    let base = fold::load_weights(&files).expect("weights");
    let base_model = fold::build_model(&base, &cfg, &Device::Cpu).expect("base model");
    let adapter = random_adapter(&cfg, spec);
    let folded = fold::fold_hooks(&base, &adapter.hooks, &cfg).expect("fold");
    let folded_model = fold::build_model(&folded, &cfg, &Device::Cpu).expect("folded model");
    let zs = ZeroShotClassifier::from_parts(
        common::labels(),
        vec!["a photo of a {}.".into()],
        &adapter.text_embeds,
        2.0,
    )
    .expect("classifier");
    let px = &reference(name)["pixel_values"];
    assert!(px.dim(0).expect("batch") >= 2);

    let adapted = run(&base_model, &adapter.hooks, &zs, px);
    let plain = run(&folded_model, &[], &zs, px);
    let untouched = run(&base_model, &[], &zs, px);
    for (what, a, p, b) in [
        ("embeds", &adapted.embeds, &plain.embeds, &untouched.embeds),
        ("logits", &adapted.logits, &plain.logits, &untouched.logits),
    ] {
        let d = max_abs_diff(a, p);
        let d_base = max_abs_diff(a, b);
        eprintln!(
            "{name} per_head={} {what}: |folded - adapted| = {d:.3e}, |adapted - base| = {d_base:.3e}",
            spec.per_head
        );
        assert!(
            d <= 1e-5,
            "{name} {what}: folded differs from adapted by {d}"
        );
        assert!(
            d_base > 1e-3,
            "{name} {what}: the adapter changes nothing ({d_base})"
        );
    }

    // Only the hooked tensors changed; biases did not.
    for i in 0..cfg.vision_config.num_hidden_layers {
        for leaf in ["q", "k", "v", "out"] {
            let bias = fold::attn_key(i, leaf, "bias");
            assert_eq!(max_abs_diff(&base[&bias], &folded[&bias]), 0.0, "{bias}");
        }
        let k = fold::attn_key(i, "k", "weight");
        assert_eq!(max_abs_diff(&base[&k], &folded[&k]), 0.0, "{k}");
        let q = fold::attn_key(i, "q", "weight");
        let changed = max_abs_diff(&base[&q], &folded[&q]) > 0.0;
        assert_eq!(changed, spec.ranks[i] > 0, "{q}");
    }
}

#[test]
fn folded_equals_adapted_per_head() {
    for name in MODELS {
        check_layout(name, &AdapterSpec::ahp(&config(name), 11));
    }
}

#[test]
fn folded_equals_adapted_plain_lora_with_gates() {
    for name in MODELS {
        let mut spec = AdapterSpec::lora(&config(name), 12);
        spec.gates = true;
        check_layout(name, &spec);
    }
}

#[test]
fn classifier_is_scaled_normalized_embeddings() {
    let te = Tensor::new(&[[3f32, 4.0], [0.0, 2.0]], &Device::Cpu).expect("t");
    let m = fold::classifier_matrix(&te, 1.0).expect("classifier");
    let e = std::f32::consts::E;
    let want = Tensor::new(&[[0.6 * e, 0.8 * e], [0.0, e]], &Device::Cpu).expect("t");
    assert!(max_abs_diff(&m, &want) < 1e-6);
    let err = fold::classifier_matrix(&te, f32::NAN).expect_err("nan scale");
    assert!(err.to_string().contains("logit_scale"), "{err}");
}

#[test]
fn non_finite_fold_is_an_error_naming_the_tensor() {
    let name = MODELS[0];
    let cfg = config(name);
    let mut base =
        fold::load_weights(&[model_dir(name).join("model.safetensors")]).expect("weights");
    let adapter = random_adapter(&cfg, &AdapterSpec::ahp(&cfg, 3));
    let key = fold::attn_key(2, "q", "weight");
    let w = &base[&key];
    let inf = (w.ones_like().expect("ones") * f64::INFINITY).expect("inf");
    base.insert(key.clone(), inf);
    let err = fold::fold_hooks(&base, &adapter.hooks, &cfg).expect_err("inf weight");
    assert!(err.to_string().contains(&key), "{err}");
}
