//! The vision tower's graph: patch and position embeddings, the encoder blocks (attention
//! over the kept heads, MLP), and the projected class token.

use ahp_spec::onnx_names::INPUT_PIXEL_VALUES;
use ahp_spec::{ClipConfig, ClipVisionConfig};
use candle_core::{DType, Tensor};
use onnx_protobuf::tensor_proto::DataType;

use super::builder::{attr_int, attr_ints, Builder};
use super::weights::{head_index, shaped, Weights};
use crate::error::Result;
use crate::fold::{attn_key, vision_layer_key};

const EMBEDDINGS: &str = "vision_model.embeddings";

/// The tower's config, weights and kept heads while its graph is built.
pub(super) struct Tower<'a> {
    config: &'a ClipConfig,
    cfg: &'a ClipVisionConfig,
    w: &'a Weights,
    kept: &'a [Vec<usize>],
}

/// One block's attention over its kept heads.
struct Heads<'a> {
    /// Block index.
    block: usize,
    /// The block's name prefix (`vision_model.encoder.layers.{i}`).
    prefix: &'a str,
    /// Node name prefix of the attention (`{prefix}/attn`).
    scope: String,
    /// Kept head indices (at least one).
    kept: &'a [usize],
    /// Row indices of the kept heads in the Q/K/V weights.
    index: Tensor,
}

impl<'a> Tower<'a> {
    /// The tower of `config` with `weights`, keeping `kept[i]` heads in block `i`.
    pub fn new(config: &'a ClipConfig, w: &'a Weights, kept: &'a [Vec<usize>]) -> Self {
        Self {
            config,
            cfg: &config.vision_config,
            w,
            kept,
        }
    }

    /// The unnormalized image embeddings `[B, P]` computed from the graph input.
    pub fn image_embeds(&self, b: &mut Builder, fp16: bool) -> Result<String> {
        let x = pixel_input(b, fp16);
        let mut x = self.embeddings(b, &x)?;
        for (i, heads) in self.kept.iter().enumerate() {
            x = self.block(b, i, heads, &x)?;
        }
        self.projected_class_token(b, &x)
    }

    /// Patch tokens plus position embeddings (with the class token), then `pre_layrnorm`.
    fn embeddings(&self, b: &mut Builder, x: &str) -> Result<String> {
        let tokens = self.patch_tokens(b, x)?;
        let pads = b.ints("pads_class_token", &[6], &[0, 1, 0, 0, 0, 0]);
        let padded = b.step("Pad", EMBEDDINGS, "class_slot", &[&tokens, &pads], vec![]);
        let pos = self.position_embeddings(b)?;
        let x = b.step("Add", EMBEDDINGS, "out", &[&padded, &pos], vec![]);
        let eps = self.cfg.layer_norm_eps;
        b.layer_norm(&x, "vision_model.pre_layrnorm", eps, self.w)
    }

    /// `Conv` with stride = kernel = patch, flattened to tokens `[B, G*G, D]`.
    fn patch_tokens(&self, b: &mut Builder, x: &str) -> Result<String> {
        let cfg = self.cfg;
        let (d, c, p, g) = (
            cfg.hidden_size,
            cfg.num_channels,
            cfg.patch_size,
            cfg.patches_per_side(),
        );
        let patch_name = format!("{EMBEDDINGS}.patch_embedding.weight");
        let patch_w = shaped(self.w, &patch_name, &[d, c, p, p])?;
        let patch_w = b.tensor(&patch_name, patch_w)?;
        let kernel = [p as i64, p as i64];
        let attrs = vec![
            attr_ints("kernel_shape", &kernel),
            attr_ints("strides", &kernel),
        ];
        let conv = b.step("Conv", EMBEDDINGS, "patch_conv", &[x, &patch_w], attrs);
        let shape = b.ints("shape_patches", &[3], &[-1, d as i64, (g * g) as i64]);
        let flat = b.step("Reshape", EMBEDDINGS, "flatten", &[&conv, &shape], vec![]);
        let perm = vec![attr_ints("perm", &[0, 2, 1])];
        Ok(b.step("Transpose", EMBEDDINGS, "tokens", &[&flat], perm))
    }

