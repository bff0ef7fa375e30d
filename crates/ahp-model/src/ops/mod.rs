//! Fused CPU kernels with a backward pass, for training adapters through a **frozen** CLIP.
//!
//! candle's autograd records every primitive op, so a LayerNorm, softmax or QuickGELU written
//! with primitives keeps three to five full-size intermediate tensors alive per call until the
//! backward pass, and a `matmul` always computes the gradient of both operands, including that
//! of a frozen weight nobody reads (one GEMM as large as the forward one, per linear layer).
//! These ops keep one output each and compute only the input gradient:
//!
//! * [`frozen_linear`]: `x W^T + b` with `W`, `b` constants; backward is `dy W`.
//! * [`frozen_linear_low_rank`]: the same plus a trainable low-rank delta `(x A^T) Bd`.
//! * [`layer_norm`]: LayerNorm with constant gain and bias; backward recomputes the statistics.
//! * [`scaled_softmax_last_dim`]: `softmax(scale * x)`; backward uses the output only.
//! * [`quick_gelu`]: `x * sigmoid(1.702 x)`.
//! * [`split_heads`] / [`merge_heads`]: `[B, N, H*dh] <-> [B, H, N, dh]` in one node each.
//!
//! They run on the CPU in f32 (rows in parallel with rayon); [`fused_ok`] says when a caller may
//! use them. Elsewhere (CUDA, other dtypes, or trainable weights as in `ahp-pretrain`) the
//! callers keep the primitive-op formulation, so those paths are unchanged.
//!
//! Layout: `cpu` (storage access and row mapping shared by all kernels), `rows` (the op glue of
//! the row-wise kernels), then one file per op family.

mod cpu;
mod gelu;
mod head_split;
mod layer_norm;
mod linear;
mod low_rank;
mod rows;
mod softmax;
#[cfg(test)]
mod tests;

use candle_core::{DType, Tensor};

pub use gelu::quick_gelu;
pub use head_split::{merge_heads, split_heads};
pub use layer_norm::layer_norm;
pub use linear::frozen_linear;
pub use low_rank::frozen_linear_low_rank;
pub use softmax::scaled_softmax_last_dim;

/// `true` when `x` carries a gradient and lives on the CPU in f32: the fused training kernels
/// apply.
pub fn fused_ok(x: &Tensor) -> bool {
    x.track_op() && x.device().is_cpu() && x.dtype() == DType::F32
}
