//! [`Model::load`]: an ONNX file parsed, its `ahp.*` metadata read, its I/O contract checked and
//! its graph optimized by tract for one image.

use std::collections::BTreeMap;

use ahp_spec::metadata::ModelInfo;
use ahp_spec::onnx_names::{meta, INPUT_PIXEL_VALUES, OUTPUT_LOGITS};
use tract_onnx::pb::ModelProto;
use tract_onnx::prelude::{
    Datum, DatumExt, Framework, InferenceFact, InferenceModel, InferenceModelExt, IntoRunnable,
    TractError, TypedRunnableModel,
};
use tract_onnx::tract_hir::infer::{Factoid, GenericFactoid};
use tract_onnx::Onnx;
use tract_onnx_wasm as tract_onnx;

use super::{tract_message, Model};
use crate::clock::now_ms;
use crate::error::{Error, Result};

impl Model {
    /// Parses an ONNX file from memory: reads the `ahp.*` metadata (labels, preprocessing) with
    /// [`ModelInfo::from_properties`], checks the I/O contract (`pixel_values f32 [batch, 3, S,
    /// S]` in, `logits [batch, C]` out, `C` = number of labels) and optimizes the graph for one
    /// image. `name` names the model in errors.
    pub fn load(bytes: &[u8], name: &str) -> Result<Self> {
        let start = now_ms();
        let onnx = tract_onnx::onnx();
        let proto = parse(&onnx, bytes, name)?;
        let info = ModelInfo::from_properties(name, properties(&proto))?;
        let mut model = onnx
            .model_for_proto_model(&proto)
            .map_err(graph_error(name))?;
        drop(proto);
        set_input(&mut model, &info, name)?;
        select_logits(&mut model, name)?;
        let plan = optimize(model, &info, name)?;
        Ok(Self {
            name: name.to_string(),
            info,
            plan,
            bytes: bytes.len(),
            load_ms: now_ms() - start,
        })
    }
}

/// The protobuf of the file, which must hold a graph.
fn parse(onnx: &Onnx, bytes: &[u8], name: &str) -> Result<ModelProto> {
    let parse_error = |message: String| Error::Parse {
        model: name.to_string(),
        message,
    };
    if bytes.is_empty() {
        return Err(parse_error("empty file (0 bytes)".to_string()));
    }
    let proto = onnx
        .proto_model_for_read(&mut &bytes[..])
        .map_err(|e| parse_error(format!("protobuf decoding failed: {}", tract_message(e))))?;
    if proto.graph.is_none() {
        return Err(parse_error("the file holds no graph".to_string()));
    }
    Ok(proto)
}

/// The model's metadata properties (`metadata_props`).
fn properties(proto: &ModelProto) -> BTreeMap<String, String> {
    proto
        .metadata_props
        .iter()
        .map(|p| (p.key.clone(), p.value.clone()))
        .collect()
}

/// Checks the input (exactly `pixel_values`, f32 `[batch, 3, h, w]` where known) and fixes it to
/// one image of the metadata's size.
fn set_input(model: &mut InferenceModel, info: &ModelInfo, name: &str) -> Result<()> {
    let input_names: Vec<String> = model
        .input_outlets()
        .map_err(graph_error(name))?
        .iter()
        .map(|o| model.node(o.node).name.clone())
        .collect();
    if input_names != [INPUT_PIXEL_VALUES] {
        return Err(contract_error(
            name,
            format!(
                "expected one input `{INPUT_PIXEL_VALUES}`, found [{}]",
                input_names.join(", ")
            ),
        ));
    }
    let (h, w) = info.image_size();
    let declared = model.input_fact(0).map_err(graph_error(name))?.clone();
    check_input_fact(&declared, h, w).map_err(|message| contract_error(name, message))?;
    model
        .set_input_fact(0, f32::fact([1, 3, h as usize, w as usize]).into())
        .map_err(graph_error(name))?;
    Ok(())
}

/// Keeps the `logits` output only (tract prunes what only `image_embeds` needs).
fn select_logits(model: &mut InferenceModel, name: &str) -> Result<()> {
    let output_names: Vec<String> = model
        .output_outlets()
        .map_err(graph_error(name))?
        .iter()
        .map(|o| {
            model
                .outlet_label(*o)
                .unwrap_or(&model.node(o.node).name)
                .to_string()
        })
        .collect();
    if !output_names.iter().any(|n| n == OUTPUT_LOGITS) {
        return Err(contract_error(
            name,
            format!(
                "no output named `{OUTPUT_LOGITS}` (outputs: [{}])",
                output_names.join(", ")
            ),
        ));
    }
    model
        .select_outputs_by_name([OUTPUT_LOGITS])
        .map_err(graph_error(name))?;
    Ok(())
}

/// The optimized, runnable plan, its output checked to be `[1, C]` (`C` labels).
fn optimize(
    model: InferenceModel,
    info: &ModelInfo,
    name: &str,
) -> Result<std::sync::Arc<TypedRunnableModel>> {
    let typed = model.into_optimized().map_err(graph_error(name))?;
    let n = info.labels.len();
    let out_fact = typed.output_fact(0).map_err(graph_error(name))?;
    match out_fact.shape.as_concrete() {
        Some([1, c]) if *c == n => {}
        other => {
            return Err(contract_error(
                name,
                format!(
                    "output `{OUTPUT_LOGITS}` has shape {:?} for one image, expected [1, {n}] ({n} labels in `{}`)",
                    other.map(<[usize]>::to_vec),
                    meta::LABELS
                ),
            ))
        }
    }
    typed.into_runnable().map_err(graph_error(name))
}

/// An [`Error::Contract`] about the model `name`.
fn contract_error(name: &str, message: String) -> Error {
    Error::Contract {
        model: name.to_string(),
        message,
    }
}

/// Turns tract's errors preparing the graph of the model `name` into [`Error::Graph`].
fn graph_error(name: &str) -> impl Fn(TractError) -> Error + '_ {
    move |e| Error::Graph {
        model: name.to_string(),
        message: tract_message(e),
    }
}

/// The declared input must be f32 of rank 4 with 3 channels and the metadata's image size where
/// its dimensions are known.
fn check_input_fact(fact: &InferenceFact, h: u32, w: u32) -> std::result::Result<(), String> {
    let wrong = || {
        format!(
            "input `{INPUT_PIXEL_VALUES}` is declared as {fact:?}, expected f32 [batch, 3, {h}, {w}] (from the metadata)"
        )
    };
    if let Some(dt) = fact.datum_type.concretize() {
        if dt != f32::datum_type() {
            return Err(wrong());
        }
    }
    if let GenericFactoid::Only(rank) = fact.shape.rank() {
        if rank != 4 {
            return Err(wrong());
        }
    }
    let expected = [None, Some(3), Some(i64::from(h)), Some(i64::from(w))];
    for (dim, want) in fact.shape.dims().zip(expected) {
        let known = dim.concretize().and_then(|d| d.to_i64().ok());
        if let (Some(got), Some(want)) = (known, want) {
            if got != want {
                return Err(wrong());
            }
        }
    }
    Ok(())
}
