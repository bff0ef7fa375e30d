//! `ahp-predict` on the committed images and bad files.

#![cfg(feature = "predict")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::{Command, Output};

use common::*;

fn predict(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ahp-predict"))
        .args(args)
        .output()
        .expect("run ahp-predict")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn table_lists_every_image() {
    let model = model_a();
    let dir = fixture("images");
    let out = predict(&[
        model.to_str().unwrap(),
        dir.to_str().unwrap(),
        "--top-k",
        "3",
    ]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    let mut lines = stdout.lines();
    let header = lines.next().expect("header");
    assert!(
        header.contains("IMAGE") && header.contains("LABEL") && header.contains("PROB"),
        "{header}"
    );
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 7 * 3, "{stdout}");
    for path in images() {
        let name = path.file_name().unwrap().to_str().unwrap();
        assert!(stdout.contains(name), "{name} missing:\n{stdout}");
    }
    for row in &rows {
        assert!(CLASSES.iter().any(|c| row.contains(c)), "{row}");
    }
    assert!(stderr.contains("CPU execution provider"), "{stderr}");
    assert!(
        stderr.contains("7 image(s) classified, 0 failed"),
        "{stderr}"
    );
    assert!(stderr.contains("images/s"), "{stderr}");
}

#[test]
fn json_lines_match_the_library() {
    let model = model_a();
    let files: Vec<String> = images()
        .iter()
        .map(|p| p.to_str().unwrap().to_string())
        .collect();
    let mut args = vec![model.to_str().unwrap(), "--json", "--batch-size", "3"];
    args.extend(files.iter().map(String::as_str));
    let out = predict(&args);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let objects: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(objects.len(), 7);
    let c = classifier_a();
    for (obj, path) in objects.iter().zip(&files) {
        assert_eq!(obj["path"], path.as_str());
        assert!(obj["ms"].as_f64().expect("ms") >= 0.0);
        let top = obj["top"].as_array().expect("top");
        assert_eq!(top.len(), 5, "default top-k");
        let image = ahp_runtime::preprocess::load_image(path.as_ref()).expect("decode");
        let expected = c.classify(&image, 5).expect("classify");
        for (got, (label, prob)) in top.iter().zip(&expected) {
            assert_eq!(got["label"], label.as_str());
            let p = got["prob"].as_f64().expect("prob") as f32;
            assert!((p - prob).abs() < 1e-5, "{p} vs {prob}");
        }
    }
}

#[test]
fn bad_files_are_reported_counted_and_fail_the_run() {
    let model = model_a();
    let images_dir = fixture("images");
    let bad_dir = fixture("bad");
    let missing = fixture("images/does_not_exist.png");
    let out = predict(&[
        model.to_str().unwrap(),
        images_dir.to_str().unwrap(),
        bad_dir.to_str().unwrap(),
        missing.to_str().unwrap(),
        "--json",
    ]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "stderr:\n{stderr}");
    let objects: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(objects.len(), 11, "{stdout}");
    let errors: Vec<&serde_json::Value> = objects
        .iter()
        .filter(|o| o.get("error").is_some())
        .collect();
    assert_eq!(errors.len(), 4, "{stdout}");
    for name in [
        "empty.png",
        "truncated.png",
        "not_an_image.png",
        "does_not_exist.png",
    ] {
        assert!(stderr.contains(name), "{name} not reported:\n{stderr}");
    }
    assert!(
        stderr.contains("7 image(s) classified, 4 failed"),
        "{stderr}"
    );
}

#[test]
fn load_errors_exit_with_2() {
    let out = predict(&[
        "/nonexistent/model.onnx",
        fixture("images").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("/nonexistent/model.onnx"),
        "{}",
        text(&out.stderr)
    );

    let model = model_a();
    let image = images()[0].to_str().unwrap().to_string();
    // Non-strict: CUDA falls back to the CPU.
    let out = predict(&[model.to_str().unwrap(), &image, "--device", "cuda"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("CPU execution provider"));
    // Strict: an error naming CUDA.
    let out = predict(&[
        model.to_str().unwrap(),
        &image,
        "--device",
        "cuda",
        "--strict",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("CUDA"), "{}", text(&out.stderr));
}
