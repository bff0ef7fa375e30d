//! Building the ONNX graph of a plain (folded) CLIP vision tower with its projection, L2
//! normalization and the folded classifier, with `onnx-protobuf` types.
//!
//! Input `pixel_values` `f32 [batch, 3, S, S]` (symbolic `batch`); outputs `logits`
//! `f32 [batch, C]` and `image_embeds` `f32 [batch, P]` (L2-normalized), names from
//! [`ahp_spec::io`]. Standard ONNX operators only (default domain):
//!
//! * embeddings: `Conv` (stride = kernel = patch) → `Reshape` → `Transpose`, then `Pad` one zero
//!   token in front and `Add` the position embeddings whose row 0 already holds the class
//!   embedding (so the class token needs no batch-dependent `Expand`);
//! * LayerNorm: `LayerNormalization` from opset 17, else `ReduceMean`/`Sub`/`Mul`/`Add`/`Sqrt`/
//!   `Div`;
//! * attention, as the model computes it: `MatMul`+`Add` for Q, K and V, `Reshape` to
//!   `[B, N, H, d_head]`, `Transpose` to heads-first, `MatMul`, `Mul` by `d_head^-0.5`,
//!   `Softmax(axis=-1)`, `MatMul`, `Transpose` back, `Reshape`, `out_proj`;
//! * MLP activations: `Sigmoid`/`Mul` (quick_gelu), `Erf` (gelu), `Tanh` (gelu_pytorch_tanh),
//!   `Relu`;
//! * pooling: `Gather` of token 0; `ReduceL2` + `Div` for the normalization; `MatMul` with the
//!   `[P, C]` classifier.
//!
//! Weights are f32 initializers (f16 with [`OnnxOptions::fp16`], with `Cast` at the input and
//! the outputs so the interface stays f32). Gates and low-rank deltas never appear: they are
//! folded ([`crate::fold`]), so a purified export has the same nodes as a zero-shot one.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use ahp_spec::io::{INPUT_PIXEL_VALUES, OUTPUT_IMAGE_EMBEDS, OUTPUT_LOGITS};
use ahp_spec::{Activation, ClipConfig};
use candle_core::{DType, Device, Tensor};
use onnx_protobuf::attribute_proto::AttributeType;
use onnx_protobuf::tensor_proto::DataType;
use onnx_protobuf::tensor_shape_proto::{dimension, Dimension};
use onnx_protobuf::{
    type_proto, AttributeProto, GraphProto, Message, ModelProto, NodeProto, OperatorSetIdProto,
    StringStringEntryProto, TensorProto, TensorShapeProto, TypeProto, ValueInfoProto,
};

use crate::error::{ExportError, Result};
use crate::fold::{attn_key, vision_layer_key};

/// Default opset.
pub const DEFAULT_OPSET: i64 = 17;
/// Lowest supported opset (`Softmax` over one axis, `Pad` with input pads).
pub const MIN_OPSET: i64 = 13;
/// Highest supported opset.
pub const MAX_OPSET: i64 = 21;
/// Symbolic name of the batch dimension.
pub const BATCH_DIM: &str = "batch";
/// A serialized protobuf message cannot exceed 2 GiB.
pub const PROTOBUF_LIMIT: u64 = (1 << 31) - 1;

/// The ONNX IR version that goes with `opset` (the release that introduced the opset):
/// 7 for 13, 8 for 14–18, 9 for 19–20, 10 for 21.
pub fn ir_version_for(opset: i64) -> i64 {
    match opset {
        ..=13 => 7,
        14..=18 => 8,
        19..=20 => 9,
        _ => 10,
    }
}

/// How the graph is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnnxOptions {
    /// Operator set of the default domain ([`MIN_OPSET`]..=[`MAX_OPSET`]).
    pub opset: i64,
    /// Store weights and compute in f16 (inputs and outputs stay f32 via `Cast`).
    pub fp16: bool,
}

impl Default for OnnxOptions {
    fn default() -> Self {
        Self {
            opset: DEFAULT_OPSET,
            fp16: false,
        }
    }
}

impl OnnxOptions {
    /// Errors unless the opset is supported.
    pub fn check(&self) -> Result<()> {
        if !(MIN_OPSET..=MAX_OPSET).contains(&self.opset) {
            return Err(ExportError::Invalid(format!(
                "opset {} is not supported (use {MIN_OPSET}..={MAX_OPSET})",
                self.opset
            )));
        }
        Ok(())
    }
}

