//! The embedded benchmarks: the data `ahp demo` and `ahp-bench dg` run on by default, each with
//! the CLIP committed under `models/` that was pretrained for it and the prompt it was
//! pretrained with. Said once here so that the demo and the benchmark cannot drift apart.

use std::path::{Path, PathBuf};

use ahp_data::emoji::{EmojiConfig, EmojiSummary, Role};

/// An embedded benchmark.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Embedded {
    /// The emoji benchmark: 210 classes drawn by five designers the emoji CLIP never saw
    /// (fetched from npm, pinned and verified; cached under ~/.cache/ahp/npm).
    Emoji,
    /// Synthetic shapes in four styles (offline, rendered on the spot).
    Synthetic,
}

impl Embedded {
    /// The embedded CLIP pretrained for this data (a directory relative to the repository).
    pub fn clip(self) -> &'static str {
        match self {
            Self::Emoji => "models/ahp-emoji-clip",
            Self::Synthetic => "models/ahp-synth-clip",
        }
    }

    /// The prompt template the embedded CLIP was pretrained with.
    pub fn template(self) -> &'static str {
        match self {
            Self::Emoji => crate::pretrain::EMOJI_TEMPLATE,
            Self::Synthetic => ahp_model::DEFAULT_TEMPLATE,
        }
    }
}

/// The emoji data's flags, flattened by `ahp demo` and `ahp-bench dg`.
#[derive(clap::Args, Debug, Clone, Default, PartialEq, Eq)]
#[command(next_help_heading = "Emoji data (--data emoji)")]
pub struct EmojiArgs {
    /// Read the npm packages unpacked from this directory instead of fetching them
    /// (`DIR/<package dir>/package/...`, as `ahp-data emoji --unpacked`).
    #[arg(long, value_name = "DIR")]
    pub unpacked: Option<PathBuf>,
    /// Only these classes, comma-separated (default: all 210).
    #[arg(long, value_delimiter = ',', value_name = "CLASSES")]
    pub emoji_classes: Option<Vec<String>>,
}

impl EmojiArgs {
    /// The first flag given, to refuse it where the data is not the emoji benchmark.
    pub fn first_given(&self) -> Option<&'static str> {
        if self.unpacked.is_some() {
            Some("--unpacked")
        } else if self.emoji_classes.is_some() {
            Some("--emoji-classes")
        } else {
            None
        }
    }

    /// The benchmark tree these flags ask for, written to `out` at `size` pixels.
    pub fn benchmark(&self, out: &Path, size: u32, progress: bool) -> EmojiBenchmark {
        EmojiBenchmark {
            unpacked: self.unpacked.clone(),
            classes: self.emoji_classes.clone(),
            progress,
            ..EmojiBenchmark::new(out, size)
        }
    }
}

/// Where and how to build the emoji benchmark tree (`ahp-data emoji` with its defaults).
#[derive(Debug, Clone)]
pub struct EmojiBenchmark {
    /// The DomainBed tree to write (`out/<designer>/<class>/<image>.png`).
    pub out: PathBuf,
    /// Side of the rendered images in pixels (the checkpoint's image size).
    pub size: u32,
    /// Read the npm packages unpacked from this directory instead of fetching them.
    pub unpacked: Option<PathBuf>,
    /// Only these classes (default: all of them).
    pub classes: Option<Vec<String>>,
    /// Show progress bars.
    pub progress: bool,
}

impl EmojiBenchmark {
    /// All classes, fetched through npm into the default cache, rendered at `size` pixels.
    pub fn new(out: &Path, size: u32) -> Self {
        Self {
            out: out.to_path_buf(),
            size,
            unpacked: None,
            classes: None,
            progress: true,
        }
    }

    /// Fetches (or reuses) and renders the benchmark designers' artwork.
    pub fn build(&self) -> ahp_data::Result<EmojiSummary> {
        let mut cfg = EmojiConfig::new(
            Role::Benchmark,
            &self.out,
            &ahp_data::emoji::default_cache(),
        );
        cfg.unpacked = self.unpacked.clone();
        cfg.classes = self.classes.clone();
        cfg.render.size = self.size;
        cfg.progress = self.progress;
        ahp_data::emoji::build(&cfg)
    }
}

/// The benchmark designers' names, comma-separated (for messages).
pub fn benchmark_designers() -> String {
    ahp_data::emoji::designers(Role::Benchmark)
        .iter()
        .map(|d| d.name)
        .collect::<Vec<_>>()
        .join(", ")
}
