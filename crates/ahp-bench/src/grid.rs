//! The benchmark's runs: a hyper-parameter configuration per method, the sweep grid, one run's
//! cached result (`bench.json`) with its three selections, and the parallel runner.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use ahp_spec::run::Method;
use ahp_spec::{LoraRankRule, TrainConfig};
use ahp_train::eval::{split_accuracy, Evaluation};
use ahp_train::{train, TrainOptions, TrainSummary};
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// Bumped when what a cached run means changes (selection rules, recorded fields): older
/// `bench.json` files are retrained instead of reused.
const PROTOCOL: u32 = 2;

/// The hyper-parameters the benchmark varies per method.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HyperConfig {
    /// Peak learning rate of the LoRA factors.
    pub lr: f64,
    /// Peak learning rate of the gate logits.
    pub gate_lr: f64,
    /// Weight of the MMD loss on the gates.
    pub mmd_weight: f64,
    /// Plain LoRA's ranks.
    pub lora_ranks: LoraRankRule,
}

impl HyperConfig {
    /// The same configuration with the fields `method` does not use set to `base`'s, so that
    /// two configurations a method cannot tell apart are equal.
    pub fn for_method(&self, method: Method, base: &HyperConfig) -> HyperConfig {
        HyperConfig {
            lr: if method.has_lora() { self.lr } else { base.lr },
            gate_lr: if method.has_gates() {
                self.gate_lr
            } else {
                base.gate_lr
            },
            mmd_weight: if method.has_gates() {
                self.mmd_weight
            } else {
                base.mmd_weight
            },
            lora_ranks: if method == Method::Lora {
                self.lora_ranks
            } else {
                base.lora_ranks
            },
        }
    }

    /// What `method` uses of it, e.g. `lr 3e-3, ranks budget` (`-` for zero-shot).
    pub fn describe(&self, method: Method) -> String {
        let mut parts = Vec::new();
        if method.has_lora() {
            parts.push(format!("lr {:e}", self.lr));
        }
        if method == Method::Lora {
            parts.push(format!("ranks {}", self.lora_ranks.as_str()));
        }
        if method.has_gates() {
            parts.push(format!("gate lr {:e}", self.gate_lr));
            parts.push(format!("MMD {}", self.mmd_weight));
        }
        if parts.is_empty() {
            "-".into()
        } else {
            parts.join(", ")
        }
    }

    /// A directory name for it.
    pub fn id(&self, method: Method) -> String {
        let d = self.describe(method);
        if d == "-" {
            return "default".into();
        }
        d.replace(", ", "_").replace(' ', "")
    }
}

/// The grid of `--sweep` for `method`: the product of the value lists of the fields the method
/// uses (LoRA: learning rate x rank rule; HA-LoRA: learning rate; DIG: gate learning rate x MMD
/// weight; AHP: learning rate x MMD weight at the base gate learning rate).
pub fn sweep_grid(
    method: Method,
    base: &HyperConfig,
    lrs: &[f64],
    gate_lrs: &[f64],
    mmd_weights: &[f64],
) -> Vec<HyperConfig> {
    let one = |v: f64| vec![v];
    let (lrs, gate_lrs, mmds, ranks) = match method {
        Method::ZeroShot => (
            one(base.lr),
            one(base.gate_lr),
            one(base.mmd_weight),
            vec![base.lora_ranks],
        ),
        Method::Lora => (
            lrs.to_vec(),
            one(base.gate_lr),
            one(base.mmd_weight),
            vec![LoraRankRule::Budget, LoraRankRule::AsGiven],
        ),
        Method::HaLora => (
            lrs.to_vec(),
            one(base.gate_lr),
            one(base.mmd_weight),
            vec![base.lora_ranks],
        ),
        Method::Dig => (
            one(base.lr),
            gate_lrs.to_vec(),
            mmd_weights.to_vec(),
            vec![base.lora_ranks],
        ),
        Method::Ahp => (
            lrs.to_vec(),
            one(base.gate_lr),
            mmd_weights.to_vec(),
            vec![base.lora_ranks],
        ),
    };
    let mut grid = Vec::new();
    for &lr in &lrs {
        for &gate_lr in &gate_lrs {
            for &mmd_weight in &mmds {
                for &lora_ranks in &ranks {
                    let c = HyperConfig {
                        lr,
                        gate_lr,
                        mmd_weight,
                        lora_ranks,
                    }
                    .for_method(method, base);
                    if !grid.contains(&c) {
                        grid.push(c);
                    }
                }
            }
        }
    }
    grid
}

/// The index of the configuration with the best mean source-validation accuracy (the earlier
/// one on a tie). It is given source-validation accuracies only: nothing here can see a target.
pub fn choose(source_val: &[Vec<f64>]) -> usize {
    let means: Vec<f64> = source_val
        .iter()
        .map(|v| v.iter().sum::<f64>() / v.len().max(1) as f64)
        .collect();
    let mut best = 0;
    for (i, m) in means.iter().enumerate() {
        if *m > means[best] {
            best = i;
        }
    }
    best
}

