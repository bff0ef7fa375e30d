//! Assembling the `ModelProto` (interface, opset, metadata) and reading and writing it.

use std::path::Path;

use ahp_spec::onnx_names::{INPUT_PIXEL_VALUES, OUTPUT_IMAGE_EMBEDS, OUTPUT_LOGITS};
use ahp_spec::ClipConfig;
use onnx_protobuf::tensor_proto::DataType;
use onnx_protobuf::tensor_shape_proto::{dimension, Dimension};
use onnx_protobuf::{
    type_proto, GraphProto, Message, ModelProto, OperatorSetIdProto, StringStringEntryProto,
    TensorShapeProto, TypeProto, ValueInfoProto,
};

use super::builder::Builder;
use super::options::{ir_version_for, OnnxOptions};
use crate::error::{ExportError, Result};

/// Symbolic name of the batch dimension.
pub const BATCH_DIM: &str = "batch";
/// A serialized protobuf message cannot exceed 2 GiB.
pub const PROTOBUF_LIMIT: u64 = (1 << 31) - 1;

/// Sizes of the graph's input and outputs (the batch dimension is symbolic).
pub(super) struct Interface {
    channels: usize,
    image_size: usize,
    classes: usize,
    projection_dim: usize,
}

impl Interface {
    /// The interface of `config`'s tower with a `classes`-way classifier.
    pub fn new(config: &ClipConfig, classes: usize) -> Self {
        Self {
            channels: config.vision_config.num_channels,
            image_size: config.vision_config.image_size,
            classes,
            projection_dim: config.projection_dim,
        }
    }

    /// `pixel_values [batch, C, S, S]`.
    fn inputs(&self) -> Vec<ValueInfoProto> {
        let s = Some(self.image_size as i64);
        let dims = [None, Some(self.channels as i64), s, s];
        vec![value_info(INPUT_PIXEL_VALUES, DataType::FLOAT, &dims)]
    }

    /// `logits [batch, classes]` and `image_embeds [batch, P]`.
    fn outputs(&self) -> Vec<ValueInfoProto> {
        let logits = [None, Some(self.classes as i64)];
        let embeds = [None, Some(self.projection_dim as i64)];
        vec![
            value_info(OUTPUT_LOGITS, DataType::FLOAT, &logits),
            value_info(OUTPUT_IMAGE_EMBEDS, DataType::FLOAT, &embeds),
        ]
    }
}

/// The model holding `b`'s graph with `interface`; `metadata` becomes `metadata_props`.
pub(super) fn assemble(
    b: Builder,
    interface: &Interface,
    metadata: &[(String, String)],
    options: &OnnxOptions,
) -> Result<ModelProto> {
    check_weight_bytes(b.float_bytes())?;
    let parts = b.into_parts();
    let graph = GraphProto {
        name: "ahp_clip_vision".into(),
        node: parts.nodes,
        initializer: parts.inits,
        input: interface.inputs(),
        output: interface.outputs(),
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
        graph: Some(graph).into(),
        metadata_props: metadata_props(metadata),
        ..Default::default()
    })
}

/// Errors when the weights leave less than 64 MiB of the protobuf limit for the graph
/// structure.
fn check_weight_bytes(float_bytes: u64) -> Result<()> {
    if float_bytes + (64 << 20) > PROTOBUF_LIMIT {
        return Err(ExportError::Onnx(format!(
            "the weights take {float_bytes} bytes, over the 2 GiB protobuf limit of a single \
             .onnx file; external data is not implemented (try --fp16)"
        )));
    }
    Ok(())
}

fn metadata_props(metadata: &[(String, String)]) -> Vec<StringStringEntryProto> {
    metadata
        .iter()
        .map(|(k, v)| StringStringEntryProto {
            key: k.clone(),
            value: v.clone(),
            ..Default::default()
        })
        .collect()
}

/// A float tensor value with `dims` (`None`: the symbolic batch dimension).
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
