//! The pure-Rust core: load an exported ahp model from bytes with tract, classify RGBA pixels.
//! Natively testable; [`crate::bindings`] wraps it for JavaScript.

use std::collections::BTreeMap;

use ahp_spec::io::{meta, INPUT_PIXEL_VALUES, OUTPUT_LOGITS};
use ahp_spec::metadata::ModelInfo;
use ahp_spec::preprocess::preprocess_rgba;
use ahp_spec::scores::{softmax, top_k_indices};
use serde::Serialize;
use tract_onnx::prelude::{
    tvec, Datum, DatumExt, Framework, InferenceFact, InferenceModelExt, IntoRunnable, IntoTValue,
    Tensor, TypedRunnableModel,
};
use tract_onnx::tract_hir::infer::{Factoid, GenericFactoid};
use tract_onnx_wasm as tract_onnx;

use crate::clock::now_ms;
use crate::error::{Error, Result};

/// An exported ahp model, parsed, checked against the I/O contract and optimized by tract for a
/// batch of one image.
#[derive(Debug)]
pub struct Model {
    name: String,
    info: ModelInfo,
    plan: std::sync::Arc<TypedRunnableModel>,
    bytes: usize,
    load_ms: f64,
}

/// One predicted class.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Prediction {
    /// Class label (from `ahp.labels`).
    pub label: String,
    /// Softmax probability.
    pub prob: f32,
    /// Index of the class in logit order.
    pub index: usize,
}

/// Where the time of one classification went (milliseconds).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Timing {
    /// RGBA → normalized CHW tensor (composite, bicubic resize, crop, normalize).
    pub preprocess_ms: f64,
    /// The model run.
    pub inference_ms: f64,
    /// Both, plus softmax and sorting.
    pub total_ms: f64,
}

/// The result of classifying one image.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Classification {
    /// The `top_k` most likely classes, most likely first.
    pub top: Vec<Prediction>,
    /// Probabilities of all classes, in logit order.
    pub probs: Vec<f32>,
    /// Raw logits, in logit order.
    pub logits: Vec<f32>,
    /// Timing.
    pub timing: Timing,
}

/// A summary of the DIG gates stored in `ahp.gates`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GatesSummary {
    /// Blocks with gates.
    pub blocks: usize,
    /// Gated heads over all blocks.
    pub heads: usize,
    /// Smallest gate.
    pub min: f32,
    /// Largest gate.
    pub max: f32,
    /// Mean gate (1.0 for untrained gates: `H · softmax(0)`).
    pub mean: f32,
    /// Heads whose gate is below 0.5 (mostly suppressed).
    pub below_half: usize,
    /// `(block, gates)` in block order.
    pub per_block: Vec<(usize, Vec<f32>)>,
}

/// What the page shows about a model.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelSummary {
    /// Model name (file name).
    pub name: String,
    /// Size of the ONNX file in bytes.
    pub bytes: usize,
    /// Time to parse, check and optimize it (ms).
    pub load_ms: f64,
    /// Class labels in logit order.
    pub labels: Vec<String>,
    /// Input `(height, width)`.
    pub image_size: [u32; 2],
    /// The resize rule, e.g. `shortest_edge=224,bicubic,center_crop=224x224`.
    pub resize: String,
    /// Normalization mean.
    pub mean: [f32; 3],
    /// Normalization standard deviation.
    pub std: [f32; 3],
    /// `ahp.method` (e.g. `zero-shot`, `ahp`), if present.
    pub method: Option<String>,
    /// `ahp.template`, if present.
    pub template: Option<String>,
    /// `ahp.source`, if present.
    pub source: Option<String>,
    /// The gates, when the model has any (`None` for `{}` or an absent `ahp.gates`).
    pub gates: Option<GatesSummary>,
    /// Why `ahp.gates` could not be read, if it could not (the model still loads).
    pub gates_error: Option<String>,
    /// One line about the gates, for display.
    pub gates_text: String,
    /// Heads removed by `ahp-export --prune-heads` (`ahp.pruned_heads`), over all blocks.
    pub pruned_heads: usize,
    /// All metadata properties.
    pub properties: BTreeMap<String, String>,
}

fn tract_message(e: impl std::fmt::Display) -> String {
    // `{:#}` prints anyhow's chain of causes on one line.
    format!("{e:#}")
}

