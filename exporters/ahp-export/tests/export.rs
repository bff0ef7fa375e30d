//! ONNX export end to end on the tiny fixtures, run with tract: the zero-shot export
//! reproduces transformers' `logits_per_image`, a purified export has the zero-shot graph's
//! structure and reproduces the adapted candle model, plus opsets, fp16 and head pruning.

mod common;

use std::path::Path;

use ahp_export::export::{export, ExportOptions, Prepared, Source};
use ahp_export::onnx::{self, OnnxOptions};
use ahp_export::validate::{run_tract, ONNX_FP16_VS_CANDLE};
use ahp_spec::onnx_names::{meta, OUTPUT_IMAGE_EMBEDS, OUTPUT_LOGITS};
use ahp_spec::run::Method;
use ahp_spec::tolerance::MODEL_VS_TRANSFORMERS;
use candle_core::Tensor;
use common::{config, labels, max_abs_diff, model_dir, reference, write_run, AdapterSpec, MODELS};

/// The tolerance the brief asks for (ONNX/tract vs transformers and vs candle).
const TOL: f32 = 1e-4;

fn zero_shot(name: &str) -> Prepared {
    Prepared::load(&Source::ZeroShot {
        clip: model_dir(name).to_str().expect("utf-8").into(),
        labels: labels(),
        templates: vec![ahp_model::DEFAULT_TEMPLATE.into()],
    })
    .expect("load zero-shot")
}

fn from_run(dir: &Path) -> Prepared {
    Prepared::load(&Source::Run {
        run_dir: dir.to_path_buf(),
        base: None,
        verify_base_sha256: true,
    })
    .expect("load run")
}

fn outputs(path: &Path, px: &Tensor) -> (Tensor, Tensor) {
    let out = run_tract(path, px).expect("tract");
    let names: Vec<&str> = out.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, [OUTPUT_LOGITS, OUTPUT_IMAGE_EMBEDS]);
    (out[0].1.clone(), out[1].1.clone())
}

#[test]
fn zero_shot_export_reproduces_transformers() {
    for name in MODELS {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("model.onnx");
        let prepared = zero_shot(name);
        let summary = export(&prepared, &path, &ExportOptions::default()).expect("export");
        assert!(path.is_file());
        let v = summary.validation.expect("validated");
        for o in &v.outputs {
            eprintln!(
                "{name} zero-shot validation {}: {:.3e}",
                o.name, o.max_abs_diff
            );
        }

        let r = reference(name);
        let px = &r["pixel_values"];
        assert_eq!(px.dim(0).expect("batch"), 7);
        let (logits, embeds) = outputs(&path, px);
        let want = r["logits_per_image"].narrow(1, 0, 6).expect("narrow");
        let d = max_abs_diff(&logits, &want);
        eprintln!("{name}: max |onnx logits - transformers logits_per_image[:, :6]| = {d:.3e}");
        assert!(d <= TOL, "{name}: logits differ from transformers by {d}");
        let d = max_abs_diff(&embeds, &r["image_embeds"]);
        eprintln!("{name}: max |onnx image_embeds - transformers| = {d:.3e}");
        assert!(d <= MODEL_VS_TRANSFORMERS, "{name}: embeds differ by {d}");

        // Metadata.
        let model = onnx::read_model(&path).expect("read");
        let get = |k: &str| onnx::metadata_value(&model, k).expect(k).to_string();
        let l: Vec<String> = serde_json::from_str(&get(meta::LABELS)).expect("labels json");
        assert_eq!(l, labels());
        let s = config(name).vision_config.image_size;
        assert_eq!(get(meta::IMAGE_SIZE), s.to_string());
        assert_eq!(get(meta::METHOD), "zero-shot");
        assert_eq!(get(meta::GATES), "{}");
        assert_eq!(get(meta::TEMPLATE), "a photo of a {}.");
        assert_eq!(
            get(meta::RESIZE),
            format!("shortest_edge={s},bicubic,center_crop={s}x{s}")
        );
        let mean: Vec<f32> = serde_json::from_str(&get(meta::MEAN)).expect("mean");
        assert_eq!(mean.len(), 3);
        let std: Vec<f32> = serde_json::from_str(&get(meta::STD)).expect("std");
        assert_eq!(std.len(), 3);
        let source: serde_json::Value = serde_json::from_str(&get(meta::SOURCE)).expect("source");
        assert_eq!(
            source["weights"][0]["sha256"].as_str().expect("sha").len(),
            64
        );
        assert!(source["run_id"].is_null());
        assert_eq!(model.opset_import[0].version, 17);
    }
}

