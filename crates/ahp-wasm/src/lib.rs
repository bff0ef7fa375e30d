//! # ahp-wasm
//!
//! In-browser inference of exported ahp models: tract (no candle, no ONNX Runtime) compiled to
//! WebAssembly with wasm-bindgen. `scripts/build-wasm.sh` builds it into `web/pkg/` for the demo
//! page in `web/`.
//!
//! * [`Model`]: the pure-Rust core, testable natively — parse an ONNX file from bytes, read its
//!   `ahp.*` metadata with [`ahp_spec::metadata::ModelInfo`], check the I/O contract
//!   ([`ahp_spec::onnx_names`]), and classify RGBA pixels with [`ahp_spec::preprocess::preprocess_rgba`],
//!   the same preprocessing as training and the ONNX Runtime crate;
//! * [`bindings`]: the JavaScript API (`AhpModel`, `loadModel`, `buildInfo`); errors become
//!   JavaScript `Error`s, panics are logged by `console_error_panic_hook`.

pub mod bindings;
mod clock;
mod error;
mod model;

use serde::Serialize;

pub use ahp_spec::scores::softmax;
pub use ahp_spec::{onnx_names, preprocess};
pub use error::{Error, Result};
pub use model::{Classification, GatesSummary, Model, ModelSummary, Prediction, Timing};

/// How this build was made (shown by the demo page).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BuildInfo {
    /// This crate's version.
    pub version: &'static str,
    /// The tract version it embeds.
    pub tract: &'static str,
    /// Whether it was compiled with WebAssembly SIMD (`-C target-feature=+simd128`).
    pub simd128: bool,
    /// The target architecture (`wasm32` in the browser).
    pub arch: &'static str,
}

impl BuildInfo {
    /// The running build.
    pub fn current() -> Self {
        Self {
            version: env!("CARGO_PKG_VERSION"),
            tract: TRACT_VERSION,
            simd128: cfg!(target_feature = "simd128"),
            arch: std::env::consts::ARCH,
        }
    }
}

/// The tract version pinned in the workspace `Cargo.toml`.
const TRACT_VERSION: &str = "0.23.9";
