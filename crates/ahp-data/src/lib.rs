//! # ahp-data
//!
//! Multi-domain image data for ahp, with no ML framework dependency:
//!
//! * [`synth`]: a procedural multi-domain data set (simple object classes drawn in four
//!   visually distinct styles: photo, sketch, cartoon, painting), written in DomainBed layout
//!   (`<root>/<domain>/<class>/<idx>.png`) by `ahp-data synth`;
//! * [`domainbed`]: scanning a DomainBed-layout directory and splitting it into source domains
//!   (each split in/out) and held-out target domains, deterministically by seed;
//! * [`loader`]: domain-balanced training batches (random resized crop + flip, then CLIP
//!   normalization through `ahp_spec::preprocess`), deterministic by `(seed, step)` so resumed
//!   runs see the same batches, decoded in parallel with an optional bounded prefetch thread,
//!   plus fixed-order evaluation batches;
//! * [`emoji`]: real emoji artwork by independent designers (pinned, verified npm packages,
//!   rasterized with resvg) as a DomainBed tree, `ahp-data emoji`;
//! * [`seed`]: the stable seed-derivation helper everything above uses;
//! * [`cli`]: the `ahp-data` command line (`synth`, `preview`, `emoji`), shared by the standalone
//!   binary and the `ahp data` subcommand.
//!
//! All randomness comes from `rand_chacha::ChaCha8Rng` seeded from values derived with
//! [`seed::derive_seed`], so results are identical across runs, machines and thread counts.

pub mod cli;
pub mod domainbed;
pub mod emoji;
pub mod error;
pub mod loader;
pub mod seed;
pub mod synth;

pub use domainbed::{
    DomainBedDataset, Sample, ScanOptions, SourceSplit, Split, SplitOptions, TargetDomain,
};
pub use error::{DataError, Result};
pub use loader::{
    AugmentConfig, BalancedBatcher, Batch, ColorJitter, EvalBatches, LoaderConfig, LoaderStats,
    Prefetcher, SkippedImage,
};
pub use synth::{Shape, Style, SynthConfig, SynthSummary};