    /// The position embeddings `[N, D]` with the class embedding added to row 0, so the class
    /// token is a zero token padded in front of the patches.
    fn position_embeddings(&self, b: &mut Builder) -> Result<String> {
        let (n, d) = (self.cfg.num_positions(), self.cfg.hidden_size);
        let cls = shaped(self.w, &format!("{EMBEDDINGS}.class_embedding"), &[d])?;
        let pos = format!("{EMBEDDINGS}.position_embedding.weight");
        let pos = shaped(self.w, &pos, &[n, d])?;
        let mut pos_data = pos.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        for (dst, v) in pos_data
            .iter_mut()
            .zip(cls.to_dtype(DType::F32)?.to_vec1::<f32>()?)
        {
            *dst += v;
        }
        let name = format!("{EMBEDDINGS}.position_embedding_with_class");
        b.floats(&name, &[n, d], &pos_data)
    }

    /// Encoder block `i` keeping `heads`: pre-norm attention and MLP, each with a residual.
    fn block(&self, b: &mut Builder, i: usize, heads: &[usize], x: &str) -> Result<String> {
        let eps = self.cfg.layer_norm_eps;
        let pre = vision_layer_key(i, "");
        let pre = pre.trim_end_matches('.');
        let h = b.layer_norm(x, &format!("{pre}.layer_norm1"), eps, self.w)?;
        let attn = self.attention(b, i, pre, heads, &h)?;
        let x = b.step("Add", pre, "attn_residual", &[x, &attn], vec![]);
        let h = b.layer_norm(&x, &format!("{pre}.layer_norm2"), eps, self.w)?;
        let mlp = self.mlp(b, pre, &h)?;
        Ok(b.step("Add", pre, "mlp_residual", &[&x, &mlp], vec![]))
    }

    /// Block `i`'s self-attention of `h` over the kept heads, through `out_proj`.
    fn attention(
        &self,
        b: &mut Builder,
        i: usize,
        pre: &str,
        kept: &[usize],
        h: &str,
    ) -> Result<String> {
        let (d, nh, dh) = (
            self.cfg.hidden_size,
            self.cfg.num_attention_heads,
            self.cfg.head_dim(),
        );
        let out_b_name = attn_key(i, "out", "bias");
        let out_w = shaped(self.w, &attn_key(i, "out", "weight"), &[d, d])?;
        let out_b = shaped(self.w, &out_b_name, &[d])?;
        if kept.is_empty() {
            // Every head pruned: the block's attention is out_proj's bias.
            return b.tensor(&out_b_name, out_b);
        }
        let heads = Heads {
            block: i,
            prefix: pre,
            scope: format!("{pre}/attn"),
            kept,
            index: head_index(kept, dh)?,
        };
        let merged = self.multi_head(b, &heads, h)?;
        let out_w = if kept.len() == nh {
            out_w.clone()
        } else {
            out_w.index_select(&heads.index, 1)?
        };
        b.linear(
            &merged,
            &format!("{pre}.self_attn.out_proj"),
            &out_w,
            Some(out_b),
        )
    }

    /// `softmax(q k^T * d_head^-0.5) v` per kept head, merged back to `[B, N, k * d_head]`.
    fn multi_head(&self, b: &mut Builder, heads: &Heads, h: &str) -> Result<String> {
        let (n, dh) = (self.cfg.num_positions(), self.cfg.head_dim());
        let scope = heads.scope.as_str();
        let q = self.head_projection(b, heads, h, "q", &[0, 2, 1, 3])?; // [B, k, N, dh]
        let kt = self.head_projection(b, heads, h, "k", &[0, 2, 3, 1])?; // [B, k, dh, N]
        let v = self.head_projection(b, heads, h, "v", &[0, 2, 1, 3])?; // [B, k, N, dh]
        let scores = b.step("MatMul", scope, "scores", &[&q, &kt], vec![]);
        let scale = (dh as f64).powf(-0.5) as f32;
        let sc = b.scalar(&format!("{}.self_attn.scale", heads.prefix), scale)?;
        let scores = b.step("Mul", scope, "scaled_scores", &[&scores, &sc], vec![]);
        let axis = vec![attr_int("axis", -1)];
        let probs = b.step("Softmax", scope, "probs", &[&scores], axis);
        let ctx = b.step("MatMul", scope, "context", &[&probs, &v], vec![]);
        let perm = vec![attr_ints("perm", &[0, 2, 1, 3])];
        let ctx = b.step("Transpose", scope, "context_tokens", &[&ctx], perm);
        let width = (heads.kept.len() * dh) as i64;
        let shape = b.ints("shape_merge", &[3], &[-1, n as i64, width]);
        Ok(b.step("Reshape", scope, "merged", &[&ctx, &shape], vec![]))
    }

