//! `ahp-train`: attention head purification training on DomainBed-layout data (the code is
//! `ahp_train::cli::train`, also run by `ahp train`).

use std::process::ExitCode;

use clap::Parser;

// Training frees and re-allocates its large activations every step; mimalloc (with
// `ahp_train::retain_freed_memory`) reuses them instead of returning pages to the kernel and
// faulting them in again.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "ahp-train",
    version,
    about = "Attention head purification (HA-LoRA + domain-invariant gates + MMD) for CLIP, leave-one-domain-out on DomainBed-layout data (root/<domain>/<class>/<image>)"
)]
struct Cli {
    #[command(flatten)]
    args: ahp_train::cli::train::TrainCliArgs,
}

fn main() -> ExitCode {
    ahp_train::cli::train::main(Cli::parse().args)
}