impl Model {
    /// Parses an ONNX file from memory: reads the `ahp.*` metadata (labels, preprocessing) with
    /// [`ModelInfo::from_properties`], checks the I/O contract (`pixel_values f32 [batch, 3, S,
    /// S]` in, `logits [batch, C]` out, `C` = number of labels) and optimizes the graph for one
    /// image. `name` names the model in errors.
    pub fn load(bytes: &[u8], name: &str) -> Result<Self> {
        let start = now_ms();
        let parse = |message: String| Error::Parse {
            model: name.to_string(),
            message,
        };
        let contract = |message: String| Error::Contract {
            model: name.to_string(),
            message,
        };
        let graph = |e: tract_onnx::prelude::TractError| Error::Graph {
            model: name.to_string(),
            message: tract_message(e),
        };
        if bytes.is_empty() {
            return Err(parse("empty file (0 bytes)".to_string()));
        }
        let onnx = tract_onnx::onnx();
        let proto = onnx
            .proto_model_for_read(&mut &bytes[..])
            .map_err(|e| parse(format!("protobuf decoding failed: {}", tract_message(e))))?;
        if proto.graph.is_none() {
            return Err(parse("the file holds no graph".to_string()));
        }
        let properties: BTreeMap<String, String> = proto
            .metadata_props
            .iter()
            .map(|p| (p.key.clone(), p.value.clone()))
            .collect();
        let info = ModelInfo::from_properties(name, properties)?;
        let (h, w) = info.image_size();

        let mut model = onnx.model_for_proto_model(&proto).map_err(graph)?;
        drop(proto);

        // Input: exactly `pixel_values`, f32 [batch, 3, h, w] where known.
        let input_names: Vec<String> = model
            .input_outlets()
            .map_err(graph)?
            .iter()
            .map(|o| model.node(o.node).name.clone())
            .collect();
        if input_names != [INPUT_PIXEL_VALUES] {
            return Err(contract(format!(
                "expected one input `{INPUT_PIXEL_VALUES}`, found [{}]",
                input_names.join(", ")
            )));
        }
        let declared = model.input_fact(0).map_err(graph)?.clone();
        check_input_fact(&declared, h, w).map_err(contract)?;
        model
            .set_input_fact(0, f32::fact([1, 3, h as usize, w as usize]).into())
            .map_err(graph)?;

        // Output: `logits` only (tract prunes what only `image_embeds` needs).
        let output_names: Vec<String> = model
            .output_outlets()
            .map_err(graph)?
            .iter()
            .map(|o| {
                model
                    .outlet_label(*o)
                    .unwrap_or(&model.node(o.node).name)
                    .to_string()
            })
            .collect();
        if !output_names.iter().any(|n| n == OUTPUT_LOGITS) {
            return Err(contract(format!(
                "no output named `{OUTPUT_LOGITS}` (outputs: [{}])",
                output_names.join(", ")
            )));
        }
        model
            .select_outputs_by_name([OUTPUT_LOGITS])
            .map_err(graph)?;

        let typed = model.into_optimized().map_err(graph)?;
        let n = info.labels.len();
        let out_fact = typed.output_fact(0).map_err(graph)?;
        match out_fact.shape.as_concrete() {
            Some([1, c]) if *c == n => {}
            other => {
                return Err(contract(format!(
                    "output `{OUTPUT_LOGITS}` has shape {:?} for one image, expected [1, {n}] ({n} labels in `{}`)",
                    other.map(<[usize]>::to_vec),
                    meta::LABELS
                )))
            }
        }
        let plan = typed.into_runnable().map_err(graph)?;
        Ok(Self {
            name: name.to_string(),
            info,
            plan,
            bytes: bytes.len(),
            load_ms: now_ms() - start,
        })
    }

    /// The model name given to [`Model::load`].
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Labels, preprocessing and metadata properties.
    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// Runs one preprocessed image (`3 x H x W` CHW values, as
    /// [`ahp_spec::preprocess::Preprocessed::data`]) and returns its logits.
    pub fn logits(&self, pixels: &[f32]) -> Result<Vec<f32>> {
        let (h, w) = self.info.image_size();
        let (h, w) = (h as usize, w as usize);
        if pixels.len() != 3 * h * w {
            return Err(Error::InvalidArgument(format!(
                "expected 3x{h}x{w} = {} pixel values, got {}",
                3 * h * w,
                pixels.len()
            )));
        }
        let run = |e: tract_onnx::prelude::TractError| Error::Run {
            model: self.name.clone(),
            message: tract_message(e),
        };
        let input = Tensor::from_shape(&[1, 3, h, w], pixels).map_err(run)?;
        let outputs = self.plan.run(tvec!(input.into_tvalue())).map_err(run)?;
        let logits = outputs.first().ok_or_else(|| Error::Run {
            model: self.name.clone(),
            message: "the model returned no output".to_string(),
        })?;
        let view = logits.to_plain_array_view::<f32>().map_err(run)?;
        Ok(view.iter().copied().collect())
    }