/// What to put into the graph.
#[derive(Debug, Clone, Copy)]
pub struct VisionGraph<'a> {
    /// The model config (vision tower and projection size are used).
    pub config: &'a ClipConfig,
    /// Plain (folded) weights under Hugging Face names.
    pub weights: &'a HashMap<String, Tensor>,
    /// The folded classifier `[C, P]` (normalized class embeddings times `exp(logit_scale)`).
    pub classifier: &'a Tensor,
    /// Heads kept per block (sorted indices), for head pruning; `None` keeps all heads.
    pub kept_heads: Option<&'a [Vec<usize>]>,
}

fn attr_int(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        type_: AttributeType::INT.into(),
        i: v,
        ..Default::default()
    }
}

fn attr_ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        type_: AttributeType::INTS.into(),
        ints: v.to_vec(),
        ..Default::default()
    }
}

fn attr_float(name: &str, v: f32) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        type_: AttributeType::FLOAT.into(),
        f: v,
        ..Default::default()
    }
}

/// f32 → IEEE half, round to nearest even (overflow → ±inf, which the caller rejects).
pub fn f32_to_f16_bits(x: f32) -> u16 {
    let bits = x.to_bits();
    let sign = ((bits >> 16) & 0x8000) as u16;
    let exp = ((bits >> 23) & 0xff) as i32;
    let mant = bits & 0x7f_ffff;
    if exp == 0xff {
        // inf / nan
        return sign | 0x7c00 | if mant != 0 { 0x200 } else { 0 };
    }
    let e = exp - 127 + 15;
    if e >= 0x1f {
        return sign | 0x7c00;
    }
    if e <= 0 {
        if e < -10 {
            return sign;
        }
        // subnormal half
        let m = mant | 0x80_0000;
        let shift = (14 - e) as u32;
        let half = m >> shift;
        let rem = m & ((1 << shift) - 1);
        let halfway = 1 << (shift - 1);
        let round = rem > halfway || (rem == halfway && (half & 1) == 1);
        return sign | (half as u16 + u16::from(round));
    }
    let half_mant = mant >> 13;
    let rem = mant & 0x1fff;
    let mut out = ((e as u32) << 10) | half_mant;
    if rem > 0x1000 || (rem == 0x1000 && (half_mant & 1) == 1) {
        out += 1; // may carry into the exponent, which is correct (up to inf)
    }
    sign | out as u16
}

struct Builder {
    nodes: Vec<NodeProto>,
    inits: Vec<TensorProto>,
    used: HashMap<String, usize>,
    int_cache: HashMap<Vec<i64>, String>,
    opset: i64,
    fp16: bool,
    float_bytes: u64,
}

impl Builder {
    fn unique(&mut self, base: &str) -> String {
        let n = self.used.entry(base.to_string()).or_insert(0);
        *n += 1;
        if *n == 1 {
            base.to_string()
        } else {
            format!("{base}_{}", *n - 1)
        }
    }

    fn float_type(&self) -> DataType {
        if self.fp16 {
            DataType::FLOAT16
        } else {
            DataType::FLOAT
        }
    }

    /// Adds a node with one output named after `name`; returns the output name.
    fn node(
        &mut self,
        op: &str,
        name: &str,
        inputs: &[&str],
        attrs: Vec<AttributeProto>,
    ) -> String {
        let out = self.unique(name);
        self.node_to(op, inputs, attrs, &out);
        out
    }

