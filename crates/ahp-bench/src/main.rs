//! `ahp-bench`: the benchmarks that are experiments rather than timings.
//!
//! * `ahp-bench dg`: leave-one-domain-out target accuracy of every method (zero-shot, LoRA,
//!   HA-LoRA, DIG, AHP), each tuned on the sources' held-out split (`--sweep`), over several
//!   seeds, under three checkpoint selections (source-val, last, oracle), with paired bootstrap
//!   confidence intervals, as markdown tables and a PNG chart; plus head importance (random
//!   drop, drop by cross-validation, adapt & drop) and a per-block gate heatmap.
//!
//! Timings live in the crates they measure (`cargo bench -p ahp-train`, `-p ahp-runtime`, ...).

mod dg;
mod grid;
mod headdrop;
mod plot;
mod report;
mod stats;

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
