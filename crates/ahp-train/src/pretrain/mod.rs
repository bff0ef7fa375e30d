//! Contrastive pretraining of a small CLIP from scratch, written as a Hugging Face checkpoint
//! (`config.json`, `model.safetensors`, `tokenizer.json`, `tokenizer_config.json`,
//! `preprocessor_config.json`) that loads through exactly the code path of real checkpoints.
//!
//! Two sources ([`source::PretrainSource`]): the synthetic multi-domain generator (the fixed
//! caption set `styles × classes`, "a pencil sketch of a star."; images rendered fresh every
//! step) and an image–caption tree of emoji artwork (`ahp-data emoji --pretraining`; captions
//! from emojibase labels and tags, strong augmentation, every concept drawn twice per batch by
//! two designers). The loss is CLIP's symmetric InfoNCE over the batch's images and the step's
//! captions, each caption once: image → caption is a softmax over the captions; caption →
//! image a softmax over the batch's images with the target spread uniformly over the images of
//! that caption, so images sharing a caption are positives of each other, never negatives.
//!
//! Long runs are resumable: the state is saved every `save_every` steps ([`resume`]) and the
//! same command run again continues from it, ending with the same weights.

mod checkpoint;
mod emoji;
mod init;
mod log;
mod loss;
mod resume;
mod source;
mod synthetic;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use ahp_data::{AugmentConfig, ColorJitter};
use ahp_model::{pixel_batch, ClipModel, ClipTokenizer, LoadedClip, TokenBatch};
use ahp_spec::PreprocessConfig;
use candle_core::{DType, Device, Tensor, Var, D};
use candle_nn::{VarBuilder, VarMap};
use serde::Serialize;

pub use checkpoint::{hf_config_json, tokenizer_json, WordSplitter, BOS, EOS, UNK};
pub use log::LogLine;
pub use loss::{contrastive_loss, decays};
pub use resume::STATE_FILE;
pub use synthetic::style_phrase;

use crate::error::{Result, TrainError};
use crate::optim::{clip_grad_norm, lr_at, AdamW, AdamWConfig};
use log::Window;
use source::{Prefetch, PretrainSource};

/// The prompt template of the emoji captions, and so of the emoji zero-shot report: fixed when
/// the captions were designed, before any model existed (never chosen by an accuracy).
pub const EMOJI_TEMPLATE: &str = "an emoji of a {}.";

/// An image–caption tree to pretrain on, and how its captions and images are drawn.
#[derive(Debug, Clone, PartialEq)]
pub struct CaptionOptions {
    /// The tree (`ahp-data emoji --pretraining --out DIR`).
    pub tree: PathBuf,
    /// A benchmark tree of designers the model never sees (`ahp-data emoji --out DIR`), for the
    /// zero-shot report only.
    pub benchmark: Option<PathBuf>,
    /// Caption template around an emoji's label; also the zero-shot prompt.
    pub template: String,
    /// Probability that a caption also lists some of the emoji's tags.
    pub tag_probability: f64,
    /// Random resized crop (no flip by default: a flipped arrow is another emoji).
    pub crop: AugmentConfig,
    /// Colour jitter and grayscale.
    pub jitter: ColorJitter,
}

impl CaptionOptions {
    /// The defaults for the tree at `tree`: [`EMOJI_TEMPLATE`], tags in half the captions,
    /// crops of 40–100% of the area, no flip, [`ColorJitter::default`].
    pub fn new(tree: &Path) -> Self {
        Self {
            tree: tree.to_path_buf(),
            benchmark: None,
            template: EMOJI_TEMPLATE.to_string(),
            tag_probability: 0.5,
            crop: AugmentConfig {
                scale: (0.4, 1.0),
                flip_probability: 0.0,
                ..AugmentConfig::default()
            },
            jitter: ColorJitter::default(),
        }
    }
}

