//! The one training configuration: every setting of a purification run with its default,
//! declared once here and used by `ahp-train`, `ahp-bench dg`, `ahp demo` and `run.json`.
//!
//! Like burn's `#[derive(Config)]`: a serde type whose [`Default`] is the documentation of the
//! defaults. The command lines flatten [`TrainArgs`] (feature `clap`), whose flags are all
//! optional: a run's configuration is the defaults, then the `--config FILE` values, then the
//! flags given ([`TrainArgs::resolve`]). Settings derived from others (`warmup_steps`,
//! `eval_every`, `split_seed`) are `None` until [`TrainConfig::resolved`] fills them in; a
//! run directory's `run.json` records the resolved configuration.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::run::{check_templates, Method, Selection, DEFAULT_TEMPLATE};

/// How plain LoRA derives its ranks from the HA-LoRA ranks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum LoraRankRule {
    /// HA-LoRA's parameter budget: rank `r (H + 1) / 2` per block.
    #[default]
    Budget,
    /// The ranks as given.
    AsGiven,
}

impl LoraRankRule {
    /// The CLI spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            LoraRankRule::Budget => "budget",
            LoraRankRule::AsGiven => "as-given",
        }
    }
}

impl std::str::FromStr for LoraRankRule {
    type Err = String;

    /// Parses `budget` or `as-given`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "budget" => Ok(LoraRankRule::Budget),
            "as-given" => Ok(LoraRankRule::AsGiven),
            _ => Err(format!(
                "unknown LoRA rank rule `{s}` (expected budget or as-given)"
            )),
        }
    }
}

/// Every setting of a training run (what is trained and how; not where the data and outputs
/// are). The LoRA factors and the gate logits are two optimizer groups, each with its own
/// learning rate, weight decay and gradient-norm clip: the LoRA group sees the classification
/// gradient only, the gates classification + `mmd_weight` × MMD.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// Method: `ahp` (HA-LoRA + gates + MMD), `ha-lora`, `lora`, `dig` or `zero-shot`.
    pub method: Method,
    /// Optimizer steps.
    pub steps: u64,
    /// Images per step, split evenly over the source domains.
    pub batch_size: usize,
    /// Images per evaluation forward pass.
    pub eval_batch_size: usize,
    /// Peak learning rate of the LoRA factors.
    pub lr: f64,
    /// Peak learning rate of the gate logits.
    pub gate_lr: f64,
    /// AdamW weight decay of the LoRA factors.
    pub weight_decay: f64,
    /// AdamW weight decay of the gate logits.
    pub gate_weight_decay: f64,
    /// Linear warmup steps before the cosine decay (`None`: 10% of the steps).
    pub warmup_steps: Option<u64>,
    /// Gradient-norm clip of the LoRA group (0 = off).
    pub grad_clip: f64,
    /// Gradient-norm clip of the gate group (0 = off).
    pub gate_grad_clip: f64,
    /// Weight of the MMD loss on the gates (`ahp`, `dig`).
    pub mmd_weight: f64,
    /// HA-LoRA rank per block; one value applies to every block (`None`: the paper's ranks,
    /// 8 in the last two blocks and 2 elsewhere).
    pub ranks: Option<Vec<usize>>,
    /// LoRA alpha: each delta is scaled by `alpha / r` with its own rank `r` (PEFT's
    /// convention, for HA-LoRA and plain LoRA alike).
    pub alpha: f64,
    /// Plain LoRA's ranks: HA-LoRA's parameter budget or the ranks as given.
    pub lora_ranks: LoraRankRule,
    /// Seed of initialization, batches and augmentation.
    pub seed: u64,
    /// Seed of the sources' in/out split (`None`: `seed`).
    pub split_seed: Option<u64>,
    /// Held-out fraction of each source domain (model selection).
    pub holdout_fraction: f64,
    /// Prompt templates with one `{}` each; several are a prompt ensemble (the class embedding
    /// is the normalized mean over the templates).
    pub templates: Vec<String>,
    /// Accept domains lacking some classes.
    pub allow_missing_classes: bool,
    /// Evaluate and checkpoint every this many steps (`None`: a quarter of the steps); the
    /// first evaluation comes after `eval_every` updates.
    pub eval_every: Option<u64>,
    /// Checkpoint to keep: best pooled source-validation accuracy, or the last step.
    pub selection: Selection,
    /// Fewest held-out images every source domain needs for `source-val` selection.
    pub min_holdout: usize,
}

