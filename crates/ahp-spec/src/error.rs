//! Error type of the spec crate.

use std::path::PathBuf;

/// Errors raised while reading configs or preprocessing images. Every variant names the file
/// (or the in-memory source) it is about.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// A file could not be read.
    #[error("{path}: cannot read file: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A file is not what it must be (not a regular file, too large, ...) or could not be
    /// written.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong and, where it helps, what to do.
        message: String,
    },
    /// A JSON config could not be parsed or is missing a required key.
    #[error("{path}: invalid config: {message}")]
    Config {
        /// The config file (or a description of the source).
        path: PathBuf,
        /// What is wrong (serde's message names the key, line and column).
        message: String,
    },
    /// A required `ahp.*` metadata property of an exported model is missing or invalid.
    #[error("{model}: metadata property `{key}`: {message}")]
    Metadata {
        /// The model (file path or `<memory>`).
        model: String,
        /// The metadata key.
        key: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// A setting (a command-line flag or its `--config` key) is out of range.
    #[error("--{flag}: {message}")]
    Option {
        /// The flag, kebab-case.
        flag: &'static str,
        /// What is wrong.
        message: String,
    },
    /// An image could not be decoded.
    #[error("{source_name}: {message}")]
    Image {
        /// The image file or a description of the in-memory source.
        source_name: String,
        /// What is wrong.
        message: String,
    },
}

impl SpecError {
    pub(crate) fn config(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Self::Config {
            path: path.into(),
            message: message.into(),
        }
    }

    pub(crate) fn file(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Self::File {
            path: path.into(),
            message: message.into(),
        }
    }

    pub(crate) fn image(source_name: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Image {
            source_name: source_name.into(),
            message: message.into(),
        }
    }
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, SpecError>;
