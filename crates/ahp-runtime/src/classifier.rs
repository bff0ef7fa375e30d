//! [`Classifier`]: an exported ahp model in an ONNX Runtime session.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError, TryLockError};

use ahp_spec::io::{INPUT_PIXEL_VALUES, OUTPUT_IMAGE_EMBEDS, OUTPUT_LOGITS};
use ahp_spec::PreprocessConfig;
use image::DynamicImage;
use ort::session::Session;
use ort::value::{TensorElementType, TensorRef, ValueType};
use rayon::prelude::*;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::ortlib;
use ahp_spec::scores::{softmax, top_k_indices};
use ahp_spec::ModelInfo;

/// An ONNX Runtime execution provider ahp-runtime can use.
///
/// GPU providers need the crate feature of the same name (`cuda`, `tensorrt`) *and* an ONNX
/// Runtime library built with them (e.g. the PyPI wheel `onnxruntime-gpu`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ExecutionProvider {
    /// NVIDIA TensorRT (crate feature `tensorrt`).
    #[serde(rename = "tensorrt")]
    TensorRt,
    /// NVIDIA CUDA (crate feature `cuda`).
    Cuda,
    /// ONNX Runtime's default CPU provider (always available).
    Cpu,
}

impl ExecutionProvider {
    /// All providers, in the order they are preferred.
    pub const ALL: [Self; 3] = [Self::TensorRt, Self::Cuda, Self::Cpu];

    /// Short lowercase name, as accepted by [`FromStr`] (`tensorrt`, `cuda`, `cpu`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TensorRt => "tensorrt",
            Self::Cuda => "cuda",
            Self::Cpu => "cpu",
        }
    }

    /// ONNX Runtime's name of the provider (`CUDAExecutionProvider`, ...).
    pub fn ort_name(self) -> &'static str {
        match self {
            Self::TensorRt => "TensorrtExecutionProvider",
            Self::Cuda => "CUDAExecutionProvider",
            Self::Cpu => "CPUExecutionProvider",
        }
    }

    /// Whether this build of ahp-runtime includes the provider (its cargo feature is on).
    pub fn is_compiled(self) -> bool {
        match self {
            Self::TensorRt => cfg!(feature = "tensorrt"),
            Self::Cuda => cfg!(feature = "cuda"),
            Self::Cpu => true,
        }
    }

    /// The provider followed by the ones it falls back to: `tensorrt` → TensorRT, CUDA, CPU;
    /// `cuda` → CUDA, CPU; `cpu` → CPU.
    pub fn with_fallbacks(self) -> Vec<Self> {
        Self::ALL.into_iter().skip_while(|p| *p != self).collect()
    }

    /// The default order: the compiled-in providers among TensorRT, CUDA, CPU.
    pub fn default_order() -> Vec<Self> {
        Self::ALL.into_iter().filter(|p| p.is_compiled()).collect()
    }
}

impl fmt::Display for ExecutionProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::TensorRt => "TensorRT",
            Self::Cuda => "CUDA",
            Self::Cpu => "CPU",
        })
    }
}

impl FromStr for ExecutionProvider {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "tensorrt" | "trt" => Ok(Self::TensorRt),
            "cuda" | "gpu" => Ok(Self::Cuda),
            "cpu" => Ok(Self::Cpu),
            other => Err(format!(
                "unknown execution provider {other:?} (expected cpu, cuda or tensorrt)"
            )),
        }
    }
}

/// Options for loading a [`Classifier`]; created by [`Classifier::builder`].
#[derive(Debug, Clone)]
pub struct ClassifierBuilder {
    providers: Option<Vec<ExecutionProvider>>,
    strict: bool,
    intra_threads: Option<usize>,
    sessions: usize,
    ort_library: Option<PathBuf>,
}

impl Default for ClassifierBuilder {
    fn default() -> Self {
        Self {
            providers: None,
            strict: false,
            intra_threads: None,
            sessions: 1,
            ort_library: None,
        }
    }
}

