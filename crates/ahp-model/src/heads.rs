//! Per-head hooks into the attention of a block: a low-rank delta on each head's slice of the
//! Q or V projection (HA-LoRA), and a gate on each head's output before `out_proj` (DIG).
//!
//! Both are linear in the weights, so they fold into plain projection weights
//! ([`HeadLowRank::delta_weight`], [`fold_gates_into_out_proj`]).

use candle_core::{DType, Tensor, D};

use crate::error::{ModelError, Result};

/// A low-rank delta with one `(A_h, B_h)` pair per head: head `h`'s projection rows get
/// `scaling * B_h @ A_h`, where `A_h` is `[r, D]` and `B_h` is `[d_head, r]`.
///
/// Like PEFT's LoRA, `scaling` (`alpha / r`) is fixed at construction; nothing is merged in
/// place.
#[derive(Debug, Clone)]
pub struct HeadLowRank {
    a: Tensor,
    b: Tensor,
    scaling: f64,
}

impl HeadLowRank {
    /// `a`: `[H, r, D]`, `b`: `[H, d_head, r]`; `name` is used in shape errors.
    pub fn new(a: Tensor, b: Tensor, scaling: f64, name: &str) -> Result<Self> {
        let (h, r, d) = a.dims3().map_err(|_| {
            ModelError::Input(format!(
                "{name}.lora_a: expected [H, r, D], got {:?}",
                a.dims()
            ))
        })?;
        let (hb, dh, rb) = b.dims3().map_err(|_| {
            ModelError::Input(format!(
                "{name}.lora_b: expected [H, d_head, r], got {:?}",
                b.dims()
            ))
        })?;
        if h != hb || r != rb || r == 0 || d == 0 || dh == 0 {
            return Err(ModelError::Input(format!(
                "{name}: lora_a {:?} and lora_b {:?} do not agree (want [H, r, D] and [H, d_head, r])",
                a.dims(),
                b.dims()
            )));
        }
        if !scaling.is_finite() {
            return Err(ModelError::Input(format!(
                "{name}: scaling {scaling} is not finite"
            )));
        }
        Ok(Self { a, b, scaling })
    }

    /// Number of heads `H`.
    pub fn num_heads(&self) -> usize {
        self.a.dims()[0]
    }

    /// Rank `r`.
    pub fn rank(&self) -> usize {
        self.a.dims()[1]
    }

    /// Input width `D`.
    pub fn in_dim(&self) -> usize {
        self.a.dims()[2]
    }

    /// Head width `d_head`.
    pub fn head_dim(&self) -> usize {
        self.b.dims()[1]
    }

    /// The `A` factors, `[H, r, D]`.
    pub fn a(&self) -> &Tensor {
        &self.a
    }

    /// The `B` factors, `[H, d_head, r]`.
    pub fn b(&self) -> &Tensor {
        &self.b
    }

    /// The scaling (`alpha / r`).
    pub fn scaling(&self) -> f64 {
        self.scaling
    }

    /// The delta of the projection's output for input `x` `[B, N, D]`: `[B, N, H * d_head]`,
    /// head-major as the projection's rows are.
    pub fn forward_delta(&self, x: &Tensor) -> Result<Tensor> {
        let (bsz, n, d) = x.dims3()?;
        let (h, r, dh) = (self.num_heads(), self.rank(), self.head_dim());
        if d != self.in_dim() {
            return Err(ModelError::Input(format!(
                "low-rank delta expects input width {}, got {d}",
                self.in_dim()
            )));
        }
        let a = self.a.reshape((h * r, d))?;
        // [B*N, D] @ [D, H*r] @ [H*r, H*dh]: two GEMMs and no copies of the activations.
        let xa = x.reshape((bsz * n, d))?.matmul(&a.t()?)?;
        let out = xa.matmul(&self.block_diagonal_b()?)?;
        Ok(out.reshape((bsz, n, h * dh))?)
    }

    /// `scaling * blockdiag(B_0^T, ..., B_{H-1}^T)`, `[H * r, H * d_head]`: row block `h` maps
    /// head `h`'s rank-`r` code to head `h`'s output columns and to no other head's.
    fn block_diagonal_b(&self) -> Result<Tensor> {
        let (h, r, dh) = (self.num_heads(), self.rank(), self.head_dim());
        let bt = self.b.transpose(1, 2)?; // [H, r, dh]
        let bd = if h == 1 {
            bt.reshape((r, dh))?
        } else {
            let eye = Tensor::eye(h, self.b.dtype(), self.b.device())?.reshape((h, 1, h, 1))?;
            bt.unsqueeze(2)?
                .broadcast_mul(&eye)?
                .reshape((h * r, h * dh))?
        };
        Ok((bd * self.scaling)?)
    }

