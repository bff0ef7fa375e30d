//! Serde types for the Hugging Face `config.json` of a `CLIPModel`.
//!
//! Every key that transformers gives a default to has the same default here (see
//! `transformers/models/clip/configuration_clip.py`). Unknown keys are ignored, as transformers
//! does. `text_config` and `vision_config` are required: transformers silently substitutes a
//! default ViT-B/32 for a missing one, which is how a wrong architecture gets loaded unnoticed.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Result, SpecError};

/// The MLP activation (`hidden_act`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Activation {
    /// `x * sigmoid(1.702 x)`, used by OpenAI's CLIP.
    #[serde(rename = "quick_gelu")]
    QuickGelu,
    /// Exact (erf) GELU, transformers' `gelu`.
    #[serde(rename = "gelu")]
    Gelu,
    /// tanh-approximated GELU (`gelu_new`, `gelu_pytorch_tanh`, `gelu_fast`).
    #[serde(rename = "gelu_pytorch_tanh", alias = "gelu_new", alias = "gelu_fast")]
    GeluTanh,
    /// `relu`.
    #[serde(rename = "relu")]
    Relu,
}

/// `text_config` of a `CLIPConfig`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClipTextConfig {
    /// Vocabulary size (rows of `token_embedding`).
    pub vocab_size: usize,
    /// Width of the text transformer.
    pub hidden_size: usize,
    /// Width of the MLP.
    pub intermediate_size: usize,
    /// Projection size of a standalone text config (the model uses the top-level one).
    pub projection_dim: usize,
    /// Number of transformer blocks.
    pub num_hidden_layers: usize,
    /// Attention heads per block.
    pub num_attention_heads: usize,
    /// Context length (rows of `position_embedding`); longer prompts are truncated.
    pub max_position_embeddings: usize,
    /// MLP activation.
    pub hidden_act: Activation,
    /// LayerNorm epsilon.
    pub layer_norm_eps: f64,
    /// Padding token id.
    pub pad_token_id: Option<u32>,
    /// Beginning-of-text token id.
    pub bos_token_id: Option<u32>,
    /// End-of-text token id; text is pooled at its first occurrence. The legacy value `2`
    /// means "pool at the argmax of the ids" (old configs whose eos token has the largest id).
    pub eos_token_id: u32,
}

impl Default for ClipTextConfig {
    fn default() -> Self {
        Self {
            vocab_size: 49408,
            hidden_size: 512,
            intermediate_size: 2048,
            projection_dim: 512,
            num_hidden_layers: 12,
            num_attention_heads: 8,
            max_position_embeddings: 77,
            hidden_act: Activation::QuickGelu,
            layer_norm_eps: 1e-5,
            pad_token_id: Some(1),
            bos_token_id: Some(49406),
            eos_token_id: 49407,
        }
    }
}

impl ClipTextConfig {
    /// Width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }

    /// `true` for the legacy pooling rule (argmax of the token ids).
    pub fn legacy_eos_pooling(&self) -> bool {
        self.eos_token_id == 2
    }
}

/// `vision_config` of a `CLIPConfig`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClipVisionConfig {
    /// Width of the vision transformer.
    pub hidden_size: usize,
    /// Width of the MLP.
    pub intermediate_size: usize,
    /// Projection size of a standalone vision config (the model uses the top-level one).
    pub projection_dim: usize,
    /// Number of transformer blocks.
    pub num_hidden_layers: usize,
    /// Attention heads per block.
    pub num_attention_heads: usize,
    /// Input channels.
    pub num_channels: usize,
    /// Square input side in pixels.
    pub image_size: usize,
    /// Square patch side in pixels.
    pub patch_size: usize,
    /// MLP activation.
    pub hidden_act: Activation,
    /// LayerNorm epsilon.
    pub layer_norm_eps: f64,
}

impl Default for ClipVisionConfig {
    fn default() -> Self {
        Self {
            hidden_size: 768,
            intermediate_size: 3072,
            projection_dim: 512,
            num_hidden_layers: 12,
            num_attention_heads: 12,
            num_channels: 3,
            image_size: 224,
            patch_size: 32,
            hidden_act: Activation::QuickGelu,
            layer_norm_eps: 1e-5,
        }
    }
}

impl ClipVisionConfig {
    /// Width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }

    /// Patches per image side (`image_size / patch_size`, floored as the convolution does).
    pub fn patches_per_side(&self) -> usize {
        self.image_size / self.patch_size
    }

    /// Tokens per image: one class token plus the patches.
    pub fn num_positions(&self) -> usize {
        self.patches_per_side() * self.patches_per_side() + 1
    }
}

