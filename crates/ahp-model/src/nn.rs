//! Small building blocks: a linear layer and a LayerNorm that are differentiable (candle-nn's
//! fused LayerNorm has no backward pass) but use fused kernels when no gradient is tracked, or
//! when the gradient only has to reach the input through frozen weights ([`crate::ops`]), and
//! the MLP activations.

use ahp_spec::Activation;
use candle_core::{Tensor, D};
use candle_nn::VarBuilder;

/// A linear layer `y = x W^T + b` (HF `nn.Linear` weights: `weight` `[out, in]`, `bias` `[out]`).
///
/// Unlike `candle_nn::Linear`, which broadcasts the weight to a batched matmul, the input is
/// flattened to 2-D so the product is one GEMM, and the weight gradient (when trained) is one
/// `[out, in]` product instead of a per-batch tensor summed afterwards.
#[derive(Debug, Clone)]
pub struct Linear {
    weight: Tensor,
    bias: Option<Tensor>,
}

impl Linear {
    /// Loads `weight` `[out, in]` and `bias` `[out]`.
    pub fn new(in_dim: usize, out_dim: usize, vb: VarBuilder) -> candle_core::Result<Self> {
        Ok(Self {
            weight: vb.get((out_dim, in_dim), "weight")?,
            bias: Some(vb.get(out_dim, "bias")?),
        })
    }

    /// Loads `weight` `[out, in]` only.
    pub fn new_no_bias(in_dim: usize, out_dim: usize, vb: VarBuilder) -> candle_core::Result<Self> {
        Ok(Self {
            weight: vb.get((out_dim, in_dim), "weight")?,
            bias: None,
        })
    }

    /// The weight `[out, in]`.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// The bias `[out]`, if any.
    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }

    /// `true` when neither weight nor bias is trainable (a gradient through this layer then
    /// only has to reach its input, see [`crate::ops::frozen_linear`]).
    pub fn is_frozen(&self) -> bool {
        !self.weight.track_op() && !self.bias.as_ref().is_some_and(|b| b.track_op())
    }

    /// Applies the layer to `x` `[..., in]`.
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let dims = x.dims().to_vec();
        let in_dim = *dims
            .last()
            .ok_or_else(|| candle_core::Error::Msg("linear: scalar input".into()))?;
        let rows: usize = dims[..dims.len() - 1].iter().product();
        if self.is_frozen() && crate::ops::fused_ok(x) {
            return crate::ops::frozen_linear(x, &self.weight, self.bias.as_ref());
        }
        let y = x.reshape((rows, in_dim))?.matmul(&self.weight.t()?)?;
        let y = match &self.bias {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        };
        let mut out_dims = dims;
        let last = out_dims.len() - 1;
        out_dims[last] = self.weight.dim(0)?;
        y.reshape(out_dims)
    }
}

impl candle_core::Module for Linear {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        Linear::forward(self, x)
    }
}

/// LayerNorm over the last dimension with weight and bias, as `torch.nn.LayerNorm`.
#[derive(Debug, Clone)]
pub struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
    eps: f64,
}

impl LayerNorm {
    /// Loads `weight` and `bias` (both `[size]`) from `vb`.
    pub fn new(size: usize, eps: f64, vb: VarBuilder) -> candle_core::Result<Self> {
        Ok(Self {
            weight: vb.get(size, "weight")?,
            bias: vb.get(size, "bias")?,
            eps,
        })
    }

    /// `true` when neither gain nor bias is trainable (then the training path may use the
    /// fused kernel of [`crate::ops::layer_norm`]).
    fn is_frozen(&self) -> bool {
        !self.weight.track_op() && !self.bias.track_op()
    }

    /// Normalizes `x` over its last dimension.
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        if !x.track_op() && x.is_contiguous() {
            return candle_nn::ops::layer_norm(x, &self.weight, &self.bias, self.eps as f32);
        }
        if self.is_frozen() && crate::ops::fused_ok(x) {
            return crate::ops::layer_norm(x, &self.weight, &self.bias, self.eps);
        }
        let n = x.dim(D::Minus1)? as f64;
        let mean = (x.sum_keepdim(D::Minus1)? / n)?;
        let centered = x.broadcast_sub(&mean)?;
        let var = (centered.sqr()?.sum_keepdim(D::Minus1)? / n)?;
        let normed = centered.broadcast_div(&(var + self.eps)?.sqrt()?)?;
        normed
            .broadcast_mul(&self.weight)?
            .broadcast_add(&self.bias)
    }
}

/// Applies an MLP activation.
pub fn activate(act: Activation, x: &Tensor) -> candle_core::Result<Tensor> {
    match act {
        Activation::QuickGelu => x.broadcast_mul(&candle_nn::ops::sigmoid(&(x * 1.702)?)?),
        Activation::Gelu => x.gelu_erf(),
        Activation::GeluTanh => x.gelu(),
        Activation::Relu => x.relu(),
    }
}

/// Softmax over the last dimension that is differentiable (composed of primitive ops) when a
/// gradient is tracked, and uses candle's fused kernel otherwise.
pub fn softmax_last_dim(x: &Tensor) -> candle_core::Result<Tensor> {
    if !x.track_op() && x.is_contiguous() {
        candle_nn::ops::softmax_last_dim(x)
    } else {
        candle_nn::ops::softmax(x, D::Minus1)
    }
}
