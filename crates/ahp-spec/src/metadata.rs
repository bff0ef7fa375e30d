//! Reading the `ahp.*` metadata properties of an exported model: class labels and the
//! preprocessing parameters (see [`crate::onnx_names::meta`]). Shared by the ONNX Runtime crate and the
//! browser crate, so both read a model the same way.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::error::{Result, SpecError};
use crate::onnx_names::meta;
use crate::PreprocessConfig;

/// What a model's metadata says about how to use it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelInfo {
    /// Class labels, in logit order (`ahp.labels`).
    pub labels: Vec<String>,
    /// The preprocessing the model expects (`ahp.resize` / `ahp.image_size`, `ahp.mean`,
    /// `ahp.std`), for [`crate::preprocess::preprocess`].
    pub preprocess: PreprocessConfig,
    /// Every custom metadata property of the model (including `ahp.template`, `ahp.method`,
    /// `ahp.source`, `ahp.gates` when present).
    pub properties: BTreeMap<String, String>,
}

impl ModelInfo {
    /// Parses the metadata properties of the model named `model` (used in errors).
    ///
    /// Required: `ahp.labels` (non-empty JSON array of strings), `ahp.mean` and `ahp.std` (JSON
    /// arrays of 3 numbers, std > 0), and `ahp.resize` or `ahp.image_size` (both may be given;
    /// they must then agree). Other properties are kept as they are.
    pub fn from_properties(model: &str, properties: BTreeMap<String, String>) -> Result<Self> {
        let err = |key: &'static str, message: String| SpecError::Metadata {
            model: model.to_string(),
            key,
            message,
        };
        let get = |key: &'static str| properties.get(key).map(|v| v.trim());
        let labels = parse_labels(get(meta::LABELS)).map_err(|m| err(meta::LABELS, m))?;
        let image_size = get(meta::IMAGE_SIZE)
            .map(parse_image_size)
            .transpose()
            .map_err(|m| err(meta::IMAGE_SIZE, m))?;
        let (shortest_edge, crop_height, crop_width) =
            input_sizes(get(meta::RESIZE), image_size).map_err(|(key, m)| err(key, m))?;
        let mean = parse_triple(get(meta::MEAN)).map_err(|m| err(meta::MEAN, m))?;
        let std = parse_triple(get(meta::STD)).map_err(|m| err(meta::STD, m))?;
        if std.iter().any(|s| *s <= 0.0) {
            return Err(err(meta::STD, format!("values must be > 0, got {std:?}")));
        }
        let preprocess = PreprocessConfig {
            shortest_edge,
            crop_height,
            crop_width,
            rescale_factor: 1.0 / 255.0,
            mean,
            std,
        };
        Ok(Self {
            labels,
            preprocess,
            properties,
        })
    }

    /// The input side `S` of `pixel_values [batch, 3, S, S]` (the crop size).
    pub fn image_size(&self) -> (u32, u32) {
        (self.preprocess.crop_height, self.preprocess.crop_width)
    }
}

/// `ahp.labels`: a non-empty JSON array of strings.
fn parse_labels(raw: Option<&str>) -> std::result::Result<Vec<String>, String> {
    let raw = raw.ok_or_else(|| {
        "missing (this ONNX file was not written by ahp-export; export one with `ahp-export --run DIR OUT.onnx`)"
            .to_string()
    })?;
    let labels: Vec<String> = serde_json::from_str(raw)
        .map_err(|e| format!("expected a JSON array of strings, got {raw:?}: {e}"))?;
    if labels.is_empty() {
        return Err("empty label list".to_string());
    }
    Ok(labels)
}

/// `ahp.image_size`: an integer from 1 to [`crate::preprocess::MAX_IMAGE_SIDE`].
fn parse_image_size(s: &str) -> std::result::Result<u32, String> {
    s.parse::<u32>()
        .ok()
        .filter(|v| (1..=crate::preprocess::MAX_IMAGE_SIDE).contains(v))
        .ok_or_else(|| {
            format!(
                "expected an integer from 1 to {}, got {s:?}",
                crate::preprocess::MAX_IMAGE_SIDE
            )
        })
}

