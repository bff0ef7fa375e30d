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

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use ahp_data::synth::render_sample;
use ahp_data::{Shape, Style};
use ahp_model::{
    pixel_batch, ClipModel, ClipTokenizer, TokenBatch, ZeroShotClassifier, DEFAULT_TEMPLATE,
};
use ahp_spec::preprocess::preprocess;
use ahp_spec::{Activation, ClipConfig, ClipTextConfig, ClipVisionConfig, PreprocessConfig};
use candle_core::{DType, Device, Tensor, D};
use candle_nn::{VarBuilder, VarMap};
use rand::Rng;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::error::{Result, TrainError};
use crate::optim::{clip_grad_norm, lr_at, AdamW, AdamWConfig};
use ahp_spec::files::{write_atomic, TempFile};

/// Beginning-of-text token.
pub const BOS: &str = "<|startoftext|>";
/// End-of-text (and padding) token.
pub const EOS: &str = "<|endoftext|>";
/// Unknown-word token.
pub const UNK: &str = "<|unk|>";

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

fn words(classes: &[Shape]) -> Vec<String> {
    let mut w: Vec<String> = [
        "a", "an", "the", "of", "photo", "pencil", "sketch", "cartoon", "painting", "picture",
        "drawing", "image", ".",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    w.extend(classes.iter().map(|c| c.name().to_string()));
    w
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

fn config(o: &PretrainOptions, vocab_size: usize) -> ClipConfig {
    ClipConfig {
        text_config: ClipTextConfig {
            vocab_size,
            hidden_size: o.text.0,
            intermediate_size: 4 * o.text.0,
            projection_dim: o.projection_dim,
            num_hidden_layers: o.text.1,
            num_attention_heads: o.text.2,
            max_position_embeddings: 16,
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

/// transformers' CLIP initialization (`CLIPPreTrainedModel._init_weights`, factor 1), seeded
/// per tensor name so it does not depend on iteration order.
fn init_weights(varmap: &VarMap, cfg: &ClipConfig, seed: u64) -> Result<()> {
    let data = varmap
        .data()
        .lock()
        .map_err(|_| TrainError::run_dir("varmap", "poisoned lock"))?;
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    for name in names {
        let var = &data[name];
        let dims = var.dims().to_vec();
        let n: usize = dims.iter().product();
        let width = if name.starts_with("text_model") {
            cfg.text_config.hidden_size
        } else {
            cfg.vision_config.hidden_size
        } as f64;
        let layers = if name.starts_with("text_model") {
            cfg.text_config.num_hidden_layers
        } else {
            cfg.vision_config.num_hidden_layers
        } as f64;
        let std = if name.ends_with(".bias") {
            0.0
        } else if name.contains("layer_norm")
            || name.contains("layrnorm")
            || name.contains("layernorm")
        {
            -1.0 // ones
        } else if name == "logit_scale" {
            -2.0
        } else if name.contains("self_attn.out_proj") {
            width.powf(-0.5)
        } else if name.contains("self_attn") {
            width.powf(-0.5) * (2.0 * layers).powf(-0.5)
        } else if name.contains("mlp.fc1") {
            (2.0 * width).powf(-0.5)
        } else if name.contains("mlp.fc2") {
            width.powf(-0.5) * (2.0 * layers).powf(-0.5)
        } else if name.contains("class_embedding") || name.contains("_projection") {
            width.powf(-0.5)
        } else {
            0.02
        };
        let mut rng =
            ChaCha8Rng::seed_from_u64(ahp_data::seed::derive_seed(seed, &[name.as_bytes()]));
        let values: Vec<f32> = if std == -1.0 {
            vec![1.0; n]
        } else if std == -2.0 {
            vec![cfg.logit_scale_init_value as f32; n]
        } else if std == 0.0 {
            vec![0.0; n]
        } else {
            (0..n)
                .map(|_| {
                    // Box-Muller normal.
                    let u1: f64 = rng.random_range(f64::EPSILON..1.0);
                    let u2: f64 = rng.random_range(0.0..1.0);
                    ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos() * std) as f32
                })
                .collect()
        };
        var.set(&Tensor::from_vec(values, dims, var.device())?.to_dtype(var.dtype())?)?;
    }
    Ok(())
}

fn render_batch(
    seed: u64,
    step: u64,
    n: usize,
    styles: &[Style],
    shapes: &[Shape],
    pre: &PreprocessConfig,
) -> Result<(Vec<ahp_spec::Preprocessed>, Vec<usize>, Vec<usize>)> {
    let mut rng = ChaCha8Rng::seed_from_u64(ahp_data::seed::derive_seed(
        seed,
        &[b"pretrain", &step.to_le_bytes()],
    ));
    let mut images = Vec::with_capacity(n);
    let (mut s_idx, mut c_idx) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for i in 0..n {
        let s = i % styles.len();
        let c = rng.random_range(0..shapes.len());
        let index = (step as usize) * n + i;
        let img = render_sample(seed, styles[s], shapes[c], index, pre.shortest_edge);
        images.push(
            preprocess(&image::DynamicImage::ImageRgb8(img), pre)
                .map_err(|e| TrainError::run_dir("synthetic image", e.to_string()))?,
        );
        s_idx.push(s);
        c_idx.push(c);
    }
    Ok((images, s_idx, c_idx))
}

/// Symmetric InfoNCE of a batch against a fixed caption set.
///
/// `logits` is `[B, K]` (`exp(logit_scale) · cos(image, caption)`), `caption_of[i]` the
/// caption of image `i`. Image → caption is a cross-entropy over the `K` captions; caption →
/// image is, for every caption present in the batch, a cross-entropy over the `B` images with
/// the target spread uniformly over that caption's images. Returns the mean of the two.
pub fn contrastive_loss(logits: &Tensor, caption_of: &[u32]) -> Result<Tensor> {
    let (b, k) = logits.dims2()?;
    if caption_of.len() != b || caption_of.iter().any(|&c| c as usize >= k) {
        return Err(TrainError::option(
            "batch-size",
            format!(
                "{} caption ids for a [{b}, {k}] logit matrix",
                caption_of.len()
            ),
        ));
    }
    let device = logits.device();
    let targets = Tensor::from_vec(caption_of.to_vec(), b, device)?;
    let image_to_text = candle_nn::loss::cross_entropy(logits, &targets)?;
    let mut count = vec![0usize; k];
    for &c in caption_of {
        count[c as usize] += 1;
    }
    let rows: Vec<u32> = (0..k as u32).filter(|&c| count[c as usize] > 0).collect();
    let mut soft = Vec::with_capacity(rows.len() * b);
    for &c in &rows {
        let w = 1.0 / count[c as usize] as f32;
        soft.extend(caption_of.iter().map(|&ci| if ci == c { w } else { 0.0 }));
    }
    let soft = Tensor::from_vec(soft, (rows.len(), b), device)?.to_dtype(logits.dtype())?;
    let rows = Tensor::from_vec(rows, soft.dim(0)?, device)?;
    let per_caption = logits.t()?.contiguous()?.index_select(&rows, 0)?; // [K', B]
    let log_p = candle_nn::ops::log_softmax(&per_caption, D::Minus1)?;
    let text_to_image = (log_p.mul(&soft)?.sum(D::Minus1)?.mean_all()? * -1.0)?;
    Ok(((image_to_text + text_to_image)? * 0.5)?)
}

/// Whether AdamW's decoupled weight decay applies to a parameter: weight matrices and the
/// patch embedding do; biases, LayerNorm gains, the class token, token and position
/// embeddings and `logit_scale` do not (decaying them only pulls gains towards 0 and the
/// temperature towards 1).
pub fn decays(name: &str, rank: usize) -> bool {
    rank >= 2 && !name.contains("position_embedding") && !name.contains("token_embedding")
}

/// Mean cosine similarity between distinct rows of L2-normalized `[N, P]` embeddings (1 when
/// they have collapsed to one direction).
fn mean_pairwise_cosine(x: &Tensor) -> Result<f64> {
    let n = x.dim(0)?;
    if n < 2 {
        return Ok(1.0);
    }
    let total = f64::from(x.matmul(&x.t()?)?.sum_all()?.to_scalar::<f32>()?);
    Ok((total - n as f64) / (n * (n - 1)) as f64)
}

/// Training statistics averaged over a logging window.
#[derive(Debug, Clone, Serialize)]
pub struct LogLine {
    /// Last step of the window (1-based).
    pub step: u64,
    /// Mean loss over the window.
    pub loss: f64,
    /// Image → caption top-1 accuracy over the window (style and class right).
    pub accuracy: f64,
    /// Fraction of images whose top caption names the right class.
    pub class_accuracy: f64,
    /// Fraction of images whose top caption names the right style.
    pub style_accuracy: f64,
    /// Mean pairwise cosine of the image embeddings of the window's last batch.
    pub image_cosine: f64,
    /// Mean pairwise cosine of the caption embeddings at the window's last step.
    pub text_cosine: f64,
    /// Mean global gradient norm over the window, before clipping.
    pub grad_norm: f64,
    /// `exp(logit_scale)` at the window's last step.
    pub temperature: f64,
    /// Learning rate of the window's last step.
    pub lr: f64,
}

impl std::fmt::Display for LogLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "step {:>5}  loss {:.4}  acc {:5.1}%  class {:5.1}%  style {:5.1}%  img-cos {:.3}  txt-cos {:.3}  grad {:.3}  scale {:.1}  lr {:.2e}",
            self.step,
            self.loss,
            100.0 * self.accuracy,
            100.0 * self.class_accuracy,
            100.0 * self.style_accuracy,
            self.image_cosine,
            self.text_cosine,
            self.grad_norm,
            self.temperature,
            self.lr
        )
    }
}

/// Running sums of one logging window.
#[derive(Debug, Default)]
struct Window {
    steps: usize,
    loss: f64,
    grad_norm: f64,
    images: usize,
    correct: usize,
    class_correct: usize,
    style_correct: usize,
}

/// Runs pretraining and writes the checkpoint.
pub fn pretrain(o: &PretrainOptions, device: &Device) -> Result<PretrainSummary> {
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
    let t0 = Instant::now();
    let shapes: Vec<Shape> = Shape::ALL[..o.classes].to_vec();
    let styles: Vec<Style> = Style::ALL.to_vec();
    std::fs::create_dir_all(&o.out)
        .map_err(|e| TrainError::run_dir(&o.out, format!("cannot create: {e}")))?;
    let vocab_words = words(&shapes);
    let tok_json = tokenizer_json(&vocab_words);
    let vocab_size = 3 + vocab_words.len();
    let cfg = config(o, vocab_size);
    cfg.validate(Path::new("config.json"))
        .map_err(|e| TrainError::option("vision", e.to_string()))?;
    let varmap = VarMap::new();
    let model = ClipModel::new(VarBuilder::from_varmap(&varmap, DType::F32, device), &cfg)?;
    init_weights(&varmap, &cfg, o.seed)?;
    // The tokenizer is loaded from its written file, as any checkpoint's.
    write_atomic(&o.out.join("tokenizer.json"), tok_json.as_bytes())?;
    let tok_cfg = serde_json::json!({"pad_token": EOS, "bos_token": BOS, "eos_token": EOS, "unk_token": UNK,
        "model_max_length": cfg.text_config.max_position_embeddings, "tokenizer_class": "PreTrainedTokenizerFast"});
    write_atomic(
        &o.out.join("tokenizer_config.json"),
        tok_cfg.to_string().as_bytes(),
    )?;
    let tokenizer = ClipTokenizer::from_dir(&o.out, &cfg.text_config)?;
    let pre = PreprocessConfig::clip(o.image_size as u32);

    // Caption `s * classes + c` names style `s` and class `c`.
    let captions: Vec<String> = styles
        .iter()
        .flat_map(|s| {
            shapes
                .iter()
                .map(move |c| format!("a {} of a {}.", style_phrase(*s), c.name()))
        })
        .collect();
    let caption_batch: TokenBatch = tokenizer.encode_batch(&captions)?;
    let vars: Vec<(String, candle_core::Var)> = {
        let data = varmap
            .data()
            .lock()
            .map_err(|_| TrainError::run_dir("varmap", "poisoned lock"))?;
        let mut v: Vec<_> = data.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    };
    let parameters: usize = vars.iter().map(|(_, v)| v.elem_count()).sum();
    let (decayed, plain): (Vec<_>, Vec<_>) = vars
        .iter()
        .cloned()
        .partition(|(name, v)| decays(name, v.rank()));
    // β2 = 0.98 as CLIP: the second moments follow the fast-changing gradient scale of a
    // from-scratch transformer instead of lagging ~1000 steps behind.
    let beta2 = 0.98;
    let mut opt_decay = AdamW::new(
        decayed,
        AdamWConfig {
            weight_decay: o.weight_decay,
            beta2,
            ..Default::default()
        },
    )?;
    let mut opt_plain = AdamW::new(
        plain,
        AdamWConfig {
            beta2,
            ..Default::default()
        },
    )?;
    let bar = if o.progress {
        let b = indicatif::ProgressBar::new(o.steps);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{elapsed_precise} [{bar:30}] {pos}/{len} {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    } else {
        indicatif::ProgressBar::hidden()
    };
    let max_scale = 100f64.ln();
    let nc = shapes.len();
    let mut final_loss = f64::NAN;
    let mut log = Vec::new();
    let mut window = Window::default();
    // Rendering runs on its own thread, two batches ahead of the optimizer (the batches depend
    // only on the seed and the step, so the result is the same as rendering in the loop).
    let (tx, rx) = std::sync::mpsc::sync_channel(2);
    let render_thread = {
        let (styles, shapes, pre) = (styles.clone(), shapes.clone(), pre.clone());
        let (seed, steps, batch) = (o.seed, o.steps, o.batch_size);
        std::thread::spawn(move || {
            for step in 0..steps {
                let batch = render_batch(seed, step, batch, &styles, &shapes, &pre);
                let failed = batch.is_err();
                if tx.send(batch).is_err() || failed {
                    return;
                }
            }
        })
    };
    for step in 0..o.steps {
        let (images, s_idx, c_idx) = rx
            .recv()
            .map_err(|_| TrainError::run_dir("synthetic image", "the renderer stopped"))??;
        let pixels = pixel_batch(&images, device)?;
        let img = ahp_model::l2_normalize(&model.image_features(&pixels, &[], false)?.embeds)?;
        let txt = ahp_model::l2_normalize(&model.text_features(&caption_batch)?)?;
        let scale = model.logit_scale_tensor().clamp(0.0, max_scale)?.exp()?;
        let logits = img.matmul(&txt.t()?)?.broadcast_mul(&scale)?; // [B, K]
        let caption_of: Vec<u32> = s_idx
            .iter()
            .zip(&c_idx)
            .map(|(s, c)| (s * nc + c) as u32)
            .collect();
        let loss = contrastive_loss(&logits, &caption_of)?;
        let loss_value = f64::from(loss.to_scalar::<f32>()?);
        if !loss_value.is_finite() {
            return Err(TrainError::Diverged {
                step,
                message: format!("loss is {loss_value}"),
            });
        }
        let store = loss.backward()?;
        let mut grads: HashMap<String, Tensor> = HashMap::new();
        for (name, var) in &vars {
            if let Some(g) = store.get(var.as_tensor()) {
                grads.insert(name.clone(), g.clone());
            }
        }
        let grad_norm = clip_grad_norm(&mut grads, o.max_grad_norm)?;
        let lr = lr_at(step, o.lr, o.warmup_steps.min(o.steps), o.steps);
        opt_decay.step(&grads, lr)?;
        opt_plain.step(&grads, lr)?;
        final_loss = loss_value;

        let pred = logits.detach().argmax(D::Minus1)?.to_vec1::<u32>()?;
        window.steps += 1;
        window.loss += loss_value;
        window.grad_norm += grad_norm;
        window.images += pred.len();
        for (&p, &t) in pred.iter().zip(&caption_of) {
            let (p, t) = (p as usize, t as usize);
            window.correct += usize::from(p == t);
            window.class_correct += usize::from(p % nc == t % nc);
            window.style_correct += usize::from(p / nc == t / nc);
        }
        bar.inc(1);
        bar.set_message(format!("loss {loss_value:.4}"));
        if o.log_every > 0 && ((step + 1) % o.log_every == 0 || step + 1 == o.steps) {
            let n = window.images.max(1) as f64;
            let line = LogLine {
                step: step + 1,
                loss: window.loss / window.steps.max(1) as f64,
                accuracy: window.correct as f64 / n,
                class_accuracy: window.class_correct as f64 / n,
                style_accuracy: window.style_correct as f64 / n,
                image_cosine: mean_pairwise_cosine(&img.detach())?,
                text_cosine: mean_pairwise_cosine(&txt.detach())?,
                grad_norm: window.grad_norm / window.steps.max(1) as f64,
                temperature: f64::from(model.logit_scale()?).exp(),
                lr,
            };
            if o.progress {
                bar.println(line.to_string());
            } else {
                eprintln!("{line}");
            }
            log.push(line);
            window = Window::default();
        }
    }
    render_thread
        .join()
        .map_err(|_| TrainError::run_dir("synthetic image", "the renderer panicked"))?;
    bar.finish_and_clear();
    let weights = TempFile::next_to(&o.out.join("model.safetensors"))?;
    varmap
        .save(weights.path())
        .map_err(|e| TrainError::run_dir(o.out.join("model.safetensors"), e.to_string()))?;
    weights.persist()?;
    write_atomic(&o.out.join("config.json"), hf_config_json(&cfg)?.as_bytes())?;
    let pre_json = serde_json::json!({
        "crop_size": {"height": o.image_size, "width": o.image_size},
        "do_center_crop": true, "do_convert_rgb": true, "do_normalize": true, "do_rescale": true, "do_resize": true,
        "image_mean": pre.mean, "image_std": pre.std, "image_processor_type": "CLIPImageProcessor",
        "resample": 3, "rescale_factor": 1.0 / 255.0, "size": {"shortest_edge": o.image_size}
    });
    write_atomic(
        &o.out.join("preprocessor_config.json"),
        pre_json.to_string().as_bytes(),
    )?;
    let train_seconds = t0.elapsed().as_secs_f64();

    // Zero-shot evaluation of the written checkpoint, through the regular loading path.
    let clip = ahp_model::LoadedClip::load(&o.out.display().to_string(), device)?;
    let labels: Vec<String> = shapes.iter().map(|s| s.name().to_string()).collect();
    let zs = ZeroShotClassifier::new(&clip.model, &clip.tokenizer, &labels, DEFAULT_TEMPLATE)?;
    let mut zero_shot = Vec::new();
    for style in &styles {
        let (mut correct, mut total) = (0usize, 0usize);
        for (c, shape) in shapes.iter().enumerate() {
            let imgs: Vec<_> = (0..o.eval_per_class)
                .map(|i| {
                    let img = render_sample(
                        o.seed ^ 0xE7A1,
                        *style,
                        *shape,
                        1_000_000 + i,
                        o.image_size as u32,
                    );
                    preprocess(&image::DynamicImage::ImageRgb8(img), &clip.preprocess)
                        .map_err(|e| TrainError::run_dir("synthetic image", e.to_string()))
                })
                .collect::<Result<_>>()?;
            let logits = zs.logits_for_pixels(&clip.model, &pixel_batch(&imgs, device)?, &[])?;
            let pred = logits.argmax(D::Minus1)?.to_vec1::<u32>()?;
            correct += pred.iter().filter(|&&p| p as usize == c).count();
            total += imgs.len();
        }
        zero_shot.push(DomainZeroShot {
            domain: style.name().to_string(),
            accuracy: correct as f64 / total.max(1) as f64,
            images: total,
        });
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn loss_of(logits: &[[f32; 3]], caption_of: &[u32]) -> Result<f64> {
        let flat: Vec<f32> = logits.iter().flatten().copied().collect();
        let t = Tensor::from_vec(flat, (logits.len(), 3), &Device::Cpu)?;
        Ok(f64::from(
            contrastive_loss(&t, caption_of)?.to_scalar::<f32>()?,
        ))
    }

    #[test]
    fn contrastive_loss_matches_a_hand_computation() -> Result<()> {
        // Two images of caption 0, one of caption 2; caption 1 is absent.
        let logits = [[2.0f32, 0.0, -1.0], [1.0, 0.5, 0.0], [0.0, 0.0, 3.0]];
        let caption_of = [0u32, 0, 2];
        let lse = |v: &[f64]| v.iter().map(|x| x.exp()).sum::<f64>().ln();
        let i2t = [
            lse(&[2.0, 0.0, -1.0]) - 2.0,
            lse(&[1.0, 0.5, 0.0]) - 1.0,
            lse(&[0.0, 0.0, 3.0]) - 3.0,
        ];
        let i2t = i2t.iter().sum::<f64>() / 3.0;
        // Caption 0 over images [2, 1, 0], target 1/2 on images 0 and 1.
        let c0 = lse(&[2.0, 1.0, 0.0]) - 0.5 * (2.0 + 1.0);
        // Caption 2 over images [-1, 0, 3], target on image 2.
        let c2 = lse(&[-1.0, 0.0, 3.0]) - 3.0;
        let expected = 0.5 * (i2t + 0.5 * (c0 + c2));
        let got = loss_of(&logits, &caption_of)?;
        assert!((got - expected).abs() < 1e-5, "{got} vs {expected}");
        Ok(())
    }

    #[test]
    fn contrastive_loss_rejects_bad_ids() {
        assert!(loss_of(&[[0.0; 3]; 2], &[0, 3]).is_err());
        assert!(loss_of(&[[0.0; 3]; 2], &[0]).is_err());
    }

    #[test]
    fn weight_decay_groups() {
        assert!(decays("vision_model.encoder.layers.0.mlp.fc1.weight", 2));
        assert!(decays("visual_projection.weight", 2));
        assert!(decays("vision_model.embeddings.patch_embedding.weight", 4));
        assert!(!decays("vision_model.encoder.layers.0.mlp.fc1.bias", 1));
        assert!(!decays("vision_model.post_layernorm.weight", 1));
        assert!(!decays("vision_model.embeddings.class_embedding", 1));
        assert!(!decays(
            "vision_model.embeddings.position_embedding.weight",
            2
        ));
        assert!(!decays("text_model.embeddings.token_embedding.weight", 2));
        assert!(!decays("logit_scale", 0));
    }

    #[test]
    fn init_sets_layer_norms_to_one_and_biases_to_zero() -> Result<()> {
        let o = PretrainOptions {
            image_size: 16,
            vision: (32, 1, 4),
            text: (32, 1, 4),
            projection_dim: 16,
            ..Default::default()
        };
        let cfg = config(&o, 30);
        let varmap = VarMap::new();
        ClipModel::new(
            VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu),
            &cfg,
        )?;
        init_weights(&varmap, &cfg, 0)?;
        let data = varmap
            .data()
            .lock()
            .map_err(|_| TrainError::run_dir("varmap", "poisoned lock"))?;
        for (name, var) in data.iter() {
            let v = var.as_tensor().flatten_all()?.to_vec1::<f32>()?;
            if name.ends_with(".bias") {
                assert!(v.iter().all(|&x| x == 0.0), "{name}");
            } else if name.contains("norm") {
                assert!(v.iter().all(|&x| x == 1.0), "{name}");
            } else if name == "logit_scale" {
                assert!((v[0] - 2.6592).abs() < 1e-6);
            } else {
                let std = (v.iter().map(|x| x * x).sum::<f32>() / v.len() as f32).sqrt();
                assert!(std > 0.005 && std < 0.2, "{name}: std {std}");
            }
        }
        Ok(())
    }
}
