//! `ahp-train` / `ahp train`: purification training on DomainBed-layout data.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use ahp_spec::train_config::TrainArgs;
use ahp_spec::TrainConfig;
use anyhow::Result;

use crate::{train, TrainOptions, TrainSummary};

const EXAMPLES: &str = "Examples:
  ahp-train --clip models/ahp-synth-clip --data demo-out/data --target-domain painting --out runs/painting
  ahp-train --clip openai/clip-vit-base-patch16 --data PACS --target-domain sketch --out runs/sketch --epochs 5 --device cuda
  ahp-train --config runs/painting/run.json --seed 1 --clip models/ahp-synth-clip --data demo-out/data --target-domain painting --out runs/painting-s1";

/// Attention head purification (HA-LoRA + domain-invariant gates + MMD) for CLIP,
/// leave-one-domain-out on DomainBed-layout data (`root/<domain>/<class>/<image>`).
#[derive(clap::Args, Debug, Clone)]
#[command(after_help = EXAMPLES)]
pub struct TrainCliArgs {
    /// CLIP checkpoint directory or Hugging Face repo id present in the local cache.
    #[arg(long)]
    pub clip: String,
    /// Dataset root in DomainBed layout.
    #[arg(long)]
    pub data: PathBuf,
    /// Held-out (unseen) target domain; repeat `--target-domain` for more.
    #[arg(long = "target-domain", alias = "test-domain", required = true)]
    pub target_domains: Vec<String>,
    /// Run directory to write.
    #[arg(long)]
    pub out: PathBuf,
    /// Epochs over the source domains' training images (instead of --steps).
    #[arg(long, conflicts_with = "steps")]
    pub epochs: Option<f64>,
    /// Continue an interrupted run in --out.
    #[arg(long)]
    pub resume: bool,
    /// Device: cpu, or cuda (built with `--features cuda`).
    #[arg(long, default_value = "cpu", value_parser = ["cpu", "cuda"])]
    pub device: String,
    /// CPU threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
    /// What to train and how.
    #[command(flatten)]
    pub train: TrainArgs,
}

impl TrainCliArgs {
    /// The library options these arguments ask for (the configuration resolved: defaults,
    /// `--config`, flags; `--epochs` turned into steps).
    pub fn options(&self) -> Result<TrainOptions> {
        let mut config = self.train.resolve()?;
        if let Some(epochs) = self.epochs {
            config.steps = self.steps_for_epochs(epochs, &config)?;
        }
        Ok(TrainOptions {
            resume: self.resume,
            progress: !self.quiet,
            device: crate::select_device(&self.device)?,
            ..TrainOptions::new(
                &self.clip,
                &self.data,
                &self.target_domains,
                &self.out,
                config,
            )
        })
    }

    /// `epochs` passes over the sources' in-split at the configured batch size.
    fn steps_for_epochs(&self, epochs: f64, config: &TrainConfig) -> Result<u64> {
        if !(epochs.is_finite() && epochs > 0.0) {
            anyhow::bail!("--epochs: must be a positive number, got {epochs}");
        }
        let sources = source_images(&self.data, &self.target_domains, config)?;
        let per_epoch =
            (sources as f64 * (1.0 - config.holdout_fraction) / config.batch_size as f64).ceil();
        Ok((per_epoch * epochs).ceil().max(1.0) as u64)
    }
}

/// Images of the source domains (every domain not held out).
fn source_images(data: &Path, targets: &[String], config: &TrainConfig) -> Result<usize> {
    let ds = ahp_data::DomainBedDataset::scan(
        data,
        &ahp_data::ScanOptions {
            allow_missing_classes: config.allow_missing_classes,
        },
    )?;
    Ok(ds
        .domains()
        .iter()
        .enumerate()
        .filter(|(_, d)| !targets.contains(d))
        .map(|(i, _)| ds.domain_samples(i).len())
        .sum())
}

fn print_summary(summary: &TrainSummary) {
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
}

fn run(args: TrainCliArgs) -> Result<ExitCode> {
    super::set_threads(args.threads)?;
    let summary = train(&args.options()?)?;
    print_summary(&summary);
    Ok(ExitCode::SUCCESS)
}

/// Runs `ahp-train` with parsed arguments; the exit code is 1 on any error.
pub fn main(args: TrainCliArgs) -> ExitCode {
    crate::retain_freed_memory();
    ahp_spec::exit::finish(run(args), 1)
}
