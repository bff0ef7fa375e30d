//! `ahp-pretrain` / `ahp pretrain`: contrastive pretraining of a small CLIP from scratch on the
//! synthetic generator or on an image–caption tree of emoji artwork (see [`crate::pretrain`]).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use candle_core::Device;

use crate::pretrain::{
    pretrain, CaptionOptions, PretrainOptions, PretrainSummary, Pretrained, EMOJI_TEMPLATE,
};

const EXAMPLES: &str = "Examples:
  ahp-pretrain --out models/ahp-synth-clip
  ahp-pretrain --out /tmp/clip --steps 200 --classes 6 --quiet
  ahp-data emoji --pretraining --out data/emoji-pretraining && ahp-data emoji --out data/emoji
  ahp-pretrain --captions data/emoji-pretraining --benchmark data/emoji --out /tmp/emoji-clip

An interrupted run continues from its last saved state when the same command is run again.";

/// Pretrain a small CLIP from scratch (on synthetic multi-domain images with style+class
/// captions, or on an image–caption tree of emoji artwork) and write it as a Hugging Face
/// checkpoint.
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
    /// Object classes of the synthetic generator.
    #[arg(long, default_value_t = PretrainOptions::default().classes, conflicts_with = "captions")]
    pub classes: usize,
    /// Pretrain on this image–caption tree (`ahp-data emoji --pretraining --out DIR`) instead
    /// of the synthetic generator.
    #[arg(long, value_name = "DIR")]
    pub captions: Option<PathBuf>,
    /// With --captions: also report zero-shot accuracy on this benchmark tree of designers the
    /// model never sees (`ahp-data emoji --out DIR`).
    #[arg(long, value_name = "DIR", requires = "captions")]
    pub benchmark: Option<PathBuf>,
    /// With --captions: the caption template around each emoji's label (also the zero-shot prompt).
    #[arg(long, default_value = EMOJI_TEMPLATE, requires = "captions")]
    pub template: String,
    /// With --captions: probability that a caption also lists some of the emoji's tags.
    #[arg(long, default_value_t = 0.5, requires = "captions")]
    pub tag_probability: f64,
    /// Vision tower as WIDTH,BLOCKS,HEADS.
    #[arg(long, value_parser = parse_triple, default_value = "128,6,8")]
    pub vision: (usize, usize, usize),
    /// Text tower as WIDTH,BLOCKS,HEADS.
    #[arg(long, value_parser = parse_triple, default_value = "128,4,4")]
    pub text: (usize, usize, usize),
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
    /// Save the resumable state (OUT/pretrain-state.safetensors) every this many steps (0 = never).
    #[arg(long, default_value_t = PretrainOptions::default().save_every)]
    pub save_every: u64,
    /// Stop before this step with the state saved, writing no checkpoint; the same command
    /// without --pause-at continues (to split a long run across sessions).
    #[arg(long, value_name = "STEP")]
    pub pause_at: Option<u64>,
    /// No progress bar (the periodic statistics go to stderr).
    #[arg(long)]
    pub quiet: bool,
}

/// `W,B,H` as three numbers.
fn parse_triple(s: &str) -> std::result::Result<(usize, usize, usize), String> {
    let v: Vec<usize> = s
        .split(',')
        .map(|p| p.trim().parse::<usize>().map_err(|e| format!("`{p}`: {e}")))
        .collect::<std::result::Result<_, _>>()?;
    match v[..] {
        [w, b, h] => Ok((w, b, h)),
        _ => Err(format!("expected WIDTH,BLOCKS,HEADS, got `{s}`")),
    }
}

/// The options of the parsed arguments.
fn options(a: PretrainCliArgs) -> PretrainOptions {
    let captions = a.captions.as_ref().map(|tree| CaptionOptions {
        benchmark: a.benchmark.clone(),
        template: a.template.clone(),
        tag_probability: a.tag_probability,
        ..CaptionOptions::new(tree)
    });
    PretrainOptions {
        out: a.out,
        steps: a.steps,
        batch_size: a.batch_size,
        lr: a.lr,
        warmup_steps: a.warmup_steps,
        weight_decay: a.weight_decay,
        seed: a.seed,
        classes: a.classes,
        captions,
        image_size: a.image_size,
        patch_size: a.patch_size,
        vision: a.vision,
        text: a.text,
        progress: !a.quiet,
        log_every: a.log_every,
        save_every: a.save_every,
        pause_at: a.pause_at,
        ..Default::default()
    }
}

/// The report of a finished pretraining.
fn print_summary(s: &PretrainSummary) {
    if s.resumed_at > 0 {
        println!("resumed at step {}", s.resumed_at);
    }
    if let Some((concepts, images)) = s.tree_size {
        println!("pretrained on {images} images of {concepts} emoji");
    }
    println!(
        "wrote {} ({} parameters) in {:.0} s ({:.0} s training), final loss {:.4}",
        s.out.display(),
        s.parameters,
        s.seconds,
        s.train_seconds,
        s.final_loss
    );
    println!("zero-shot accuracy with \"{}\":", s.template);
    for d in &s.zero_shot {
        let seen = if s.tree_size.is_none() {
            ""
        } else if d.seen {
            "  seen in pretraining"
        } else {
            "  never seen"
        };
        println!(
            "  {:<18} {:>6.2}%  ({} images){seen}",
            d.domain,
            100.0 * d.accuracy,
            d.images
        );
    }
}

fn run(a: PretrainCliArgs) -> Result<ExitCode> {
    crate::set_cpu_threads(a.threads);
    match pretrain(&options(a), &Device::Cpu)? {
        Pretrained::Done(s) => print_summary(&s),
        Pretrained::Paused { at, state } => println!(
            "paused before step {at}; state saved in {} (run the same command without --pause-at to continue)",
            state.display()
        ),
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `ahp-pretrain` with parsed arguments; the exit code is 1 on any error.
pub fn main(args: PretrainCliArgs) -> ExitCode {
    crate::retain_freed_memory();
    ahp_spec::exit::finish(run(args), 1)
}
