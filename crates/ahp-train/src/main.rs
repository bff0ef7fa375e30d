//! `ahp-train`: attention head purification training on DomainBed-layout data.

use std::path::PathBuf;
use std::process::ExitCode;

use ahp_spec::run::Method;
use ahp_train::{train, TrainOptions};
use anyhow::{bail, Result};
use candle_core::Device;
use clap::{Parser, ValueEnum};

// Training frees and re-allocates its large activations every step; mimalloc (with
// `ahp_train::retain_freed_memory`) reuses them instead of returning pages to the kernel and
// faulting them in again.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Clone, Copy, Debug, ValueEnum)]
enum MethodArg {
    Ahp,
    HaLora,
    Lora,
    Dig,
    ZeroShot,
}

impl From<MethodArg> for Method {
    fn from(m: MethodArg) -> Self {
        match m {
            MethodArg::Ahp => Method::Ahp,
            MethodArg::HaLora => Method::HaLora,
            MethodArg::Lora => Method::Lora,
            MethodArg::Dig => Method::Dig,
            MethodArg::ZeroShot => Method::ZeroShot,
        }
    }
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum DeviceArg {
    Cpu,
    Cuda,
}

/// Attention head purification (HA-LoRA + domain-invariant gates + MMD) for CLIP,
/// leave-one-domain-out on DomainBed-layout data (`root/<domain>/<class>/<image>`).
#[derive(Parser, Debug)]
#[command(name = "ahp-train", version)]
struct Args {
    /// CLIP checkpoint directory or Hugging Face repo id present in the local cache.
    #[arg(long)]
    clip: String,
    /// Dataset root in DomainBed layout.
    #[arg(long)]
    data: PathBuf,
    /// Held-out (unseen) target domain; repeat `--test-domain` for more.
    #[arg(long = "target-domain", alias = "test-domain", required = true)]
    target_domains: Vec<String>,
    /// Run directory to write.
    #[arg(long)]
    out: PathBuf,
    /// Method (baselines share the data path).
    #[arg(long, value_enum, default_value = "ahp")]
    method: MethodArg,
    /// Optimizer steps.
    #[arg(long, conflicts_with = "epochs")]
    steps: Option<u64>,
    /// Epochs over the source domains' training images (alternative to --steps).
    #[arg(long)]
    epochs: Option<f64>,
    /// Images per step, split evenly over the source domains.
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// Images per evaluation forward pass.
    #[arg(long, default_value_t = 64)]
    eval_batch_size: usize,
    /// Peak learning rate of the LoRA factors.
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    /// Peak learning rate of the gate logits.
    #[arg(long, default_value_t = 1e-2)]
    gate_lr: f64,
    /// AdamW weight decay of the LoRA factors.
    #[arg(long, default_value_t = 0.0)]
    weight_decay: f64,
    /// AdamW weight decay of the gate logits.
    #[arg(long, default_value_t = 0.0)]
    gate_weight_decay: f64,
    /// Linear warmup steps (default: 10% of the steps).
    #[arg(long)]
    warmup_steps: Option<u64>,
    /// Gradient-norm clip of the LoRA factors (their own group; 0 = off).
    #[arg(long, default_value_t = 1.0)]
    grad_clip: f64,
    /// Gradient-norm clip of the gate logits (their own group; 0 = off).
    #[arg(long, default_value_t = 1.0)]
    gate_grad_clip: f64,
    /// Weight of the MMD loss (ahp and dig).
    #[arg(long, default_value_t = 1.0)]
    mmd_weight: f64,
    /// One HA-LoRA rank for every block (default: 8 in the last two blocks, 2 elsewhere).
    #[arg(long, conflicts_with = "ranks")]
    rank: Option<usize>,
    /// Comma-separated HA-LoRA rank per block (one value applies to every block).
    #[arg(long, value_delimiter = ',')]
    ranks: Option<Vec<usize>>,
    /// LoRA alpha: each delta is scaled by alpha / r with its own rank r (PEFT's convention,
    /// for HA-LoRA and plain LoRA alike).
    #[arg(long, default_value_t = 8.0)]
    alpha: f64,
    /// Plain LoRA's ranks: `budget` (HA-LoRA's parameter count, rank r(H+1)/2 per block) or
    /// `as-given` (the --rank/--ranks values themselves).
    #[arg(long, default_value = "budget")]
    lora_ranks: ahp_train::adapters::LoraRankRule,
    /// Seed of initialization, batches and augmentation.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Seed of the in/out split (default: --seed).
    #[arg(long)]
    split_seed: Option<u64>,
    /// Held-out fraction of each source domain (model selection).
    #[arg(long, default_value_t = 0.2)]
    holdout_fraction: f64,
    /// Prompt template with one `{}`; repeat for a prompt ensemble (the class embedding is the
    /// normalized mean over the templates).
    #[arg(long = "template", default_value = ahp_model::DEFAULT_TEMPLATE)]
    templates: Vec<String>,
    /// Accept domains lacking some classes.
    #[arg(long)]
    allow_missing_classes: bool,
    /// Evaluate and checkpoint every this many steps (the first evaluation comes after
    /// `eval-every` updates).
    #[arg(long, default_value_t = 50)]
    eval_every: u64,
    /// Checkpoint to keep: `source-val` (best pooled accuracy on the sources' held-out split)
    /// or `last`.
    #[arg(long, default_value = "source-val")]
    select: ahp_spec::run::Selection,
    /// Fewest held-out images every source domain needs for `--select source-val`.
    #[arg(long, default_value_t = 5)]
    min_holdout: usize,
    /// Continue an interrupted run in --out.
    #[arg(long)]
    resume: bool,
    /// Device.
    #[arg(long, value_enum, default_value = "cpu")]
    device: DeviceArg,
    /// CPU threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

fn device(arg: DeviceArg) -> Result<Device> {
    let name = match arg {
        DeviceArg::Cpu => "cpu",
        DeviceArg::Cuda => "cuda",
    };
    Ok(ahp_train::select_device(name)?)
}

fn run(args: Args) -> Result<()> {
    if let Some(n) = args.threads {
        if n == 0 {
            bail!("--threads must be at least 1");
        }
        // candle's CPU kernels size their thread pool from RAYON_NUM_THREADS; set it before
        // any of them runs.
        std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    }
    let device = device(args.device)?;
    let steps = match (args.steps, args.epochs) {
        (Some(s), _) => s,
        (None, Some(e)) => {
            if !(e.is_finite() && e > 0.0) {
                anyhow::bail!("--epochs: must be a positive number, got {e}");
            }
            let ds = ahp_data::DomainBedDataset::scan(
                &args.data,
                &ahp_data::ScanOptions {
                    allow_missing_classes: args.allow_missing_classes,
                },
            )?;
            let sources: usize = ds
                .domains()
                .iter()
                .enumerate()
                .filter(|(_, d)| !args.target_domains.contains(d))
                .map(|(i, _)| ds.domain_samples(i).len())
                .sum();
            let per_epoch =
                (sources as f64 * (1.0 - args.holdout_fraction) / args.batch_size as f64).ceil();
            (per_epoch * e).ceil().max(1.0) as u64
        }
        (None, None) => 200,
    };
    let ranks = match (args.rank, args.ranks) {
        (Some(r), _) => Some(vec![r]),
        (None, ranks) => ranks,
    };
    let warmup_steps = args.warmup_steps.unwrap_or(steps / 10);
    let summary = train(&TrainOptions {
        clip: args.clip,
        data: args.data,
        target_domains: args.target_domains,
        out: args.out,
        method: args.method.into(),
        steps,
        batch_size: args.batch_size,
        eval_batch_size: args.eval_batch_size,
        lr: args.lr,
        gate_lr: args.gate_lr,
        weight_decay: args.weight_decay,
        gate_weight_decay: args.gate_weight_decay,
        warmup_steps,
        grad_clip: args.grad_clip,
        gate_grad_clip: args.gate_grad_clip,
        mmd_weight: args.mmd_weight,
        ranks,
        alpha: args.alpha,
        lora_rank_rule: args.lora_ranks,
        seed: args.seed,
        split_seed: args.split_seed.unwrap_or(args.seed),
        holdout_fraction: args.holdout_fraction,
        templates: args.templates,
        allow_missing_classes: args.allow_missing_classes,
        eval_every: args.eval_every,
        selection: args.select,
        min_holdout: args.min_holdout,
        resume: args.resume,
        progress: !args.quiet,
        device,
    })?;
    println!("{}", summary.report);
    println!(
        "run directory {} (kept step {} by {}, source-val {:.2}%, {:.1} train images/s, {} unreadable images skipped)",
        summary.run_dir.display(),
        summary.best_step,
        summary.selection.as_str(),
        100.0 * summary.best_source_val_acc,
        summary.images_per_sec,
        summary.skipped_images
    );
    Ok(())
}

fn main() -> ExitCode {
    ahp_train::retain_freed_memory();
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