/// One training run of the benchmark.
#[derive(Debug, Clone)]
pub struct Job {
    /// Held-out target domain.
    pub target: String,
    /// Method.
    pub method: Method,
    /// Hyper-parameters.
    pub config: HyperConfig,
    /// Training seed.
    pub seed: u64,
}

/// A checkpoint of a run, chosen one way, and what it scores.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Selected {
    /// Its step (0 = no training).
    pub step: u64,
    /// Pooled accuracy on the sources' held-out split.
    pub source_val_acc: f64,
    /// Pooled target accuracy.
    pub target_acc: f64,
}

/// What one run measured (its `bench.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunResult {
    /// Target domain.
    pub target: String,
    /// Method.
    pub method: Method,
    /// Training seed.
    pub seed: u64,
    /// Hyper-parameters.
    pub config: HyperConfig,
    /// The checkpoint selected on the sources' held-out split (the headline).
    pub source_val: Selected,
    /// The last step.
    pub last: Selected,
    /// The evaluation with the best *target* accuracy: an upper bound (oracle), reported only,
    /// never used to choose anything.
    pub oracle: Selected,
    /// Per target image of the source-val checkpoint: `1` right, `0` wrong, `-` unreadable.
    pub target_outcomes: String,
    /// Trainable parameters.
    pub parameters: usize,
    /// Wall time of the run.
    pub seconds: f64,
    /// The settings the run was made with; a cached result is reused only when they match.
    pub settings: serde_json::Value,
}

/// What every run of the benchmark shares.
pub struct Common<'a> {
    /// Training options every run starts from (clip, data, steps, batch size, templates...).
    pub base: TrainOptions,
    /// Output directory of the benchmark.
    pub out: &'a Path,
    /// Runs trained at the same time.
    pub jobs: usize,
    /// What the data holds (see `dg::dataset_digest`): a cached run is reused only on the same
    /// images, wherever the tree lives.
    pub data_digest: String,
}

impl Common<'_> {
    /// The run directory of `job`.
    pub fn run_dir(&self, job: &Job) -> PathBuf {
        self.out
            .join("runs")
            .join(&job.target)
            .join(job.method.as_str())
            .join(job.config.id(job.method))
            .join(format!("seed{}", job.seed))
    }

    fn options(&self, job: &Job) -> TrainOptions {
        let b = &self.base;
        TrainOptions {
            target_domains: vec![job.target.clone()],
            out: self.run_dir(job),
            config: TrainConfig {
                method: job.method,
                lr: job.config.lr,
                gate_lr: job.config.gate_lr,
                mmd_weight: job.config.mmd_weight,
                lora_ranks: job.config.lora_ranks,
                seed: job.seed,
                ..b.config.clone()
            },
            ..b.clone()
        }
    }

    fn settings(&self, job: &Job) -> serde_json::Value {
        let o = self.options(job);
        serde_json::json!({
            "protocol": PROTOCOL,
            "clip": o.clip,
            "data": o.data.display().to_string(),
            "data_digest": self.data_digest,
            "target": job.target,
            "method": job.method,
            "seed": job.seed,
            "config": job.config,
            "train": o.config.resolved(),
        })
    }

    /// Trains one run, or reads its cached `bench.json`.
    pub fn run_job(&self, job: &Job) -> Result<(RunResult, bool)> {
        let dir = self.run_dir(job);
        let cache = dir.join("bench.json");
        let want = self.settings(job);
        if let Ok(text) = std::fs::read_to_string(&cache) {
            if let Ok(r) = serde_json::from_str::<RunResult>(&text) {
                if r.settings == want {
                    return Ok((r, true));
                }
            }
        }
        if dir.exists() {
            std::fs::remove_dir_all(&dir)
                .with_context(|| format!("{}: cannot remove the stale run", dir.display()))?;
        }
        let t0 = Instant::now();
        let summary = train(&self.options(job)).with_context(|| {
            format!(
                "training {} ({}) with target {} seed {}",
                job.method.as_str(),
                job.config.describe(job.method),
                job.target,
                job.seed
            )
        })?;
        let result = result_of(job, &summary, t0.elapsed().as_secs_f64(), want);
        ahp_spec::files::write_atomic(&cache, serde_json::to_string_pretty(&result)?.as_bytes())?;
        Ok((result, false))
    }

    /// Runs `jobs` on `self.jobs` threads; results in job order.
    pub fn run_all(&self, jobs: &[Job]) -> Result<Vec<RunResult>> {
        let queue = Mutex::new(jobs.iter().cloned().enumerate().collect::<VecDeque<_>>());
        let results: Mutex<Vec<Option<RunResult>>> = Mutex::new(vec![None; jobs.len()]);
        let failure: Mutex<Option<anyhow::Error>> = Mutex::new(None);
        let done = Mutex::new(0usize);
        let total = jobs.len();
        std::thread::scope(|s| {
            for _ in 0..self.jobs.max(1).min(total.max(1)) {
                s.spawn(|| loop {
                    if failure.lock().map(|f| f.is_some()).unwrap_or(true) {
                        return;
                    }
                    let next = queue.lock().ok().and_then(|mut q| q.pop_front());
                    let Some((i, job)) = next else { return };
                    match self.run_job(&job) {
                        Ok((r, cached)) => {
                            let n = done.lock().map(|mut d| {
                                *d += 1;
                                *d
                            });
                            print_progress(n.unwrap_or(0), total, &job, &r, cached);
                            if let Ok(mut res) = results.lock() {
                                res[i] = Some(r);
                            }
                        }
                        Err(e) => {
                            if let Ok(mut f) = failure.lock() {
                                f.get_or_insert(e);
                            }
                            return;
                        }
                    }
                });
            }
        });
        if let Some(e) = failure.into_inner().ok().flatten() {
            return Err(e);
        }
        results
            .into_inner()
            .map_err(|_| anyhow::anyhow!("a worker panicked"))?
            .into_iter()
            .map(|r| r.context("a run did not finish"))
            .collect()
    }
}

