//! `ahp-predict`: classify image files with an exported ahp model on ONNX Runtime. The command
//! itself is [`ahp_runtime::cli::predict`], shared with `ahp predict`.

use std::process::ExitCode;

use ahp_runtime::cli::predict::PredictArgs;
use clap::Parser;

// No doc comment: the help (about, examples) comes from `PredictArgs`, as in `ahp predict`.
#[derive(Parser)]
#[command(name = "ahp-predict", version)]
struct Cli {
    #[command(flatten)]
    args: PredictArgs,
}

fn main() -> ExitCode {
    ahp_runtime::cli::predict::main(Cli::parse().args)
}
