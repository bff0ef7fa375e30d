//! Error type of the training crate.

use std::path::PathBuf;

/// Errors from training. Every variant names the file, option or tensor it is about.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// Model or checkpoint problem.
    #[error(transparent)]
    Model(#[from] ahp_model::ModelError),
    /// A shared-contract error (atomic write, image limits), naming its file.
    #[error(transparent)]
    Spec(#[from] ahp_spec::SpecError),
    /// Data problem.
    #[error(transparent)]
    Data(#[from] ahp_data::DataError),
    /// A tensor operation failed.
    #[error("tensor operation failed: {0}")]
    Candle(#[from] candle_core::Error),
    /// An option is invalid.
    #[error("--{option}: {message}")]
    Option {
        /// The option name without dashes.
        option: String,
        /// What is wrong.
        message: String,
    },
    /// A run-directory file could not be read or written, or is inconsistent.
    #[error("{path}: {message}")]
    RunDir {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The loss or a gradient became non-finite.
    #[error("training diverged at step {step}: {message}; lower --lr / --gate-lr, or keep --grad-clip / --gate-grad-clip above 0")]
    Diverged {
        /// The step.
        step: u64,
        /// What became non-finite.
        message: String,
    },
}

impl TrainError {
    pub(crate) fn option(option: &str, message: impl Into<String>) -> Self {
        Self::Option {
            option: option.into(),
            message: message.into(),
        }
    }
    pub(crate) fn run_dir(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Self::RunDir {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, TrainError>;