/// Pretraining settings.
#[derive(Debug, Clone)]
pub struct PretrainOptions {
    /// Output checkpoint directory.
    pub out: PathBuf,
    /// Optimizer steps.
    pub steps: u64,
    /// Images per step.
    pub batch_size: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Linear warmup steps (then cosine decay to 0).
    pub warmup_steps: u64,
    /// AdamW weight decay of the weight matrices (see [`decays`]).
    pub weight_decay: f64,
    /// Gradient-norm clipping (0 = off).
    pub max_grad_norm: f64,
    /// Seed of initialization and data.
    pub seed: u64,
    /// Number of object classes (the first of the generator's shapes) of the synthetic source.
    pub classes: usize,
    /// Pretrain on this image–caption tree instead of the synthetic generator.
    pub captions: Option<CaptionOptions>,
    /// Image side and patch side.
    pub image_size: usize,
    /// Patch side.
    pub patch_size: usize,
    /// Vision width, blocks, heads.
    pub vision: (usize, usize, usize),
    /// Text width, blocks, heads.
    pub text: (usize, usize, usize),
    /// Joint embedding size.
    pub projection_dim: usize,
    /// Images per (domain, class) in the final zero-shot evaluation.
    pub eval_per_class: usize,
    /// Show a progress bar.
    pub progress: bool,
    /// Print training statistics every this many steps (0 = never).
    pub log_every: u64,
    /// Save the resumable state every this many steps (0 = never).
    pub save_every: u64,
    /// Stop before this step, saving the resumable state, without writing the checkpoint (the
    /// same options without it continue): splits a long run across sessions.
    pub pause_at: Option<u64>,
}

impl Default for PretrainOptions {
    fn default() -> Self {
        Self {
            out: PathBuf::from("models/ahp-synth-clip"),
            steps: 2000,
            batch_size: 64,
            lr: 1e-3,
            warmup_steps: 100,
            weight_decay: 0.05,
            max_grad_norm: 1.0,
            seed: 0,
            classes: 8,
            captions: None,
            image_size: 64,
            patch_size: 16,
            vision: (128, 6, 8),
            text: (128, 4, 4),
            projection_dim: 128,
            eval_per_class: 25,
            progress: true,
            log_every: 25,
            save_every: 250,
            pause_at: None,
        }
    }
}

/// Zero-shot accuracy of one domain.
#[derive(Debug, Clone, Serialize)]
pub struct DomainZeroShot {
    /// Domain (style or designer) name.
    pub domain: String,
    /// Top-1 accuracy with the source's template.
    pub accuracy: f64,
    /// Images evaluated.
    pub images: usize,
    /// Whether the domain (a style or designer) was among the pretraining data — for a
    /// designer, these very images were — or never seen (a benchmark designer).
    pub seen: bool,
}

/// How a pretraining ended.
#[derive(Debug, Clone)]
pub enum Pretrained {
    /// All steps ran and the checkpoint is written.
    Done(Box<PretrainSummary>),
    /// Stopped at `PretrainOptions::pause_at`; the state to continue from is saved.
    Paused {
        /// The next step to run.
        at: u64,
        /// The saved state.
        state: PathBuf,
    },
}

/// What pretraining reports.
#[derive(Debug, Clone, Serialize)]
pub struct PretrainSummary {
    /// Checkpoint directory.
    pub out: PathBuf,
    /// Loss of the last step.
    pub final_loss: f64,
    /// Training statistics, one line per logging window.
    pub log: Vec<LogLine>,
    /// Zero-shot accuracy per domain.
    pub zero_shot: Vec<DomainZeroShot>,
    /// The zero-shot prompt template.
    pub template: String,
    /// The step this run started at (0, or where an interrupted run stopped).
    pub resumed_at: u64,
    /// Concepts and images of an image–caption tree (`None`: synthetic).
    pub tree_size: Option<(usize, usize)>,
    /// Wall time of training and writing the checkpoint, in seconds.
    pub train_seconds: f64,
    /// Wall time including the evaluation, in seconds.
    pub seconds: f64,
    /// Parameters.
    pub parameters: usize,
}

