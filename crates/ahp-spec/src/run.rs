//! The run directory written by `ahp-train` and read by `ahp-export` and other tools.
//!
//! ```text
//! run_dir/
//!   adapter.safetensors   per-block HA-LoRA factors and gate logits, class embeddings, logit scale
//!   run.json              this manifest (RunManifest)
//!   metrics.jsonl         one JSON object per evaluation
//!   report.md             per-domain accuracy table
//! ```
//!
//! Tensor names in `adapter.safetensors` (block `i` of the vision tower, `H` heads, rank `r_i`,
//! width `D`, head width `d_head`; see [`adapter_key`]):
//! * `vision.layers.{i}.q.lora_a` `[H, r_i, D]`, `vision.layers.{i}.q.lora_b` `[H, d_head, r_i]`,
//!   and the same for `v` — absent for blocks with rank 0. The plain-LoRA baseline (`lora`) uses
//!   one group spanning all heads: `[1, r_i, D]` and `[1, D, r_i]`.
//! * `vision.layers.{i}.gate_logits` `[H]` — absent when the method has no gates.
//! * `text_embeds` `[C, P]`: L2-normalized class embeddings, in `classes` order.
//! * `logit_scale` `[]`: the raw parameter (before `exp`).

use serde::{Deserialize, Serialize};

use crate::train_config::TrainConfig;

/// File name of the adapter weights in a run directory.
pub const ADAPTER_FILE: &str = "adapter.safetensors";
/// File name of the manifest in a run directory.
pub const MANIFEST_FILE: &str = "run.json";
/// File name of the evaluation log in a run directory.
pub const METRICS_FILE: &str = "metrics.jsonl";
/// File name of the final report in a run directory.
pub const REPORT_FILE: &str = "report.md";
/// Current manifest format.
pub const FORMAT_VERSION: u32 = 1;

/// Name of the class-embedding tensor.
pub const TEXT_EMBEDS_KEY: &str = "text_embeds";
/// Name of the logit-scale tensor.
pub const LOGIT_SCALE_KEY: &str = "logit_scale";

/// Which projection a low-rank delta targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Projection {
    /// The query projection.
    Q,
    /// The value projection.
    V,
}

impl Projection {
    /// `q` or `v`.
    pub fn as_str(self) -> &'static str {
        match self {
            Projection::Q => "q",
            Projection::V => "v",
        }
    }
}

/// Name of a per-block adapter tensor: `vision.layers.{block}.{proj}.{leaf}` with `leaf` one of
/// `lora_a`, `lora_b`.
pub fn adapter_key(block: usize, proj: Projection, leaf: &str) -> String {
    format!("vision.layers.{block}.{}.{leaf}", proj.as_str())
}

/// Name of a block's gate logits: `vision.layers.{block}.gate_logits`.
pub fn gate_key(block: usize) -> String {
    format!("vision.layers.{block}.gate_logits")
}

/// CLIP's default prompt template.
pub const DEFAULT_TEMPLATE: &str = "a photo of a {}.";

/// Training method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Method {
    /// HA-LoRA + domain-invariant gates + MMD (the full method).
    Ahp,
    /// Head-aware LoRA only.
    HaLora,
    /// Standard LoRA on Q and V with the same parameter budget.
    Lora,
    /// Gates (+ MMD) only.
    Dig,
    /// No training.
    ZeroShot,
}

impl Method {
    /// Every method, baselines first: zero-shot, LoRA, HA-LoRA, DIG, AHP.
    pub const ALL: [Method; 5] = [
        Method::ZeroShot,
        Method::Lora,
        Method::HaLora,
        Method::Dig,
        Method::Ahp,
    ];

    /// The CLI / manifest spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Ahp => "ahp",
            Method::HaLora => "ha-lora",
            Method::Lora => "lora",
            Method::Dig => "dig",
            Method::ZeroShot => "zero-shot",
        }
    }
    /// Whether the method trains low-rank deltas.
    pub fn has_lora(self) -> bool {
        matches!(self, Method::Ahp | Method::HaLora | Method::Lora)
    }
    /// Whether the low-rank deltas are per head (HA-LoRA) rather than one group (LoRA).
    pub fn per_head_lora(self) -> bool {
        matches!(self, Method::Ahp | Method::HaLora)
    }
    /// Whether the method trains head gates (with the MMD loss).
    pub fn has_gates(self) -> bool {
        matches!(self, Method::Ahp | Method::Dig)
    }
}

