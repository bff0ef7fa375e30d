//! What goes into the graph ([`VisionGraph`]) and the checks it must pass first.

use std::borrow::Cow;

use ahp_spec::ClipConfig;
use candle_core::Tensor;

use super::weights::Weights;
use crate::error::{ExportError, Result};

/// What to put into the graph.
#[derive(Debug, Clone, Copy)]
pub struct VisionGraph<'a> {
    /// The model config (vision tower and projection size are used).
    pub config: &'a ClipConfig,
    /// Plain (folded) weights under Hugging Face names.
    pub weights: &'a Weights,
    /// The folded classifier `[C, P]` (normalized class embeddings times `exp(logit_scale)`).
    pub classifier: &'a Tensor,
    /// Heads kept per block (sorted indices), for head pruning; `None` keeps all heads.
    pub kept_heads: Option<&'a [Vec<usize>]>,
}

impl<'a> VisionGraph<'a> {
    /// The number of classes `C`, after checking that the classifier is `[C >= 1, P]`.
    pub(super) fn classes(&self) -> Result<usize> {
        let proj_dim = self.config.projection_dim;
        let (classes, cls_p) = self
            .classifier
            .dims2()
            .map_err(|_| ExportError::tensor("classifier", "expected [C, P]"))?;
        if cls_p != proj_dim || classes == 0 {
            return Err(ExportError::tensor(
                "classifier",
                format!(
                    "has shape {:?}, expected [C >= 1, {proj_dim}]",
                    self.classifier.dims()
                ),
            ));
        }
        Ok(classes)
    }

    /// The heads kept per block (every head without pruning), after checking that there is
    /// one sorted, distinct list of valid head indices per block.
    pub(super) fn checked_kept_heads(&self) -> Result<Cow<'a, [Vec<usize>]>> {
        let cfg = &self.config.vision_config;
        let nh = cfg.num_attention_heads;
        let kept = match self.kept_heads {
            Some(k) => Cow::Borrowed(k),
            None => Cow::Owned(vec![(0..nh).collect(); cfg.num_hidden_layers]),
        };
        if kept.len() != cfg.num_hidden_layers {
            return Err(ExportError::Invalid(format!(
                "kept heads given for {} blocks, the tower has {}",
                kept.len(),
                cfg.num_hidden_layers
            )));
        }
        if let Some((i, k)) = kept
            .iter()
            .enumerate()
            .find(|(_, k)| k.windows(2).any(|w| w[0] >= w[1]) || k.iter().any(|&h| h >= nh))
        {
            return Err(ExportError::Invalid(format!(
                "block {i}: kept heads {k:?} must be sorted, distinct and < {nh}"
            )));
        }
        Ok(kept)
    }
}
