//! Folding a trained adapter into plain CLIP weights: the exporter uses the model crate's
//! [`ahp_model::fold`] (one merge path for the exporter, the benchmark and the tests), and the
//! file digest of [`ahp_spec::files::sha256_file`].

pub use ahp_model::fold::*;
pub use ahp_spec::files::sha256_file;
