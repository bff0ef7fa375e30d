//! ahp-model vs. transformers on the committed tiny CLIP fixtures
//! (`tests/fixtures/make_fixtures.py`): tokenization, image/text embeddings and
//! `logits_per_image`, batch 7 x 7, never compared with ahp's own earlier outputs.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use ahp_model::{
    ClipModel, HeadHooks, HeadLowRank, LoadedClip, ZeroShotClassifier, DEFAULT_TEMPLATE,
};
use ahp_spec::tolerance::MODEL_VS_TRANSFORMERS;
use candle_core::{DType, Device, Tensor};

const MODELS: [&str; 2] = ["clip-tiny-a", "clip-tiny-b"];

fn model_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/models")
        .join(name)
}

struct Fixture {
    clip: LoadedClip,
    reference: HashMap<String, Tensor>,
    texts: Vec<String>,
}

fn fixture(name: &str) -> Fixture {
    let dir = model_dir(name);
    let clip =
        LoadedClip::load(dir.to_str().expect("utf-8 path"), &Device::Cpu).expect("load fixture");
    let reference = candle_core::safetensors::load(dir.join("reference.safetensors"), &Device::Cpu)
        .expect("reference.safetensors");
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("reference.json")).expect("reference.json"),
    )
    .expect("json");
    let texts = json["texts"]
        .as_array()
        .expect("texts")
        .iter()
        .map(|t| t.as_str().expect("text").to_string())
        .collect();
    Fixture {
        clip,
        reference,
        texts,
    }
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims(), "shape mismatch");
    (a - b)
        .expect("sub")
        .abs()
        .expect("abs")
        .flatten_all()
        .expect("flatten")
        .max(0)
        .expect("max")
        .to_scalar::<f32>()
        .expect("scalar")
}

fn ids_of(t: &Tensor) -> Vec<Vec<u32>> {
    t.to_dtype(DType::I64)
        .expect("i64")
        .to_vec2::<i64>()
        .expect("vec2")
        .into_iter()
        .map(|r| r.into_iter().map(|v| v as u32).collect())
        .collect()
}

#[test]
fn tokenizer_matches_transformers() {
    for name in MODELS {
        let f = fixture(name);
        let batch = f.clip.tokenizer.encode_batch(&f.texts).expect("encode");
        assert_eq!(
            batch.ids,
            ids_of(&f.reference["input_ids"]),
            "{name}: input_ids"
        );
        assert_eq!(
            batch.attention_mask,
            ids_of(&f.reference["attention_mask"]),
            "{name}: attention_mask"
        );
        let max_len = f.clip.checkpoint.config.text_config.max_position_embeddings;
        assert_eq!(
            batch.ids[0].len(),
            max_len,
            "{name}: the long prompt is truncated to the context"
        );
    }
}

#[test]
fn embeddings_and_logits_match_transformers() {
    for name in MODELS {
        let f = fixture(name);
        let batch = f.clip.tokenizer.encode_batch(&f.texts).expect("encode");
        let pixels = &f.reference["pixel_values"];
        assert!(pixels.dim(0).expect("dim") >= 2 && batch.ids.len() >= 2);
        let out = f.clip.model.forward(pixels, &batch).expect("forward");
        for (key, ours) in [
            ("image_embeds", &out.image_embeds),
            ("text_embeds", &out.text_embeds),
            ("logits_per_image", &out.logits_per_image),
        ] {
            let d = max_abs_diff(ours, &f.reference[key]);
            eprintln!("{name} {key}: max |ahp - transformers| = {d:.3e}");
            assert!(
                d <= MODEL_VS_TRANSFORMERS,
                "{name} {key}: {d} > {MODEL_VS_TRANSFORMERS}"
            );
        }
        let img = f
            .clip
            .model
            .image_features(pixels, &[], false)
            .expect("image features")
            .embeds;
        let d = max_abs_diff(&img, &f.reference["image_embeds_unnormalized"]);
        assert!(d <= MODEL_VS_TRANSFORMERS, "{name} unnormalized image: {d}");
        let txt = f.clip.model.text_features(&batch).expect("text features");
        let d = max_abs_diff(&txt, &f.reference["text_embeds_unnormalized"]);
        assert!(d <= MODEL_VS_TRANSFORMERS, "{name} unnormalized text: {d}");
    }
}