    /// The `which` (`q`, `k` or `v`) projection of `h` restricted to the kept heads, split
    /// into heads and transposed with `perm`.
    fn head_projection(
        &self,
        b: &mut Builder,
        heads: &Heads,
        h: &str,
        which: &str,
        perm: &[i64],
    ) -> Result<String> {
        let (d, nh, dh) = (
            self.cfg.hidden_size,
            self.cfg.num_attention_heads,
            self.cfg.head_dim(),
        );
        let (n, k, i) = (self.cfg.num_positions(), heads.kept.len(), heads.block);
        let wt = shaped(self.w, &attn_key(i, which, "weight"), &[d, d])?;
        let bt = shaped(self.w, &attn_key(i, which, "bias"), &[d])?;
        let (wt, bt) = if k == nh {
            (wt.clone(), bt.clone())
        } else {
            (
                wt.index_select(&heads.index, 0)?,
                bt.index_select(&heads.index, 0)?,
            )
        };
        let prefix = format!("{}.self_attn.{which}_proj", heads.prefix);
        let y = b.linear(h, &prefix, &wt, Some(&bt))?;
        let shape = b.ints("shape_heads", &[4], &[-1, n as i64, k as i64, dh as i64]);
        let scope = heads.scope.as_str();
        let y = b.step(
            "Reshape",
            scope,
            &format!("{which}_split"),
            &[&y, &shape],
            vec![],
        );
        let perm = vec![attr_ints("perm", perm)];
        Ok(b.step("Transpose", scope, &format!("{which}_heads"), &[&y], perm))
    }

    /// `fc2(act(fc1(h)))`.
    fn mlp(&self, b: &mut Builder, pre: &str, h: &str) -> Result<String> {
        let (d, inner) = (self.cfg.hidden_size, self.cfg.intermediate_size);
        let y = self.checked_linear(b, h, &format!("{pre}.mlp.fc1"), &[inner, d])?;
        let y = b.activation(self.cfg.hidden_act, &y, &format!("{pre}.mlp.act"))?;
        self.checked_linear(b, &y, &format!("{pre}.mlp.fc2"), &[d, inner])
    }

    /// The linear layer `{prefix}.weight` (shape `dims`) and `{prefix}.bias` applied to `x`.
    fn checked_linear(
        &self,
        b: &mut Builder,
        x: &str,
        prefix: &str,
        dims: &[usize; 2],
    ) -> Result<String> {
        let wt = shaped(self.w, &format!("{prefix}.weight"), dims)?;
        let bt = shaped(self.w, &format!("{prefix}.bias"), &dims[..1])?;
        b.linear(x, prefix, wt, Some(bt))
    }

    /// Token 0 of the last block's output, `post_layernorm`ed and projected to `[B, P]`.
    fn projected_class_token(&self, b: &mut Builder, x: &str) -> Result<String> {
        let zero = b.ints("class_token_index", &[], &[0]);
        let axis = vec![attr_int("axis", 1)];
        let pooled = b.node("Gather", "vision_model/class_token", &[x, &zero], axis);
        let eps = self.cfg.layer_norm_eps;
        let pooled = b.layer_norm(&pooled, "vision_model.post_layernorm", eps, self.w)?;
        let vp_dims = [self.config.projection_dim, self.cfg.hidden_size];
        let vp = shaped(self.w, "visual_projection.weight", &vp_dims)?;
        b.linear(&pooled, "visual_projection", vp, None)
    }
}

/// The graph input, cast to f16 in fp16 mode.
fn pixel_input(b: &mut Builder, fp16: bool) -> String {
    if !fp16 {
        return INPUT_PIXEL_VALUES.to_string();
    }
    let to = vec![attr_int("to", DataType::FLOAT16 as i64)];
    b.node("Cast", "pixel_values_f16", &[INPUT_PIXEL_VALUES], to)
}
