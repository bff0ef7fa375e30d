//! A constant linear layer plus a trainable low-rank delta (LoRA / HA-LoRA) as one node.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp3, Layout, Shape, Tensor};
use rayon::prelude::*;

use super::cpu::{err, Res};
use super::linear::{FrozenWeight, InputRows};

const NAME: &str = "frozen-linear-low-rank";

/// `y = x W^T + b + (x A^T) Bd` with `W`, `b` constants and `A` `[R, K]`, `Bd` `[R, N]`
/// trainable (HA-LoRA's `Bd` is block-diagonal over heads). One node instead of seven; the
/// backward pass recomputes the small `x A^T`.
struct FrozenLinearLowRank(FrozenWeight);

/// Adds the delta (and the bias, when there is one) to every `n`-wide row of `out`.
fn add_delta(out: &mut CpuStorage, delta: &CpuStorage, n: usize, bias: Option<&[f32]>) -> Res<()> {
    let (CpuStorage::F32(y), CpuStorage::F32(d)) = (out, delta) else {
        return Err(err("frozen-linear-low-rank: expected f32"));
    };
    y.par_chunks_mut(n)
        .zip(d.par_chunks(n))
        .for_each(|(row, drow)| match bias {
            Some(b) => {
                for ((v, dv), bv) in row.iter_mut().zip(drow).zip(b) {
                    *v += dv + bv;
                }
            }
            None => {
                for (v, dv) in row.iter_mut().zip(drow) {
                    *v += dv;
                }
            }
        });
    Ok(())
}

impl CustomOp3 for FrozenLinearLowRank {
    fn name(&self) -> &'static str {
        NAME
    }

    fn cpu_fwd(
        &self,
        sx: &CpuStorage,
        lx: &Layout,
        sa: &CpuStorage,
        la: &Layout,
        sb: &CpuStorage,
        lb: &Layout,
    ) -> Res<(CpuStorage, Shape)> {
        let rows = InputRows::new(lx, NAME)?;
        let (r, ka) = la.shape().dims2()?;
        let (rb, n) = lb.shape().dims2()?;
        let mut out = self.0.on_cpu(NAME, |w, w_layout| {
            let (nw, kw) = w_layout.shape().dims2()?;
            if kw != rows.k || ka != rows.k || rb != r || nw != n {
                return Err(err(format!(
                    "frozen-linear-low-rank: input width {}, weight {:?}, A {:?}, B {:?}",
                    rows.k,
                    w_layout.dims(),
                    la.dims(),
                    lb.dims()
                )));
            }
            rows.times_transposed(sx, w, w_layout, n)
        })?;
        let xa = rows.times_transposed(sx, sa, la, r)?;
        let delta = xa.matmul(sb, (1, rows.m, n, r), &Layout::contiguous((rows.m, r)), lb)?;
        add_delta(&mut out, &delta, n, self.0.bias.as_deref())?;
        Ok((out, rows.output_shape(n)))
    }

    fn bwd(
        &self,
        x: &Tensor,
        a: &Tensor,
        bd: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Res<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let weight = &self.0.weight;
        let (n, k) = weight.dims2()?;
        let m = grad.elem_count() / n;
        let g = grad.reshape((m, n))?;
        let x2 = x.reshape((m, k))?;
        let gb = g.matmul(&bd.t()?)?; // [M, R]
        let dx = if x.track_op() {
            let dx = (g.matmul(weight)? + gb.matmul(a)?)?;
            Some(dx.reshape(x.dims())?)
        } else {
            None
        };
        let da = a.track_op().then(|| gb.t()?.matmul(&x2)).transpose()?;
        let dbd = bd
            .track_op()
            .then(|| x2.matmul(&a.t()?)?.t()?.matmul(&g))
            .transpose()?;
        Ok((dx, da, dbd))
    }
}

/// `x W^T + b + (x A^T) Bd` for `x` `[..., K]`, constant `weight` `[N, K]` and `bias` `[N]`,
/// trainable `a` `[R, K]` and `bd` `[R, N]`: the projection with its low-rank delta as one
/// node; the backward pass gives `x`, `a` and `bd` their gradients (not the weight). CPU, f32.
pub fn frozen_linear_low_rank(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    a: &Tensor,
    bd: &Tensor,
) -> Res<Tensor> {
    let frozen = FrozenWeight::new(weight, bias, NAME)?;
    x.contiguous()?.apply_op3(
        &a.contiguous()?,
        &bd.contiguous()?,
        FrozenLinearLowRank(frozen),
    )
}
