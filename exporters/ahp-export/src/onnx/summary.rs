//! Reading back what a model holds: graph counts and metadata values.

use std::collections::BTreeMap;

use onnx_protobuf::ModelProto;

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
