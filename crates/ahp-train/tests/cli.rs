//! `ahp-train` as a process: bit-exact resume after `kill -9`, and clear errors.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use candle_core::Device;

/// The fixture run's common arguments, then `extra`.
fn args_with(data: &Path, out: &Path, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "--clip",
        &common::fixture_clip(),
        "--data",
        &data.display().to_string(),
        "--target-domain",
        "sketch",
        "--out",
        &out.display().to_string(),
        "--threads",
        "2",
        "--quiet",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

fn base_args(data: &Path, out: &Path) -> Vec<String> {
    args_with(
        data,
        out,
        &[
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
        ],
    )
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

fn fidelity_args(data: &Path, out: &Path, extra: &[&str]) -> Vec<String> {
    let mut args = args_with(data, out, &["--batch-size", "12"]);
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

fn run_ok(args: Vec<String>) -> String {
    let out = ahp_train().args(args).output().expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The MMD term never reaches LoRA, also not through gradient clipping: LoRA and gates are two
/// optimizer groups, each clipped by its own norm. One step with a tiny LoRA clip: MMD weight 0
/// vs 50 leaves every LoRA tensor bit-identical after the AdamW update and moves the gates.
#[test]
fn mmd_weight_changes_gates_but_not_one_lora_bit() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = common::synth_data(tmp.path());
    let one_step = |mmd: &str| {
        let out = tmp.path().join(format!("mmd{mmd}"));
        run_ok(fidelity_args(
            &data,
            &out,
            &[
                "--method",
                "ahp",
                "--steps",
                "1",
                "--warmup-steps",
                "0",
                "--grad-clip",
                "1e-4",
                "--eval-every",
                "1",
                "--mmd-weight",
                mmd,
            ],
        ));
        let manifest: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("run.json")).expect("run.json"))
                .expect("json");
        assert_eq!(
            manifest["best_step"], 1,
            "the update must be kept, not step 0"
        );
        adapter(&out)
    };
    let (without, with) = (one_step("0"), one_step("50"));
    let mut lora = 0;
    let mut gates_moved = 0f32;
    for (name, a) in &without {
        let b = &with[name];
        let same = a
            .flatten_all()
            .expect("flat")
            .to_vec1::<f32>()
            .expect("vec")
            == b.flatten_all()
                .expect("flat")
                .to_vec1::<f32>()
                .expect("vec");
        if name.contains("lora_") {
            lora += 1;
            assert!(same, "{name}: the MMD weight changed a LoRA tensor");
            if name.ends_with("lora_b") {
                assert!(
                    common::max_abs(a) > 0.0,
                    "{name} is still zero after one update"
                );
            }
        } else if name.ends_with("gate_logits") {
            gates_moved = gates_moved.max(common::max_abs(&(a - b).expect("sub")));
        }
    }
    assert!(lora >= 12, "only {lora} LoRA tensors compared");
    assert!(gates_moved > 0.0, "the MMD weight did not change the gates");
}

/// A trained method never keeps its untrained state: 30 steps end with nonzero `lora_b`, a
/// kept step > 0, and the selection named in `run.json` and the report.
#[test]
fn a_short_run_keeps_a_trained_checkpoint() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = common::synth_data(tmp.path());
    let out = tmp.path().join("run");
    let stdout = run_ok(fidelity_args(
        &data,
        &out,
        &["--method", "ha-lora", "--steps", "30", "--eval-every", "10"],
    ));
    assert!(stdout.contains("by source-val"), "{stdout}");
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("run.json")).expect("run.json"))
            .expect("json");
    let kept = manifest["best_step"].as_u64().expect("best_step");
    assert!([10, 20, 30].contains(&kept), "kept step {kept}");
    assert_eq!(manifest["config"]["selection"], "source-val");
    let a = adapter(&out);
    let b_max = a
        .iter()
        .filter(|(n, _)| n.ends_with("lora_b"))
        .map(|(_, t)| common::max_abs(t))
        .fold(0f32, f32::max);
    assert!(
        b_max > 0.0,
        "every lora_b is zero: the untrained adapter was kept"
    );
    let report = std::fs::read_to_string(out.join("report.md")).expect("report");
    assert!(
        report.contains(&format!("kept step {kept} (selected by source-val")),
        "{report}"
    );

    // --select last keeps the last step.
    let last = tmp.path().join("last");
    run_ok(fidelity_args(
        &data,
        &last,
        &[
            "--method",
            "dig",
            "--steps",
            "20",
            "--eval-every",
            "10",
            "--select",
            "last",
        ],
    ));
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(last.join("run.json")).expect("run.json"))
            .expect("json");
    assert_eq!(manifest["best_step"], 20);
    assert_eq!(manifest["config"]["selection"], "last");
}

