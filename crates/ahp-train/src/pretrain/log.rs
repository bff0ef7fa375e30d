//! Training statistics of pretraining, averaged over logging windows.

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use crate::error::Result;

/// Training statistics averaged over a logging window.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LogLine {
    /// Last step of the window (1-based).
    pub step: u64,
    /// Mean loss over the window.
    pub loss: f64,
    /// Image → caption top-1 accuracy over the window (for the synthetic captions: style and
    /// class right).
    pub accuracy: f64,
    /// Fraction of images whose top caption names the right class (captions laid out as
    /// `style × class` only).
    pub class_accuracy: Option<f64>,
    /// Fraction of images whose top caption names the right style (likewise).
    pub style_accuracy: Option<f64>,
    /// Mean pairwise cosine of the image embeddings of the window's last batch.
    pub image_cosine: f64,
    /// Mean pairwise cosine of the caption embeddings at the window's last step.
    pub text_cosine: f64,
    /// Mean global gradient norm over the window, before clipping.
    pub grad_norm: f64,
    /// `exp(logit_scale)` at the window's last step.
    pub temperature: f64,
    /// Learning rate of the window's last step.
    pub lr: f64,
}

impl std::fmt::Display for LogLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "step {:>5}  loss {:.4}  acc {:5.1}%",
            self.step,
            self.loss,
            100.0 * self.accuracy
        )?;
        if let (Some(c), Some(s)) = (self.class_accuracy, self.style_accuracy) {
            write!(f, "  class {:5.1}%  style {:5.1}%", 100.0 * c, 100.0 * s)?;
        }
        write!(
            f,
            "  img-cos {:.3}  txt-cos {:.3}  grad {:.3}  scale {:.1}  lr {:.2e}",
            self.image_cosine, self.text_cosine, self.grad_norm, self.temperature, self.lr
        )
    }
}

/// Running sums of one logging window (saved with the resumable state, so a resumed run
/// logs exactly what an uninterrupted one would).
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub(super) struct Window {
    steps: usize,
    loss: f64,
    grad_norm: f64,
    images: usize,
    correct: usize,
    class_correct: usize,
    style_correct: usize,
    laid_out: bool,
}

impl Window {
    /// Adds one step: its loss, gradient norm, and predicted vs true captions (with
    /// `classes`, caption `s * classes + c` names style `s` and class `c`).
    pub(super) fn add(
        &mut self,
        loss: f64,
        grad_norm: f64,
        pred: &[u32],
        truth: &[u32],
        classes: Option<usize>,
    ) {
        self.steps += 1;
        self.loss += loss;
        self.grad_norm += grad_norm;
        self.images += pred.len();
        self.laid_out = classes.is_some();
        for (&p, &t) in pred.iter().zip(truth) {
            let (p, t) = (p as usize, t as usize);
            self.correct += usize::from(p == t);
            if let Some(k) = classes {
                self.class_correct += usize::from(p % k == t % k);
                self.style_correct += usize::from(p / k == t / k);
            }
        }
    }

    /// The window's averages as a log line at `step` (1-based), with the embedding cosines of
    /// the last batch, the temperature and the learning rate.
    pub(super) fn line(
        &self,
        step: u64,
        image_embeds: &Tensor,
        text_embeds: &Tensor,
        temperature: f64,
        lr: f64,
    ) -> Result<LogLine> {
        let n = self.images.max(1) as f64;
        Ok(LogLine {
            step,
            loss: self.loss / self.steps.max(1) as f64,
            accuracy: self.correct as f64 / n,
            class_accuracy: self.laid_out.then(|| self.class_correct as f64 / n),
            style_accuracy: self.laid_out.then(|| self.style_correct as f64 / n),
            image_cosine: mean_pairwise_cosine(image_embeds)?,
            text_cosine: mean_pairwise_cosine(text_embeds)?,
            grad_norm: self.grad_norm / self.steps.max(1) as f64,
            temperature,
            lr,
        })
    }
}

/// Mean cosine similarity between distinct rows of L2-normalized `[N, P]` embeddings (1 when
/// they have collapsed to one direction).
fn mean_pairwise_cosine(x: &Tensor) -> Result<f64> {
    let n = x.dim(0)?;
    if n < 2 {
        return Ok(1.0);
    }
    let total = f64::from(x.matmul(&x.t()?)?.sum_all()?.to_scalar::<f32>()?);
    Ok((total - n as f64) / (n * (n - 1)) as f64)
}
