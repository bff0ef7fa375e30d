//! `x W^T + b` with a constant weight and bias, and the pieces the low-rank variant
//! ([`super::low_rank`]) shares with it: the constant weight and the row view of the input.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Storage, Tensor};
use rayon::prelude::*;

use super::cpu::{const_vec, err, last_dim, Res};

/// A linear layer's constant weight `[N, K]` (contiguous) and bias `[N]`.
pub(super) struct FrozenWeight {
    /// The weight `[N, K]`.
    pub(super) weight: Tensor,
    /// The bias, `N` entries.
    pub(super) bias: Option<Vec<f32>>,
}

impl FrozenWeight {
    /// Reads `weight` and `bias` for op `op`, checking the bias against the weight.
    pub(super) fn new(weight: &Tensor, bias: Option<&Tensor>, op: &str) -> Res<Self> {
        let bias = bias_vec(bias, weight, op)?;
        Ok(Self {
            weight: weight.contiguous()?,
            bias,
        })
    }

    /// Runs `f` on the weight's CPU storage and layout.
    pub(super) fn on_cpu<R>(
        &self,
        op: &str,
        f: impl FnOnce(&CpuStorage, &Layout) -> Res<R>,
    ) -> Res<R> {
        let (storage, layout) = self.weight.storage_and_layout();
        let Storage::Cpu(w) = &*storage else {
            return Err(err(format!("{op}: weight is not on the CPU")));
        };
        f(w, layout)
    }
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

/// A linear kernel's contiguous input `[..., K]` seen as `M` rows of width `K`.
pub(super) struct InputRows {
    /// Number of rows.
    pub(super) m: usize,
    /// Row width.
    pub(super) k: usize,
    /// The `[M, K]` layout at the input's offset.
    layout: Layout,
    /// The input's dimensions.
    dims: Vec<usize>,
}

impl InputRows {
    /// The rows of an input with `layout`, which must be contiguous with a non-empty last
    /// dimension.
    pub(super) fn new(layout: &Layout, op: &str) -> Res<Self> {
        let k = last_dim(layout, op)?;
        let m = layout.shape().elem_count() / k;
        if !layout.is_contiguous() {
            return Err(err(format!("{op}: input is not contiguous")));
        }
        Ok(Self {
            m,
            k,
            layout: Layout::contiguous_with_offset((m, k), layout.start_offset()),
            dims: layout.dims().to_vec(),
        })
    }

    /// `x R^T` `[M, N]` for `x` the input's storage and `r` an `[N, K]` matrix.
    pub(super) fn times_transposed(
        &self,
        x: &CpuStorage,
        r: &CpuStorage,
        r_layout: &Layout,
        n: usize,
    ) -> Res<CpuStorage> {
        x.matmul(
            r,
            (1, self.m, n, self.k),
            &self.layout,
            &r_layout.transpose(0, 1)?,
        )
    }

    /// The output shape: the input's, with a last dimension of `n`.
    pub(super) fn output_shape(&self, n: usize) -> Shape {
        let mut dims = self.dims.clone();
        if let Some(last) = dims.last_mut() {
            *last = n;
        }
        Shape::from(dims)
    }
}

const NAME: &str = "frozen-linear";

/// `x W^T + b` with `W`, `b` constants; backward is `dy W`.
struct FrozenLinear(FrozenWeight);

/// Adds `bias` to every `n`-wide row of `out`.
fn add_bias(out: &mut CpuStorage, n: usize, bias: &[f32]) -> Res<()> {
    let CpuStorage::F32(y) = out else {
        return Err(err("frozen-linear: expected f32"));
    };
    y.par_chunks_mut(n).for_each(|row| {
        for (v, b) in row.iter_mut().zip(bias) {
            *v += b;
        }
    });
    Ok(())
}

impl CustomOp1 for FrozenLinear {
    fn name(&self) -> &'static str {
        NAME
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Res<(CpuStorage, Shape)> {
        let rows = InputRows::new(layout, NAME)?;
        let (mut out, n) = self.0.on_cpu(NAME, |w, w_layout| {
            let (n, kw) = w_layout.shape().dims2()?;
            if kw != rows.k {
                return Err(err(format!(
                    "frozen-linear: input width {}, weight {:?}",
                    rows.k,
                    w_layout.dims()
                )));
            }
            Ok((rows.times_transposed(storage, w, w_layout, n)?, n))
        })?;
        if let Some(bias) = &self.0.bias {
            add_bias(&mut out, n, bias)?;
        }
        Ok((out, rows.output_shape(n)))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Res<Option<Tensor>> {
        let weight = &self.0.weight;
        let n = weight.dim(0)?;
        let rows = grad.elem_count() / n;
        let gx = grad.reshape((rows, n))?.matmul(weight)?;
        Ok(Some(gx.reshape(arg.dims())?))
    }
}

/// `x W^T + b` for `x` `[..., K]`, `weight` `[N, K]`, `bias` `[N]`, both constants: one GEMM
/// forward, and a backward pass that computes the input gradient only. CPU, f32.
pub fn frozen_linear(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>) -> Res<Tensor> {
    let frozen = FrozenWeight::new(weight, bias, NAME)?;
    x.contiguous()?.apply_op1(FrozenLinear(frozen))
}
