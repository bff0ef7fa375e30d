//! `ahp`: the ahp command line: the end-to-end demo on the embedded model (`ahp demo`),
//! zero-shot classification with any Hugging Face CLIP checkpoint (`ahp classify`) and a
//! checkpoint summary (`ahp info`).

mod demo;

use std::path::{Path, PathBuf};
use std::time::Instant;

use ahp_model::{pixel_batch, LoadedClip, ZeroShotClassifier, DEFAULT_TEMPLATE};
use ahp_spec::preprocess::preprocess_file_with;
use anyhow::{bail, Context, Result};
use candle_core::Device;
use clap::{Parser, Subcommand};

// Training frees and re-allocates its large activations every step; mimalloc (with
// `ahp_train::retain_freed_memory`) reuses them instead of returning pages to the kernel and
// faulting them in again.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "ahp",
    version,
    about = "Attention head purification for CLIP: train, fold, export, deploy"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The whole job on the embedded default: synthetic domains, zero-shot evaluation,
    /// leave-one-domain-out purification training, export to ONNX, ONNX Runtime inference.
    Demo(demo::DemoArgs),
    /// Zero-shot classification of images with a CLIP checkpoint.
    Classify(ClassifyArgs),
    /// Print a summary of a CLIP checkpoint.
    Info {
        /// Checkpoint directory or Hugging Face repo id present in the local cache.
        #[arg(long)]
        clip: String,
    },
}

#[derive(clap::Args)]
struct ClassifyArgs {
    /// Checkpoint directory or Hugging Face repo id present in the local cache.
    #[arg(long)]
    clip: String,
    /// Comma-separated class labels.
    #[arg(long, value_delimiter = ',', required = true)]
    classes: Vec<String>,
    /// Prompt template; `{}` is replaced by the label.
    #[arg(long, default_value = DEFAULT_TEMPLATE)]
    template: String,
    /// Labels shown per image.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    top_k: u32,
    /// Images per forward pass.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..))]
    batch_size: u32,
    /// One JSON object per image instead of a table.
    #[arg(long)]
    json: bool,
    /// Image files or directories (searched non-recursively, sorted).
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    #[command(flatten)]
    limits: ahp_runtime::cli::ImageLimitArgs,
}

const IMAGE_EXTENSIONS: [&str; 8] = ["png", "jpg", "jpeg", "bmp", "gif", "webp", "tif", "tiff"];

fn expand_inputs(inputs: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for input in inputs {
        if input.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(input)
                .with_context(|| format!("{}: cannot list directory", input.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.is_file()
                        && p.extension().and_then(|e| e.to_str()).is_some_and(|e| {
                            IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str())
                        })
                })
                .collect();
            found.sort();
            if found.is_empty() {
                bail!(
                    "{}: no images ({}) in this directory",
                    input.display(),
                    IMAGE_EXTENSIONS.join(", ")
                );
            }
            files.extend(found);
        } else {
            files.push(input.clone());
        }
    }
    Ok(files)
}

