//! Bad run directories give clear errors naming the file or tensor, and the CLI leaves no
//! model behind on failure.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use ahp_export::export::{Prepared, Source};
use ahp_export::triton::TritonOptions;
use ahp_spec::run::{Method, ADAPTER_FILE, MANIFEST_FILE};
use candle_core::Tensor;
use common::{config, write_run, AdapterSpec, MODELS};

fn load_run(dir: &Path) -> String {
    Prepared::load(&Source::Run {
        run_dir: dir.to_path_buf(),
        base: None,
        verify_base_sha256: true,
    })
    .expect_err("must fail")
    .to_string()
}

fn good_run(dir: &Path) -> PathBuf {
    let run = dir.join("run");
    write_run(
        &run,
        MODELS[0],
        &AdapterSpec::ahp(&config(MODELS[0]), 4),
        Method::Ahp,
    );
    run
}

fn edit_manifest(run: &Path, f: impl FnOnce(&mut serde_json::Value)) {
    let path = run.join(MANIFEST_FILE);
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("json");
    f(&mut v);
    std::fs::write(&path, v.to_string()).expect("write");
}

fn edit_adapter(run: &Path, f: impl FnOnce(&mut std::collections::HashMap<String, Tensor>)) {
    let path = run.join(ADAPTER_FILE);
    let mut t = candle_core::safetensors::load(&path, &candle_core::Device::Cpu).expect("load");
    f(&mut t);
    candle_core::safetensors::save(&t, &path).expect("save");
}

#[test]
fn truncated_adapter_names_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = good_run(dir.path());
    let path = run.join(ADAPTER_FILE);
    let bytes = std::fs::read(&path).expect("read");
    std::fs::write(&path, &bytes[..bytes.len() / 2]).expect("truncate");
    let err = load_run(&run);
    assert!(err.contains("adapter.safetensors"), "{err}");
}

#[test]
fn missing_run_json_names_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = good_run(dir.path());
    std::fs::remove_file(run.join(MANIFEST_FILE)).expect("rm");
    let err = load_run(&run);
    assert!(err.contains("run.json"), "{err}");
    let err = load_run(&dir.path().join("no-such-run"));
    assert!(err.contains("no-such-run"), "{err}");
}

#[test]
fn wrong_format_version_is_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = good_run(dir.path());
    edit_manifest(&run, |v| v["format_version"] = 99.into());
    let err = load_run(&run);
    assert!(
        err.contains("run.json") && err.contains("format_version 99"),
        "{err}"
    );
}

#[test]
fn nan_in_adapter_names_the_tensor() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = good_run(dir.path());
    let key = ahp_spec::run::gate_key(2);
    edit_adapter(&run, |t| {
        let g = &t[&key];
        let nan = (g.ones_like().expect("ones") * f64::NAN).expect("nan");
        t.insert(key.clone(), nan);
    });
    let err = load_run(&run);
    assert!(
        err.contains(&key) && err.contains("adapter.safetensors"),
        "{err}"
    );
}

#[test]
fn wrong_shape_tensor_names_the_tensor() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = good_run(dir.path());
    let key = ahp_spec::run::adapter_key(0, ahp_spec::run::Projection::V, "lora_b");
    edit_adapter(&run, |t| {
        let z = Tensor::zeros(
            (4, 3, 2),
            candle_core::DType::F32,
            &candle_core::Device::Cpu,
        )
        .expect("zeros");
        t.insert(key.clone(), z);
    });
    let err = load_run(&run);
    assert!(err.contains(&key) && err.contains("shape"), "{err}");
}

#[test]
fn base_sha256_mismatch_is_an_error_unless_skipped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = good_run(dir.path());
    edit_manifest(&run, |v| {
        v["base"]["weights"][0]["sha256"] = "00".repeat(32).into();
    });
    let err = load_run(&run);
    assert!(
        err.contains("sha256") && err.contains("model.safetensors"),
        "{err}"
    );
    Prepared::load(&Source::Run {
        run_dir: run,
        base: None,
        verify_base_sha256: false,
    })
    .expect("skipped check");
}

#[test]
fn missing_base_is_an_error_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = good_run(dir.path());
    edit_manifest(&run, |v| {
        v["base"]["dir"] = "/nonexistent/clip".into();
        v["base"]["location"] = "/nonexistent/clip".into();
    });
    let err = load_run(&run);
    assert!(err.contains("/nonexistent/clip"), "{err}");
}

fn cli(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ahp-export"))
        .args(args)
        .output()
        .expect("run ahp-export")
}

