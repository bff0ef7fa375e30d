//! Locating and validating a Hugging Face CLIP checkpoint: a directory with `config.json` and
//! `model.safetensors` (or a sharded `model.safetensors.index.json`), or a repo id resolved in
//! the local Hugging Face cache (`$HF_HUB_CACHE`, `$HF_HOME/hub`, `~/.cache/huggingface/hub`).
//! Nothing is ever downloaded.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use ahp_spec::{ClipConfig, PreprocessConfig};
use candle_core::safetensors::MmapedSafetensors;

use crate::error::{ModelError, Result};

/// File names of a Hugging Face checkpoint.
pub mod files {
    /// Model config.
    pub const CONFIG: &str = "config.json";
    /// Single-file weights.
    pub const WEIGHTS: &str = "model.safetensors";
    /// Index of sharded weights.
    pub const WEIGHTS_INDEX: &str = "model.safetensors.index.json";
    /// Fast tokenizer.
    pub const TOKENIZER: &str = "tokenizer.json";
    /// Tokenizer settings (pad token, max length).
    pub const TOKENIZER_CONFIG: &str = "tokenizer_config.json";
    /// Special tokens of older checkpoints.
    pub const SPECIAL_TOKENS_MAP: &str = "special_tokens_map.json";
    /// Image processor settings.
    pub const PREPROCESSOR_CONFIG: &str = "preprocessor_config.json";
}

/// A located, validated checkpoint (weights are mapped later, by [`crate::ClipModel::load`]).
#[derive(Debug, Clone)]
pub struct Checkpoint {
    /// The directory holding the files (a snapshot directory for cached repos).
    pub dir: PathBuf,
    /// The parsed `config.json`.
    pub config: ClipConfig,
    /// The safetensors weight files, in a deterministic order.
    pub weight_files: Vec<PathBuf>,
}

impl Checkpoint {
    /// Resolves `spec`: an existing directory, or a repo id (`owner/name`, optionally
    /// `owner/name@revision`) present in the local Hugging Face cache.
    pub fn resolve(spec: &str) -> Result<Self> {
        let path = Path::new(spec);
        if path.is_dir() {
            return Self::from_dir(path);
        }
        if path.exists() {
            return Err(ModelError::Checkpoint {
                path: path.to_path_buf(),
                message: "expected a checkpoint directory (with config.json and model.safetensors), got a file".into(),
            });
        }
        let looks_like_repo =
            spec.split('/').count() == 2 && !spec.starts_with('.') && !spec.contains('\\');
        if !looks_like_repo {
            return Err(ModelError::Checkpoint {
                path: path.to_path_buf(),
                message: "no such directory (and not a Hugging Face repo id like `openai/clip-vit-base-patch16`)".into(),
            });
        }
        Self::from_hf_cache(spec)
    }

    /// The Hugging Face hub cache directory, as `huggingface_hub` finds it: `$HF_HUB_CACHE`,
    /// `$HUGGINGFACE_HUB_CACHE`, `$HF_HOME/hub`, `$XDG_CACHE_HOME/huggingface/hub`, then
    /// `~/.cache/huggingface/hub`.
    pub fn hf_cache_dir() -> Option<PathBuf> {
        let var = |k: &str| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        var("HF_HUB_CACHE")
            .or_else(|| var("HUGGINGFACE_HUB_CACHE"))
            .or_else(|| var("HF_HOME").map(|h| h.join("hub")))
            .or_else(|| var("XDG_CACHE_HOME").map(|c| c.join("huggingface/hub")))
            .or_else(|| var("HOME").map(|h| h.join(".cache/huggingface/hub")))
    }

    /// Resolves a repo id in the local Hugging Face cache (no network).
    pub fn from_hf_cache(spec: &str) -> Result<Self> {
        let dir = Self::hf_cache_dir().ok_or_else(|| ModelError::Checkpoint {
            path: PathBuf::from(spec),
            message: "cannot locate the Hugging Face cache (set HF_HUB_CACHE or HF_HOME)".into(),
        })?;
        Self::from_hf_cache_in(&dir, spec)
    }

