//! Encoding a v2 inference response: the requested outputs (default: all of the model's), each
//! as JSON `data` or, with Triton's binary tensor extension, as raw bytes after the JSON header;
//! Triton's classification extension (`"classification": k` on an output) answers the top `k`
//! as BYTES `"value:index[:label]"`, as Triton does.

use serde_json::{json, Value};

use ahp_spec::onnx_names::{OUTPUT_IMAGE_EMBEDS, OUTPUT_LOGITS};

use super::request::{InferRequest, Param, Parameters};
use crate::server::batcher::JobOutput;

/// Values of one output tensor.
enum Data {
    Fp32(Vec<f32>),
    Bytes(Vec<String>),
}

/// One output tensor and how it is sent.
struct Tensor {
    name: String,
    shape: [usize; 2],
    data: Data,
    binary: bool,
}

/// An encoded response: the JSON header and the binary data that follows it (empty when every
/// output is in the JSON).
pub(crate) struct Encoded {
    pub header: Vec<u8>,
    pub binary: Vec<u8>,
}

/// What the response is about.
pub(crate) struct Context<'a> {
    pub model_name: &'a str,
    pub labels: &'a [String],
}

/// Encodes the outputs `request` asks for (all of the model's when it names none). The error is
/// the message of a 400 answer.
pub(crate) fn encode(
    ctx: &Context<'_>,
    request: &InferRequest,
    out: JobOutput,
) -> Result<Encoded, String> {
    let mut available: Vec<(&str, Option<Vec<Vec<f32>>>)> = vec![(OUTPUT_LOGITS, Some(out.logits))];
    if let Some(embeds) = out.image_embeds {
        available.push((OUTPUT_IMAGE_EMBEDS, Some(embeds)));
    }
    let wanted = request.outputs.as_deref().unwrap_or_default();
    if wanted.is_empty() {
        // As Triton: `binary_data_output` applies when the request names no output.
        let binary =
            flag(&request.parameters, "binary_data_output", "the request")?.unwrap_or(false);
        let tensors = available
            .into_iter()
            .filter_map(|(name, rows)| rows.map(|rows| plain(name, rows, binary)))
            .collect();
        return Ok(assemble(ctx, request, tensors));
    }
    let mut tensors = Vec::with_capacity(wanted.len());
    for w in wanted {
        let what = format!("output `{}`", w.name);
        let names: Vec<&str> = available.iter().map(|(n, _)| *n).collect();
        let names = names.join(", ");
        let slot = available
            .iter_mut()
            .find(|(name, _)| *name == w.name)
            .ok_or_else(|| format!("unknown output `{}` (outputs: {names})", w.name))?;
        let rows = slot
            .1
            .take()
            .ok_or_else(|| format!("{what} is requested twice"))?;
        if w.parameters.get("shared_memory_region").is_some() {
            return Err(format!(
                "{what}: shared memory is not supported by this server"
            ));
        }
        // As Triton: an output named in the request is JSON unless it asks for binary.
        let binary = flag(&w.parameters, "binary_data", &what)?.unwrap_or(false);
        tensors.push(match class_count(&w.parameters, &what)? {
            Some(k) => classification(ctx, &w.name, &rows, k, binary),
            None => plain(&w.name, rows, binary),
        });
    }
    Ok(assemble(ctx, request, tensors))
}

/// A boolean parameter, if given.
fn flag(p: &Parameters, key: &str, what: &str) -> Result<Option<bool>, String> {
    match p.get(key) {
        None => Ok(None),
        Some(Param::Bool(b)) => Ok(Some(*b)),
        Some(v) => Err(format!(
            "{what}: parameter `{key}` must be true or false, got {v}"
        )),
    }
}

/// The `classification` parameter: a class count (0, as in Triton: no classification).
fn class_count(p: &Parameters, what: &str) -> Result<Option<usize>, String> {
    match p.get("classification") {
        None => Ok(None),
        Some(v) => v
            .as_u64()
            .and_then(|k| usize::try_from(k).ok())
            .map(|k| (k > 0).then_some(k))
            .ok_or_else(|| {
                format!(
                    "{what}: parameter `classification` must be a non-negative integer, got {v}"
                )
            }),
    }
}

