//! Error type of the model crate.

use std::path::PathBuf;

/// Errors from loading checkpoints, tokenizing and running the model. Every variant names the
/// file, tensor or argument it is about.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// Config or image problem (from [`ahp_spec`]).
    #[error(transparent)]
    Spec(#[from] ahp_spec::SpecError),
    /// A checkpoint directory or file is missing, unreadable or inconsistent.
    #[error("{path}: {message}")]
    Checkpoint {
        /// The checkpoint directory or file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A weight could not be loaded (missing tensor, wrong shape or dtype).
    #[error("{path}: {source}")]
    Weights {
        /// The weight file(s).
        path: String,
        /// candle's error, naming the tensor and both shapes.
        #[source]
        source: candle_core::Error,
    },
    /// The tokenizer is missing or failed.
    #[error("{path}: tokenizer: {message}")]
    Tokenizer {
        /// The `tokenizer.json` path.
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
    /// An argument does not fit the model (wrong shape, empty batch, bad adapter).
    #[error("{0}")]
    Input(String),
    /// A tensor operation failed.
    #[error("tensor operation failed: {0}")]
    Candle(#[from] candle_core::Error),
}

impl ModelError {
    pub(crate) fn tensor(name: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Tensor {
            name: name.into(),
            message: message.into(),
        }
    }

    pub(crate) fn file(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Self::Checkpoint {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, ModelError>;
