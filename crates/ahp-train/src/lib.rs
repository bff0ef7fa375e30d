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

/// The training device by name: `cpu`, or `cuda` (CUDA device 0; needs the `cuda` feature).
pub fn select_device(name: &str) -> Result<candle_core::Device> {
    match name {
        "cpu" => Ok(candle_core::Device::Cpu),
        "cuda" => {
            if !cfg!(feature = "cuda") {
                return Err(TrainError::option(
                    "device",
                    "cuda: this binary was built without CUDA; rebuild with `--features cuda`",
                ));
            }
            candle_core::Device::new_cuda(0).map_err(|e| {
                TrainError::option("device", format!("cannot open CUDA device 0: {e}"))
            })
        }
        other => Err(TrainError::option(
            "device",
            format!("unknown device `{other}` (expected cpu or cuda)"),
        )),
    }
}

/// Sets the number of CPU threads of candle's tensor kernels (`0` keeps the default: all
/// cores). candle sizes its thread pool from `RAYON_NUM_THREADS` once, on first use, so call
/// this before any tensor work.
pub fn set_cpu_threads(threads: usize) {
    if threads > 0 {
        std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
    }
}
