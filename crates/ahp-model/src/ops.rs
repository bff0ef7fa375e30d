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

use candle_core::backend::BackendStorage;
use candle_core::{
    CpuStorage, CustomOp1, CustomOp2, CustomOp3, DType, Layout, Shape, Storage, Tensor,
};
use rayon::prelude::*;

type Res<T> = candle_core::Result<T>;

/// `true` when `x` carries a gradient and lives on the CPU in f32: the fused training kernels
/// apply.
pub fn fused_ok(x: &Tensor) -> bool {
    x.track_op() && x.device().is_cpu() && x.dtype() == DType::F32
}

fn err(msg: impl Into<String>) -> candle_core::Error {
    candle_core::Error::Msg(msg.into())
}

/// The contiguous f32 slice of a CPU storage under `layout`.
fn f32_slice<'a>(storage: &'a CpuStorage, layout: &Layout, op: &str) -> Res<&'a [f32]> {
    let data = match storage {
        CpuStorage::F32(v) => v.as_slice(),
        other => return Err(err(format!("{op}: expected f32, got {:?}", other.dtype()))),
    };
    let (start, end) = layout
        .contiguous_offsets()
        .ok_or_else(|| err(format!("{op}: input is not contiguous")))?;
    Ok(&data[start..end])
}

/// Reads a constant CPU f32 tensor as a contiguous vector.
fn const_vec(t: &Tensor, op: &str) -> Res<Vec<f32>> {
    if !t.device().is_cpu() || t.dtype() != DType::F32 {
        return Err(err(format!("{op}: constants must be f32 on the CPU")));
    }
    t.flatten_all()?.to_vec1::<f32>()
}

/// A linear layer's constant bias as a vector, checked against the weight's output width.
fn bias_vec(bias: Option<&Tensor>, weight: &Tensor, op: &str) -> Res<Option<Vec<f32>>> {
    let Some(b) = bias else { return Ok(None) };
    let b = const_vec(b, op)?;
    if b.len() != weight.dim(0)? {
        return Err(err(format!(
            "{op}: bias has {} entries, weight {:?}",
            b.len(),
            weight.dims()
        )));
    }
    Ok(Some(b))
}

fn last_dim(layout: &Layout, op: &str) -> Res<usize> {
    match layout.dims().last() {
        Some(&d) if d > 0 => Ok(d),
        _ => Err(err(format!("{op}: empty last dimension"))),
    }
}

/// Chunk width of the elementwise (not row-wise) kernels.
const ELEMENTWISE_CHUNK: usize = 4096;

/// Runs `f(out, input)` over the `width`-wide rows of a contiguous f32 input, rows in parallel;
/// the output has the input's shape.
fn map_rows(
    storage: &CpuStorage,
    layout: &Layout,
    op: &str,
    width: usize,
    f: impl Fn(&mut [f32], &[f32]) + Sync,
) -> Res<(CpuStorage, Shape)> {
    let x = f32_slice(storage, layout, op)?;
    let mut y = vec![0f32; x.len()];
    y.par_chunks_mut(width)
        .zip(x.par_chunks(width))
        .for_each(|(out, row)| f(out, row));
    Ok((CpuStorage::F32(y), layout.shape().clone()))
}

/// [`map_rows`] over two inputs of one shape (a backward kernel's saved tensor and the output
/// gradient): `f(out, saved, grad)`.
fn map_rows2(
    (s1, l1): (&CpuStorage, &Layout),
    (s2, l2): (&CpuStorage, &Layout),
    op: &str,
    width: usize,
    f: impl Fn(&mut [f32], &[f32], &[f32]) + Sync,
) -> Res<(CpuStorage, Shape)> {
    let a = f32_slice(s1, l1, op)?;
    let b = f32_slice(s2, l2, op)?;
    if a.len() != b.len() {
        return Err(err(format!(
            "{op}: gradient {:?} and saved tensor {:?} differ in shape",
            l2.dims(),
            l1.dims()
        )));
    }
    let mut y = vec![0f32; a.len()];
    y.par_chunks_mut(width)
        .zip(a.par_chunks(width).zip(b.par_chunks(width)))
        .for_each(|(out, (ra, rb))| f(out, ra, rb));
    Ok((CpuStorage::F32(y), l1.shape().clone()))
}

// ---------------------------------------------------------------------------------------------
// Linear with a constant weight.

struct FrozenLinear {
    weight: Tensor,
    bias: Option<Vec<f32>>,
}