    /// Classifies a tightly packed RGBA8 image (`width * height * 4` bytes, as a canvas'
    /// `ImageData` holds it) with the model's ahp-spec preprocessing; returns the `top_k` most
    /// likely classes (all of them if `top_k` exceeds their number) and the timing.
    pub fn classify_rgba(
        &self,
        rgba: &[u8],
        width: u32,
        height: u32,
        top_k: usize,
    ) -> Result<Classification> {
        if top_k == 0 {
            return Err(Error::InvalidArgument(
                "top_k must be at least 1".to_string(),
            ));
        }
        if width == 0 || height == 0 {
            return Err(Error::Dimensions(format!(
                "image is {width}x{height}; width and height must be at least 1"
            )));
        }
        let expected = u128::from(width) * u128::from(height) * 4;
        if rgba.len() as u128 != expected {
            return Err(Error::Dimensions(format!(
                "a {width}x{height} RGBA image has {expected} bytes, the buffer has {}",
                rgba.len()
            )));
        }
        let start = now_ms();
        let pixels = preprocess_rgba(rgba, width, height, &self.info.preprocess)?;
        let preprocessed = now_ms();
        let logits = self.logits(&pixels.data)?;
        let inferred = now_ms();
        let probs = softmax(&logits);
        let top = top_k_indices(&probs, top_k)
            .into_iter()
            .map(|index| Prediction {
                label: self
                    .info
                    .labels
                    .get(index)
                    .cloned()
                    .unwrap_or_else(|| format!("class_{index}")),
                prob: probs[index],
                index,
            })
            .collect();
        Ok(Classification {
            top,
            probs,
            logits,
            timing: Timing {
                preprocess_ms: preprocessed - start,
                inference_ms: inferred - preprocessed,
                total_ms: now_ms() - start,
            },
        })
    }

    /// What the page shows about the model: labels, input size, method, gates.
    pub fn summary(&self) -> ModelSummary {
        let p = &self.info.properties;
        let get = |k: &str| p.get(k).cloned();
        let (gates, gates_error) = match p.get(meta::GATES) {
            None => (None, None),
            Some(raw) => match summarize_gates(raw) {
                Ok(g) => (g, None),
                Err(e) => (None, Some(format!("`{}`: {e}", meta::GATES))),
            },
        };
        let gates_text = match (&gates, &gates_error) {
            (_, Some(e)) => format!("unreadable ({e})"),
            (None, None) => "none (no domain-invariant gating in this export)".to_string(),
            (Some(g), None) => format!(
                "{} blocks, {} heads; gates {:.2}–{:.2} (mean {:.2}), {} below 0.5",
                g.blocks, g.heads, g.min, g.max, g.mean, g.below_half
            ),
        };
        let pruned_heads = p
            .get(meta::PRUNED_HEADS)
            .and_then(|raw| serde_json::from_str::<BTreeMap<String, Vec<usize>>>(raw).ok())
            .map_or(0, |m| m.values().map(Vec::len).sum());
        let (h, w) = self.info.image_size();
        ModelSummary {
            name: self.name.clone(),
            bytes: self.bytes,
            load_ms: self.load_ms,
            labels: self.info.labels.clone(),
            image_size: [h, w],
            resize: self.info.preprocess.resize_rule(),
            mean: self.info.preprocess.mean,
            std: self.info.preprocess.std,
            method: get(meta::METHOD),
            template: get(meta::TEMPLATE),
            source: get(meta::SOURCE),
            gates,
            gates_error,
            gates_text,
            pruned_heads,
            properties: p.clone(),
        }
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

/// Parses `ahp.gates` (`{"block": [gate per head], ...}`); `Ok(None)` for `{}`.
fn summarize_gates(raw: &str) -> std::result::Result<Option<GatesSummary>, String> {
    let map: BTreeMap<String, Vec<f32>> = serde_json::from_str(raw)
        .map_err(|e| format!("expected a JSON object of gate arrays, got {raw:?}: {e}"))?;
    let mut per_block = Vec::with_capacity(map.len());
    for (block, gates) in map {
        let b = block
            .parse::<usize>()
            .map_err(|_| format!("block key {block:?} is not a block index"))?;
        per_block.push((b, gates));
    }
    per_block.sort_by_key(|(b, _)| *b);
    let all: Vec<f32> = per_block
        .iter()
        .flat_map(|(_, g)| g.iter().copied())
        .collect();
    if all.is_empty() {
        return Ok(None);
    }
    let min = all.iter().copied().fold(f32::INFINITY, f32::min);
    let max = all.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mean = all.iter().sum::<f32>() / all.len() as f32;
    Ok(Some(GatesSummary {
        blocks: per_block.len(),
        heads: all.len(),
        min,
        max,
        mean,
        below_half: all.iter().filter(|g| **g < 0.5).count(),
        per_block,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gates_summary() {
        assert_eq!(summarize_gates("{}"), Ok(None));
        let g = summarize_gates(r#"{"10": [0.25, 1.75], "2": [1.0, 1.0]}"#)
            .expect("valid")
            .expect("some gates");
        assert_eq!(g.blocks, 2);
        assert_eq!(g.heads, 4);
        assert_eq!(g.per_block[0].0, 2, "numeric block order");
        assert_eq!((g.min, g.max, g.mean, g.below_half), (0.25, 1.75, 1.0, 1));
        assert!(summarize_gates("[1, 2]").is_err());
        assert!(summarize_gates(r#"{"x": [1.0]}"#).is_err());
    }
}
