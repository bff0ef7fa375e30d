//! # ahp-runtime
//!
//! Embedded inference of exported ahp models (`ahp-export`'s ONNX files) with ONNX Runtime,
//! through the [`ort`] crate. No candle dependency: only [`ahp_spec`] for the I/O contract and
//! the preprocessing (the same code as training and the browser, so all agree).
//!
//! * [`Classifier`]: load a model ([`Classifier::builder`]), then
//!   [`classify`](Classifier::classify), [`classify_batch`](Classifier::classify_batch),
//!   [`embed`](Classifier::embed) or the low-level [`logits`](Classifier::logits). Labels and
//!   preprocessing come from the model's `ahp.*` metadata ([`ModelInfo`]).
//! * Execution providers are tried in order (TensorRT, CUDA, CPU; GPU ones behind the crate
//!   features `tensorrt` and `cuda`); the one in use is logged (`log` crate, info level) and
//!   returned by [`Classifier::execution_provider`]. [`ClassifierBuilder::strict`] turns a
//!   fallback into an error.
//! * ONNX Runtime itself is a shared library loaded at run time: see [`ortlib`] for where it is
//!   looked for (`ORT_DYLIB_PATH`, or the directory `scripts/fetch-onnxruntime.sh` fills).
//! * With the `serve` feature (default), [`server`] is the HTTP server behind `ahp-serve`.
//! * The commands themselves live in [`cli`]: `cli::predict` (feature `predict`) and
//!   `cli::serve` (feature `serve`) hold the arguments and `main` of `ahp-predict` and
//!   `ahp-serve`, which the `ahp` front door runs as `ahp predict` and `ahp serve`.
//!
//! ```no_run
//! use ahp_runtime::Classifier;
//!
//! # fn main() -> Result<(), ahp_runtime::Error> {
//! let classifier = Classifier::builder().commit_from_file("model.onnx")?;
//! let image = ahp_runtime::preprocess::load_image("photo.png".as_ref())?;
//! let top = classifier.classify(&image, 5)?;
//! println!("{} ({:.1}%) on {}", top[0].0, 100.0 * top[0].1, classifier.execution_provider());
//! let embeddings = classifier.embed(&[image])?;
//! assert_eq!(embeddings.len(), 1);
//! # Ok(())
//! # }
//! ```

mod classifier;
#[cfg(feature = "cli")]
pub mod cli;
mod error;
mod logging;
pub mod ortlib;
#[cfg(feature = "serve")]
pub mod server;

pub use ahp_spec::scores::softmax;
pub use ahp_spec::ModelInfo;
pub use ahp_spec::{onnx_names, preprocess};
pub use classifier::{Classifier, ClassifierBuilder, ExecutionProvider, Outputs};
pub use error::{Error, Result, ORT_HINT};
pub use logging::init_stderr_logger;
