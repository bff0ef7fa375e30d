//! The training flags every command line flattens (`#[command(flatten)] train: TrainArgs`).
//! Every flag is optional and shows the default of [`TrainConfig::default`]; nothing here
//! declares a default of its own.

use std::path::PathBuf;

use clap::Args;

use super::{LoraRankRule, TrainConfig};
use crate::run::{Method, Selection};

fn d() -> TrainConfig {
    TrainConfig::default()
}

/// `what [default: value]`.
fn h(what: &str, default: impl std::fmt::Display) -> String {
    format!("{what} [default: {default}]")
}

/// The training settings as flags, plus `--config FILE`. [`TrainArgs::resolve`] gives the
/// run's [`TrainConfig`]: the defaults, then the file's values, then the flags given.
#[derive(Args, Debug, Clone, Default, PartialEq)]
#[command(next_help_heading = "Training (defaults, then --config FILE, then these flags)")]
pub struct TrainArgs {
    #[arg(
        long,
        value_name = "FILE",
        help = "Training configuration (JSON, keys as in run.json's `config`); flags given override it"
    )]
    config: Option<PathBuf>,
    #[arg(long, value_enum, help = h("Method (the baselines share the data path)", d().method.as_str()))]
    method: Option<Method>,
    #[arg(long, help = h("Optimizer steps", d().steps))]
    steps: Option<u64>,
    #[arg(long, help = h("Images per step, split evenly over the source domains", d().batch_size))]
    batch_size: Option<usize>,
    #[arg(long, help = h("Images per evaluation forward pass", d().eval_batch_size))]
    eval_batch_size: Option<usize>,
    #[arg(long, help = h("Peak learning rate of the LoRA factors", d().lr))]
    lr: Option<f64>,
    #[arg(long, help = h("Peak learning rate of the gate logits", d().gate_lr))]
    gate_lr: Option<f64>,
    #[arg(long, help = h("AdamW weight decay of the LoRA factors", d().weight_decay))]
    weight_decay: Option<f64>,
    #[arg(long, help = h("AdamW weight decay of the gate logits", d().gate_weight_decay))]
    gate_weight_decay: Option<f64>,
    #[arg(long, help = "Linear warmup steps [default: 10% of the steps]")]
    warmup_steps: Option<u64>,
    #[arg(long, help = h("Gradient-norm clip of the LoRA factors (their own group; 0 = off)", d().grad_clip))]
    grad_clip: Option<f64>,
    #[arg(long, help = h("Gradient-norm clip of the gate logits (their own group; 0 = off)", d().gate_grad_clip))]
    gate_grad_clip: Option<f64>,
    #[arg(long, help = h("Weight of the MMD loss (ahp and dig)", d().mmd_weight))]
    mmd_weight: Option<f64>,
    #[arg(
        long,
        alias = "rank",
        value_delimiter = ',',
        help = "Comma-separated HA-LoRA rank per block; one value applies to every block (--rank N is the same) [default: 8 in the last two blocks, 2 elsewhere]"
    )]
    ranks: Option<Vec<usize>>,
    #[arg(long, help = h("LoRA alpha: each delta is scaled by alpha / r with its own rank r (PEFT's convention, HA-LoRA and plain LoRA alike)", d().alpha))]
    alpha: Option<f64>,
    #[arg(long, value_enum, help = h("Plain LoRA's ranks: budget (HA-LoRA's parameter count, rank r(H+1)/2 per block) or as-given (the --ranks values)", d().lora_ranks.as_str()))]
    lora_ranks: Option<LoraRankRule>,
    #[arg(long, help = h("Seed of initialization, batches and augmentation", d().seed))]
    seed: Option<u64>,
    #[arg(long, help = "Seed of the sources' in/out split [default: --seed]")]
    split_seed: Option<u64>,
    #[arg(long, help = h("Held-out fraction of each source domain (model selection)", d().holdout_fraction))]
    holdout_fraction: Option<f64>,
    #[arg(long = "template", help = h("Prompt template with one `{}`; repeat for a prompt ensemble (the class embedding is the normalized mean over the templates)", &d().templates[0]))]
    templates: Vec<String>,
    #[arg(long, help = "Accept domains lacking some classes")]
    allow_missing_classes: bool,
    /// A command's own prompt (see [`Self::pin_templates`]): used unless `--config` or
    /// `--template` sets one.
    #[arg(skip)]
    pinned_templates: Vec<String>,
    #[arg(
        long,
        help = "Evaluate and checkpoint every this many steps; the first evaluation comes after that many updates [default: a quarter of the steps]"
    )]
    eval_every: Option<u64>,
    #[arg(long = "select", value_enum, help = h("Checkpoint to keep: source-val (best pooled accuracy on the sources' held-out split) or last", d().selection.as_str()))]
    selection: Option<Selection>,
    #[arg(long, help = h("Fewest held-out images every source domain needs for --select source-val", d().min_holdout))]
    min_holdout: Option<usize>,
}

