//! Results: top-k `(label, probability)` predictions and image embeddings.

use ahp_spec::onnx_names::OUTPUT_IMAGE_EMBEDS;
use ahp_spec::scores::{softmax, top_k_indices};
use image::DynamicImage;

use super::Classifier;
use crate::error::{Error, Result};

impl Classifier {
    /// Top `top_k` `(label, probability)` pairs of one image, most likely first.
    pub fn classify(&self, image: &DynamicImage, top_k: usize) -> Result<Vec<(String, f32)>> {
        let mut all = self.classify_batch(std::slice::from_ref(image), top_k)?;
        all.pop().ok_or_else(|| {
            Error::contract(
                &self.model,
                "ONNX Runtime returned no prediction for the image",
            )
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
            return Err(Error::contract(
                &self.model,
                format!("the model has no `{OUTPUT_IMAGE_EMBEDS}` output"),
            ));
        }
        if images.is_empty() {
            return Ok(Vec::new());
        }
        let pixels = self.preprocess_batch(images)?;
        let out = self.run(&pixels, images.len())?;
        out.image_embeds.ok_or_else(|| {
            Error::contract(
                &self.model,
                format!("no `{OUTPUT_IMAGE_EMBEDS}` in the outputs"),
            )
        })
    }

    /// Logits of preprocessed pixels: `pixels` holds `batch` images of `3 * H * W` values
    /// (channel-major), as [`preprocess`](Self::preprocess) returns them.
    pub fn logits(&self, pixels: &[f32], batch: usize) -> Result<Vec<Vec<f32>>> {
        Ok(self.run(pixels, batch)?.logits)
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

/// `top_k` of 0 is an invalid input.
fn check_top_k(top_k: usize) -> Result<()> {
    if top_k == 0 {
        return Err(Error::InvalidInput("top_k must be at least 1".to_string()));
    }
    Ok(())
}
