//! Decoding a v2 inference request: the JSON body, or Triton's binary tensor extension (a JSON
//! header of `Inference-Header-Content-Length` bytes, then each input with a `binary_data_size`
//! parameter as raw little-endian bytes, in input order), checked against the model's input.

use std::fmt;

use std::collections::BTreeMap;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

use ahp_spec::onnx_names::INPUT_PIXEL_VALUES;

/// The parameters the server reads or refuses; any other is skipped unread (never stored, so a
/// request cannot make the server hold what it sends in parameters).
const KNOWN_PARAMETERS: &[&str] = &[
    "binary_data_size",
    "binary_data",
    "binary_data_output",
    "classification",
    "shared_memory_region",
    "shared_memory_byte_size",
    "shared_memory_offset",
];

/// A parameter's value: the protocol's parameters are scalars.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Param {
    Bool(bool),
    Int(i64),
    Uint(u64),
    Float(f64),
    Text(String),
}

impl fmt::Display for Param {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Param::Bool(b) => write!(f, "{b}"),
            Param::Int(i) => write!(f, "{i}"),
            Param::Uint(u) => write!(f, "{u}"),
            Param::Float(x) => write!(f, "{x}"),
            Param::Text(t) => write!(f, "{t:?}"),
        }
    }
}

impl Param {
    /// The value as a non-negative integer.
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Param::Uint(u) => Some(*u),
            Param::Int(i) => u64::try_from(*i).ok(),
            _ => None,
        }
    }
}

/// Request or tensor parameters: the known keys with scalar values.
#[derive(Debug, Default)]
pub(crate) struct Parameters(BTreeMap<&'static str, Param>);

impl Parameters {
    /// A known parameter's value, if given.
    pub fn get(&self, key: &str) -> Option<&Param> {
        self.0.get(key)
    }
}

impl<'de> Deserialize<'de> for Parameters {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(ParametersVisitor)
    }
}

struct ParametersVisitor;

impl<'de> Visitor<'de> for ParametersVisitor {
    type Value = Parameters;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object of parameters")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Parameters, A::Error> {
        let mut out = BTreeMap::new();
        while let Some(key) = map.next_key::<String>()? {
            match KNOWN_PARAMETERS.iter().find(|k| **k == key) {
                Some(known) => {
                    out.insert(*known, map.next_value::<Param>()?);
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Parameters(out))
    }
}

impl<'de> Deserialize<'de> for Param {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ParamVisitor)
    }
}

struct ParamVisitor;

