//! The files of the pretrained checkpoint, in Hugging Face's format: a word-level
//! `tokenizer.json` and its `tokenizer_config.json`, `config.json`, `model.safetensors` and
//! `preprocessor_config.json`. Every file is written atomically.

use std::path::Path;

use std::str::FromStr;

use ahp_spec::files::{write_atomic, TempFile};
use ahp_spec::{Activation, ClipConfig, ClipTextConfig, ClipVisionConfig, PreprocessConfig};
use candle_nn::VarMap;

use super::PretrainOptions;
use crate::error::{Result, TrainError};

/// Beginning-of-text token.
pub const BOS: &str = "<|startoftext|>";
/// End-of-text (and padding) token.
pub const EOS: &str = "<|endoftext|>";
/// Unknown-word token.
pub const UNK: &str = "<|unk|>";

/// The written tokenizer's split of a text into words (lowercased, split at whitespace, each
/// punctuation character a word of its own): the `tokenizers` crate's own, run with the
/// tokenizer this module writes, so every word found here is one the tokenizer looks up.
pub struct WordSplitter(tokenizers::Tokenizer);

impl WordSplitter {
    /// The splitter of [`tokenizer_json`]'s tokenizer.
    pub fn new() -> Result<Self> {
        tokenizers::Tokenizer::from_str(&tokenizer_json(&[]))
            .map(Self)
            .map_err(|e| TrainError::run_dir("tokenizer.json", e.to_string()))
    }

    /// The words of `text`, in order.
    pub fn words(&self, text: &str) -> Result<Vec<String>> {
        let enc = self
            .0
            .encode(text, false)
            .map_err(|e| TrainError::run_dir("tokenizer.json", format!("`{text}`: {e}")))?;
        Ok(enc
            .get_offsets()
            .iter()
            .filter_map(|&(a, b)| text.get(a..b).map(str::to_lowercase))
            .collect())
    }
}

/// A word-level `tokenizer.json` (lowercasing, whitespace/punctuation split, `<|startoftext|>`
/// … `<|endoftext|>` around every prompt). Returns the JSON text.
pub fn tokenizer_json(vocab_words: &[String]) -> String {
    let mut vocab = serde_json::Map::new();
    for (i, t) in [BOS, EOS, UNK].iter().enumerate() {
        vocab.insert(t.to_string(), serde_json::json!(i));
    }
    for w in vocab_words {
        let id = vocab.len();
        vocab.entry(w.clone()).or_insert(serde_json::json!(id));
    }
    let added: Vec<_> = [BOS, EOS, UNK]
        .iter()
        .enumerate()
        .map(|(i, t)| {
            serde_json::json!({"id": i, "content": t, "single_word": false, "lstrip": false,
                "rstrip": false, "normalized": false, "special": true})
        })
        .collect();
    serde_json::json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": {"type": "Lowercase"},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "WhitespaceSplit"},
            {"type": "Punctuation", "behavior": "Isolated"}
        ]},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": BOS, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": EOS, "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": BOS, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": EOS, "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}, {"SpecialToken": {"id": EOS, "type_id": 1}}],
            "special_tokens": {
                BOS: {"id": BOS, "ids": [0], "tokens": [BOS]},
                EOS: {"id": EOS, "ids": [1], "tokens": [EOS]}
            }
        },
        "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": UNK}
    })
    .to_string()
}

/// Writes `tokenizer.json` and `tokenizer_config.json` for `vocab_words` into `out`.
pub(super) fn write_tokenizer(out: &Path, vocab_words: &[String], cfg: &ClipConfig) -> Result<()> {
    write_atomic(
        &out.join("tokenizer.json"),
        tokenizer_json(vocab_words).as_bytes(),
    )?;
    let tok_cfg = serde_json::json!({"pad_token": EOS, "bos_token": BOS, "eos_token": EOS, "unk_token": UNK,
        "model_max_length": cfg.text_config.max_position_embeddings, "tokenizer_class": "PreTrainedTokenizerFast"});
    write_atomic(
        &out.join("tokenizer_config.json"),
        tok_cfg.to_string().as_bytes(),
    )?;
    Ok(())
}

/// The model configuration of the options, for a vocabulary of `vocab_size` tokens and
/// prompts of up to `positions` tokens.
pub(super) fn config(o: &PretrainOptions, vocab_size: usize, positions: usize) -> ClipConfig {
    ClipConfig {
        text_config: ClipTextConfig {
            vocab_size,
            hidden_size: o.text.0,
            intermediate_size: 4 * o.text.0,
            projection_dim: o.projection_dim,
            num_hidden_layers: o.text.1,
            num_attention_heads: o.text.2,
            max_position_embeddings: positions,
            hidden_act: Activation::QuickGelu,
            layer_norm_eps: 1e-5,
            pad_token_id: Some(1),
            bos_token_id: Some(0),
            eos_token_id: 1,
        },
        vision_config: ClipVisionConfig {
            hidden_size: o.vision.0,
            intermediate_size: 4 * o.vision.0,
            projection_dim: o.projection_dim,
            num_hidden_layers: o.vision.1,
            num_attention_heads: o.vision.2,
            num_channels: 3,
            image_size: o.image_size,
            patch_size: o.patch_size,
            hidden_act: Activation::QuickGelu,
            layer_norm_eps: 1e-5,
        },
        projection_dim: o.projection_dim,
        logit_scale_init_value: 2.6592,
    }
}

/// The `config.json` text in transformers' format (loadable by `CLIPModel.from_pretrained`).
pub fn hf_config_json(cfg: &ClipConfig) -> Result<String> {
    let mut v =
        serde_json::to_value(cfg).map_err(|e| TrainError::run_dir("config.json", e.to_string()))?;
    v["architectures"] = serde_json::json!(["CLIPModel"]);
    v["model_type"] = serde_json::json!("clip");
    v["initializer_factor"] = serde_json::json!(1.0);
    v["text_config"]["model_type"] = serde_json::json!("clip_text_model");
    v["vision_config"]["model_type"] = serde_json::json!("clip_vision_model");
    serde_json::to_string_pretty(&v).map_err(|e| TrainError::run_dir("config.json", e.to_string()))
}

/// Writes the trained weights, `config.json` and `preprocessor_config.json` into `o.out`.
pub(super) fn write_model(
    o: &PretrainOptions,
    varmap: &VarMap,
    cfg: &ClipConfig,
    pre: &PreprocessConfig,
) -> Result<()> {
    let weights = TempFile::next_to(&o.out.join("model.safetensors"))?;
    varmap
        .save(weights.path())
        .map_err(|e| TrainError::run_dir(o.out.join("model.safetensors"), e.to_string()))?;
    weights.persist()?;
    write_atomic(&o.out.join("config.json"), hf_config_json(cfg)?.as_bytes())?;
    let pre_json = serde_json::json!({
        "crop_size": {"height": o.image_size, "width": o.image_size},
        "do_center_crop": true, "do_convert_rgb": true, "do_normalize": true, "do_rescale": true, "do_resize": true,
        "image_mean": pre.mean, "image_std": pre.std, "image_processor_type": "CLIPImageProcessor",
        "resample": 3, "rescale_factor": 1.0 / 255.0, "size": {"shortest_edge": o.image_size}
    });
    write_atomic(
        &o.out.join("preprocessor_config.json"),
        pre_json.to_string().as_bytes(),
    )
    .map_err(Into::into)
}
