//! The library on the committed ONNX fixtures: metadata, parity with tract and with
//! transformers' reference outputs, classification of the committed images, errors, threads.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::sync::Arc;

use ahp_runtime::{softmax, Classifier, Error, ExecutionProvider};
use common::*;
use tract_onnx::prelude::{
    tvec, DatumExt, Framework, InferenceFact, InferenceModelExt, IntoRunnable, IntoTValue,
};

/// ort vs. tract and vs. transformers (absolute, on logits and image embeddings).
const TOLERANCE: f32 = 1e-4;

/// Runs `pixels [batch, 3, s, s]` through tract; returns `(logits, image_embeds)` flattened.
fn run_tract(path: &Path, pixels: &[f32], batch: usize, s: usize) -> (Vec<f32>, Vec<f32>) {
    let dims = [batch, 3, s, s];
    let fact: InferenceFact = f32::fact(dims).into();
    let model = tract_onnx::onnx()
        .model_for_path(path)
        .expect("tract: load")
        .with_input_fact(0, fact)
        .expect("tract: input fact")
        .into_optimized()
        .expect("tract: optimize")
        .into_runnable()
        .expect("tract: runnable");
    let input = tract_onnx::prelude::Tensor::from_shape(&dims, pixels).expect("tensor");
    let outputs = model.run(tvec!(input.into_tvalue())).expect("tract: run");
    let graph = model.model();
    let outlets = graph.output_outlets().expect("outlets");
    let mut logits = None;
    let mut embeds = None;
    for (outlet, value) in outlets.iter().zip(outputs.iter()) {
        let name = graph
            .outlet_label(*outlet)
            .unwrap_or(&graph.node(outlet.node).name)
            .to_string();
        let values: Vec<f32> = value
            .to_plain_array_view::<f32>()
            .expect("f32 output")
            .iter()
            .copied()
            .collect();
        match name.as_str() {
            "logits" => logits = Some(values),
            "image_embeds" => embeds = Some(values),
            _ => {}
        }
    }
    (
        logits.expect("tract: no logits output"),
        embeds.expect("tract: no image_embeds output"),
    )
}

/// Deterministic pixels in the normalized range.
fn seeded_pixels(n: usize, seed: u64) -> Vec<f32> {
    let mut state = seed;
    (0..n)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 4.0 - 2.0
        })
        .collect()
}

#[test]
fn metadata_gives_labels_and_preprocessing() {
    let c = classifier_a();
    assert_eq!(c.labels(), CLASSES);
    assert_eq!(c.execution_provider(), ExecutionProvider::Cpu);
    assert_eq!(c.image_size(), (32, 32));
    let cfg = c.preprocess_config();
    assert_eq!(cfg.shortest_edge, 32);
    assert_eq!(cfg.mean, ahp_spec::preprocess::CLIP_MEAN);
    assert_eq!(cfg.std, ahp_spec::preprocess::CLIP_STD);
    assert!(c.has_image_embeds());
    for key in [
        "ahp.labels",
        "ahp.image_size",
        "ahp.mean",
        "ahp.std",
        "ahp.resize",
    ] {
        assert!(c.info().properties.contains_key(key), "missing {key}");
    }
    let b = load(&model_b());
    assert_eq!(b.labels(), CLASSES);
    assert_eq!(b.image_size(), (24, 24));
}

fn check_against_tract(model: &Path, batch: usize, pixels: &[f32]) {
    let c = load(model);
    let s = c.image_size().0 as usize;
    let out = c.run(pixels, batch).expect("ort run");
    let (t_logits, t_embeds) = run_tract(model, pixels, batch, s);
    let o_logits: Vec<f32> = out.logits.concat();
    let o_embeds: Vec<f32> = out.image_embeds.expect("image_embeds").concat();
    let dl = max_abs_diff(&o_logits, &t_logits);
    let de = max_abs_diff(&o_embeds, &t_embeds);
    eprintln!(
        "{}: batch {batch}: max |ort - tract| logits {dl:.3e}, image_embeds {de:.3e}",
        model.display()
    );
    assert!(dl <= TOLERANCE, "logits differ from tract by {dl}");
    assert!(de <= TOLERANCE, "image_embeds differ from tract by {de}");
}

