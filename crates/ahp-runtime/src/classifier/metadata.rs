//! A session's `ahp.*` metadata properties, read into a [`ModelInfo`] (labels, preprocessing).

use std::collections::BTreeMap;

use ahp_spec::ModelInfo;
use ort::session::Session;

use crate::error::{Error, Result};

/// The labels, preprocessing and all metadata properties of the model `session` holds.
pub(super) fn model_info(session: &Session, model: &str) -> Result<ModelInfo> {
    let properties = custom_properties(session, model)?;
    Ok(ModelInfo::from_properties(model, properties)?)
}

/// The custom (producer-defined) metadata properties of the model.
fn custom_properties(session: &Session, model: &str) -> Result<BTreeMap<String, String>> {
    let metadata = session
        .metadata()
        .map_err(|e| Error::ort(model, "cannot read the model metadata", e))?;
    let keys = metadata
        .custom_keys()
        .map_err(|e| Error::ort(model, "cannot read the model metadata keys", e))?;
    Ok(keys
        .into_iter()
        .filter_map(|k| metadata.custom(&k).map(|v| (k, v)))
        .collect())
}
