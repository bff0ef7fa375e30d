//! [`ModelSummary`]: what the demo page shows about a model (labels, input size, method, the
//! DIG gates of `ahp.gates`).

use std::collections::BTreeMap;

use ahp_spec::onnx_names::meta;
use serde::Serialize;

use super::Model;

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

impl Model {
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
