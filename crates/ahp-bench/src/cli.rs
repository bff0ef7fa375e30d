//! `ahp-bench` / `ahp bench`: the command line as library code, so the standalone binary and
//! the `ahp` front door run the same code.

use std::process::ExitCode;

use clap::Subcommand;

const EXAMPLES: &str = "Examples:
  ahp-bench dg --out bench-out/dg
  ahp-bench dg --sweep --seeds 5 --jobs 2 --out bench-out/dg
  ahp-bench dg --clip openai/clip-vit-base-patch16 --data PACS --targets sketch --methods zero-shot,ahp --device cuda";

/// Benchmarks of attention head purification: leave-one-domain-out accuracy and gate analyses.
#[derive(clap::Args, Debug, Clone)]
#[command(after_help = EXAMPLES)]
pub struct BenchArgs {
    /// The benchmark to run.
    #[command(subcommand)]
    pub command: BenchCommand,
}

/// The benchmarks.
#[derive(Subcommand, Debug, Clone)]
pub enum BenchCommand {
    /// Leave-one-domain-out: every target domain x method x seed, head dropping, gate heatmaps.
    Dg(crate::dg::DgArgs),
}

/// Runs `ahp-bench` with parsed arguments; the exit code is 1 on any error.
pub fn main(args: BenchArgs) -> ExitCode {
    ahp_train::retain_freed_memory();
    let result = match args.command {
        BenchCommand::Dg(a) => crate::dg::run(a),
    };
    ahp_spec::exit::finish(result.map(|()| ExitCode::SUCCESS), 1)
}
