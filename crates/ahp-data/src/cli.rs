//! The `ahp-data` command line, shared by the standalone `ahp-data` binary and the `ahp data`
//! subcommand of the workspace's front door, so that both run exactly the same code:
//!
//! * `synth --out DIR` writes the synthetic multi-domain data set in DomainBed layout;
//! * `preview --out FILE.png` writes a contact sheet (one image per domain and class);
//! * `emoji --out DIR` renders real emoji artwork by independent designers (see
//!   [`crate::emoji`]).
//!
//! A binary flattens [`DataArgs`] into its parser and hands the parsed arguments to [`main`].

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};

use crate::emoji;
use crate::synth::{self, Style, SynthConfig};

/// Exit code of a failed command.
const ERROR_EXIT_CODE: u8 = 1;

/// Real command lines shown at the end of `--help`.
const EXAMPLES: &str = "\
Examples:
  ahp-data synth --out data/synth
  ahp-data synth --out data/small --classes 4 --domains photo,sketch --per-class 10 --size 32 --seed 7
  ahp-data preview --out preview.png --index 3
  ahp-data emoji --out data/emoji
  ahp-data emoji --out data/emoji-small --designers openmoji,emojione --classes dog,pizza,rocket --size 96
  ahp-data emoji --list-classes";

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
    /// Render emoji artwork by independent designers (pinned npm packages, fetched with npm
    /// and verified) as DIR/<designer>/<class>/<codepoint>.png, with DIR/<designer>/LICENSE.txt.
    Emoji(EmojiArgs),
}

/// The flags of `ahp-data emoji`.
#[derive(Debug, Args)]
pub struct EmojiArgs {
    /// Output directory (created if missing; one written before is resumed).
    #[arg(long, required_unless_present = "list_classes")]
    pub out: Option<PathBuf>,
    /// Where the fetched npm tarballs are kept [default: $XDG_CACHE_HOME/ahp/npm or
    /// ~/.cache/ahp/npm].
    #[arg(long)]
    pub cache: Option<PathBuf>,
    /// Read the packages unpacked from DIR/<package dir>/package/ instead of fetching them.
    #[arg(long, value_name = "DIR")]
    pub unpacked: Option<PathBuf>,
    /// Render the pretraining designers (every emoji each draws, no skin tones) as
    /// DIR/<designer>/<codepoint>.png with DIR/captions.jsonl, instead of the benchmark.
    #[arg(long)]
    pub pretraining: bool,
    /// Comma-separated designers [default: all benchmark (or, with --pretraining, all
    /// pretraining) designers].
    #[arg(long, value_delimiter = ',')]
    pub designers: Vec<String>,
    /// Comma-separated classes [default: all of the benchmark's].
    #[arg(long, value_delimiter = ',')]
    pub classes: Vec<String>,
    /// Image side in pixels.
    #[arg(long, default_value_t = 64)]
    pub size: u32,
    /// Margin on each side, as a fraction of the side.
    #[arg(long, default_value_t = 0.06)]
    pub margin: f32,
    /// Background colour as RRGGBB hex.
    #[arg(long, default_value = "ffffff")]
    pub background: String,
    /// Also write a contact sheet (per designer a grid of its classes) to this PNG (benchmark).
    #[arg(long, value_name = "FILE.png")]
    pub sheet: Option<PathBuf>,
    /// Print the classes (name, codepoint, dropped family members) and exit.
    #[arg(long)]
    pub list_classes: bool,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
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
        DataCommand::Emoji(a) => emoji(&a),
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

/// `emoji`: writes the tree (or lists the classes) and prints its summary and the time taken.
fn emoji(a: &EmojiArgs) -> Result<()> {
    if a.list_classes {
        for c in emoji::benchmark_classes() {
            println!("{}\t{}\t{}", c.name, c.codepoint, c.dropped.join("|"));
        }
        return Ok(());
    }
    let out = a.out.clone().context("--out is required")?;
    let cfg = emoji_config(a, &out)?;
    let start = Instant::now();
    let summary = emoji::build(&cfg)
        .with_context(|| format!("writing the emoji tree in {}", out.display()))?;
    println!("{summary}");
    if let (Some(path), false) = (&a.sheet, a.pretraining) {
        let classes: Vec<_> = emoji::benchmark_classes()
            .into_iter()
            .filter(|c| cfg.classes.as_ref().is_none_or(|w| w.contains(&c.name)))
            .collect();
        let names: Vec<&str> = cfg.designers.iter().map(String::as_str).collect();
        let sheet = emoji::contact_sheet(&out, &names, &classes, cfg.render.size.min(48))?;
        ahp_spec::files::write_atomic(path, &synth::encode_png(&sheet, path)?)?;
        println!(
            "wrote contact sheet {} ({} designers, top to bottom)",
            path.display(),
            names.len()
        );
    }
    println!("{:.1} s", start.elapsed().as_secs_f64());
    Ok(())
}

/// The library configuration of the flags.
fn emoji_config(a: &EmojiArgs, out: &Path) -> Result<emoji::EmojiConfig> {
    let role = if a.pretraining {
        emoji::Role::Pretraining
    } else {
        emoji::Role::Benchmark
    };
    let mut cfg = emoji::EmojiConfig::new(
        role,
        out,
        &a.cache.clone().unwrap_or_else(crate::emoji::default_cache),
    );
    cfg.unpacked = a.unpacked.clone();
    if !a.designers.is_empty() {
        cfg.designers = a.designers.iter().map(|d| d.trim().to_string()).collect();
    }
    if !a.classes.is_empty() {
        cfg.classes = Some(a.classes.iter().map(|c| c.trim().to_string()).collect());
    }
    cfg.render = emoji::RenderOptions {
        size: a.size,
        margin: a.margin,
        background: parse_rgb(&a.background)?,
    };
    cfg.progress = !a.quiet;
    Ok(cfg)
}

/// `RRGGBB` hex.
fn parse_rgb(hex: &str) -> Result<[u8; 3]> {
    let h = hex.trim_start_matches('#');
    let byte = |i: usize| h.get(i..i + 2).and_then(|s| u8::from_str_radix(s, 16).ok());
    match (h.len(), byte(0), byte(2), byte(4)) {
        (6, Some(r), Some(g), Some(b)) => Ok([r, g, b]),
        _ => anyhow::bail!("--background must be RRGGBB hex, got `{hex}`"),
    }
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
