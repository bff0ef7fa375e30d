//! # ahp-train
//!
//! Attention head purification training of CLIP on DomainBed-layout data:
//!
//! * **HA-LoRA** ([`trainable`]): per-head low-rank deltas on the vision tower's Q and V
//!   projections (`B` starts at zero, scaling `alpha / r`, ranks per block);
//! * **DIG**: per-block gate logits, `g = H · softmax(logits)`, on each head's output;
//! * **MMD** ([`mmd`]): Gaussian-kernel MMD between source domains on the gated class-token head
//!   features of every block; its gradient updates the gates only;
//! * classification: CLIP logits against the frozen text embeddings of the class prompts.
//!
//! [`train::train`] runs it and writes the run directory described in [`ahp_spec::run`].

pub mod cli;
pub mod embedded;
pub mod error;
pub mod eval;
pub mod mmd;
pub mod optim;
pub mod pretrain;
pub mod state;
pub mod train;
pub mod trainable;

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

/// mimalloc's `purge_delay` option (`mi_option_purge_delay` in mimalloc.h of the pinned
/// libmimalloc-sys 0.1.49, which has no Rust name for it).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// For binaries whose global allocator is mimalloc: keep freed memory for reuse instead of
/// returning it to the OS. A training step frees and re-allocates the same few GiB of
/// activations; returned pages are faulted in and zeroed again by the kernel on the next step
/// (about 7% of a ViT-B/16 step on the CPU). Peak RSS is unchanged. Harmless elsewhere.
pub fn retain_freed_memory() {
    // SAFETY: mi_option_set stores an integer option; -1 ("never purge") is a documented value
    // of purge_delay.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) }
}

#[cfg(test)]
mod tests {
    #[test]
    fn purge_delay_option_is_the_one_set() {
        super::retain_freed_memory();
        // SAFETY: reads an integer option.
        let v = unsafe { libmimalloc_sys::mi_option_get(super::MI_OPTION_PURGE_DELAY) };
        assert_eq!(v, -1);
    }
}
