//! What a run is trained on: the loaded model, the split of the data, the zero-shot classifier
//! and the trainable adapters, built once from the options; and the evaluation of any adapter
//! on the split.

use std::path::Path;

use ahp_data::{DomainBedDataset, Sample, ScanOptions, Split, SplitOptions};
use ahp_model::{LoadedClip, ZeroShotClassifier};
use ahp_spec::run::{Method, Selection, WeightFile};
use sha2::Digest;

use super::TrainOptions;
use crate::error::{Result, TrainError};
use crate::eval::{evaluate_samples, DomainAccuracy, Outcomes};
use crate::trainable::{default_ranks, AdapterSpec, Trainable};

/// Names and sha256 of the base model's weight files (hashed once per run).
pub(super) fn base_weight_files(clip: &LoadedClip) -> Result<Vec<WeightFile>> {
    clip.checkpoint
        .weight_files
        .iter()
        .map(|p| {
            Ok(WeightFile {
                name: p
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                sha256: ahp_spec::files::sha256_file(p)?,
            })
        })
        .collect()
}

/// The loaded model, data split and classifier of a run, with its (resolved) options.
pub(super) struct Context {
    pub(super) clip: LoadedClip,
    pub(super) split: Split,
    pub(super) classifier: ZeroShotClassifier,
    pub(super) opts: TrainOptions,
    /// Names and sha256 of the base model's weight files.
    pub(super) base_weights: Vec<WeightFile>,
}

impl Context {
    fn outcomes(&self, hooks: &[ahp_model::HeadHooks], samples: &[Sample]) -> Result<Outcomes> {
        evaluate_samples(
            &self.clip.model,
            &self.classifier,
            hooks,
            samples,
            self.opts.config.eval_batch_size,
            &self.clip.preprocess,
            &self.opts.device,
        )
    }

    /// Accuracy rows of the requested splits (`in`, `out`, `target`) and the per-image outcomes
    /// of the target images.
    pub(super) fn evaluate(
        &self,
        hooks: &[ahp_model::HeadHooks],
        splits: &[&str],
    ) -> Result<(Vec<DomainAccuracy>, Outcomes)> {
        let mut rows = Vec::new();
        let mut push = |name: &str, split: &str, o: &Outcomes| {
            rows.push(DomainAccuracy {
                domain: name.to_string(),
                split: split.to_string(),
                images: o.evaluated(),
                correct: o.correct(),
                skipped: o.skipped(),
            })
        };
        for s in &self.split.sources {
            for (split, samples) in [("in", &s.in_split), ("out", &s.out_split)] {
                if splits.contains(&split) {
                    push(&s.name, split, &self.outcomes(hooks, samples)?);
                }
            }
        }
        let mut target = Outcomes::default();
        if splits.contains(&"target") {
            for t in &self.split.targets {
                let o = self.outcomes(hooks, &t.samples)?;
                push(&t.name, "target", &o);
                target.0.extend(o.0);
            }
        }
        Ok((rows, target))
    }
}

/// sha256 over every sample of the split: its split, path relative to the dataset root, labels
/// and file size. A resumed run refuses a data set that gained, lost or changed an image.
pub(super) fn data_digest(root: &Path, split: &Split) -> Result<String> {
    let mut hasher = sha2::Sha256::new();
    let mut add = |tag: &str, samples: &[Sample]| -> Result<()> {
        for s in samples {
            let size = std::fs::metadata(&s.path)
                .map_err(|e| TrainError::run_dir(&s.path, format!("cannot read: {e}")))?
                .len();
            let rel = s.path.strip_prefix(root).unwrap_or(&s.path);
            let line = format!(
                "{tag}\t{}\t{}\t{}\t{size}\n",
                rel.display(),
                s.domain,
                s.class
            );
            hasher.update(line.as_bytes());
        }
        Ok(())
    };
    for s in &split.sources {
        add("in", &s.in_split)?;
        add("out", &s.out_split)?;
    }
    for t in &split.targets {
        add("target", &t.samples)?;
    }
    Ok(format!("{:x}", hasher.finalize()))
}

/// Source-validation selection needs a held-out split that can rank checkpoints: every source
/// domain must hold at least `min_holdout` images out.
pub(super) fn check_holdout(opts: &TrainOptions, split: &Split) -> Result<()> {
    if opts.config.method == Method::ZeroShot || opts.config.selection != Selection::SourceVal {
        return Ok(());
    }
    for s in &split.sources {
        if s.out_split.len() < opts.config.min_holdout.max(1) {
            return Err(TrainError::option(
                "holdout-fraction",
                format!(
                    "source domain `{}` holds out {} of its {} images ({}), fewer than the {} \
                     that selection by source validation needs; raise --holdout-fraction, \
                     lower --min-holdout, or keep the last step with --select last",
                    s.name,
                    s.out_split.len(),
                    s.out_split.len() + s.in_split.len(),
                    opts.config.holdout_fraction,
                    opts.config.min_holdout.max(1)
                ),
            ));
        }
    }
    Ok(())
}

/// Loads the model and data and builds the classifier and the trainable adapters.
pub(super) fn prepare(opts: &TrainOptions) -> Result<(Context, Trainable, AdapterSpec)> {
    let device = opts.device.clone();
    let clip = LoadedClip::load(&opts.clip, &device)?;
    let vision = clip.model.config().vision_config.clone();
    let dataset = DomainBedDataset::scan(
        &opts.data,
        &ScanOptions {
            allow_missing_classes: opts.config.allow_missing_classes,
        },
    )?;
    let split = dataset.split(&SplitOptions {
        target_domains: opts.target_domains.clone(),
        holdout_fraction: opts.config.holdout_fraction,
        seed: opts.config.split_seed(),
    })?;
    if opts.config.batch_size < split.sources.len() {
        return Err(TrainError::option(
            "batch-size",
            format!(
                "{} is smaller than the number of source domains ({}); every batch must hold every domain",
                opts.config.batch_size,
                split.sources.len()
            ),
        ));
    }
    check_holdout(opts, &split)?;
    let classifier = ZeroShotClassifier::with_templates(
        &clip.model,
        &clip.tokenizer,
        &split.classes,
        &opts.config.templates,
    )?;
    let ranks = match &opts.config.ranks {
        None => default_ranks(vision.num_hidden_layers),
        Some(r) if r.len() == 1 => vec![r[0]; vision.num_hidden_layers],
        Some(r) => r.clone(),
    };
    let layout = AdapterSpec::with_rule(
        opts.config.method,
        &ranks,
        opts.config.alpha,
        &vision,
        opts.config.lora_ranks,
    )?;
    let trainable = Trainable::init(layout.clone(), &vision, opts.config.seed, &device)?;
    let base_weights = base_weight_files(&clip)?;
    let ctx = Context {
        clip,
        split,
        classifier,
        opts: opts.clone(),
        base_weights,
    };
    Ok((ctx, trainable, layout))
}
