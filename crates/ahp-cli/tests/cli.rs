//! `ahp classify` end to end on the committed fixtures: predictions agree with transformers'
//! `logits_per_image`; bad files are reported and counted, the rest still classified.

use std::path::{Path, PathBuf};
use std::process::Command;

use candle_core::{Device, D};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn ahp(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ahp"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("run ahp")
}

const LABELS: [&str; 6] = ["dog", "cat", "car", "tree", "house", "star"];

#[test]
fn classify_json_matches_transformers_probabilities() {
    let model = "tests/fixtures/models/clip-tiny-a";
    let images = [
        "gray.png",
        "la.png",
        "palette.png",
        "rgb_square.png",
        "rgba.png",
        "tall_small.png",
    ];
    let paths: Vec<String> = images
        .iter()
        .map(|i| format!("tests/fixtures/images/{i}"))
        .collect();
    let mut args = vec![
        "classify",
        "--clip",
        model,
        "--classes",
        "dog,cat,car,tree,house,star",
        "--top-k",
        "6",
        "--json",
    ];
    args.extend(paths.iter().map(String::as_str));
    let out = ahp(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reference = candle_core::safetensors::load(
        root().join(model).join("reference.safetensors"),
        &Device::Cpu,
    )
    .expect("reference");
    let probs = candle_nn::ops::softmax(
        &reference["logits_per_image"]
            .narrow(1, 0, LABELS.len())
            .expect("narrow"),
        D::Minus1,
    )
    .expect("softmax")
    .to_vec2::<f32>()
    .expect("vec2");
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .expect("utf-8")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(lines.len(), images.len());
    // The reference images are in sorted order: gray, la, palette, rgb_square, rgba, tall_small, wide.
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line["path"], paths[i]);
        for entry in line["top"].as_array().expect("top") {
            let label = entry["label"].as_str().expect("label");
            let p = entry["prob"].as_f64().expect("prob") as f32;
            let c = LABELS
                .iter()
                .position(|l| *l == label)
                .expect("known label");
            assert!(
                (p - probs[i][c]).abs() < 1e-4,
                "{}: {label} {p} vs transformers {}",
                paths[i],
                probs[i][c]
            );
        }
    }
}

#[test]
fn bad_files_are_reported_counted_and_fail_the_run() {
    let out = ahp(&[
        "classify",
        "--clip",
        "tests/fixtures/models/clip-tiny-b",
        "--classes",
        "dog,cat",
        "tests/fixtures/bad",
        "tests/fixtures/images/gray.png",
    ]);
    assert!(!out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stdout.contains("tests/fixtures/images/gray.png"),
        "{stdout}"
    );
    assert!(stdout.contains("1 images classified, 3 failed"), "{stdout}");
    for bad in ["empty.png", "truncated.png", "not_an_image.png"] {
        assert!(stderr.contains(bad), "{stderr}");
    }
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn missing_checkpoint_is_a_clear_error() {
    let out = ahp(&[
        "classify",
        "--clip",
        "no/such-model",
        "--classes",
        "a,b",
        "tests/fixtures/images",
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no/such-model") && stderr.contains("never downloads"),
        "{stderr}"
    );
    let out = ahp(&[
        "classify",
        "--clip",
        "tests/fixtures/models/clip-tiny-a",
        "--classes",
        "a",
        "--template",
        "no placeholder",
        "tests/fixtures/images",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("placeholder"));
}
