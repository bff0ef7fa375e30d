//! [`Classifier`]: an exported ahp model in an ONNX Runtime session.
//!
//! * `provider`: the execution providers ([`ExecutionProvider`]);
//! * `builder`: the options and the creation of the sessions ([`ClassifierBuilder`]);
//! * `metadata` and `signature`: the model's `ahp.*` metadata and I/O contract, read and
//!   checked when it is loaded;
//! * `run`: running batches on the session pool ([`Outputs`]);
//! * `classify`: predictions and embeddings.

mod builder;
mod classify;
mod metadata;
mod provider;
mod run;
mod signature;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicUsize;
use std::sync::Mutex;

use ahp_spec::{ModelInfo, PreprocessConfig};
use image::DynamicImage;
use ort::session::Session;
use rayon::prelude::*;

use crate::error::{Error, Result};

pub use builder::ClassifierBuilder;
pub use provider::ExecutionProvider;
pub use run::Outputs;

/// An exported ahp model loaded in ONNX Runtime: labels and preprocessing come from its `ahp.*`
/// metadata.
///
/// `Classifier` is `Send + Sync`; share it between threads with an `Arc` (or a reference).
/// ONNX Runtime's `Session::run` needs exclusive access (`&mut`), so the classifier holds a small
/// pool of sessions, each behind a `Mutex` (one by default, see
/// [`ClassifierBuilder::sessions`]): preprocessing runs concurrently on the calling threads (and
/// in parallel within a batch), runs of the same session are serialized, and each run uses ONNX
/// Runtime's own intra-op thread pool. To get throughput from concurrent callers, batch their
/// images (as `ahp-serve` does) rather than adding sessions.
pub struct Classifier {
    model: String,
    sessions: Vec<Mutex<Session>>,
    next: AtomicUsize,
    info: ModelInfo,
    provider: ExecutionProvider,
    ort_library: PathBuf,
    has_embeds: bool,
    /// The width of `image_embeds`, when the model has that output with a fixed width.
    embed_dim: Option<usize>,
    /// `Some(n)` when the model's batch dimension is fixed.
    fixed_batch: Option<usize>,
}

impl fmt::Debug for Classifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Classifier")
            .field("model", &self.model)
            .field("execution_provider", &self.provider)
            .field("sessions", &self.sessions.len())
            .field("labels", &self.info.labels)
            .finish_non_exhaustive()
    }
}

impl Classifier {
    /// Starts configuring a classifier.
    ///
    /// ```no_run
    /// use ahp_runtime::{Classifier, ExecutionProvider};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let classifier = Classifier::builder()
    ///     .device(ExecutionProvider::Cuda) // CUDA if available, else CPU
    ///     .commit_from_file("model.onnx")?;
    /// println!("running on {}", classifier.execution_provider());
    /// let image = ahp_runtime::preprocess::load_image("cat.jpg".as_ref())?;
    /// for (label, prob) in classifier.classify(&image, 3)? {
    ///     println!("{label}: {prob:.3}");
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn builder() -> ClassifierBuilder {
        ClassifierBuilder::default()
    }

    /// The classifier of a loaded session pool: reads the model's metadata and checks its
    /// inputs and outputs (on the first session; all hold the same model).
    fn new(
        model: String,
        sessions: Vec<Session>,
        provider: ExecutionProvider,
        ort_library: PathBuf,
    ) -> Result<Self> {
        let first = sessions
            .first()
            .ok_or_else(|| Error::contract(&model, "no session"))?;
        let info = metadata::model_info(first, &model)?;
        let signature = signature::check(first, &info, &model)?;
        Ok(Self {
            model,
            sessions: sessions.into_iter().map(Mutex::new).collect(),
            next: AtomicUsize::new(0),
            info,
            provider,
            ort_library,
            has_embeds: signature.has_embeds,
            embed_dim: signature.embed_dim,
            fixed_batch: signature.fixed_batch,
        })
    }

    /// The execution provider the sessions run on.
    pub fn execution_provider(&self) -> ExecutionProvider {
        self.provider
    }

    /// Class labels in logit order (`ahp.labels`).
    pub fn labels(&self) -> &[String] {
        &self.info.labels
    }

    /// Labels, preprocessing and all metadata properties.
    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// The preprocessing the model expects (from its metadata).
    pub fn preprocess_config(&self) -> &PreprocessConfig {
        &self.info.preprocess
    }

    /// `(height, width)` of the model input.
    pub fn image_size(&self) -> (u32, u32) {
        self.info.image_size()
    }

    /// The model file (or `<memory>`), as used in errors.
    pub fn model_name(&self) -> &str {
        &self.model
    }

    /// The ONNX Runtime library in use.
    pub fn ort_library(&self) -> &Path {
        &self.ort_library
    }

    /// Number of sessions in the pool.
    pub fn num_sessions(&self) -> usize {
        self.sessions.len()
    }

    /// The batch size the model requires, if its batch dimension is fixed (batches of other
    /// sizes are split and padded transparently).
    pub fn fixed_batch(&self) -> Option<usize> {
        self.fixed_batch
    }

    /// Whether the model has the `image_embeds` output ([`embed`](Self::embed) needs it).
    pub fn has_image_embeds(&self) -> bool {
        self.has_embeds
    }

    /// The width `P` of `image_embeds [batch, P]`, when the model has that output and fixes its
    /// width.
    pub fn image_embed_dim(&self) -> Option<usize> {
        self.embed_dim
    }

    /// Values per preprocessed image: `3 * H * W`.
    pub fn pixels_per_image(&self) -> usize {
        let (h, w) = self.image_size();
        3 * h as usize * w as usize
    }

    /// Preprocesses an image exactly as in training (ahp-spec): `3 * H * W` CHW values.
    pub fn preprocess(&self, image: &DynamicImage) -> Result<Vec<f32>> {
        Ok(ahp_spec::preprocess::preprocess(image, &self.info.preprocess)?.data)
    }

    /// Preprocesses images in parallel and concatenates them into one batch.
    pub fn preprocess_batch(&self, images: &[DynamicImage]) -> Result<Vec<f32>> {
        let parts = images
            .par_iter()
            .map(|image| self.preprocess(image))
            .collect::<Result<Vec<_>>>()?;
        Ok(parts.concat())
    }
}

#[allow(dead_code)]
fn _assert_send_sync() {
    fn is<T: Send + Sync>() {}
    is::<Classifier>();
}
