//! Validating a written ONNX file: load it with tract in-process, run a batch and compare
//! with reference outputs (the candle model with its adapter hooks): output names first, then
//! shapes, then values.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use tract_onnx::prelude::{
    tvec, DatumExt, Framework, InferenceFact, InferenceModelExt, IntoRunnable, IntoTValue,
};

use crate::error::{ExportError, Result};

pub use ahp_spec::tolerance::{ONNX_FP16_VS_CANDLE, ONNX_VS_CANDLE};

/// A reference output the model must reproduce.
#[derive(Debug, Clone)]
pub struct Expected {
    /// Output name.
    pub name: String,
    /// Reference values.
    pub tensor: Tensor,
    /// Max allowed absolute difference.
    pub tolerance: f32,
}

/// The comparison of one output.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputCheck {
    /// Output name.
    pub name: String,
    /// Shape produced by the ONNX model.
    pub shape: Vec<usize>,
    /// Max absolute difference to the reference (`inf` if a value is not finite).
    pub max_abs_diff: f32,
    /// The tolerance it was held to.
    pub tolerance: f32,
}

impl OutputCheck {
    /// Whether the difference is within the tolerance.
    pub fn passed(&self) -> bool {
        self.max_abs_diff <= self.tolerance
    }
}

/// A successful validation.
#[derive(Debug, Clone, PartialEq)]
pub struct Validation {
    /// Images in the batch that was run.
    pub batch: usize,
    /// One entry per output, in the model's output order.
    pub outputs: Vec<OutputCheck>,
}

/// Deterministic pseudo-random pixels `[batch, channels, size, size]`: uniform values in
/// `[0, 1)` (8-bit quantized, like decoded images) normalized with `mean`/`std`.
pub fn seeded_pixels(
    batch: usize,
    channels: usize,
    size: usize,
    mean: &[f32; 3],
    std: &[f32; 3],
    seed: u64,
) -> Result<Tensor> {
    let mut state = seed;
    let mut next = || {
        // splitmix64
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let plane = size * size;
    let mut data = Vec::with_capacity(batch * channels * plane);
    for _ in 0..batch {
        for ch in 0..channels {
            let (m, s) = (mean[ch % 3], std[ch % 3]);
            for _ in 0..plane {
                let v = (next() >> 56) as f32 / 255.0;
                data.push((v - m) / s);
            }
        }
    }
    Ok(Tensor::from_vec(
        data,
        (batch, channels, size, size),
        &Device::Cpu,
    )?)
}

fn tract_err(path: &Path) -> impl Fn(tract_onnx::prelude::TractError) -> ExportError + '_ {
    move |e| ExportError::Tract {
        path: path.to_path_buf(),
        message: format!("{e:#}"),
    }
}

/// Loads the ONNX file with tract (batch fixed to the batch of `pixels`), runs `pixels` and
/// returns `(output name, values)` in the model's output order.
pub fn run_tract(path: &Path, pixels: &Tensor) -> Result<Vec<(String, Tensor)>> {
    let err = tract_err(path);
    let dims = pixels.dims().to_vec();
    let fact: InferenceFact = f32::fact(dims.clone()).into();
    let model = tract_onnx::onnx()
        .model_for_path(path)
        .map_err(&err)?
        .with_input_fact(0, fact)
        .map_err(&err)?
        .into_optimized()
        .map_err(&err)?
        .into_runnable()
        .map_err(&err)?;
    let data = pixels
        .to_dtype(DType::F32)?
        .flatten_all()?
        .to_vec1::<f32>()?;
    let input = tract_onnx::prelude::Tensor::from_shape(&dims, &data).map_err(&err)?;
    let outputs = model.run(tvec!(input.into_tvalue())).map_err(&err)?;
    let graph = model.model();
    let outlets = graph.output_outlets().map_err(&err)?;
    let mut result = Vec::with_capacity(outputs.len());
    for (outlet, value) in outlets.iter().zip(outputs.iter()) {
        let name = graph
            .outlet_label(*outlet)
            .unwrap_or(&graph.node(outlet.node).name)
            .to_string();
        let view = value.to_plain_array_view::<f32>().map_err(&err)?;
        let shape = view.shape().to_vec();
        let values: Vec<f32> = view.iter().copied().collect();
        result.push((name, Tensor::from_vec(values, shape, &Device::Cpu)?));
    }
    Ok(result)
}

/// Max absolute difference; `inf` if either side has a non-finite value.
pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> Result<f32> {
    let a = a.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
    let b = b.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
    Ok(a.iter().zip(&b).fold(0f32, |m, (x, y)| {
        let d = (x - y).abs();
        if d.is_finite() {
            m.max(d)
        } else {
            f32::INFINITY
        }
    }))
}

