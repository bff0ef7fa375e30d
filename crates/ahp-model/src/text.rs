//! The CLIP text tower (HF `CLIPTextTransformer`, prefix `text_model`).

use ahp_spec::ClipTextConfig;
use candle_core::{Device, Tensor};
use candle_nn::{Embedding, Module, VarBuilder};

use crate::encoder::{Encoder, EncoderShape};
use crate::error::{ModelError, Result};
use crate::nn::LayerNorm;

/// HF `CLIPTextTransformer`: token + position embeddings, causal encoder, `final_layer_norm`,
/// pooled at the end-of-text token.
#[derive(Debug, Clone)]
pub struct TextTransformer {
    token_embedding: Embedding,
    position_embedding: Tensor,
    encoder: Encoder,
    final_layer_norm: LayerNorm,
    config: ClipTextConfig,
}

/// A tokenized batch: ids and attention mask, both `[B, L]` row-major.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenBatch {
    /// Token ids, padded.
    pub ids: Vec<Vec<u32>>,
    /// 1 for real tokens, 0 for padding.
    pub attention_mask: Vec<Vec<u32>>,
}

impl TokenBatch {
    /// Checks the batch is rectangular and non-empty; returns `(B, L)`.
    pub fn dims(&self) -> Result<(usize, usize)> {
        let b = self.ids.len();
        let l = self.ids.first().map(Vec::len).unwrap_or(0);
        if b == 0 || l == 0 {
            return Err(ModelError::Input("empty token batch".into()));
        }
        if self.attention_mask.len() != b
            || self.ids.iter().any(|r| r.len() != l)
            || self.attention_mask.iter().any(|r| r.len() != l)
        {
            return Err(ModelError::Input(
                "token batch: ids and attention_mask must be [B, L] with equal shapes".into(),
            ));
        }
        Ok((b, l))
    }
}

impl TextTransformer {
    /// Loads the tower from `vb` (`text_model`).
    pub fn new(vb: VarBuilder, cfg: &ClipTextConfig) -> candle_core::Result<Self> {
        let shape = EncoderShape::from(cfg);
        let emb = vb.pp("embeddings");
        Ok(Self {
            token_embedding: candle_nn::embedding(
                cfg.vocab_size,
                cfg.hidden_size,
                emb.pp("token_embedding"),
            )?,
            position_embedding: emb.get(
                (cfg.max_position_embeddings, cfg.hidden_size),
                "position_embedding.weight",
            )?,
            encoder: Encoder::new(vb.pp("encoder"), &shape)?,
            final_layer_norm: shape.layer_norm(vb.pp("final_layer_norm"))?,
            config: cfg.clone(),
        })
    }

    /// The config the tower was built from.
    pub fn config(&self) -> &ClipTextConfig {
        &self.config
    }

    /// Position at which each row is pooled: the first `eos_token_id`, or for the legacy
    /// `eos_token_id == 2` the (first) argmax of the ids, exactly as transformers.
    pub fn pool_positions(&self, batch: &TokenBatch) -> Vec<usize> {
        batch
            .ids
            .iter()
            .map(|ids| {
                if self.config.legacy_eos_pooling() {
                    // torch.argmax returns the first maximal index.
                    let mut best = 0;
                    for (i, &id) in ids.iter().enumerate() {
                        if id > ids[best] {
                            best = i;
                        }
                    }
                    best
                } else {
                    // transformers takes argmax of (ids == eos): 0 when eos is absent.
                    ids.iter()
                        .position(|&id| id == self.config.eos_token_id)
                        .unwrap_or(0)
                }
            })
            .collect()
    }

    /// Additive attention mask `[B, 1, L, L]`: causal, plus padded keys masked.
    fn mask(batch: &TokenBatch, l: usize, device: &Device) -> Result<Tensor> {
        let neg = f32::MIN;
        let mut data = Vec::with_capacity(batch.ids.len() * l * l);
        for mask in &batch.attention_mask {
            for i in 0..l {
                for (j, &m) in mask.iter().enumerate() {
                    data.push(if j > i || m == 0 { neg } else { 0.0 });
                }
            }
        }
        Ok(Tensor::from_vec(data, (batch.ids.len(), 1, l, l), device)?)
    }

    /// Pooled text features `[B, D]` (after `final_layer_norm`, before `text_projection`).
    pub fn forward(&self, batch: &TokenBatch, device: &Device) -> Result<Tensor> {
        let (b, l) = batch.dims()?;
        if l > self.config.max_position_embeddings {
            return Err(ModelError::Input(format!(
                "token batch has length {l}, more than max_position_embeddings ({})",
                self.config.max_position_embeddings
            )));
        }
        if let Some(bad) = batch
            .ids
            .iter()
            .flatten()
            .find(|&&id| id as usize >= self.config.vocab_size)
        {
            return Err(ModelError::Input(format!(
                "token id {bad} is outside the vocabulary (vocab_size {})",
                self.config.vocab_size
            )));
        }
        let flat: Vec<u32> = batch.ids.iter().flatten().copied().collect();
        let ids = Tensor::from_vec(flat, (b, l), device)?;
        let x = self.token_embedding.forward(&ids)?;
        let x = x.broadcast_add(&self.position_embedding.narrow(0, 0, l)?.unsqueeze(0)?)?;
        let mask = Self::mask(batch, l, device)?.to_dtype(x.dtype())?;
        let enc = self.encoder.forward(&x, Some(&mask), &[], false)?;
        let positions = self.pool_positions(batch);
        let index: Vec<u32> = positions
            .iter()
            .enumerate()
            .map(|(row, &p)| (row * l + p) as u32)
            .collect();
        let index = Tensor::from_vec(index, b, device)?;
        let d = enc.hidden.dim(2)?;
        let pooled = enc.hidden.reshape((b * l, d))?.index_select(&index, 0)?;
        Ok(self.final_layer_norm.forward(&pooled)?)
    }
}