#[test]
fn purified_export_has_zero_shot_structure_and_matches_adapted_model() {
    for name in MODELS {
        let dir = tempfile::tempdir().expect("tempdir");
        let run_dir = dir.path().join("run");
        write_run(
            &run_dir,
            name,
            &AdapterSpec::ahp(&config(name), 21),
            Method::Ahp,
        );
        let prepared = from_run(&run_dir);
        let path = dir.path().join("purified.onnx");
        let summary = export(&prepared, &path, &ExportOptions::default()).expect("export");
        for o in &summary.validation.as_ref().expect("validated").outputs {
            eprintln!(
                "{name} purified validation {}: {:.3e}",
                o.name, o.max_abs_diff
            );
            assert!(o.max_abs_diff <= TOL);
        }

        let zs_path = dir.path().join("zero_shot.onnx");
        let zs = export(&zero_shot(name), &zs_path, &ExportOptions::default()).expect("zs");
        assert_eq!(summary.graph.nodes, zs.graph.nodes, "{name}: node count");
        assert_eq!(
            summary.graph.op_sequence, zs.graph.op_sequence,
            "{name}: op types"
        );
        assert_eq!(summary.graph.initializers, zs.graph.initializers);
        eprintln!(
            "{name}: {} nodes, {} initializers, ops {:?}",
            zs.graph.nodes, zs.graph.initializers, zs.graph.op_types
        );

        // The fixture images (batch 7) against the adapted candle model.
        let px = &reference(name)["pixel_values"];
        let (logits, embeds) = outputs(&path, px);
        let (want_logits, want_embeds) = prepared.reference(px).expect("reference");
        let dl = max_abs_diff(&logits, &want_logits);
        let de = max_abs_diff(&embeds, &want_embeds);
        eprintln!("{name}: purified onnx vs adapted candle: logits {dl:.3e}, embeds {de:.3e}");
        assert!(dl <= TOL && de <= TOL, "{name}: {dl} {de}");

        // ... and not the base model.
        let (base_logits, base_embeds) = prepared
            .outputs_of(&prepared.base_model, &[], px)
            .expect("base");
        assert!(max_abs_diff(&logits, &base_logits) > 1e-3);
        assert!(max_abs_diff(&embeds, &base_embeds) > 1e-3);

        let model = onnx::read_model(&path).expect("read");
        let gates: serde_json::Value =
            serde_json::from_str(onnx::metadata_value(&model, meta::GATES).expect("gates"))
                .expect("gates json");
        let blocks = config(name).vision_config.num_hidden_layers;
        let heads = config(name).vision_config.num_attention_heads;
        assert_eq!(gates.as_object().expect("object").len(), blocks);
        let g0: Vec<f32> = serde_json::from_value(gates["0"].clone()).expect("gate list");
        assert_eq!(g0.len(), heads);
        assert!((g0.iter().sum::<f32>() - heads as f32).abs() < 1e-4);
        assert_eq!(onnx::metadata_value(&model, meta::METHOD), Some("ahp"));
        let source: serde_json::Value =
            serde_json::from_str(onnx::metadata_value(&model, meta::SOURCE).expect("source"))
                .expect("json");
        assert_eq!(source["run_id"], "test-ahp-21");
    }
}

#[test]
fn plain_lora_run_exports() {
    let name = MODELS[1];
    let dir = tempfile::tempdir().expect("tempdir");
    let run_dir = dir.path().join("run");
    write_run(
        &run_dir,
        name,
        &AdapterSpec::lora(&config(name), 5),
        Method::Lora,
    );
    let prepared = from_run(&run_dir);
    let path = dir.path().join("lora.onnx");
    let summary = export(&prepared, &path, &ExportOptions::default()).expect("export");
    let v = summary.validation.expect("validated");
    assert!(v.outputs.iter().all(|o| o.max_abs_diff <= TOL));
    let model = onnx::read_model(&path).expect("read");
    assert_eq!(onnx::metadata_value(&model, meta::GATES), Some("{}"));
    assert_eq!(onnx::metadata_value(&model, meta::METHOD), Some("lora"));
}

#[test]
fn every_supported_opset_validates() {
    for name in MODELS {
        let dir = tempfile::tempdir().expect("tempdir");
        let run_dir = dir.path().join("run");
        write_run(
            &run_dir,
            name,
            &AdapterSpec::ahp(&config(name), 8),
            Method::Ahp,
        );
        let prepared = from_run(&run_dir);
        for opset in [13, 16, 17, 18, 21] {
            let path = dir.path().join(format!("opset{opset}.onnx"));
            let options = ExportOptions {
                onnx: OnnxOptions { opset, fp16: false },
                validation_batch: 3,
                ..ExportOptions::default()
            };
            let summary = export(&prepared, &path, &options)
                .unwrap_or_else(|e| panic!("{name} opset {opset}: {e}"));
            let v = summary.validation.expect("validated");
            assert_eq!(v.batch, 3);
            let ln = summary.graph.op_types.get("LayerNormalization").copied();
            assert_eq!(ln.is_some(), opset >= 17, "{name} opset {opset}");
            let model = onnx::read_model(&path).expect("read");
            assert_eq!(model.opset_import[0].version, opset);
            assert_eq!(model.ir_version, onnx::ir_version_for(opset));
        }
    }
}

