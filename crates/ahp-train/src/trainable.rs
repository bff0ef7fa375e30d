//! The trainable parameters: per-block HA-LoRA (or plain LoRA) factors on Q and V, and gate
//! logits, as candle `Var`s named like their `adapter.safetensors` tensors.

use std::collections::HashMap;

use ahp_model::{Adapter, HeadHooks, HeadLowRank};
use ahp_spec::run::{adapter_key, gate_key, LoraSpec, Method, Projection};
use ahp_spec::ClipVisionConfig;
use ahp_spec::LoraRankRule;
use candle_core::{DType, Device, Tensor, Var};
use rand::Rng;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::error::{Result, TrainError};

/// Every rank must be at least 1 and at most the width it factorizes: a head's `head_dim` for
/// per-head LoRA, the hidden size for plain LoRA.
fn check_ranks(ranks: &[usize], per_head: bool, vision: &ClipVisionConfig) -> Result<()> {
    let heads = vision.num_attention_heads.max(1);
    let (max, what) = if per_head {
        (vision.hidden_size / heads, "the head dimension")
    } else {
        (vision.hidden_size, "the hidden size")
    };
    match ranks.iter().position(|&r| r == 0 || r > max) {
        Some(block) => Err(TrainError::option(
            "rank",
            format!(
                "rank {} of block {block} is out of range: ranks go from 1 to {max} ({what})",
                ranks[block]
            ),
        )),
        None => Ok(()),
    }
}

/// The paper's ranks: 8 in the last two blocks, 2 elsewhere.
pub fn default_ranks(num_blocks: usize) -> Vec<usize> {
    (0..num_blocks)
        .map(|i| if i + 2 >= num_blocks { 8 } else { 2 })
        .collect()
}

/// Rank of a plain LoRA with the same number of parameters as an HA-LoRA of rank `r` over `h`
/// heads: HA-LoRA has `h·r·D + D·r` per projection, LoRA `2·D·r'`, so `r' = r (h + 1) / 2`
/// (rounded to the nearest integer, at least 1).
pub fn lora_budget_rank(r: usize, h: usize) -> usize {
    if r == 0 {
        return 0;
    }
    ((r * (h + 1)) as f64 / 2.0).round().max(1.0) as usize
}

/// What a method trains: its low-rank deltas (ranks, alpha, per head or not) and whether it
/// has gates.
#[derive(Debug, Clone, PartialEq)]
pub struct AdapterSpec {
    /// The method.
    pub method: Method,
    /// Low-rank deltas (`None` for `dig` and `zero-shot`).
    pub lora: Option<LoraSpec>,
    /// Whether gates are trained.
    pub gates: bool,
}

impl AdapterSpec {
    /// The layout of `method` with HA-LoRA ranks `ranks` (plain LoRA gets the same parameter
    /// budget, see [`lora_budget_rank`]) and `alpha`.
    pub fn new(
        method: Method,
        ranks: &[usize],
        alpha: f64,
        vision: &ClipVisionConfig,
    ) -> Result<Self> {
        Self::with_rule(method, ranks, alpha, vision, LoraRankRule::Budget)
    }

    /// [`Self::new`] with plain LoRA's ranks chosen by `rule`. Both LoRA kinds scale their
    /// delta by PEFT's `alpha / r` with their own rank `r`.
    pub fn with_rule(
        method: Method,
        ranks: &[usize],
        alpha: f64,
        vision: &ClipVisionConfig,
        rule: LoraRankRule,
    ) -> Result<Self> {
        if ranks.len() != vision.num_hidden_layers {
            return Err(TrainError::option(
                "ranks",
                format!(
                    "{} values given, the vision tower has {} blocks (give 1 or {})",
                    ranks.len(),
                    vision.num_hidden_layers,
                    vision.num_hidden_layers
                ),
            ));
        }
        if !(alpha.is_finite() && alpha > 0.0) {
            return Err(TrainError::option(
                "alpha",
                format!("must be > 0, got {alpha}"),
            ));
        }
        if method.has_lora() {
            check_ranks(ranks, method.per_head_lora(), vision)?;
        }
        let lora = method.has_lora().then(|| LoraSpec {
            alpha,
            ranks: if method.per_head_lora() || rule == LoraRankRule::AsGiven {
                ranks.to_vec()
            } else {
                ranks
                    .iter()
                    .map(|&r| lora_budget_rank(r, vision.num_attention_heads))
                    .collect()
            },
            targets: vec![Projection::Q, Projection::V],
            per_head: method.per_head_lora(),
        });
        if let Some(l) = lora.as_ref().filter(|l| !l.per_head) {
            if let Some(&r) = l.ranks.iter().find(|&&r| r > vision.hidden_size) {
                return Err(TrainError::option(
                    "rank",
                    format!(
                        "plain LoRA's budget-matched rank {r} exceeds the hidden size {}; give smaller ranks or --lora-ranks as-given",
                        vision.hidden_size
                    ),
                ));
            }
        }
        Ok(Self {
            method,
            lora,
            gates: method.has_gates(),
        })
    }
}

