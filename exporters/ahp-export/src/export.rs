//! The export pipeline: load a zero-shot base or a run directory ([`Prepared::load`]), fold,
//! build the ONNX graph, write it to a temporary file next to the destination, validate it
//! with tract against the candle model with its hooks, and only then rename it into place
//! ([`export`]). On any failure nothing is left at the destination.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use ahp_model::checkpoint::Checkpoint;
use ahp_model::{l2_normalize, Adapter, ClipModel, ClipTokenizer, HeadHooks, ZeroShotClassifier};
use ahp_spec::files::TempFile;
use ahp_spec::onnx_names::{meta, OUTPUT_IMAGE_EMBEDS, OUTPUT_LOGITS};
use ahp_spec::run::{Method, RunManifest, WeightFile, ADAPTER_FILE, MANIFEST_FILE};
use ahp_spec::{ClipConfig, PreprocessConfig};
use candle_core::{DType, Device, Tensor};
use onnx_protobuf::ModelProto;

use crate::card::{self, CardInput};
use crate::error::{ExportError, Result};
use crate::fold;
use crate::onnx::{self, GraphSummary, OnnxOptions, VisionGraph};
use crate::prune::{self, PrunePlan};
use crate::triton::{self, EntryFiles, TritonModel, TritonOptions};
use crate::validate::{self, Expected, Validation, ONNX_FP16_VS_CANDLE, ONNX_VS_CANDLE};

/// Metadata key of the heads removed by `--prune-heads` (JSON object: block → head indices).
pub const META_PRUNED_HEADS: &str = ahp_spec::onnx_names::meta::PRUNED_HEADS;

/// What to export.
#[derive(Debug, Clone)]
pub enum Source {
    /// A plain CLIP checkpoint with a zero-shot classifier.
    ZeroShot {
        /// Checkpoint directory or cached Hugging Face repo id.
        clip: String,
        /// Class labels, in logit order.
        labels: Vec<String>,
        /// Prompt templates, one `{}` each (several: a prompt ensemble).
        templates: Vec<String>,
    },
    /// A training run directory (`run.json` + `adapter.safetensors`).
    Run {
        /// The run directory.
        run_dir: PathBuf,
        /// Base checkpoint to use instead of the one `run.json` names.
        base: Option<String>,
        /// Check the base weights against the sha256 digests in `run.json`.
        verify_base_sha256: bool,
    },
}

/// A loaded, folded model ready to be written.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The base model's config.
    pub config: ClipConfig,
    /// Image preprocessing of the base checkpoint.
    pub preprocess: PreprocessConfig,
    /// Class labels, in logit order.
    pub labels: Vec<String>,
    /// Prompt templates (several: a prompt ensemble).
    pub templates: Vec<String>,
    /// Method (`zero-shot` for a plain checkpoint).
    pub method: Method,
    /// Run id (`None` for zero-shot).
    pub run_id: Option<String>,
    /// The base checkpoint as given (directory or repo id).
    pub base_location: String,
    /// The base checkpoint directory.
    pub base_dir: PathBuf,
    /// The base weight files and their sha256.
    pub base_weights: Vec<WeightFile>,
    /// The plain base model (the reference runs it with [`Prepared::hooks`]).
    pub base_model: ClipModel,
    /// Adapter hooks per vision block (empty for zero-shot).
    pub hooks: Vec<HeadHooks>,
    /// Class embeddings `[C, P]` (normalized).
    pub text_embeds: Tensor,
    /// Raw logit scale.
    pub logit_scale: f32,
    /// Folded plain weights (Hugging Face names).
    pub folded: HashMap<String, Tensor>,
    /// Folded classifier `[C, P]`.
    pub classifier: Tensor,
    /// Gate values per block (`None` where the block has no gates).
    pub gates: Vec<Option<Vec<f32>>>,
}

fn resolve_base(manifest: &RunManifest, run_dir: &Path, base: Option<&str>) -> Result<Checkpoint> {
    if let Some(b) = base {
        return Ok(Checkpoint::resolve(b)?);
    }
    let dir = Path::new(&manifest.base.dir);
    for candidate in [dir.to_path_buf(), run_dir.join(dir)] {
        if !manifest.base.dir.is_empty() && candidate.join("config.json").is_file() {
            return Ok(Checkpoint::from_dir(&candidate)?);
        }
    }
    Checkpoint::resolve(&manifest.base.location).map_err(|e| {
        ExportError::file(
            run_dir.join(MANIFEST_FILE),
            format!(
                "base checkpoint not found: base.dir `{}` is not a checkpoint directory and \
                 base.location `{}` does not resolve ({e}); pass --base",
                manifest.base.dir, manifest.base.location
            ),
        )
    })
}

