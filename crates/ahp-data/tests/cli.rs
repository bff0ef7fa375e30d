//! The shared command line: `ahp_data::cli::DataArgs` parses the same way flattened into the
//! standalone binary's parser and nested as the `ahp data` subcommand, and `cli::main` runs it.

use std::process::ExitCode;

use ahp_data::cli::{self, DataArgs, DataCommand};
use clap::{CommandFactory, Parser, Subcommand};

/// The standalone binary's parser (as in `src/bin/ahp-data.rs`).
#[derive(Parser)]
#[command(name = "ahp-data", version, about = "Data-set tools for ahp")]
struct Standalone {
    #[command(flatten)]
    args: DataArgs,
}

/// A front door with `data` as one of its subcommands.
#[derive(Parser)]
#[command(name = "ahp")]
struct FrontDoor {
    #[command(subcommand)]
    command: FrontCommand,
}

#[derive(Subcommand)]
enum FrontCommand {
    /// Data-set tools.
    Data(DataArgs),
}

#[test]
fn parsers_are_consistent() {
    Standalone::command().debug_assert();
    FrontDoor::command().debug_assert();
}

#[test]
fn front_door_and_standalone_parse_alike() {
    let line = [
        "synth",
        "--out",
        "d",
        "--classes",
        "3",
        "--domains",
        "sketch",
        "--size",
        "20",
    ];
    let standalone = Standalone::try_parse_from(std::iter::once("ahp-data").chain(line))
        .expect("standalone parses");
    let FrontCommand::Data(nested) =
        FrontDoor::try_parse_from(["ahp", "data"].into_iter().chain(line))
            .expect("front door parses")
            .command;
    assert_eq!(format!("{:?}", standalone.args), format!("{:?}", nested));
    let DataCommand::Synth { out, set } = nested.command else {
        panic!("not synth");
    };
    assert_eq!(out, std::path::Path::new("d"));
    assert_eq!(
        (set.seed, set.classes, set.per_class, set.size),
        (0, 3, 40, 20)
    );
    assert_eq!(set.domains, "sketch");
}

#[test]
fn help_ends_with_examples() {
    let help = Standalone::command().render_help().to_string();
    assert!(help.contains("Examples:\n  ahp-data synth --out"), "{help}");
    let front = FrontDoor::command();
    let data = front.find_subcommand("data").expect("data subcommand");
    let help = data.clone().render_help().to_string();
    assert!(help.contains("Examples:"), "{help}");
}

#[test]
fn main_writes_a_preview_and_reports_errors_with_exit_code_1() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sheet = dir.path().join("sheet.png");
    let sheet_arg = sheet.to_str().expect("UTF-8 temp path");
    let ok =
        Standalone::try_parse_from(["ahp-data", "preview", "--out", sheet_arg, "--size", "16"])
            .expect("parses");
    assert_eq!(
        format!("{:?}", cli::main(ok.args)),
        format!("{:?}", ExitCode::SUCCESS)
    );
    assert!(sheet.is_file());
    let bad =
        Standalone::try_parse_from(["ahp-data", "preview", "--out", sheet_arg, "--size", "8"])
            .expect("parses");
    assert_eq!(
        format!("{:?}", cli::main(bad.args)),
        format!("{:?}", ExitCode::from(1))
    );
}