/// Runs pretraining (continuing an interrupted run of the same settings in `o.out`) and writes
/// the checkpoint, or stops at `o.pause_at` with the state saved.
pub fn pretrain(o: &PretrainOptions, device: &Device) -> Result<Pretrained> {
    check_options(o)?;
    let t0 = Instant::now();
    std::fs::create_dir_all(&o.out)
        .map_err(|e| TrainError::run_dir(&o.out, format!("cannot create: {e}")))?;
    let _lock = crate::state::lock_run_dir(&o.out)?;
    let pre = PreprocessConfig::clip(o.image_size as u32);
    let (source, tree_size) = open_source(o, &pre)?;
    let fresh = FreshModel::new(o, source.as_ref(), device)?;
    source.check_tokenizer(&fresh.tokenizer)?;
    let vars = sorted_vars(&fresh.varmap)?;
    let parameters: usize = vars.iter().map(|(_, v)| v.elem_count()).sum();
    let mut optimizers = Optimizers::new(&vars, o.weight_decay)?;
    let fingerprint = fingerprint(o, source.as_ref());
    let resumed = resume::restore(
        &o.out,
        &vars,
        &mut optimizers,
        (&fingerprint, o.steps),
        device,
    )?;
    let start = resumed.as_ref().map_or(0, |m| m.next_step);
    let fixed = match source.fixed_captions() {
        Some(c) => Some(fresh.tokenizer.encode_batch(&c)?),
        None => None,
    };
    let end = o.pause_at.map_or(o.steps, |p| p.max(start).min(o.steps));
    let prefetch = Prefetch::spawn(source.clone(), start, end);
    let (log, window) = resumed.map_or_else(Default::default, |m| (m.log, m.window));
    let mut run = Run {
        o,
        model: &fresh.model,
        tokenizer: &fresh.tokenizer,
        vars: &vars,
        optimizers,
        fixed,
        log_classes: source.log_classes(),
        fingerprint,
        device,
        log,
        window,
    };
    let final_loss = run.train(&prefetch, start..end)?;
    prefetch.join()?;
    if end < o.steps {
        run.save(end)?;
        return Ok(Pretrained::Paused {
            at: end,
            state: resume::state_path(&o.out),
        });
    }
    fresh.write(o, &pre)?;
    let clip = LoadedClip::load(&o.out.display().to_string(), device)?;
    let zero_shot = source.zero_shot(&clip, device)?;
    remove_state(&o.out)?;
    let train_seconds = t0.elapsed().as_secs_f64();
    let log = run.log;
    Ok(Pretrained::Done(Box::new(PretrainSummary {
        out: o.out.clone(),
        final_loss,
        log,
        zero_shot,
        template: source.template().to_string(),
        resumed_at: start,
        tree_size,
        train_seconds,
        seconds: t0.elapsed().as_secs_f64(),
        parameters,
    })))
}

/// A pretraining source and, for an image–caption tree, its concepts and images.
type OpenedSource = (Arc<dyn PretrainSource>, Option<(usize, usize)>);

/// The source of the options, with the tree's concepts and images when it is one.
fn open_source(o: &PretrainOptions, pre: &PreprocessConfig) -> Result<OpenedSource> {
    Ok(match &o.captions {
        None => (
            Arc::new(synthetic::Synthetic::new(
                o.seed,
                o.batch_size,
                o.classes,
                pre,
                o.eval_per_class,
            )?),
            None,
        ),
        Some(c) => {
            let s = emoji::EmojiSource::load(c, o.seed, o.batch_size, pre)?;
            let size = s.size();
            (Arc::new(s), Some(size))
        }
    })
}

/// Everything that decides the trajectory (a resumed run must have the same): the options
/// and the source's own fingerprint (its data and how it is drawn).
fn fingerprint(o: &PretrainOptions, source: &dyn PretrainSource) -> String {
    let data = source.fingerprint();
    format!(
        "steps {} batch {} lr {} warmup {} wd {} clip {} seed {} image {} patch {} vision {:?} text {:?} proj {} data {data}",
        o.steps, o.batch_size, o.lr, o.warmup_steps, o.weight_decay, o.max_grad_norm, o.seed,
        o.image_size, o.patch_size, o.vision, o.text, o.projection_dim
    )
}

/// Removes the resumable state once the checkpoint is written.
fn remove_state(out: &Path) -> Result<()> {
    let path = resume::state_path(out);
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(TrainError::run_dir(&path, format!("cannot remove: {e}")))
        }
        _ => Ok(()),
    }
}

/// Refuses options pretraining cannot run with, naming the flag.
fn check_options(o: &PretrainOptions) -> Result<()> {
    if o.steps == 0 {
        return Err(TrainError::option("steps", "must be at least 1"));
    }
    if o.batch_size < 2 {
        return Err(TrainError::option(
            "batch-size",
            format!(
                "must be at least 2 (the contrastive loss needs pairs), got {}",
                o.batch_size
            ),
        ));
    }
    if o.batch_size > 1 << 16 {
        return Err(TrainError::option(
            "batch-size",
            format!("{} is more than 65536", o.batch_size),
        ));
    }
    if !(o.lr > 0.0 && o.lr.is_finite()) {
        return Err(TrainError::option(
            "lr",
            format!("must be positive and finite, got {}", o.lr),
        ));
    }
    Ok(())
}

/// A freshly initialized CLIP with its configuration and tokenizer.
struct FreshModel {
    cfg: ahp_spec::ClipConfig,
    varmap: VarMap,
    model: ClipModel,
    tokenizer: ClipTokenizer,
    vocab_words: Vec<String>,
}

/// Where the tokenizer of a running pretraining lives until the checkpoint is written (so a
/// failed or paused run never leaves a new tokenizer beside an old model in `out`).
const STAGING: &str = ".pretrain-tokenizer";

