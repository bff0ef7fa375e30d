//! Error type of the exporter library. Every variant names the file, tensor or output it is
//! about.

use std::path::PathBuf;

/// Errors from folding, building, writing and validating an export.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// Loading the base model, tokenizer or run directory failed (from [`ahp_model`]).
    #[error(transparent)]
    Model(#[from] ahp_model::ModelError),
    /// A config or preprocessing problem (from [`ahp_spec`]).
    #[error(transparent)]
    Spec(#[from] ahp_spec::SpecError),
    /// A file is missing, unreadable, corrupt or inconsistent.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A tensor is missing, has the wrong shape or holds non-finite values.
    #[error("tensor `{name}`: {message}")]
    Tensor {
        /// The tensor's name (Hugging Face or adapter name).
        name: String,
        /// What is wrong.
        message: String,
    },
    /// An argument does not fit (bad opset, empty label list, threshold, ...).
    #[error("{0}")]
    Invalid(String),
    /// The ONNX graph could not be built or serialized.
    #[error("ONNX: {0}")]
    Onnx(String),
    /// tract could not load or run the exported model.
    #[error("{path}: tract: {message}")]
    Tract {
        /// The ONNX file.
        path: PathBuf,
        /// tract's error chain.
        message: String,
    },
    /// The exported model's outputs do not match the reference.
    #[error("{path}: validation failed (the file was not written; --no-verify writes it unchecked): {message}")]
    Validation {
        /// The ONNX file.
        path: PathBuf,
        /// Which outputs differ, with their max abs diffs.
        message: String,
    },
    /// A tensor operation failed.
    #[error("tensor operation failed: {0}")]
    Candle(#[from] candle_core::Error),
}

impl ExportError {
    pub(crate) fn file(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Self::File {
            path: path.into(),
            message: message.into(),
        }
    }

    pub(crate) fn tensor(name: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Tensor {
            name: name.into(),
            message: message.into(),
        }
    }
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, ExportError>;