    /// Adds a node whose single output is `output` (a graph output name).
    fn node_to(&mut self, op: &str, inputs: &[&str], attrs: Vec<AttributeProto>, output: &str) {
        self.nodes.push(NodeProto {
            name: format!("{output}/{op}"),
            op_type: op.into(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![output.to_string()],
            attribute: attrs,
            ..Default::default()
        });
    }

    /// A float initializer from f32 values (stored as f16 in fp16 mode).
    fn floats(&mut self, name: &str, dims: &[usize], data: &[f32]) -> Result<String> {
        if let Some(i) = data.iter().position(|v| !v.is_finite()) {
            return Err(ExportError::tensor(
                name,
                format!("value {} at index {i} is not finite", data[i]),
            ));
        }
        let raw: Vec<u8> = if self.fp16 {
            let mut raw = Vec::with_capacity(data.len() * 2);
            for (i, v) in data.iter().enumerate() {
                let h = f32_to_f16_bits(*v);
                if h & 0x7c00 == 0x7c00 {
                    return Err(ExportError::tensor(
                        name,
                        format!("value {v} at index {i} overflows f16 (--fp16)"),
                    ));
                }
                raw.extend_from_slice(&h.to_le_bytes());
            }
            raw
        } else {
            data.iter().flat_map(|v| v.to_le_bytes()).collect()
        };
        self.float_bytes += raw.len() as u64;
        let out = self.unique(name);
        self.inits.push(TensorProto {
            name: out.clone(),
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: self.float_type() as i32,
            raw_data: raw,
            ..Default::default()
        });
        Ok(out)
    }

    /// A float initializer from a candle tensor (any shape).
    fn tensor(&mut self, name: &str, t: &Tensor) -> Result<String> {
        let t = t.to_dtype(DType::F32)?.to_device(&Device::Cpu)?;
        let dims = t.dims().to_vec();
        let data = t.flatten_all()?.to_vec1::<f32>()?;
        self.floats(name, &dims, &data)
    }

    fn scalar(&mut self, name: &str, v: f32) -> Result<String> {
        self.floats(name, &[], &[v])
    }

    /// An int64 initializer, shared between identical values.
    fn ints(&mut self, name: &str, dims: &[usize], data: &[i64]) -> String {
        let mut key = dims.iter().map(|&d| d as i64).collect::<Vec<_>>();
        key.push(-999);
        key.extend_from_slice(data);
        if let Some(n) = self.int_cache.get(&key) {
            return n.clone();
        }
        let out = self.unique(name);
        self.inits.push(TensorProto {
            name: out.clone(),
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: DataType::INT64 as i32,
            raw_data: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ..Default::default()
        });
        self.int_cache.insert(key, out.clone());
        out
    }

    /// `Reduce*` over the last axis, keeping it (axes attribute before opset 18, input after).
    fn reduce_last(&mut self, op: &str, name: &str, x: &str) -> String {
        if self.opset >= 18 {
            let axes = self.ints("axes_last", &[1], &[-1]);
            self.node(op, name, &[x, &axes], vec![attr_int("keepdims", 1)])
        } else {
            self.node(
                op,
                name,
                &[x],
                vec![attr_ints("axes", &[-1]), attr_int("keepdims", 1)],
            )
        }
    }

    fn layer_norm(
        &mut self,
        x: &str,
        prefix: &str,
        eps: f64,
        weights: &HashMap<String, Tensor>,
    ) -> Result<String> {
        let w = self.tensor(
            &format!("{prefix}.weight"),
            get(weights, &format!("{prefix}.weight"))?,
        )?;
        let b = self.tensor(
            &format!("{prefix}.bias"),
            get(weights, &format!("{prefix}.bias"))?,
        )?;
        if self.opset >= 17 {
            return Ok(self.node(
                "LayerNormalization",
                &format!("{prefix}/out"),
                &[x, &w, &b],
                vec![attr_int("axis", -1), attr_float("epsilon", eps as f32)],
            ));
        }
        let mean = self.reduce_last("ReduceMean", &format!("{prefix}/mean"), x);
        let centered = self.node("Sub", &format!("{prefix}/centered"), &[x, &mean], vec![]);
        let sq = self.node(
            "Mul",
            &format!("{prefix}/sq"),
            &[&centered, &centered],
            vec![],
        );
        let var = self.reduce_last("ReduceMean", &format!("{prefix}/var"), &sq);
        let eps = self.scalar(&format!("{prefix}.eps"), eps as f32)?;
        let var_eps = self.node("Add", &format!("{prefix}/var_eps"), &[&var, &eps], vec![]);
        let std = self.node("Sqrt", &format!("{prefix}/std"), &[&var_eps], vec![]);
        let normed = self.node(
            "Div",
            &format!("{prefix}/normed"),
            &[&centered, &std],
            vec![],
        );
        let scaled = self.node("Mul", &format!("{prefix}/scaled"), &[&normed, &w], vec![]);
        Ok(self.node("Add", &format!("{prefix}/out"), &[&scaled, &b], vec![]))
    }

    /// `x @ weight^T + bias` with `weight` `[out, in]` stored transposed as `[in, out]`.
    fn linear(
        &mut self,
        x: &str,
        prefix: &str,
        weight: &Tensor,
        bias: Option<&Tensor>,
    ) -> Result<String> {
        let wt = weight.to_dtype(DType::F32)?.t()?.contiguous()?;
        let w = self.tensor(&format!("{prefix}.weight_t"), &wt)?;
        let y = self.node("MatMul", &format!("{prefix}/matmul"), &[x, &w], vec![]);
        match bias {
            Some(b) => {
                let b = self.tensor(&format!("{prefix}.bias"), b)?;
                Ok(self.node("Add", &format!("{prefix}/out"), &[&y, &b], vec![]))
            }
            None => Ok(y),
        }
    }

    fn activation(&mut self, act: Activation, x: &str, prefix: &str) -> Result<String> {
        Ok(match act {
            Activation::QuickGelu => {
                let c = self.scalar(&format!("{prefix}.quick_gelu_alpha"), 1.702)?;
                let xs = self.node("Mul", &format!("{prefix}/scaled"), &[x, &c], vec![]);
                let s = self.node("Sigmoid", &format!("{prefix}/sigmoid"), &[&xs], vec![]);
                self.node("Mul", &format!("{prefix}/out"), &[x, &s], vec![])
            }
            Activation::Gelu => {
                let c = self.scalar(
                    &format!("{prefix}.inv_sqrt2"),
                    std::f32::consts::FRAC_1_SQRT_2,
                )?;
                let one = self.scalar(&format!("{prefix}.one"), 1.0)?;
                let half = self.scalar(&format!("{prefix}.half"), 0.5)?;
                let xs = self.node("Mul", &format!("{prefix}/scaled"), &[x, &c], vec![]);
                let e = self.node("Erf", &format!("{prefix}/erf"), &[&xs], vec![]);
                let e1 = self.node(
                    "Add",
                    &format!("{prefix}/erf_plus_one"),
                    &[&e, &one],
                    vec![],
                );
                let xe = self.node("Mul", &format!("{prefix}/x_erf"), &[x, &e1], vec![]);
                self.node("Mul", &format!("{prefix}/out"), &[&xe, &half], vec![])
            }
            Activation::GeluTanh => {
                let k = self.scalar(
                    &format!("{prefix}.sqrt_2_over_pi"),
                    (2.0f32 / std::f32::consts::PI).sqrt(),
                )?;
                let c = self.scalar(&format!("{prefix}.cubic"), 0.044_715)?;
                let one = self.scalar(&format!("{prefix}.one"), 1.0)?;
                let half = self.scalar(&format!("{prefix}.half"), 0.5)?;
                let x2 = self.node("Mul", &format!("{prefix}/x2"), &[x, x], vec![]);
                let x3 = self.node("Mul", &format!("{prefix}/x3"), &[&x2, x], vec![]);
                let cx3 = self.node("Mul", &format!("{prefix}/cx3"), &[&x3, &c], vec![]);
                let inner = self.node("Add", &format!("{prefix}/inner"), &[x, &cx3], vec![]);
                let scaled = self.node("Mul", &format!("{prefix}/scaled"), &[&inner, &k], vec![]);
                let t = self.node("Tanh", &format!("{prefix}/tanh"), &[&scaled], vec![]);
                let t1 = self.node(
                    "Add",
                    &format!("{prefix}/tanh_plus_one"),
                    &[&t, &one],
                    vec![],
                );
                let xt = self.node("Mul", &format!("{prefix}/x_tanh"), &[x, &t1], vec![]);
                self.node("Mul", &format!("{prefix}/out"), &[&xt, &half], vec![])
            }
            Activation::Relu => self.node("Relu", &format!("{prefix}/out"), &[x], vec![]),
        })
    }
}

fn get<'a>(weights: &'a HashMap<String, Tensor>, name: &str) -> Result<&'a Tensor> {
    weights
        .get(name)
        .ok_or_else(|| ExportError::tensor(name, "missing from the weights"))
}

