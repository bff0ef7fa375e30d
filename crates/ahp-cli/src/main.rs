//! `ahp`: the front door of the toolkit. Every subcommand runs the same code as its standalone
//! binary (`ahp train` is `ahp-train`, `ahp export` is `ahp-export`, ...), plus the end-to-end
//! demo on the embedded model (`ahp demo`), zero-shot classification with any Hugging Face CLIP
//! checkpoint (`ahp classify`) and a checkpoint summary (`ahp info`).

mod classify;
mod demo;
mod info;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

// Training frees and re-allocates its large activations every step; mimalloc (with
// `ahp_train::retain_freed_memory`) reuses them instead of returning pages to the kernel and
// faulting them in again.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const EXAMPLES: &str = "Examples:
  ahp demo                                   the whole job on the embedded model
  ahp train --clip models/ahp-synth-clip --data demo-out/data --target-domain painting --out runs/painting
  ahp export --run runs/painting model.onnx
  ahp predict model.onnx demo-out/data/painting
  ahp serve model.onnx --addr 127.0.0.1:8080
  ahp classify --clip models/ahp-synth-clip --classes circle,square img.png

`ahp <command> --help` shows each command's options and examples.";

#[derive(Parser)]
#[command(
    name = "ahp",
    version,
    about = "Attention head purification for CLIP: train, fold, export, deploy",
    after_help = EXAMPLES
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The subcommands. `about` (not a doc comment) names each in `ahp --help`, so that
/// `ahp <command> --help` keeps the long description of the command's own arguments.
// Parsed once per process and matched right away: the size of the largest variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    #[command(about = "Purification training on DomainBed-layout data (= ahp-train)")]
    Train(ahp_train::cli::train::TrainCliArgs),
    #[command(
        about = "Fold a run's adapters into plain weights and write a validated ONNX model (= ahp-export)"
    )]
    Export(ahp_export::cli::ExportArgs),
    #[command(about = "Classify images with an exported model on ONNX Runtime (= ahp-predict)")]
    Predict(ahp_runtime::cli::predict::PredictArgs),
    #[command(about = "Serve an exported model over HTTP with dynamic batching (= ahp-serve)")]
    Serve(ahp_runtime::cli::serve::ServeArgs),
    #[command(
        about = "The whole job on the embedded default: synthetic domains, zero-shot evaluation, leave-one-domain-out purification training, export to ONNX, ONNX Runtime inference"
    )]
    Demo(demo::DemoArgs),
    #[command(about = "Data-set tools: the synthetic domains, contact sheets (= ahp-data)")]
    Data(ahp_data::cli::DataArgs),
    #[command(
        about = "Benchmarks that are experiments: leave-one-domain-out accuracy of every method (= ahp-bench)"
    )]
    Bench(ahp_bench::cli::BenchArgs),
    #[command(about = "Zero-shot classification of images with a CLIP checkpoint (candle)")]
    Classify(classify::ClassifyArgs),
    #[command(about = "Contrastive pretraining of the small embedded CLIP (= ahp-pretrain)")]
    Pretrain(ahp_train::cli::pretrain::PretrainCliArgs),
    #[command(about = "Print a summary of a CLIP checkpoint")]
    Info(info::InfoArgs),
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Train(a) => ahp_train::cli::train::main(a),
        Command::Export(a) => ahp_export::cli::main(a),
        Command::Predict(a) => ahp_runtime::cli::predict::main(a),
        Command::Serve(a) => ahp_runtime::cli::serve::main(a),
        Command::Data(a) => ahp_data::cli::main(a),
        Command::Bench(a) => ahp_bench::cli::main(a),
        Command::Pretrain(a) => ahp_train::cli::pretrain::main(a),
        Command::Demo(a) => finish(demo::run(a).map(|()| ExitCode::SUCCESS)),
        Command::Classify(a) => finish(classify::run(a)),
        Command::Info(a) => finish(info::run(a)),
    }
}

