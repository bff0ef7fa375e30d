//! The KServe v2 protocol of `ahp serve`, checked by the official Triton client: a CLIP fixture
//! exported here with labels no other test uses (`ahp export`), served by `ahp serve`, then
//! `tests/v2_client.py` (`tritonclient.http`, python onnxruntime, `prometheus_client`) checks
//! metadata, binary and JSON inference at several batch sizes against onnxruntime within 1e-4,
//! the classification extension, bad requests, micro-batching and `/metrics`.
//!
//! The interpreter is `$AHP_PYTHON` (default `python3`); it must have `tritonclient[http]`,
//! `onnxruntime`, `numpy` and `prometheus_client` (scripts/test.sh installs them), or this test
//! FAILS (it does not skip). ONNX Runtime for `ahp serve`: `ORT_DYLIB_PATH`, as everywhere.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn python() -> String {
    std::env::var("AHP_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// Kills the server when the test ends, however it ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `ahp serve MODEL --addr 127.0.0.1:0 ...`; returns it and its URL.
fn serve(model: &Path, name: &str) -> (Server, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ahp"))
        .arg("serve")
        .arg(model)
        .args([
            "--addr",
            "127.0.0.1:0",
            "--model-name",
            name,
            "--threads",
            "1",
        ])
        // a window, so that the client's concurrent requests are batched on any machine
        .args(["--batch-window-ms", "20"])
        .current_dir(root())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start ahp serve");
    let stdout = child.stdout.take().expect("stdout");
    let server = Server(child);
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read the address");
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("ahp serve printed {line:?}, not its address"))
        .to_string();
    (server, url)
}

#[test]
fn tritonclient_gets_onnxruntime_logits_from_ahp_serve() {
    let dir = tempfile::tempdir().expect("tempdir");
    let model = dir.path().join("fresh.onnx");
    let export = Command::new(env!("CARGO_BIN_EXE_ahp"))
        .arg("export")
        .args(["--clip", "tests/fixtures/models/clip-tiny-b"])
        .args(["--classes", "fox,owl,kite,lamp,boat"])
        .args(["--template", "a drawing of a {}."])
        .arg(&model)
        .current_dir(root())
        .output()
        .expect("run ahp export");
    assert!(
        export.status.success(),
        "ahp export: {}",
        String::from_utf8_lossy(&export.stderr)
    );
    let (_server, url) = serve(&model, "fresh_clip");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/v2_client.py");
    let py = python();
    let out = Command::new(&py)
        .arg(&script)
        .arg(&url)
        .arg("fresh_clip")
        .arg(&model)
        .output()
        .unwrap_or_else(|e| panic!("cannot run AHP_PYTHON=`{py}`: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "v2_client.py failed (AHP_PYTHON=`{py}` needs tritonclient[http], onnxruntime, numpy and \
         prometheus_client; scripts/test.sh installs them):\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).expect("JSON report");
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["classes"], 5, "{report}");
    assert!(
        report["max_abs_diff"].as_f64().expect("diff") <= 1e-4,
        "{report}"
    );
    let runs = report["concurrent_model_runs"].as_u64().expect("runs");
    assert!(
        runs < 32,
        "32 concurrent v2 requests ran as {runs} model runs: not batched"
    );
    eprintln!("v2_client: {report}");
}
