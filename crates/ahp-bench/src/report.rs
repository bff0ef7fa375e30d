//! The benchmark's tables (markdown) and charts (PNG): accuracy per method and target under
//! each selection, the chosen hyper-parameters, bootstrap intervals, head dropping, gates.

use std::collections::BTreeMap;
use std::path::Path;

use ahp_spec::run::Method;
use anyhow::Result;

use crate::grid::{RunResult, Selected};
use crate::headdrop::HeadDrop;
use crate::plot;
use crate::stats::{mean_std, Interval};

/// How a table reads a run's checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pick {
    /// Selected on the sources' held-out split (the headline).
    SourceVal,
    /// The last step.
    Last,
    /// The best target accuracy over the evaluations (upper bound only).
    Oracle,
}

impl Pick {
    /// The run's checkpoint of this kind.
    pub fn of(self, r: &RunResult) -> Selected {
        match self {
            Pick::SourceVal => r.source_val,
            Pick::Last => r.last,
            Pick::Oracle => r.oracle,
        }
    }
}

/// Per method and target, the target accuracies over seeds (percent).
pub struct Table {
    targets: Vec<String>,
    methods: Vec<Method>,
    cells: BTreeMap<(usize, usize), Vec<f64>>,
}

impl Table {
    /// The table of `results` (the reported runs: one configuration per method and target)
    /// under `pick`.
    pub fn new(targets: &[String], methods: &[Method], results: &[&RunResult], pick: Pick) -> Self {
        let mut cells: BTreeMap<(usize, usize), Vec<f64>> = BTreeMap::new();
        for r in results {
            let mi = methods.iter().position(|m| *m == r.method);
            let ti = targets.iter().position(|t| *t == r.target);
            if let (Some(mi), Some(ti)) = (mi, ti) {
                cells
                    .entry((mi, ti))
                    .or_default()
                    .push(100.0 * pick.of(r).target_acc);
            }
        }
        Self {
            targets: targets.to_vec(),
            methods: methods.to_vec(),
            cells,
        }
    }

    /// Mean ± std over seeds of one cell.
    pub fn cell(&self, m: usize, t: usize) -> (f64, f64) {
        self.cells
            .get(&(m, t))
            .map_or((f64::NAN, f64::NAN), |v| mean_std(v))
    }

    /// The average over targets, per seed, then mean ± std over seeds.
    pub fn avg(&self, m: usize) -> (f64, f64) {
        let per_target: Vec<&Vec<f64>> = (0..self.targets.len())
            .filter_map(|t| self.cells.get(&(m, t)))
            .collect();
        if per_target.len() != self.targets.len() {
            return (f64::NAN, f64::NAN);
        }
        let n = per_target.iter().map(|v| v.len()).min().unwrap_or(0);
        let per_seed: Vec<f64> = (0..n)
            .map(|s| per_target.iter().map(|v| v[s]).sum::<f64>() / per_target.len() as f64)
            .collect();
        mean_std(&per_seed)
    }

    /// `| method | <targets> | avg |`, mean ± std over seeds.
    pub fn markdown(&self) -> String {
        let fmt = |(m, s): (f64, f64), n: usize| {
            if n > 1 {
                format!("{m:.2} ± {s:.2}")
            } else {
                format!("{m:.2}")
            }
        };
        let mut out = format!("| method | {} | avg |\n", self.targets.join(" | "));
        out.push_str(&format!(
            "|---|{}---:|\n",
            "---:|".repeat(self.targets.len())
        ));
        for (mi, m) in self.methods.iter().enumerate() {
            let n = self.cells.get(&(mi, 0)).map_or(0, Vec::len);
            out.push_str(&format!("| {} |", m.as_str()));
            for ti in 0..self.targets.len() {
                out.push_str(&format!(" {} |", fmt(self.cell(mi, ti), n)));
            }
            out.push_str(&format!(" {} |\n", fmt(self.avg(mi), n)));
        }
        out
    }

