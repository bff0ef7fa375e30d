//! `ahp-data`: data-set tools for ahp.
//!
//! * `ahp-data synth --out DIR` writes the synthetic multi-domain data set in DomainBed layout;
//! * `ahp-data preview --out FILE.png` writes a contact sheet (one image per domain and class).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use ahp_data::synth::{self, Style, SynthConfig};
use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(name = "ahp-data", version, about = "Data-set tools for ahp")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
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

#[derive(Args)]
struct SetArgs {
    /// Base seed (same arguments give byte-identical files).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Number of classes (the first N of: circle, square, triangle, star, cross, ring, heart,
    /// arrow, diamond, moon).
    #[arg(long, default_value_t = 6)]
    classes: usize,
    /// Comma-separated domains (styles) to write.
    #[arg(long, default_value = "photo,sketch,cartoon,painting")]
    domains: String,
    /// Images per class and domain.
    #[arg(long, default_value_t = 40)]
    per_class: usize,
    /// Image side in pixels (at least 16).
    #[arg(long, default_value_t = 64)]
    size: u32,
}

impl SetArgs {
    fn config(&self) -> Result<SynthConfig> {
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

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", describe(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error chain on one line, leaving out causes already quoted by the message above them
/// (the library's messages include their I/O cause).
fn describe(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !out.contains(&text) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&text);
        }
    }
    out
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Synth { out, set } => {
            let cfg = set.config()?;
            let start = Instant::now();
            let summary = synth::generate(&cfg, &out).with_context(|| {
                format!("generating the synthetic data set in {}", out.display())
            })?;
            println!("{summary}");
            println!("seed {}, {:.2} s", cfg.seed, start.elapsed().as_secs_f64());
        }
        Command::Preview { out, index, set } => {
            let cfg = set.config()?;
            let sheet = synth::contact_sheet(&cfg, index)?;
            let bytes = synth::encode_png(&sheet, &out)?;
            ahp_spec::files::write_atomic(&out, &bytes)?;
            println!(
                "wrote {}x{} contact sheet ({} domains x {} classes, image {index}) to {}",
                sheet.width(),
                sheet.height(),
                cfg.domains.len(),
                cfg.classes,
                out.display()
            );
        }
    }
    Ok(())
}