impl<'de> Visitor<'de> for ParamVisitor {
    type Value = Param;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a parameter value (boolean, number or string)")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Param, E> {
        Ok(Param::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Param, E> {
        Ok(Param::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Param, E> {
        Ok(Param::Uint(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Param, E> {
        Ok(Param::Float(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Param, E> {
        Ok(Param::Text(v.to_string()))
    }
}

/// The JSON part of an inference request.
#[derive(Debug, Deserialize)]
pub(crate) struct InferRequest {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub parameters: Parameters,
    pub inputs: Vec<RequestInput>,
    #[serde(default)]
    pub outputs: Option<Vec<RequestOutput>>,
}

/// One input tensor of the request.
#[derive(Debug, Deserialize)]
pub(crate) struct RequestInput {
    pub name: String,
    pub shape: Vec<i64>,
    pub datatype: String,
    #[serde(default)]
    pub parameters: Parameters,
    #[serde(default)]
    pub data: Option<Numbers>,
}

/// One requested output.
#[derive(Debug, Deserialize)]
pub(crate) struct RequestOutput {
    pub name: String,
    #[serde(default)]
    pub parameters: Parameters,
}

/// Tensor data given as JSON numbers, flat or nested in row-major order.
#[derive(Debug, Default)]
pub(crate) struct Numbers(pub Vec<f32>);

impl<'de> Deserialize<'de> for Numbers {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut out = Vec::new();
        Flatten(&mut out).deserialize(d)?;
        Ok(Numbers(out))
    }
}

/// Appends every number of a (nested) array to its vector.
struct Flatten<'a>(&'a mut Vec<f32>);

impl<'de> DeserializeSeed<'de> for Flatten<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Flatten<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a number or an array of numbers")
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        self.0.push(v as f32);
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.0.push(v as f32);
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.0.push(v as f32);
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Flatten(&mut *self.0))?.is_some() {}
        Ok(())
    }
}

/// What the model takes: `pixel_values` FP32 `[n, 3, height, width]`, `1 <= n <= max_batch`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct InputSpec {
    pub height: u32,
    pub width: u32,
    pub max_batch: usize,
}

/// A decoded, checked request: its JSON part and the images' pixels.
#[derive(Debug)]
pub(crate) struct Decoded {
    pub request: InferRequest,
    pub pixels: Vec<f32>,
    pub images: usize,
}

/// Decodes `body` (`header_len`: the `Inference-Header-Content-Length`, when given) and checks
/// it against `spec`. The error is the message of a 400 answer.
pub(crate) fn decode(
    body: &[u8],
    header_len: Option<usize>,
    spec: InputSpec,
) -> Result<Decoded, String> {
    let (header, mut binary) = match header_len {
        Some(n) if n > body.len() => {
            return Err(format!(
                "Inference-Header-Content-Length is {n} but the body has only {} bytes",
                body.len()
            ))
        }
        Some(0) => {
            return Err(
                "Inference-Header-Content-Length 0 (a raw binary request without a JSON header) is not supported: send the JSON header and its length"
                    .to_string(),
            )
        }
        Some(n) => body.split_at(n),
        None => (body, &[][..]),
    };
    let mut request: InferRequest = serde_json::from_slice(header)
        .map_err(|e| format!("the inference request is not valid JSON of the v2 protocol: {e}"))?;
    let [input] = request.inputs.as_mut_slice() else {
        return Err(format!(
            "expected exactly one input, `{INPUT_PIXEL_VALUES}`, got {}",
            request.inputs.len()
        ));
    };
    let images = check_input(input, spec)?;
    let count = images * 3 * spec.height as usize * spec.width as usize;
    let pixels = match (input.data.take(), binary_size(input)?) {
        (Some(_), Some(_)) => {
            return Err(format!(
                "input `{}` has both `data` and a `binary_data_size` parameter",
                input.name
            ))
        }
        (Some(Numbers(values)), None) => values,
        (None, Some(size)) => take_binary(&mut binary, size, &input.name)?,
        (None, None) => {
            return Err(format!(
                "input `{}` has no `data` and no `binary_data_size` parameter",
                input.name
            ))
        }
    };
    if pixels.len() != count {
        return Err(format!(
            "input `{}` has shape {:?} ({count} values) but {} values were sent",
            input.name,
            input.shape,
            pixels.len()
        ));
    }
    if !binary.is_empty() {
        return Err(format!(
            "{} bytes of binary data after the last binary input",
            binary.len()
        ));
    }
    if let Some(i) = pixels.iter().position(|v| !v.is_finite()) {
        return Err(format!(
            "input `{}`: value {i} is {} (FP32 inputs must be finite)",
            input.name, pixels[i]
        ));
    }
    Ok(Decoded {
        request,
        pixels,
        images,
    })
}

/// Checks the input's name, datatype and shape; returns the number of images.
fn check_input(input: &RequestInput, spec: InputSpec) -> Result<usize, String> {
    let (h, w) = (i64::from(spec.height), i64::from(spec.width));
    if input.name != INPUT_PIXEL_VALUES {
        return Err(format!(
            "unknown input `{}`: the model's input is `{INPUT_PIXEL_VALUES}` (FP32 [-1, 3, {h}, {w}])",
            input.name
        ));
    }
    if input.datatype != "FP32" {
        return Err(format!(
            "input `{}` has datatype {}, the model takes FP32",
            input.name, input.datatype
        ));
    }
    let n = match input.shape.as_slice() {
        [n, 3, ih, iw] if *ih == h && *iw == w => *n,
        _ => {
            return Err(format!(
                "input `{}` has shape {:?}, the model takes [n, 3, {h}, {w}]",
                input.name, input.shape
            ))
        }
    };
    usize::try_from(n)
        .ok()
        .filter(|n| (1..=spec.max_batch).contains(n))
        .ok_or_else(|| {
            format!(
                "input `{}` has batch size {n}; this server takes 1 to {} images per request (max_batch)",
                input.name, spec.max_batch
            )
        })
}

/// The input's `binary_data_size` parameter, if any.
fn binary_size(input: &RequestInput) -> Result<Option<usize>, String> {
    if input.parameters.get("shared_memory_region").is_some() {
        return Err(format!(
            "input `{}`: shared memory is not supported by this server; send the data in the request",
            input.name
        ));
    }
    match input.parameters.get("binary_data_size") {
        None => Ok(None),
        Some(v) => v
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| {
                format!(
                    "input `{}`: binary_data_size must be a non-negative integer, got {v}",
                    input.name
                )
            }),
    }
}

/// Takes `size` bytes of little-endian f32 off the front of `binary`.
fn take_binary(binary: &mut &[u8], size: usize, name: &str) -> Result<Vec<f32>, String> {
    if size > binary.len() {
        return Err(format!(
            "input `{name}` has binary_data_size {size} but only {} bytes of binary data follow the header",
            binary.len()
        ));
    }
    if !size.is_multiple_of(4) {
        return Err(format!(
            "input `{name}`: binary_data_size {size} is not a whole number of FP32 values"
        ));
    }
    let (data, rest) = binary.split_at(size);
    *binary = rest;
    Ok(data
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: InputSpec = InputSpec {
        height: 2,
        width: 1,
        max_batch: 4,
    };

    fn json(shape: &str, data: &str) -> String {
        format!(
            r#"{{"inputs":[{{"name":"pixel_values","datatype":"FP32","shape":{shape},"data":{data}}}]}}"#
        )
    }

    #[test]
    fn flat_and_nested_json_data() {
        let flat = decode(json("[1,3,2,1]", "[1,2,3,4,5,6]").as_bytes(), None, SPEC).expect("flat");
        assert_eq!(flat.pixels, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        assert_eq!(flat.images, 1);
        let nested = decode(
            json("[1,3,2,1]", "[[[[1],[2]],[[3],[4]],[[5],[6.5]]]]").as_bytes(),
            None,
            SPEC,
        )
        .expect("nested");
        assert_eq!(nested.pixels, [1.0, 2.0, 3.0, 4.0, 5.0, 6.5]);
    }

    #[test]
    fn unknown_parameters_are_skipped_unread() {
        let big = format!("[{}]", vec!["0"; 10_000].join(","));
        let body = json("[1,3,2,1]", "[1,2,3,4,5,6]").replace(
            r#""data""#,
            &format!(r#""parameters":{{"x":{big},"y":{{"z":1}}}},"data""#),
        );
        let d = decode(body.as_bytes(), None, SPEC).expect("decode");
        assert!(d.request.inputs[0].parameters.0.is_empty());
        let zero = decode(body.as_bytes(), Some(0), SPEC).expect_err("raw binary");
        assert!(zero.contains("not supported"), "{zero}");
    }

    #[test]
    fn binary_data_after_the_header() {
        let header = r#"{"inputs":[{"name":"pixel_values","datatype":"FP32","shape":[2,3,2,1],"parameters":{"binary_data_size":48}}],"outputs":[{"name":"logits","parameters":{"binary_data":true}}]}"#;
        let mut body = header.as_bytes().to_vec();
        for i in 0..12 {
            body.extend_from_slice(&(i as f32).to_le_bytes());
        }
        let d = decode(&body, Some(header.len()), SPEC).expect("binary");
        assert_eq!(d.images, 2);
        assert_eq!(d.pixels[11], 11.0);
        assert_eq!(d.request.outputs.as_ref().map(Vec::len), Some(1));
        // a byte too many, or too few
        let mut long = body.clone();
        long.push(0);
        assert!(decode(&long, Some(header.len()), SPEC)
            .expect_err("extra")
            .contains("after the last"));
        let short = &body[..body.len() - 4];
        assert!(decode(short, Some(header.len()), SPEC)
            .expect_err("short")
            .contains("only 44 bytes"));
        assert!(decode(&body, Some(body.len() + 1), SPEC)
            .expect_err("header")
            .contains("Inference-Header-Content-Length"));
    }

    #[test]
    fn bad_requests_say_what_is_wrong() {
        let cases = [
            (json("[1,3,2,1]", "[1,2,3]"), "3 values were sent"),
            (
                json("[1,3,1,2]", "[1,2,3,4,5,6]"),
                "the model takes [n, 3, 2, 1]",
            ),
            (json("[5,3,2,1]", "[]"), "batch size 5"),
            (json("[0,3,2,1]", "[]"), "batch size 0"),
            (json("[-1,3,2,1]", "[]"), "batch size -1"),
            (json("[1,3,2,1]", r#"["a"]"#), "expected a number"),
            (json("[1,3,2,1]", "[true]"), "expected a number"),
            (
                json("[1,3,2,1]", "[1,2,3,4,5,6]").replace("FP32", "FP16"),
                "datatype FP16",
            ),
            (
                json("[1,3,2,1]", "[1,2,3,4,5,6]").replace("pixel_values", "x"),
                "unknown input `x`",
            ),
            (
                json("[1,3,2,1]", "[1,2,3,4,5,6]").replace(r#","data":[1,2,3,4,5,6]"#, ""),
                "no `data`",
            ),
            (r#"{"inputs":[]}"#.to_string(), "exactly one input"),
            ("{".to_string(), "not valid JSON"),
            (r#"{"outputs":[]}"#.to_string(), "missing field `inputs`"),
            (json("[1,3,2,1]", "[1,2,3,4,5,1e39]"), "value 5 is inf"),
            (
                json("[1,3,2,1]", "[1,2,3,4,5,6]")
                    .replace(r#""data""#, r#""parameters":{"binary_data":[1,2]},"data""#),
                "parameter value",
            ),
            (
                json("[1,3,2,1]", "[1,2,3,4,5,6]").replace(
                    r#","data":[1,2,3,4,5,6]"#,
                    r#","parameters":{"shared_memory_region":"r"}"#,
                ),
                "shared memory is not supported",
            ),
        ];
        for (body, expected) in cases {
            let err = decode(body.as_bytes(), None, SPEC).expect_err(&body);
            assert!(err.contains(expected), "{body}: {err}");
        }
    }
}
