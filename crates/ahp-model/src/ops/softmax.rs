//! `softmax(scale * x)` over the last dimension; the backward pass uses the output only.

use candle_core::Tensor;

use super::cpu::Res;
use super::rows::{apply_rows, grad_rows, RowGrad, RowOp};

/// `softmax(scale * x)` per row.
struct ScaledSoftmax {
    scale: f32,
}

impl RowOp for ScaledSoftmax {
    const NAME: &'static str = "scaled-softmax";

    fn row(&self, out: &mut [f32], row: &[f32]) {
        let s = self.scale;
        let max = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v * s));
        let mut sum = 0f32;
        for (o, v) in out.iter_mut().zip(row) {
            *o = (v * s - max).exp();
            sum += *o;
        }
        let inv = 1.0 / sum;
        out.iter_mut().for_each(|o| *o *= inv);
    }

    fn backward(&self, _arg: &Tensor, res: &Tensor, grad: &Tensor) -> Res<Tensor> {
        grad_rows(res, grad, SoftmaxBwd { scale: self.scale })
    }
}

/// `dx = scale * y * (dy - sum(dy * y))`.
struct SoftmaxBwd {
    scale: f32,
}

impl RowGrad for SoftmaxBwd {
    const NAME: &'static str = "scaled-softmax-bwd";

    fn row(&self, out: &mut [f32], yr: &[f32], g: &[f32]) {
        let dot: f32 = yr.iter().zip(g).map(|(a, b)| a * b).sum();
        for ((o, yi), gi) in out.iter_mut().zip(yr).zip(g) {
            *o = self.scale * yi * (gi - dot);
        }
    }
}

/// `softmax(scale * x)` over the last dimension. CPU, f32.
pub fn scaled_softmax_last_dim(x: &Tensor, scale: f64) -> Res<Tensor> {
    apply_rows(
        x,
        ScaledSoftmax {
            scale: scale as f32,
        },
    )
}
