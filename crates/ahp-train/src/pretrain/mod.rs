//! Contrastive pretraining of a small CLIP on the synthetic multi-domain generator, written as
//! a Hugging Face checkpoint (`config.json`, `model.safetensors`, `tokenizer.json`,
//! `tokenizer_config.json`, `preprocessor_config.json`) that loads through exactly the same
//! code path as real checkpoints. This is the embedded default model of the demo.
//!
//! Captions name style and class ("a pencil sketch of a star."); images are rendered on the
//! fly (every step draws fresh samples, so there is no overfitting to a fixed set). The loss is
//! CLIP's symmetric InfoNCE over the batch's images and the fixed set of `styles × classes`
//! captions: image → caption is a softmax over all captions; caption → image is a softmax
//! over the batch's images with the target spread uniformly over the images of that caption
//! (captions repeat within a batch, so plain one-to-one targets would be wrong).

mod checkpoint;
mod data;
mod init;
mod log;
mod loss;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use ahp_data::{Shape, Style};
use ahp_model::{
    pixel_batch, ClipModel, ClipTokenizer, TokenBatch, ZeroShotClassifier, DEFAULT_TEMPLATE,
};
use ahp_spec::PreprocessConfig;
use candle_core::{DType, Device, Tensor, Var, D};
use candle_nn::{VarBuilder, VarMap};
use serde::Serialize;

pub use checkpoint::{hf_config_json, tokenizer_json, BOS, EOS, UNK};
pub use log::LogLine;
pub use loss::{contrastive_loss, decays};

use crate::error::{Result, TrainError};
use crate::eval::accuracy;
use crate::optim::{clip_grad_norm, lr_at, AdamW, AdamWConfig};
use data::Renderer;
use log::Window;

/// The caption phrase of a style ("pencil sketch").
pub fn style_phrase(style: Style) -> &'static str {
    match style.name() {
        "sketch" => "pencil sketch",
        other => other,
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
    /// Number of object classes (the first of the generator's shapes).
    pub classes: usize,
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
            image_size: 64,
            patch_size: 16,
            vision: (128, 6, 8),
            text: (128, 4, 4),
            projection_dim: 128,
            eval_per_class: 25,
            progress: true,
            log_every: 25,
        }
    }
}

/// Zero-shot accuracy of one domain.
#[derive(Debug, Clone, Serialize)]
pub struct DomainZeroShot {
    /// Domain (style) name.
    pub domain: String,
    /// Top-1 accuracy with "a photo of a {}.".
    pub accuracy: f64,
    /// Images evaluated.
    pub images: usize,
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
    /// Zero-shot accuracy per domain on freshly rendered images.
    pub zero_shot: Vec<DomainZeroShot>,
    /// Wall time of training and writing the checkpoint, in seconds.
    pub train_seconds: f64,
    /// Wall time including the evaluation, in seconds.
    pub seconds: f64,
    /// Parameters.
    pub parameters: usize,
}

/// Runs pretraining and writes the checkpoint.
pub fn pretrain(o: &PretrainOptions, device: &Device) -> Result<PretrainSummary> {
    check_options(o)?;
    let t0 = Instant::now();
    let shapes: Vec<Shape> = Shape::ALL[..o.classes].to_vec();
    let styles: Vec<Style> = Style::ALL.to_vec();
    std::fs::create_dir_all(&o.out)
        .map_err(|e| TrainError::run_dir(&o.out, format!("cannot create: {e}")))?;
    let fresh = FreshModel::new(o, &shapes, device)?;
    let pre = PreprocessConfig::clip(o.image_size as u32);
    let captions = fresh.tokenizer.encode_batch(&captions(&styles, &shapes))?;
    let vars = sorted_vars(&fresh.varmap)?;
    let parameters: usize = vars.iter().map(|(_, v)| v.elem_count()).sum();
    let renderer = Renderer::spawn(o.seed, o.steps, o.batch_size, &styles, &shapes, &pre);
    let (final_loss, log) = train_loop(
        o,
        &fresh.model,
        &vars,
        &captions,
        &renderer,
        shapes.len(),
        device,
    )?;
    renderer.join()?;
    checkpoint::write_model(o, &fresh.varmap, &fresh.cfg, &pre)?;
    let train_seconds = t0.elapsed().as_secs_f64();
    let zero_shot = zero_shot_accuracy(o, &styles, &shapes, device)?;
    Ok(PretrainSummary {
        out: o.out.clone(),
        final_loss,
        log,
        zero_shot,
        train_seconds,
        seconds: t0.elapsed().as_secs_f64(),
        parameters,
    })
}

/// Refuses options pretraining cannot run with, naming the flag.
fn check_options(o: &PretrainOptions) -> Result<()> {
    if o.classes == 0 || o.classes > Shape::ALL.len() {
        return Err(TrainError::option(
            "classes",
            format!("must be in 1..={}", Shape::ALL.len()),
        ));
    }
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
    if !(o.lr > 0.0 && o.lr.is_finite()) {
        return Err(TrainError::option("lr", "must be positive"));
    }
    Ok(())
}

