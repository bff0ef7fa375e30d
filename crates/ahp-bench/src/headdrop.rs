//! Head importance (the paper's Figure 1): the *base* CLIP's target accuracy as heads are
//! removed (their `out_proj` columns zeroed), with the heads chosen by three strategies:
//!
//! * **random drop**: random orders (mean and spread over several);
//! * **drop by cross-validation**: greedy on the sources' held-out split — each round removes
//!   the head(s) whose removal gives the highest source held-out accuracy (never the target);
//! * **adapt & drop**: the order of the gates AHP learned on the sources, lowest first.

use std::collections::HashMap;

use ahp_data::Sample;
use ahp_model::fold::{build_model, gate_values};
use ahp_model::prune::{mask_pruned_heads, PrunePlan};
use ahp_model::{pixel_batch, Checkpoint, ZeroShotClassifier};
use anyhow::{Context, Result};
use candle_core::{Device, Tensor};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::Serialize;

/// A head: `(block, head)`.
pub type Head = (usize, usize);

/// The curves of one target.
#[derive(Debug, Clone, Serialize)]
pub struct HeadDrop {
    /// Target domain.
    pub target: String,
    /// The AHP gates per block (adapt & drop's order).
    pub gates: Vec<Vec<f32>>,
    /// Numbers of heads removed, one per curve point.
    pub dropped: Vec<usize>,
    /// Target accuracy, heads removed lowest learned gate first.
    pub adapt_and_drop: Vec<f64>,
    /// Target accuracy, heads removed by greedy cross-validation on the sources' held-out split
    /// (`None` past `--cv-max-drop`).
    pub cross_validation: Vec<Option<f64>>,
    /// The heads cross-validation removed, in order.
    pub cross_validation_order: Vec<Head>,
    /// Target accuracy per random order.
    pub random_orders: Vec<Vec<f64>>,
}

/// Preprocessed images in batches with their labels.
struct Images(Vec<(Tensor, Vec<u32>)>);

impl Images {
    fn load(
        samples: &[Sample],
        batch: usize,
        clip: &ahp_model::LoadedClip,
        device: &Device,
    ) -> Result<Self> {
        let mut batches = Vec::new();
        for chunk in samples.chunks(batch.max(1)) {
            let mut images = Vec::with_capacity(chunk.len());
            for s in chunk {
                images.push(
                    ahp_spec::preprocess::preprocess_file(&s.path, &clip.preprocess)
                        .with_context(|| format!("{}: cannot read", s.path.display()))?,
                );
            }
            batches.push((
                pixel_batch(&images, device)?,
                chunk.iter().map(|s| s.class).collect(),
            ));
        }
        Ok(Self(batches))
    }
}

/// The base model heads are removed from, and the images it is scored on.
pub struct DropEval<'a> {
    /// Device of the evaluation.
    pub device: &'a Device,
    /// Base weights by Hugging Face name.
    pub base: &'a HashMap<String, Tensor>,
    /// The base checkpoint (config).
    pub checkpoint: &'a Checkpoint,
    /// The zero-shot classifier (the benchmark's templates).
    pub classifier: &'a ZeroShotClassifier,
    target: Images,
    source_val: Images,
}