fn check_dims(t: &Tensor, name: &str, dims: &[usize]) -> Result<()> {
    if t.dims() != dims {
        return Err(ExportError::tensor(
            name,
            format!("has shape {:?}, expected {dims:?}", t.dims()),
        ));
    }
    Ok(())
}

/// Row (dim 0) or column (dim 1) indices of the kept heads.
fn head_index(kept: &[usize], head_dim: usize) -> Result<Tensor> {
    let idx: Vec<u32> = kept
        .iter()
        .flat_map(|&h| (h * head_dim..(h + 1) * head_dim).map(|i| i as u32))
        .collect();
    let n = idx.len();
    Ok(Tensor::from_vec(idx, n, &Device::Cpu)?)
}

fn value_info(name: &str, elem: DataType, dims: &[Option<i64>]) -> ValueInfoProto {
    let shape = TensorShapeProto {
        dim: dims
            .iter()
            .map(|d| Dimension {
                value: Some(match d {
                    Some(v) => dimension::Value::DimValue(*v),
                    None => dimension::Value::DimParam(BATCH_DIM.into()),
                }),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    ValueInfoProto {
        name: name.into(),
        type_: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: elem as i32,
                shape: Some(shape).into(),
                ..Default::default()
            })),
            ..Default::default()
        })
        .into(),
        ..Default::default()
    }
}

