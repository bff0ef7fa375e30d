//! The transformer encoder shared by both towers (HF `CLIPEncoder`), with attention computed
//! per head so each head's Q/V projection, output gate and output are reachable.

use ahp_spec::{Activation, ClipTextConfig, ClipVisionConfig};
use candle_core::Tensor;
use candle_nn::VarBuilder;

use crate::nn::Linear;

use crate::error::{ModelError, Result};
use crate::heads::{gates_from_logits, HeadHooks};
use crate::nn::{activate, softmax_last_dim, LayerNorm};

/// Shape parameters of an encoder (taken from the text or vision config).
#[derive(Debug, Clone, Copy)]
pub struct EncoderShape {
    /// Width.
    pub hidden_size: usize,
    /// MLP width.
    pub intermediate_size: usize,
    /// Heads per block.
    pub num_heads: usize,
    /// Number of blocks.
    pub num_layers: usize,
    /// MLP activation.
    pub act: Activation,
    /// LayerNorm epsilon.
    pub eps: f64,
}

/// An [`EncoderShape`] from a tower config; the text and vision configs name these fields
/// alike.
macro_rules! shape_of {
    ($cfg:expr) => {
        EncoderShape {
            hidden_size: $cfg.hidden_size,
            intermediate_size: $cfg.intermediate_size,
            num_heads: $cfg.num_attention_heads,
            num_layers: $cfg.num_hidden_layers,
            act: $cfg.hidden_act,
            eps: $cfg.layer_norm_eps,
        }
    };
}

impl From<&ClipTextConfig> for EncoderShape {
    fn from(cfg: &ClipTextConfig) -> Self {
        shape_of!(cfg)
    }
}

impl From<&ClipVisionConfig> for EncoderShape {
    fn from(cfg: &ClipVisionConfig) -> Self {
        shape_of!(cfg)
    }
}

impl EncoderShape {
    /// A LayerNorm of the encoder's width and epsilon, loaded from `vb` (the blocks' norms
    /// and the towers' own).
    pub fn layer_norm(&self, vb: VarBuilder) -> candle_core::Result<LayerNorm> {
        LayerNorm::new(self.hidden_size, self.eps, vb)
    }
}

/// HF `CLIPAttention` (`self_attn.{q,k,v,out}_proj`), evaluated head by head.
#[derive(Debug, Clone)]
pub struct Attention {
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    out_proj: Linear,
    num_heads: usize,
    head_dim: usize,
}

/// Output of one attention call.
#[derive(Debug, Clone)]
pub struct AttentionOutput {
    /// After `out_proj`: `[B, N, D]`.
    pub output: Tensor,
    /// Gated per-head outputs before `out_proj`: `[B, H, N, d_head]`.
    pub heads: Tensor,
}

fn linear(in_dim: usize, out_dim: usize, vb: VarBuilder) -> candle_core::Result<Linear> {
    Linear::new(in_dim, out_dim, vb)
}

impl Attention {
    /// Loads the four projections from `vb` (HF names `q_proj`, `k_proj`, `v_proj`,
    /// `out_proj`).
    pub fn new(vb: VarBuilder, shape: &EncoderShape) -> candle_core::Result<Self> {
        let d = shape.hidden_size;
        Ok(Self {
            q_proj: linear(d, d, vb.pp("q_proj"))?,
            k_proj: linear(d, d, vb.pp("k_proj"))?,
            v_proj: linear(d, d, vb.pp("v_proj"))?,
            out_proj: linear(d, d, vb.pp("out_proj"))?,
            num_heads: shape.num_heads,
            head_dim: d / shape.num_heads,
        })
    }

    /// The Q projection.
    pub fn q_proj(&self) -> &Linear {
        &self.q_proj
    }
    /// The K projection.
    pub fn k_proj(&self) -> &Linear {
        &self.k_proj
    }
    /// The V projection.
    pub fn v_proj(&self) -> &Linear {
        &self.v_proj
    }
    /// The output projection.
    pub fn out_proj(&self) -> &Linear {
        &self.out_proj
    }
    /// Heads.
    pub fn num_heads(&self) -> usize {
        self.num_heads
    }
    /// Width of a head.
    pub fn head_dim(&self) -> usize {
        self.head_dim
    }

    /// `true` when the projections are constants (adapter training, inference), `false` when
    /// they are trained themselves (`ahp-pretrain`).
    fn is_frozen(&self) -> bool {
        self.q_proj.is_frozen() && self.k_proj.is_frozen()
    }

