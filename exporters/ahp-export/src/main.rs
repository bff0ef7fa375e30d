//! `ahp-export`: fold a run (or a zero-shot CLIP) into plain weights and write validated ONNX
//! (the same command as `ahp export`, see `ahp_export::cli`).

use std::process::ExitCode;

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "ahp-export",
    version,
    about = "Export a purified (or zero-shot) CLIP image classifier to ONNX"
)]
struct Cli {
    #[command(flatten)]
    args: ahp_export::cli::ExportArgs,
}

fn main() -> ExitCode {
    ahp_export::cli::main(Cli::parse().args)
}