/// Builds the ONNX model; `metadata` becomes `metadata_props` (in order).
pub fn build_model(
    graph: &VisionGraph,
    metadata: &[(String, String)],
    options: &OnnxOptions,
) -> Result<ModelProto> {
    options.check()?;
    let cfg = &graph.config.vision_config;
    let w = graph.weights;
    let (d, nh, dh) = (cfg.hidden_size, cfg.num_attention_heads, cfg.head_dim());
    let (p, c) = (cfg.patch_size, cfg.num_channels);
    let (s, g) = (cfg.image_size, cfg.patches_per_side());
    let n = cfg.num_positions();
    let proj_dim = graph.config.projection_dim;
    let (classes, cls_p) = graph
        .classifier
        .dims2()
        .map_err(|_| ExportError::tensor("classifier", "expected [C, P]"))?;
    if cls_p != proj_dim || classes == 0 {
        return Err(ExportError::tensor(
            "classifier",
            format!(
                "has shape {:?}, expected [C >= 1, {proj_dim}]",
                graph.classifier.dims()
            ),
        ));
    }
    let all_heads: Vec<Vec<usize>> = vec![(0..nh).collect(); cfg.num_hidden_layers];
    let kept = graph.kept_heads.unwrap_or(&all_heads);
    if kept.len() != cfg.num_hidden_layers {
        return Err(ExportError::Invalid(format!(
            "kept heads given for {} blocks, the tower has {}",
            kept.len(),
            cfg.num_hidden_layers
        )));
    }
    if let Some((i, k)) = kept
        .iter()
        .enumerate()
        .find(|(_, k)| k.windows(2).any(|w| w[0] >= w[1]) || k.iter().any(|&h| h >= nh))
    {
        return Err(ExportError::Invalid(format!(
            "block {i}: kept heads {k:?} must be sorted, distinct and < {nh}"
        )));
    }

    let mut b = Builder {
        nodes: Vec::new(),
        inits: Vec::new(),
        used: HashMap::new(),
        int_cache: HashMap::new(),
        opset: options.opset,
        fp16: options.fp16,
        float_bytes: 0,
    };
    // Reserve the interface names.
    for name in [INPUT_PIXEL_VALUES, OUTPUT_LOGITS, OUTPUT_IMAGE_EMBEDS] {
        b.unique(name);
    }

    // Embeddings.
    let mut x = INPUT_PIXEL_VALUES.to_string();
    if options.fp16 {
        x = b.node(
            "Cast",
            "pixel_values_f16",
            &[&x],
            vec![attr_int("to", DataType::FLOAT16 as i64)],
        );
    }
    let emb = "vision_model.embeddings";
    let patch_name = format!("{emb}.patch_embedding.weight");
    let patch_w = get(w, &patch_name)?;
    check_dims(patch_w, &patch_name, &[d, c, p, p])?;
    let patch_w = b.tensor(&patch_name, patch_w)?;
    let conv = b.node(
        "Conv",
        &format!("{emb}/patch_conv"),
        &[&x, &patch_w],
        vec![
            attr_ints("kernel_shape", &[p as i64, p as i64]),
            attr_ints("strides", &[p as i64, p as i64]),
        ],
    );
    let shape = b.ints("shape_patches", &[3], &[-1, d as i64, (g * g) as i64]);
    let flat = b.node(
        "Reshape",
        &format!("{emb}/flatten"),
        &[&conv, &shape],
        vec![],
    );
    let tokens = b.node(
        "Transpose",
        &format!("{emb}/tokens"),
        &[&flat],
        vec![attr_ints("perm", &[0, 2, 1])],
    );
    let pads = b.ints("pads_class_token", &[6], &[0, 1, 0, 0, 0, 0]);
    let padded = b.node(
        "Pad",
        &format!("{emb}/class_slot"),
        &[&tokens, &pads],
        vec![],
    );
    let cls_name = format!("{emb}.class_embedding");
    let pos_name = format!("{emb}.position_embedding.weight");
    let cls = get(w, &cls_name)?;
    check_dims(cls, &cls_name, &[d])?;
    let pos = get(w, &pos_name)?;
    check_dims(pos, &pos_name, &[n, d])?;
    let mut pos_data = pos.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
    for (dst, v) in pos_data
        .iter_mut()
        .zip(cls.to_dtype(DType::F32)?.to_vec1::<f32>()?)
    {
        *dst += v;
    }
    let pos = b.floats(
        &format!("{emb}.position_embedding_with_class"),
        &[n, d],
        &pos_data,
    )?;
    x = b.node("Add", &format!("{emb}/out"), &[&padded, &pos], vec![]);
    x = b.layer_norm(&x, "vision_model.pre_layrnorm", cfg.layer_norm_eps, w)?;

    // Encoder blocks.
    let scale = (dh as f64).powf(-0.5) as f32;
    for (i, heads) in kept.iter().enumerate() {
        let k = heads.len();
        let pre = vision_layer_key(i, "");
        let pre = pre.trim_end_matches('.');
        let h = b.layer_norm(&x, &format!("{pre}.layer_norm1"), cfg.layer_norm_eps, w)?;
        let out_w_name = attn_key(i, "out", "weight");
        let out_b_name = attn_key(i, "out", "bias");
        let out_w = get(w, &out_w_name)?;
        check_dims(out_w, &out_w_name, &[d, d])?;
        let out_b = get(w, &out_b_name)?;
        check_dims(out_b, &out_b_name, &[d])?;
        let attn = if k == 0 {
            // Every head pruned: the block's attention is out_proj's bias.
            b.tensor(&out_b_name, out_b)?
        } else {
            let idx = head_index(heads, dh)?;
            let proj = |b: &mut Builder, which: &str, perm: &[i64]| -> Result<String> {
                let wn = attn_key(i, which, "weight");
                let bn = attn_key(i, which, "bias");
                let wt = get(w, &wn)?;
                check_dims(wt, &wn, &[d, d])?;
                let bt = get(w, &bn)?;
                check_dims(bt, &bn, &[d])?;
                let (wt, bt) = if k == nh {
                    (wt.clone(), bt.clone())
                } else {
                    (wt.index_select(&idx, 0)?, bt.index_select(&idx, 0)?)
                };
                let y = b.linear(&h, &format!("{pre}.self_attn.{which}_proj"), &wt, Some(&bt))?;
                let shape = b.ints("shape_heads", &[4], &[-1, n as i64, k as i64, dh as i64]);
                let y = b.node(
                    "Reshape",
                    &format!("{pre}/attn/{which}_split"),
                    &[&y, &shape],
                    vec![],
                );
                Ok(b.node(
                    "Transpose",
                    &format!("{pre}/attn/{which}_heads"),
                    &[&y],
                    vec![attr_ints("perm", perm)],
                ))
            };
            let q = proj(&mut b, "q", &[0, 2, 1, 3])?; // [B, k, N, dh]
            let kt = proj(&mut b, "k", &[0, 2, 3, 1])?; // [B, k, dh, N]
            let v = proj(&mut b, "v", &[0, 2, 1, 3])?; // [B, k, N, dh]
            let scores = b.node("MatMul", &format!("{pre}/attn/scores"), &[&q, &kt], vec![]);
            let sc = b.scalar(&format!("{pre}.self_attn.scale"), scale)?;
            let scores = b.node(
                "Mul",
                &format!("{pre}/attn/scaled_scores"),
                &[&scores, &sc],
                vec![],
            );
            let probs = b.node(
                "Softmax",
                &format!("{pre}/attn/probs"),
                &[&scores],
                vec![attr_int("axis", -1)],
            );
            let ctx = b.node(
                "MatMul",
                &format!("{pre}/attn/context"),
                &[&probs, &v],
                vec![],
            );
            let ctx = b.node(
                "Transpose",
                &format!("{pre}/attn/context_tokens"),
                &[&ctx],
                vec![attr_ints("perm", &[0, 2, 1, 3])],
            );
            let shape = b.ints("shape_merge", &[3], &[-1, n as i64, (k * dh) as i64]);
            let merged = b.node(
                "Reshape",
                &format!("{pre}/attn/merged"),
                &[&ctx, &shape],
                vec![],
            );
            let out_w = if k == nh {
                out_w.clone()
            } else {
                out_w.index_select(&idx, 1)?
            };
            b.linear(
                &merged,
                &format!("{pre}.self_attn.out_proj"),
                &out_w,
                Some(out_b),
            )?
        };
        x = b.node("Add", &format!("{pre}/attn_residual"), &[&x, &attn], vec![]);
        let h = b.layer_norm(&x, &format!("{pre}.layer_norm2"), cfg.layer_norm_eps, w)?;
        let mut mlp = h;
        for (fc, (o, inp)) in [
            ("fc1", (cfg.intermediate_size, d)),
            ("fc2", (d, cfg.intermediate_size)),
        ] {
            let wn = format!("{pre}.mlp.{fc}.weight");
            let bn = format!("{pre}.mlp.{fc}.bias");
            let wt = get(w, &wn)?;
            check_dims(wt, &wn, &[o, inp])?;
            let bt = get(w, &bn)?;
            check_dims(bt, &bn, &[o])?;
            mlp = b.linear(&mlp, &format!("{pre}.mlp.{fc}"), wt, Some(bt))?;
            if fc == "fc1" {
                mlp = b.activation(cfg.hidden_act, &mlp, &format!("{pre}.mlp.act"))?;
            }
        }
        x = b.node("Add", &format!("{pre}/mlp_residual"), &[&x, &mlp], vec![]);
    }

    // Pooling, projection, normalization, classifier.
    let zero = b.ints("class_token_index", &[], &[0]);
    let pooled = b.node(
        "Gather",
        "vision_model/class_token",
        &[&x, &zero],
        vec![attr_int("axis", 1)],
    );
    let pooled = b.layer_norm(
        &pooled,
        "vision_model.post_layernorm",
        cfg.layer_norm_eps,
        w,
    )?;
    let vp_name = "visual_projection.weight";
    let vp = get(w, vp_name)?;
    check_dims(vp, vp_name, &[proj_dim, d])?;
    let embeds = b.linear(&pooled, "visual_projection", vp, None)?;
    let norm = b.reduce_last("ReduceL2", "image_embeds/norm", &embeds);
    let embeds_name = if options.fp16 {
        "image_embeds_f16"
    } else {
        OUTPUT_IMAGE_EMBEDS
    };
    let embeds_out = if options.fp16 {
        b.node("Div", embeds_name, &[&embeds, &norm], vec![])
    } else {
        b.node_to("Div", &[&embeds, &norm], vec![], OUTPUT_IMAGE_EMBEDS);
        OUTPUT_IMAGE_EMBEDS.to_string()
    };
    let cls_t = graph.classifier.to_dtype(DType::F32)?.t()?.contiguous()?;
    let cls_w = b.tensor("classifier_t", &cls_t)?;
    if options.fp16 {
        let logits = b.node("MatMul", "logits_f16", &[&embeds_out, &cls_w], vec![]);
        let to = vec![attr_int("to", DataType::FLOAT as i64)];
        b.node_to("Cast", &[&logits], to.clone(), OUTPUT_LOGITS);
        b.node_to("Cast", &[&embeds_out], to, OUTPUT_IMAGE_EMBEDS);
    } else {
        b.node_to("MatMul", &[&embeds_out, &cls_w], vec![], OUTPUT_LOGITS);
    }

    // Keep ≥ 64 MiB of headroom for the graph structure.
    if b.float_bytes + (64 << 20) > PROTOBUF_LIMIT {
        return Err(ExportError::Onnx(format!(
            "the weights take {} bytes, over the 2 GiB protobuf limit of a single .onnx file; \
             external data is not implemented (try --fp16)",
            b.float_bytes
        )));
    }

    let graph_proto = GraphProto {
        name: "ahp_clip_vision".into(),
        node: b.nodes,
        initializer: b.inits,
        input: vec![value_info(
            INPUT_PIXEL_VALUES,
            DataType::FLOAT,
            &[None, Some(c as i64), Some(s as i64), Some(s as i64)],
        )],
        output: vec![
            value_info(
                OUTPUT_LOGITS,
                DataType::FLOAT,
                &[None, Some(classes as i64)],
            ),
            value_info(
                OUTPUT_IMAGE_EMBEDS,
                DataType::FLOAT,
                &[None, Some(proj_dim as i64)],
            ),
        ],
        ..Default::default()
    };
    Ok(ModelProto {
        ir_version: ir_version_for(options.opset),
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: options.opset,
            ..Default::default()
        }],
        producer_name: "ahp-export".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        doc_string: "CLIP vision tower with folded attention-head-purification adapters, \
                     L2-normalized image embeddings and a folded zero-shot classifier."
            .into(),
        graph: Some(graph_proto).into(),
        metadata_props: metadata
            .iter()
            .map(|(k, v)| StringStringEntryProto {
                key: k.clone(),
                value: v.clone(),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    })
}