#[test]
fn cli_failure_leaves_no_model_behind() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = good_run(dir.path());
    let key = ahp_spec::run::gate_key(0);
    edit_adapter(&run, |t| {
        let g = &t[&key];
        t.insert(
            key.clone(),
            (g.ones_like().expect("ones") * f64::INFINITY).expect("inf"),
        );
    });
    let out_dir = dir.path().join("out");
    std::fs::create_dir(&out_dir).expect("mkdir");
    let model = out_dir.join("model.onnx");
    let out = cli(&[
        "--run",
        run.to_str().expect("utf-8"),
        model.to_str().expect("utf-8"),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(stderr.contains(&key), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(
        std::fs::read_dir(&out_dir).expect("ls").count(),
        0,
        "nothing may be left in the output directory"
    );

    // Bad arguments: no source, unknown opset.
    let out = cli(&[model.to_str().expect("utf-8")]);
    assert!(!out.status.success());
    let out = cli(&[
        "--run",
        run.to_str().expect("utf-8"),
        "--opset",
        "9",
        model.to_str().expect("utf-8"),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("opset 9"));
    assert!(!model.exists());
}

#[test]
fn cli_exports_zero_shot_and_run_with_triton_repo() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clip = common::model_dir(MODELS[1]);
    let model = dir.path().join("zs.onnx");
    let out = cli(&[
        "--clip",
        clip.to_str().expect("utf-8"),
        "--classes",
        "dog,cat,car",
        "--template",
        "a sketch of a {}.",
        "--template",
        "a drawing of the {}",
        model.to_str().expect("utf-8"),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("max |onnx - candle|"), "{stdout}");
    assert!(stdout.contains("wrote"), "{stdout}");
    assert!(model.is_file());
    let m = ahp_export::onnx::read_model(&model).expect("read");
    assert_eq!(
        ahp_export::onnx::metadata_value(&m, ahp_spec::onnx_names::meta::TEMPLATE),
        Some("a sketch of a {}.\na drawing of the {}"),
        "a prompt ensemble's templates, one per line"
    );
    let bad = cli(&[
        "--clip",
        clip.to_str().expect("utf-8"),
        "--classes",
        "dog,cat",
        "--template",
        "no placeholder",
        dir.path().join("bad.onnx").to_str().expect("utf-8"),
    ]);
    assert!(!bad.status.success());
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        stderr.contains("`no placeholder`") && !stderr.contains("panicked"),
        "{stderr}"
    );

    let run = good_run(dir.path());
    let model = dir.path().join("purified.onnx");
    let repo = dir.path().join("triton");
    let out = cli(&[
        "--run",
        run.to_str().expect("utf-8"),
        "--prune-heads",
        "0.5",
        "--triton",
        repo.to_str().expect("utf-8"),
        model.to_str().expect("utf-8"),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("FLOPs per image"), "{stdout}");
    assert!(repo.join("purified/1/model.onnx").is_file());
    let cfg = std::fs::read_to_string(repo.join("purified/config.pbtxt")).expect("config");
    assert!(cfg.contains("name: \"purified\""), "{cfg}");
    assert!(cfg.contains("dims: [ 6 ]"), "{cfg}");
    assert!(
        cfg.contains("kind: KIND_CPU"),
        "the default loads on a CPU Triton: {cfg}"
    );
    let labels = std::fs::read_to_string(repo.join("purified/labels.txt")).expect("labels");
    assert_eq!(labels.lines().count(), 6, "{labels}");
    let card = std::fs::read_to_string(repo.join("purified/MODEL_CARD.md")).expect("card");
    for needle in [
        "method: `ahp`",
        "sha256",
        "max |onnx - candle|",
        "pixel_values",
        "pruned: ",
    ] {
        assert!(card.contains(needle), "{needle:?} not in:\n{card}");
    }

    let gpu_repo = dir.path().join("triton-gpu");
    let out = cli(&[
        "--run",
        run.to_str().expect("utf-8"),
        "--triton",
        gpu_repo.to_str().expect("utf-8"),
        "--triton-kind",
        "gpu",
        "--triton-trt",
        "--triton-fp16",
        "--triton-name",
        "clip_trt",
        dir.path().join("gpu.onnx").to_str().expect("utf-8"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cfg = std::fs::read_to_string(gpu_repo.join("clip_trt/config.pbtxt")).expect("config");
    assert!(
        cfg.contains("kind: KIND_GPU") && cfg.contains("value: \"FP16\""),
        "{cfg}"
    );
}

#[test]
fn triton_accelerators_that_do_not_fit_the_kind_are_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clip = common::model_dir(MODELS[1]);
    let model = dir.path().join("m.onnx");
    let repo = dir.path().join("repo");
    let out = cli(&[
        "--clip",
        clip.to_str().expect("utf-8"),
        "--classes",
        "dog,cat",
        "--triton",
        repo.to_str().expect("utf-8"),
        "--triton-trt",
        model.to_str().expect("utf-8"),
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--triton-kind gpu"), "{stderr}");
    assert!(!model.exists() && !repo.exists());
}

#[test]
fn failed_triton_write_leaves_no_model_behind() {
    let dir = tempfile::tempdir().expect("tempdir");
    let prepared = Prepared::load(&Source::ZeroShot {
        clip: common::model_dir(MODELS[0]).to_str().expect("utf-8").into(),
        labels: common::labels(),
        templates: vec![ahp_model::DEFAULT_TEMPLATE.into()],
    })
    .expect("zero-shot");
    let not_a_dir = dir.path().join("repo-is-a-file");
    std::fs::write(&not_a_dir, b"x").expect("write");
    let model = dir.path().join("model.onnx");
    let options = ahp_export::ExportOptions {
        triton: Some(TritonOptions::new(&not_a_dir, "clip")),
        ..ahp_export::ExportOptions::default()
    };
    let err = ahp_export::export(&prepared, &model, &options).expect_err("triton into a file");
    assert!(err.to_string().contains("repo-is-a-file"), "{err}");
    assert!(!model.exists());
    let options = ahp_export::ExportOptions {
        triton: Some(TritonOptions::new(&dir.path().join("repo"), "../escape")),
        ..ahp_export::ExportOptions::default()
    };
    let err = ahp_export::export(&prepared, &model, &options).expect_err("bad name");
    assert!(err.to_string().contains("../escape"), "{err}");
    assert_eq!(std::fs::read_dir(dir.path()).expect("ls").count(), 1);

    let out = cli(&[
        "--clip",
        common::model_dir(MODELS[0]).to_str().expect("utf-8"),
        "--classes",
        "a,b",
        dir.path()
            .join("missing/model.onnx")
            .to_str()
            .expect("utf-8"),
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("output directory does not exist"),
        "{stderr}"
    );
}
