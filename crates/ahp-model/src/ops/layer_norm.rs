//! LayerNorm over the last dimension with a constant gain and bias; the backward pass
//! recomputes the row statistics instead of keeping them.

use candle_core::{Layout, Tensor};

use super::cpu::{const_vec, err, last_dim, Res};
use super::rows::{apply_rows, grad_rows, RowGrad, RowOp};

/// `(x - mean) * rstd * gain + bias` per row.
struct LayerNormOp {
    gain: Vec<f32>,
    bias: Vec<f32>,
    eps: f32,
}

/// Mean and reciprocal standard deviation of a row.
fn row_stats(row: &[f32], eps: f32) -> (f32, f32) {
    let n = row.len() as f32;
    let mean = row.iter().sum::<f32>() / n;
    let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
    (mean, 1.0 / (var + eps).sqrt())
}

impl RowOp for LayerNormOp {
    const NAME: &'static str = "layer-norm";

    fn width(&self, layout: &Layout) -> Res<usize> {
        let d = last_dim(layout, Self::NAME)?;
        if d != self.gain.len() {
            return Err(err(format!(
                "layer-norm: width {d}, gain has {}",
                self.gain.len()
            )));
        }
        Ok(d)
    }

    fn row(&self, out: &mut [f32], row: &[f32]) {
        let (mean, rstd) = row_stats(row, self.eps);
        for (((o, v), g), b) in out.iter_mut().zip(row).zip(&self.gain).zip(&self.bias) {
            *o = (v - mean) * rstd * g + b;
        }
    }

    fn backward(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Res<Tensor> {
        let kernel = LayerNormBwd {
            gain: self.gain.clone(),
            eps: self.eps,
        };
        grad_rows(arg, grad, kernel)
    }
}

/// `dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat))`, `dxhat = dy * gain`.
struct LayerNormBwd {
    gain: Vec<f32>,
    eps: f32,
}

impl RowGrad for LayerNormBwd {
    const NAME: &'static str = "layer-norm-bwd";

    fn row(&self, out: &mut [f32], row: &[f32], g: &[f32]) {
        let (mean, rstd) = row_stats(row, self.eps);
        let n = row.len() as f32;
        let (mut s1, mut s2) = (0f32, 0f32);
        for ((v, gi), w) in row.iter().zip(g).zip(&self.gain) {
            let dxhat = gi * w;
            s1 += dxhat;
            s2 += dxhat * (v - mean) * rstd;
        }
        let (m1, m2) = (s1 / n, s2 / n);
        for (((o, v), gi), w) in out.iter_mut().zip(row).zip(g).zip(&self.gain) {
            let xhat = (v - mean) * rstd;
            *o = rstd * (gi * w - m1 - xhat * m2);
        }
    }
}

/// LayerNorm over the last dimension of `x` with constant `gain` and `bias`. CPU, f32.
pub fn layer_norm(x: &Tensor, gain: &Tensor, bias: &Tensor, eps: f64) -> Res<Tensor> {
    let op = LayerNormOp {
        gain: const_vec(gain, LayerNormOp::NAME)?,
        bias: const_vec(bias, LayerNormOp::NAME)?,
        eps: eps as f32,
    };
    apply_rows(x, op)
}