#[test]
fn ort_matches_tract() {
    for (model, name) in [(model_a(), "clip-tiny-a"), (model_b(), "clip-tiny-b")] {
        let (shape, pixels) = reference(name, "pixel_values");
        check_against_tract(&model, shape[0], &pixels);
        let s = shape[2];
        check_against_tract(&model, 3, &seeded_pixels(3 * 3 * s * s, 7));
    }
}

#[test]
fn ort_matches_transformers() {
    for (model, name) in [(model_a(), "clip-tiny-a"), (model_b(), "clip-tiny-b")] {
        let c = load(&model);
        let (shape, pixels) = reference(name, "pixel_values");
        let batch = shape[0];
        let (lshape, logits_per_image) = reference(name, "logits_per_image");
        let (_, ref_embeds) = reference(name, "image_embeds");
        let cols = lshape[1];
        // The model's classes are the first 6 prompts of the reference texts.
        let expected: Vec<f32> = (0..batch)
            .flat_map(|i| logits_per_image[i * cols..i * cols + CLASSES.len()].to_vec())
            .collect();
        let out = c.run(&pixels, batch).expect("run");
        let low_level = c.logits(&pixels, batch).expect("logits");
        assert_eq!(low_level, out.logits);
        let dl = max_abs_diff(&out.logits.concat(), &expected);
        let de = max_abs_diff(&out.image_embeds.expect("embeds").concat(), &ref_embeds);
        eprintln!("{name}: max |ort - transformers| logits {dl:.3e}, image_embeds {de:.3e}");
        assert!(dl <= TOLERANCE, "{name}: logits differ by {dl}");
        assert!(de <= TOLERANCE, "{name}: image_embeds differ by {de}");
    }
}

#[test]
fn classify_committed_images() {
    let c = classifier_a();
    let (lshape, logits_per_image) = reference("clip-tiny-a", "logits_per_image");
    let cols = lshape[1];
    let paths = images();
    let decoded: Vec<_> = paths
        .iter()
        .map(|p| ahp_runtime::preprocess::load_image(p).expect("decode"))
        .collect();
    let batch = c.classify_batch(&decoded, 6).expect("classify_batch");
    let (mut worst_png, mut worst_jpg) = (0f32, 0f32);
    for (i, (path, image)) in paths.iter().zip(&decoded).enumerate() {
        let top = c.classify(image, 6).expect("classify");
        assert_eq!(top.len(), 6);
        assert!(top.windows(2).all(|w| w[0].1 >= w[1].1), "not sorted");
        let total: f32 = top.iter().map(|(_, p)| p).sum();
        assert!((total - 1.0).abs() < 1e-5, "probabilities sum to {total}");
        // Same as in a batch.
        for ((l1, p1), (l2, p2)) in top.iter().zip(&batch[i]) {
            assert_eq!(l1, l2);
            assert!((p1 - p2).abs() < 1e-5);
        }
        // Same as transformers' preprocessing + model (JPEG decoders differ slightly).
        let expected = softmax(&logits_per_image[i * cols..i * cols + 6]);
        let jpeg = path.extension().is_some_and(|e| e == "jpg");
        let tol = if jpeg { 1e-3 } else { 1e-4 };
        for (label, prob) in &top {
            let k = CLASSES.iter().position(|c| c == label).expect("label");
            let d = (prob - expected[k]).abs();
            let worst = if jpeg { &mut worst_jpg } else { &mut worst_png };
            *worst = worst.max(d);
            assert!(
                d <= tol,
                "{}: p({label}) = {prob}, transformers {} (diff {d})",
                path.display(),
                expected[k]
            );
        }
    }
    eprintln!(
        "classify vs transformers (probabilities): PNG max diff {worst_png:.3e}, JPEG {worst_jpg:.3e}"
    );
    let top2 = c.classify(&decoded[0], 2).expect("top 2");
    assert_eq!(top2.len(), 2);
    let all = c.classify(&decoded[0], 100).expect("top 100");
    assert_eq!(all.len(), 6, "top_k is capped to the number of classes");
}