impl Default for TrainConfig {
    /// The defaults of every entry point: AHP, 200 steps of 24 images, LoRA learning rate
    /// 3e-3 and gate learning rate 1e-2 (no weight decay, each group clipped at norm 1), 10%
    /// warmup, MMD weight 1, the paper's ranks with alpha 8 (plain LoRA budget-matched), seed 0
    /// (also of the split), 20% of each source held out (at least 5 images), CLIP's
    /// `a photo of a {}.`, an evaluation every quarter of the run, selection on source
    /// validation.
    fn default() -> Self {
        Self {
            method: Method::Ahp,
            steps: 200,
            batch_size: 24,
            eval_batch_size: 64,
            lr: 3e-3,
            gate_lr: 1e-2,
            weight_decay: 0.0,
            gate_weight_decay: 0.0,
            warmup_steps: None,
            grad_clip: 1.0,
            gate_grad_clip: 1.0,
            mmd_weight: 1.0,
            ranks: None,
            alpha: 8.0,
            lora_ranks: LoraRankRule::Budget,
            seed: 0,
            split_seed: None,
            holdout_fraction: 0.2,
            templates: vec![DEFAULT_TEMPLATE.to_string()],
            allow_missing_classes: false,
            eval_every: None,
            selection: Selection::SourceVal,
            min_holdout: 5,
        }
    }
}

/// A setting that is out of range, named by its flag / `--config` key.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("--{flag}: {message}")]
pub struct ConfigError {
    /// The flag (kebab-case; the config file's key is the same in snake_case).
    pub flag: &'static str,
    /// What is wrong.
    pub message: String,
}

fn bad(flag: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        flag,
        message: message.into(),
    }
}

impl From<ConfigError> for crate::SpecError {
    fn from(e: ConfigError) -> Self {
        crate::SpecError::Option {
            flag: e.flag,
            message: e.message,
        }
    }
}

impl TrainConfig {
    /// Warmup steps: as set, or 10% of the steps.
    pub fn warmup_steps(&self) -> u64 {
        self.warmup_steps.unwrap_or(self.steps / 10)
    }

    /// Steps between evaluations: as set, or a quarter of the steps (at least 1).
    pub fn eval_every(&self) -> u64 {
        self.eval_every.unwrap_or((self.steps / 4).max(1))
    }

    /// Seed of the in/out split: as set, or the training seed.
    pub fn split_seed(&self) -> u64 {
        self.split_seed.unwrap_or(self.seed)
    }

    /// The same configuration with the derived settings filled in (what `run.json` records).
    pub fn resolved(&self) -> Self {
        Self {
            warmup_steps: Some(self.warmup_steps()),
            eval_every: Some(self.eval_every()),
            split_seed: Some(self.split_seed()),
            ..self.clone()
        }
    }

    /// Reads a configuration file: JSON with the keys of this type, every key optional, or a
    /// run directory's `run.json` (its `config`: train again as that run did).
    pub fn from_file(path: &Path) -> Result<Self, crate::SpecError> {
        let bytes = crate::files::read_regular(path, 1 << 20)?;
        let not_config = |e: serde_json::Error| {
            crate::SpecError::config(path, format!("not a training configuration: {e}"))
        };
        let mut value: serde_json::Value = serde_json::from_slice(&bytes).map_err(not_config)?;
        if value_is_manifest(&value) {
            let inner = value["config"].take();
            value = inner;
        }
        let config: Self = serde_json::from_value(value).map_err(not_config)?;
        config.validate().map_err(|e| {
            crate::SpecError::config(path, format!("{}: {}", e.flag.replace('-', "_"), e.message))
        })?;
        Ok(config)
    }

    /// Checks every setting's range (the data-dependent checks, such as ranks against the
    /// tower's width, come when the model is known).
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (flag, v) in [
            ("batch-size", self.batch_size),
            ("eval-batch-size", self.eval_batch_size),
        ] {
            if v == 0 {
                return Err(bad(flag, "must be at least 1"));
            }
        }
        if self.eval_every == Some(0) {
            return Err(bad("eval-every", "must be at least 1"));
        }
        if self.method != Method::ZeroShot && self.steps == 0 {
            return Err(bad(
                "steps",
                "must be at least 1 (or use --method zero-shot)",
            ));
        }
        self.validate_numbers()?;
        check_templates(&self.templates).map_err(|m| bad("template", m))?;
        if self.ranks.as_ref().is_some_and(Vec::is_empty) {
            return Err(bad("ranks", "give at least one rank"));
        }
        Ok(())
    }

    fn validate_numbers(&self) -> Result<(), ConfigError> {
        for (flag, v) in [
            ("lr", self.lr),
            ("gate-lr", self.gate_lr),
            ("mmd-weight", self.mmd_weight),
            ("weight-decay", self.weight_decay),
            ("gate-weight-decay", self.gate_weight_decay),
            ("grad-clip", self.grad_clip),
            ("gate-grad-clip", self.gate_grad_clip),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(bad(flag, format!("must be a finite number >= 0, got {v}")));
            }
        }
        if !(self.alpha.is_finite() && self.alpha > 0.0) {
            return Err(bad("alpha", format!("must be > 0, got {}", self.alpha)));
        }
        let h = self.holdout_fraction;
        if !(h.is_finite() && (0.0..1.0).contains(&h)) {
            return Err(bad(
                "holdout-fraction",
                format!("must be in [0, 1), got {h}"),
            ));
        }
        Ok(())
    }
}

/// Whether a JSON value is a `run.json` rather than a bare configuration.
fn value_is_manifest(value: &serde_json::Value) -> bool {
    value.get("format_version").is_some()
}

#[cfg(feature = "clap")]
pub use args::TrainArgs;

#[cfg(feature = "clap")]
mod args;