/// The commands of this binary itself end like the others: `error: ...`, exit code 1.
fn finish(result: anyhow::Result<ExitCode>) -> ExitCode {
    ahp_train::retain_freed_memory();
    ahp_spec::exit::finish(result, 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Command {
        match Cli::try_parse_from(std::iter::once("ahp").chain(args.iter().copied())) {
            Ok(cli) => cli.command,
            Err(e) => panic!("{args:?}: {e}"),
        }
    }

    /// `ahp train`, `ahp bench dg` and `ahp demo` without training flags train the same thing:
    /// the one `TrainConfig::default()`. Only the seeds and the prompt differ, by design: the
    /// demo and the benchmark default to the emoji benchmark and pin the prompt to the one its
    /// CLIP was pretrained with; the demo pins the seeds to its data seed, the benchmark sets
    /// the split seed to its data seed and the training seed per run.
    #[test]
    fn train_bench_and_demo_resolve_the_same_default_config() {
        let train = match parse(&[
            "train",
            "--clip",
            "c",
            "--data",
            "d",
            "--target-domain",
            "t",
            "--out",
            "o",
        ]) {
            Command::Train(a) => a.options().expect("options").config,
            _ => unreachable!(),
        };
        let bench = match parse(&["bench", "dg"]) {
            Command::Bench(a) => match a.command {
                ahp_bench::cli::BenchCommand::Dg(d) => d.base_train_config().expect("bench config"),
            },
            _ => unreachable!(),
        };
        let demo = match parse(&["demo"]) {
            Command::Demo(a) => a.train_config().expect("demo config"),
            _ => unreachable!(),
        };
        let defaults = ahp_spec::TrainConfig::default();
        assert_eq!(train, defaults);
        let unseeded = |c: &ahp_spec::TrainConfig| ahp_spec::TrainConfig {
            seed: 0,
            split_seed: None,
            ..c.clone()
        };
        let default_prompt = |c: &ahp_spec::TrainConfig| ahp_spec::TrainConfig {
            templates: defaults.templates.clone(),
            ..unseeded(c)
        };
        for pinned in [&bench, &demo] {
            assert_eq!(pinned.templates, ["an emoji of a {}."]);
            assert_eq!(default_prompt(pinned), defaults);
        }
        assert_eq!(
            (demo.seed, demo.split_seed),
            (demo::DEMO_SEED, Some(demo::DEMO_SEED))
        );
        assert_eq!(bench.split_seed, Some(7));
        // and the learning rate is the same value everywhere
        assert!([train.lr, bench.lr, demo.lr]
            .iter()
            .all(|&lr| lr == defaults.lr));
    }

    #[test]
    fn flags_override_the_config_file_which_overrides_the_defaults() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("cfg.json");
        std::fs::write(&file, r#"{"lr": 0.05, "steps": 7, "mmd_weight": 3.0}"#).expect("write");
        let f = file.to_str().expect("utf-8");
        let base = [
            "train",
            "--clip",
            "c",
            "--data",
            "d",
            "--target-domain",
            "t",
            "--out",
            "o",
            "--config",
            f,
        ];
        let resolved = |extra: &[&str]| match parse(&[&base[..], extra].concat()) {
            Command::Train(a) => a.options().expect("options").config,
            _ => unreachable!(),
        };
        let c = resolved(&[]);
        assert_eq!((c.lr, c.steps, c.mmd_weight), (0.05, 7, 3.0));
        assert_eq!(c.gate_lr, ahp_spec::TrainConfig::default().gate_lr);
        let c = resolved(&["--lr", "0.01"]);
        assert_eq!((c.lr, c.steps), (0.01, 7));
    }

    /// The demo's and the benchmark's pinned emoji prompt replaces the default only: a
    /// `--config` file that sets templates wins, and `--template` wins over both.
    #[test]
    fn a_pinned_prompt_yields_to_the_config_file_and_the_flag() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("cfg.json");
        std::fs::write(&file, r#"{"templates": ["a drawing of a {}."]}"#).expect("write");
        let f = file.to_str().expect("utf-8");
        let demo = |extra: &[&str]| match parse(&[&["demo"][..], extra].concat()) {
            Command::Demo(a) => a.train_config().expect("demo config").templates,
            _ => unreachable!(),
        };
        let bench = |extra: &[&str]| match parse(&[&["bench", "dg"][..], extra].concat()) {
            Command::Bench(a) => match a.command {
                ahp_bench::cli::BenchCommand::Dg(d) => {
                    d.base_train_config().expect("bench config").templates
                }
            },
            _ => unreachable!(),
        };
        type Templates<'a> = &'a dyn Fn(&[&str]) -> Vec<String>;
        let commands: [Templates; 2] = [&demo, &bench];
        for templates in commands {
            assert_eq!(templates(&[]), ["an emoji of a {}."]);
            assert_eq!(templates(&["--config", f]), ["a drawing of a {}."]);
            assert_eq!(templates(&["--config", f, "--template", "a {}"]), ["a {}"]);
        }
    }

    #[test]
    fn help_lists_the_commands() {
        use clap::CommandFactory;
        let names: Vec<String> = Cli::command()
            .get_subcommands()
            .map(|c| c.get_name().to_string())
            .collect();
        for want in [
            "train", "export", "predict", "serve", "demo", "data", "bench", "classify",
        ] {
            assert!(
                names.iter().any(|n| n == want),
                "{want} missing from {names:?}"
            );
        }
    }
}