impl CustomOp1 for FrozenLinear {
    fn name(&self) -> &'static str {
        "frozen-linear"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Res<(CpuStorage, Shape)> {
        let k = last_dim(layout, "frozen-linear")?;
        let m = layout.shape().elem_count() / k;
        if !layout.is_contiguous() {
            return Err(err("frozen-linear: input is not contiguous"));
        }
        let (w_storage, w_layout) = self.weight.storage_and_layout();
        let Storage::Cpu(w) = &*w_storage else {
            return Err(err("frozen-linear: weight is not on the CPU"));
        };
        let (n, kw) = w_layout.shape().dims2()?;
        if kw != k {
            return Err(err(format!(
                "frozen-linear: input width {k}, weight {:?}",
                w_layout.dims()
            )));
        }
        let rows = Layout::contiguous_with_offset((m, k), layout.start_offset());
        let mut out = storage.matmul(w, (1, m, n, k), &rows, &w_layout.transpose(0, 1)?)?;
        if let Some(bias) = &self.bias {
            let CpuStorage::F32(y) = &mut out else {
                return Err(err("frozen-linear: expected f32"));
            };
            y.par_chunks_mut(n).for_each(|row| {
                for (v, b) in row.iter_mut().zip(bias) {
                    *v += b;
                }
            });
        }
        let mut dims = layout.dims().to_vec();
        if let Some(last) = dims.last_mut() {
            *last = n;
        }
        Ok((out, Shape::from(dims)))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Res<Option<Tensor>> {
        let n = self.weight.dim(0)?;
        let rows = grad.elem_count() / n;
        let gx = grad.reshape((rows, n))?.matmul(&self.weight)?;
        Ok(Some(gx.reshape(arg.dims())?))
    }
}

/// `x W^T + b` for `x` `[..., K]`, `weight` `[N, K]`, `bias` `[N]`, both constants: one GEMM
/// forward, and a backward pass that computes the input gradient only. CPU, f32.
pub fn frozen_linear(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>) -> Res<Tensor> {
    let bias = bias_vec(bias, weight, "frozen-linear")?;
    x.contiguous()?.apply_op1(FrozenLinear {
        weight: weight.contiguous()?,
        bias,
    })
}

// ---------------------------------------------------------------------------------------------
// Linear with a constant weight plus a trainable low-rank delta (LoRA / HA-LoRA).

/// `y = x W^T + b + (x A^T) Bd` with `W`, `b` constants and `A` `[R, K]`, `Bd` `[R, N]`
/// trainable (HA-LoRA's `Bd` is block-diagonal over heads). One node instead of seven; the
/// backward pass recomputes the small `x A^T`.
struct FrozenLinearLowRank {
    weight: Tensor,
    bias: Option<Vec<f32>>,
}

impl CustomOp3 for FrozenLinearLowRank {
    fn name(&self) -> &'static str {
        "frozen-linear-low-rank"
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
        let k = last_dim(lx, "frozen-linear-low-rank")?;
        let m = lx.shape().elem_count() / k;
        if !lx.is_contiguous() {
            return Err(err("frozen-linear-low-rank: input is not contiguous"));
        }
        let (r, ka) = la.shape().dims2()?;
        let (rb, n) = lb.shape().dims2()?;
        let (w_storage, w_layout) = self.weight.storage_and_layout();
        let Storage::Cpu(w) = &*w_storage else {
            return Err(err("frozen-linear-low-rank: weight is not on the CPU"));
        };
        let (nw, kw) = w_layout.shape().dims2()?;
        if kw != k || ka != k || rb != r || nw != n {
            return Err(err(format!(
                "frozen-linear-low-rank: input width {k}, weight {:?}, A {:?}, B {:?}",
                w_layout.dims(),
                la.dims(),
                lb.dims()
            )));
        }
        let rows = Layout::contiguous_with_offset((m, k), lx.start_offset());
        let mut out = sx.matmul(w, (1, m, n, k), &rows, &w_layout.transpose(0, 1)?)?;
        let xa = sx.matmul(sa, (1, m, r, k), &rows, &la.transpose(0, 1)?)?;
        let delta = xa.matmul(sb, (1, m, n, r), &Layout::contiguous((m, r)), lb)?;
        let (CpuStorage::F32(y), CpuStorage::F32(d)) = (&mut out, &delta) else {
            return Err(err("frozen-linear-low-rank: expected f32"));
        };
        let bias = self.bias.as_deref();
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
        let mut dims = lx.dims().to_vec();
        if let Some(last) = dims.last_mut() {
            *last = n;
        }
        Ok((out, Shape::from(dims)))
    }