/// An output as the model gives it: FP32 `[n, width]`.
fn plain(name: &str, rows: Vec<Vec<f32>>, binary: bool) -> Tensor {
    let width = rows.first().map_or(0, Vec::len);
    Tensor {
        name: name.to_string(),
        shape: [rows.len(), width],
        data: Data::Fp32(rows.into_iter().flatten().collect()),
        binary,
    }
}

/// The top `k` of each row as BYTES `"value:index:label"` (label only for `logits`), highest
/// first, ties by index.
fn classification(
    ctx: &Context<'_>,
    name: &str,
    rows: &[Vec<f32>],
    k: usize,
    binary: bool,
) -> Tensor {
    let labels = (name == OUTPUT_LOGITS).then_some(ctx.labels);
    let k = k.min(rows.first().map_or(0, Vec::len));
    let mut strings = Vec::with_capacity(rows.len() * k);
    for row in rows {
        let mut order: Vec<usize> = (0..row.len()).collect();
        order.sort_by(|&a, &b| row[b].total_cmp(&row[a]).then(a.cmp(&b)));
        for &i in order.iter().take(k) {
            let label = labels.and_then(|l| l.get(i));
            strings.push(match label {
                Some(label) => format!("{:.6}:{i}:{label}", row[i]),
                None => format!("{:.6}:{i}", row[i]),
            });
        }
    }
    Tensor {
        name: name.to_string(),
        shape: [rows.len(), k],
        data: Data::Bytes(strings),
        binary,
    }
}

