//! Head pruning: heads whose gate is at or below a threshold are removed from the exported
//! graph (their Q/K/V rows and `out_proj` columns), and the FLOPs this saves.
//!
//! Removing head `h` of a block is exactly the same as multiplying its gate by 0, i.e. zeroing
//! its `out_proj` columns ([`mask_pruned_heads`]); the pruned export is validated against that
//! masked model. How far it is from the unpruned model depends on how small the gates were.

use std::collections::HashMap;

use ahp_spec::ClipConfig;
use candle_core::Tensor;

use crate::error::{ModelError, Result};
use crate::fold::attn_key;

/// Which heads of every block survive.
#[derive(Debug, Clone, PartialEq)]
pub struct PrunePlan {
    /// Heads with gate `<= threshold` are removed.
    pub threshold: f32,
    /// Kept head indices per block (sorted).
    pub kept: Vec<Vec<usize>>,
    /// Removed head indices per block (sorted).
    pub removed: Vec<Vec<usize>>,
}

impl PrunePlan {
    /// Removed heads in total.
    pub fn removed_count(&self) -> usize {
        self.removed.iter().map(Vec::len).sum()
    }

    /// Kept heads per block.
    pub fn heads_per_block(&self) -> Vec<usize> {
        self.kept.iter().map(Vec::len).collect()
    }

    /// Refuses a plan that removes every head of some block.
    pub fn check_no_empty_block(&self) -> Result<()> {
        let empty: Vec<usize> = (0..self.kept.len())
            .filter(|&b| self.kept[b].is_empty())
            .collect();
        if empty.is_empty() {
            return Ok(());
        }
        Err(ModelError::Input(format!(
            "--prune-heads {} removes every head of block(s) {empty:?}: their attention would reduce to a constant; \
             lower the threshold, or pass --prune-empty-blocks to allow it",
            self.threshold
        )))
    }
}

/// Plans pruning from the gate values of every block (`None`: a block without gates keeps all
/// its heads). Errors if no block has gates or the threshold is not finite.
pub fn plan(gates: &[Option<Vec<f32>>], num_heads: usize, threshold: f32) -> Result<PrunePlan> {
    if !threshold.is_finite() {
        return Err(ModelError::Input(format!(
            "--prune-heads threshold {threshold} is not finite"
        )));
    }
    if gates.iter().all(Option::is_none) {
        return Err(ModelError::Input(
            "--prune-heads needs head gates, and this export has none (method without gates)"
                .into(),
        ));
    }
    let mut kept = Vec::with_capacity(gates.len());
    let mut removed = Vec::with_capacity(gates.len());
    for g in gates {
        match g {
            Some(g) => {
                kept.push((0..num_heads).filter(|&h| g[h] > threshold).collect());
                removed.push((0..num_heads).filter(|&h| g[h] <= threshold).collect());
            }
            None => {
                kept.push((0..num_heads).collect());
                removed.push(Vec::new());
            }
        }
    }
    Ok(PrunePlan {
        threshold,
        kept,
        removed,
    })
}

/// A copy of `weights` where the `out_proj` columns of the removed heads are zero: the plain
/// model that a pruned graph computes exactly.
pub fn mask_pruned_heads(
    weights: &HashMap<String, Tensor>,
    config: &ClipConfig,
    plan: &PrunePlan,
) -> Result<HashMap<String, Tensor>> {
    let v = &config.vision_config;
    let (h, dh) = (v.num_attention_heads, v.head_dim());
    let mut out = weights.clone();
    for (i, removed) in plan.removed.iter().enumerate() {
        if removed.is_empty() {
            continue;
        }
        let name = attn_key(i, "out", "weight");
        let w = weights
            .get(&name)
            .ok_or_else(|| ModelError::tensor(&name, "missing from the weights"))?;
        let mask: Vec<f32> = (0..h * dh)
            .map(|j| {
                if removed.contains(&(j / dh)) {
                    0.0
                } else {
                    1.0
                }
            })
            .collect();
        let mask = Tensor::from_vec(mask, (1, h * dh), w.device())?;
        out.insert(name, w.broadcast_mul(&mask)?);
    }
    Ok(out)
}

/// Multiply-add FLOPs (2 per MAC) of one image through the exported graph's matrix products:
/// patch embedding, attention with `heads_per_block[i]` heads in block `i`, MLPs, projection
/// and classifier. Elementwise ops, LayerNorm and softmax are not counted.
pub fn vision_flops(config: &ClipConfig, heads_per_block: &[usize], classes: usize) -> u64 {
    let v = &config.vision_config;
    let (d, dh, m) = (
        v.hidden_size as u64,
        v.head_dim() as u64,
        v.intermediate_size as u64,
    );
    let g = v.patches_per_side() as u64;
    let n = v.num_positions() as u64;
    let p = config.projection_dim as u64;
    let c = v.num_channels as u64;
    let ps = v.patch_size as u64;
    let mut macs = g * g * c * ps * ps * d;
    for &k in heads_per_block {
        let k = k as u64;
        macs += 3 * n * d * k * dh; // q, k, v
        macs += 2 * n * n * k * dh; // scores, context
        macs += n * k * dh * d; // out_proj
        macs += 2 * n * d * m; // mlp
    }
    macs += d * p + p * classes as u64;
    2 * macs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_splits_heads_at_the_threshold() -> Result<()> {
        let gates = vec![Some(vec![0.1, 1.0, 0.05, 2.85]), None];
        let p = plan(&gates, 4, 0.1)?;
        assert_eq!(p.kept, vec![vec![1, 3], vec![0, 1, 2, 3]]);
        assert_eq!(p.removed, vec![vec![0, 2], vec![]]);
        assert_eq!(p.removed_count(), 2);
        assert!(plan(&[None, None], 4, 0.1).is_err());
        assert!(plan(&gates, 4, f32::NAN).is_err());
        Ok(())
    }
}
