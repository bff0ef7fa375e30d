//! `ahp-bench dg` end to end on a tiny fixture CLIP with a tiny sweep: the three selections,
//! intervals, chosen hyper-parameters, the markdown report and the three charts are written, the
//! head-dropping curves start at the zero-shot accuracy of the same target (two independent code
//! paths), and a rerun reuses the finished runs.

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
            "--data",
            "synthetic",
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
            "--holdout-fraction",
            "0.5",
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
    let args = [
        "--targets",
        "sketch",
        "--methods",
        "zero-shot,ha-lora,ahp",
        "--sweep",
        "--sweep-lr",
        "1e-2,3e-2",
        "--sweep-mmd",
        "1",
        "--bootstrap",
        "200",
    ];
    let run = bench(&out, &args);
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        run.status.success(),
        "ahp-bench failed:\n{stdout}\n{stderr}"
    );
    // zero-shot once, HA-LoRA and AHP over two learning rates each, one sweep seed.
    assert!(
        stdout.contains("sweep: 5 runs (1 targets x 3 methods, grid per method zero-shot 1, ha-lora 2, ahp 2, 1 seed(s) each)"),
        "{stdout}"
    );
    assert!(stdout.contains("reported runs: 5"), "{stdout}");

    let md = std::fs::read_to_string(out.join("dg.md")).expect("dg.md");
    for needle in [
        "| method | sketch | avg |",
        "| zero-shot |",
        "## Last step",
        "## Oracle (upper bound only)",
        "confidence intervals (CI)",
        "| ahp − zero-shot |",
        "| ahp − ha-lora |",
        "## Chosen hyper-parameters",
        "| ahp | sketch | lr ",
        "random drop",
        "drop by cross-validation",
        "adapt & drop",
    ] {
        assert!(md.contains(needle), "`{needle}` missing in:\n{md}");
    }
    assert!(md.contains("| ahp |") && md.contains(" ± "), "{md}");

    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).expect("json"))
            .expect("valid json");
    let runs = results["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 5);
    assert_eq!(results["sweep_runs"].as_array().expect("sweep").len(), 5);
    let acc = |r: &serde_json::Value, sel: &str| r[sel]["target_acc"].as_f64().expect("acc");
    for r in runs {
        let step = r["source_val"]["step"].as_u64().expect("step");
        if r["method"] == "zero-shot" {
            assert_eq!(step, 0);
        } else {
            assert!(step > 0, "a trained run kept step 0: {r}");
            assert_eq!(r["last"]["step"], 3);
        }
        // The oracle is an upper bound of the other two selections.
        assert!(acc(r, "oracle") >= acc(r, "source_val") && acc(r, "oracle") >= acc(r, "last"));
        let code = r["target_outcomes"].as_str().expect("outcomes");
        let right = code.chars().filter(|c| *c == '1').count() as f64;
        assert!(
            (right / code.len() as f64 - acc(r, "source_val")).abs() < 1e-9,
            "{r}"
        );
    }
    let zero_shot = acc(
        runs.iter()
            .find(|r| r["method"] == "zero-shot")
            .expect("zero-shot run"),
        "source_val",
    );
    let drop = &results["head_drop"][0];
    // The fixture has 3 blocks of 4 heads: 0, 2, ..., 12 heads removed.
    let dropped: Vec<u64> = drop["dropped"]
        .as_array()
        .expect("dropped")
        .iter()
        .map(|v| v.as_u64().expect("count"))
        .collect();
    assert_eq!(dropped, vec![0, 2, 4, 6, 8, 10, 12]);
    // Nothing removed = the base CLIP: the same accuracy as the zero-shot run, measured by
    // ahp-train's evaluation on the same images, for every strategy.
    for curve in ["adapt_and_drop", "cross_validation"] {
        let c = drop[curve].as_array().expect("curve");
        assert_eq!(c.len(), dropped.len(), "{curve}");
        let start = c[0].as_f64().expect("accuracy");
        assert!(
            (start - zero_shot).abs() < 1e-9,
            "{curve} start {start} vs zero-shot {zero_shot}"
        );
    }
    assert_eq!(
        drop["cross_validation_order"]
            .as_array()
            .expect("order")
            .len(),
        12
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
    let intervals = results["intervals"].as_array().expect("intervals");
    assert_eq!(intervals.len(), 2);
    for i in intervals {
        let (lo, hi) = (
            i["avg"]["lo"].as_f64().expect("lo"),
            i["avg"]["hi"].as_f64().expect("hi"),
        );
        let e = i["avg"]["estimate"].as_f64().expect("estimate");
        assert!(lo <= e + 1e-9 && e <= hi + 1e-9, "{i}");
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
    assert_eq!(stdout.matches("(cached)").count(), 10, "{stdout}");
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
    // clap names the value and lists the methods (`Method` is a clap `ValueEnum`).
    assert!(
        stderr.contains("invalid value 'fancy' for '--methods")
            && stderr.contains("possible values: ahp, ha-lora, lora, dig, zero-shot"),
        "{stderr}"
    );
}

/// The default data is the emoji benchmark (here built offline from the committed three-class
/// sample of the npm packages), with the emoji prompt pinned.
#[test]
fn dg_defaults_to_the_emoji_benchmark() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("dg");
    let run = Command::new(env!("CARGO_BIN_EXE_ahp-bench"))
        .args([
            "dg",
            "--clip",
            "tests/fixtures/models/clip-tiny-a",
            "--emoji-classes",
            "dog,pizza,rocket",
            "--targets",
            "openmoji",
            "--methods",
            "zero-shot,ahp",
            "--steps",
            "3",
            "--batch-size",
            "6",
            "--seeds",
            "1",
            "--random-orders",
            "1",
            "--drop-step",
            "4",
            "--bootstrap",
            "50",
            "--holdout-fraction",
            "0.5",
            "--min-holdout",
            "1",
            "--unpacked",
        ])
        .arg(root().join("crates/ahp-data/tests/fixtures/emoji"))
        .arg("--out")
        .arg(&out)
        .env("AHP_NPM", "/nonexistent/npm")
        .current_dir(root())
        .output()
        .expect("run ahp-bench");
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        run.status.success(),
        "ahp-bench failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("emoji data:"), "{stdout}");
    for designer in [
        "emojione",
        "emojione-monotone",
        "openmoji",
        "openmoji-black",
        "streamline-emojis",
    ] {
        assert!(
            out.join("data").join(designer).join("dog").is_dir(),
            "{designer}"
        );
    }
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).expect("json"))
            .expect("results.json parses");
    assert_eq!(
        results["templates"],
        serde_json::json!(["an emoji of a {}."])
    );
    assert!(stdout.contains("| method | openmoji | avg |"), "{stdout}");
}

#[test]
fn dg_on_a_dataset_directory_needs_a_clip_and_emoji_flags_need_emoji() {
    let run = Command::new(env!("CARGO_BIN_EXE_ahp-bench"))
        .args(["dg", "--data", "./some/pacs"])
        .output()
        .expect("run ahp-bench");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success());
    assert!(
        stderr.contains("--data ./some/pacs: give --clip too"),
        "{stderr}"
    );
    let run = Command::new(env!("CARGO_BIN_EXE_ahp-bench"))
        .args(["dg", "--data", "synthetic", "--unpacked", "x"])
        .output()
        .expect("run ahp-bench");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success());
    assert!(
        stderr.contains("--unpacked: only with --data emoji"),
        "{stderr}"
    );
    for (args, message) in [
        (
            &["--data", "synthetic", "--emoji-classes", "dog"][..],
            "--emoji-classes: only with --data emoji",
        ),
        (
            &["--classes", "3"][..],
            "--classes: only with --data synthetic",
        ),
    ] {
        let run = Command::new(env!("CARGO_BIN_EXE_ahp-bench"))
            .arg("dg")
            .args(args)
            .output()
            .expect("run ahp-bench");
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(!run.status.success(), "{args:?}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
}
