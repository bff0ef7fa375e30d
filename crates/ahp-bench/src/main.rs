//! `ahp-bench`: the benchmarks that are experiments rather than timings.
//!
//! * `ahp-bench dg`: leave-one-domain-out target accuracy of every method (zero-shot, LoRA,
//!   HA-LoRA, DIG, AHP) over several seeds, as a markdown table and a PNG chart, plus two
//!   analyses of the learned gates: head dropping in gate order vs. random order, and a
//!   per-block gate heatmap.
//!
//! Timings live in the crates they measure (`cargo bench -p ahp-train`, `-p ahp-runtime`, ...).

mod dg;
mod plot;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

// Many small tensors are allocated and freed per step; mimalloc keeps them instead of returning
// pages to the kernel.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "ahp-bench",
    version,
    about = "Benchmarks of attention head purification: leave-one-domain-out accuracy and gate analyses"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Leave-one-domain-out: every target domain x method x seed, head dropping, gate heatmaps.
    Dg(dg::DgArgs),
}

fn main() -> ExitCode {
    ahp_train::retain_freed_memory();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Dg(args) => dg::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
