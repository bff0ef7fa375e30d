//! HF `CLIPModel`: both towers, the projections and `logit_scale`.

use ahp_spec::{ClipConfig, PreprocessConfig, Preprocessed};
use candle_core::{DType, Device, Tensor, D};
use candle_nn::VarBuilder;

use crate::nn::Linear;

use crate::checkpoint::Checkpoint;
use crate::error::{ModelError, Result};
use crate::heads::HeadHooks;
use crate::text::{TextTransformer, TokenBatch};
use crate::tokenizer::ClipTokenizer;
use crate::vision::{VisionOutput, VisionTransformer};

/// A CLIP model with per-head hooks in the vision tower.
#[derive(Debug, Clone)]
pub struct ClipModel {
    vision: VisionTransformer,
    text: TextTransformer,
    visual_projection: Linear,
    text_projection: Linear,
    logit_scale: Tensor,
    config: ClipConfig,
    device: Device,
}

/// Outputs of [`ClipModel::forward`], as transformers' `CLIPOutput`.
#[derive(Debug, Clone)]
pub struct ClipOutput {
    /// L2-normalized image embeddings `[B_img, P]`.
    pub image_embeds: Tensor,
    /// L2-normalized text embeddings `[B_txt, P]`.
    pub text_embeds: Tensor,
    /// `exp(logit_scale) * image_embeds @ text_embeds^T`, `[B_img, B_txt]`.
    pub logits_per_image: Tensor,
}

/// Output of the vision tower plus the projection.
#[derive(Debug, Clone)]
pub struct ImageFeatures {
    /// `visual_projection(pooled)`, not normalized: `[B, P]`.
    pub embeds: Tensor,
    /// The tower's output (pooled features and, if requested, per-head outputs).
    pub tower: VisionOutput,
}

/// Divides each row by its L2 norm.
pub fn l2_normalize(x: &Tensor) -> Result<Tensor> {
    let norm = x.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?;
    Ok(x.broadcast_div(&norm)?)
}

/// Stacks preprocessed images into a `[B, 3, H, W]` tensor.
pub fn pixel_batch(images: &[Preprocessed], device: &Device) -> Result<Tensor> {
    let first = images
        .first()
        .ok_or_else(|| ModelError::Input("no images in the batch".into()))?;
    let (h, w) = (first.height as usize, first.width as usize);
    let mut data = Vec::with_capacity(images.len() * 3 * h * w);
    for img in images {
        if img.height as usize != h || img.width as usize != w || img.data.len() != 3 * h * w {
            return Err(ModelError::Input(format!(
                "images in a batch must all be 3x{h}x{w}, got 3x{}x{}",
                img.height, img.width
            )));
        }
        data.extend_from_slice(&img.data);
    }
    Ok(Tensor::from_vec(data, (images.len(), 3, h, w), device)?)
}

impl ClipModel {
    /// Builds the model from `vb` with HF key names (`vision_model.*`, `text_model.*`,
    /// `visual_projection.weight`, `text_projection.weight`, `logit_scale`). Every tensor must
    /// be present with the shape the config implies.
    pub fn new(vb: VarBuilder, cfg: &ClipConfig) -> candle_core::Result<Self> {
        let p = cfg.projection_dim;
        let device = vb.device().clone();
        Ok(Self {
            vision: VisionTransformer::new(vb.pp("vision_model"), &cfg.vision_config)?,
            text: TextTransformer::new(vb.pp("text_model"), &cfg.text_config)?,
            visual_projection: Linear::new_no_bias(
                cfg.vision_config.hidden_size,
                p,
                vb.pp("visual_projection"),
            )?,
            text_projection: Linear::new_no_bias(
                cfg.text_config.hidden_size,
                p,
                vb.pp("text_projection"),
            )?,
            logit_scale: vb.get((), "logit_scale")?,
            config: cfg.clone(),
            device,
        })
    }