    fn bwd(
        &self,
        x: &Tensor,
        a: &Tensor,
        bd: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Res<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (n, k) = self.weight.dims2()?;
        let m = grad.elem_count() / n;
        let g = grad.reshape((m, n))?;
        let x2 = x.reshape((m, k))?;
        let gb = g.matmul(&bd.t()?)?; // [M, R]
        let dx = if x.track_op() {
            let dx = (g.matmul(&self.weight)? + gb.matmul(a)?)?;
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
    let bias = bias_vec(bias, weight, "frozen-linear-low-rank")?;
    x.contiguous()?.apply_op3(
        &a.contiguous()?,
        &bd.contiguous()?,
        FrozenLinearLowRank {
            weight: weight.contiguous()?,
            bias,
        },
    )
}

// ---------------------------------------------------------------------------------------------
// Head split / merge: `[B, N, H*dh] <-> [B, H, N, dh]` as one node each (a reshape, transpose
// and copy would be three, each with a full-size gradient in the backward pass).

/// Copies `dh`-wide rows from `src` so that output row `i` is source row `map(i)`.
fn permute_rows(src: &[f32], dh: usize, map: impl Fn(usize) -> usize + Sync) -> Vec<f32> {
    let mut out = vec![0f32; src.len()];
    out.par_chunks_mut(dh).enumerate().for_each(|(i, row)| {
        let s = map(i) * dh;
        row.copy_from_slice(&src[s..s + dh]);
    });
    out
}

struct SplitHeads {
    heads: usize,
}

impl CustomOp1 for SplitHeads {
    fn name(&self) -> &'static str {
        "split-heads"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Res<(CpuStorage, Shape)> {
        let x = f32_slice(storage, layout, "split-heads")?;
        let (b, n, d) = layout.shape().dims3()?;
        let h = self.heads;
        if h == 0 || d % h != 0 {
            return Err(err(format!(
                "split-heads: width {d} is not a multiple of {h} heads"
            )));
        }
        let dh = d / h;
        // Output row (bi, hi, ni) is source row (bi, ni, hi).
        let out = permute_rows(x, dh, |i| {
            let (ni, bh) = (i % n, i / n);
            let (hi, bi) = (bh % h, bh / h);
            (bi * n + ni) * h + hi
        });
        Ok((CpuStorage::F32(out), Shape::from((b, h, n, dh))))
    }

    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Res<Option<Tensor>> {
        Ok(Some(grad.contiguous()?.apply_op1_no_bwd(&MergeHeads)?))
    }
}

struct MergeHeads;

impl CustomOp1 for MergeHeads {
    fn name(&self) -> &'static str {
        "merge-heads"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Res<(CpuStorage, Shape)> {
        let x = f32_slice(storage, layout, "merge-heads")?;
        let (b, h, n, dh) = layout.shape().dims4()?;
        // Output row (bi, ni, hi) is source row (bi, hi, ni).
        let out = permute_rows(x, dh, |i| {
            let (hi, bn) = (i % h, i / h);
            let (ni, bi) = (bn % n, bn / n);
            (bi * h + hi) * n + ni
        });
        Ok((CpuStorage::F32(out), Shape::from((b, n, h * dh))))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Res<Option<Tensor>> {
        let heads = arg.dim(1)?;
        Ok(Some(
            grad.contiguous()?.apply_op1_no_bwd(&SplitHeads { heads })?,
        ))
    }
}

/// `[B, N, H * dh] -> [B, H, N, dh]` (contiguous). CPU, f32.
pub fn split_heads(x: &Tensor, heads: usize) -> Res<Tensor> {
    x.contiguous()?.apply_op1(SplitHeads { heads })
}

/// `[B, H, N, dh] -> [B, N, H * dh]` (contiguous). CPU, f32.
pub fn merge_heads(x: &Tensor) -> Res<Tensor> {
    x.contiguous()?.apply_op1(MergeHeads)
}

// ---------------------------------------------------------------------------------------------
// LayerNorm with a constant gain and bias.

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

impl CustomOp1 for LayerNormOp {
    fn name(&self) -> &'static str {
        "layer-norm"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Res<(CpuStorage, Shape)> {
        let d = last_dim(layout, "layer-norm")?;
        if d != self.gain.len() {
            return Err(err(format!(
                "layer-norm: width {d}, gain has {}",
                self.gain.len()
            )));
        }
        map_rows(storage, layout, "layer-norm", d, |out, row| {
            let (mean, rstd) = row_stats(row, self.eps);
            for (((o, v), g), b) in out.iter_mut().zip(row).zip(&self.gain).zip(&self.bias) {
                *o = (v - mean) * rstd * g + b;
            }
        })
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Res<Option<Tensor>> {
        let gx = arg.contiguous()?.apply_op2_no_bwd(
            &grad.contiguous()?,
            &LayerNormBwd {
                gain: self.gain.clone(),
                eps: self.eps,
            },
        )?;
        Ok(Some(gx))
    }
}

/// `dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat))`, `dxhat = dy * gain`.
struct LayerNormBwd {
    gain: Vec<f32>,
    eps: f32,
}

impl CustomOp2 for LayerNormBwd {
    fn name(&self) -> &'static str {
        "layer-norm-bwd"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Res<(CpuStorage, Shape)> {
        let d = last_dim(l1, "layer-norm-bwd")?;
        map_rows2((s1, l1), (s2, l2), "layer-norm-bwd", d, |out, row, g| {
            let (mean, rstd) = row_stats(row, self.eps);
            let n = d as f32;
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
        })
    }
}

/// LayerNorm over the last dimension of `x` with constant `gain` and `bias`. CPU, f32.
pub fn layer_norm(x: &Tensor, gain: &Tensor, bias: &Tensor, eps: f64) -> Res<Tensor> {
    x.contiguous()?.apply_op1(LayerNormOp {
        gain: const_vec(gain, "layer-norm")?,
        bias: const_vec(bias, "layer-norm")?,
        eps: eps as f32,
    })
}

// ---------------------------------------------------------------------------------------------
// softmax(scale * x) over the last dimension.

struct ScaledSoftmax {
    scale: f32,
}

impl CustomOp1 for ScaledSoftmax {
    fn name(&self) -> &'static str {
        "scaled-softmax"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Res<(CpuStorage, Shape)> {
        let d = last_dim(layout, "scaled-softmax")?;
        let s = self.scale;
        map_rows(storage, layout, "scaled-softmax", d, |out, row| {
            let max = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v * s));
            let mut sum = 0f32;
            for (o, v) in out.iter_mut().zip(row) {
                *o = (v * s - max).exp();
                sum += *o;
            }
            let inv = 1.0 / sum;
            out.iter_mut().for_each(|o| *o *= inv);
        })
    }

    fn bwd(&self, _arg: &Tensor, res: &Tensor, grad: &Tensor) -> Res<Option<Tensor>> {
        let gx = res
            .contiguous()?
            .apply_op2_no_bwd(&grad.contiguous()?, &SoftmaxBwd { scale: self.scale })?;
        Ok(Some(gx))
    }
}

/// `dx = scale * y * (dy - sum(dy * y))`.
struct SoftmaxBwd {
    scale: f32,
}

impl CustomOp2 for SoftmaxBwd {
    fn name(&self) -> &'static str {
        "scaled-softmax-bwd"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Res<(CpuStorage, Shape)> {
        let d = last_dim(l1, "scaled-softmax-bwd")?;
        map_rows2((s1, l1), (s2, l2), "scaled-softmax-bwd", d, |out, yr, g| {
            let dot: f32 = yr.iter().zip(g).map(|(a, b)| a * b).sum();
            for ((o, yi), gi) in out.iter_mut().zip(yr).zip(g) {
                *o = self.scale * yi * (gi - dot);
            }
        })
    }
}

/// `softmax(scale * x)` over the last dimension. CPU, f32.
pub fn scaled_softmax_last_dim(x: &Tensor, scale: f64) -> Res<Tensor> {
    x.contiguous()?.apply_op1(ScaledSoftmax {
        scale: scale as f32,
    })
}

// ---------------------------------------------------------------------------------------------
// QuickGELU.

struct QuickGelu;

fn sigmoid(v: f32) -> f32 {
    1.0 / (1.0 + (-v).exp())
}

impl CustomOp1 for QuickGelu {
    fn name(&self) -> &'static str {
        "quick-gelu"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Res<(CpuStorage, Shape)> {
        map_rows(
            storage,
            layout,
            "quick-gelu",
            ELEMENTWISE_CHUNK,
            |out, xs| {
                for (o, v) in out.iter_mut().zip(xs) {
                    *o = v * sigmoid(1.702 * v);
                }
            },
        )
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Res<Option<Tensor>> {
        let gx = arg
            .contiguous()?
            .apply_op2_no_bwd(&grad.contiguous()?, &QuickGeluBwd)?;
        Ok(Some(gx))
    }
}

/// `dx = dy * (s + 1.702 x s (1 - s))`, `s = sigmoid(1.702 x)`.
struct QuickGeluBwd;

impl CustomOp2 for QuickGeluBwd {
    fn name(&self) -> &'static str {
        "quick-gelu-bwd"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Res<(CpuStorage, Shape)> {
        map_rows2(
            (s1, l1),
            (s2, l2),
            "quick-gelu-bwd",
            ELEMENTWISE_CHUNK,
            |out, xs, gs| {
                for ((o, v), g) in out.iter_mut().zip(xs).zip(gs) {
                    let s = sigmoid(1.702 * v);
                    *o = g * (s + 1.702 * v * s * (1.0 - s));
                }
            },
        )
    }
}

/// `x * sigmoid(1.702 x)` (CLIP's QuickGELU). CPU, f32.
pub fn quick_gelu(x: &Tensor) -> Res<Tensor> {
    x.contiguous()?.apply_op1(QuickGelu)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var, D};

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .and_then(|d| d.abs())
            .and_then(|d| d.flatten_all())
            .and_then(|d| d.max(0))
            .and_then(|d| d.to_scalar::<f32>())
            .unwrap_or(f32::INFINITY)
    }

    /// Runs `fused` and `reference` on the same input (a variable), backpropagates
    /// `sum(out * w)` for a fixed random `w` through both and compares outputs and input
    /// gradients.
    fn check(
        shape: &[usize],
        fused: impl Fn(&Tensor) -> Res<Tensor>,
        reference: impl Fn(&Tensor) -> Res<Tensor>,
        tol: f32,
    ) -> Res<()> {
        let dev = Device::Cpu;
        let x = Var::from_tensor(&Tensor::randn(0f32, 1.5, shape, &dev)?)?;
        let a = fused(x.as_tensor())?;
        let b = reference(x.as_tensor())?;
        assert_eq!(a.dims(), b.dims());
        assert!(max_diff(&a, &b) <= tol, "forward {}", max_diff(&a, &b));
        let w = Tensor::randn(0f32, 1.0, a.dims(), &dev)?;
        let ga = (a * &w)?.sum_all()?.backward()?;
        let gb = (b * &w)?.sum_all()?.backward()?;
        let (ga, gb) = (
            ga.get(x.as_tensor()).expect("fused grad"),
            gb.get(x.as_tensor()).expect("reference grad"),
        );
        assert!(max_diff(ga, gb) <= tol, "backward {}", max_diff(ga, gb));
        Ok(())
    }

    #[test]
    fn frozen_linear_matches_matmul_and_skips_weight_grad() -> Res<()> {
        let dev = Device::Cpu;
        let w = Tensor::randn(0f32, 1.0, (5, 7), &dev)?;
        let b = Tensor::randn(0f32, 1.0, 5, &dev)?;
        check(
            &[6, 7],
            |x| frozen_linear(x, &w, Some(&b)),
            |x| x.matmul(&w.t()?)?.broadcast_add(&b),
            1e-4,
        )?;
        check(
            &[3, 7],
            |x| frozen_linear(x, &w, None),
            |x| x.matmul(&w.t()?),
            1e-4,
        )
    }

    #[test]
    fn frozen_linear_keeps_leading_dims() -> Res<()> {
        let dev = Device::Cpu;
        let w = Tensor::randn(0f32, 1.0, (5, 7), &dev)?;
        let b = Tensor::randn(0f32, 1.0, 5, &dev)?;
        check(
            &[2, 3, 7],
            |x| frozen_linear(x, &w, Some(&b)),
            |x| x.broadcast_matmul(&w.t()?)?.broadcast_add(&b),
            1e-4,
        )
    }

    #[test]
    fn frozen_linear_low_rank_matches_composite() -> Res<()> {
        let dev = Device::Cpu;
        let w = Tensor::randn(0f32, 1.0, (6, 7), &dev)?;
        let b = Tensor::randn(0f32, 1.0, 6, &dev)?;
        let a = Var::from_tensor(&Tensor::randn(0f32, 1.0, (3, 7), &dev)?)?;
        let bd = Var::from_tensor(&Tensor::randn(0f32, 1.0, (3, 6), &dev)?)?;
        let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (2, 4, 7), &dev)?)?;
        let fused = frozen_linear_low_rank(x.as_tensor(), &w, Some(&b), &a, &bd)?;
        let reference = (x.broadcast_matmul(&w.t()?)?.broadcast_add(&b)?
            + x.broadcast_matmul(&a.t()?)?.broadcast_matmul(&bd)?)?;
        assert!(max_diff(&fused, &reference) < 1e-4);
        let wl = Tensor::randn(0f32, 1.0, fused.dims(), &dev)?;
        let g1 = (fused * &wl)?.sum_all()?.backward()?;
        let g2 = (reference * &wl)?.sum_all()?.backward()?;
        for v in [&x, &a, &bd] {
            let (d1, d2) = (
                g1.get(v.as_tensor()).expect("fused grad"),
                g2.get(v.as_tensor()).expect("reference grad"),
            );
            assert!(
                max_diff(d1, d2) < 1e-3,
                "{:?}: {}",
                v.dims(),
                max_diff(d1, d2)
            );
        }
        // A constant input gets no gradient (and costs no GEMM).
        let c = Tensor::randn(0f32, 1.0, (2, 4, 7), &dev)?;
        let g = frozen_linear_low_rank(&c, &w, None, &a, &bd)?
            .sum_all()?
            .backward()?;
        assert!(g.get(&c).is_none() && g.get(a.as_tensor()).is_some());
        Ok(())
    }

    #[test]
    fn split_and_merge_heads_match_reshape_transpose() -> Res<()> {
        check(
            &[2, 5, 12],
            |x| split_heads(x, 3),
            |x| x.reshape((2, 5, 3, 4))?.transpose(1, 2)?.contiguous(),
            0.0,
        )?;
        check(
            &[2, 3, 5, 4],
            merge_heads,
            |x| x.transpose(1, 2)?.reshape((2, 5, 12)),
            0.0,
        )
    }

    #[test]
    fn layer_norm_matches_composite() -> Res<()> {
        let dev = Device::Cpu;
        let g = Tensor::randn(1f32, 0.3, 16, &dev)?;
        let b = Tensor::randn(0f32, 0.3, 16, &dev)?;
        let eps = 1e-5;
        check(
            &[2, 3, 16],
            |x| layer_norm(x, &g, &b, eps),
            |x| {
                let mean = (x.sum_keepdim(D::Minus1)? / 16.0)?;
                let c = x.broadcast_sub(&mean)?;
                let var = (c.sqr()?.sum_keepdim(D::Minus1)? / 16.0)?;
                c.broadcast_div(&(var + eps)?.sqrt()?)?
                    .broadcast_mul(&g)?
                    .broadcast_add(&b)
            },
            1e-4,
        )
    }

    #[test]
    fn scaled_softmax_matches_composite() -> Res<()> {
        check(
            &[2, 3, 4, 9],
            |x| scaled_softmax_last_dim(x, 0.125),
            |x| candle_nn::ops::softmax(&(x * 0.125)?, D::Minus1),
            1e-5,
        )
    }

    #[test]
    fn quick_gelu_matches_composite() -> Res<()> {
        check(
            &[3, 5000],
            quick_gelu,
            |x| x.broadcast_mul(&candle_nn::ops::sigmoid(&(x * 1.702)?)?),
            1e-5,
        )
    }

    #[test]
    fn bad_inputs_are_errors() -> Res<()> {
        let dev = Device::Cpu;
        let x = Var::from_tensor(&Tensor::zeros((2, 4), DType::F32, &dev)?)?;
        let w = Tensor::zeros((3, 5), DType::F32, &dev)?;
        assert!(frozen_linear(x.as_tensor(), &w, None).is_err());
        let w4 = Tensor::zeros((3, 4), DType::F32, &dev)?;
        let short_bias = Tensor::zeros(2, DType::F32, &dev)?;
        let e = frozen_linear(x.as_tensor(), &w4, Some(&short_bias)).expect_err("bias length");
        assert!(e.to_string().contains("bias has 2 entries"), "{e}");
        let g = Tensor::ones(3, DType::F32, &dev)?;
        assert!(layer_norm(x.as_tensor(), &g, &g, 1e-5).is_err());
        Ok(())
    }
}
