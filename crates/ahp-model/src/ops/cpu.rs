//! Shared pieces of the CPU kernels: reading f32 storages and constants, shape checks, and
//! running a kernel over the rows of one or two inputs in parallel.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, DType, Layout, Shape, Tensor};
use rayon::prelude::*;

/// candle's result type, which custom ops return.
pub(super) type Res<T> = candle_core::Result<T>;

/// A kernel error with message `msg`.
pub(super) fn err(msg: impl Into<String>) -> candle_core::Error {
    candle_core::Error::Msg(msg.into())
}

/// The contiguous f32 slice of a CPU storage under `layout`.
pub(super) fn f32_slice<'a>(storage: &'a CpuStorage, layout: &Layout, op: &str) -> Res<&'a [f32]> {
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
pub(super) fn const_vec(t: &Tensor, op: &str) -> Res<Vec<f32>> {
    if !t.device().is_cpu() || t.dtype() != DType::F32 {
        return Err(err(format!("{op}: constants must be f32 on the CPU")));
    }
    t.flatten_all()?.to_vec1::<f32>()
}

/// The size of the last dimension of `layout`, which must be non-empty.
pub(super) fn last_dim(layout: &Layout, op: &str) -> Res<usize> {
    match layout.dims().last() {
        Some(&d) if d > 0 => Ok(d),
        _ => Err(err(format!("{op}: empty last dimension"))),
    }
}

/// Runs `f(out, input)` over the `width`-wide rows of a contiguous f32 input, rows in parallel;
/// the output has the input's shape.
pub(super) fn map_rows(
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
pub(super) fn map_rows2(
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
