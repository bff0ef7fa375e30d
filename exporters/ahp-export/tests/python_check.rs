//! Cross-check with the reference tooling: `onnx.checker.check_model(full_check=True)` and
//! onnxruntime (CPU) on the exported files, compared with tract's and candle's outputs.
//!
//! The interpreter is `$AHP_PYTHON` (default `python3`) and must have `onnx`, `onnxruntime`
//! and `numpy`; if it does not, this test FAILS (it does not skip). Set up with:
//! `python3 -m venv /tmp/onnxenv && /tmp/onnxenv/bin/pip install onnx onnxruntime numpy`
//! then `AHP_PYTHON=/tmp/onnxenv/bin/python cargo test -p ahp-export --test python_check`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use ahp_export::export::{export, ExportOptions, Prepared, Source};
use ahp_export::onnx::OnnxOptions;
use ahp_export::validate::run_tract;
use ahp_spec::run::Method;
use candle_core::Tensor;
use common::{config, labels, model_dir, reference, write_npy, write_run, AdapterSpec, MODELS};

fn python() -> String {
    std::env::var("AHP_PYTHON").unwrap_or_else(|_| "python3".into())
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/check_onnx.py")
}

fn require_python_packages() {
    let py = python();
    let out = Command::new(&py)
        .args(["-c", "import onnx, onnxruntime, numpy"])
        .output()
        .unwrap_or_else(|e| panic!("cannot run AHP_PYTHON=`{py}`: {e}"));
    assert!(
        out.status.success(),
        "`{py}` cannot import onnx, onnxruntime and numpy (set AHP_PYTHON to an interpreter that \
         has them: python3 -m venv /tmp/onnxenv && /tmp/onnxenv/bin/pip install onnx onnxruntime numpy):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs the script; returns its JSON report.
fn check(
    model: &Path,
    dir: &Path,
    px: &Tensor,
    expected: &[(&str, &Tensor)],
    tol: f32,
) -> serde_json::Value {
    let input = dir.join("pixel_values.npy");
    write_npy(&input, px);
    let mut cmd = Command::new(python());
    cmd.arg(script())
        .arg(model)
        .arg("--input")
        .arg(&input)
        .arg("--tol")
        .arg(tol.to_string());
    for (i, (name, t)) in expected.iter().enumerate() {
        let f = dir.join(format!("expected_{i}_{name}.npy"));
        write_npy(&f, t);
        cmd.arg("--expected").arg(format!("{name}={}", f.display()));
    }
    let out = cmd.output().expect("run check_onnx.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "check_onnx.py failed on {}:\n{stdout}\n{stderr}",
        model.display()
    );
    eprintln!("{}: {stdout}", model.display());
    serde_json::from_str(stdout.trim()).expect("report json")
}

#[test]
fn onnx_checker_and_onnxruntime_agree_with_tract_and_candle() {
    require_python_packages();
    for name in MODELS {
        let dir = tempfile::tempdir().expect("tempdir");
        let px = reference(name)["pixel_values"].clone();

        // Zero-shot: onnxruntime vs tract, and vs transformers' logits.
        let zs = Prepared::load(&Source::ZeroShot {
            clip: model_dir(name).to_str().expect("utf-8").into(),
            labels: labels(),
            templates: vec![ahp_model::DEFAULT_TEMPLATE.into()],
        })
        .expect("zero-shot");
        let zs_path = dir.path().join("zs.onnx");
        export(&zs, &zs_path, &ExportOptions::default()).expect("export");
        let tract = run_tract(&zs_path, &px).expect("tract");
        let hf_logits = reference(name)["logits_per_image"]
            .narrow(1, 0, 6)
            .expect("narrow");
        let r = check(
            &zs_path,
            dir.path(),
            &px,
            &[("logits", &tract[0].1), ("image_embeds", &tract[1].1)],
            1e-4,
        );
        assert_eq!(r["checker"], "ok");
        check(&zs_path, dir.path(), &px, &[("logits", &hf_logits)], 1e-4);

        // Purified, at opsets 13 (decomposed LayerNorm) and 18 (axes as inputs): onnxruntime
        // vs the adapted candle model.
        let run_dir = dir.path().join("run");
        write_run(
            &run_dir,
            name,
            &AdapterSpec::ahp(&config(name), 77),
            Method::Ahp,
        );
        let purified = Prepared::load(&Source::Run {
            run_dir,
            base: None,
            verify_base_sha256: true,
        })
        .expect("run");
        let (logits, embeds) = purified.reference(&px).expect("reference");
        for opset in [13, 17, 18] {
            let path = dir.path().join(format!("purified{opset}.onnx"));
            let options = ExportOptions {
                onnx: OnnxOptions { opset, fp16: false },
                ..ExportOptions::default()
            };
            export(&purified, &path, &options).expect("export");
            let r = check(
                &path,
                dir.path(),
                &px,
                &[("logits", &logits), ("image_embeds", &embeds)],
                1e-4,
            );
            assert_eq!(r["shapes"]["logits"], serde_json::json!([7, 6]));
        }
    }
}

#[test]
fn onnxruntime_runs_the_fp16_export() {
    require_python_packages();
    let name = MODELS[1];
    let dir = tempfile::tempdir().expect("tempdir");
    let run_dir = dir.path().join("run");
    write_run(
        &run_dir,
        name,
        &AdapterSpec::ahp(&config(name), 78),
        Method::Ahp,
    );
    let prepared = Prepared::load(&Source::Run {
        run_dir,
        base: None,
        verify_base_sha256: true,
    })
    .expect("run");
    let path = dir.path().join("fp16.onnx");
    let options = ExportOptions {
        onnx: OnnxOptions {
            opset: 17,
            fp16: true,
        },
        ..ExportOptions::default()
    };
    export(&prepared, &path, &options).expect("export");
    let px = reference(name)["pixel_values"].clone();
    let tract = run_tract(&path, &px).expect("tract");
    check(
        &path,
        dir.path(),
        &px,
        &[("logits", &tract[0].1), ("image_embeds", &tract[1].1)],
        ahp_export::ONNX_FP16_VS_CANDLE,
    );
}