fn hash_weights(checkpoint: &Checkpoint) -> Result<Vec<WeightFile>> {
    checkpoint
        .weight_files
        .iter()
        .map(|f| {
            Ok(WeightFile {
                name: f
                    .strip_prefix(&checkpoint.dir)
                    .unwrap_or(f)
                    .display()
                    .to_string(),
                sha256: fold::sha256_file(f)?,
            })
        })
        .collect()
}

fn verify_sha256(checkpoint: &Checkpoint, recorded: &[WeightFile], manifest: &Path) -> Result<()> {
    for wf in recorded {
        let path = checkpoint.dir.join(&wf.name);
        if !path.is_file() {
            return Err(ExportError::file(
                &path,
                format!(
                    "base weight file listed in {} is missing",
                    manifest.display()
                ),
            ));
        }
        let got = fold::sha256_file(&path)?;
        if !got.eq_ignore_ascii_case(&wf.sha256) {
            return Err(ExportError::file(
                &path,
                format!(
                    "sha256 {got} does not match {} recorded in {} (wrong base checkpoint? \
                     pass --base, or --skip-base-check to export anyway)",
                    wf.sha256,
                    manifest.display()
                ),
            ));
        }
    }
    Ok(())
}

/// The base weight files of a run: those `run.json` records (checked against `checkpoint`
/// when `verify`), or `checkpoint`'s own digests when it records none.
fn run_base_weights(
    manifest: &RunManifest,
    run_dir: &Path,
    checkpoint: &Checkpoint,
    verify: bool,
) -> Result<Vec<WeightFile>> {
    if manifest.base.weights.is_empty() {
        return hash_weights(checkpoint);
    }
    if verify {
        let manifest_path = run_dir.join(MANIFEST_FILE);
        verify_sha256(checkpoint, &manifest.base.weights, &manifest_path)?;
    }
    Ok(manifest.base.weights.clone())
}

impl Prepared {
    /// Loads and folds `source` on the CPU.
    pub fn load(source: &Source) -> Result<Self> {
        match source {
            Source::ZeroShot {
                clip,
                labels,
                templates,
            } => Self::load_zero_shot(clip, labels, templates),
            Source::Run {
                run_dir,
                base,
                verify_base_sha256,
            } => Self::load_run(run_dir, base.as_deref(), *verify_base_sha256),
        }
    }

    /// A plain checkpoint with the zero-shot classifier of `labels` and `templates`.
    fn load_zero_shot(clip: &str, labels: &[String], templates: &[String]) -> Result<Self> {
        let checkpoint = Checkpoint::resolve(clip)?;
        let base = fold::load_weights(&checkpoint.weight_files)?;
        let model = fold::build_model(&base, &checkpoint.config, &Device::Cpu)?;
        let tokenizer = ClipTokenizer::from_dir(&checkpoint.dir, &checkpoint.config.text_config)?;
        ahp_spec::run::check_templates(templates).map_err(ExportError::Invalid)?;
        let zs = ZeroShotClassifier::with_templates(&model, &tokenizer, labels, templates)?;
        let base_weights = hash_weights(&checkpoint)?;
        Self::assemble(
            &checkpoint,
            clip.to_string(),
            base_weights,
            base,
            model,
            Vec::new(),
            zs.class_embeds().clone(),
            zs.logit_scale(),
            labels.to_vec(),
            templates.to_vec(),
            Method::ZeroShot,
            None,
        )
    }