fn classify(args: ClassifyArgs) -> Result<()> {
    let device = Device::Cpu;
    let t0 = Instant::now();
    let clip = LoadedClip::load(&args.clip, &device)?;
    let labels: Vec<String> = args.classes.iter().map(|c| c.trim().to_string()).collect();
    if let Some(i) = labels.iter().position(String::is_empty) {
        bail!(
            "--classes: label {} of {} is empty (in {:?})",
            i + 1,
            labels.len(),
            args.classes.join(",")
        );
    }
    if let Some(dup) = labels
        .iter()
        .enumerate()
        .find(|(i, l)| labels[..*i].contains(l))
    {
        bail!("--classes: label `{}` is given twice", dup.1);
    }
    ahp_spec::run::check_templates(std::slice::from_ref(&args.template))
        .map_err(|m| anyhow::anyhow!("--template: {m}"))?;
    let zs = ZeroShotClassifier::new(&clip.model, &clip.tokenizer, &labels, &args.template)?;
    let load_ms = t0.elapsed().as_secs_f64() * 1e3;
    let files = expand_inputs(&args.inputs)?;
    let mut failed = 0usize;
    let mut done = 0usize;
    let t1 = Instant::now();
    if !args.json {
        println!(
            "model {} ({} classes, template \"{}\"), loaded in {load_ms:.0} ms",
            clip.checkpoint.dir.display(),
            labels.len(),
            args.template
        );
    }
    let limits = args.limits.limits();
    for chunk in files.chunks(args.batch_size as usize) {
        let mut ok_paths: Vec<&Path> = Vec::new();
        let mut images = Vec::new();
        for path in chunk {
            match preprocess_file_with(path, &clip.preprocess, &limits) {
                Ok(img) => {
                    ok_paths.push(path);
                    images.push(img);
                }
                Err(e) => {
                    failed += 1;
                    if args.json {
                        println!(
                            "{}",
                            serde_json::json!({"path": path.display().to_string(), "error": e.to_string()})
                        );
                    } else {
                        eprintln!("error: {e}");
                    }
                }
            }
        }
        if images.is_empty() {
            continue;
        }
        let tb = Instant::now();
        let logits = zs.logits_for_pixels(&clip.model, &pixel_batch(&images, &device)?, &[])?;
        let preds = zs.predict(&logits, args.top_k as usize)?;
        let ms = tb.elapsed().as_secs_f64() * 1e3 / images.len() as f64;
        for (path, pred) in ok_paths.iter().zip(preds) {
            done += 1;
            if args.json {
                let top: Vec<_> = pred
                    .top
                    .iter()
                    .map(|(l, p)| serde_json::json!({"label": l, "prob": p}))
                    .collect();
                println!(
                    "{}",
                    serde_json::json!({"path": path.display().to_string(), "top": top, "ms": ms})
                );
            } else {
                let top: Vec<String> = pred
                    .top
                    .iter()
                    .map(|(l, p)| format!("{l} {p:.3}"))
                    .collect();
                println!("{:<40} {}", path.display().to_string(), top.join("  "));
            }
        }
    }
    let secs = t1.elapsed().as_secs_f64();
    if !args.json {
        println!(
            "{done} images classified, {failed} failed, {:.1} images/s",
            done as f64 / secs.max(1e-9)
        );
    }
    if failed > 0 {
        bail!("{failed} of {} inputs could not be read", files.len());
    }
    Ok(())
}

fn info(spec: &str) -> Result<()> {
    let clip = LoadedClip::load(spec, &Device::Cpu)?;
    let c = &clip.checkpoint.config;
    let v = &c.vision_config;
    let t = &c.text_config;
    println!("checkpoint   {}", clip.checkpoint.dir.display());
    println!("weights      {}", clip.checkpoint.weights_display());
    println!(
        "vision       {} px, patch {}, {} blocks x {} heads (d_head {}), width {}, {:?}",
        v.image_size,
        v.patch_size,
        v.num_hidden_layers,
        v.num_attention_heads,
        v.head_dim(),
        v.hidden_size,
        v.hidden_act
    );
    println!(
        "text         context {}, vocab {}, {} blocks x {} heads, width {}, {:?}, eos {}{}",
        t.max_position_embeddings,
        t.vocab_size,
        t.num_hidden_layers,
        t.num_attention_heads,
        t.hidden_size,
        t.hidden_act,
        t.eos_token_id,
        if t.legacy_eos_pooling() {
            " (legacy argmax pooling)"
        } else {
            ""
        }
    );
    println!("projection   {}", c.projection_dim);
    println!(
        "logit_scale  {:.4} (exp {:.2})",
        clip.model.logit_scale()?,
        clip.model.logit_scale()?.exp()
    );
    println!("preprocess   {}", clip.preprocess.resize_rule());
    Ok(())
}

fn main() -> std::process::ExitCode {
    ahp_train::retain_freed_memory();
    let result = match Cli::parse().command {
        Command::Demo(args) => demo::run(args),
        Command::Classify(args) => classify(args),
        Command::Info { clip } => info(&clip),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
