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

/// Runs ahp-predict, killing it after `limit` (a hang fails the test instead of blocking it).
fn predict_within(args: &[&str], limit: std::time::Duration) -> Output {
    let child = Command::new(env!("CARGO_BIN_EXE_ahp-predict"))
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run ahp-predict");
    let id = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(out) => out.expect("wait"),
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &id.to_string()]).status();
            panic!("ahp-predict {args:?} hung for more than {limit:?}");
        }
    }
}

#[cfg(unix)]
#[test]
fn hostile_directory_entries_are_per_image_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("inputs");
    std::fs::create_dir_all(root.join("sub")).expect("mkdir");
    std::fs::copy(fixture("images/rgb_square.png"), root.join("good.png")).expect("copy");
    // D13: symlink loops (once exponential); D12: a FIFO named like an image (once a hang).
    std::os::unix::fs::symlink(".", root.join("loop")).expect("symlink");
    std::os::unix::fs::symlink("..", root.join("sub/up")).expect("symlink");
    let fifo = root.join("pipe.png");
    let made = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(made.success());
    // D1: a 1 x 10,000,000 PNG (an aspect-ratio bomb).
    std::fs::write(root.join("aspect.png"), declared_png(1, 10_000_000)).expect("write");

    let model = model_a();
    let limit = std::time::Duration::from_secs(60);
    let out = predict_within(
        &[model.to_str().unwrap(), root.to_str().unwrap(), "--json"],
        limit,
    );
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(
        out.status.code(),
        Some(1),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    let entry = |name: &str| -> Vec<&serde_json::Value> {
        lines
            .iter()
            .filter(|l| l["path"].as_str().is_some_and(|p| p.ends_with(name)))
            .collect()
    };
    assert_eq!(
        entry("good.png").len(),
        1,
        "visited once despite the loops: {stdout}"
    );
    assert!(entry("good.png")[0]["top"].is_array(), "{stdout}");
    let pipe = entry("pipe.png");
    assert!(
        pipe.len() == 1
            && pipe[0]["error"]
                .as_str()
                .unwrap_or("")
                .contains("not a regular file"),
        "{stdout}"
    );
    let aspect = entry("aspect.png");
    assert!(
        aspect.len() == 1
            && aspect[0]["error"]
                .as_str()
                .unwrap_or("")
                .contains("aspect ratio"),
        "{stdout}"
    );

    // D12: a FIFO given as the model or as an explicit image is refused, not waited on.
    let out = predict_within(
        &[
            fifo.to_str().unwrap(),
            root.join("good.png").to_str().unwrap(),
        ],
        limit,
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("not a regular file (a FIFO)"),
        "{}",
        text(&out.stderr)
    );
    let out = predict_within(
        &[model.to_str().unwrap(), fifo.to_str().unwrap(), "/dev/zero"],
        limit,
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("character device"),
        "{}",
        text(&out.stderr)
    );
}
