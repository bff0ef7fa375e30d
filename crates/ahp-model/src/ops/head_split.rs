//! Head split / merge: `[B, N, H*dh] <-> [B, H, N, dh]` as one node each (a reshape, transpose
//! and copy would be three, each with a full-size gradient in the backward pass). Each is the
//! other's backward pass.

use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor};
use rayon::prelude::*;

use super::cpu::{err, f32_slice, Res};

/// Copies `dh`-wide rows from `src` so that output row `i` is source row `map(i)`.
fn permute_rows(src: &[f32], dh: usize, map: impl Fn(usize) -> usize + Sync) -> Vec<f32> {
    let mut out = vec![0f32; src.len()];
    out.par_chunks_mut(dh).enumerate().for_each(|(i, row)| {
        let s = map(i) * dh;
        row.copy_from_slice(&src[s..s + dh]);
    });
    out
}

/// `[B, N, H*dh] -> [B, H, N, dh]`.
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

/// `[B, H, N, dh] -> [B, N, H*dh]`.
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