/// `(shortest_edge, crop_h, crop_w)` from `ahp.resize` and/or `ahp.image_size` (they must agree
/// when both are given); the error names the key at fault.
fn input_sizes(
    resize: Option<&str>,
    image_size: Option<u32>,
) -> std::result::Result<(u32, u32, u32), (&'static str, String)> {
    let Some(rule) = resize else {
        let s = image_size.ok_or_else(|| {
            (
                meta::IMAGE_SIZE,
                format!("missing (and no {} either)", meta::RESIZE),
            )
        })?;
        return Ok((s, s, s));
    };
    let parsed = parse_resize(rule).map_err(|m| (meta::RESIZE, m))?;
    if let Some(s) = image_size {
        if (parsed.1, parsed.2) != (s, s) {
            return Err((
                meta::IMAGE_SIZE,
                format!(
                    "{s} disagrees with {} = {rule:?} (crop {}x{})",
                    meta::RESIZE,
                    parsed.1,
                    parsed.2
                ),
            ));
        }
    }
    Ok(parsed)
}

/// Parses `shortest_edge=224,bicubic,center_crop=224x224` into `(shortest_edge, crop_h, crop_w)`.
fn parse_resize(rule: &str) -> std::result::Result<(u32, u32, u32), String> {
    let mut shortest_edge = None;
    let mut crop = None;
    let mut bicubic = false;
    let max = crate::preprocess::MAX_IMAGE_SIDE;
    let positive = |v: &str| {
        v.trim()
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=max).contains(n))
    };
    for token in rule.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        if let Some(v) = token.strip_prefix("shortest_edge=") {
            shortest_edge = Some(positive(v).ok_or_else(|| {
                format!("bad shortest_edge {v:?} in {rule:?} (expected 1 to {max})")
            })?);
        } else if let Some(v) = token.strip_prefix("center_crop=") {
            let (h, w) = v
                .split_once('x')
                .and_then(|(h, w)| Some((positive(h)?, positive(w)?)))
                .ok_or_else(|| {
                    format!("bad center_crop {v:?} in {rule:?} (expected HxW, each 1 to {max})")
                })?;
            crop = Some((h, w));
        } else if token == "bicubic" {
            bicubic = true;
        } else {
            return Err(format!(
                "unsupported item {token:?} in {rule:?} (expected shortest_edge=N,bicubic,center_crop=HxW)"
            ));
        }
    }
    if !bicubic {
        return Err(format!(
            "{rule:?} does not say `bicubic`, the only resampling ahp's preprocessing implements"
        ));
    }
    let s = shortest_edge.ok_or_else(|| format!("no shortest_edge=N in {rule:?}"))?;
    let (h, w) = crop.ok_or_else(|| format!("no center_crop=HxW in {rule:?}"))?;
    Ok((s, h, w))
}