    /// A run directory's adapter on its base checkpoint (`base` overrides the one `run.json`
    /// names; `verify_base_sha256` checks its weights against the recorded digests).
    fn load_run(run_dir: &Path, base: Option<&str>, verify_base_sha256: bool) -> Result<Self> {
        if !run_dir.is_dir() {
            return Err(ExportError::file(run_dir, "run directory not found"));
        }
        let device = Device::Cpu;
        let manifest = ahp_model::read_manifest(run_dir)?;
        let checkpoint = resolve_base(&manifest, run_dir, base)?;
        let base_weights = run_base_weights(&manifest, run_dir, &checkpoint, verify_base_sha256)?;
        let adapter = Adapter::load(
            &run_dir.join(ADAPTER_FILE),
            &manifest,
            &checkpoint.config,
            &device,
        )?;
        let weights = fold::load_weights(&checkpoint.weight_files)?;
        let model = fold::build_model(&weights, &checkpoint.config, &device)?;
        let logit_scale = adapter
            .logit_scale
            .to_dtype(DType::F32)?
            .to_scalar::<f32>()?;
        Self::assemble(
            &checkpoint,
            base.map_or_else(|| manifest.base.location.clone(), str::to_string),
            base_weights,
            weights,
            model,
            adapter.hooks,
            adapter.text_embeds,
            logit_scale,
            manifest.classes.clone(),
            manifest.templates.clone(),
            manifest.method,
            Some(manifest.run_id.clone()),
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn assemble(
        checkpoint: &Checkpoint,
        base_location: String,
        base_weights: Vec<WeightFile>,
        base: HashMap<String, Tensor>,
        base_model: ClipModel,
        hooks: Vec<HeadHooks>,
        text_embeds: Tensor,
        logit_scale: f32,
        labels: Vec<String>,
        templates: Vec<String>,
        method: Method,
        run_id: Option<String>,
    ) -> Result<Self> {
        let config = checkpoint.config.clone();
        let folded = fold::fold_hooks(&base, &hooks, &config)?;
        let classifier = fold::classifier_matrix(&text_embeds, logit_scale)?;
        if classifier.dim(0)? != labels.len() {
            return Err(ExportError::Invalid(format!(
                "{} labels for {} class embeddings",
                labels.len(),
                classifier.dim(0)?
            )));
        }
        let gates = if hooks.is_empty() {
            vec![None; config.vision_config.num_hidden_layers]
        } else {
            fold::gate_values(&hooks)?
        };
        Ok(Self {
            preprocess: checkpoint.preprocess_config()?,
            config,
            labels,
            templates,
            method,
            run_id,
            base_location,
            base_dir: checkpoint.dir.clone(),
            base_weights,
            base_model,
            hooks,
            text_embeds: l2_normalize(&text_embeds.to_dtype(DType::F32)?)?,
            logit_scale,
            folded,
            classifier,
            gates,
        })
    }

    /// The plain model built from the folded weights.
    pub fn folded_model(&self) -> Result<ClipModel> {
        Ok(fold::build_model(&self.folded, &self.config, &Device::Cpu)?)
    }

    fn classifier_head(&self) -> Result<ZeroShotClassifier> {
        Ok(ZeroShotClassifier::from_parts(
            self.labels.clone(),
            self.templates.clone(),
            &self.text_embeds,
            self.logit_scale,
        )?)
    }

    /// `(logits, image_embeds)` of `model` run with `hooks` (normalized embeddings).
    pub fn outputs_of(
        &self,
        model: &ClipModel,
        hooks: &[HeadHooks],
        pixels: &Tensor,
    ) -> Result<(Tensor, Tensor)> {
        let embeds = model.image_features(pixels, hooks, false)?.embeds;
        let logits = self.classifier_head()?.logits(&embeds)?;
        Ok((logits, l2_normalize(&embeds)?))
    }

    /// The reference `(logits, image_embeds)`: the base candle model with the adapter hooks.
    pub fn reference(&self, pixels: &Tensor) -> Result<(Tensor, Tensor)> {
        self.outputs_of(&self.base_model, &self.hooks, pixels)
    }

    /// Deterministic validation pixels for this model.
    pub fn seeded_pixels(&self, batch: usize, seed: u64) -> Result<Tensor> {
        let v = &self.config.vision_config;
        validate::seeded_pixels(
            batch,
            v.num_channels,
            v.image_size,
            &self.preprocess.mean,
            &self.preprocess.std,
            seed,
        )
    }

    /// The gate values as the `ahp.gates` JSON object (`{"0": [...], ...}`; `{}` without gates).
    pub fn gates_json(&self) -> String {
        let map: BTreeMap<String, &Vec<f32>> = self
            .gates
            .iter()
            .enumerate()
            .filter_map(|(i, g)| g.as_ref().map(|g| (i.to_string(), g)))
            .collect();
        let map: serde_json::Map<String, serde_json::Value> = map
            .into_iter()
            .map(|(k, v)| (k, serde_json::json!(v)))
            .collect();
        serde_json::Value::Object(map).to_string()
    }

    /// The `ahp.*` metadata properties.
    pub fn metadata(&self, plan: Option<&PrunePlan>) -> Vec<(String, String)> {
        let source = serde_json::json!({
            "base": self.base_location,
            "weights": self.base_weights,
            "run_id": self.run_id,
        });
        let mut m = vec![
            (meta::LABELS, serde_json::json!(self.labels).to_string()),
            (
                meta::IMAGE_SIZE,
                self.config.vision_config.image_size.to_string(),
            ),
            (
                meta::MEAN,
                serde_json::json!(self.preprocess.mean).to_string(),
            ),
            (
                meta::STD,
                serde_json::json!(self.preprocess.std).to_string(),
            ),
            (meta::RESIZE, self.preprocess.resize_rule()),
            (meta::TEMPLATE, self.templates.join("\n")),
            (meta::METHOD, self.method.as_str().to_string()),
            (meta::SOURCE, source.to_string()),
            (meta::GATES, self.gates_json()),
        ];
        if let Some(plan) = plan {
            let removed: serde_json::Map<String, serde_json::Value> = plan
                .removed
                .iter()
                .enumerate()
                .map(|(i, r)| (i.to_string(), serde_json::json!(r)))
                .collect();
            m.push((
                META_PRUNED_HEADS,
                serde_json::json!({"threshold": plan.threshold, "removed": removed}).to_string(),
            ));
        }
        m.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
    }
}

/// How to export.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    /// Graph options (opset, fp16).
    pub onnx: OnnxOptions,
    /// Validate with tract before moving the file into place.
    pub verify: bool,
    /// Remove heads whose gate is `<=` this threshold.
    pub prune_threshold: Option<f32>,
    /// Allow pruning every head of a block (its attention then reduces to `out_proj`'s bias;
    /// refused by default).
    pub prune_empty_blocks: bool,
    /// Images in the validation batch (at least 2).
    pub validation_batch: usize,
    /// Seed of the validation pixels.
    pub seed: u64,
    /// Also write a Triton model repository entry.
    pub triton: Option<TritonOptions>,
}

impl Default for ExportOptions {
    fn default() -> Self {
        Self {
            onnx: OnnxOptions::default(),
            verify: true,
            prune_threshold: None,
            prune_empty_blocks: false,
            validation_batch: 2,
            seed: 0x5eed,
            triton: None,
        }
    }
}

/// Head pruning's effect.
#[derive(Debug, Clone, PartialEq)]
pub struct PruneReport {
    /// The plan.
    pub plan: PrunePlan,
    /// FLOPs per image before pruning.
    pub flops_before: u64,
    /// FLOPs per image after pruning.
    pub flops_after: u64,
    /// Max |pruned - unpruned adapted| per output on the validation batch (when verified).
    pub diff_vs_unpruned: Vec<(String, f32)>,
}

/// What [`export`] did.
#[derive(Debug, Clone)]
pub struct ExportSummary {
    /// Where the model was written.
    pub path: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
    /// Graph counts.
    pub graph: GraphSummary,
    /// The validation (`None` with `verify: false`).
    pub validation: Option<Validation>,
    /// Pruning (`None` without a threshold).
    pub pruning: Option<PruneReport>,
    /// The Triton model directory, if one was written.
    pub triton_dir: Option<PathBuf>,
}

/// Builds, writes, validates and moves the model to `output`. On failure `output` is not
/// created (an existing file there is left untouched) and the temporary file is removed.
pub fn export(
    prepared: &Prepared,
    output: &Path,
    options: &ExportOptions,
) -> Result<ExportSummary> {
    options.onnx.check()?;
    if let Some(t) = &options.triton {
        t.check()?;
    }
    let plan = prune_plan(prepared, options)?;
    let model = build_graph(prepared, plan.as_ref(), &options.onnx)?;
    let tmp = TempFile::next_to(output)?;
    let bytes = onnx::write_model(&model, tmp.path())?;
    let mut pruning = plan.map(|plan| prune_report(prepared, plan));
    let validation = if options.verify {
        Some(validate_export(
            prepared,
            tmp.path(),
            output,
            options,
            pruning.as_mut(),
        )?)
    } else {
        None
    };
    let triton_dir = match &options.triton {
        Some(t) => {
            let card = card::model_card(CardInput {
                prepared,
                options,
                validation: validation.as_ref(),
                pruning: pruning.as_ref(),
            });
            Some(write_triton(prepared, t, &card, tmp.path())?)
        }
        None => None,
    };
    tmp.persist()?;
    Ok(ExportSummary {
        path: output.to_path_buf(),
        bytes,
        graph: onnx::summarize(&model),
        validation,
        pruning,
        triton_dir,
    })
}

/// The heads to remove with `--prune-heads` (`None` without a threshold); a plan that empties
/// a block is refused unless `prune_empty_blocks`.
fn prune_plan(prepared: &Prepared, options: &ExportOptions) -> Result<Option<PrunePlan>> {
    let nh = prepared.config.vision_config.num_attention_heads;
    let plan = options
        .prune_threshold
        .map(|t| prune::plan(&prepared.gates, nh, t))
        .transpose()?;
    if let Some(p) = &plan {
        if !options.prune_empty_blocks {
            p.check_no_empty_block()?;
        }
    }
    Ok(plan)
}

/// The ONNX model of the folded weights (without the heads `plan` removes) with its metadata.
fn build_graph(
    prepared: &Prepared,
    plan: Option<&PrunePlan>,
    options: &OnnxOptions,
) -> Result<ModelProto> {
    onnx::build_model(
        &VisionGraph {
            config: &prepared.config,
            weights: &prepared.folded,
            classifier: &prepared.classifier,
            kept_heads: plan.map(|p| p.kept.as_slice()),
        },
        &prepared.metadata(plan),
        options,
    )
}

/// The FLOPs before and after `plan` (the differences are filled in by the validation).
fn prune_report(prepared: &Prepared, plan: PrunePlan) -> PruneReport {
    let cfg = &prepared.config;
    let nh = cfg.vision_config.num_attention_heads;
    let classes = prepared.labels.len();
    PruneReport {
        flops_before: prune::vision_flops(
            cfg,
            &vec![nh; cfg.vision_config.num_hidden_layers],
            classes,
        ),
        flops_after: prune::vision_flops(cfg, &plan.heads_per_block(), classes),
        plan,
        diff_vs_unpruned: Vec::new(),
    }
}

/// Runs the file at `written` with tract and compares it with the candle reference (the
/// masked model when pruning, whose report gets the differences to the unpruned model);
/// errors name `output`.
fn validate_export(
    prepared: &Prepared,
    written: &Path,
    output: &Path,
    options: &ExportOptions,
    pruning: Option<&mut PruneReport>,
) -> Result<Validation> {
    let pixels = prepared.seeded_pixels(options.validation_batch.max(2), options.seed)?;
    let adapted = prepared.reference(&pixels)?;
    let reference = match &pruning {
        Some(p) => pruned_reference(prepared, &p.plan, &pixels)?,
        None => adapted.clone(),
    };
    let expected = expected_outputs(prepared, reference, options.onnx.fp16);
    let actual = validate::run_tract(written, &pixels)?;
    let v = validate::compare(output, &actual, &expected)?;
    if let Some(p) = pruning {
        for ((name, t), r) in actual.iter().zip([&adapted.0, &adapted.1]) {
            p.diff_vs_unpruned
                .push((name.clone(), validate::max_abs_diff(t, r)?));
        }
    }
    Ok(v)
}

/// `(logits, image_embeds)` of the folded model with the heads of `plan` masked out.
fn pruned_reference(
    prepared: &Prepared,
    plan: &PrunePlan,
    pixels: &Tensor,
) -> Result<(Tensor, Tensor)> {
    let cfg = &prepared.config;
    let masked = prune::mask_pruned_heads(&prepared.folded, cfg, plan)?;
    let masked = fold::build_model(&masked, cfg, &Device::Cpu)?;
    prepared.outputs_of(&masked, &[], pixels)
}

/// The reference outputs with their tolerances (the logits' scaled by `exp(logit_scale)`).
fn expected_outputs(prepared: &Prepared, reference: (Tensor, Tensor), fp16: bool) -> [Expected; 2] {
    let tol = if fp16 {
        ONNX_FP16_VS_CANDLE
    } else {
        ONNX_VS_CANDLE
    };
    [
        Expected {
            name: OUTPUT_LOGITS.into(),
            tensor: reference.0,
            tolerance: tol * f64::from(prepared.logit_scale).exp().max(1.0) as f32,
        },
        Expected {
            name: OUTPUT_IMAGE_EMBEDS.into(),
            tensor: reference.1,
            tolerance: tol,
        },
    ]
}

/// Writes the Triton model repository entry of `t` for the model at `model`.
fn write_triton(
    prepared: &Prepared,
    t: &TritonOptions,
    card: &str,
    model: &Path,
) -> Result<PathBuf> {
    let cfg = &prepared.config;
    let v = &cfg.vision_config;
    let entry = TritonModel {
        channels: v.num_channels,
        image_size: v.image_size,
        classes: prepared.labels.len(),
        projection_dim: cfg.projection_dim,
    };
    let files = EntryFiles {
        labels: &prepared.labels,
        card,
    };
    triton::write_repository(model, &entry, t, files)
}