impl std::str::FromStr for Method {
    type Err = String;

    /// Parses the CLI / manifest spelling (`ahp`, `ha-lora`, `lora`, `dig`, `zero-shot`).
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        Method::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown method `{s}` (expected one of {})",
                    Method::ALL.map(Method::as_str).join(", ")
                )
            })
    }
}

/// A weights file of the base checkpoint and its digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WeightFile {
    /// File name inside the checkpoint directory.
    pub name: String,
    /// Lowercase hex sha256 of the file.
    pub sha256: String,
}

/// The base checkpoint a run was trained on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaseModel {
    /// What the user passed (`--clip`): a directory or a repo id.
    pub location: String,
    /// The resolved checkpoint directory.
    pub dir: String,
    /// Weight files with their sha256.
    pub weights: Vec<WeightFile>,
}

/// Low-rank adapter layout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoraSpec {
    /// LoRA alpha; block `i`'s scaling is `alpha / ranks[i]`.
    pub alpha: f64,
    /// Rank per vision block (0 = no delta in that block).
    pub ranks: Vec<usize>,
    /// Projections carrying deltas.
    pub targets: Vec<Projection>,
    /// `true` for one delta per head (HA-LoRA), `false` for one per projection (LoRA).
    pub per_head: bool,
}

impl LoraSpec {
    /// The scaling of block `i` (`alpha / r_i`), or `None` for rank 0.
    pub fn scaling(&self, block: usize) -> Option<f64> {
        match self.ranks.get(block) {
            Some(&r) if r > 0 => Some(self.alpha / r as f64),
            _ => None,
        }
    }
}

/// How a run picks the checkpoint it keeps. Evaluations start after the first update, so a
/// trained method never keeps its untrained state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Selection {
    /// The evaluation with the best pooled accuracy on the sources' held-out split (DomainBed's
    /// training-domain validation; ties keep the earlier step).
    #[default]
    SourceVal,
    /// The last step.
    Last,
}

impl Selection {
    /// Every selection.
    pub const ALL: [Selection; 2] = [Selection::SourceVal, Selection::Last];

    /// The CLI / manifest spelling: `source-val` or `last`.
    pub fn as_str(self) -> &'static str {
        match self {
            Selection::SourceVal => "source-val",
            Selection::Last => "last",
        }
    }
}

impl std::str::FromStr for Selection {
    type Err = String;

    /// Parses `source-val` or `last`.
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        Selection::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| format!("unknown selection `{s}` (expected source-val or last)"))
    }
}

/// `run.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunManifest {
    /// [`FORMAT_VERSION`].
    pub format_version: u32,
    /// Unique id of the run.
    pub run_id: String,
    /// The base checkpoint.
    pub base: BaseModel,
    /// Class labels, in logit order.
    pub classes: Vec<String>,
    /// Prompt templates (one `{}` each); several are a prompt ensemble: the class embedding is
    /// the normalized mean of the templates' normalized embeddings. Older manifests hold one
    /// string under `template`.
    #[serde(alias = "template", deserialize_with = "one_or_many")]
    pub templates: Vec<String>,
    /// Training method.
    pub method: Method,
    /// Adapter layout (`None` for methods without LoRA).
    pub lora: Option<LoraSpec>,
    /// Whether `adapter.safetensors` has gate logits.
    pub gates: bool,
    /// All domains of the dataset.
    pub domains: Vec<String>,
    /// Domains held out as unseen targets.
    pub target_domains: Vec<String>,
    /// Seed of the in/out split of the source domains.
    pub split_seed: u64,
    /// Fraction of each source domain held out for validation.
    pub holdout_fraction: f64,
    /// The full training configuration, resolved (every derived setting filled in). Older
    /// manifests hold a subset under `hyperparameters`; what they lack reads as the default.
    #[serde(alias = "hyperparameters")]
    pub config: TrainConfig,
    /// Step of the checkpoint kept (by `config.selection`).
    pub best_step: u64,
    /// Its source-validation accuracy.
    pub best_source_val_acc: f64,
}

