//! Statistics of the benchmark: mean ± sample standard deviation, and paired bootstrap
//! confidence intervals of accuracy differences between two methods.
//!
//! The bootstrap resamples both sources of variation at once: the training seeds (with
//! replacement, method A's seed `s` paired with method B's seed `s`; a deterministic method such
//! as zero-shot has one "seed" that pairs with all) and the target images (with replacement, the
//! same images for both methods — the pairing that makes small differences detectable). The
//! average over targets resamples every target independently in each replicate.

use ahp_train::eval::Outcomes;
use anyhow::{bail, Result};
use rand::Rng;
use rand::SeedableRng;
use serde::Serialize;

/// Mean and sample standard deviation (0 for a single value, NaN for none).
pub fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    if v.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let m = v.iter().sum::<f64>() / n;
    if v.len() < 2 {
        return (m, 0.0);
    }
    let var = v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0);
    (m, var.sqrt())
}

/// A point estimate with its 95% percentile-bootstrap interval, in percentage points.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Interval {
    /// The observed difference.
    pub estimate: f64,
    /// 2.5th percentile of the bootstrap replicates.
    pub lo: f64,
    /// 97.5th percentile.
    pub hi: f64,
}

impl Interval {
    /// Whether the interval lies entirely on one side of 0.
    pub fn excludes_zero(&self) -> bool {
        self.lo > 0.0 || self.hi < 0.0
    }
}

/// One target's outcomes: method A per seed and method B per seed, each over the same images.
pub struct Paired<'a> {
    /// The target's name (for errors).
    pub target: &'a str,
    /// Method A, one entry per seed.
    pub a: Vec<&'a Outcomes>,
    /// Method B, one entry per seed.
    pub b: Vec<&'a Outcomes>,
}

/// Per-seed per-image differences `A − B` (in {−1, 0, 1}) over the images every run evaluated.
fn differences(p: &Paired<'_>) -> Result<Vec<Vec<f64>>> {
    if p.a.is_empty() || p.b.is_empty() {
        bail!("target {}: a method has no runs to compare", p.target);
    }
    let n_images = p.a[0].0.len();
    if p.a.iter().chain(&p.b).any(|o| o.0.len() != n_images) {
        bail!(
            "target {}: the runs evaluated different numbers of images",
            p.target
        );
    }
    let valid: Vec<usize> = (0..n_images)
        .filter(|&i| p.a.iter().chain(&p.b).all(|o| o.0[i].is_some()))
        .collect();
    if valid.is_empty() {
        bail!("target {}: no image was evaluated by every run", p.target);
    }
    let value = |o: &Outcomes, i: usize| f64::from(u8::from(o.0[i] == Some(true)));
    let seeds = p.a.len().max(p.b.len());
    Ok((0..seeds)
        .map(|s| {
            let (a, b) = (p.a[s % p.a.len()], p.b[s % p.b.len()]);
            valid.iter().map(|&i| value(a, i) - value(b, i)).collect()
        })
        .collect())
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

/// One bootstrap replicate of a target's mean difference.
fn replicate(d: &[Vec<f64>], rng: &mut impl Rng) -> f64 {
    let (seeds, images) = (d.len(), d[0].len());
    let mut total = 0.0;
    for _ in 0..seeds {
        let s = &d[rng.random_range(0..seeds)];
        let mut sum = 0.0;
        for _ in 0..images {
            sum += s[rng.random_range(0..images)];
        }
        total += sum / images as f64;
    }
    total / seeds as f64
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn interval(estimate: f64, mut reps: Vec<f64>) -> Interval {
    reps.sort_by(f64::total_cmp);
    Interval {
        estimate: 100.0 * estimate,
        lo: 100.0 * percentile(&reps, 0.025),
        hi: 100.0 * percentile(&reps, 0.975),
    }
}

/// Paired bootstrap 95% intervals of `accuracy(A) − accuracy(B)` per target and for the average
/// over targets, from `replicates` resamples (seeded: the same inputs give the same intervals).
pub fn paired_bootstrap(
    targets: &[Paired<'_>],
    replicates: usize,
    seed: u64,
) -> Result<(Vec<Interval>, Interval)> {
    if targets.is_empty() || replicates == 0 {
        bail!("the bootstrap needs at least one target and one replicate");
    }
    let diffs = targets
        .iter()
        .map(differences)
        .collect::<Result<Vec<_>>>()?;
    let estimates: Vec<f64> = diffs
        .iter()
        .map(|d| mean(&d.iter().map(|s| mean(s)).collect::<Vec<_>>()))
        .collect();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut per_target = vec![Vec::with_capacity(replicates); targets.len()];
    let mut avg = Vec::with_capacity(replicates);
    for _ in 0..replicates {
        let mut sum = 0.0;
        for (t, d) in diffs.iter().enumerate() {
            let r = replicate(d, &mut rng);
            per_target[t].push(r);
            sum += r;
        }
        avg.push(sum / targets.len() as f64);
    }
    let intervals = estimates
        .iter()
        .zip(per_target)
        .map(|(e, r)| interval(*e, r))
        .collect();
    Ok((intervals, interval(mean(&estimates), avg)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_and_sample_std() {
        assert_eq!(mean_std(&[1.0]), (1.0, 0.0));
        let (m, s) = mean_std(&[1.0, 2.0, 3.0]);
        assert!((m - 2.0).abs() < 1e-12 && (s - 1.0).abs() < 1e-12);
    }

    fn outcomes(correct: &[bool]) -> Outcomes {
        Outcomes(correct.iter().map(|c| Some(*c)).collect())
    }

    #[test]
    fn a_clear_difference_excludes_zero_and_no_difference_does_not() {
        // A is right on 80% of 200 images, B on the same images only 40%.
        let a = outcomes(&(0..200).map(|i| i % 5 != 0).collect::<Vec<_>>());
        let b = outcomes(&(0..200).map(|i| i % 5 < 2).collect::<Vec<_>>());
        let p = Paired {
            target: "t",
            a: vec![&a, &a],
            b: vec![&b],
        };
        let (per, avg) = paired_bootstrap(&[p], 500, 0).expect("bootstrap");
        assert!((per[0].estimate - 40.0).abs() < 1e-9, "{:?}", per[0]);
        assert!(per[0].excludes_zero() && per[0].lo > 25.0, "{:?}", per[0]);
        assert_eq!(per[0], avg);

        let same = Paired {
            target: "t",
            a: vec![&a],
            b: vec![&a],
        };
        let (per, _) = paired_bootstrap(&[same], 200, 0).expect("bootstrap");
        assert_eq!((per[0].lo, per[0].hi, per[0].estimate), (0.0, 0.0, 0.0));
        assert!(!per[0].excludes_zero());
    }

    #[test]
    fn skipped_images_are_left_out_and_mismatches_are_errors() {
        let a = Outcomes(vec![Some(true), None, Some(true)]);
        let b = Outcomes(vec![Some(false), Some(true), Some(true)]);
        let p = Paired {
            target: "t",
            a: vec![&a],
            b: vec![&b],
        };
        let (per, _) = paired_bootstrap(&[p], 100, 1).expect("bootstrap");
        assert!((per[0].estimate - 50.0).abs() < 1e-9, "{:?}", per[0]);
        let short = Outcomes(vec![Some(true)]);
        let bad = Paired {
            target: "t",
            a: vec![&a],
            b: vec![&short],
        };
        assert!(paired_bootstrap(&[bad], 10, 0).is_err());
    }
}
