//! A Triton Inference Server model repository entry: `<repo>/<name>/1/model.onnx` and
//! `<repo>/<name>/config.pbtxt` (ONNX Runtime backend, dynamic batching, TensorRT execution
//! accelerator with FP16 and the CUDA graph/cudnn options).

use std::path::{Path, PathBuf};

use ahp_spec::onnx_names::{INPUT_PIXEL_VALUES, OUTPUT_IMAGE_EMBEDS, OUTPUT_LOGITS};

use crate::error::{ExportError, Result};

/// Shapes of the model's interface (without the batch dimension).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TritonModel {
    /// Model name (directory name in the repository).
    pub name: String,
    /// Input channels.
    pub channels: usize,
    /// Input side `S`.
    pub image_size: usize,
    /// Classes `C`.
    pub classes: usize,
    /// Embedding size `P`.
    pub projection_dim: usize,
    /// Largest batch Triton may form.
    pub max_batch_size: usize,
}

/// `config.pbtxt` text for `m`.
pub fn config_pbtxt(m: &TritonModel) -> String {
    format!(
        r#"name: "{name}"
platform: "onnxruntime_onnx"
max_batch_size: {max_batch}
input [
  {{
    name: "{input}"
    data_type: TYPE_FP32
    dims: [ {c}, {s}, {s} ]
  }}
]
output [
  {{
    name: "{logits}"
    data_type: TYPE_FP32
    dims: [ {classes} ]
  }},
  {{
    name: "{embeds}"
    data_type: TYPE_FP32
    dims: [ {p} ]
  }}
]
dynamic_batching {{
  preferred_batch_size: [ {pref} ]
  max_queue_delay_microseconds: 2000
}}
instance_group [
  {{
    count: 1
    kind: KIND_GPU
  }}
]
optimization {{
  execution_accelerators {{
    gpu_execution_accelerator: [
      {{
        name: "tensorrt"
        parameters {{ key: "precision_mode" value: "FP16" }}
        parameters {{ key: "max_workspace_size_bytes" value: "1073741824" }}
        parameters {{ key: "trt_engine_cache_enable" value: "true" }}
      }}
    ]
  }}
  cuda {{
    graphs: false
  }}
}}
"#,
        name = m.name,
        max_batch = m.max_batch_size,
        input = INPUT_PIXEL_VALUES,
        c = m.channels,
        s = m.image_size,
        logits = OUTPUT_LOGITS,
        classes = m.classes,
        embeds = OUTPUT_IMAGE_EMBEDS,
        p = m.projection_dim,
        pref = preferred_batches(m.max_batch_size),
    )
}

fn preferred_batches(max: usize) -> String {
    let mut v: Vec<String> = [4usize, 8, 16, 32]
        .iter()
        .filter(|&&b| b <= max)
        .map(|b| b.to_string())
        .collect();
    if v.is_empty() {
        v.push(max.max(1).to_string());
    }
    v.join(", ")
}

/// Errors unless `name` is a plain directory name.
pub fn check_name(name: &str) -> Result<()> {
    if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
        return Err(ExportError::Invalid(format!(
            "Triton model name `{name}` (--triton-name, default: the output file's stem) must be a plain directory name; pass --triton-name"
        )));
    }
    Ok(())
}

/// Copies the validated `onnx_file` into `<repo>/<name>/1/model.onnx` and writes
/// `<repo>/<name>/config.pbtxt`; returns the model directory.
pub fn write_repository(repo: &Path, onnx_file: &Path, m: &TritonModel) -> Result<PathBuf> {
    check_name(&m.name)?;
    let model_dir = repo.join(&m.name);
    let version_dir = model_dir.join("1");
    std::fs::create_dir_all(&version_dir)
        .map_err(|e| ExportError::file(&version_dir, format!("cannot create: {e}")))?;
    let dest = version_dir.join("model.onnx");
    let tmp = ahp_spec::files::TempFile::next_to(&dest)?;
    std::fs::copy(onnx_file, tmp.path())
        .map_err(|e| ExportError::file(tmp.path(), format!("cannot copy the model here: {e}")))?;
    tmp.persist()?;
    ahp_spec::files::write_atomic(&model_dir.join("config.pbtxt"), config_pbtxt(m).as_bytes())?;
    Ok(model_dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_has_the_interface() {
        let text = config_pbtxt(&TritonModel {
            name: "clip".into(),
            channels: 3,
            image_size: 224,
            classes: 7,
            projection_dim: 512,
            max_batch_size: 16,
        });
        assert!(text.contains("dims: [ 3, 224, 224 ]"), "{text}");
        assert!(text.contains("dims: [ 7 ]"), "{text}");
        assert!(
            text.contains("preferred_batch_size: [ 4, 8, 16 ]"),
            "{text}"
        );
        assert!(text.contains("name: \"tensorrt\""), "{text}");
        assert!(text.contains("dynamic_batching"), "{text}");
    }
}