/// A list of strings, or (as older manifests wrote it) one string.
fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

/// The trimmed class labels: at least one, none empty, none twice. The error names the label
/// (by position when it is empty) so a command can prefix the flag it came from.
pub fn check_labels(labels: &[String]) -> Result<Vec<String>, String> {
    let trimmed: Vec<String> = labels.iter().map(|c| c.trim().to_string()).collect();
    if trimmed.is_empty() {
        return Err("give at least one class label".into());
    }
    if let Some(i) = trimmed.iter().position(String::is_empty) {
        return Err(format!(
            "label {} of {} is empty (in {:?})",
            i + 1,
            trimmed.len(),
            labels.join(",")
        ));
    }
    if let Some((_, dup)) = trimmed
        .iter()
        .enumerate()
        .find(|(i, l)| trimmed[..*i].contains(l))
    {
        return Err(format!("label `{dup}` is given twice"));
    }
    Ok(trimmed)
}

/// Checks prompt templates: at least one, each with exactly one `{}` and no line break (the
/// exported model's `ahp.template` metadata joins them with newlines).
pub fn check_templates(templates: &[String]) -> Result<(), String> {
    if templates.is_empty() {
        return Err("give at least one prompt template".into());
    }
    for t in templates {
        if t.matches("{}").count() != 1 {
            return Err(format!(
                "template `{t}` must contain exactly one `{{}}` placeholder"
            ));
        }
        if t.contains('\n') || t.contains('\r') {
            return Err(format!(
                "template `{}` contains a line break",
                t.escape_debug()
            ));
        }
    }
    Ok(())
}

impl RunManifest {
    /// Parses `run.json` text; `origin` names it in errors.
    pub fn from_json_str(text: &str, origin: &std::path::Path) -> crate::error::Result<Self> {
        let m: Self = serde_json::from_str(text).map_err(|e| crate::SpecError::Config {
            path: origin.to_path_buf(),
            message: e.to_string(),
        })?;
        if m.format_version != FORMAT_VERSION {
            return Err(crate::SpecError::Config {
                path: origin.to_path_buf(),
                message: format!(
                    "format_version {} is not supported (expected {FORMAT_VERSION})",
                    m.format_version
                ),
            });
        }
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_parse_their_own_spelling() {
        for m in Method::ALL {
            assert_eq!(m.as_str().parse::<Method>(), Ok(m));
        }
        let err = "ha_lora".parse::<Method>().expect_err("not a method");
        assert!(err.contains("ha_lora") && err.contains("ha-lora"), "{err}");
        for s in Selection::ALL {
            assert_eq!(s.as_str().parse::<Selection>(), Ok(s));
        }
        assert!("best".parse::<Selection>().is_err());
    }

    #[test]
    fn templates_are_checked_and_old_manifests_read() {
        assert!(check_templates(&["a photo of a {}.".into(), "art of {}".into()]).is_ok());
        let labels = check_labels(&[" dog".into(), "cat ".into()]).expect("valid labels");
        assert_eq!(labels, ["dog", "cat"]);
        assert!(check_labels(&[]).is_err());
        let e = check_labels(&["dog".into(), " ".into()]).expect_err("empty label");
        assert!(e.contains("label 2 of 2 is empty"), "{e}");
        let e = check_labels(&["dog".into(), "dog ".into()]).expect_err("duplicate");
        assert!(e.contains("`dog` is given twice"), "{e}");
        assert!(check_templates(&[]).is_err());
        let e = check_templates(&["no slot".into()]).expect_err("no placeholder");
        assert!(e.contains("no slot"), "{e}");
        assert!(check_templates(&["a {}\nb".into()]).is_err());
        #[derive(Deserialize)]
        struct T {
            #[serde(alias = "template", deserialize_with = "one_or_many")]
            templates: Vec<String>,
        }
        let old: T = serde_json::from_str(r#"{"template": "a {}."}"#).expect("old");
        assert_eq!(old.templates, vec!["a {}."]);
        let new: T = serde_json::from_str(r#"{"templates": ["a {}.", "b {}"]}"#).expect("new");
        assert_eq!(new.templates.len(), 2);
    }
}
