//! # ahp-model
//!
//! CLIP in candle, written so attention heads are first-class: every block's attention is
//! computed head by head, so that
//!
//! * each head's slice of the Q and V projections can carry its own low-rank delta
//!   ([`HeadLowRank`], HA-LoRA),
//! * each head's output can be multiplied by a gate before `out_proj` ([`HeadHooks`], DIG),
//! * the gated per-head outputs of every block can be returned (for the MMD loss).
//!
//! With no hooks the model is exactly transformers' `CLIPModel` (tested against committed
//! transformers outputs). Checkpoints are read in the Hugging Face format (directory, sharded
//! index, or the local HF cache), with every tensor required and shape-checked.
//!
//! ```no_run
//! use ahp_model::{LoadedClip, ZeroShotClassifier, DEFAULT_TEMPLATE, pixel_batch};
//! use candle_core::Device;
//! # fn main() -> ahp_model::Result<()> {
//! let clip = LoadedClip::load("openai/clip-vit-base-patch16", &Device::Cpu)?;
//! let labels = vec!["dog".to_string(), "cat".to_string()];
//! let zs = ZeroShotClassifier::new(&clip.model, &clip.tokenizer, &labels, DEFAULT_TEMPLATE)?;
//! let img = ahp_spec::preprocess::preprocess_file("dog.jpg".as_ref(), &clip.preprocess)?;
//! let logits = zs.logits_for_pixels(&clip.model, &pixel_batch(&[img], &Device::Cpu)?, &[])?;
//! println!("{:?}", zs.predict(&logits, 1)?);
//! # Ok(()) }
//! ```

pub mod checkpoint;
pub mod clip;
pub mod encoder;
pub mod error;
pub mod fold;
pub mod heads;
pub mod nn;
pub mod ops;
pub mod prune;
pub mod run_dir;
pub mod text;
pub mod tokenizer;
pub mod vision;
pub mod zero_shot;

pub use checkpoint::Checkpoint;
pub use clip::{l2_normalize, pixel_batch, ClipModel, ClipOutput, ImageFeatures, LoadedClip};
pub use error::{ModelError, Result};
pub use heads::{fold_gates_into_out_proj, gates_from_logits, HeadHooks, HeadLowRank};
pub use run_dir::{load_run, read_manifest, Adapter};
pub use text::TokenBatch;
pub use tokenizer::ClipTokenizer;
pub use zero_shot::{prompt, Prediction, ZeroShotClassifier, DEFAULT_TEMPLATE};
