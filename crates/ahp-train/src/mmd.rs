//! Gaussian-kernel maximum mean discrepancy between source domains.
//!
//! Features: for every block, the gated per-head outputs of the **class token** (the token the
//! pooled image embedding is read from), flattened over heads to `[B, H * d_head]`.
//!
//! Kernel: a sum of Gaussians `exp(-d² / (2 σ² s))` for `s ∈ {0.25, 1, 4}`, with `σ²` the
//! median of the off-diagonal pairwise squared distances of the two domains' pooled samples
//! (median heuristic, treated as a constant: no gradient flows through the bandwidth).
//!
//! Estimator: the biased (V-statistic) MMD² `mean K(X,X) + mean K(Y,Y) - 2 mean K(X,Y)`,
//! averaged over every pair of source domains and over the blocks.

use candle_core::{Tensor, D};

use crate::error::Result;

/// Bandwidth multipliers of the multi-kernel.
pub const BANDWIDTH_MULTIPLIERS: [f64; 3] = [0.25, 1.0, 4.0];

fn pairwise_sq_dists(z: &Tensor) -> Result<Tensor> {
    let sq = z.sqr()?.sum_keepdim(D::Minus1)?; // [n, 1]
    let gram = z.matmul(&z.t()?)?; // [n, n]
    let d2 = sq.broadcast_add(&sq.t()?)?.sub(&(gram * 2.0)?)?;
    Ok(d2.relu()?)
}

fn median_off_diagonal(d2: &Tensor) -> Result<f64> {
    let n = d2.dim(0)?;
    let values = d2.detach().to_vec2::<f32>()?;
    let mut off: Vec<f32> = Vec::with_capacity(n * n.saturating_sub(1));
    for (i, row) in values.iter().enumerate() {
        for (j, v) in row.iter().enumerate() {
            if i != j {
                off.push(*v);
            }
        }
    }
    if off.is_empty() {
        return Ok(1.0);
    }
    off.sort_by(f32::total_cmp);
    let m = f64::from(off[off.len() / 2]);
    Ok(if m > 1e-12 { m } else { 1.0 })
}

/// MMD² between samples `x` `[n, d]` and `y` `[m, d]`.
pub fn mmd2(x: &Tensor, y: &Tensor) -> Result<Tensor> {
    let n = x.dim(0)?;
    let m = y.dim(0)?;
    let z = Tensor::cat(&[x, y], 0)?;
    let d2 = pairwise_sq_dists(&z)?;
    let sigma2 = median_off_diagonal(&d2)?;
    let mut k: Option<Tensor> = None;
    for s in BANDWIDTH_MULTIPLIERS {
        let term = (d2.clone() * (-1.0 / (2.0 * sigma2 * s)))?.exp()?;
        k = Some(match k {
            None => term,
            Some(acc) => (acc + term)?,
        });
    }
    let k = k.ok_or_else(|| candle_core::Error::Msg("no kernel bandwidths".into()))?;
    let kxx = k.narrow(0, 0, n)?.narrow(1, 0, n)?.mean_all()?;
    let kyy = k.narrow(0, n, m)?.narrow(1, n, m)?.mean_all()?;
    let kxy = k.narrow(0, 0, n)?.narrow(1, n, m)?.mean_all()?;
    Ok(((kxx + kyy)? - (kxy * 2.0)?)?)
}

/// The MMD loss over blocks: `heads[b]` is block `b`'s gated per-head output `[B, H, N, dh]`;
/// `domains[i]` is the domain of image `i`. Returns `None` when fewer than two domains are
/// present in the batch.
pub fn head_mmd_loss(heads: &[Tensor], domains: &[u32]) -> Result<Option<Tensor>> {
    let mut ids: Vec<u32> = domains.to_vec();
    ids.sort_unstable();
    ids.dedup();
    if ids.len() < 2 || heads.is_empty() {
        return Ok(None);
    }
    let device = heads[0].device().clone();
    let groups: Vec<Tensor> = ids
        .iter()
        .map(|d| {
            let idx: Vec<u32> = domains
                .iter()
                .enumerate()
                .filter(|(_, x)| *x == d)
                .map(|(i, _)| i as u32)
                .collect();
            Tensor::from_vec(idx.clone(), idx.len(), &device)
        })
        .collect::<candle_core::Result<_>>()?;
    let mut total: Option<Tensor> = None;
    let mut count = 0usize;
    for h in heads {
        let (b, nh, _, dh) = h.dims4()?;
        let cls = h.narrow(2, 0, 1)?.reshape((b, nh * dh))?;
        for i in 0..groups.len() {
            for j in (i + 1)..groups.len() {
                let x = cls.index_select(&groups[i], 0)?;
                let y = cls.index_select(&groups[j], 0)?;
                let v = mmd2(&x, &y)?;
                total = Some(match total {
                    None => v,
                    Some(t) => (t + v)?,
                });
                count += 1;
            }
        }
    }
    Ok(match total {
        Some(t) => Some((t / count as f64)?),
        None => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn mmd_is_small_for_same_distribution_and_large_for_shifted() -> Result<()> {
        let dev = Device::Cpu;
        let x = Tensor::randn(0f32, 1.0, (64, 8), &dev)?;
        let y = Tensor::randn(0f32, 1.0, (64, 8), &dev)?;
        let z = (Tensor::randn(0f32, 1.0, (64, 8), &dev)? + 3.0)?;
        let same = mmd2(&x, &y)?.to_scalar::<f32>()?;
        let shifted = mmd2(&x, &z)?.to_scalar::<f32>()?;
        assert!(same >= -1e-5);
        assert!(
            shifted > 5.0 * same.max(1e-3),
            "same {same}, shifted {shifted}"
        );
        let zero = mmd2(&x, &x)?.to_scalar::<f32>()?;
        assert!(zero.abs() < 1e-5, "{zero}");
        Ok(())
    }

    #[test]
    fn single_domain_has_no_loss() -> Result<()> {
        let h = Tensor::zeros((4, 2, 3, 5), candle_core::DType::F32, &Device::Cpu)?;
        assert!(head_mmd_loss(&[h], &[1, 1, 1, 1])?.is_none());
        Ok(())
    }
}
