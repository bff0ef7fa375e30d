//! The command-line interfaces of ahp-runtime.
//!
//! * [`ImageLimitArgs`]: argument groups shared by the ahp binaries (flattened with
//!   `#[command(flatten)]`, so each flag is declared once).
//! * `predict` (feature `predict`): `ahp-predict` / `ahp predict`, [`predict::PredictArgs`] and
//!   [`predict::main`].
//! * `serve` (feature `serve`): `ahp-serve` / `ahp serve`, [`serve::ServeArgs`] and
//!   [`serve::main`].
//!
//! The standalone binaries and the `ahp` front door flatten the same `Args` struct and call the
//! same `main`, so both run exactly the same code. The `Args` structs carry the command's help
//! (`about`, `long_about`, `after_help`): a subcommand wrapping one gets it as long as it adds no
//! doc comment of its own.

mod limits;
#[cfg(feature = "predict")]
pub mod predict;
#[cfg(feature = "serve")]
pub mod serve;

pub use limits::ImageLimitArgs;

/// `--device`: an execution provider name (`cpu`, `cuda`, `tensorrt`, ...).
#[cfg(any(feature = "predict", feature = "serve"))]
fn parse_device(s: &str) -> Result<crate::ExecutionProvider, String> {
    s.parse()
}

/// Logs to stderr: warnings and errors, plus informational messages with `--verbose`.
#[cfg(any(feature = "predict", feature = "serve"))]
fn init_logger(verbose: bool) {
    crate::init_stderr_logger(if verbose {
        log::LevelFilter::Info
    } else {
        log::LevelFilter::Warn
    });
}

#[cfg(all(test, feature = "predict", feature = "serve"))]
mod tests {
    use clap::CommandFactory;

    /// A front door like `ahp`: the commands as subcommands, without doc comments of their own.
    #[derive(clap::Parser)]
    #[command(name = "ahp")]
    struct FrontDoor {
        #[command(subcommand)]
        command: Command,
    }

    #[derive(clap::Subcommand)]
    enum Command {
        Predict(super::predict::PredictArgs),
        Serve(super::serve::ServeArgs),
    }

    #[test]
    fn subcommands_carry_the_commands_help() {
        let mut front = FrontDoor::command();
        front.build();
        for (name, about) in [
            ("predict", "Classify images with an exported ahp model"),
            ("serve", "Serve an exported ahp model (ONNX) over HTTP"),
        ] {
            let sub = front
                .find_subcommand_mut(name)
                .unwrap_or_else(|| panic!("no subcommand {name}"));
            let help = sub.render_long_help().to_string();
            assert!(help.starts_with(about), "{name}: {help}");
            assert!(help.contains("ORT_DYLIB_PATH"), "{name}: {help}");
            assert!(
                help.contains(&format!("Examples:\n  ahp-{name} model.onnx")),
                "{name}: {help}"
            );
        }
    }
}