/// Serializes a model, refusing anything over the protobuf limit.
pub fn encode(model: &ModelProto) -> Result<Vec<u8>> {
    let size = model.compute_size();
    if size > PROTOBUF_LIMIT {
        return Err(ExportError::Onnx(format!(
            "the model is {size} bytes, over the 2 GiB protobuf limit; external data is not implemented"
        )));
    }
    model
        .write_to_bytes()
        .map_err(|e| ExportError::Onnx(format!("cannot serialize: {e}")))
}

/// Writes `model` to `path`; returns the size in bytes.
pub fn write_model(model: &ModelProto, path: &Path) -> Result<u64> {
    let bytes = encode(model)?;
    std::fs::write(path, &bytes)
        .map_err(|e| ExportError::file(path, format!("cannot write: {e}")))?;
    Ok(bytes.len() as u64)
}

/// Reads an ONNX file.
pub fn read_model(path: &Path) -> Result<ModelProto> {
    let bytes =
        std::fs::read(path).map_err(|e| ExportError::file(path, format!("cannot read: {e}")))?;
    ModelProto::parse_from_bytes(&bytes)
        .map_err(|e| ExportError::file(path, format!("not a valid ONNX model: {e}")))
}

/// Counts of a model's graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphSummary {
    /// Nodes.
    pub nodes: usize,
    /// Initializers.
    pub initializers: usize,
    /// Scalar parameters in initializers.
    pub parameters: u64,
    /// Nodes per op type.
    pub op_types: BTreeMap<String, usize>,
    /// Op types in node order (for comparing two graphs' structure).
    pub op_sequence: Vec<String>,
}

