//! The pure-Rust core: load an exported ahp model from bytes with tract, classify RGBA pixels.
//! Natively testable; [`crate::bindings`] wraps it for JavaScript.
//!
//! * `load`: [`Model::load`], parsing and checking an ONNX file;
//! * this module: [`Model::classify_rgba`] and [`Model::logits`];
//! * `summary`: [`Model::summary`], what the page shows about a model.

mod load;
mod summary;

use ahp_spec::metadata::ModelInfo;
use ahp_spec::preprocess::preprocess_rgba;
use ahp_spec::scores::{softmax, top_k_indices};
use serde::Serialize;
use tract_onnx::prelude::{tvec, IntoTValue, Tensor, TypedRunnableModel};
use tract_onnx_wasm as tract_onnx;

use crate::clock::now_ms;
use crate::error::{Error, Result};

pub use summary::{GatesSummary, ModelSummary};

/// An exported ahp model, parsed, checked against the I/O contract and optimized by tract for a
/// batch of one image.
#[derive(Debug)]
pub struct Model {
    name: String,
    info: ModelInfo,
    plan: std::sync::Arc<TypedRunnableModel>,
    bytes: usize,
    load_ms: f64,
}

/// One predicted class.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Prediction {
    /// Class label (from `ahp.labels`).
    pub label: String,
    /// Softmax probability.
    pub prob: f32,
    /// Index of the class in logit order.
    pub index: usize,
}

/// Where the time of one classification went (milliseconds).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Timing {
    /// RGBA → normalized CHW tensor (composite, bicubic resize, crop, normalize).
    pub preprocess_ms: f64,
    /// The model run.
    pub inference_ms: f64,
    /// Both, plus softmax and sorting.
    pub total_ms: f64,
}

/// The result of classifying one image.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Classification {
    /// The `top_k` most likely classes, most likely first.
    pub top: Vec<Prediction>,
    /// Probabilities of all classes, in logit order.
    pub probs: Vec<f32>,
    /// Raw logits, in logit order.
    pub logits: Vec<f32>,
    /// Timing.
    pub timing: Timing,
}

/// tract's error as one line.
fn tract_message(e: impl std::fmt::Display) -> String {
    // `{:#}` prints anyhow's chain of causes on one line.
    format!("{e:#}")
}

impl Model {
    /// The model name given to [`Model::load`].
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Labels, preprocessing and metadata properties.
    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// Runs one preprocessed image (`3 x H x W` CHW values, as
    /// [`ahp_spec::preprocess::Preprocessed::data`]) and returns its logits.
    pub fn logits(&self, pixels: &[f32]) -> Result<Vec<f32>> {
        let (h, w) = self.info.image_size();
        let (h, w) = (h as usize, w as usize);
        if pixels.len() != 3 * h * w {
            return Err(Error::InvalidArgument(format!(
                "expected 3x{h}x{w} = {} pixel values, got {}",
                3 * h * w,
                pixels.len()
            )));
        }
        let run = |e: tract_onnx::prelude::TractError| Error::Run {
            model: self.name.clone(),
            message: tract_message(e),
        };
        let input = Tensor::from_shape(&[1, 3, h, w], pixels).map_err(run)?;
        let outputs = self.plan.run(tvec!(input.into_tvalue())).map_err(run)?;
        let logits = outputs.first().ok_or_else(|| Error::Run {
            model: self.name.clone(),
            message: "the model returned no output".to_string(),
        })?;
        let view = logits.to_plain_array_view::<f32>().map_err(run)?;
        Ok(view.iter().copied().collect())
    }

    /// Classifies a tightly packed RGBA8 image (`width * height * 4` bytes, as a canvas'
    /// `ImageData` holds it) with the model's ahp-spec preprocessing; returns the `top_k` most
    /// likely classes (all of them if `top_k` exceeds their number) and the timing.
    pub fn classify_rgba(
        &self,
        rgba: &[u8],
        width: u32,
        height: u32,
        top_k: usize,
    ) -> Result<Classification> {
        check_request(rgba, width, height, top_k)?;
        let start = now_ms();
        let pixels = preprocess_rgba(rgba, width, height, &self.info.preprocess)?;
        let preprocessed = now_ms();
        let logits = self.logits(&pixels.data)?;
        let inferred = now_ms();
        let probs = softmax(&logits);
        let top = self.top(&probs, top_k);
        Ok(Classification {
            top,
            probs,
            logits,
            timing: Timing {
                preprocess_ms: preprocessed - start,
                inference_ms: inferred - preprocessed,
                total_ms: now_ms() - start,
            },
        })
    }

    /// The `top_k` most likely classes of `probs`, most likely first.
    fn top(&self, probs: &[f32], top_k: usize) -> Vec<Prediction> {
        top_k_indices(probs, top_k)
            .into_iter()
            .map(|index| Prediction {
                label: self
                    .info
                    .labels
                    .get(index)
                    .cloned()
                    .unwrap_or_else(|| format!("class_{index}")),
                prob: probs[index],
                index,
            })
            .collect()
    }
}

/// `top_k` must be at least 1, and `rgba` a tightly packed `width x height` RGBA8 image.
fn check_request(rgba: &[u8], width: u32, height: u32, top_k: usize) -> Result<()> {
    if top_k == 0 {
        return Err(Error::InvalidArgument(
            "top_k must be at least 1".to_string(),
        ));
    }
    if width == 0 || height == 0 {
        return Err(Error::Dimensions(format!(
            "image is {width}x{height}; width and height must be at least 1"
        )));
    }
    let expected = u128::from(width) * u128::from(height) * 4;
    if rgba.len() as u128 != expected {
        return Err(Error::Dimensions(format!(
            "a {width}x{height} RGBA image has {expected} bytes, the buffer has {}",
            rgba.len()
        )));
    }
    Ok(())
}