/// The top level of a Hugging Face `CLIPModel` `config.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClipConfig {
    /// Text tower configuration (`text_config`, or the legacy `text_config_dict`).
    #[serde(alias = "text_config_dict")]
    pub text_config: ClipTextConfig,
    /// Vision tower configuration (`vision_config`, or the legacy `vision_config_dict`).
    #[serde(alias = "vision_config_dict")]
    pub vision_config: ClipVisionConfig,
    /// Size of the joint embedding space (`visual_projection` / `text_projection` rows).
    #[serde(default = "default_projection_dim")]
    pub projection_dim: usize,
    /// Initial value of `logit_scale` (the checkpoint's tensor is what is used).
    #[serde(default = "default_logit_scale")]
    pub logit_scale_init_value: f64,
}

fn default_projection_dim() -> usize {
    512
}

fn default_logit_scale() -> f64 {
    2.6592
}

impl ClipConfig {
    /// Parses a `config.json` text; `origin` names the source in errors.
    pub fn from_json_str(text: &str, origin: &Path) -> Result<Self> {
        let cfg: Self =
            serde_json::from_str(text).map_err(|e| SpecError::config(origin, e.to_string()))?;
        cfg.validate(origin)?;
        Ok(cfg)
    }

    /// Reads and validates a `config.json` file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| SpecError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_json_str(&text, path)
    }

    /// Checks the invariants the model code relies on.
    pub fn validate(&self, origin: &Path) -> Result<()> {
        let checks: [(&str, usize, usize); 2] = [
            (
                "text_config",
                self.text_config.hidden_size,
                self.text_config.num_attention_heads,
            ),
            (
                "vision_config",
                self.vision_config.hidden_size,
                self.vision_config.num_attention_heads,
            ),
        ];
        for (name, hidden, heads) in checks {
            if heads == 0 || hidden % heads != 0 {
                return Err(SpecError::config(
                    origin,
                    format!("{name}.hidden_size ({hidden}) is not divisible by {name}.num_attention_heads ({heads})"),
                ));
            }
        }
        let v = &self.vision_config;
        if v.patch_size == 0 || v.image_size < v.patch_size {
            return Err(SpecError::config(
                origin,
                format!(
                    "vision_config.patch_size ({}) must be in 1..=image_size ({})",
                    v.patch_size, v.image_size
                ),
            ));
        }
        if self.text_config.max_position_embeddings < 2 {
            return Err(SpecError::config(
                origin,
                "text_config.max_position_embeddings must be at least 2 (bos + eos)",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ClipConfig> {
        ClipConfig::from_json_str(text, Path::new("config.json"))
    }

    #[test]
    fn defaults_match_transformers() -> Result<()> {
        let cfg = parse(r#"{"text_config": {}, "vision_config": {}}"#)?;
        assert_eq!(cfg.projection_dim, 512);
        assert!((cfg.logit_scale_init_value - 2.6592).abs() < 1e-12);
        assert_eq!(cfg.text_config, ClipTextConfig::default());
        assert_eq!(cfg.vision_config, ClipVisionConfig::default());
        assert_eq!(cfg.vision_config.num_positions(), 50);
        assert_eq!(cfg.text_config.eos_token_id, 49407);
        Ok(())
    }

    #[test]
    fn reads_keys_and_legacy_dict_names() -> Result<()> {
        let cfg = parse(
            r#"{"projection_dim": 16, "text_config_dict": {"hidden_act": "gelu", "eos_token_id": 2, "layer_norm_eps": 1e-6},
                "vision_config_dict": {"image_size": 32, "patch_size": 8, "hidden_act": "gelu_new"}, "unknown_key": [1]}"#,
        )?;
        assert_eq!(cfg.projection_dim, 16);
        assert_eq!(cfg.text_config.hidden_act, Activation::Gelu);
        assert!(cfg.text_config.legacy_eos_pooling());
        assert_eq!(cfg.text_config.layer_norm_eps, 1e-6);
        assert_eq!(cfg.vision_config.hidden_act, Activation::GeluTanh);
        assert_eq!(cfg.vision_config.num_positions(), 17);
        Ok(())
    }

    #[test]
    fn missing_sub_config_is_an_error_naming_the_key() {
        let err = parse(r#"{"text_config": {}}"#).expect_err("must fail");
        let msg = err.to_string();
        assert!(msg.contains("config.json"), "{msg}");
        assert!(msg.contains("vision_config"), "{msg}");
    }

    #[test]
    fn bad_values_are_errors_naming_the_field() {
        let err = parse(r#"{"text_config": {"hidden_act": "swish"}, "vision_config": {}}"#)
            .expect_err("unknown activation");
        assert!(err.to_string().contains("swish"), "{err}");
        let err = parse(r#"{"text_config": {}, "vision_config": {"hidden_size": 100}}"#)
            .expect_err("indivisible heads");
        assert!(
            err.to_string().contains("vision_config.hidden_size"),
            "{err}"
        );
        let err = parse(r#"{"text_config": {"num_hidden_layers": "x"}, "vision_config": {}}"#)
            .expect_err("wrong type");
        assert!(err.to_string().contains("line"), "{err}");
    }
}
