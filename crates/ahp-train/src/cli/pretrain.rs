//! `ahp-pretrain` / `ahp pretrain`: contrastive pretraining of the small synthetic-domain CLIP
//! that the demo embeds (see [`crate::pretrain`]).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use candle_core::Device;

use crate::pretrain::{pretrain, PretrainOptions};

const EXAMPLES: &str = "Examples:
  ahp-pretrain --out models/ahp-synth-clip
  ahp-pretrain --out /tmp/clip --steps 200 --classes 6 --quiet";

/// Pretrain a small CLIP on synthetic multi-domain images with style+class captions and write
/// it as a Hugging Face checkpoint.
#[derive(clap::Args, Debug, Clone)]
#[command(after_help = EXAMPLES)]
pub struct PretrainCliArgs {
    /// Output checkpoint directory.
    #[arg(long, default_value = "models/ahp-synth-clip")]
    pub out: PathBuf,
    /// Optimizer steps.
    #[arg(long, default_value_t = PretrainOptions::default().steps)]
    pub steps: u64,
    /// Images per step.
    #[arg(long, default_value_t = PretrainOptions::default().batch_size)]
    pub batch_size: usize,
    /// Peak learning rate.
    #[arg(long, default_value_t = PretrainOptions::default().lr)]
    pub lr: f64,
    /// Linear warmup steps (then cosine decay to 0).
    #[arg(long, default_value_t = PretrainOptions::default().warmup_steps)]
    pub warmup_steps: u64,
    /// AdamW weight decay of the weight matrices.
    #[arg(long, default_value_t = PretrainOptions::default().weight_decay)]
    pub weight_decay: f64,
    /// Seed.
    #[arg(long, default_value_t = PretrainOptions::default().seed)]
    pub seed: u64,
    /// Object classes.
    #[arg(long, default_value_t = PretrainOptions::default().classes)]
    pub classes: usize,
    /// Image side in pixels.
    #[arg(long, default_value_t = PretrainOptions::default().image_size)]
    pub image_size: usize,
    /// Patch side in pixels (must divide the image side).
    #[arg(long, default_value_t = PretrainOptions::default().patch_size)]
    pub patch_size: usize,
    /// CPU threads of the tensor kernels (0 = all cores). At this model size one thread is
    /// the fastest: candle's per-op fan-out costs more than the small matrices gain.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Print loss and batch accuracy every this many steps (0 = never).
    #[arg(long, default_value_t = PretrainOptions::default().log_every)]
    pub log_every: u64,
    /// No progress bar (the periodic statistics go to stderr).
    #[arg(long)]
    pub quiet: bool,
}

fn run(a: PretrainCliArgs) -> Result<ExitCode> {
    crate::set_cpu_threads(a.threads);
    let s = pretrain(
        &PretrainOptions {
            out: a.out,
            steps: a.steps,
            batch_size: a.batch_size,
            lr: a.lr,
            warmup_steps: a.warmup_steps,
            weight_decay: a.weight_decay,
            seed: a.seed,
            classes: a.classes,
            image_size: a.image_size,
            patch_size: a.patch_size,
            progress: !a.quiet,
            log_every: a.log_every,
            ..Default::default()
        },
        &Device::Cpu,
    )?;
    println!(
        "wrote {} ({} parameters) in {:.0} s ({:.0} s training), final loss {:.4}",
        s.out.display(),
        s.parameters,
        s.seconds,
        s.train_seconds,
        s.final_loss
    );
    println!("zero-shot accuracy with \"a photo of a {{}}.\":");
    for d in &s.zero_shot {
        println!(
            "  {:<10} {:>6.2}%  ({} images)",
            d.domain,
            100.0 * d.accuracy,
            d.images
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `ahp-pretrain` with parsed arguments; the exit code is 1 on any error.
pub fn main(args: PretrainCliArgs) -> ExitCode {
    crate::retain_freed_memory();
    ahp_spec::exit::finish(run(args), 1)
}