#[test]
fn zero_shot_classifier_equals_logits_per_image() {
    for name in MODELS {
        let f = fixture(name);
        let labels: Vec<String> = ["dog", "cat", "car", "tree", "house", "star"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        for (i, l) in labels.iter().enumerate() {
            assert_eq!(f.texts[i], DEFAULT_TEMPLATE.replace("{}", l));
        }
        let zs =
            ZeroShotClassifier::new(&f.clip.model, &f.clip.tokenizer, &labels, DEFAULT_TEMPLATE)
                .expect("classifier");
        let logits = zs
            .logits_for_pixels(&f.clip.model, &f.reference["pixel_values"], &[])
            .expect("logits");
        let expected = f.reference["logits_per_image"]
            .narrow(1, 0, labels.len())
            .expect("narrow");
        let d = max_abs_diff(&logits, &expected);
        eprintln!("{name} zero-shot logits: max diff {d:.3e}");
        assert!(d <= MODEL_VS_TRANSFORMERS, "{name}: {d}");
    }
}

/// End to end from image files: ahp-spec preprocessing + model vs. transformers' embeddings.
#[test]
fn image_files_to_embeddings_match_transformers() {
    for name in MODELS {
        let f = fixture(name);
        let dir = model_dir(name);
        let json: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.join("reference.json")).expect("json"),
        )
        .expect("json");
        let images: Vec<_> = json["images"]
            .as_array()
            .expect("images")
            .iter()
            .map(|v| v.as_str().expect("name").to_string())
            .collect();
        let lossless: Vec<usize> = (0..images.len())
            .filter(|&i| !images[i].ends_with(".jpg"))
            .collect();
        let pre: Vec<_> = lossless
            .iter()
            .map(|&i| {
                ahp_spec::preprocess::preprocess_file(
                    &dir.join("../../images").join(&images[i]),
                    &f.clip.preprocess,
                )
                .expect("preprocess")
            })
            .collect();
        let pixels = ahp_model::pixel_batch(&pre, &Device::Cpu).expect("batch");
        let embeds = ahp_model::l2_normalize(
            &f.clip
                .model
                .image_features(&pixels, &[], false)
                .expect("features")
                .embeds,
        )
        .expect("normalize");
        let idx = Tensor::new(
            lossless.iter().map(|&i| i as u32).collect::<Vec<_>>(),
            &Device::Cpu,
        )
        .expect("idx");
        let expected = f.reference["image_embeds"]
            .index_select(&idx, 0)
            .expect("select");
        let d = max_abs_diff(&embeds, &expected);
        assert!(d <= MODEL_VS_TRANSFORMERS, "{name}: {d}");
    }
}

/// The hooks: zero-B LoRA and zero gate logits are the identity; non-trivial ones change the
/// output; per-head outputs are returned for every block with the right shape.
#[test]
fn head_hooks_identity_and_effect() {
    let f = fixture("clip-tiny-a");
    let model: &ClipModel = &f.clip.model;
    let vc = model.config().vision_config.clone();
    let (h, d, dh) = (vc.num_attention_heads, vc.hidden_size, vc.head_dim());
    let pixels = f.reference["pixel_values"].narrow(0, 0, 3).expect("narrow");
    let base = model.image_features(&pixels, &[], true).expect("base");
    assert_eq!(base.tower.heads.len(), vc.num_hidden_layers);
    for heads in &base.tower.heads {
        assert_eq!(heads.dims(), &[3, h, vc.num_positions(), dh]);
    }
    let dev = Device::Cpu;
    let r = 2;
    let lowrank = |b_scale: f64| -> HeadLowRank {
        let a = Tensor::randn(0f32, 0.5, (h, r, d), &dev).expect("a");
        let b = (Tensor::randn(0f32, 0.5, (h, dh, r), &dev).expect("b") * b_scale).expect("scale");
        HeadLowRank::new(a, b, 2.0, "test").expect("lowrank")
    };
    let identity: Vec<HeadHooks> = (0..vc.num_hidden_layers)
        .map(|_| HeadHooks {
            q: Some(lowrank(0.0)),
            v: Some(lowrank(0.0)),
            gate_logits: Some(Tensor::zeros(h, DType::F32, &dev).expect("zeros")),
        })
        .collect();
    let same = model
        .image_features(&pixels, &identity, false)
        .expect("identity");
    assert!(max_abs_diff(&same.embeds, &base.embeds) < 1e-6);
    let active: Vec<HeadHooks> = (0..vc.num_hidden_layers)
        .map(|_| HeadHooks {
            q: Some(lowrank(1.0)),
            v: Some(lowrank(1.0)),
            gate_logits: Some(Tensor::randn(0f32, 1.0, h, &dev).expect("logits")),
        })
        .collect();
    let changed = model
        .image_features(&pixels, &active, false)
        .expect("active");
    assert!(max_abs_diff(&changed.embeds, &base.embeds) > 1e-3);
}

/// A prompt ensemble is the normalized mean of each template's normalized class embeddings (as
/// CLIP's zero-shot evaluation builds it); one template is exactly the single-template
/// classifier.
#[test]
fn prompt_ensemble_is_the_normalized_mean_of_the_templates() {
    let f = fixture(MODELS[0]);
    let labels: Vec<String> = ["dog", "cat", "car"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let (t1, t2) = ("a photo of a {}.", "a drawing of the {}");
    let new = |t: &str| {
        ZeroShotClassifier::new(&f.clip.model, &f.clip.tokenizer, &labels, t).expect("classifier")
    };
    let (a, b) = (new(t1), new(t2));
    let single = ZeroShotClassifier::with_templates(
        &f.clip.model,
        &f.clip.tokenizer,
        &labels,
        &[t1.to_string()],
    )
    .expect("one template");
    assert_eq!(max_abs_diff(single.class_embeds(), a.class_embeds()), 0.0);
    let both = ZeroShotClassifier::with_templates(
        &f.clip.model,
        &f.clip.tokenizer,
        &labels,
        &[t1.to_string(), t2.to_string()],
    )
    .expect("ensemble");
    let expected = ahp_model::l2_normalize(&(a.class_embeds() + b.class_embeds()).expect("sum"))
        .expect("normalize");
    let d = max_abs_diff(both.class_embeds(), &expected);
    assert!(d < 1e-6, "ensemble differs from the normalized mean by {d}");
    assert!(max_abs_diff(both.class_embeds(), a.class_embeds()) > 1e-4);
    assert_eq!(both.templates(), &[t1.to_string(), t2.to_string()]);
    assert!(
        ZeroShotClassifier::with_templates(&f.clip.model, &f.clip.tokenizer, &labels, &[]).is_err()
    );
}