impl<'a> DropEval<'a> {
    /// Preprocesses the target images and the sources' held-out images once.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        device: &'a Device,
        base: &'a HashMap<String, Tensor>,
        checkpoint: &'a Checkpoint,
        clip: &ahp_model::LoadedClip,
        classifier: &'a ZeroShotClassifier,
        target: &[Sample],
        source_val: &[Sample],
        batch: usize,
    ) -> Result<Self> {
        Ok(Self {
            device,
            base,
            checkpoint,
            classifier,
            target: Images::load(target, batch, clip, device)?,
            source_val: Images::load(source_val, batch, clip, device)?,
        })
    }

    fn accuracy(&self, removed: &[Head], images: &Images) -> Result<f64> {
        let h = self.checkpoint.config.vision_config.num_attention_heads;
        let blocks = self.checkpoint.config.vision_config.num_hidden_layers;
        let mut per_block = vec![Vec::new(); blocks];
        for &(b, head) in removed {
            per_block[b].push(head);
        }
        let plan = PrunePlan {
            threshold: f32::NAN,
            kept: per_block
                .iter()
                .map(|r| (0..h).filter(|i| !r.contains(i)).collect())
                .collect(),
            removed: per_block,
        };
        let weights = mask_pruned_heads(self.base, &self.checkpoint.config, &plan)?;
        let model = build_model(&weights, &self.checkpoint.config, self.device)?;
        let (correct, total) = ahp_train::eval::accuracy(&model, self.classifier, &[], &images.0)?;
        Ok(correct as f64 / total.max(1) as f64)
    }

    /// Target accuracy with `removed` heads removed.
    pub fn target_accuracy(&self, removed: &[Head]) -> Result<f64> {
        self.accuracy(removed, &self.target)
    }

    /// Target accuracies after removing the first `k` heads of `order`, for every `k` in `ks`.
    pub fn curve(&self, order: &[Head], ks: &[usize]) -> Result<Vec<f64>> {
        ks.iter()
            .map(|&k| self.target_accuracy(&order[..k]))
            .collect()
    }

    /// Greedy cross-validation: from no head removed, each round scores the removal of every
    /// remaining head by the sources' held-out accuracy and removes the `step` best (the earlier
    /// head on ties), until `max_drop` heads are gone. Returns the removal order.
    pub fn greedy_order(&self, heads: &[Head], step: usize, max_drop: usize) -> Result<Vec<Head>> {
        let mut removed: Vec<Head> = Vec::new();
        while removed.len() < max_drop.min(heads.len()) {
            let mut scored = Vec::new();
            for &c in heads.iter().filter(|c| !removed.contains(c)) {
                let mut trial = removed.clone();
                trial.push(c);
                scored.push((self.accuracy(&trial, &self.source_val)?, c));
            }
            // Stable sort: equal scores keep the heads' (block, head) order.
            scored.sort_by(|a, b| b.0.total_cmp(&a.0));
            let take = step.max(1).min(max_drop - removed.len());
            removed.extend(scored.iter().take(take).map(|(_, c)| *c));
        }
        Ok(removed)
    }
}

/// The points of the curves: 0, `step`, 2·`step`, ..., and all heads.
pub fn drop_points(total: usize, step: usize) -> Vec<usize> {
    let mut ks: Vec<usize> = (0..=total).step_by(step.max(1)).collect();
    if ks.last() != Some(&total) {
        ks.push(total);
    }
    ks
}

/// What [`head_drop`] needs besides the evaluator.
pub struct DropPlan<'a> {
    /// Target domain.
    pub target: &'a str,
    /// The AHP run whose gates give adapt & drop's order.
    pub gates_run: &'a std::path::Path,
    /// Heads removed between curve points (and per greedy round).
    pub step: usize,
    /// Random orders averaged.
    pub random_orders: usize,
    /// Most heads cross-validation removes.
    pub cv_max_drop: usize,
}

/// The three strategies' curves for one target.
pub fn head_drop(eval: &DropEval<'_>, plan: &DropPlan<'_>) -> Result<HeadDrop> {
    let config = &eval.checkpoint.config;
    let (_, adapter) = ahp_model::run_dir::load_run(plan.gates_run, config, eval.device)
        .with_context(|| format!("{}: cannot load the run", plan.gates_run.display()))?;
    let gates: Vec<Vec<f32>> = gate_values(&adapter.hooks)?
        .into_iter()
        .map(|g| g.context("a block of the run has no gates"))
        .collect::<Result<_>>()?;
    let heads: Vec<Head> = gates
        .iter()
        .enumerate()
        .flat_map(|(b, g)| (0..g.len()).map(move |h| (b, h)))
        .collect();
    let ks = drop_points(heads.len(), plan.step);
    let mut by_gate = heads.clone();
    by_gate.sort_by(|x, y| gates[x.0][x.1].total_cmp(&gates[y.0][y.1]).then(x.cmp(y)));
    let adapt_and_drop = eval.curve(&by_gate, &ks)?;
    let cv_order = eval.greedy_order(&heads, plan.step, plan.cv_max_drop)?;
    let cross_validation = ks
        .iter()
        .map(|&k| {
            (k <= cv_order.len())
                .then(|| eval.target_accuracy(&cv_order[..k]))
                .transpose()
        })
        .collect::<Result<Vec<_>>>()?;
    let mut random_orders = Vec::new();
    for r in 0..plan.random_orders {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1000 + r as u64);
        let mut shuffled = heads.clone();
        shuffled.shuffle(&mut rng);
        random_orders.push(eval.curve(&shuffled, &ks)?);
    }
    Ok(HeadDrop {
        target: plan.target.to_string(),
        gates,
        dropped: ks,
        adapt_and_drop,
        cross_validation,
        cross_validation_order: cv_order,
        random_orders,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_cover_zero_to_all() {
        assert_eq!(drop_points(12, 2), vec![0, 2, 4, 6, 8, 10, 12]);
        assert_eq!(drop_points(7, 3), vec![0, 3, 6, 7]);
    }
}
