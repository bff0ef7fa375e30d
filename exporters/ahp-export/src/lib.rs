//! # ahp-export
//!
//! Folds a trained run's HA-LoRA deltas and head gates (and the text classifier) into plain
//! CLIP vision weights and writes a validated ONNX model:
//!
//! * [`fold`]: pure f32 folding of Q/V low-rank deltas, gates and the classifier into Hugging
//!   Face-named tensors, and a plain [`ahp_model::ClipModel`] built from them;
//! * [`onnx`]: the ONNX graph (vision tower, projection, L2 normalization, classifier) with
//!   `ahp.*` metadata, standard operators only;
//! * [`validate`]: tract runs the written file and its outputs are compared with the candle
//!   model with its hooks;
//! * [`mod@export`]: the pipeline (temporary file, validation, atomic rename);
//! * [`prune`]: optional removal of heads with small gates;
//! * [`triton`]: optional Triton model repository entry (with [`card`]'s model card);
//! * [`cli`]: the `ahp-export` command line (also `ahp export`).
//!
//! ```no_run
//! use ahp_export::export::{export, ExportOptions, Prepared, Source};
//! # fn main() -> ahp_export::Result<()> {
//! let prepared = Prepared::load(&Source::Run {
//!     run_dir: "runs/pacs-ahp".into(),
//!     base: None,
//!     verify_base_sha256: true,
//! })?;
//! let summary = export(&prepared, "model.onnx".as_ref(), &ExportOptions::default())?;
//! println!("{} nodes", summary.graph.nodes);
//! # Ok(()) }
//! ```

pub mod card;
pub mod cli;
pub mod error;
pub mod export;
pub mod fold;
pub mod onnx;
pub mod prune;
pub mod triton;
pub mod validate;

pub use error::{ExportError, Result};
pub use export::{export, ExportOptions, ExportSummary, Prepared, Source};
pub use validate::{ONNX_FP16_VS_CANDLE, ONNX_VS_CANDLE};