    /// Resolves a repo id (`owner/name` or `owner/name@revision`) in the Hugging Face hub cache
    /// at `cache_dir` (the directory holding `models--owner--name/`).
    pub fn from_hf_cache_in(cache_dir: &Path, spec: &str) -> Result<Self> {
        let (repo_id, revision) = match spec.split_once('@') {
            Some((r, rev)) => (r, rev),
            None => (spec, "main"),
        };
        let cache_dir = cache_dir.to_path_buf();
        let cache = hf_hub::Cache::new(cache_dir.clone());
        let repo = hf_hub::Repo::with_revision(
            repo_id.to_string(),
            hf_hub::RepoType::Model,
            revision.to_string(),
        );
        let repo_dir = cache_dir.join(format!("models--{}", repo_id.replace('/', "--")));
        // A commit hash names a snapshot directly; branches and tags go through `refs/`.
        let direct = repo_dir
            .join("snapshots")
            .join(revision)
            .join(files::CONFIG);
        let config = if direct.is_file() {
            Some(direct)
        } else {
            cache.repo(repo).get(files::CONFIG)
        };
        let config = config.ok_or_else(|| ModelError::Checkpoint {
            path: repo_dir.clone(),
            message: format!(
                "`{spec}` is not in the local Hugging Face cache (revision `{revision}`); ahp never downloads. \
                 Fetch it where you have network (`huggingface-cli download {repo_id}`) and copy the cache, \
                 set HF_HOME / HF_HUB_CACHE, or pass a checkpoint directory"
            ),
        })?;
        let dir = config
            .parent()
            .map(Path::to_path_buf)
            .ok_or_else(|| ModelError::Checkpoint {
                path: config.clone(),
                message: "cached config has no parent directory".into(),
            })?;
        Self::from_dir(&dir)
    }

    /// Reads a checkpoint directory.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let config_path = dir.join(files::CONFIG);
        if !config_path.is_file() {
            return Err(ModelError::Checkpoint {
                path: config_path,
                message: "missing (a Hugging Face CLIP checkpoint needs config.json)".into(),
            });
        }
        let config = ClipConfig::from_file(&config_path)?;
        let weight_files = Self::weight_files(dir)?;
        for file in &weight_files {
            // Maps the file and parses its header: catches truncated or corrupt files early
            // and names the file.
            // SAFETY: the file is mapped read-only; like every mmap-based safetensors reader,
            // we rely on it not being modified while mapped.
            unsafe { MmapedSafetensors::new(file) }.map_err(|e| ModelError::Checkpoint {
                path: file.clone(),
                message: format!("not a valid safetensors file: {e}"),
            })?;
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            config,
            weight_files,
        })
    }

    fn weight_files(dir: &Path) -> Result<Vec<PathBuf>> {
        let single = dir.join(files::WEIGHTS);
        if single.is_file() {
            return Ok(vec![single]);
        }
        let index = dir.join(files::WEIGHTS_INDEX);
        if index.is_file() {
            let text = std::fs::read_to_string(&index).map_err(|e| ModelError::Checkpoint {
                path: index.clone(),
                message: format!("cannot read: {e}"),
            })?;
            let value: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| ModelError::Checkpoint {
                    path: index.clone(),
                    message: format!("invalid JSON: {e}"),
                })?;
            let map = value
                .get("weight_map")
                .and_then(|m| m.as_object())
                .ok_or_else(|| ModelError::Checkpoint {
                    path: index.clone(),
                    message: "missing object `weight_map`".into(),
                })?;
            let mut shards = BTreeSet::new();
            for (tensor, file) in map {
                let file = file.as_str().ok_or_else(|| ModelError::Checkpoint {
                    path: index.clone(),
                    message: format!("weight_map[{tensor}] is not a file name"),
                })?;
                shards.insert(file.to_string());
            }
            let files: Vec<PathBuf> = shards.into_iter().map(|f| dir.join(f)).collect();
            if let Some(missing) = files.iter().find(|f| !f.is_file()) {
                return Err(ModelError::Checkpoint {
                    path: missing.clone(),
                    message: format!("shard listed in {} is missing", files::WEIGHTS_INDEX),
                });
            }
            return Ok(files);
        }
        let message = if dir.join("pytorch_model.bin").is_file() {
            "only pytorch_model.bin is present; ahp reads safetensors (convert it, e.g. with \
             `CLIPModel.from_pretrained(dir).save_pretrained(dir, safe_serialization=True)`)"
        } else {
            "no model.safetensors or model.safetensors.index.json"
        };
        Err(ModelError::Checkpoint {
            path: dir.to_path_buf(),
            message: message.into(),
        })
    }

    /// The image preprocessing of this checkpoint: its `preprocessor_config.json` if present,
    /// else CLIP's defaults at the vision tower's `image_size`.
    pub fn preprocess_config(&self) -> Result<PreprocessConfig> {
        let path = self.dir.join(files::PREPROCESSOR_CONFIG);
        if path.is_file() {
            let cfg = PreprocessConfig::from_hf_file(&path)?;
            let s = self.config.vision_config.image_size as u32;
            if cfg.crop_height != s || cfg.crop_width != s {
                return Err(ModelError::Checkpoint {
                    path,
                    message: format!(
                        "crop_size {}x{} does not match vision_config.image_size {s}",
                        cfg.crop_height, cfg.crop_width
                    ),
                });
            }
            Ok(cfg)
        } else {
            Ok(PreprocessConfig::clip(
                self.config.vision_config.image_size as u32,
            ))
        }
    }

    /// A short display name for the weights (file list).
    pub fn weights_display(&self) -> String {
        self.weight_files
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }
}
