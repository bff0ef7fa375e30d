//! A missing or unusable ONNX Runtime library is an error that says how to get one (this file is
//! its own test process, so no library is loaded before).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use ahp_runtime::{Classifier, Error};

#[test]
fn missing_or_broken_library_is_a_helpful_error() {
    let err = Classifier::builder()
        .ort_library("/nonexistent/libonnxruntime.so.1.32.0")
        .commit_from_file(common::model_a())
        .expect_err("no library");
    assert!(matches!(err, Error::OrtNotFound { .. }), "{err}");
    let msg = err.to_string();
    for needle in [
        "/nonexistent/libonnxruntime.so.1.32.0",
        "scripts/fetch-onnxruntime.sh",
        "ORT_DYLIB_PATH",
        ">= 1.24",
    ] {
        assert!(msg.contains(needle), "{needle:?} not in: {msg}");
    }

    // A file that is not a shared library: the loader's error, plus the same hint.
    let dir = tempfile::tempdir().expect("tempdir");
    let fake = dir.path().join("libonnxruntime.so.1.32.0");
    std::fs::write(&fake, b"not a library").expect("write");
    let err = Classifier::builder()
        .ort_library(&fake)
        .commit_from_file(common::model_a())
        .expect_err("not a library");
    assert!(matches!(err, Error::OrtLoad { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains(&fake.display().to_string()), "{msg}");
    assert!(msg.contains("scripts/fetch-onnxruntime.sh"), "{msg}");
    assert!(ahp_runtime::ortlib::loaded_ort_library().is_none());
}
