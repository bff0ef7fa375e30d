//! The graph builder: unique value names, nodes, float and int64 initializers, attributes.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use onnx_protobuf::attribute_proto::AttributeType;
use onnx_protobuf::tensor_proto::DataType;
use onnx_protobuf::{AttributeProto, NodeProto, TensorProto};

use super::f16::f32_to_f16_bits;
use super::options::OnnxOptions;
use crate::error::{ExportError, Result};

/// An `INT` attribute.
pub(super) fn attr_int(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        type_: AttributeType::INT.into(),
        i: v,
        ..Default::default()
    }
}

/// An `INTS` attribute.
pub(super) fn attr_ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        type_: AttributeType::INTS.into(),
        ints: v.to_vec(),
        ..Default::default()
    }
}

/// A `FLOAT` attribute.
pub(super) fn attr_float(name: &str, v: f32) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        type_: AttributeType::FLOAT.into(),
        f: v,
        ..Default::default()
    }
}

/// What a finished [`Builder`] holds: the graph's nodes and initializers, in creation order.
pub(super) struct GraphParts {
    /// Nodes in topological (creation) order.
    pub nodes: Vec<NodeProto>,
    /// Initializers in creation order.
    pub inits: Vec<TensorProto>,
}

/// Accumulates the nodes and initializers of one graph.
pub(super) struct Builder {
    nodes: Vec<NodeProto>,
    inits: Vec<TensorProto>,
    used: HashMap<String, usize>,
    int_cache: HashMap<Vec<i64>, String>,
    opset: i64,
    fp16: bool,
    float_bytes: u64,
}

impl Builder {
    /// An empty graph written with `options`.
    pub fn new(options: &OnnxOptions) -> Self {
        Self {
            nodes: Vec::new(),
            inits: Vec::new(),
            used: HashMap::new(),
            int_cache: HashMap::new(),
            opset: options.opset,
            fp16: options.fp16,
            float_bytes: 0,
        }
    }

    /// The opset the graph is written for.
    pub fn opset(&self) -> i64 {
        self.opset
    }

    /// Bytes of float initializer data so far.
    pub fn float_bytes(&self) -> u64 {
        self.float_bytes
    }

    /// The nodes and initializers.
    pub fn into_parts(self) -> GraphParts {
        GraphParts {
            nodes: self.nodes,
            inits: self.inits,
        }
    }

    /// `base`, or `base_<n>` when `base` is already taken.
    pub fn unique(&mut self, base: &str) -> String {
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
    pub fn node(
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

    /// [`Builder::node`] named `{prefix}/{leaf}`.
    pub fn step(
        &mut self,
        op: &str,
        prefix: &str,
        leaf: &str,
        inputs: &[&str],
        attrs: Vec<AttributeProto>,
    ) -> String {
        self.node(op, &format!("{prefix}/{leaf}"), inputs, attrs)
    }

    /// Adds a node whose single output is `output` (a graph output name).
    pub fn node_to(&mut self, op: &str, inputs: &[&str], attrs: Vec<AttributeProto>, output: &str) {
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
    pub fn floats(&mut self, name: &str, dims: &[usize], data: &[f32]) -> Result<String> {
        let raw = self.float_data(name, data)?;
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

    /// The raw little-endian bytes of `data` (f16 in fp16 mode); errors name `name`.
    fn float_data(&self, name: &str, data: &[f32]) -> Result<Vec<u8>> {
        if let Some(i) = data.iter().position(|v| !v.is_finite()) {
            return Err(ExportError::tensor(
                name,
                format!("value {} at index {i} is not finite", data[i]),
            ));
        }
        if !self.fp16 {
            return Ok(data.iter().flat_map(|v| v.to_le_bytes()).collect());
        }
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
        Ok(raw)
    }

    /// A float initializer from a candle tensor (any shape).
    pub fn tensor(&mut self, name: &str, t: &Tensor) -> Result<String> {
        let t = t.to_dtype(DType::F32)?.to_device(&Device::Cpu)?;
        let dims = t.dims().to_vec();
        let data = t.flatten_all()?.to_vec1::<f32>()?;
        self.floats(name, &dims, &data)
    }

    /// A float scalar initializer.
    pub fn scalar(&mut self, name: &str, v: f32) -> Result<String> {
        self.floats(name, &[], &[v])
    }

    /// An int64 initializer, shared between identical values.
    pub fn ints(&mut self, name: &str, dims: &[usize], data: &[i64]) -> String {
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
    pub fn reduce_last(&mut self, op: &str, name: &str, x: &str) -> String {
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
}