/// Where the model comes from.
enum ModelSource<'a> {
    File(&'a Path),
    Memory(&'a [u8]),
}

impl ClassifierBuilder {
    /// The execution providers to try, in order (default:
    /// [`ExecutionProvider::default_order`]). The first one that creates a session is used.
    #[must_use]
    pub fn execution_providers(mut self, providers: impl Into<Vec<ExecutionProvider>>) -> Self {
        self.providers = Some(providers.into());
        self
    }

    /// Prefer `device` and fall back to the providers after it (see
    /// [`ExecutionProvider::with_fallbacks`]); with [`strict`](Self::strict), use only it.
    #[must_use]
    pub fn device(self, device: ExecutionProvider) -> Self {
        self.execution_providers(device.with_fallbacks())
    }

    /// Fail when the first provider cannot be used instead of falling back to the next one.
    #[must_use]
    pub fn strict(mut self, strict: bool) -> Self {
        self.strict = strict;
        self
    }

    /// Threads of ONNX Runtime's intra-op pool, per session (default: ONNX Runtime's choice, the
    /// number of physical cores).
    #[must_use]
    pub fn intra_threads(mut self, threads: usize) -> Self {
        self.intra_threads = Some(threads.max(1));
        self
    }

    /// Number of ONNX Runtime sessions in the pool (default 1). `Session::run` needs exclusive
    /// access, so concurrent calls wait for a free session: more sessions allow concurrent runs
    /// (useful on GPUs, or on CPUs with [`intra_threads`](Self::intra_threads) set to
    /// `cores / sessions`) at the cost of one copy of the weights each.
    #[must_use]
    pub fn sessions(mut self, sessions: usize) -> Self {
        self.sessions = sessions.max(1);
        self
    }

    /// Load ONNX Runtime from this file instead of `ORT_DYLIB_PATH` or the default location
    /// (see [`crate::ortlib`]). Only the first library a process loads counts.
    #[must_use]
    pub fn ort_library(mut self, path: impl Into<PathBuf>) -> Self {
        self.ort_library = Some(path.into());
        self
    }

    /// Loads the model from an ONNX file.
    pub fn commit_from_file(self, path: impl AsRef<Path>) -> Result<Classifier> {
        let path = path.as_ref();
        // A FIFO or a device node would block or never end: refuse before opening it.
        ahp_spec::files::check_regular(path).map_err(|e| match e {
            ahp_spec::SpecError::Io { path, source } => Error::Io { path, source },
            other => other.into(),
        })?;
        self.commit(ModelSource::File(path), path.display().to_string())
    }

    /// Loads the model from the bytes of an ONNX file.
    pub fn commit_from_memory(self, bytes: &[u8]) -> Result<Classifier> {
        self.commit(ModelSource::Memory(bytes), "<memory>".to_string())
    }

    fn commit(self, source: ModelSource<'_>, model: String) -> Result<Classifier> {
        let rt = ortlib::runtime(self.ort_library.as_deref())?;
        let providers = self
            .providers
            .clone()
            .unwrap_or_else(ExecutionProvider::default_order);
        if providers.is_empty() {
            return Err(Error::InvalidInput(
                "empty list of execution providers".to_string(),
            ));
        }
        let mut attempts = Vec::new();
        let mut chosen = None;
        for (i, &ep) in providers.iter().enumerate() {
            match self.create_session(&rt, ep, &source) {
                Ok(session) => {
                    chosen = Some((ep, session));
                    break;
                }
                Err(why) => {
                    let last = self.strict || i + 1 == providers.len();
                    if last && ep == ExecutionProvider::Cpu && attempts.is_empty() {
                        // The CPU provider does not fail by itself: the model is the problem.
                        return Err(Error::Ort {
                            model,
                            context: "cannot create an ONNX Runtime session".to_string(),
                            message: why,
                        });
                    }
                    if !last {
                        log::warn!(
                            "{model}: execution provider {ep} not used ({why}); falling back"
                        );
                    }
                    attempts.push((ep, why));
                    if self.strict {
                        break;
                    }
                }
            }
        }
        let Some((provider, first)) = chosen else {
            return Err(Error::ExecutionProvider { model, attempts });
        };
        log::info!("{model}: running on the {provider} execution provider");

        let mut sessions = vec![first];
        for _ in 1..self.sessions {
            let session = self
                .create_session(&rt, provider, &source)
                .map_err(|message| Error::Ort {
                    model: model.clone(),
                    context: "cannot create an additional session".to_string(),
                    message,
                })?;
            sessions.push(session);
        }
        Classifier::new(model, sessions, provider, rt.library)
    }

    /// One attempt: a session on exactly `ep` (registration failures are errors).
    fn create_session(
        &self,
        rt: &ortlib::Runtime,
        ep: ExecutionProvider,
        source: &ModelSource<'_>,
    ) -> std::result::Result<Session, String> {
        if !ep.is_compiled() {
            return Err(format!(
                "ahp-runtime was built without its `{}` feature",
                ep.as_str()
            ));
        }
        let mut builder = Session::builder(&rt.environment).map_err(|e| e.to_string())?;
        if let Some(n) = self.intra_threads {
            builder = builder.with_intra_threads(n).map_err(|e| e.to_string())?;
        }
        let dispatch = match ep {
            ExecutionProvider::Cpu => Some(ort::ep::CPU::default().build()),
            #[cfg(feature = "cuda")]
            ExecutionProvider::Cuda => Some(ort::ep::CUDA::default().build()),
            #[cfg(feature = "tensorrt")]
            ExecutionProvider::TensorRt => Some(ort::ep::TensorRT::default().build()),
            #[allow(unreachable_patterns)]
            _ => None,
        };
        let Some(dispatch) = dispatch else {
            return Err(format!("{ep} is not compiled in"));
        };
        if ep != ExecutionProvider::Cpu {
            let available = available_providers();
            if !available.iter().any(|p| p == ep.ort_name()) {
                return Err(format!(
                    "the ONNX Runtime library {} does not include {} (it has {}); a GPU build such as the PyPI wheel `onnxruntime-gpu` does",
                    rt.library.display(),
                    ep.ort_name(),
                    available.join(", ")
                ));
            }
        }
        let mut builder = builder
            .with_execution_providers([dispatch.error_on_failure()])
            .map_err(|e| format!("cannot register {ep}: {e}"))?;
        match source {
            ModelSource::File(path) => builder.commit_from_file(path),
            ModelSource::Memory(bytes) => builder.commit_from_memory(bytes),
        }
        .map_err(|e| e.to_string())
    }
}

/// The providers the loaded ONNX Runtime library was built with (its `GetAvailableProviders`).
fn available_providers() -> Vec<String> {
    let candidates = [
        "TensorrtExecutionProvider",
        "CUDAExecutionProvider",
        "CPUExecutionProvider",
    ];
    let mut out = Vec::new();
    for name in candidates {
        let present = match name {
            #[cfg(feature = "tensorrt")]
            "TensorrtExecutionProvider" => {
                <ort::ep::TensorRT as ort::ep::ExecutionProvider>::is_available().unwrap_or(false)
            }
            #[cfg(feature = "cuda")]
            "CUDAExecutionProvider" => {
                <ort::ep::CUDA as ort::ep::ExecutionProvider>::is_available().unwrap_or(false)
            }
            "CPUExecutionProvider" => true,
            _ => false,
        };
        if present {
            out.push(name.to_string());
        }
    }
    out
}

/// Raw outputs of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct Outputs {
    /// `logits [batch, C]`: `exp(logit_scale) * cosine(image, class)`; softmax gives class
    /// probabilities.
    pub logits: Vec<Vec<f32>>,
    /// `image_embeds [batch, P]` (L2-normalized), when the model has that output.
    pub image_embeds: Option<Vec<Vec<f32>>>,
}

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