    /// `[B, N, H*dh] -> [B, H, N, dh]`
    fn split_heads(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let (b, n, _) = x.dims3()?;
        x.reshape((b, n, self.num_heads, self.head_dim))?
            .transpose(1, 2)?
            .contiguous()
    }

    /// Attention over `x` `[B, N, D]`. `mask` is an additive mask broadcastable to
    /// `[B, H, N, N]` (0 where attending is allowed, a large negative value elsewhere).
    pub fn forward(
        &self,
        x: &Tensor,
        mask: Option<&Tensor>,
        hooks: &HeadHooks,
    ) -> Result<AttentionOutput> {
        let (b, n, d) = x.dims3()?;
        let q = match &hooks.q {
            Some(lr) => {
                check_hook(lr.num_heads(), lr.head_dim(), self, "q")?;
                lr.forward_with(&self.q_proj, x)?
            }
            None => self.q_proj.forward(x)?,
        };
        let k = self.k_proj.forward(x)?;
        let v = match &hooks.v {
            Some(lr) => {
                check_hook(lr.num_heads(), lr.head_dim(), self, "v")?;
                lr.forward_with(&self.v_proj, x)?
            }
            None => self.v_proj.forward(x)?,
        };
        let scale = (self.head_dim as f64).powf(-0.5);
        // Training through frozen weights: fused kernels that keep fewer activations
        // (`crate::ops`); otherwise candle's primitive ops.
        let fused = mask.is_none() && self.is_frozen() && crate::ops::fused_ok(&q);
        let split = |t: &Tensor| -> candle_core::Result<Tensor> {
            if fused && t.track_op() {
                crate::ops::split_heads(t, self.num_heads)
            } else {
                self.split_heads(t)
            }
        };
        let q = split(&q)?;
        let k = split(&k)?;
        let v = split(&v)?;
        let probs = if fused {
            // The scale is applied inside the fused softmax, which keeps only its output.
            crate::ops::scaled_softmax_last_dim(&q.matmul(&k.t()?)?, scale)?
        } else {
            let mut scores = (q.matmul(&k.t()?)? * scale)?;
            if let Some(mask) = mask {
                scores = scores.broadcast_add(mask)?;
            }
            softmax_last_dim(&scores)?
        };
        let mut heads = probs.matmul(&v)?; // [B, H, N, dh]
        if let Some(logits) = &hooks.gate_logits {
            let g = gates_from_logits(logits)?;
            if g.dims1()? != self.num_heads {
                return Err(ModelError::Input(format!(
                    "gate_logits has {} entries, the block has {} heads",
                    g.dims1()?,
                    self.num_heads
                )));
            }
            heads = heads.broadcast_mul(&g.reshape((1, self.num_heads, 1, 1))?)?;
        }
        let merged = if fused && heads.track_op() {
            crate::ops::merge_heads(&heads)?
        } else {
            heads.transpose(1, 2)?.reshape((b, n, d))?
        };
        let output = self.out_proj.forward(&merged)?;
        Ok(AttentionOutput { output, heads })
    }
}

/// A delta is either per head (`H` groups of `d_head` rows, HA-LoRA) or one group spanning the
/// whole projection (`1` group of `D` rows, plain LoRA).
fn check_hook(h: usize, dh: usize, attn: &Attention, which: &str) -> Result<()> {
    let per_head = h == attn.num_heads && dh == attn.head_dim;
    let whole = h == 1 && dh == attn.num_heads * attn.head_dim;
    if !per_head && !whole {
        return Err(ModelError::Input(format!(
            "{which} low-rank delta has {h} groups of width {dh}; the block needs {} heads of width {} (HA-LoRA) or 1 group of width {} (LoRA)",
            attn.num_heads,
            attn.head_dim,
            attn.num_heads * attn.head_dim
        )));
    }
    Ok(())
}

/// HF `CLIPMLP` (`mlp.fc1`, `mlp.fc2`).
#[derive(Debug, Clone)]
pub struct Mlp {
    fc1: Linear,
    fc2: Linear,
    act: Activation,
}

impl Mlp {
    /// Loads `fc1` and `fc2` from `vb`.
    pub fn new(vb: VarBuilder, shape: &EncoderShape) -> candle_core::Result<Self> {
        Ok(Self {
            fc1: linear(shape.hidden_size, shape.intermediate_size, vb.pp("fc1"))?,
            fc2: linear(shape.intermediate_size, shape.hidden_size, vb.pp("fc2"))?,
            act: shape.act,
        })
    }

