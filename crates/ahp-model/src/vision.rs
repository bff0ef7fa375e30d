//! The CLIP vision tower (HF `CLIPVisionTransformer`, prefix `vision_model`).

use ahp_spec::ClipVisionConfig;
use candle_core::Tensor;
use candle_nn::VarBuilder;

use crate::encoder::{Encoder, EncoderShape};
use crate::error::{ModelError, Result};
use crate::heads::HeadHooks;
use crate::nn::LayerNorm;

/// `embeddings.{patch_embedding, class_embedding, position_embedding}`.
#[derive(Debug, Clone)]
pub struct VisionEmbeddings {
    patch_embedding: Tensor,
    patch_size: usize,
    class_embedding: Tensor,
    position_embedding: Tensor,
    image_size: usize,
    num_channels: usize,
}

impl VisionEmbeddings {
    /// Loads the embeddings from `vb` (`vision_model.embeddings`).
    pub fn new(vb: VarBuilder, cfg: &ClipVisionConfig) -> candle_core::Result<Self> {
        let d = cfg.hidden_size;
        let p = cfg.patch_size;
        Ok(Self {
            patch_embedding: vb.get((d, cfg.num_channels, p, p), "patch_embedding.weight")?,
            patch_size: p,
            class_embedding: vb.get(d, "class_embedding")?,
            position_embedding: vb.get((cfg.num_positions(), d), "position_embedding.weight")?,
            image_size: cfg.image_size,
            num_channels: cfg.num_channels,
        })
    }

    /// The patch convolution's weight `[D, C, p, p]` (no bias).
    pub fn patch_embedding(&self) -> &Tensor {
        &self.patch_embedding
    }
    /// The class token `[D]`.
    pub fn class_embedding(&self) -> &Tensor {
        &self.class_embedding
    }
    /// Position embeddings `[N, D]`.
    pub fn position_embedding(&self) -> &Tensor {
        &self.position_embedding
    }

    /// `[B, C, S, S]` pixels to `[B, N, D]` tokens (class token first).
    pub fn forward(&self, pixel_values: &Tensor) -> Result<Tensor> {
        let dims = pixel_values.dims();
        if dims.len() != 4
            || dims[1] != self.num_channels
            || dims[2] != self.image_size
            || dims[3] != self.image_size
            || dims[0] == 0
        {
            return Err(ModelError::Input(format!(
                "pixel_values: expected [batch >= 1, {}, {}, {}], got {dims:?}",
                self.num_channels, self.image_size, self.image_size
            )));
        }
        let b = dims[0];
        // The stride-p, kernel-p convolution as one matmul over non-overlapping patches (same
        // result; a GEMM is faster than candle's CPU convolution, especially its backward).
        let (p, c) = (self.patch_size, self.num_channels);
        let g = self.image_size / p;
        let x = pixel_values.narrow(2, 0, g * p)?.narrow(3, 0, g * p)?;
        let x = x
            .reshape((b, c, g, p, g, p))?
            .permute((0, 2, 4, 1, 3, 5))?
            .contiguous()?
            .reshape((b * g * g, c * p * p))?;
        let d = self.patch_embedding.dim(0)?;
        let w = self.patch_embedding.reshape((d, c * p * p))?;
        let patches = x.matmul(&w.t()?)?.reshape((b, g * g, d))?;
        let cls = self
            .class_embedding
            .reshape((1, 1, d))?
            .broadcast_as((b, 1, d))?;
        let tokens = Tensor::cat(&[&cls, &patches], 1)?;
        Ok(tokens.broadcast_add(&self.position_embedding.unsqueeze(0)?)?)
    }
}

/// HF `CLIPVisionTransformer`: embeddings, `pre_layrnorm`, encoder, `post_layernorm`.
#[derive(Debug, Clone)]
pub struct VisionTransformer {
    embeddings: VisionEmbeddings,
    pre_layrnorm: LayerNorm,
    encoder: Encoder,
    post_layernorm: LayerNorm,
    config: ClipVisionConfig,
}

/// Output of the vision tower.
#[derive(Debug, Clone)]
pub struct VisionOutput {
    /// `post_layernorm` of the class token: `[B, D]` (HF `pooler_output`).
    pub pooled: Tensor,
    /// Per block, the gated per-head outputs `[B, H, N, d_head]` (empty unless requested).
    pub heads: Vec<Tensor>,
}

impl VisionTransformer {
    /// Loads the tower from `vb` (`vision_model`).
    pub fn new(vb: VarBuilder, cfg: &ClipVisionConfig) -> candle_core::Result<Self> {
        let shape = EncoderShape::from(cfg);
        Ok(Self {
            embeddings: VisionEmbeddings::new(vb.pp("embeddings"), cfg)?,
            pre_layrnorm: shape.layer_norm(vb.pp("pre_layrnorm"))?,
            encoder: Encoder::new(vb.pp("encoder"), &shape)?,
            post_layernorm: shape.layer_norm(vb.pp("post_layernorm"))?,
            config: cfg.clone(),
        })
    }

    /// The config the tower was built from.
    pub fn config(&self) -> &ClipVisionConfig {
        &self.config
    }
    /// The embeddings.
    pub fn embeddings(&self) -> &VisionEmbeddings {
        &self.embeddings
    }
    /// `pre_layrnorm`.
    pub fn pre_layrnorm(&self) -> &LayerNorm {
        &self.pre_layrnorm
    }
    /// The encoder.
    pub fn encoder(&self) -> &Encoder {
        &self.encoder
    }
    /// `post_layernorm`.
    pub fn post_layernorm(&self) -> &LayerNorm {
        &self.post_layernorm
    }

    /// Runs the tower; `hooks` is empty (plain CLIP) or one entry per block.
    pub fn forward(
        &self,
        pixel_values: &Tensor,
        hooks: &[HeadHooks],
        collect_heads: bool,
    ) -> Result<VisionOutput> {
        let x = self.embeddings.forward(pixel_values)?;
        let x = self.pre_layrnorm.forward(&x)?;
        let enc = self.encoder.forward(&x, None, hooks, collect_heads)?;
        let cls = enc.hidden.narrow(1, 0, 1)?.squeeze(1)?;
        let pooled = self.post_layernorm.forward(&cls.contiguous()?)?;
        Ok(VisionOutput {
            pooled,
            heads: enc.heads,
        })
    }
}