/// A freshly initialized CLIP with its configuration and tokenizer.
struct FreshModel {
    cfg: ahp_spec::ClipConfig,
    varmap: VarMap,
    model: ClipModel,
    tokenizer: ClipTokenizer,
}

impl FreshModel {
    /// Builds the model of the options with transformers' initialization and writes the
    /// tokenizer, which is then loaded from its written file as any checkpoint's.
    fn new(o: &PretrainOptions, shapes: &[Shape], device: &Device) -> Result<Self> {
        let vocab_words = checkpoint::words(shapes);
        let cfg = checkpoint::config(o, 3 + vocab_words.len());
        cfg.validate(Path::new("config.json"))
            .map_err(|e| TrainError::option("vision", e.to_string()))?;
        let varmap = VarMap::new();
        let model = ClipModel::new(VarBuilder::from_varmap(&varmap, DType::F32, device), &cfg)?;
        init::init_weights(&varmap, &cfg, o.seed)?;
        checkpoint::write_tokenizer(&o.out, &vocab_words, &cfg)?;
        let tokenizer = ClipTokenizer::from_dir(&o.out, &cfg.text_config)?;
        Ok(Self {
            cfg,
            varmap,
            model,
            tokenizer,
        })
    }
}

/// The fixed caption set: caption `s * classes + c` names style `s` and class `c`.
fn captions(styles: &[Style], shapes: &[Shape]) -> Vec<String> {
    styles
        .iter()
        .flat_map(|s| {
            shapes
                .iter()
                .map(move |c| format!("a {} of a {}.", style_phrase(*s), c.name()))
        })
        .collect()
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

/// The optimizer loop over the renderer's batches: returns the last step's loss and the log.
fn train_loop(
    o: &PretrainOptions,
    model: &ClipModel,
    vars: &[(String, Var)],
    captions: &TokenBatch,
    renderer: &Renderer,
    classes: usize,
    device: &Device,
) -> Result<(f64, Vec<LogLine>)> {
    let mut optimizers = Optimizers::new(vars, o.weight_decay)?;
    let bar = progress_bar(o);
    let (mut final_loss, mut log, mut window) = (f64::NAN, Vec::new(), Window::default());
    for step in 0..o.steps {
        let (images, s_idx, c_idx) = renderer.next()?;
        let pixels = pixel_batch(&images, device)?;
        let caption_of: Vec<u32> = s_idx
            .iter()
            .zip(&c_idx)
            .map(|(s, c)| (s * classes + c) as u32)
            .collect();
        let (out, mut grads) = contrastive_step(model, vars, captions, &pixels, &caption_of, step)?;
        let grad_norm = clip_grad_norm(&mut grads, o.max_grad_norm)?;
        let lr = lr_at(step, o.lr, o.warmup_steps.min(o.steps), o.steps);
        optimizers.step(&grads, lr)?;
        final_loss = out.loss;
        let pred = out.logits.detach().argmax(D::Minus1)?.to_vec1::<u32>()?;
        window.add(out.loss, grad_norm, &pred, &caption_of, classes);
        bar.inc(1);
        bar.set_message(format!("loss {:.4}", out.loss));
        if o.log_every > 0 && ((step + 1) % o.log_every == 0 || step + 1 == o.steps) {
            let temperature = f64::from(model.logit_scale()?).exp();
            let (img, txt) = (out.image_embeds.detach(), out.text_embeds.detach());
            let line = window.line(step + 1, &img, &txt, temperature, lr)?;
            if o.progress {
                bar.println(line.to_string());
            } else {
                eprintln!("{line}");
            }
            log.push(line);
            window = Window::default();
        }
    }
    bar.finish_and_clear();
    Ok((final_loss, log))
}

/// Zero-shot accuracy per style of the written checkpoint, loaded through the regular path,
/// on freshly rendered images.
fn zero_shot_accuracy(
    o: &PretrainOptions,
    styles: &[Style],
    shapes: &[Shape],
    device: &Device,
) -> Result<Vec<DomainZeroShot>> {
    let clip = ahp_model::LoadedClip::load(&o.out.display().to_string(), device)?;
    let labels: Vec<String> = shapes.iter().map(|s| s.name().to_string()).collect();
    let zs = ZeroShotClassifier::new(&clip.model, &clip.tokenizer, &labels, DEFAULT_TEMPLATE)?;
    styles
        .iter()
        .map(|style| {
            let batches = shapes
                .iter()
                .enumerate()
                .map(|(c, shape)| {
                    let n = o.eval_per_class;
                    let size = o.image_size as u32;
                    let images =
                        data::evaluation_images(o.seed, *style, *shape, n, size, &clip.preprocess)?;
                    Ok((pixel_batch(&images, device)?, vec![c as u32; images.len()]))
                })
                .collect::<Result<Vec<_>>>()?;
            let (correct, total) = accuracy(&clip.model, &zs, &[], &batches)?;
            Ok(DomainZeroShot {
                domain: style.name().to_string(),
                accuracy: correct as f64 / total.max(1) as f64,
                images: total,
            })
        })
        .collect()
}
