//! `ahp-bench`: the benchmarks that are experiments rather than timings (the code is
//! `ahp_bench::cli`, also run by `ahp bench`).

use std::process::ExitCode;

use clap::Parser;

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
    #[command(flatten)]
    args: ahp_bench::cli::BenchArgs,
}

fn main() -> ExitCode {
    ahp_bench::cli::main(Cli::parse().args)
}