/// Summarizes a model's graph.
pub fn summarize(model: &ModelProto) -> GraphSummary {
    let g = model.graph.get_or_default();
    let mut op_types = BTreeMap::new();
    for n in &g.node {
        *op_types.entry(n.op_type.clone()).or_insert(0) += 1;
    }
    GraphSummary {
        nodes: g.node.len(),
        initializers: g.initializer.len(),
        parameters: g
            .initializer
            .iter()
            .map(|t| t.dims.iter().product::<i64>().max(0) as u64)
            .sum(),
        op_types,
        op_sequence: g.node.iter().map(|n| n.op_type.clone()).collect(),
    }
}

/// The value of a metadata property, if present.
pub fn metadata_value<'a>(model: &'a ModelProto, key: &str) -> Option<&'a str> {
    model
        .metadata_props
        .iter()
        .find(|p| p.key == key)
        .map(|p| p.value.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f16_conversion_matches_known_values() {
        assert_eq!(f32_to_f16_bits(0.0), 0);
        assert_eq!(f32_to_f16_bits(1.0), 0x3c00);
        assert_eq!(f32_to_f16_bits(-2.0), 0xc000);
        assert_eq!(f32_to_f16_bits(65504.0), 0x7bff);
        assert_eq!(f32_to_f16_bits(1e6), 0x7c00);
        assert_eq!(f32_to_f16_bits(0.1), 0x2e66);
        assert_eq!(f32_to_f16_bits(6.0e-8), 0x0001);
        assert_eq!(f32_to_f16_bits(1.0 + 1.0 / 2048.0), 0x3c00); // tie to even
    }

    #[test]
    fn ir_versions() {
        assert_eq!(ir_version_for(13), 7);
        assert_eq!(ir_version_for(17), 8);
        assert_eq!(ir_version_for(21), 10);
        assert!(OnnxOptions {
            opset: 12,
            fp16: false
        }
        .check()
        .is_err());
    }
}