/// Without a usable held-out split, selection by source validation is an error naming the
/// domain (never a silent step 0); `--select last` trains without one.
#[test]
fn an_empty_holdout_split_is_an_error_naming_the_domain() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = common::synth_data(tmp.path());
    let out = tmp.path().join("run");
    let res = ahp_train()
        .args(fidelity_args(
            &data,
            &out,
            &["--steps", "5", "--holdout-fraction", "0"],
        ))
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert!(!res.status.success(), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        stderr.contains("source domain `cartoon`")
            && stderr.contains("--holdout-fraction")
            && stderr.contains("--select last"),
        "{stderr}"
    );
    assert!(!out.join("run.json").exists());
    run_ok(fidelity_args(
        &data,
        &tmp.path().join("last"),
        &[
            "--steps",
            "5",
            "--eval-every",
            "5",
            "--holdout-fraction",
            "0",
            "--select",
            "last",
        ],
    ));
}

fn run_id(dir: &Path) -> String {
    let text = std::fs::read_to_string(dir.join("run.json")).expect("run.json");
    let v: serde_json::Value = serde_json::from_str(&text).expect("json");
    v["run_id"].as_str().expect("run_id").to_string()
}

#[test]
fn hostile_options_are_clear_errors() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = common::synth_data(tmp.path());
    // D18: these once ran one step, trained with rank 0, or aborted on rank 100000.
    for (extra, option) in [
        (&["--epochs", "0"][..], "--epochs"),
        (&["--epochs", "NaN"][..], "--epochs"),
        (&["--rank", "0", "--steps", "2"][..], "--rank"),
        (&["--rank", "100000", "--steps", "2"][..], "--rank"),
    ] {
        let out = ahp_train()
            .args(args_with(&data, &tmp.path().join("run"), extra))
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{extra:?} must fail");
        assert!(
            stderr.contains(option) && !stderr.contains("panicked"),
            "{extra:?}: {stderr}"
        );
    }
}

#[test]
fn run_directory_faults_are_caught() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = common::synth_data(tmp.path());
    // D1 in training: an aspect-ratio bomb among the images is skipped, the run completes.
    let mut bomb = Vec::new();
    image::ImageEncoder::write_image(
        image::codecs::png::PngEncoder::new_with_quality(
            &mut bomb,
            image::codecs::png::CompressionType::Fast,
            image::codecs::png::FilterType::NoFilter,
        ),
        &vec![0u8; 10_000_000],
        1,
        10_000_000,
        image::ExtendedColorType::L8,
    )
    .expect("encode");
    std::fs::write(data.join("photo/circle/bomb.png"), &bomb).expect("write");
    let run = tmp.path().join("run");
    let args = args_with(
        &data,
        &run,
        &["--steps", "4", "--eval-every", "2", "--batch-size", "12"],
    );
    let out = ahp_train().args(&args).output().expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let first = run_id(&run);

    // D20: resuming a finished run keeps its id.
    let mut resume = args.clone();
    resume.push("--resume".into());
    let out = ahp_train().args(&resume).output().expect("resume");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(run_id(&run), first);

    // D7: a second training on a locked directory is refused.
    let lock = std::fs::File::options()
        .write(true)
        .open(run.join(".lock"))
        .expect("lock file");
    lock.lock().expect("lock");
    let out = ahp_train().args(&resume).output().expect("locked");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("another training"),
        "{stderr}"
    );
    drop(lock);

    // D8: a changed data set is refused on resume (the path is the same, the samples are not).
    std::fs::copy(
        data.join("photo/circle/0.png"),
        data.join("photo/circle/extra.png"),
    )
    .expect("copy");
    let out = ahp_train().args(&resume).output().expect("changed data");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("different settings"),
        "{stderr}"
    );
}