    /// Loads a located checkpoint in f32 on `device`.
    pub fn load(checkpoint: &Checkpoint, device: &Device) -> Result<Self> {
        let weights = || checkpoint.weights_display();
        // SAFETY: read-only mapping of the checkpoint files (see `Checkpoint::from_dir`).
        let vb = unsafe {
            VarBuilder::from_mmaped_safetensors(&checkpoint.weight_files, DType::F32, device)
        }
        .map_err(|source| ModelError::Weights {
            path: weights(),
            source,
        })?;
        Self::new(vb, &checkpoint.config).map_err(|source| ModelError::Weights {
            path: weights(),
            source,
        })
    }

    /// The config.
    pub fn config(&self) -> &ClipConfig {
        &self.config
    }
    /// The device the weights live on.
    pub fn device(&self) -> &Device {
        &self.device
    }
    /// The vision tower.
    pub fn vision(&self) -> &VisionTransformer {
        &self.vision
    }
    /// The text tower.
    pub fn text(&self) -> &TextTransformer {
        &self.text
    }
    /// `visual_projection` (`[P, D_vision]`, no bias).
    pub fn visual_projection(&self) -> &Linear {
        &self.visual_projection
    }
    /// `text_projection` (`[P, D_text]`, no bias).
    pub fn text_projection(&self) -> &Linear {
        &self.text_projection
    }

    /// The raw `logit_scale` parameter (before `exp`).
    pub fn logit_scale(&self) -> Result<f32> {
        Ok(self.logit_scale.to_dtype(DType::F32)?.to_scalar::<f32>()?)
    }

    /// The `logit_scale` parameter as a tensor (`[]`, differentiable when trained).
    pub fn logit_scale_tensor(&self) -> &Tensor {
        &self.logit_scale
    }

    /// Vision tower + projection. `hooks` is empty (plain CLIP) or one entry per block.
    pub fn image_features(
        &self,
        pixel_values: &Tensor,
        hooks: &[HeadHooks],
        collect_heads: bool,
    ) -> Result<ImageFeatures> {
        let tower = self.vision.forward(pixel_values, hooks, collect_heads)?;
        let embeds = self.visual_projection.forward(&tower.pooled)?;
        Ok(ImageFeatures { embeds, tower })
    }

    /// Text tower + projection, not normalized: `[B, P]`.
    pub fn text_features(&self, batch: &TokenBatch) -> Result<Tensor> {
        let pooled = self.text.forward(batch, &self.device)?;
        Ok(self.text_projection.forward(&pooled)?)
    }

    /// transformers' `CLIPModel.forward` (plain CLIP, no hooks).
    pub fn forward(&self, pixel_values: &Tensor, batch: &TokenBatch) -> Result<ClipOutput> {
        let image_embeds = l2_normalize(&self.image_features(pixel_values, &[], false)?.embeds)?;
        let text_embeds = l2_normalize(&self.text_features(batch)?)?;
        let scale = f64::from(self.logit_scale()?).exp();
        let logits_per_image = (image_embeds.matmul(&text_embeds.t()?)? * scale)?;
        Ok(ClipOutput {
            image_embeds,
            text_embeds,
            logits_per_image,
        })
    }
}

/// A checkpoint loaded with everything needed to use it: model, tokenizer, preprocessing.
#[derive(Debug, Clone)]
pub struct LoadedClip {
    /// Where it came from.
    pub checkpoint: Checkpoint,
    /// The model.
    pub model: ClipModel,
    /// The tokenizer.
    pub tokenizer: ClipTokenizer,
    /// The image preprocessing.
    pub preprocess: PreprocessConfig,
}

impl LoadedClip {
    /// Resolves (directory or cached repo id) and loads a checkpoint on `device`.
    pub fn load(spec: &str, device: &Device) -> Result<Self> {
        let checkpoint = Checkpoint::resolve(spec)?;
        let model = ClipModel::load(&checkpoint, device)?;
        let tokenizer = ClipTokenizer::from_dir(&checkpoint.dir, &checkpoint.config.text_config)?;
        let preprocess = checkpoint.preprocess_config()?;
        Ok(Self {
            checkpoint,
            model,
            tokenizer,
            preprocess,
        })
    }
}
