//! # ahp-wasm (skeleton)
//!
//! In-browser inference of exported ahp models with tract compiled to WebAssembly. Not
//! implemented yet (tracked by the browser issue); this crate currently only fixes its place in
//! the dependency graph: it depends on [`ahp_spec`] for preprocessing and the I/O contract, and
//! never on candle.

pub use ahp_spec::{io, preprocess};
