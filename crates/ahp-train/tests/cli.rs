//! `ahp-train` as a process: bit-exact resume after `kill -9`, and clear errors.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use candle_core::Device;

fn base_args(data: &Path, out: &Path) -> Vec<String> {
    [
        "--clip",
        &common::fixture_clip(),
        "--data",
        &data.display().to_string(),
        "--target-domain",
        "sketch",
        "--out",
        &out.display().to_string(),
        "--steps",
        "120",
        "--batch-size",
        "24",
        "--eval-every",
        "10",
        "--lr",
        "1e-2",
        "--gate-lr",
        "5e-2",
        "--threads",
        "2",
        "--quiet",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn ahp_train() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ahp-train"))
}

fn adapter(dir: &Path) -> HashMap<String, candle_core::Tensor> {
    candle_core::safetensors::load(dir.join("adapter.safetensors"), &Device::Cpu).expect("adapter")
}

fn evaluations(dir: &Path) -> usize {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

#[test]
fn resume_after_kill_equals_uninterrupted_run() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = common::synth_data(tmp.path());

    let full = tmp.path().join("full");
    let out = ahp_train()
        .args(base_args(&data, &full))
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let cut = tmp.path().join("cut");
    let mut child = ahp_train()
        .args(base_args(&data, &cut))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let start = Instant::now();
    while evaluations(&cut) < 2 {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no checkpoint written"
        );
        assert!(
            child.try_wait().expect("wait").is_none(),
            "finished before it could be killed"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().expect("kill -9"); // SIGKILL on Unix
    let status = child.wait().expect("wait");
    assert!(!status.success(), "the run must have been killed mid-way");
    let done_before = evaluations(&cut);
    assert!(
        done_before < 12,
        "killed too late ({done_before} of 12 evaluations)"
    );

    let mut args = base_args(&data, &cut);
    args.push("--resume".into());
    let out = ahp_train().args(&args).output().expect("resume");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("resuming"));
    assert_eq!(evaluations(&cut), 12);

    let (a, b) = (adapter(&full), adapter(&cut));
    assert_eq!(a.len(), b.len());
    for (name, ta) in &a {
        let d = (ta - &b[name])
            .expect("sub")
            .abs()
            .expect("abs")
            .flatten_all()
            .expect("flat")
            .max(0)
            .expect("max")
            .to_scalar::<f32>()
            .expect("scalar");
        assert!(d <= 1e-6, "{name}: resumed run differs by {d}");
    }
    let ra: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(full.join("run.json")).expect("run.json"))
            .expect("json");
    let rb: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(cut.join("run.json")).expect("run.json"))
            .expect("json");
    assert_eq!(ra["best_step"], rb["best_step"]);
}

#[test]
fn bad_invocations_are_clear_errors() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = common::synth_data(tmp.path());
    let run = |args: Vec<String>| {
        let out = ahp_train().args(args).output().expect("run");
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!stderr.contains("panicked"), "{stderr}");
        stderr
    };
    let mut args = base_args(&data, &tmp.path().join("r1"));
    let i = args.iter().position(|a| a == "sketch").expect("target");
    args[i] = "clipart".into();
    let err = run(args);
    assert!(err.contains("clipart") && err.contains("sketch"), "{err}");

    let args = base_args(&tmp.path().join("nope"), &tmp.path().join("r2"));
    let err = run(args);
    assert!(err.contains("nope"), "{err}");

    let mut args = base_args(&data, &tmp.path().join("r3"));
    let i = args.iter().position(|a| a == "--batch-size").expect("bs");
    args[i + 1] = "2".into();
    let err = run(args);
    assert!(err.contains("--batch-size"), "{err}");

    // An existing run is never overwritten without --resume.
    let existing = tmp.path().join("r4");
    std::fs::create_dir_all(&existing).expect("mkdir");
    std::fs::write(existing.join("run.json"), "{}").expect("write");
    let err = run(base_args(&data, &existing));
    assert!(err.contains("--resume"), "{err}");
    assert_eq!(
        std::fs::read_to_string(existing.join("run.json")).expect("read"),
        "{}"
    );
}