#[test]
fn unsupported_opset_is_an_error_and_writes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("model.onnx");
    let options = ExportOptions {
        onnx: OnnxOptions {
            opset: 11,
            fp16: false,
        },
        ..ExportOptions::default()
    };
    let err = export(&zero_shot(MODELS[0]), &path, &options).expect_err("opset 11");
    assert!(err.to_string().contains("opset 11"), "{err}");
    assert_eq!(std::fs::read_dir(dir.path()).expect("ls").count(), 0);
}

#[test]
fn fp16_export_keeps_f32_interface() {
    let name = MODELS[0];
    let dir = tempfile::tempdir().expect("tempdir");
    let run_dir = dir.path().join("run");
    write_run(
        &run_dir,
        name,
        &AdapterSpec::ahp(&config(name), 9),
        Method::Ahp,
    );
    let prepared = from_run(&run_dir);
    let path = dir.path().join("fp16.onnx");
    let options = ExportOptions {
        onnx: OnnxOptions {
            opset: 17,
            fp16: true,
        },
        ..ExportOptions::default()
    };
    let summary = export(&prepared, &path, &options).expect("fp16 export");
    for o in &summary.validation.expect("validated").outputs {
        eprintln!("fp16 {}: {:.3e}", o.name, o.max_abs_diff);
        assert!(o.max_abs_diff <= ONNX_FP16_VS_CANDLE * 10.0);
    }
    assert_eq!(summary.graph.op_types.get("Cast"), Some(&3));
    let f32_bytes = export(
        &prepared,
        &dir.path().join("f32.onnx"),
        &ExportOptions::default(),
    )
    .expect("f32")
    .bytes;
    assert!(
        summary.bytes * 10 < f32_bytes * 6,
        "{} vs {f32_bytes}",
        summary.bytes
    );
}

#[test]
fn pruning_removes_heads_and_matches_masked_model() {
    let name = MODELS[0];
    let cfg = config(name);
    let dir = tempfile::tempdir().expect("tempdir");
    let run_dir = dir.path().join("run");
    write_run(&run_dir, name, &AdapterSpec::ahp(&cfg, 31), Method::Ahp);
    let prepared = from_run(&run_dir);
    // Threshold between the smallest and the largest gate of block 0 removes some heads.
    let g0 = prepared.gates[0].clone().expect("gates");
    let mut sorted = g0.clone();
    sorted.sort_by(f32::total_cmp);
    let threshold = (sorted[0] + sorted[1]) / 2.0;
    let path = dir.path().join("pruned.onnx");
    let options = ExportOptions {
        prune_threshold: Some(threshold),
        ..ExportOptions::default()
    };
    let summary = export(&prepared, &path, &options).expect("pruned export");
    let p = summary.pruning.expect("pruning report");
    assert!(p.plan.removed_count() >= 1);
    assert!(p.flops_after < p.flops_before);
    eprintln!(
        "pruned {:?}, FLOPs {} -> {}, vs unpruned {:?}",
        p.plan.removed, p.flops_before, p.flops_after, p.diff_vs_unpruned
    );
    let full = export(
        &prepared,
        &dir.path().join("full.onnx"),
        &ExportOptions::default(),
    )
    .expect("full");
    assert!(summary.graph.parameters < full.graph.parameters);
    let model = onnx::read_model(&path).expect("read");
    assert!(onnx::metadata_value(&model, ahp_export::export::META_PRUNED_HEADS).is_some());

    // A threshold above every gate removes every head: refused (D10) unless asked for, when
    // attention reduces to out_proj's bias.
    let path = dir.path().join("all.onnx");
    let options = ExportOptions {
        prune_threshold: Some(100.0),
        ..ExportOptions::default()
    };
    let err = export(&prepared, &path, &options).expect_err("every head of a block");
    assert!(
        err.to_string()
            .contains("removes every head of block(s) [0")
            && err.to_string().contains("--prune-empty-blocks"),
        "{err}"
    );
    assert!(!path.exists());
    let options = ExportOptions {
        prune_empty_blocks: true,
        ..options
    };
    let summary = export(&prepared, &path, &options).expect("all heads pruned");
    assert!(!summary.graph.op_types.contains_key("Softmax"));
    assert!(summary.validation.is_some());
}

#[test]
fn pruning_without_gates_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("model.onnx");
    let options = ExportOptions {
        prune_threshold: Some(0.5),
        ..ExportOptions::default()
    };
    let err = export(&zero_shot(MODELS[0]), &path, &options).expect_err("no gates");
    assert!(err.to_string().contains("gates"), "{err}");
    assert!(!path.exists());
}