    /// `fc2(act(fc1(x)))`.
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let h = self.fc1.forward(x)?;
        let frozen = self.fc1.is_frozen() && self.fc2.is_frozen();
        let h = if self.act == Activation::QuickGelu && frozen && crate::ops::fused_ok(&h) {
            crate::ops::quick_gelu(&h)?
        } else {
            activate(self.act, &h)?
        };
        self.fc2.forward(&h)
    }

    /// First linear layer.
    pub fn fc1(&self) -> &Linear {
        &self.fc1
    }
    /// Second linear layer.
    pub fn fc2(&self) -> &Linear {
        &self.fc2
    }
    /// Activation.
    pub fn act(&self) -> Activation {
        self.act
    }
}

/// HF `CLIPEncoderLayer`: pre-norm attention and MLP with residuals.
#[derive(Debug, Clone)]
pub struct EncoderLayer {
    layer_norm1: LayerNorm,
    self_attn: Attention,
    layer_norm2: LayerNorm,
    mlp: Mlp,
}

impl EncoderLayer {
    /// Loads one block from `vb` (`layer_norm1`, `self_attn`, `layer_norm2`, `mlp`).
    pub fn new(vb: VarBuilder, shape: &EncoderShape) -> candle_core::Result<Self> {
        Ok(Self {
            layer_norm1: shape.layer_norm(vb.pp("layer_norm1"))?,
            self_attn: Attention::new(vb.pp("self_attn"), shape)?,
            layer_norm2: shape.layer_norm(vb.pp("layer_norm2"))?,
            mlp: Mlp::new(vb.pp("mlp"), shape)?,
        })
    }

    /// The attention module.
    pub fn self_attn(&self) -> &Attention {
        &self.self_attn
    }
    /// The first LayerNorm.
    pub fn layer_norm1(&self) -> &LayerNorm {
        &self.layer_norm1
    }
    /// The second LayerNorm.
    pub fn layer_norm2(&self) -> &LayerNorm {
        &self.layer_norm2
    }
    /// The MLP.
    pub fn mlp(&self) -> &Mlp {
        &self.mlp
    }

    /// One block; returns the new hidden states and the gated per-head outputs.
    pub fn forward(
        &self,
        x: &Tensor,
        mask: Option<&Tensor>,
        hooks: &HeadHooks,
    ) -> Result<(Tensor, Tensor)> {
        let attn = self
            .self_attn
            .forward(&self.layer_norm1.forward(x)?, mask, hooks)?;
        let x = (x + attn.output)?;
        let x = (&x + self.mlp.forward(&self.layer_norm2.forward(&x)?)?)?;
        Ok((x, attn.heads))
    }
}

/// HF `CLIPEncoder` (`layers.{i}`).
#[derive(Debug, Clone)]
pub struct Encoder {
    layers: Vec<EncoderLayer>,
}

/// Output of the encoder.
#[derive(Debug, Clone)]
pub struct EncoderOutput {
    /// Final hidden states `[B, N, D]`.
    pub hidden: Tensor,
    /// Per block, the gated per-head outputs `[B, H, N, d_head]` (empty unless requested).
    pub heads: Vec<Tensor>,
}

impl Encoder {
    /// Loads `shape.num_layers` blocks from `vb.pp("layers")`.
    pub fn new(vb: VarBuilder, shape: &EncoderShape) -> candle_core::Result<Self> {
        let vb = vb.pp("layers");
        let layers = (0..shape.num_layers)
            .map(|i| EncoderLayer::new(vb.pp(i), shape))
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Self { layers })
    }

    /// The blocks.
    pub fn layers(&self) -> &[EncoderLayer] {
        &self.layers
    }

    /// Runs every block. `hooks` is empty (plain CLIP) or has one entry per block;
    /// `collect_heads` keeps the per-head outputs of every block.
    pub fn forward(
        &self,
        x: &Tensor,
        mask: Option<&Tensor>,
        hooks: &[HeadHooks],
        collect_heads: bool,
    ) -> Result<EncoderOutput> {
        if !hooks.is_empty() && hooks.len() != self.layers.len() {
            return Err(ModelError::Input(format!(
                "{} hook sets given for {} blocks",
                hooks.len(),
                self.layers.len()
            )));
        }
        let none = HeadHooks::default();
        let mut x = x.clone();
        let mut heads = Vec::new();
        for (i, layer) in self.layers.iter().enumerate() {
            let h = hooks.get(i).unwrap_or(&none);
            let (next, head_out) = layer.forward(&x, mask, h)?;
            x = next;
            if collect_heads {
                heads.push(head_out);
            }
        }
        Ok(EncoderOutput { hidden: x, heads })
    }
}