impl FreshModel {
    /// Builds the model of the options with transformers' initialization and writes the
    /// tokenizer of the source's vocabulary, which is then loaded from its written file as any
    /// checkpoint's.
    fn new(o: &PretrainOptions, source: &dyn PretrainSource, device: &Device) -> Result<Self> {
        let vocab_words = source.vocabulary()?;
        let cfg = checkpoint::config(o, 3 + vocab_words.len(), source.text_positions()?);
        cfg.validate(Path::new("config.json")).map_err(|e| {
            TrainError::option("vision, text, image-size or patch-size", e.to_string())
        })?;
        let varmap = VarMap::new();
        let model = ClipModel::new(VarBuilder::from_varmap(&varmap, DType::F32, device), &cfg)?;
        init::init_weights(&varmap, &cfg, o.seed)?;
        let staging = o.out.join(STAGING);
        std::fs::create_dir_all(&staging)
            .map_err(|e| TrainError::run_dir(&staging, format!("cannot create: {e}")))?;
        checkpoint::write_tokenizer(&staging, &vocab_words, &cfg)?;
        let tokenizer = ClipTokenizer::from_dir(&staging, &cfg.text_config)?;
        Ok(Self {
            cfg,
            varmap,
            model,
            tokenizer,
            vocab_words,
        })
    }

    /// Writes the checkpoint: weights, configs and the tokenizer (then drops the staging copy).
    fn write(&self, o: &PretrainOptions, pre: &PreprocessConfig) -> Result<()> {
        checkpoint::write_model(o, &self.varmap, &self.cfg, pre)?;
        checkpoint::write_tokenizer(&o.out, &self.vocab_words, &self.cfg)?;
        let staging = o.out.join(STAGING);
        std::fs::remove_dir_all(&staging)
            .map_err(|e| TrainError::run_dir(&staging, format!("cannot remove: {e}")))
    }
}

/// The model's variables sorted by name.
fn sorted_vars(varmap: &VarMap) -> Result<Vec<(String, Var)>> {
    let data = varmap
        .data()
        .lock()
        .map_err(|_| TrainError::run_dir("varmap", "poisoned lock"))?;
    let mut v: Vec<_> = data.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(v)
}

/// Two AdamW optimizers: weight matrices with decoupled weight decay, the rest without.
struct Optimizers {
    decayed: AdamW,
    plain: AdamW,
}

impl Optimizers {
    fn new(vars: &[(String, Var)], weight_decay: f64) -> Result<Self> {
        let (decayed, plain): (Vec<_>, Vec<_>) = vars
            .iter()
            .cloned()
            .partition(|(name, v)| decays(name, v.rank()));
        // β2 = 0.98 as CLIP: the second moments follow the fast-changing gradient scale of a
        // from-scratch transformer instead of lagging ~1000 steps behind.
        let beta2 = 0.98;
        Ok(Self {
            decayed: AdamW::new(
                decayed,
                AdamWConfig {
                    weight_decay,
                    beta2,
                    ..Default::default()
                },
            )?,
            plain: AdamW::new(
                plain,
                AdamWConfig {
                    beta2,
                    ..Default::default()
                },
            )?,
        })
    }

    fn step(&mut self, grads: &HashMap<String, Tensor>, lr: f64) -> Result<()> {
        self.decayed.step(grads, lr)?;
        self.plain.step(grads, lr)
    }
}

/// The progress bar of `o.steps` steps (hidden without `o.progress`).
fn progress_bar(o: &PretrainOptions) -> indicatif::ProgressBar {
    if !o.progress {
        return indicatif::ProgressBar::hidden();
    }
    let b = indicatif::ProgressBar::new(o.steps);
    b.set_style(
        indicatif::ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    b
}

/// What one contrastive step leaves for the log.
struct StepOutput {
    loss: f64,
    logits: Tensor,
    image_embeds: Tensor,
    text_embeds: Tensor,
}

/// Forward, loss, backward and the gradients by variable name of one batch; fails on a
/// non-finite loss.
fn contrastive_step(
    model: &ClipModel,
    vars: &[(String, Var)],
    captions: &TokenBatch,
    pixels: &Tensor,
    caption_of: &[u32],
    step: u64,
) -> Result<(StepOutput, HashMap<String, Tensor>)> {
    let max_scale = 100f64.ln();
    let img = ahp_model::l2_normalize(&model.image_features(pixels, &[], false)?.embeds)?;
    let txt = ahp_model::l2_normalize(&model.text_features(captions)?)?;
    let scale = model.logit_scale_tensor().clamp(0.0, max_scale)?.exp()?;
    let logits = img.matmul(&txt.t()?)?.broadcast_mul(&scale)?; // [B, K]
    let loss = contrastive_loss(&logits, caption_of)?;
    let loss_value = f64::from(loss.to_scalar::<f32>()?);
    if !loss_value.is_finite() {
        return Err(TrainError::Diverged {
            step,
            message: format!("loss is {loss_value}"),
        });
    }
    let store = loss.backward()?;
    let grads = vars
        .iter()
        .filter_map(|(name, var)| {
            store
                .get(var.as_tensor())
                .map(|g| (name.clone(), g.clone()))
        })
        .collect();
    let out = StepOutput {
        loss: loss_value,
        logits,
        image_embeds: img,
        text_embeds: txt,
    };
    Ok((out, grads))
}

/// The state of a running pretraining.
struct Run<'a> {
    o: &'a PretrainOptions,
    model: &'a ClipModel,
    tokenizer: &'a ClipTokenizer,
    vars: &'a [(String, Var)],
    optimizers: Optimizers,
    /// The fixed caption set, tokenized once (sources that have one).
    fixed: Option<TokenBatch>,
    log_classes: Option<usize>,
    fingerprint: String,
    device: &'a Device,
    /// The log lines so far.
    log: Vec<LogLine>,
    /// The current logging window.
    window: Window,
}

