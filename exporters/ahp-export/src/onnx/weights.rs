//! Looking up the folded weights the graph is built from, with their expected shapes.

use std::collections::HashMap;

use candle_core::{Device, Tensor};

use crate::error::{ExportError, Result};

/// Plain (folded) weights under Hugging Face names.
pub(super) type Weights = HashMap<String, Tensor>;

/// The weight `name`.
pub(super) fn get<'a>(weights: &'a Weights, name: &str) -> Result<&'a Tensor> {
    weights
        .get(name)
        .ok_or_else(|| ExportError::tensor(name, "missing from the weights"))
}

/// The weight `name`, which must have shape `dims`.
pub(super) fn shaped<'a>(weights: &'a Weights, name: &str, dims: &[usize]) -> Result<&'a Tensor> {
    let t = get(weights, name)?;
    if t.dims() != dims {
        return Err(ExportError::tensor(
            name,
            format!("has shape {:?}, expected {dims:?}", t.dims()),
        ));
    }
    Ok(t)
}

/// Row (dim 0) or column (dim 1) indices of the kept heads.
pub(super) fn head_index(kept: &[usize], head_dim: usize) -> Result<Tensor> {
    let idx: Vec<u32> = kept
        .iter()
        .flat_map(|&h| (h * head_dim..(h + 1) * head_dim).map(|i| i as u32))
        .collect();
    let n = idx.len();
    Ok(Tensor::from_vec(idx, n, &Device::Cpu)?)
}
