//! Opset range, IR versions and the options that choose how the graph is written.

use crate::error::{ExportError, Result};

/// Default opset.
pub const DEFAULT_OPSET: i64 = 17;
/// Lowest supported opset (`Softmax` over one axis, `Pad` with input pads).
pub const MIN_OPSET: i64 = 13;
/// Highest supported opset.
pub const MAX_OPSET: i64 = 21;

/// The ONNX IR version that goes with `opset` (the release that introduced the opset):
/// 7 for 13, 8 for 14–18, 9 for 19–20, 10 for 21.
pub fn ir_version_for(opset: i64) -> i64 {
    match opset {
        ..=13 => 7,
        14..=18 => 8,
        19..=20 => 9,
        _ => 10,
    }
}

/// How the graph is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnnxOptions {
    /// Operator set of the default domain ([`MIN_OPSET`]..=[`MAX_OPSET`]).
    pub opset: i64,
    /// Store weights and compute in f16 (inputs and outputs stay f32 via `Cast`).
    pub fp16: bool,
}

impl Default for OnnxOptions {
    fn default() -> Self {
        Self {
            opset: DEFAULT_OPSET,
            fp16: false,
        }
    }
}

impl OnnxOptions {
    /// Errors unless the opset is supported.
    pub fn check(&self) -> Result<()> {
        if !(MIN_OPSET..=MAX_OPSET).contains(&self.opset) {
            return Err(ExportError::Invalid(format!(
                "opset {} is not supported (use {MIN_OPSET}..={MAX_OPSET})",
                self.opset
            )));
        }
        Ok(())
    }
}
