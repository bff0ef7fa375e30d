//! CLIP tokenization with the checkpoint's `tokenizer.json` (Hugging Face `tokenizers`), padded
//! to the longest prompt and truncated to `max_position_embeddings`, as transformers'
//! `tokenizer(texts, padding=True, truncation=True)` does.

use std::path::{Path, PathBuf};

use ahp_spec::ClipTextConfig;
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

use crate::checkpoint::files;
use crate::error::{ModelError, Result};
use crate::text::TokenBatch;

/// The checkpoint's tokenizer, configured for CLIP's text tower.
#[derive(Debug, Clone)]
pub struct ClipTokenizer {
    inner: Tokenizer,
    path: PathBuf,
    pad_id: u32,
    max_length: usize,
}

fn token_name(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Object(o) => o.get("content").and_then(|c| c.as_str()).map(String::from),
        _ => None,
    }
}

fn pad_token_from(dir: &Path) -> Option<String> {
    [files::TOKENIZER_CONFIG, files::SPECIAL_TOKENS_MAP]
        .iter()
        .filter_map(|name| std::fs::read_to_string(dir.join(name)).ok())
        .filter_map(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .find_map(|v| v.get("pad_token").and_then(token_name))
}

impl ClipTokenizer {
    /// Loads `tokenizer.json` from a checkpoint directory. The pad token comes from
    /// `tokenizer_config.json` / `special_tokens_map.json` (`<|endoftext|>` when neither names
    /// one, as openai's checkpoints use).
    pub fn from_dir(dir: &Path, cfg: &ClipTextConfig) -> Result<Self> {
        let path = dir.join(files::TOKENIZER);
        if !path.is_file() {
            return Err(ModelError::Tokenizer {
                path,
                message: "missing (the checkpoint must include the fast tokenizer file)".into(),
            });
        }
        let err = |message: String| ModelError::Tokenizer {
            path: path.clone(),
            message,
        };
        let mut inner =
            Tokenizer::from_file(&path).map_err(|e| err(format!("cannot load: {e}")))?;
        let pad_token = pad_token_from(dir).unwrap_or_else(|| "<|endoftext|>".to_string());
        let pad_id = inner
            .token_to_id(&pad_token)
            .ok_or_else(|| err(format!("pad token `{pad_token}` is not in the vocabulary")))?;
        let max_length = cfg.max_position_embeddings;
        inner
            .with_truncation(Some(TruncationParams {
                max_length,
                ..Default::default()
            }))
            .map_err(|e| err(format!("cannot set truncation: {e}")))?;
        inner.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            pad_id,
            pad_token: pad_token.clone(),
            ..Default::default()
        }));
        if inner.get_vocab_size(true) > cfg.vocab_size {
            return Err(err(format!(
                "vocabulary has {} tokens, more than text_config.vocab_size ({})",
                inner.get_vocab_size(true),
                cfg.vocab_size
            )));
        }
        Ok(Self {
            inner,
            path,
            pad_id,
            max_length,
        })
    }

    /// The padding id.
    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }

    /// The truncation length.
    pub fn max_length(&self) -> usize {
        self.max_length
    }

    /// Id of a token, if in the vocabulary.
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// Tokenizes a batch of prompts.
    pub fn encode_batch(&self, texts: &[String]) -> Result<TokenBatch> {
        if texts.is_empty() {
            return Err(ModelError::Input("no prompts to tokenize".into()));
        }
        let encodings = self
            .inner
            .encode_batch(texts.iter().map(String::as_str).collect::<Vec<_>>(), true)
            .map_err(|e| ModelError::Tokenizer {
                path: self.path.clone(),
                message: format!("cannot encode: {e}"),
            })?;
        Ok(TokenBatch {
            ids: encodings.iter().map(|e| e.get_ids().to_vec()).collect(),
            attention_mask: encodings
                .iter()
                .map(|e| e.get_attention_mask().to_vec())
                .collect(),
        })
    }
}