    /// `proj(x)` plus this delta, `[B, N, H * d_head]`. When training through a frozen
    /// projection on the CPU this is one fused node ([`crate::ops::frozen_linear_low_rank`]);
    /// otherwise `proj.forward(x) + self.forward_delta(x)`.
    pub fn forward_with(&self, proj: &crate::nn::Linear, x: &Tensor) -> Result<Tensor> {
        let tracked = x.track_op() || self.a.track_op() || self.b.track_op();
        let cpu_f32 = x.device().is_cpu() && x.dtype() == DType::F32;
        if proj.is_frozen() && tracked && cpu_f32 {
            let (h, r, d) = (self.num_heads(), self.rank(), self.in_dim());
            return Ok(crate::ops::frozen_linear_low_rank(
                x,
                proj.weight(),
                proj.bias(),
                &self.a.reshape((h * r, d))?,
                &self.block_diagonal_b()?,
            )?);
        }
        Ok((proj.forward(x)? + self.forward_delta(x)?)?)
    }

    /// The folded weight delta `scaling * [B_0 A_0; ...; B_{H-1} A_{H-1}]`, `[H * d_head, D]`,
    /// computed in f32. A pure function: the factors are not modified.
    pub fn delta_weight(&self) -> Result<Tensor> {
        let a = self.a.to_dtype(DType::F32)?;
        let b = self.b.to_dtype(DType::F32)?;
        let (h, dh, d) = (self.num_heads(), self.head_dim(), self.in_dim());
        let w = b.matmul(&a)?.reshape((h * dh, d))?;
        Ok((w * self.scaling)?)
    }
}

/// Gate values `g = H * softmax(logits)` over the heads of one block; `logits` is `[H]`.
/// With all logits equal (the initialization, 0) every gate is 1.
pub fn gates_from_logits(logits: &Tensor) -> Result<Tensor> {
    let h = logits.dims1().map_err(|_| {
        ModelError::Input(format!(
            "gate_logits: expected [H], got {:?}",
            logits.dims()
        ))
    })?;
    let sm = candle_nn::ops::softmax(logits, D::Minus1)?;
    Ok((sm * h as f64)?)
}

/// Folds per-head gates into `out_proj`'s weight `[D, H * d_head]`: the columns of head `h`
/// are multiplied by `gates[h]` (f32; the bias is unchanged).
pub fn fold_gates_into_out_proj(weight: &Tensor, gates: &Tensor) -> Result<Tensor> {
    let (d_out, d_in) = weight.dims2()?;
    let h = gates.dims1()?;
    if h == 0 || d_in % h != 0 {
        return Err(ModelError::Input(format!(
            "out_proj weight {:?} cannot be split into {h} heads",
            weight.dims()
        )));
    }
    let dh = d_in / h;
    let scale = gates
        .to_dtype(DType::F32)?
        .reshape((h, 1))?
        .broadcast_as((h, dh))?
        .reshape((1, d_in))?;
    Ok(weight
        .to_dtype(DType::F32)?
        .broadcast_mul(&scale)?
        .reshape((d_out, d_in))?)
}

/// The hooks of one block's attention. All optional; an empty set is plain CLIP.
#[derive(Debug, Clone, Default)]
pub struct HeadHooks {
    /// Per-head low-rank delta on the Q projection.
    pub q: Option<HeadLowRank>,
    /// Per-head low-rank delta on the V projection.
    pub v: Option<HeadLowRank>,
    /// Gate logits `[H]`; the gates are `H * softmax(logits)`.
    pub gate_logits: Option<Tensor>,
}

impl HeadHooks {
    /// `true` when no hook is set.
    pub fn is_empty(&self) -> bool {
        self.q.is_none() && self.v.is_none() && self.gate_logits.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn forward_delta_equals_delta_weight() -> Result<()> {
        let dev = Device::Cpu;
        let (h, r, d, dh) = (3, 2, 6, 2);
        let a = Tensor::randn(0f32, 1., (h, r, d), &dev)?;
        let b = Tensor::randn(0f32, 1., (h, dh, r), &dev)?;
        let lr = HeadLowRank::new(a, b, 0.5, "t")?;
        let x = Tensor::randn(0f32, 1., (2, 4, d), &dev)?;
        let via_forward = lr.forward_delta(&x)?;
        let w = lr.delta_weight()?;
        let via_weight = x.broadcast_matmul(&w.t()?)?;
        let diff = (via_forward - via_weight)?
            .abs()?
            .max_all()?
            .to_scalar::<f32>()?;
        assert!(diff < 1e-5, "{diff}");
        Ok(())
    }

    #[test]
    fn zero_logits_give_unit_gates_summing_to_h() -> Result<()> {
        let g = gates_from_logits(&Tensor::zeros(5, DType::F32, &Device::Cpu)?)?;
        assert_eq!(g.to_vec1::<f32>()?, vec![1.0; 5]);
        let g = gates_from_logits(&Tensor::new(&[0.3f32, -1.0, 2.0], &Device::Cpu)?)?;
        let sum: f32 = g.to_vec1::<f32>()?.iter().sum();
        assert!((sum - 3.0).abs() < 1e-5);
        Ok(())
    }

    #[test]
    fn shape_mismatch_is_an_error() -> Result<()> {
        let dev = Device::Cpu;
        let a = Tensor::zeros((2, 2, 4), DType::F32, &dev)?;
        let b = Tensor::zeros((3, 2, 2), DType::F32, &dev)?;
        let err = HeadLowRank::new(a, b, 1.0, "vision.layers.0.q").expect_err("mismatch");
        assert!(err.to_string().contains("vision.layers.0.q"), "{err}");
        Ok(())
    }
}
