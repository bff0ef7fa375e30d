//! Head pruning (heads whose gate is at or below a threshold leave the exported graph): the
//! plan, the masked reference model and the FLOPs saved are the model crate's
//! [`ahp_model::prune`].

pub use ahp_model::prune::*;
