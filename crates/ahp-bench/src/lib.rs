//! # ahp-bench
//!
//! The benchmarks that are experiments rather than timings.
//!
//! * `ahp-bench dg`: leave-one-domain-out target accuracy of every method (zero-shot, LoRA,
//!   HA-LoRA, DIG, AHP), each tuned on the sources' held-out split (`--sweep`), over several
//!   seeds, under three checkpoint selections (source-val, last, oracle), with paired bootstrap
//!   confidence intervals, as markdown tables and a PNG chart; plus head importance (random
//!   drop, drop by cross-validation, adapt & drop) and a per-block gate heatmap.
//!
//! The command line is [`cli`] (the `ahp-bench` binary and `ahp bench`). Timings live in the crates they measure (`cargo bench -p ahp-train`, `-p ahp-runtime`, ...).

pub mod cli;
pub mod dg;
mod grid;
mod headdrop;
pub mod plot;
mod report;
mod stats;