impl Run<'_> {
    /// The optimizer loop over `steps` of the prefetched batches, logging and saving the state
    /// every `save_every` steps: returns the last step's loss.
    fn train(&mut self, prefetch: &Prefetch, steps: std::ops::Range<u64>) -> Result<f64> {
        let o = self.o;
        let bar = progress_bar(o);
        bar.set_position(steps.start);
        let mut final_loss = self.log.last().map_or(f64::NAN, |l| l.loss);
        for step in steps {
            let (out, caption_of, grad_norm, lr) = self.step(prefetch, step)?;
            final_loss = out.loss;
            let pred = out.logits.detach().argmax(D::Minus1)?.to_vec1::<u32>()?;
            self.window
                .add(out.loss, grad_norm, &pred, &caption_of, self.log_classes);
            bar.inc(1);
            bar.set_message(format!("loss {:.4}", out.loss));
            if o.log_every > 0 && ((step + 1) % o.log_every == 0 || step + 1 == o.steps) {
                let temperature = f64::from(self.model.logit_scale()?).exp();
                let (img, txt) = (out.image_embeds.detach(), out.text_embeds.detach());
                let line = self.window.line(step + 1, &img, &txt, temperature, lr)?;
                if o.progress {
                    bar.println(line.to_string());
                } else {
                    eprintln!("{line}");
                }
                self.log.push(line);
                self.window = Window::default();
            }
            if o.save_every > 0 && (step + 1) % o.save_every == 0 && step + 1 < o.steps {
                self.save(step + 1)?;
            }
        }
        bar.finish_and_clear();
        Ok(final_loss)
    }

    /// One optimizer step on the next batch: the step's output, the images' caption indices,
    /// the gradient norm before clipping and the learning rate.
    fn step(&mut self, prefetch: &Prefetch, step: u64) -> Result<(StepOutput, Vec<u32>, f64, f64)> {
        let o = self.o;
        let batch = prefetch.next()?;
        let pixels = pixel_batch(&batch.images, self.device)?;
        let own;
        let captions = match (&batch.captions, &self.fixed) {
            (Some(texts), _) => {
                own = self.tokenizer.encode_batch(texts)?;
                &own
            }
            (None, Some(fixed)) => fixed,
            (None, None) => {
                return Err(TrainError::run_dir(
                    "pretraining data",
                    "a batch without captions",
                ))
            }
        };
        let (out, mut grads) = contrastive_step(
            self.model,
            self.vars,
            captions,
            &pixels,
            &batch.caption_of,
            step,
        )?;
        let grad_norm = clip_grad_norm(&mut grads, o.max_grad_norm)?;
        if !grad_norm.is_finite() {
            return Err(TrainError::Diverged {
                step,
                message: format!("gradient norm is {grad_norm}"),
            });
        }
        let lr = lr_at(step, o.lr, o.warmup_steps.min(o.steps), o.steps);
        self.optimizers.step(&grads, lr)?;
        Ok((out, batch.caption_of, grad_norm, lr))
    }

    /// Saves the resumable state before step `next_step`.
    fn save(&self, next_step: u64) -> Result<()> {
        let meta = resume::Meta {
            next_step,
            optimizer_steps: (
                self.optimizers.decayed.steps(),
                self.optimizers.plain.steps(),
            ),
            fingerprint: self.fingerprint.clone(),
            log: self.log.clone(),
            window: self.window.clone(),
        };
        resume::save(&self.o.out, self.vars, &self.optimizers, &meta)
    }
}