/// Replaces `$field` of `$config` by the flag's value when the flag was given.
macro_rules! override_given {
    ($config:ident, $args:ident, $($field:ident),* $(,)?) => {
        $( if let Some(v) = &$args.$field { $config.$field = v.clone(); } )*
    };
}

impl TrainArgs {
    /// The run's configuration: [`TrainConfig::default`], then `--config FILE`, then every flag
    /// given; checked with [`TrainConfig::validate`].
    pub fn resolve(&self) -> Result<TrainConfig, crate::SpecError> {
        let mut c = match &self.config {
            Some(path) => TrainConfig::from_file(path)?,
            None => TrainConfig::default(),
        };
        let a = self;
        override_given!(
            c,
            a,
            method,
            steps,
            batch_size,
            eval_batch_size,
            lr,
            gate_lr,
            weight_decay,
            gate_weight_decay,
            grad_clip,
            gate_grad_clip,
            mmd_weight,
            alpha,
            lora_ranks,
            seed,
            holdout_fraction,
            selection,
            min_holdout,
        );
        for (field, given) in [
            (&mut c.warmup_steps, a.warmup_steps),
            (&mut c.split_seed, a.split_seed),
            (&mut c.eval_every, a.eval_every),
        ] {
            if given.is_some() {
                *field = given;
            }
        }
        if a.ranks.is_some() {
            c.ranks = a.ranks.clone();
        }
        if !a.pinned_templates.is_empty() && c.templates == TrainConfig::default().templates {
            c.templates = a.pinned_templates.clone();
        }
        if !a.templates.is_empty() {
            c.templates = a.templates.clone();
        }
        c.allow_missing_classes |= a.allow_missing_classes;
        c.validate()?;
        Ok(c)
    }

    /// The first of `flags` (among `method`, `seed`, `split-seed`, `select`) given on the
    /// command line: a command that sets these per run itself (`ahp-bench dg`) refuses them.
    pub fn first_given(&self, flags: &[&'static str]) -> Option<&'static str> {
        flags.iter().copied().find(|f| match *f {
            "method" => self.method.is_some(),
            "seed" => self.seed.is_some(),
            "split-seed" => self.split_seed.is_some(),
            "select" => self.selection.is_some(),
            _ => false,
        })
    }

    /// Whether `--steps` was given (a command may derive the steps from epochs otherwise).
    pub fn steps_given(&self) -> bool {
        self.steps.is_some()
    }

    /// Sets a flag's value as if it had been given, unless it was: how a command pins a
    /// setting of its own recipe (the demo's seed) while its user can still override it.
    pub fn pin_seed(&mut self, seed: u64) {
        self.seed.get_or_insert(seed);
    }

    /// Like [`Self::pin_seed`], for the split seed.
    pub fn pin_split_seed(&mut self, seed: u64) {
        self.split_seed.get_or_insert(seed);
    }

    /// Pins the prompt of a command's recipe (the emoji CLIP's `an emoji of a {}.`): it
    /// replaces the default templates, while a `--config` file that sets templates, and
    /// `--template`, still win.
    pub fn pin_templates(&mut self, templates: &[&str]) {
        self.pinned_templates = templates.iter().map(|t| t.to_string()).collect();
    }

    /// Like [`Self::pin_seed`], for the steps (`ahp-train --epochs`).
    pub fn pin_steps(&mut self, steps: u64) {
        self.steps.get_or_insert(steps);
    }
}