#[derive(Debug, Clone)]
struct LowRankVars {
    a: Var,
    b: Var,
    scaling: f64,
}

#[derive(Debug, Clone, Default)]
struct BlockVars {
    q: Option<LowRankVars>,
    v: Option<LowRankVars>,
    gate: Option<Var>,
}

/// The trainable adapters of a vision tower.
#[derive(Debug, Clone)]
pub struct Trainable {
    layout: AdapterSpec,
    blocks: Vec<BlockVars>,
}

fn uniform(rng: &mut ChaCha8Rng, n: usize, bound: f32) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-bound..bound)).collect()
}

impl Trainable {
    /// Initializes as LoRA does: `A ~ U(-1/√D, 1/√D)` (PEFT's Kaiming-uniform with a = √5),
    /// `B = 0`, gate logits 0 (all gates 1), seeded.
    pub fn init(
        layout: AdapterSpec,
        vision: &ClipVisionConfig,
        seed: u64,
        device: &Device,
    ) -> Result<Self> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x6164_6170_7465_7273);
        let (h, d, dh) = (
            vision.num_attention_heads,
            vision.hidden_size,
            vision.head_dim(),
        );
        let bound = 1.0 / (d as f32).sqrt();
        let mut blocks = Vec::with_capacity(vision.num_hidden_layers);
        for i in 0..vision.num_hidden_layers {
            let mut block = BlockVars::default();
            if let Some(lora) = &layout.lora {
                if let Some(scaling) = lora.scaling(i) {
                    let r = lora.ranks[i];
                    let (g, w) = if lora.per_head { (h, dh) } else { (1, d) };
                    for proj in &lora.targets {
                        let a = Tensor::from_vec(
                            uniform(&mut rng, g * r * d, bound),
                            (g, r, d),
                            device,
                        )?;
                        let vars = LowRankVars {
                            a: Var::from_tensor(&a)?,
                            b: Var::zeros((g, w, r), DType::F32, device)?,
                            scaling,
                        };
                        match proj {
                            Projection::Q => block.q = Some(vars),
                            Projection::V => block.v = Some(vars),
                        }
                    }
                }
            }
            if layout.gates {
                block.gate = Some(Var::zeros(h, DType::F32, device)?);
            }
            blocks.push(block);
        }
        Ok(Self { layout, blocks })
    }

    /// The layout.
    pub fn spec(&self) -> &AdapterSpec {
        &self.layout
    }

    /// The per-block hooks for the model's forward pass (tracking gradients).
    pub fn hooks(&self) -> Result<Vec<HeadHooks>> {
        self.blocks
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let lr = |v: &Option<LowRankVars>, p: Projection| -> Result<Option<HeadLowRank>> {
                    v.as_ref()
                        .map(|v| {
                            HeadLowRank::new(
                                v.a.as_tensor().clone(),
                                v.b.as_tensor().clone(),
                                v.scaling,
                                &adapter_key(i, p, ""),
                            )
                            .map_err(TrainError::from)
                        })
                        .transpose()
                };
                Ok(HeadHooks {
                    q: lr(&b.q, Projection::Q)?,
                    v: lr(&b.v, Projection::V)?,
                    gate_logits: b.gate.as_ref().map(|g| g.as_tensor().clone()),
                })
            })
            .collect()
    }

    /// The LoRA factors, by `adapter.safetensors` name.
    pub fn lora_vars(&self) -> Vec<(String, Var)> {
        let mut out = Vec::new();
        for (i, b) in self.blocks.iter().enumerate() {
            for (p, v) in [(Projection::Q, &b.q), (Projection::V, &b.v)] {
                if let Some(v) = v {
                    out.push((adapter_key(i, p, "lora_a"), v.a.clone()));
                    out.push((adapter_key(i, p, "lora_b"), v.b.clone()));
                }
            }
        }
        out
    }

    /// The gate logits, by `adapter.safetensors` name.
    pub fn gate_vars(&self) -> Vec<(String, Var)> {
        self.blocks
            .iter()
            .enumerate()
            .filter_map(|(i, b)| b.gate.as_ref().map(|g| (gate_key(i), g.clone())))
            .collect()
    }

    /// Number of trainable scalars.
    pub fn num_parameters(&self) -> usize {
        self.lora_vars()
            .iter()
            .chain(self.gate_vars().iter())
            .map(|(_, v)| v.elem_count())
            .sum()
    }

    /// A snapshot of the current values (deep copies: `Var::set` updates storage in place, so
    /// a merely detached view would follow later updates).
    pub fn snapshot(&self) -> Result<HashMap<String, Tensor>> {
        self.lora_vars()
            .into_iter()
            .chain(self.gate_vars())
            .map(|(k, v)| Ok((k, v.as_tensor().copy()?.detach())))
            .collect()
    }

    /// Sets every parameter from `values` (names as in [`Self::snapshot`]).
    pub fn restore(&self, values: &HashMap<String, Tensor>) -> Result<()> {
        for (name, var) in self.lora_vars().into_iter().chain(self.gate_vars()) {
            let v = values
                .get(&name)
                .ok_or_else(|| TrainError::run_dir("state", format!("missing tensor `{name}`")))?;
            if v.dims() != var.dims() {
                return Err(TrainError::run_dir(
                    "state",
                    format!(
                        "tensor `{name}` has shape {:?}, expected {:?}",
                        v.dims(),
                        var.dims()
                    ),
                ));
            }
            var.set(&v.to_device(var.device())?)?;
        }
        Ok(())
    }

    /// The adapter to save: hooks built from `values` (a [`Self::snapshot`]) plus the
    /// classifier.
    pub fn adapter_from(
        &self,
        values: &HashMap<String, Tensor>,
        text_embeds: &Tensor,
        logit_scale: f32,
    ) -> Result<Adapter> {
        let get = |name: &str| -> Result<Tensor> {
            values
                .get(name)
                .cloned()
                .ok_or_else(|| TrainError::run_dir("state", format!("missing tensor `{name}`")))
        };
        let mut hooks = Vec::with_capacity(self.blocks.len());
        for (i, b) in self.blocks.iter().enumerate() {
            let mut hook = HeadHooks::default();
            for (p, v) in [(Projection::Q, &b.q), (Projection::V, &b.v)] {
                if let Some(v) = v {
                    let lr = HeadLowRank::new(
                        get(&adapter_key(i, p, "lora_a"))?,
                        get(&adapter_key(i, p, "lora_b"))?,
                        v.scaling,
                        &adapter_key(i, p, ""),
                    )?;
                    match p {
                        Projection::Q => hook.q = Some(lr),
                        Projection::V => hook.v = Some(lr),
                    }
                }
            }
            if b.gate.is_some() {
                hook.gate_logits = Some(get(&gate_key(i))?);
            }
            hooks.push(hook);
        }
        Ok(Adapter {
            hooks,
            text_embeds: text_embeds.detach(),
            logit_scale: Tensor::new(logit_scale, text_embeds.device())?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paper_ranks_and_budget() {
        assert_eq!(default_ranks(12), vec![2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 8, 8]);
        assert_eq!(default_ranks(2), vec![8, 8]);
        // ViT-B: 12 heads; HA-LoRA r=2 has 12*2*768 + 768*2 = 19968 params, LoRA r=13 has 19968.
        assert_eq!(lora_budget_rank(2, 12), 13);
        assert_eq!(lora_budget_rank(8, 12), 52);
        assert_eq!(lora_budget_rank(0, 12), 0);
    }

    #[test]
    fn budgets_match_between_lora_and_ha_lora() -> Result<()> {
        let vision = ClipVisionConfig {
            hidden_size: 32,
            num_attention_heads: 4,
            num_hidden_layers: 3,
            ..Default::default()
        };
        let ranks = default_ranks(3);
        let ha = Trainable::init(
            AdapterSpec::new(Method::HaLora, &ranks, 8.0, &vision)?,
            &vision,
            0,
            &Device::Cpu,
        )?;
        let lora = Trainable::init(
            AdapterSpec::new(Method::Lora, &ranks, 8.0, &vision)?,
            &vision,
            0,
            &Device::Cpu,
        )?;
        let (a, b) = (ha.num_parameters() as f64, lora.num_parameters() as f64);
        assert!((a - b).abs() / a < 0.15, "ha-lora {a} vs lora {b}");
        let dig = Trainable::init(
            AdapterSpec::new(Method::Dig, &ranks, 8.0, &vision)?,
            &vision,
            0,
            &Device::Cpu,
        )?;
        assert_eq!(dig.num_parameters(), 3 * 4);
        Ok(())
    }
}