#[test]
fn embeddings_are_unit_vectors() {
    let c = classifier_a();
    let decoded: Vec<_> = images()
        .iter()
        .map(|p| ahp_runtime::preprocess::load_image(p).expect("decode"))
        .collect();
    let embeds = c.embed(&decoded).expect("embed");
    assert_eq!(embeds.len(), 7);
    let (_, ref_embeds) = reference("clip-tiny-a", "image_embeds");
    let p = ref_embeds.len() / 7;
    for e in &embeds {
        assert_eq!(e.len(), p);
        let norm: f32 = e.iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "norm {norm}");
    }
    assert!(c.embed(&[]).expect("empty").is_empty());
}

#[test]
fn from_memory_equals_from_file() {
    let bytes = std::fs::read(model_a()).expect("read");
    let m = Classifier::builder()
        .device(ExecutionProvider::Cpu)
        .commit_from_memory(&bytes)
        .expect("from memory");
    let (shape, pixels) = reference("clip-tiny-a", "pixel_values");
    let a = m.logits(&pixels, shape[0]).expect("memory");
    let b = classifier_a().logits(&pixels, shape[0]).expect("file");
    assert!(max_abs_diff(&a.concat(), &b.concat()) < 1e-6);
    assert_eq!(m.model_name(), "<memory>");
}

#[test]
fn invalid_inputs_are_errors() {
    let c = classifier_a();
    let err = c.logits(&[0.0; 10], 1).expect_err("wrong size");
    assert!(matches!(err, Error::InvalidInput(_)), "{err}");
    assert!(err.to_string().contains("3 x 32 x 32"), "{err}");
    assert!(c.logits(&[], 0).expect("empty batch").is_empty());
    let image = ahp_runtime::preprocess::load_image(&images()[0]).expect("decode");
    let err = c.classify(&image, 0).expect_err("top_k 0");
    assert!(err.to_string().contains("top_k"), "{err}");
    for bad in ["empty.png", "truncated.png", "not_an_image.png"] {
        let path = fixture(&format!("bad/{bad}"));
        let err = ahp_runtime::preprocess::load_image(&path).expect_err(bad);
        assert!(err.to_string().contains(bad), "{err}");
    }
}

#[test]
fn model_file_errors_name_the_file() {
    let err = Classifier::builder()
        .commit_from_file("/nonexistent/model.onnx")
        .expect_err("missing");
    assert!(matches!(err, Error::Io { .. }), "{err}");
    assert!(err.to_string().contains("/nonexistent/model.onnx"), "{err}");

    let not_onnx = fixture("bad/not_an_image.png");
    let err = Classifier::builder()
        .device(ExecutionProvider::Cpu)
        .commit_from_file(&not_onnx)
        .expect_err("not onnx");
    assert!(err.to_string().contains("not_an_image.png"), "{err}");
}

