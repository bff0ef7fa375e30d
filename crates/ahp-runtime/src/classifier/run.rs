//! Running the model: batches split and padded to a fixed batch size, the session pool, and the
//! outputs read back and checked.

use std::sync::atomic::Ordering;
use std::sync::{MutexGuard, PoisonError, TryLockError};

use ahp_spec::onnx_names::{INPUT_PIXEL_VALUES, OUTPUT_IMAGE_EMBEDS, OUTPUT_LOGITS};
use ort::session::{Session, SessionOutputs};
use ort::value::TensorRef;

use super::Classifier;
use crate::error::{Error, Result};

/// Raw outputs of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct Outputs {
    /// `logits [batch, C]`: `exp(logit_scale) * cosine(image, class)`; softmax gives class
    /// probabilities.
    pub logits: Vec<Vec<f32>>,
    /// `image_embeds [batch, P]` (L2-normalized), when the model has that output.
    pub image_embeds: Option<Vec<Vec<f32>>>,
}

/// One output, one row per image.
type Rows = Vec<Vec<f32>>;

impl Classifier {
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
            let (logits, embeds) = self.run_chunk(part, chunk)?;
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

    /// Runs `part` (at most `chunk` images): as is when it holds `chunk` images, else padded to
    /// the fixed batch size with the padding rows dropped.
    fn run_chunk(&self, part: &[f32], chunk: usize) -> Result<(Rows, Option<Rows>)> {
        let per_image = self.pixels_per_image();
        let n = part.len() / per_image;
        if n == chunk {
            return self.run_exact(part, n);
        }
        let mut padded = part.to_vec();
        padded.resize(chunk * per_image, 0.0);
        let (mut l, mut e) = self.run_exact(&padded, chunk)?;
        l.truncate(n);
        if let Some(e) = e.as_mut() {
            e.truncate(n);
        }
        Ok((l, e))
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

    /// One session run on exactly `batch` images.
    fn run_exact(&self, pixels: &[f32], batch: usize) -> Result<(Rows, Option<Rows>)> {
        let (h, w) = self.image_size();
        let input = TensorRef::from_array_view(([batch, 3, h as usize, w as usize], pixels))
            .map_err(|e| Error::ort(&self.model, "cannot create the input tensor", e))?;
        let mut session = self.session();
        let outputs = session
            .run(ort::inputs![INPUT_PIXEL_VALUES => input])
            .map_err(|e| Error::ort(&self.model, "inference failed", e))?;
        let logits = self.rows(&outputs, OUTPUT_LOGITS, batch, Some(self.info.labels.len()))?;
        let embeds = if self.has_embeds {
            Some(self.rows(&outputs, OUTPUT_IMAGE_EMBEDS, batch, None)?)
        } else {
            None
        };
        Ok((logits, embeds))
    }

    /// The output `name` as `batch` rows, checked to be `[batch, width]` (`width` unchecked
    /// when `None`).
    fn rows(
        &self,
        outputs: &SessionOutputs<'_>,
        name: &str,
        batch: usize,
        width: Option<usize>,
    ) -> Result<Rows> {
        let value = outputs
            .get(name)
            .ok_or_else(|| Error::contract(&self.model, format!("no `{name}` in the outputs")))?;
        let (shape, data) = value
            .try_extract_tensor::<f32>()
            .map_err(|e| Error::ort(&self.model, &format!("cannot read output `{name}`"), e))?;
        let dims: Vec<i64> = shape.iter().copied().collect();
        let ok =
            dims.len() == 2 && dims[0] == batch as i64 && width.is_none_or(|w| dims[1] == w as i64);
        if !ok {
            return Err(Error::contract(
                &self.model,
                format!(
                    "output `{name}` has shape {dims:?}, expected [{batch}, {}]",
                    width.map_or("P".to_string(), |w| w.to_string())
                ),
            ));
        }
        let cols = usize::try_from(dims[1]).unwrap_or(0).max(1);
        Ok(data.chunks(cols).map(<[f32]>::to_vec).collect())
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
}
