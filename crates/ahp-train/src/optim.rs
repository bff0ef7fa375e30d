//! AdamW with checkpointable state, the learning-rate schedule and gradient clipping.
//!
//! candle-nn's `AdamW` keeps its moments private, so a run could not be resumed bit-exactly;
//! this one follows PyTorch's `torch.optim.AdamW` (decoupled weight decay, bias correction) and
//! exposes its state as named tensors.

use std::collections::HashMap;

use candle_core::{Tensor, Var};

use crate::error::Result;

/// AdamW hyperparameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWConfig {
    /// β1.
    pub beta1: f64,
    /// β2.
    pub beta2: f64,
    /// ε.
    pub eps: f64,
    /// Decoupled weight decay.
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        Self {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }
}

/// AdamW over a fixed set of named variables.
#[derive(Debug)]
pub struct AdamW {
    vars: Vec<(String, Var)>,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    t: u64,
    cfg: AdamWConfig,
}

impl AdamW {
    /// Zero moments.
    pub fn new(vars: Vec<(String, Var)>, cfg: AdamWConfig) -> Result<Self> {
        let m = vars
            .iter()
            .map(|(_, v)| v.as_tensor().zeros_like())
            .collect::<candle_core::Result<Vec<_>>>()?;
        let v = m.clone();
        Ok(Self {
            vars,
            m,
            v,
            t: 0,
            cfg,
        })
    }

    /// Steps taken.
    pub fn steps(&self) -> u64 {
        self.t
    }

    /// One update with learning rate `lr`; `grads` by variable name (a missing gradient counts
    /// as zero).
    pub fn step(&mut self, grads: &HashMap<String, Tensor>, lr: f64) -> Result<()> {
        self.t += 1;
        let c = self.cfg;
        let bc1 = 1.0 - c.beta1.powi(self.t as i32);
        let bc2 = 1.0 - c.beta2.powi(self.t as i32);
        for (i, (name, var)) in self.vars.iter().enumerate() {
            let theta = var.as_tensor();
            let g = match grads.get(name) {
                Some(g) => g.clone(),
                None => theta.zeros_like()?,
            };
            let m = ((&self.m[i] * c.beta1)? + (&g * (1.0 - c.beta1))?)?;
            let v = ((&self.v[i] * c.beta2)? + (g.sqr()? * (1.0 - c.beta2))?)?;
            let mhat = (&m / bc1)?;
            let denom = ((&v / bc2)?.sqrt()? + c.eps)?;
            let decayed = (theta * (1.0 - lr * c.weight_decay))?;
            let next = (decayed - (mhat.div(&denom)? * lr)?)?;
            var.set(&next.detach())?;
            self.m[i] = m.detach();
            self.v[i] = v.detach();
        }
        Ok(())
    }

    /// The state as named tensors (`m.<name>`, `v.<name>`) and the step count.
    pub fn state(&self) -> (HashMap<String, Tensor>, u64) {
        let mut map = HashMap::new();
        for (i, (name, _)) in self.vars.iter().enumerate() {
            map.insert(format!("m.{name}"), self.m[i].clone());
            map.insert(format!("v.{name}"), self.v[i].clone());
        }
        (map, self.t)
    }

    /// Restores a state saved by [`Self::state`].
    pub fn load_state(&mut self, state: &HashMap<String, Tensor>, t: u64) -> Result<()> {
        for (i, (name, var)) in self.vars.iter().enumerate() {
            for (prefix, slot) in [("m", &mut self.m[i]), ("v", &mut self.v[i])] {
                let key = format!("{prefix}.{name}");
                let t = state.get(&key).ok_or_else(|| {
                    crate::TrainError::run_dir("state", format!("missing optimizer tensor `{key}`"))
                })?;
                *slot = t.to_device(var.device())?;
            }
        }
        self.t = t;
        Ok(())
    }
}

/// One optimizer group: its variables, AdamW (with the group's weight decay), its peak learning
/// rate and its own gradient-norm clip. LoRA factors and gate logits are two groups, so the
/// size of one group's gradient (the gates' MMD term) never changes the other's step.
#[derive(Debug)]
pub struct ParamGroup {
    opt: AdamW,
    /// Peak learning rate (the schedule of [`lr_at`] scales it).
    pub lr: f64,
    /// Gradient-norm clip of this group alone (0 = off).
    pub grad_clip: f64,
}

impl ParamGroup {
    /// A group over `vars` with AdamW's default betas and `weight_decay`.
    pub fn new(
        vars: Vec<(String, Var)>,
        lr: f64,
        weight_decay: f64,
        grad_clip: f64,
    ) -> Result<Self> {
        let cfg = AdamWConfig {
            weight_decay,
            ..Default::default()
        };
        Ok(Self {
            opt: AdamW::new(vars, cfg)?,
            lr,
            grad_clip,
        })
    }

    /// Clips `grads` (this group's gradients only) to the group's norm, then takes one AdamW
    /// step at `lr`; returns the norm before clipping.
    pub fn step(&mut self, grads: &mut HashMap<String, Tensor>, lr: f64) -> Result<f64> {
        let norm = clip_grad_norm(grads, self.grad_clip)?;
        if norm.is_finite() {
            self.opt.step(grads, lr)?;
        }
        Ok(norm)
    }

    /// The optimizer (state for checkpoints).
    pub fn optimizer(&self) -> &AdamW {
        &self.opt
    }