fn print_progress(n: usize, total: usize, job: &Job, r: &RunResult, cached: bool) {
    println!(
        "[{n}/{total}] {:<9} target {:<10} seed {} ({}): source-val {:6.2}% (step {})  {}",
        job.method.as_str(),
        job.target,
        job.seed,
        job.config.describe(job.method),
        100.0 * r.source_val.source_val_acc,
        r.source_val.step,
        if cached {
            "(cached)".to_string()
        } else {
            format!("{:.0} s", r.seconds)
        }
    );
}

/// The three selections of a finished run. Zero-shot (no evaluations) is its own checkpoint in
/// all three.
fn result_of(job: &Job, s: &TrainSummary, seconds: f64, settings: serde_json::Value) -> RunResult {
    let kept = Selected {
        step: s.best_step,
        source_val_acc: s.best_source_val_acc,
        target_acc: split_accuracy(&s.trained, "target"),
    };
    let as_selected = |e: &Evaluation| Selected {
        step: e.step,
        source_val_acc: e.source_val_acc,
        target_acc: e.target_acc,
    };
    let last = s.evaluations.last().map_or(kept, as_selected);
    let mut oracle = kept;
    if let Some(first) = s.evaluations.first() {
        oracle = as_selected(first);
        for e in &s.evaluations {
            if e.target_acc > oracle.target_acc {
                oracle = as_selected(e);
            }
        }
    }
    RunResult {
        target: job.target.clone(),
        method: job.method,
        seed: job.seed,
        config: job.config.clone(),
        source_val: kept,
        last,
        oracle,
        target_outcomes: s.target_outcomes.to_code(),
        parameters: s.parameters,
        seconds,
        settings,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> HyperConfig {
        HyperConfig {
            lr: 3e-3,
            gate_lr: 1e-2,
            mmd_weight: 1.0,
            lora_ranks: LoraRankRule::Budget,
        }
    }

    #[test]
    fn grids_vary_only_what_a_method_uses() {
        let (lrs, glrs, mmds) = ([1e-3, 3e-3], [1e-2, 3e-2], [1.0, 10.0]);
        let g = |m| sweep_grid(m, &base(), &lrs, &glrs, &mmds);
        assert_eq!(g(Method::ZeroShot), vec![base()]);
        assert_eq!(g(Method::HaLora).len(), 2);
        assert_eq!(g(Method::Lora).len(), 4);
        assert_eq!(g(Method::Dig).len(), 4);
        assert!(g(Method::Dig).iter().all(|c| c.lr == base().lr));
        assert_eq!(g(Method::Ahp).len(), 4);
        assert!(g(Method::Ahp).iter().all(|c| c.gate_lr == base().gate_lr));
        assert_eq!(
            g(Method::Ahp)[0].describe(Method::Ahp),
            "lr 1e-3, gate lr 1e-2, MMD 1"
        );
        assert_eq!(g(Method::Lora)[1].id(Method::Lora), "lr1e-3_ranksas-given");
        assert_eq!(base().id(Method::ZeroShot), "default");
    }

    #[test]
    fn choice_is_the_best_mean_and_the_first_on_ties() {
        assert_eq!(choose(&[vec![0.5, 0.7], vec![0.65, 0.6], vec![0.4]]), 1);
        assert_eq!(choose(&[vec![0.5], vec![0.5]]), 0);
    }
}
