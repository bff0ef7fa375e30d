//! Zero-shot classification: normalized text embeddings of a prompt per class; logits are
//! `exp(logit_scale) * cosine`, equal to transformers' `logits_per_image` for those prompts.

use candle_core::{Tensor, D};

use crate::clip::{l2_normalize, ClipModel};
use crate::error::{ModelError, Result};
use crate::heads::HeadHooks;
use crate::tokenizer::ClipTokenizer;

/// CLIP's default prompt template.
pub const DEFAULT_TEMPLATE: &str = "a photo of a {}.";

/// Fills `template`'s `{}` with `label`.
pub fn prompt(template: &str, label: &str) -> Result<String> {
    if template.matches("{}").count() != 1 {
        return Err(ModelError::Input(format!(
            "template `{template}` must contain exactly one `{{}}` placeholder"
        )));
    }
    Ok(template.replace("{}", label))
}

/// A zero-shot classifier head: `[C, P]` normalized class embeddings and the logit scale.
#[derive(Debug, Clone)]
pub struct ZeroShotClassifier {
    labels: Vec<String>,
    templates: Vec<String>,
    class_embeds: Tensor,
    logit_scale: f32,
}

/// One image's ranked predictions.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    /// `(label, probability)` pairs, most probable first.
    pub top: Vec<(String, f32)>,
}

impl ZeroShotClassifier {
    /// Embeds `template` filled with each label.
    pub fn new(
        model: &ClipModel,
        tokenizer: &ClipTokenizer,
        labels: &[String],
        template: &str,
    ) -> Result<Self> {
        Self::with_templates(model, tokenizer, labels, &[template.to_string()])
    }

    /// A prompt ensemble, as CLIP's zero-shot evaluation builds it: each label is embedded with
    /// every template, each embedding L2-normalized, the mean over templates normalized again.
    /// One template gives exactly [`Self::new`]'s classifier.
    pub fn with_templates(
        model: &ClipModel,
        tokenizer: &ClipTokenizer,
        labels: &[String],
        templates: &[String],
    ) -> Result<Self> {
        if templates.is_empty() {
            return Err(ModelError::Input("no prompt template given".into()));
        }
        if labels.is_empty() {
            return Err(ModelError::Input("no class labels given".into()));
        }
        if let Some(i) = labels.iter().position(|l| l.trim().is_empty()) {
            return Err(ModelError::Input(format!(
                "class label {} of {} is empty",
                i + 1,
                labels.len()
            )));
        }
        if let Some(dup) = labels
            .iter()
            .enumerate()
            .find(|(i, l)| labels[..*i].contains(l))
            .map(|(_, l)| l)
        {
            return Err(ModelError::Input(format!(
                "class label `{dup}` is given twice"
            )));
        }
        let mut sum: Option<Tensor> = None;
        for template in templates {
            let prompts = labels
                .iter()
                .map(|l| prompt(template, l))
                .collect::<Result<Vec<_>>>()?;
            let batch = tokenizer.encode_batch(&prompts)?;
            let embeds = l2_normalize(&model.text_features(&batch)?)?;
            sum = Some(match sum {
                None => embeds,
                Some(acc) => (acc + embeds)?,
            });
        }
        let sum = sum.ok_or_else(|| ModelError::Input("no prompt template given".into()))?;
        let class_embeds = if templates.len() == 1 {
            sum
        } else {
            l2_normalize(&sum)?
        };
        Ok(Self {
            labels: labels.to_vec(),
            templates: templates.to_vec(),
            class_embeds,
            logit_scale: model.logit_scale()?,
        })
    }

    /// A classifier from precomputed parts (e.g. a run directory's `text_embeds` and
    /// `logit_scale`); `class_embeds` `[C, P]` is normalized here.
    pub fn from_parts(
        labels: Vec<String>,
        templates: Vec<String>,
        class_embeds: &Tensor,
        logit_scale: f32,
    ) -> Result<Self> {
        let (c, _) = class_embeds.dims2()?;
        if c != labels.len() || c == 0 {
            return Err(ModelError::Input(format!(
                "{} labels for {c} class embeddings",
                labels.len()
            )));
        }
        Ok(Self {
            labels,
            templates,
            class_embeds: l2_normalize(class_embeds)?,
            logit_scale,
        })
    }

    /// The labels, in logit order.
    pub fn labels(&self) -> &[String] {
        &self.labels
    }
    /// The prompt templates (several: a prompt ensemble).
    pub fn templates(&self) -> &[String] {
        &self.templates
    }
    /// Normalized class embeddings `[C, P]`.
    pub fn class_embeds(&self) -> &Tensor {
        &self.class_embeds
    }
    /// The raw logit scale (before `exp`).
    pub fn logit_scale(&self) -> f32 {
        self.logit_scale
    }

    /// Logits `[B, C]` for unnormalized image embeddings `[B, P]`.
    pub fn logits(&self, image_embeds: &Tensor) -> Result<Tensor> {
        let e = l2_normalize(image_embeds)?;
        Ok((e.matmul(&self.class_embeds.t()?)? * f64::from(self.logit_scale).exp())?)
    }

    /// Logits `[B, C]` for a pixel batch through `model` (with optional per-head hooks).
    pub fn logits_for_pixels(
        &self,
        model: &ClipModel,
        pixel_values: &Tensor,
        hooks: &[HeadHooks],
    ) -> Result<Tensor> {
        self.logits(&model.image_features(pixel_values, hooks, false)?.embeds)
    }

    /// The top-1 class of every image of a pixel batch through `model` (with optional hooks):
    /// the first maximal logit, as `torch.argmax`.
    pub fn top1(
        &self,
        model: &ClipModel,
        pixel_values: &Tensor,
        hooks: &[HeadHooks],
    ) -> Result<Vec<u32>> {
        let logits = self.logits_for_pixels(model, pixel_values, hooks)?;
        Ok(logits.argmax(D::Minus1)?.to_vec1::<u32>()?)
    }

    /// Softmax over classes and the `top_k` labels per image.
    pub fn predict(&self, logits: &Tensor, top_k: usize) -> Result<Vec<Prediction>> {
        let probs = candle_nn::ops::softmax(logits, D::Minus1)?.to_vec2::<f32>()?;
        Ok(probs
            .into_iter()
            .map(|row| {
                let mut idx: Vec<usize> = (0..row.len()).collect();
                idx.sort_by(|&a, &b| row[b].total_cmp(&row[a]));
                Prediction {
                    top: idx
                        .into_iter()
                        .take(top_k.max(1))
                        .map(|i| (self.labels[i].clone(), row[i]))
                        .collect(),
                }
            })
            .collect())
    }
}
