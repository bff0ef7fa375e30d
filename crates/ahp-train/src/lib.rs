//! # ahp-train
//!
//! Attention head purification training of CLIP on DomainBed-layout data:
//!
//! * **HA-LoRA** ([`adapters`]): per-head low-rank deltas on the vision tower's Q and V
//!   projections (`B` starts at zero, scaling `alpha / r`, ranks per block);
//! * **DIG**: per-block gate logits, `g = H · softmax(logits)`, on each head's output;
//! * **MMD** ([`mmd`]): Gaussian-kernel MMD between source domains on the gated class-token head
//!   features of every block; its gradient updates the gates only;
//! * classification: CLIP logits against the frozen text embeddings of the class prompts.
//!
//! [`train::train`] runs it and writes the run directory described in [`ahp_spec::run`].

pub mod adapters;
pub mod error;
pub mod eval;
pub mod mmd;
pub mod optim;
pub mod pretrain;
pub mod state;
pub mod train;

pub use error::{Result, TrainError};
pub use train::{train, TrainOptions, TrainSummary};
