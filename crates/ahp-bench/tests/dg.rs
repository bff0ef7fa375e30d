//! `ahp-bench dg` end to end on a tiny fixture CLIP with a tiny grid: the results, the
//! markdown report and the three charts are written, the head-dropping curve starts at the
//! zero-shot accuracy of the same target (two independent code paths), and a rerun reuses the
//! finished runs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn bench(out: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ahp-bench"))
        .args([
            "dg",
            "--clip",
            "tests/fixtures/models/clip-tiny-a",
            "--classes",
            "3",
            "--per-class",
            "4",
            "--steps",
            "3",
            "--batch-size",
            "6",
            "--seeds",
            "2",
            "--jobs",
            "2",
            "--random-orders",
            "2",
            "--drop-step",
            "2",
            "--out",
        ])
        .arg(out)
        .args(extra)
        .current_dir(root())
        .output()
        .expect("run ahp-bench")
}

#[test]
fn dg_writes_the_table_charts_and_analyses_and_reuses_runs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("dg");
    let args = ["--targets", "sketch", "--methods", "zero-shot,ahp"];
    let run = bench(&out, &args);
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        run.status.success(),
        "ahp-bench failed:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("3 runs (1 targets x 2 methods, 2 seeds"),
        "{stdout}"
    );

    let md = std::fs::read_to_string(out.join("dg.md")).expect("dg.md");
    assert!(md.contains("| method | sketch | avg |"), "{md}");
    assert!(md.contains("| zero-shot |"), "{md}");
    assert!(md.contains("| ahp |") && md.contains(" ± "), "{md}");
    assert!(md.contains("learned gates, lowest first"), "{md}");

    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).expect("json"))
            .expect("valid json");
    let runs = results["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 3);
    let zero_shot = runs
        .iter()
        .find(|r| r["method"] == "zero-shot")
        .expect("zero-shot run")["target_acc"]
        .as_f64()
        .expect("accuracy");
    let drop = &results["head_drop"][0];
    // The fixture has 3 blocks of 4 heads: 0, 2, ..., 12 heads removed.
    let dropped: Vec<u64> = drop["dropped"]
        .as_array()
        .expect("dropped")
        .iter()
        .map(|v| v.as_u64().expect("count"))
        .collect();
    assert_eq!(dropped, vec![0, 2, 4, 6, 8, 10, 12]);
    let gate_curve = drop["gate_order"].as_array().expect("curve");
    assert_eq!(gate_curve.len(), dropped.len());
    // Nothing removed = the base CLIP: the same accuracy as the zero-shot run, measured by
    // ahp-train's evaluation on the same images.
    let start = gate_curve[0].as_f64().expect("accuracy");
    assert!(
        (start - zero_shot).abs() < 1e-9,
        "head-drop start {start} vs zero-shot {zero_shot}"
    );
    assert_eq!(drop["random_orders"].as_array().expect("random").len(), 2);
    let gates = drop["gates"].as_array().expect("gates");
    assert_eq!(gates.len(), 3);
    for block in gates {
        let g: Vec<f64> = block
            .as_array()
            .expect("block")
            .iter()
            .map(|v| v.as_f64().expect("gate"))
            .collect();
        // H * softmax: the gates of a block sum to H.
        assert!((g.iter().sum::<f64>() - 4.0).abs() < 1e-4, "{g:?}");
    }

    for (png, min_w) in [("dg.png", 720), ("head_drop.png", 500), ("gates.png", 400)] {
        let img = image::open(out.join(png)).unwrap_or_else(|e| panic!("{png}: {e}"));
        assert!(
            img.width() >= min_w,
            "{png} is {}x{}",
            img.width(),
            img.height()
        );
        let rgb = img.to_rgb8();
        let non_white = rgb.pixels().filter(|p| p.0 != [255, 255, 255]).count();
        assert!(non_white > 1000, "{png} is nearly blank");
    }

    // A second run with the same settings trains nothing.
    let again = bench(&out, &args);
    let stdout = String::from_utf8_lossy(&again.stdout);
    assert!(again.status.success(), "{stdout}");
    assert_eq!(stdout.matches("(cached)").count(), 3, "{stdout}");
}

#[test]
fn dg_rejects_an_unknown_target_domain() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = bench(&dir.path().join("dg"), &["--targets", "clipart"]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success());
    assert!(
        stderr.contains("`clipart` is not a domain") && stderr.contains("photo"),
        "{stderr}"
    );
}

#[test]
fn dg_rejects_an_unknown_method() {
    let run = Command::new(env!("CARGO_BIN_EXE_ahp-bench"))
        .args(["dg", "--methods", "zero-shot,fancy"])
        .output()
        .expect("run ahp-bench");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success());
    assert!(stderr.contains("unknown method `fancy`"), "{stderr}");
}