/// The JSON header and the binary part.
fn assemble(ctx: &Context<'_>, request: &InferRequest, tensors: Vec<Tensor>) -> Encoded {
    let mut binary = Vec::new();
    let outputs: Vec<Value> = tensors
        .into_iter()
        .map(|t| {
            let datatype = match t.data {
                Data::Fp32(_) => "FP32",
                Data::Bytes(_) => "BYTES",
            };
            let mut o = json!({ "name": t.name, "datatype": datatype, "shape": t.shape });
            if t.binary {
                let start = binary.len();
                match &t.data {
                    Data::Fp32(v) => v
                        .iter()
                        .for_each(|x| binary.extend_from_slice(&x.to_le_bytes())),
                    Data::Bytes(v) => v.iter().for_each(|s| {
                        binary.extend_from_slice(&(s.len() as u32).to_le_bytes());
                        binary.extend_from_slice(s.as_bytes());
                    }),
                }
                o["parameters"] = json!({ "binary_data_size": binary.len() - start });
            } else {
                o["data"] = match t.data {
                    Data::Fp32(v) => json!(v),
                    Data::Bytes(v) => json!(v),
                };
            }
            o
        })
        .collect();
    let mut response = json!({
        "model_name": ctx.model_name,
        "model_version": "1",
        "outputs": outputs,
    });
    if let Some(id) = &request.id {
        response["id"] = json!(id);
    }
    Encoded {
        header: response.to_string().into_bytes(),
        binary,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(json: &str) -> InferRequest {
        serde_json::from_str(json).expect("request")
    }

    fn output() -> JobOutput {
        JobOutput {
            logits: vec![vec![0.5, 2.0, -1.0], vec![3.0, 1.0, 3.0]],
            image_embeds: Some(vec![vec![1.0, 0.0], vec![0.0, 1.0]]),
            batch: 2,
        }
    }

    const LABELS: [&str; 3] = ["dog", "cat", "car"];

    fn ctx(labels: &[String]) -> Context<'_> {
        Context {
            model_name: "m",
            labels,
        }
    }

    #[test]
    fn all_outputs_as_json_by_default() {
        let labels: Vec<String> = LABELS.iter().map(|s| s.to_string()).collect();
        let e = encode(
            &ctx(&labels),
            &request(r#"{"id":"7","inputs":[]}"#),
            output(),
        )
        .expect("encode");
        assert!(e.binary.is_empty());
        let v: Value = serde_json::from_slice(&e.header).expect("json");
        assert_eq!(v["id"], "7");
        assert_eq!(v["model_version"], "1");
        assert_eq!(v["outputs"][0]["name"], "logits");
        assert_eq!(v["outputs"][0]["shape"], json!([2, 3]));
        assert_eq!(
            v["outputs"][0]["data"],
            json!([0.5, 2.0, -1.0, 3.0, 1.0, 3.0])
        );
        assert_eq!(v["outputs"][1]["name"], "image_embeds");
    }

    #[test]
    fn binary_outputs_and_classification() {
        let labels: Vec<String> = LABELS.iter().map(|s| s.to_string()).collect();
        let r = request(
            r#"{"inputs":[],"outputs":[{"name":"image_embeds","parameters":{"binary_data":true}},{"name":"logits","parameters":{"classification":2,"binary_data":false}}]}"#,
        );
        let e = encode(&ctx(&labels), &r, output()).expect("encode");
        let v: Value = serde_json::from_slice(&e.header).expect("json");
        assert_eq!(v["outputs"][0]["parameters"]["binary_data_size"], 16);
        assert_eq!(e.binary.len(), 16);
        let last = [e.binary[12], e.binary[13], e.binary[14], e.binary[15]];
        assert_eq!(f32::from_le_bytes(last), 1.0);
        assert_eq!(v["outputs"][1]["datatype"], "BYTES");
        assert_eq!(
            v["outputs"][1]["data"],
            json!([
                "2.000000:1:cat",
                "0.500000:0:dog",
                "3.000000:0:dog",
                "3.000000:2:car"
            ])
        );
        // BYTES in binary: a u32 length before each string; no label on image_embeds
        let r = request(
            r#"{"inputs":[],"outputs":[{"name":"image_embeds","parameters":{"classification":1,"binary_data":true}}]}"#,
        );
        let e = encode(&ctx(&labels), &r, output()).expect("encode");
        let mut expected = Vec::new();
        for s in ["1.000000:0", "1.000000:1"] {
            expected.extend_from_slice(&(s.len() as u32).to_le_bytes());
            expected.extend_from_slice(s.as_bytes());
        }
        assert_eq!(e.binary, expected);
    }

    #[test]
    fn binary_data_output_applies_only_when_no_output_is_named() {
        let labels: Vec<String> = Vec::new();
        let all = request(r#"{"inputs":[],"outputs":[],"parameters":{"binary_data_output":true}}"#);
        let e = encode(&ctx(&labels), &all, output()).expect("encode");
        let v: Value = serde_json::from_slice(&e.header).expect("json");
        assert_eq!(
            v["outputs"].as_array().map(Vec::len),
            Some(2),
            "[] means all"
        );
        assert_eq!(e.binary.len(), (6 + 4) * 4);
        let named = request(
            r#"{"inputs":[],"outputs":[{"name":"logits"}],"parameters":{"binary_data_output":true}}"#,
        );
        let e = encode(&ctx(&labels), &named, output()).expect("encode");
        assert!(e.binary.is_empty(), "a named output is JSON unless it asks");
        let zero = request(
            r#"{"inputs":[],"outputs":[{"name":"logits","parameters":{"classification":0}}]}"#,
        );
        let e = encode(&ctx(&labels), &zero, output()).expect("encode");
        let v: Value = serde_json::from_slice(&e.header).expect("json");
        assert_eq!(
            v["outputs"][0]["datatype"], "FP32",
            "classification 0 is none"
        );
    }

    #[test]
    fn bad_output_requests() {
        let labels: Vec<String> = Vec::new();
        for (json, expected) in [
            (
                r#"{"inputs":[],"outputs":[{"name":"probs"}]}"#,
                "unknown output `probs`",
            ),
            (
                r#"{"inputs":[],"outputs":[{"name":"logits","parameters":{"classification":-1}}]}"#,
                "non-negative",
            ),
            (
                r#"{"inputs":[],"outputs":[{"name":"logits"},{"name":"logits"}]}"#,
                "requested twice",
            ),
            (
                r#"{"inputs":[],"outputs":[{"name":"logits","parameters":{"shared_memory_region":"r"}}]}"#,
                "shared memory",
            ),
            (
                r#"{"inputs":[],"outputs":[{"name":"logits","parameters":{"binary_data":"yes"}}]}"#,
                "true or false",
            ),
            (
                r#"{"inputs":[],"parameters":{"binary_data_output":1}}"#,
                "true or false",
            ),
        ] {
            let err = encode(&ctx(&labels), &request(json), output())
                .err()
                .expect(json);
            assert!(err.contains(expected), "{json}: {err}");
        }
    }
}
