//! `ahp-pretrain`: contrastive pretraining of the small synthetic-domain CLIP that the demo
//! embeds (the code is `ahp_train::cli::pretrain`, also run by `ahp pretrain`).

use std::process::ExitCode;

use clap::Parser;

// Training allocates and frees many large tensors per step; mimalloc reuses them instead of
// returning pages to the kernel (measured: glibc malloc spent ~25% of the time in page faults).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "ahp-pretrain",
    version,
    about = "Pretrain a small CLIP on synthetic multi-domain images (style + class captions) and write it as a Hugging Face checkpoint"
)]
struct Cli {
    #[command(flatten)]
    args: ahp_train::cli::pretrain::PretrainCliArgs,
}

fn main() -> ExitCode {
    ahp_train::cli::pretrain::main(Cli::parse().args)
}