    /// A grouped bar chart of the table with error bars.
    pub fn chart(&self, path: &Path, title: &str) -> Result<()> {
        let mut groups = self.targets.clone();
        groups.push("avg".into());
        let series: Vec<plot::BarSeries> = self
            .methods
            .iter()
            .enumerate()
            .map(|(mi, m)| plot::BarSeries {
                label: m.as_str().to_string(),
                values: (0..self.targets.len())
                    .map(|ti| self.cell(mi, ti))
                    .chain(std::iter::once(self.avg(mi)))
                    .map(|(m, s)| m.is_finite().then_some((m, s)))
                    .collect(),
            })
            .collect();
        let width = (240 * groups.len() as u32).max(720);
        plot::save_png(path, width, 480, |root| {
            plot::grouped_bars(root, title, &groups, &series, "target accuracy (%)")
        })
    }
}

/// One row of the chosen hyper-parameters.
pub struct Choice {
    /// Method.
    pub method: Method,
    /// Target.
    pub target: String,
    /// What was chosen.
    pub chosen: String,
    /// Its mean source-validation accuracy over the sweep seeds (percent).
    pub source_val: f64,
    /// Configurations tried.
    pub tried: usize,
}

/// `| method | target | chosen | source-val | configurations tried |`.
pub fn choices_markdown(choices: &[Choice]) -> String {
    let mut out = String::from(
        "| method | target | chosen hyper-parameters | source-val (sweep mean) | configurations tried |\n|---|---|---|---:|---:|\n",
    );
    for c in choices {
        out.push_str(&format!(
            "| {} | {} | {} | {:.2} | {} |\n",
            c.method.as_str(),
            c.target,
            c.chosen,
            c.source_val,
            c.tried
        ));
    }
    out
}

/// One comparison's intervals: per target, then the average.
pub struct Comparison {
    /// e.g. `ahp − zero-shot`.
    pub name: String,
    /// Per target.
    pub per_target: Vec<Interval>,
    /// The average over targets.
    pub avg: Interval,
}

/// `| comparison | <targets> | avg |` with `+1.23 [−0.40, 2.90]` cells (percentage points; `*`
/// marks an interval that excludes 0), and a sentence listing those that do.
pub fn comparisons_markdown(targets: &[String], comparisons: &[Comparison]) -> String {
    if comparisons.is_empty() {
        return "No comparison: the methods of a pair (ahp/zero-shot, ahp/ha-lora, ha-lora/lora) were not all run.\n".into();
    }
    let cell = |i: &Interval| {
        format!(
            "{:+.2} [{:+.2}, {:+.2}]{}",
            i.estimate,
            i.lo,
            i.hi,
            if i.excludes_zero() { " *" } else { "" }
        )
    };
    let mut out = format!("| comparison | {} | avg |\n", targets.join(" | "));
    out.push_str(&format!("|---|{}---:|\n", "---:|".repeat(targets.len())));
    let mut excluding = Vec::new();
    for c in comparisons {
        out.push_str(&format!("| {} |", c.name));
        for (t, i) in targets.iter().zip(&c.per_target) {
            out.push_str(&format!(" {} |", cell(i)));
            if i.excludes_zero() {
                excluding.push(format!("{} on {t} ({:+.2})", c.name, i.estimate));
            }
        }
        out.push_str(&format!(" {} |\n", cell(&c.avg)));
        if c.avg.excludes_zero() {
            excluding.push(format!("{} on average ({:+.2})", c.name, c.avg.estimate));
        }
    }
    out.push('\n');
    if excluding.is_empty() {
        out.push_str("No interval excludes 0: none of these differences is distinguishable from no difference at this size.\n");
    } else {
        out.push_str(&format!(
            "Intervals that exclude 0 (`*`): {}. Every other difference is not distinguishable from 0 at this size.\n",
            excluding.join("; ")
        ));
    }
    out
}