fn tensor_shape(t: &ValueType) -> Option<(TensorElementType, Vec<i64>)> {
    match t {
        ValueType::Tensor { ty, shape, .. } => Some((*ty, shape.iter().copied().collect())),
        _ => None,
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

    fn new(
        model: String,
        sessions: Vec<Session>,
        provider: ExecutionProvider,
        ort_library: PathBuf,
    ) -> Result<Self> {
        let contract = |message: String| Error::Contract {
            model: model.clone(),
            message,
        };
        let first = sessions
            .first()
            .ok_or_else(|| contract("no session".to_string()))?;
        let metadata = first.metadata().map_err(|e| Error::Ort {
            model: model.clone(),
            context: "cannot read the model metadata".to_string(),
            message: e.to_string(),
        })?;
        let keys = metadata.custom_keys().map_err(|e| Error::Ort {
            model: model.clone(),
            context: "cannot read the model metadata keys".to_string(),
            message: e.to_string(),
        })?;
        let properties: BTreeMap<String, String> = keys
            .into_iter()
            .filter_map(|k| metadata.custom(&k).map(|v| (k, v)))
            .collect();
        drop(metadata);
        let info = ModelInfo::from_properties(&model, properties)?;

        // Input: pixel_values f32 [batch, 3, H, W].
        let names = |outlets: &[ort::value::Outlet]| {
            outlets
                .iter()
                .map(|o| o.name().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let input = first
            .inputs()
            .iter()
            .find(|o| o.name() == INPUT_PIXEL_VALUES)
            .ok_or_else(|| {
                contract(format!(
                    "no input named `{INPUT_PIXEL_VALUES}` (inputs: {})",
                    names(first.inputs())
                ))
            })?;
        let (ty, dims) = tensor_shape(input.dtype())
            .ok_or_else(|| contract(format!("input `{INPUT_PIXEL_VALUES}` is not a tensor")))?;
        let (h, w) = info.image_size();
        let expect = [-1, 3, i64::from(h), i64::from(w)];
        let dims_ok = dims.len() == 4
            && dims
                .iter()
                .zip(expect)
                .skip(1)
                .all(|(d, e)| *d < 0 || *d == e);
        if ty != TensorElementType::Float32 || !dims_ok {
            return Err(contract(format!(
                "input `{INPUT_PIXEL_VALUES}` is {ty:?} {dims:?}, expected Float32 [batch, 3, {h}, {w}] (from the metadata)"
            )));
        }
        let fixed_batch = dims
            .first()
            .and_then(|d| usize::try_from(*d).ok())
            .filter(|d| *d > 0);

        // Outputs: logits [batch, C], image_embeds [batch, P] (optional).
        let output = |name: &str| first.outputs().iter().find(|o| o.name() == name);
        let logits = output(OUTPUT_LOGITS).ok_or_else(|| {
            contract(format!(
                "no output named `{OUTPUT_LOGITS}` (outputs: {})",
                names(first.outputs())
            ))
        })?;
        let n = info.labels.len() as i64;
        match tensor_shape(logits.dtype()) {
            Some((TensorElementType::Float32, d)) if d.len() == 2 && (d[1] < 0 || d[1] == n) => {}
            other => {
                return Err(contract(format!(
                    "output `{OUTPUT_LOGITS}` is {other:?}, expected Float32 [batch, {n}] ({n} labels in `{}`)",
                    ahp_spec::io::meta::LABELS
                )))
            }
        }
        let has_embeds = output(OUTPUT_IMAGE_EMBEDS).is_some();

        Ok(Self {
            model,
            sessions: sessions.into_iter().map(Mutex::new).collect(),
            next: AtomicUsize::new(0),
            info,
            provider,
            ort_library,
            has_embeds,
            fixed_batch,
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

    /// Top `top_k` `(label, probability)` pairs of one image, most likely first.
    pub fn classify(&self, image: &DynamicImage, top_k: usize) -> Result<Vec<(String, f32)>> {
        let mut all = self.classify_batch(std::slice::from_ref(image), top_k)?;
        all.pop().ok_or_else(|| Error::Contract {
            model: self.model.clone(),
            message: "ONNX Runtime returned no prediction for the image".to_string(),
        })
    }

    /// [`classify`](Self::classify) for several images in one run.
    pub fn classify_batch(
        &self,
        images: &[DynamicImage],
        top_k: usize,
    ) -> Result<Vec<Vec<(String, f32)>>> {
        check_top_k(top_k)?;
        if images.is_empty() {
            return Ok(Vec::new());
        }
        let pixels = self.preprocess_batch(images)?;
        self.classify_pixels(&pixels, images.len(), top_k)
    }

    /// Top `top_k` predictions for already preprocessed pixels (`batch * 3 * H * W` values).
    pub fn classify_pixels(
        &self,
        pixels: &[f32],
        batch: usize,
        top_k: usize,
    ) -> Result<Vec<Vec<(String, f32)>>> {
        check_top_k(top_k)?;
        let logits = self.logits(pixels, batch)?;
        Ok(logits.iter().map(|row| self.top_k(row, top_k)).collect())
    }

    /// L2-normalized image embeddings (`image_embeds`), one vector per image.
    pub fn embed(&self, images: &[DynamicImage]) -> Result<Vec<Vec<f32>>> {
        if !self.has_embeds {
            return Err(Error::Contract {
                model: self.model.clone(),
                message: format!("the model has no `{OUTPUT_IMAGE_EMBEDS}` output"),
            });
        }
        if images.is_empty() {
            return Ok(Vec::new());
        }
        let pixels = self.preprocess_batch(images)?;
        let out = self.run(&pixels, images.len())?;
        out.image_embeds.ok_or_else(|| Error::Contract {
            model: self.model.clone(),
            message: format!("no `{OUTPUT_IMAGE_EMBEDS}` in the outputs"),
        })
    }

    /// Logits of preprocessed pixels: `pixels` holds `batch` images of `3 * H * W` values
    /// (channel-major), as [`preprocess`](Self::preprocess) returns them.
    pub fn logits(&self, pixels: &[f32], batch: usize) -> Result<Vec<Vec<f32>>> {
        Ok(self.run(pixels, batch)?.logits)
    }

    /// Runs the model on preprocessed pixels and returns all its outputs.
    pub fn run(&self, pixels: &[f32], batch: usize) -> Result<Outputs> {
        let per_image = self.pixels_per_image();
        if pixels.len() != batch * per_image {
            let (h, w) = self.image_size();
            return Err(Error::InvalidInput(format!(
                "expected {batch} x 3 x {h} x {w} = {} pixel values, got {}",
                batch * per_image,
                pixels.len()
            )));
        }
        let mut out = Outputs {
            logits: Vec::with_capacity(batch),
            image_embeds: self.has_embeds.then(|| Vec::with_capacity(batch)),
        };
        if batch == 0 {
            return Ok(out);
        }
        let chunk = self.fixed_batch.unwrap_or(batch);
        for part in pixels.chunks(chunk * per_image) {
            let n = part.len() / per_image;
            let (logits, embeds) = if n == chunk {
                self.run_exact(part, n)?
            } else {
                // Pad to the fixed batch size and drop the padding rows.
                let mut padded = part.to_vec();
                padded.resize(chunk * per_image, 0.0);
                let (mut l, mut e) = self.run_exact(&padded, chunk)?;
                l.truncate(n);
                if let Some(e) = e.as_mut() {
                    e.truncate(n);
                }
                (l, e)
            };
            out.logits.extend(logits);
            if let (Some(all), Some(e)) = (out.image_embeds.as_mut(), embeds) {
                all.extend(e);
            }
        }
        self.check_finite(OUTPUT_LOGITS, &out.logits)?;
        if let Some(e) = &out.image_embeds {
            self.check_finite(OUTPUT_IMAGE_EMBEDS, e)?;
        }
        Ok(out)
    }

    /// NaN or infinite outputs are an error, never a prediction.
    fn check_finite(&self, output: &'static str, rows: &Rows) -> Result<()> {
        match rows.iter().position(|r| r.iter().any(|v| !v.is_finite())) {
            Some(image) => Err(Error::NonFinite {
                model: self.model.clone(),
                output,
                image,
            }),
            None => Ok(()),
        }
    }

    fn run_exact(&self, pixels: &[f32], batch: usize) -> Result<(Rows, Option<Rows>)> {
        let (h, w) = self.image_size();
        let ort_err = |context: &str, e: ort::Error| Error::Ort {
            model: self.model.clone(),
            context: context.to_string(),
            message: e.to_string(),
        };
        let input = TensorRef::from_array_view(([batch, 3, h as usize, w as usize], pixels))
            .map_err(|e| ort_err("cannot create the input tensor", e))?;
        let mut session = self.session();
        let outputs = session
            .run(ort::inputs![INPUT_PIXEL_VALUES => input])
            .map_err(|e| ort_err("inference failed", e))?;
        let rows = |name: &str, width: Option<usize>| -> Result<Rows> {
            let value = outputs.get(name).ok_or_else(|| Error::Contract {
                model: self.model.clone(),
                message: format!("no `{name}` in the outputs"),
            })?;
            let (shape, data) = value
                .try_extract_tensor::<f32>()
                .map_err(|e| ort_err(&format!("cannot read output `{name}`"), e))?;
            let dims: Vec<i64> = shape.iter().copied().collect();
            let ok = dims.len() == 2
                && dims[0] == batch as i64
                && width.is_none_or(|w| dims[1] == w as i64);
            if !ok {
                return Err(Error::Contract {
                    model: self.model.clone(),
                    message: format!(
                        "output `{name}` has shape {dims:?}, expected [{batch}, {}]",
                        width.map_or("P".to_string(), |w| w.to_string())
                    ),
                });
            }
            let cols = usize::try_from(dims[1]).unwrap_or(0).max(1);
            Ok(data.chunks(cols).map(<[f32]>::to_vec).collect())
        };
        let logits = rows(OUTPUT_LOGITS, Some(self.info.labels.len()))?;
        let embeds = if self.has_embeds {
            Some(rows(OUTPUT_IMAGE_EMBEDS, None)?)
        } else {
            None
        };
        Ok((logits, embeds))
    }

    /// A free session (or the next one in turn, waiting for it).
    fn session(&self) -> MutexGuard<'_, Session> {
        let n = self.sessions.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        for i in 0..n {
            match self.sessions[(start + i) % n].try_lock() {
                Ok(guard) => return guard,
                // A panic while holding the lock leaves the session itself usable.
                Err(TryLockError::Poisoned(p)) => return p.into_inner(),
                Err(TryLockError::WouldBlock) => {}
            }
        }
        self.sessions[start]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The `top_k` most likely `(label, probability)` pairs of one row of logits (softmax),
    /// most likely first; `top_k` larger than the number of classes returns all of them.
    pub fn top_k(&self, logits: &[f32], top_k: usize) -> Vec<(String, f32)> {
        let probs = softmax(logits);
        top_k_indices(&probs, top_k)
            .into_iter()
            .map(|i| {
                let label = self
                    .info
                    .labels
                    .get(i)
                    .cloned()
                    .unwrap_or_else(|| format!("class_{i}"));
                (label, probs[i])
            })
            .collect()
    }
}

type Rows = Vec<Vec<f32>>;

fn check_top_k(top_k: usize) -> Result<()> {
    if top_k == 0 {
        return Err(Error::InvalidInput("top_k must be at least 1".to_string()));
    }
    Ok(())
}

#[allow(dead_code)]
fn _assert_send_sync() {
    fn is<T: Send + Sync>() {}
    is::<Classifier>();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn providers_parse_and_fall_back() {
        assert_eq!("CUDA".parse(), Ok(ExecutionProvider::Cuda));
        assert_eq!("trt".parse(), Ok(ExecutionProvider::TensorRt));
        assert!("tpu".parse::<ExecutionProvider>().is_err());
        assert_eq!(
            ExecutionProvider::TensorRt.with_fallbacks(),
            ExecutionProvider::ALL
        );
        assert_eq!(
            ExecutionProvider::Cpu.with_fallbacks(),
            [ExecutionProvider::Cpu]
        );
        assert_eq!(
            ExecutionProvider::default_order().last(),
            Some(&ExecutionProvider::Cpu)
        );
    }
}
