//! Error type of the runtime crate.

use std::path::PathBuf;

use crate::ExecutionProvider;

/// How to get ONNX Runtime; appended to every error about a missing or unusable library.
pub const ORT_HINT: &str = "get it with `scripts/fetch-onnxruntime.sh` from the ahp repository \
(downloads the PyPI wheel `onnxruntime==1.32.0` and unpacks libonnxruntime into \
${AHP_ORT_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ahp/onnxruntime}, where ahp-runtime looks by \
default), or set ORT_DYLIB_PATH to a libonnxruntime shared library of version >= 1.24 (the \
`onnxruntime/capi/` folder of the `onnxruntime` wheel has one)";

/// Errors of model loading and inference. Every variant names the file, metadata key or input it
/// is about.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The ONNX Runtime shared library was not found.
    #[error("ONNX Runtime shared library not found (looked for {} from {via}); {ORT_HINT}", display_paths(.tried))]
    OrtNotFound {
        /// The candidate paths that were checked, in order.
        tried: Vec<PathBuf>,
        /// Where the candidates came from (`ORT_DYLIB_PATH`, the default location, ...).
        via: &'static str,
    },
    /// The ONNX Runtime shared library exists but could not be loaded (not a library, wrong
    /// architecture, too old).
    #[error("cannot load ONNX Runtime from {path}: {message}; {ORT_HINT}")]
    OrtLoad {
        /// The library file.
        path: PathBuf,
        /// What went wrong (the loader's message, or the version found).
        message: String,
    },
    /// A model file could not be read.
    #[error("{path}: cannot read model: {source}")]
    Io {
        /// The model file.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// ONNX Runtime failed while creating a session or running the model.
    #[error("{model}: {context}: {message}")]
    Ort {
        /// The model (file path or `<memory>`).
        model: String,
        /// What was being done.
        context: String,
        /// ONNX Runtime's message.
        message: String,
    },
    /// No execution provider could be used (or, with `strict`, the requested one failed).
    #[error("{model}: no usable execution provider: {}", describe_attempts(.attempts))]
    ExecutionProvider {
        /// The model (file path or `<memory>`).
        model: String,
        /// Each provider tried, with the reason it was not used.
        attempts: Vec<(ExecutionProvider, String)>,
    },
    /// A required `ahp.*` metadata property is missing or invalid.
    #[error("{model}: metadata property `{key}`: {message}")]
    Metadata {
        /// The model (file path or `<memory>`).
        model: String,
        /// The metadata key.
        key: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// The model's inputs or outputs do not follow the ahp I/O contract.
    #[error("{model}: {message}")]
    Contract {
        /// The model (file path or `<memory>`).
        model: String,
        /// What is wrong.
        message: String,
    },
    /// The model produced NaN or infinite outputs: it is broken (e.g. exported from a diverged
    /// run), and no prediction is made from them.
    #[error("{model}: the model produced a non-finite `{output}` value (NaN or infinity) for image {image} of the batch; the model is broken")]
    NonFinite {
        /// The model (file path or `<memory>`).
        model: String,
        /// The output name.
        output: &'static str,
        /// The image's index in the batch.
        image: usize,
    },
    /// An image could not be decoded or preprocessed.
    #[error(transparent)]
    Image(ahp_spec::SpecError),
    /// Invalid arguments to an inference call (wrong pixel count, `top_k` of 0, ...).
    #[error("invalid input: {0}")]
    InvalidInput(String),
}

impl Error {
    /// An [`Error::Ort`]: ONNX Runtime failed on `model` while doing `context`.
    pub(crate) fn ort(model: &str, context: &str, message: impl ToString) -> Self {
        Self::Ort {
            model: model.to_string(),
            context: context.to_string(),
            message: message.to_string(),
        }
    }

    /// An [`Error::Contract`]: `model` breaks the ahp I/O contract.
    pub(crate) fn contract(model: &str, message: impl Into<String>) -> Self {
        Self::Contract {
            model: model.to_string(),
            message: message.into(),
        }
    }
}

impl From<ahp_spec::SpecError> for Error {
    fn from(e: ahp_spec::SpecError) -> Self {
        match e {
            ahp_spec::SpecError::Metadata {
                model,
                key,
                message,
            } => Self::Metadata {
                model,
                key,
                message,
            },
            other => Self::Image(other),
        }
    }
}

fn display_paths(paths: &[PathBuf]) -> String {
    if paths.is_empty() {
        return "no candidate path: set ORT_DYLIB_PATH, or HOME / XDG_CACHE_HOME / AHP_ORT_DIR for the default location".to_string();
    }
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn describe_attempts(attempts: &[(ExecutionProvider, String)]) -> String {
    attempts
        .iter()
        .map(|(ep, why)| format!("{ep}: {why}"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, Error>;
