//! QuickGELU, `x * sigmoid(1.702 x)`, elementwise.

use candle_core::{Layout, Tensor};

use super::cpu::Res;
use super::rows::{apply_rows, grad_rows, RowGrad, RowOp};

/// Chunk width of the elementwise (not row-wise) kernels.
const ELEMENTWISE_CHUNK: usize = 4096;

fn sigmoid(v: f32) -> f32 {
    1.0 / (1.0 + (-v).exp())
}

/// `x * sigmoid(1.702 x)`, over chunks of [`ELEMENTWISE_CHUNK`] elements.
struct QuickGelu;

impl RowOp for QuickGelu {
    const NAME: &'static str = "quick-gelu";

    fn width(&self, _layout: &Layout) -> Res<usize> {
        Ok(ELEMENTWISE_CHUNK)
    }

    fn row(&self, out: &mut [f32], xs: &[f32]) {
        for (o, v) in out.iter_mut().zip(xs) {
            *o = v * sigmoid(1.702 * v);
        }
    }

    fn backward(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Res<Tensor> {
        grad_rows(arg, grad, QuickGeluBwd)
    }
}

/// `dx = dy * (s + 1.702 x s (1 - s))`, `s = sigmoid(1.702 x)`.
struct QuickGeluBwd;

impl RowGrad for QuickGeluBwd {
    const NAME: &'static str = "quick-gelu-bwd";

    fn width(&self, _layout: &Layout) -> Res<usize> {
        Ok(ELEMENTWISE_CHUNK)
    }

    fn row(&self, out: &mut [f32], xs: &[f32], gs: &[f32]) {
        for ((o, v), g) in out.iter_mut().zip(xs).zip(gs) {
            let s = sigmoid(1.702 * v);
            *o = g * (s + 1.702 * v * s * (1.0 - s));
        }
    }
}

/// `x * sigmoid(1.702 x)` (CLIP's QuickGELU). CPU, f32.
pub fn quick_gelu(x: &Tensor) -> Res<Tensor> {
    apply_rows(x, QuickGelu)
}
