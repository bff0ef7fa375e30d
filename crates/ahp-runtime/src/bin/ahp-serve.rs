//! `ahp-serve`: an HTTP server classifying images with an exported ahp model on ONNX Runtime.
//! The command itself is [`ahp_runtime::cli::serve`] (it builds its own tokio runtime), shared
//! with `ahp serve`.

use std::process::ExitCode;

use ahp_runtime::cli::serve::ServeArgs;
use clap::Parser;

// No doc comment: the help (about, examples) comes from `ServeArgs`, as in `ahp serve`.
#[derive(Parser)]
#[command(name = "ahp-serve", version)]
struct Cli {
    #[command(flatten)]
    args: ServeArgs,
}

fn main() -> ExitCode {
    ahp_runtime::cli::serve::main(Cli::parse().args)
}