/// Compares actual outputs with the expected ones: names (same set, same order), then shapes,
/// then values. Any mismatch is an error listing the max abs diff of every output.
pub fn compare(
    path: &Path,
    actual: &[(String, Tensor)],
    expected: &[Expected],
) -> Result<Validation> {
    let fail = |message: String| ExportError::Validation {
        path: path.to_path_buf(),
        message,
    };
    let got: Vec<&str> = actual.iter().map(|(n, _)| n.as_str()).collect();
    let want: Vec<&str> = expected.iter().map(|e| e.name.as_str()).collect();
    if got != want {
        return Err(fail(format!("outputs are {got:?}, expected {want:?}")));
    }
    for ((name, t), e) in actual.iter().zip(expected) {
        if t.dims() != e.tensor.dims() {
            return Err(fail(format!(
                "output `{name}` has shape {:?}, expected {:?}",
                t.dims(),
                e.tensor.dims()
            )));
        }
    }
    let mut outputs = Vec::with_capacity(actual.len());
    for ((name, t), e) in actual.iter().zip(expected) {
        outputs.push(OutputCheck {
            name: name.clone(),
            shape: t.dims().to_vec(),
            max_abs_diff: max_abs_diff(t, &e.tensor)?,
            tolerance: e.tolerance,
        });
    }
    if outputs.iter().any(|o| !o.passed()) {
        let detail = outputs
            .iter()
            .map(|o| {
                format!(
                    "{}: max |onnx - reference| = {:.3e} (tolerance {:.1e}){}",
                    o.name,
                    o.max_abs_diff,
                    o.tolerance,
                    if o.passed() { "" } else { " FAILED" }
                )
            })
            .collect::<Vec<_>>()
            .join("; ");
        return Err(fail(detail));
    }
    Ok(Validation {
        batch: actual
            .first()
            .and_then(|(_, t)| t.dims().first().copied())
            .unwrap_or(0),
        outputs,
    })
}

/// Runs the ONNX file with tract on `pixels` and compares with `expected` ([`compare`]).
pub fn validate(path: &Path, pixels: &Tensor, expected: &[Expected]) -> Result<Validation> {
    let actual = run_tract(path, pixels)?;
    compare(path, &actual, expected)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(v: &[f32]) -> Tensor {
        Tensor::new(v, &Device::Cpu).expect("tensor")
    }

    fn exp(name: &str, v: &[f32]) -> Expected {
        Expected {
            name: name.into(),
            tensor: t(v),
            tolerance: 1e-4,
        }
    }

    #[test]
    fn compare_checks_names_then_shapes_then_values() {
        let p = Path::new("m.onnx");
        let actual = vec![
            ("logits".to_string(), t(&[1.0, 2.0])),
            ("e".into(), t(&[0.5])),
        ];
        let ok = compare(
            p,
            &actual,
            &[exp("logits", &[1.0, 2.00005]), exp("e", &[0.5])],
        )
        .expect("within tolerance");
        assert_eq!(ok.outputs.len(), 2);
        assert!(ok.outputs[0].max_abs_diff > 0.0);

        let err = compare(p, &actual, &[exp("logits", &[1.0, 2.0])]).expect_err("names");
        assert!(err.to_string().contains("outputs are"), "{err}");
        let err =
            compare(p, &actual, &[exp("logits", &[1.0]), exp("e", &[0.5])]).expect_err("shape");
        assert!(err.to_string().contains("shape"), "{err}");
        let err = compare(p, &actual, &[exp("logits", &[1.0, 2.5]), exp("e", &[0.5])])
            .expect_err("values");
        let msg = err.to_string();
        assert!(
            msg.contains("m.onnx") && msg.contains("logits: max |onnx - reference| = 5.000e-1"),
            "{msg}"
        );
        assert!(msg.contains("e: max |onnx - reference| = 0.000e0"), "{msg}");
        let nan = vec![
            ("logits".to_string(), t(&[f32::NAN, 2.0])),
            ("e".into(), t(&[0.5])),
        ];
        let err =
            compare(p, &nan, &[exp("logits", &[1.0, 2.0]), exp("e", &[0.5])]).expect_err("nan");
        assert!(err.to_string().contains("inf"), "{err}");
    }

    #[test]
    fn seeded_pixels_are_deterministic_and_normalized() {
        let m = [0.5f32; 3];
        let s = [0.25f32; 3];
        let a = seeded_pixels(2, 3, 4, &m, &s, 1).expect("pixels");
        let b = seeded_pixels(2, 3, 4, &m, &s, 1).expect("pixels");
        assert_eq!(max_abs_diff(&a, &b).expect("diff"), 0.0);
        let v = a
            .flatten_all()
            .expect("flat")
            .to_vec1::<f32>()
            .expect("vec");
        assert!(v.iter().all(|x| (-2.0..=2.0).contains(x)));
    }
}