/// The head-dropping table at a few numbers of removed heads: random (mean ± std),
/// cross-validation, adapt & drop, per target.
pub fn head_drop_markdown(drops: &[HeadDrop]) -> String {
    let Some(first) = drops.first() else {
        return String::new();
    };
    let total = first.dropped.last().copied().unwrap_or(0);
    let marks: Vec<usize> = [0, total / 8, total / 4, total / 2, 3 * total / 4]
        .into_iter()
        .map(|k| {
            first
                .dropped
                .iter()
                .copied()
                .min_by_key(|d| d.abs_diff(k))
                .unwrap_or(0)
        })
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut out = format!(
        "| target | strategy | {} |\n|---|---|{}\n",
        marks
            .iter()
            .map(|k| format!("{k} heads removed"))
            .collect::<Vec<_>>()
            .join(" | "),
        "---:|".repeat(marks.len())
    );
    for d in drops {
        let index = |k: usize| d.dropped.iter().position(|x| *x == k);
        let at = |curve: &[f64], k: usize| index(k).map_or(f64::NAN, |i| 100.0 * curve[i]);
        out.push_str(&format!(
            "| {} | random drop (mean ± std of {}) |",
            d.target,
            d.random_orders.len()
        ));
        for &k in &marks {
            let v: Vec<f64> = d.random_orders.iter().map(|c| at(c, k)).collect();
            let (m, s) = mean_std(&v);
            out.push_str(&format!(" {m:.2} ± {s:.2} |"));
        }
        out.push_str(&format!("\n| {} | drop by cross-validation |", d.target));
        for &k in &marks {
            match index(k).and_then(|i| d.cross_validation[i]) {
                Some(v) => out.push_str(&format!(" {:.2} |", 100.0 * v)),
                None => out.push_str(" - |"),
            }
        }
        out.push_str(&format!("\n| {} | adapt & drop (AHP gates) |", d.target));
        for &k in &marks {
            out.push_str(&format!(" {:.2} |", at(&d.adapt_and_drop, k)));
        }
        out.push('\n');
    }
    out
}

/// One panel per target: the three strategies' curves.
pub fn head_drop_chart(path: &Path, drops: &[HeadDrop]) -> Result<()> {
    let cols = drops.len().clamp(1, 2);
    let rows = drops.len().div_ceil(cols).max(1);
    plot::save_png(path, 560 * cols as u32, 400 * rows as u32, |root| {
        let areas = root.split_evenly((rows, cols));
        for (d, area) in drops.iter().zip(areas.iter()) {
            let xs: Vec<f64> = d.dropped.iter().map(|k| *k as f64).collect();
            let pct = |c: &[f64]| c.iter().map(|v| 100.0 * v).collect::<Vec<_>>();
            let randoms: Vec<Vec<f64>> = d.random_orders.iter().map(|c| pct(c)).collect();
            let stat = |i: usize| mean_std(&randoms.iter().map(|c| c[i]).collect::<Vec<_>>());
            let mean: Vec<f64> = (0..xs.len()).map(|i| stat(i).0).collect();
            let sd: Vec<f64> = (0..xs.len()).map(|i| stat(i).1).collect();
            let mut series = vec![
                plot::Line {
                    label: "adapt & drop (AHP gates, lowest first)".into(),
                    points: xs.iter().copied().zip(pct(&d.adapt_and_drop)).collect(),
                    band: None,
                    color: 4,
                },
                plot::Line {
                    label: "drop by cross-validation (sources)".into(),
                    points: xs
                        .iter()
                        .zip(&d.cross_validation)
                        .filter_map(|(x, v)| v.map(|v| (*x, 100.0 * v)))
                        .collect(),
                    band: None,
                    color: 2,
                },
            ];
            if !randoms.is_empty() {
                series.push(plot::Line {
                    label: format!("random drop (mean ± std of {})", randoms.len()),
                    points: xs.iter().copied().zip(mean.iter().copied()).collect(),
                    band: Some((
                        mean.iter().zip(&sd).map(|(m, s)| m - s).collect(),
                        mean.iter().zip(&sd).map(|(m, s)| m + s).collect(),
                    )),
                    color: 1,
                });
            }
            plot::lines(
                area,
                &format!("target {}: base CLIP, heads removed", d.target),
                "heads removed",
                "target accuracy (%)",
                &series,
            )?;
        }
        Ok(())
    })
}

