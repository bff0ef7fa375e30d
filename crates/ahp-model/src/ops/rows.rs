//! Row-wise kernels (LayerNorm, softmax, QuickGELU): an op that maps fixed-width rows of its
//! input independently, and a backward kernel that maps rows of (saved tensor, output
//! gradient). The candle `CustomOp1` / `CustomOp2` glue they all share lives here, so each op
//! only states its name, its row width and what it does to a row.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Shape, Tensor};

use super::cpu::{last_dim, map_rows, map_rows2, Res};

/// A forward kernel applied to each `width`-wide row of its input; the output has the input's
/// shape.
pub(super) trait RowOp: Send + Sync + 'static {
    /// The op's name in candle's graph and in errors.
    const NAME: &'static str;
    /// Width of the rows of an input with `layout` (and the check of its shape); by default
    /// its last dimension.
    fn width(&self, layout: &Layout) -> Res<usize> {
        last_dim(layout, Self::NAME)
    }
    /// Writes the output row `out` for the input row `x`.
    fn row(&self, out: &mut [f32], x: &[f32]);
    /// The input gradient from the input `arg`, the output `res` and the output gradient.
    fn backward(&self, arg: &Tensor, res: &Tensor, grad: &Tensor) -> Res<Tensor>;
}

/// A backward kernel applied to each `width`-wide row of a saved tensor and the output
/// gradient (both of one shape); the output is the input gradient.
pub(super) trait RowGrad: Send + Sync {
    /// The kernel's name in errors.
    const NAME: &'static str;
    /// Width of the rows of a saved tensor with `layout`; by default its last dimension.
    fn width(&self, layout: &Layout) -> Res<usize> {
        last_dim(layout, Self::NAME)
    }
    /// Writes the input-gradient row `out` from the saved row and the gradient row.
    fn row(&self, out: &mut [f32], saved: &[f32], grad: &[f32]);
}

/// A [`RowOp`] as a candle op.
struct Rows<K>(K);

impl<K: RowOp> CustomOp1 for Rows<K> {
    fn name(&self) -> &'static str {
        K::NAME
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Res<(CpuStorage, Shape)> {
        let width = self.0.width(layout)?;
        map_rows(storage, layout, K::NAME, width, |out, x| self.0.row(out, x))
    }

    fn bwd(&self, arg: &Tensor, res: &Tensor, grad: &Tensor) -> Res<Option<Tensor>> {
        self.0.backward(arg, res, grad).map(Some)
    }
}

/// A [`RowGrad`] as a candle op (run without a graph node of its own).
struct RowGrads<K>(K);

impl<K: RowGrad> CustomOp2 for RowGrads<K> {
    fn name(&self) -> &'static str {
        K::NAME
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Res<(CpuStorage, Shape)> {
        let width = self.0.width(l1)?;
        map_rows2((s1, l1), (s2, l2), K::NAME, width, |out, saved, grad| {
            self.0.row(out, saved, grad)
        })
    }
}

/// Applies `op` to the rows of `x` as one graph node whose backward pass is `op`'s.
pub(super) fn apply_rows<K: RowOp>(x: &Tensor, op: K) -> Res<Tensor> {
    x.contiguous()?.apply_op1(Rows(op))
}

/// Runs the backward kernel `kernel` over `saved` and `grad`: the input gradient.
pub(super) fn grad_rows<K: RowGrad>(saved: &Tensor, grad: &Tensor, kernel: K) -> Res<Tensor> {
    saved
        .contiguous()?
        .apply_op2_no_bwd(&grad.contiguous()?, &RowGrads(kernel))
}
