//! The ahp I/O contract of a session: input `pixel_values` Float32 `[batch, 3, H, W]` (`H`, `W`
//! from the metadata), outputs `logits` Float32 `[batch, C]` (`C` labels) and, optionally,
//! `image_embeds`.

use ahp_spec::onnx_names::{INPUT_PIXEL_VALUES, OUTPUT_IMAGE_EMBEDS, OUTPUT_LOGITS};
use ahp_spec::ModelInfo;
use ort::session::Session;
use ort::value::{Outlet, TensorElementType, ValueType};

use crate::error::{Error, Result};

/// What the checked inputs and outputs tell about running the model.
pub(super) struct Signature {
    /// `Some(n)` when the model's batch dimension is fixed.
    pub(super) fixed_batch: Option<usize>,
    /// Whether the model has the `image_embeds` output.
    pub(super) has_embeds: bool,
    /// The width of `image_embeds` when the model fixes it.
    pub(super) embed_dim: Option<usize>,
}

/// Checks that `session` follows the contract for the model `info` describes.
pub(super) fn check(session: &Session, info: &ModelInfo, model: &str) -> Result<Signature> {
    let fixed_batch = check_input(session, info, model)?;
    check_logits(session, info, model)?;
    let embeds = find(session.outputs(), OUTPUT_IMAGE_EMBEDS);
    let embed_dim = embeds
        .and_then(|e| tensor_shape(e.dtype()))
        .and_then(|(_, dims)| dims.get(1).and_then(|d| usize::try_from(*d).ok()));
    Ok(Signature {
        fixed_batch,
        has_embeds: embeds.is_some(),
        embed_dim,
    })
}

/// Input `pixel_values` Float32 `[batch, 3, H, W]`; returns the batch size when it is fixed.
fn check_input(session: &Session, info: &ModelInfo, model: &str) -> Result<Option<usize>> {
    let input = require(session.inputs(), "input", INPUT_PIXEL_VALUES, model)?;
    let (ty, dims) = tensor_shape(input.dtype()).ok_or_else(|| {
        Error::contract(
            model,
            format!("input `{INPUT_PIXEL_VALUES}` is not a tensor"),
        )
    })?;
    let (h, w) = info.image_size();
    let expect = [-1, 3, i64::from(h), i64::from(w)];
    let dims_ok = dims.len() == 4
        && dims
            .iter()
            .zip(expect)
            .skip(1)
            .all(|(d, e)| *d < 0 || *d == e);
    if ty != TensorElementType::Float32 || !dims_ok {
        return Err(Error::contract(
            model,
            format!(
                "input `{INPUT_PIXEL_VALUES}` is {ty:?} {dims:?}, expected Float32 [batch, 3, {h}, {w}] (from the metadata)"
            ),
        ));
    }
    Ok(dims
        .first()
        .and_then(|d| usize::try_from(*d).ok())
        .filter(|d| *d > 0))
}

/// Output `logits` Float32 `[batch, C]`, `C` the number of labels (or dynamic).
fn check_logits(session: &Session, info: &ModelInfo, model: &str) -> Result<()> {
    let logits = require(session.outputs(), "output", OUTPUT_LOGITS, model)?;
    let n = info.labels.len() as i64;
    match tensor_shape(logits.dtype()) {
        Some((TensorElementType::Float32, d)) if d.len() == 2 && (d[1] < 0 || d[1] == n) => Ok(()),
        other => Err(Error::contract(
            model,
            format!(
                "output `{OUTPUT_LOGITS}` is {other:?}, expected Float32 [batch, {n}] ({n} labels in `{}`)",
                ahp_spec::onnx_names::meta::LABELS
            ),
        )),
    }
}

/// The `kind` (input or output) called `name`, which the contract requires.
fn require<'a>(outlets: &'a [Outlet], kind: &str, name: &str, model: &str) -> Result<&'a Outlet> {
    find(outlets, name).ok_or_else(|| {
        Error::contract(
            model,
            format!("no {kind} named `{name}` ({kind}s: {})", names(outlets)),
        )
    })
}

/// The input or output called `name`.
fn find<'a>(outlets: &'a [Outlet], name: &str) -> Option<&'a Outlet> {
    outlets.iter().find(|o| o.name() == name)
}

/// The names of `outlets`, comma-separated.
fn names(outlets: &[Outlet]) -> String {
    outlets
        .iter()
        .map(|o| o.name().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Element type and dimensions (negative: dynamic) of a tensor type.
fn tensor_shape(t: &ValueType) -> Option<(TensorElementType, Vec<i64>)> {
    match t {
        ValueType::Tensor { ty, shape, .. } => Some((*ty, shape.iter().copied().collect())),
        _ => None,
    }
}