    /// The optimizer, mutably (to restore a checkpoint).
    pub fn optimizer_mut(&mut self) -> &mut AdamW {
        &mut self.opt
    }
}

/// Linear warmup to `peak` over `warmup` steps, then cosine decay to 0 at `total` steps.
pub fn lr_at(step: u64, peak: f64, warmup: u64, total: u64) -> f64 {
    if step < warmup {
        return peak * (step + 1) as f64 / warmup as f64;
    }
    let span = total.saturating_sub(warmup).max(1) as f64;
    let progress = ((step - warmup) as f64 / span).min(1.0);
    peak * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
}

/// Scales the given gradients so their joint L2 norm is at most `max_norm` (0 = off); returns the
/// norm before clipping.
pub fn clip_grad_norm(grads: &mut HashMap<String, Tensor>, max_norm: f64) -> Result<f64> {
    // summed in name order: a HashMap's order differs between processes, and so would the
    // last bits of the norm
    let mut names: Vec<&String> = grads.keys().collect();
    names.sort();
    let mut sq = 0f64;
    for name in names {
        sq += f64::from(grads[name].sqr()?.sum_all()?.to_scalar::<f32>()?);
    }
    let norm = sq.sqrt();
    if max_norm > 0.0 && norm > max_norm {
        let scale = max_norm / (norm + 1e-6);
        for g in grads.values_mut() {
            *g = (&*g * scale)?;
        }
    }
    Ok(norm)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    #[test]
    fn schedule_warms_up_and_decays() {
        assert!((lr_at(0, 1.0, 10, 100) - 0.1).abs() < 1e-12);
        assert!((lr_at(9, 1.0, 10, 100) - 1.0).abs() < 1e-12);
        assert!((lr_at(10, 1.0, 10, 100) - 1.0).abs() < 1e-12);
        assert!(lr_at(55, 1.0, 10, 100) < 0.6);
        assert!(lr_at(100, 1.0, 10, 100).abs() < 1e-12);
    }

    #[test]
    fn adamw_matches_pytorch_first_steps() -> Result<()> {
        // torch.optim.AdamW([p], lr=0.1, weight_decay=0.01) on p = [1.0, -2.0] with
        // constant grad [0.5, -1.0]: every Adam step moves each coordinate by ~lr
        // against its gradient sign, plus decay.
        let var = Var::from_tensor(&Tensor::new(&[1.0f32, -2.0], &Device::Cpu)?)?;
        let mut opt = AdamW::new(
            vec![("p".into(), var.clone())],
            AdamWConfig {
                weight_decay: 0.01,
                ..Default::default()
            },
        )?;
        let grads: HashMap<String, Tensor> =
            [("p".to_string(), Tensor::new(&[0.5f32, -1.0], &Device::Cpu)?)].into();
        opt.step(&grads, 0.1)?;
        let p = var.as_tensor().to_vec1::<f32>()?;
        // p1 = p0 * (1 - 0.1*0.01) - 0.1 * sign(g)
        assert!((p[0] - (1.0 * 0.999 - 0.1)).abs() < 1e-6, "{p:?}");
        assert!((p[1] - (-2.0 * 0.999 + 0.1)).abs() < 1e-6, "{p:?}");
        let (state, t) = opt.state();
        assert_eq!(t, 1);
        let mut again = AdamW::new(vec![("p".into(), var.clone())], AdamWConfig::default())?;
        again.load_state(&state, t)?;
        assert_eq!(again.steps(), 1);
        let _ = DType::F32;
        Ok(())
    }

    #[test]
    fn groups_clip_separately() -> Result<()> {
        // Two groups; a huge gradient in one must not change the other's update.
        let dev = Device::Cpu;
        let run = |other: f32| -> Result<Vec<f32>> {
            let a = Var::from_tensor(&Tensor::new(&[1.0f32, 1.0], &dev)?)?;
            let b = Var::from_tensor(&Tensor::new(&[1.0f32], &dev)?)?;
            let mut ga = ParamGroup::new(vec![("a".into(), a.clone())], 0.1, 0.0, 1e-4)?;
            let mut gb = ParamGroup::new(vec![("b".into(), b)], 0.1, 0.0, 1e-4)?;
            let mut grads_a: HashMap<String, Tensor> =
                [("a".to_string(), Tensor::new(&[3.0f32, -4.0], &dev)?)].into();
            let mut grads_b: HashMap<String, Tensor> =
                [("b".to_string(), Tensor::new(&[other], &dev)?)].into();
            assert!((ga.step(&mut grads_a, 0.1)? - 5.0).abs() < 1e-6);
            gb.step(&mut grads_b, 0.1)?;
            Ok(a.as_tensor().to_vec1::<f32>()?)
        };
        assert_eq!(run(1.0)?, run(1e6)?);
        Ok(())
    }

    #[test]
    fn clipping_bounds_the_norm() -> Result<()> {
        let mut g: HashMap<String, Tensor> =
            [("a".to_string(), Tensor::new(&[3.0f32, 4.0], &Device::Cpu)?)].into();
        let n = clip_grad_norm(&mut g, 1.0)?;
        assert!((n - 5.0).abs() < 1e-6);
        let after = g["a"].sqr()?.sum_all()?.to_scalar::<f32>()?.sqrt();
        assert!((after - 1.0).abs() < 1e-4);
        Ok(())
    }
}
