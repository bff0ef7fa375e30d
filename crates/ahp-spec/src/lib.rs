//! # ahp-spec
//!
//! The contract every ahp crate agrees on, with no ML framework dependency:
//!
//! * [`config`]: serde types for the Hugging Face `config.json` of a `CLIPModel`, with
//!   transformers' defaults where a key is absent;
//! * [`preprocess`]: the one CLIP image preprocessing implementation (decode, RGB conversion,
//!   bicubic shortest-side resize, center crop, rescale, normalize) used by training, the ONNX
//!   Runtime crate and the browser crate, so their outputs agree;
//! * [`onnx_names`]: ONNX input/output names and `ahp.*` metadata keys; [`metadata`]: reading them;
//! * [`scores`]: softmax and top-k ranking of logits (shared by the runtimes);
//! * [`run`]: the run directory written by training and read by the exporter;
//! * [`files`]: the one atomic write and bounded reads of regular files;
//! * [`exit`]: how every command reports an error and picks its exit code;
//! * [`train_config`]: the one training configuration ([`TrainConfig`]) with its defaults, and
//!   its command-line flags (`TrainArgs`, feature `clap`);
//! * [`tolerance`]: the named numeric tolerances tests and validators use.

pub mod config;
pub mod error;
pub mod exit;
pub mod files;
pub mod metadata;
pub mod onnx_names;
pub mod preprocess;
pub mod resample;
pub mod run;
pub mod scores;
pub mod tolerance;
pub mod train_config;

pub use config::{Activation, ClipConfig, ClipTextConfig, ClipVisionConfig};
pub use error::SpecError;
pub use metadata::ModelInfo;
pub use preprocess::{PreprocessConfig, Preprocessed};
pub use train_config::{LoraRankRule, TrainConfig};
