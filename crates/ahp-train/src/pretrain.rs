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
use crate::state::write_atomic;

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
}

impl Default for PretrainOptions {
    fn default() -> Self {
        Self {
            out: PathBuf::from("models/ahp-synth-clip"),
            steps: 1500,
            batch_size: 64,
            lr: 2e-3,
            seed: 0,
            classes: 8,
            image_size: 64,
            patch_size: 8,
            vision: (128, 6, 8),
            text: (128, 4, 4),
            projection_dim: 128,
            eval_per_class: 25,
            progress: true,
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
    /// Final training loss.
    pub final_loss: f64,
    /// Zero-shot accuracy per domain on freshly rendered images.
    pub zero_shot: Vec<DomainZeroShot>,
    /// Wall time in seconds.
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
        var.set(&Tensor::from_vec(values, dims, var.device())?)?;
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

/// Runs pretraining and writes the checkpoint.
pub fn pretrain(o: &PretrainOptions, device: &Device) -> Result<PretrainSummary> {
    if o.classes == 0 || o.classes > Shape::ALL.len() {
        return Err(TrainError::option(
            "classes",
            format!("must be in 1..={}", Shape::ALL.len()),
        ));
    }
    if o.steps == 0 || o.batch_size < 2 {
        return Err(TrainError::option(
            "steps",
            "need at least 1 step of at least 2 images",
        ));
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

    let captions: Vec<String> = styles
        .iter()
        .flat_map(|s| {
            shapes
                .iter()
                .map(move |c| format!("a {} of a {}.", style_phrase(*s), c.name()))
        })
        .collect();
    let caption_batch: TokenBatch = tokenizer.encode_batch(&captions)?;
    eprintln!(
        "DEBUG tokens {:?} {:?}",
        &caption_batch.ids[..3],
        &caption_batch.attention_mask[..3]
    );
    eprintln!(
        "DEBUG zs tokens {:?}",
        tokenizer
            .encode_batch(&["a photo of a star.".to_string()])?
            .ids
    );
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
    let mut opt = AdamW::new(
        vars.clone(),
        AdamWConfig {
            weight_decay: 0.05,
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
    let warmup = (o.steps / 20).max(1);
    let max_scale = 100f64.ln();
    let mut final_loss = f64::NAN;
    for step in 0..o.steps {
        let (images, s_idx, c_idx) =
            render_batch(o.seed, step, o.batch_size, &styles, &shapes, &pre)?;
        let pixels = pixel_batch(&images, device)?;
        let img = ahp_model::l2_normalize(&model.image_features(&pixels, &[], false)?.embeds)?;
        let txt = ahp_model::l2_normalize(&model.text_features(&caption_batch)?)?;
        let scale = model.logit_scale_tensor().clamp(0.0, max_scale)?.exp()?;
        let logits = img.matmul(&txt.t()?)?.broadcast_mul(&scale)?; // [B, K]
        let caption_of: Vec<u32> = s_idx
            .iter()
            .zip(&c_idx)
            .map(|(s, c)| (s * shapes.len() + c) as u32)
            .collect();
        let targets = Tensor::from_vec(caption_of.clone(), o.batch_size, device)?;
        let loss_i = candle_nn::loss::cross_entropy(&logits, &targets)?;
        // caption -> image, for the captions present in the batch.
        let k = captions.len();
        let mut present = vec![0usize; k];
        for &c in &caption_of {
            present[c as usize] += 1;
        }
        let rows: Vec<u32> = (0..k as u32).filter(|&c| present[c as usize] > 0).collect();
        let mut soft = Vec::with_capacity(rows.len() * o.batch_size);
        for &c in &rows {
            for &ci in &caption_of {
                soft.push(if ci == c {
                    1.0 / present[c as usize] as f32
                } else {
                    0.0
                });
            }
        }
        let soft = Tensor::from_vec(soft, (rows.len(), o.batch_size), device)?;
        let rows_t = Tensor::from_vec(rows.clone(), rows.len(), device)?;
        let lt = logits.t()?.contiguous()?.index_select(&rows_t, 0)?; // [K', B]
        let log_p = candle_nn::ops::log_softmax(&lt, D::Minus1)?;
        let loss_t = (log_p.mul(&soft)?.sum(D::Minus1)?.mean_all()? * -1.0)?;
        let li_v = loss_i.to_scalar::<f32>()?;
        let lt_v = loss_t.to_scalar::<f32>()?;
        let loss = ((loss_i + loss_t)? * 0.5)?;
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
        let gn0 = clip_grad_norm(&mut grads, 1.0)?;
        if !o.progress && step % 25 == 0 {
            eprintln!("gnorm pre-clip {gn0:.3}");
        }
        opt.step(&grads, lr_at(step, o.lr, warmup, o.steps))?;
        final_loss = loss_value;
        bar.inc(1);
        bar.set_message(format!("loss {loss_value:.4}"));
        if !o.progress && (step % 25 == 0 || (step + 1) % 25 == 0) {
            let pred = logits.argmax(D::Minus1)?.to_vec1::<u32>()?;
            let acc = pred.iter().zip(&caption_of).filter(|(a, b)| a == b).count() as f64
                / pred.len() as f64;
            let cacc = pred
                .iter()
                .zip(&caption_of)
                .filter(|(a, b)| **a as usize % shapes.len() == **b as usize % shapes.len())
                .count() as f64
                / pred.len() as f64;
            let sacc = pred
                .iter()
                .zip(&caption_of)
                .filter(|(a, b)| **a as usize / shapes.len() == **b as usize / shapes.len())
                .count() as f64
                / pred.len() as f64;
            let icos = img.matmul(&img.t()?)?.mean_all()?.to_scalar::<f32>()?;
            let tcos = txt.matmul(&txt.t()?)?.mean_all()?.to_scalar::<f32>()?;
            let gn: f64 = grads
                .values()
                .map(|g| {
                    g.sqr()
                        .and_then(|x| x.sum_all())
                        .and_then(|x| x.to_scalar::<f32>())
                        .unwrap_or(0.0) as f64
                })
                .sum::<f64>()
                .sqrt();
            eprintln!("step {} loss {loss_value:.4} li {:.3} lt {:.3} acc {acc:.3} cls {cacc:.3} sty {sacc:.3} icos {icos:.3} tcos {tcos:.3} scale {:.3} gnorm(clipped) {gn:.3} t {:.1}s", step + 1, li_v, lt_v, model.logit_scale()?, t0.elapsed().as_secs_f64());
        }
    }
    bar.finish_and_clear();
    varmap
        .save(ahp_model::adapter::tmp_path(
            &o.out.join("model.safetensors"),
        ))
        .map_err(|e| TrainError::run_dir(o.out.join("model.safetensors"), e.to_string()))?;
    std::fs::rename(
        ahp_model::adapter::tmp_path(&o.out.join("model.safetensors")),
        o.out.join("model.safetensors"),
    )
    .map_err(|e| TrainError::run_dir(o.out.join("model.safetensors"), e.to_string()))?;
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
        zero_shot,
        seconds: t0.elapsed().as_secs_f64(),
        parameters,
    })
}
