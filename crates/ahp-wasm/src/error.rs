//! Errors of the browser crate. Every message names the model (or the argument) it is about; the
//! JavaScript bindings turn them into `Error` objects with the same message.

/// Everything that can go wrong when loading a model or classifying an image.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The bytes are not an ONNX model (empty, or protobuf decoding failed).
    #[error("{model}: not an ONNX model: {message}")]
    Parse {
        /// The model name (file name in the browser).
        model: String,
        /// What is wrong.
        message: String,
    },
    /// Missing or invalid `ahp.*` metadata, or an invalid RGBA buffer (from [`ahp_spec`]).
    #[error(transparent)]
    Spec(#[from] ahp_spec::SpecError),
    /// The graph does not follow the ahp I/O contract (`pixel_values` in, `logits` out).
    #[error("{model}: not an ahp model: {message}")]
    Contract {
        /// The model name.
        model: String,
        /// What is wrong.
        message: String,
    },
    /// tract could not analyse or optimize the graph (unsupported operator, bad shapes...).
    #[error("{model}: tract cannot prepare the graph: {message}")]
    Graph {
        /// The model name.
        model: String,
        /// tract's message (with its causes).
        message: String,
    },
    /// Running the model failed.
    #[error("{model}: inference failed: {message}")]
    Run {
        /// The model name.
        model: String,
        /// tract's message (with its causes).
        message: String,
    },
    /// Image width/height do not match the RGBA buffer, or are zero.
    #[error("bad image dimensions: {0}")]
    Dimensions(String),
    /// Another invalid argument (e.g. `top_k` = 0).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, Error>;