fn parse_triple(raw: Option<&str>) -> std::result::Result<[f32; 3], String> {
    let raw = raw.ok_or_else(|| "missing".to_string())?;
    let values: [f32; 3] = serde_json::from_str(raw)
        .map_err(|e| format!("expected a JSON array of 3 numbers, got {raw:?}: {e}"))?;
    if values.iter().any(|v| !v.is_finite()) {
        return Err(format!("values must be finite, got {raw:?}"));
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn base() -> Vec<(&'static str, &'static str)> {
        vec![
            ("ahp.labels", r#"["dog","cat"]"#),
            ("ahp.image_size", "32"),
            ("ahp.mean", "[0.5, 0.5, 0.5]"),
            ("ahp.std", "[0.25, 0.25, 0.25]"),
            ("ahp.resize", "shortest_edge=36,bicubic,center_crop=32x32"),
        ]
    }

    fn without(key: &str) -> BTreeMap<String, String> {
        props(
            &base()
                .into_iter()
                .filter(|(k, _)| *k != key)
                .collect::<Vec<_>>(),
        )
    }

    fn with(key: &'static str, value: &'static str) -> BTreeMap<String, String> {
        let mut p = props(&base());
        p.insert(key.to_string(), value.to_string());
        p
    }

    fn message(p: BTreeMap<String, String>) -> String {
        ModelInfo::from_properties("m.onnx", p)
            .expect_err("should fail")
            .to_string()
    }

    #[test]
    fn full_metadata() -> Result<()> {
        let info = ModelInfo::from_properties("m.onnx", props(&base()))?;
        assert_eq!(info.labels, ["dog", "cat"]);
        assert_eq!(info.preprocess.shortest_edge, 36);
        assert_eq!(info.image_size(), (32, 32));
        assert_eq!(info.preprocess.mean, [0.5; 3]);
        assert_eq!(info.preprocess.std, [0.25; 3]);
        Ok(())
    }

    #[test]
    fn image_size_alone_is_enough() -> Result<()> {
        let info = ModelInfo::from_properties("m.onnx", without("ahp.resize"))?;
        assert_eq!(info.preprocess.shortest_edge, 32);
        assert_eq!(info.image_size(), (32, 32));
        let info = ModelInfo::from_properties("m.onnx", without("ahp.image_size"))?;
        assert_eq!(info.preprocess.shortest_edge, 36);
        Ok(())
    }

    #[test]
    fn errors_name_the_key() {
        let m = message(without("ahp.labels"));
        assert!(
            m.contains("m.onnx") && m.contains("`ahp.labels`: missing"),
            "{m}"
        );
        let m = message(with("ahp.labels", "dog,cat"));
        assert!(
            m.contains("`ahp.labels`") && m.contains("JSON array"),
            "{m}"
        );
        let m = message(with("ahp.labels", "[]"));
        assert!(m.contains("empty label list"), "{m}");
        let m = message(without("ahp.mean"));
        assert!(m.contains("`ahp.mean`: missing"), "{m}");
        let m = message(with("ahp.std", "[0.5, 0.5]"));
        assert!(m.contains("`ahp.std`"), "{m}");
        let m = message(with("ahp.std", "[0.5, 0, 0.5]"));
        assert!(m.contains("`ahp.std`") && m.contains("> 0"), "{m}");
        let m = message(with("ahp.image_size", "big"));
        assert!(m.contains("`ahp.image_size`"), "{m}");
        let m = message(with("ahp.image_size", "24"));
        assert!(m.contains("disagrees"), "{m}");
        let m = message(with(
            "ahp.resize",
            "shortest_edge=32,bilinear,center_crop=32x32",
        ));
        assert!(m.contains("`ahp.resize`") && m.contains("bilinear"), "{m}");
        // D14: absurd sizes are refused, not allocated (60000 once cost 14.4 GB per image).
        let m = message(with(
            "ahp.resize",
            "shortest_edge=60000,bicubic,center_crop=32x32",
        ));
        assert!(m.contains("`ahp.resize`") && m.contains("1 to 4096"), "{m}");
        let m = message(with(
            "ahp.resize",
            "shortest_edge=32,bicubic,center_crop=60000x60000",
        ));
        assert!(m.contains("`ahp.resize`") && m.contains("1 to 4096"), "{m}");
        let m = message(with("ahp.image_size", "60000"));
        assert!(
            m.contains("`ahp.image_size`") && m.contains("1 to 4096"),
            "{m}"
        );
        let m = message(with("ahp.resize", "shortest_edge=32,bicubic"));
        assert!(m.contains("center_crop"), "{m}");
        let mut p = without("ahp.resize");
        p.remove("ahp.image_size");
        let m = message(p);
        assert!(m.contains("`ahp.image_size`: missing"), "{m}");
    }
}