#[test]
fn missing_metadata_is_a_named_error() {
    // Remove `ahp.labels` from the model's metadata_props (protobuf field 14 of ModelProto).
    let bytes = std::fs::read(model_a()).expect("read");
    let stripped = strip_metadata_prop(&bytes, "ahp.labels");
    assert!(
        stripped.len() < bytes.len(),
        "ahp.labels not found in the model"
    );
    let err = Classifier::builder()
        .device(ExecutionProvider::Cpu)
        .commit_from_memory(&stripped)
        .expect_err("no labels");
    assert!(
        matches!(
            err,
            Error::Metadata {
                key: "ahp.labels",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("`ahp.labels`: missing"), "{err}");
}

/// Drops the top-level `metadata_props` entry with `key` from a serialized ModelProto.
fn strip_metadata_prop(bytes: &[u8], key: &str) -> Vec<u8> {
    fn varint(b: &[u8], i: &mut usize) -> u64 {
        let mut v = 0u64;
        let mut shift = 0;
        loop {
            let byte = b[*i];
            *i += 1;
            v |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return v;
            }
            shift += 7;
        }
    }
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let start = i;
        let tag = varint(bytes, &mut i);
        let (field, wire) = (tag >> 3, tag & 7);
        match wire {
            0 => {
                varint(bytes, &mut i);
            }
            1 => i += 8,
            5 => i += 4,
            2 => {
                let len = varint(bytes, &mut i) as usize;
                let payload = &bytes[i..i + len];
                i += len;
                if field == 14 {
                    // StringStringEntryProto { key = 1; value = 2 }: the key comes first.
                    let mut j = 0;
                    let ktag = varint(payload, &mut j);
                    if ktag == (1 << 3 | 2) {
                        let klen = varint(payload, &mut j) as usize;
                        if &payload[j..j + klen] == key.as_bytes() {
                            continue;
                        }
                    }
                }
            }
            other => panic!("unexpected wire type {other}"),
        }
        out.extend_from_slice(&bytes[start..i]);
    }
    out
}

#[test]
fn gpu_providers_fall_back_or_fail_when_strict() {
    // The test library is the CPU build of ONNX Runtime (and CUDA/TensorRT are compile-time
    // features): non-strict falls back to the CPU, strict fails naming the reason.
    let c = Classifier::builder()
        .device(ExecutionProvider::TensorRt)
        .commit_from_file(model_a())
        .expect("fallback to CPU");
    assert_eq!(c.execution_provider(), ExecutionProvider::Cpu);
    let err = Classifier::builder()
        .device(ExecutionProvider::Cuda)
        .strict(true)
        .commit_from_file(model_a())
        .expect_err("strict CUDA");
    assert!(matches!(err, Error::ExecutionProvider { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("CUDA"), "{msg}");
    assert!(!msg.contains("CPU:"), "strict must not try the CPU: {msg}");
}

#[test]
fn classifier_is_shared_between_threads() {
    let c = classifier_a();
    let decoded: Arc<Vec<_>> = Arc::new(
        images()
            .iter()
            .map(|p| ahp_runtime::preprocess::load_image(p).expect("decode"))
            .collect(),
    );
    let expected = c.classify_batch(&decoded, 3).expect("reference");
    let handles: Vec<_> = (0..8)
        .map(|t| {
            let c = Arc::clone(&c);
            let decoded = Arc::clone(&decoded);
            std::thread::spawn(move || {
                (0..10)
                    .map(|k| {
                        let i = (t + k) % decoded.len();
                        (i, c.classify(&decoded[i], 3).expect("classify"))
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    for h in handles {
        for (i, top) in h.join().expect("thread") {
            for ((l1, p1), (l2, p2)) in top.iter().zip(&expected[i]) {
                assert_eq!(l1, l2);
                assert!((p1 - p2).abs() < 1e-5);
            }
        }
    }
}

#[test]
fn session_pool_gives_the_same_results() {
    let c = Classifier::builder()
        .device(ExecutionProvider::Cpu)
        .sessions(3)
        .intra_threads(1)
        .commit_from_file(model_a())
        .expect("pool");
    assert_eq!(c.num_sessions(), 3);
    let (shape, pixels) = reference("clip-tiny-a", "pixel_values");
    let expected = classifier_a().logits(&pixels, shape[0]).expect("single");
    std::thread::scope(|s| {
        for _ in 0..6 {
            s.spawn(|| {
                let got = c.logits(&pixels, shape[0]).expect("pool run");
                assert!(max_abs_diff(&got.concat(), &expected.concat()) < 1e-5);
            });
        }
    });
}