/// The gate heatmap of every target's AHP run.
pub fn gates_chart(path: &Path, drops: &[HeadDrop], method: Method) -> Result<()> {
    let cols = drops.len().clamp(1, 2);
    let rows = drops.len().div_ceil(cols).max(1);
    let heads = drops
        .first()
        .and_then(|d| d.gates.first())
        .map_or(8, Vec::len);
    let blocks = drops.first().map_or(6, |d| d.gates.len());
    let w = (70 * heads as u32 + 120).max(420);
    let h = (36 * blocks as u32 + 110).max(300);
    plot::save_png(path, w * cols as u32, h * rows as u32, |root| {
        let areas = root.split_evenly((rows, cols));
        for (d, area) in drops.iter().zip(areas.iter()) {
            plot::heatmap(
                area,
                &format!("gates of {} (seed 0), target {}", method.as_str(), d.target),
                &d.gates,
            )?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grid::HyperConfig;

    fn run(t: &str, m: Method, seed: u64, acc: f64) -> RunResult {
        let sel = Selected {
            step: 1,
            source_val_acc: 0.0,
            target_acc: acc,
        };
        RunResult {
            target: t.into(),
            method: m,
            seed,
            config: HyperConfig {
                lr: 0.0,
                gate_lr: 0.0,
                mmd_weight: 0.0,
                lora_ranks: Default::default(),
            },
            source_val: sel,
            last: sel,
            oracle: Selected {
                target_acc: 1.0,
                ..sel
            },
            target_outcomes: String::new(),
            parameters: 0,
            seconds: 0.0,
            settings: serde_json::Value::Null,
        }
    }

    #[test]
    fn table_averages_targets_per_seed() {
        let targets = vec!["a".to_string(), "b".to_string()];
        let methods = vec![Method::ZeroShot, Method::Ahp];
        let results = [
            run("a", Method::ZeroShot, 0, 0.5),
            run("b", Method::ZeroShot, 0, 0.3),
            run("a", Method::Ahp, 0, 0.6),
            run("a", Method::Ahp, 1, 0.8),
            run("b", Method::Ahp, 0, 0.4),
            run("b", Method::Ahp, 1, 0.2),
        ];
        let refs: Vec<&RunResult> = results.iter().collect();
        let t = Table::new(&targets, &methods, &refs, Pick::SourceVal);
        assert_eq!(t.cell(0, 0), (50.0, 0.0));
        let (m, s) = t.avg(1);
        assert!((m - 50.0).abs() < 1e-9 && s.abs() < 1e-9, "{m} {s}");
        let md = t.markdown();
        assert!(md.contains("| zero-shot | 50.00 | 30.00 | 40.00 |"), "{md}");
        assert!(
            md.contains("| ahp | 70.00 ± 14.14 | 30.00 ± 14.14 | 50.00 ± 0.00 |"),
            "{md}"
        );
        let oracle = Table::new(&targets, &methods, &refs, Pick::Oracle).markdown();
        assert!(
            oracle.contains("| zero-shot | 100.00 | 100.00 | 100.00 |"),
            "{oracle}"
        );
    }

    #[test]
    fn comparisons_say_which_intervals_exclude_zero() {
        let i = |e: f64, lo: f64, hi: f64| Interval {
            estimate: e,
            lo,
            hi,
        };
        let md = comparisons_markdown(
            &["a".to_string()],
            &[Comparison {
                name: "ahp − zero-shot".into(),
                per_target: vec![i(-2.0, -3.0, -1.0)],
                avg: i(-2.0, -3.0, 0.5),
            }],
        );
        assert!(
            md.contains("| ahp − zero-shot | -2.00 [-3.00, -1.00] * | -2.00 [-3.00, +0.50] |"),
            "{md}"
        );
        assert!(
            md.contains("exclude 0 (`*`): ahp − zero-shot on a (-2.00)"),
            "{md}"
        );
    }
}
