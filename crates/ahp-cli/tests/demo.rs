//! `ahp demo` end to end on the embedded model, shortened (few images, few steps): every stage
//! runs (data, zero-shot + training report, export validated with tract, ONNX Runtime on the
//! target domain) and leaves its artifacts. Needs ONNX Runtime (ORT_DYLIB_PATH or
//! `scripts/fetch-onnxruntime.sh`'s default directory), as the test command provides.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn demo_runs_every_stage_and_leaves_its_artifacts() {
    let out = tempfile::tempdir().expect("tempdir");
    let run = Command::new(env!("CARGO_BIN_EXE_ahp"))
        .args([
            "demo",
            "--data",
            "synthetic",
            "--quiet",
            "--per-class",
            "5",
            "--steps",
            "6",
            "--out",
        ])
        .arg(out.path())
        .current_dir(root())
        .output()
        .expect("run ahp demo");
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "ahp demo failed:\n{stdout}\n{stderr}");
    for needle in [
        "== 1/4 synthetic data",
        "| painting | target |",
        "max |onnx (tract) - candle adapted|",
        "gates (H * softmax per block",
        "with ONNX Runtime (CPU)",
        "unseen domain `painting`: zero-shot",
    ] {
        assert!(stdout.contains(needle), "{needle:?} not in:\n{stdout}");
    }
    for file in [
        "run/adapter.safetensors",
        "run/run.json",
        "run/report.md",
        "model.onnx",
        "data/painting",
        "demo.png",
    ] {
        assert!(out.path().join(file).exists(), "{file} missing");
    }
}

#[test]
fn demo_with_a_checkpoint_that_does_not_know_the_classes_is_an_error() {
    let out = tempfile::tempdir().expect("tempdir");
    let run = Command::new(env!("CARGO_BIN_EXE_ahp"))
        .args([
            "demo",
            "--data",
            "synthetic",
            "--clip",
            "tests/fixtures/models/clip-tiny-a",
            "--out",
        ])
        .arg(out.path())
        .current_dir(root())
        .output()
        .expect("run ahp demo");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success());
    assert!(
        stderr.contains("tokenizer.json") && stderr.contains("synthetic classes"),
        "{stderr}"
    );
}

/// The default demo, on the emoji artwork: here from the committed three-class sample of the
/// npm packages (offline), with the embedded emoji CLIP.
#[test]
fn the_emoji_demo_runs_offline_on_the_sample_and_draws_its_picture() {
    let out = tempfile::tempdir().expect("tempdir");
    let sample = root().join("crates/ahp-data/tests/fixtures/emoji");
    let run = Command::new(env!("CARGO_BIN_EXE_ahp"))
        .args([
            "demo",
            "--quiet",
            "--steps",
            "4",
            "--select",
            "last",
            "--emoji-classes",
            "dog,pizza,rocket",
        ])
        .arg("--unpacked")
        .arg(&sample)
        .arg("--out")
        .arg(out.path())
        .env("AHP_NPM", "/nonexistent/npm")
        .current_dir(root())
        .output()
        .expect("run ahp demo");
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "ahp demo failed:\n{stdout}\n{stderr}");
    for needle in [
        "== 1/4 emoji artwork by five designers",
        "| openmoji | target |",
        "sources emojione, emojione-monotone, openmoji-black, streamline-emojis",
        "with ONNX Runtime (CPU)",
        "unseen domain `openmoji`: zero-shot",
        "demo.png",
    ] {
        assert!(stdout.contains(needle), "{needle:?} not in:\n{stdout}");
    }
    let picture = image::open(out.path().join("demo.png")).expect("demo.png");
    assert_eq!((picture.width(), picture.height()), (1000, 560));
    let run_json = std::fs::read_to_string(out.path().join("run/run.json")).expect("run.json");
    assert!(
        run_json.contains("an emoji of a {}."),
        "the emoji prompt is pinned"
    );
}

#[test]
fn an_emoji_target_that_is_not_a_benchmark_designer_is_an_error() {
    let out = tempfile::tempdir().expect("tempdir");
    let run = Command::new(env!("CARGO_BIN_EXE_ahp"))
        .args(["demo", "--target-domain", "twemoji", "--out"])
        .arg(out.path())
        .current_dir(root())
        .output()
        .expect("run ahp demo");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success());
    assert!(
        stderr.contains("twemoji") && stderr.contains("not a benchmark designer"),
        "{stderr}"
    );
}
