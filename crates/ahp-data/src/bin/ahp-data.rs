//! `ahp-data`: data-set tools for ahp (the same commands as `ahp data`, see `ahp_data::cli`).

use std::process::ExitCode;

use clap::Parser;

#[derive(Parser)]
#[command(name = "ahp-data", version, about = "Data-set tools for ahp")]
struct Cli {
    #[command(flatten)]
    args: ahp_data::cli::DataArgs,
}

fn main() -> ExitCode {
    ahp_data::cli::main(Cli::parse().args)
}
