//! The `ahp-data` command line, shared by the standalone `ahp-data` binary and the `ahp data`
//! subcommand of the workspace's front door, so that both run exactly the same code:
//!
//! * `synth --out DIR` writes the synthetic multi-domain data set in DomainBed layout;
//! * `preview --out FILE.png` writes a contact sheet (one image per domain and class).
//!
//! A binary flattens [`DataArgs`] into its parser and hands the parsed arguments to [`main`].

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};

use crate::synth::{self, Style, SynthConfig};

/// Exit code of a failed command.
const ERROR_EXIT_CODE: u8 = 1;

/// Real command lines shown at the end of `--help`.
const EXAMPLES: &str = "\
Examples:
  ahp-data synth --out data/synth
  ahp-data synth --out data/small --classes 4 --domains photo,sketch --per-class 10 --size 32 --seed 7
  ahp-data preview --out preview.png --index 3";

/// The arguments of `ahp-data` (and of `ahp data`): one subcommand.
#[derive(Debug, Args)]
#[command(after_help = EXAMPLES)]
pub struct DataArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: DataCommand,
}

/// The subcommands of `ahp-data`.
#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Write the synthetic multi-domain data set as DIR/<domain>/<class>/<idx>.png.
    Synth {
        /// Output directory (created if missing).
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        set: SetArgs,
    },
    /// Write a contact sheet PNG: one row per domain, one column per class.
    Preview {
        /// Output PNG file.
        #[arg(long)]
        out: PathBuf,
        /// Which image of each class and domain to show.
        #[arg(long, default_value_t = 0)]
        index: usize,
        #[command(flatten)]
        set: SetArgs,
    },
}

/// Which synthetic data set: the flags shared by `synth` and `preview`.
#[derive(Debug, Args)]
pub struct SetArgs {
    /// Base seed (same arguments give byte-identical files).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Number of classes (the first N of: circle, square, triangle, star, cross, ring, heart,
    /// arrow, diamond, moon).
    #[arg(long, default_value_t = 6)]
    pub classes: usize,
    /// Comma-separated domains (styles) to write.
    #[arg(long, default_value = "photo,sketch,cartoon,painting")]
    pub domains: String,
    /// Images per class and domain.
    #[arg(long, default_value_t = 40)]
    pub per_class: usize,
    /// Image side in pixels (at least 16).
    #[arg(long, default_value_t = 64)]
    pub size: u32,
}

impl SetArgs {
    /// The validated generator configuration these flags describe.
    pub fn config(&self) -> Result<SynthConfig> {
        let cfg = SynthConfig {
            seed: self.seed,
            classes: self.classes,
            domains: Style::parse_list(&self.domains)?,
            per_class: self.per_class,
            size: self.size,
        };
        cfg.validate()?;
        Ok(cfg)
    }
}

/// Runs the parsed command: prints what it wrote on stdout and returns success, or prints
/// `error: <message and causes>` on stderr and returns exit code 1.
pub fn main(args: DataArgs) -> ExitCode {
    let result = run(args).map(|()| ExitCode::SUCCESS).map_err(OneLine);
    ahp_spec::exit::finish(result, ERROR_EXIT_CODE)
}

fn run(args: DataArgs) -> Result<()> {
    match args.command {
        DataCommand::Synth { out, set } => synth(&out, &set),
        DataCommand::Preview { out, index, set } => preview(&out, index, &set),
    }
}

/// `synth`: writes the data set into `out` and prints its summary and the time taken.
fn synth(out: &Path, set: &SetArgs) -> Result<()> {
    let cfg = set.config()?;
    let start = Instant::now();
    let summary = synth::generate(&cfg, out)
        .with_context(|| format!("generating the synthetic data set in {}", out.display()))?;
    println!("{summary}");
    println!("seed {}, {:.2} s", cfg.seed, start.elapsed().as_secs_f64());
    Ok(())
}

/// `preview`: writes the contact sheet of image `index` to `out`.
fn preview(out: &Path, index: usize, set: &SetArgs) -> Result<()> {
    let cfg = set.config()?;
    let sheet = synth::contact_sheet(&cfg, index)?;
    let bytes = synth::encode_png(&sheet, out)?;
    ahp_spec::files::write_atomic(out, &bytes)?;
    println!(
        "wrote {}x{} contact sheet ({} domains x {} classes, image {index}) to {}",
        sheet.width(),
        sheet.height(),
        cfg.domains.len(),
        cfg.classes,
        out.display()
    );
    Ok(())
}

/// An error shown as its chain of causes on one line, leaving out causes already quoted by
/// the message above them (the library's messages include their I/O cause).
struct OneLine(anyhow::Error);

impl fmt::Display for OneLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::new();
        for cause in self.0.chain() {
            let text = cause.to_string();
            if !out.contains(&text) {
                if !out.is_empty() {
                    out.push_str(": ");
                }
                out.push_str(&text);
            }
        }
        f.write_str(&out)
    }
}
