//! A Triton Inference Server model repository entry: `<repo>/<name>/1/model.onnx`,
//! `<repo>/<name>/config.pbtxt` (ONNX Runtime backend, dynamic batching with a queue delay, a
//! zero-image warmup, the labels as `label_filename`), `<repo>/<name>/labels.txt` and
//! `<repo>/<name>/MODEL_CARD.md`.
//!
//! `--triton-kind cpu` writes a `KIND_CPU` instance group and no accelerator, so a CPU-only
//! Triton loads it; `gpu` writes `KIND_GPU`, with the TensorRT execution accelerator only when
//! asked (`--triton-trt`) and FP16 only on top of it (`--triton-fp16`).

use std::path::{Path, PathBuf};

use ahp_spec::onnx_names::{INPUT_PIXEL_VALUES, OUTPUT_IMAGE_EMBEDS, OUTPUT_LOGITS};

use crate::error::{ExportError, Result};

/// The labels file next to `config.pbtxt`, one label per line in logit order.
pub const LABELS_FILE: &str = "labels.txt";
/// The model card next to `config.pbtxt`.
pub const CARD_FILE: &str = "MODEL_CARD.md";

/// Where Triton runs the model's instances.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TritonKind {
    /// `KIND_CPU`: ONNX Runtime's CPU execution provider (loads on any Triton).
    #[default]
    Cpu,
    /// `KIND_GPU`: ONNX Runtime's CUDA execution provider (TensorRT with `--triton-trt`).
    Gpu,
}

/// How to write the repository entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TritonOptions {
    /// Repository directory (created if missing).
    pub repo: PathBuf,
    /// Model name (directory name in the repository).
    pub name: String,
    /// Instance kind.
    pub kind: TritonKind,
    /// GPU only: TensorRT as the execution accelerator.
    pub tensorrt: bool,
    /// GPU with TensorRT only: FP16 precision.
    pub fp16: bool,
    /// Largest batch Triton may form.
    pub max_batch_size: usize,
    /// Longest a request waits for the dynamic batcher to fill a batch, in microseconds.
    pub queue_delay_us: u64,
    /// ONNX Runtime intra-op threads of the instance (`intra_op_thread_count`, with one
    /// inter-op thread); `None`: ONNX Runtime's default (all cores).
    pub intra_op_threads: Option<usize>,
}

impl TritonOptions {
    /// A CPU entry `name` under `repo`, batches up to 32, a 2 ms queue delay.
    pub fn new(repo: &Path, name: &str) -> Self {
        Self {
            repo: repo.to_path_buf(),
            name: name.to_string(),
            kind: TritonKind::Cpu,
            tensorrt: false,
            fp16: false,
            max_batch_size: 32,
            queue_delay_us: 2000,
            intra_op_threads: None,
        }
    }

    /// Errors on a name that is not a plain directory name and on accelerator options that do
    /// not fit the kind.
    pub fn check(&self) -> Result<()> {
        check_name(&self.name)?;
        let invalid = |m: &str| Err(ExportError::Invalid(m.to_string()));
        if self.tensorrt && self.kind != TritonKind::Gpu {
            return invalid("--triton-trt: TensorRT needs --triton-kind gpu");
        }
        if self.fp16 && !self.tensorrt {
            return invalid("--triton-fp16: FP16 is TensorRT's precision mode; add --triton-trt");
        }
        if self.max_batch_size == 0 {
            return invalid("--triton-max-batch must be at least 1");
        }
        if self.intra_op_threads == Some(0) {
            return invalid("--triton-threads must be at least 1");
        }
        Ok(())
    }
}

/// Shapes of the model's interface (without the batch dimension).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TritonModel {
    /// Input channels.
    pub channels: usize,
    /// Input side `S`.
    pub image_size: usize,
    /// Classes `C`.
    pub classes: usize,
    /// Embedding size `P`.
    pub projection_dim: usize,
}

/// `config.pbtxt` text for `m` written with `o`.
pub fn config_pbtxt(m: &TritonModel, o: &TritonOptions) -> String {
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
    label_filename: "{labels}"
  }},
  {{
    name: "{embeds}"
    data_type: TYPE_FP32
    dims: [ {p} ]
  }}
]
dynamic_batching {{
  preferred_batch_size: [ {pref} ]
  max_queue_delay_microseconds: {delay}
}}
instance_group [
  {{
    count: 1
    kind: {kind}
  }}
]
model_warmup [
  {{
    name: "zero_image"
    batch_size: 1
    inputs {{
      key: "{input}"
      value {{
        data_type: TYPE_FP32
        dims: [ {c}, {s}, {s} ]
        zero_data: true
      }}
    }}
  }}
]
{threads}{optimization}"#,
        name = o.name,
        max_batch = o.max_batch_size,
        input = INPUT_PIXEL_VALUES,
        c = m.channels,
        s = m.image_size,
        logits = OUTPUT_LOGITS,
        classes = m.classes,
        labels = LABELS_FILE,
        embeds = OUTPUT_IMAGE_EMBEDS,
        p = m.projection_dim,
        pref = preferred_batches(o.max_batch_size),
        delay = o.queue_delay_us,
        kind = match o.kind {
            TritonKind::Cpu => "KIND_CPU",
            TritonKind::Gpu => "KIND_GPU",
        },
        threads = thread_parameters(o),
        optimization = optimization(o),
    )
}

/// The onnxruntime backend's thread parameters, when the thread count is set.
fn thread_parameters(o: &TritonOptions) -> String {
    match o.intra_op_threads {
        None => String::new(),
        Some(n) => format!(
            "parameters {{ key: \"intra_op_thread_count\" value: {{ string_value: \"{n}\" }} }}\n\
             parameters {{ key: \"inter_op_thread_count\" value: {{ string_value: \"1\" }} }}\n"
        ),
    }
}

/// The `optimization` block: TensorRT (FP16 if asked) on a GPU entry that asks for it, else
/// nothing (ONNX Runtime's own CPU or CUDA execution provider).
fn optimization(o: &TritonOptions) -> String {
    if !o.tensorrt {
        return String::new();
    }
    let precision = if o.fp16 {
        "\n        parameters { key: \"precision_mode\" value: \"FP16\" }"
    } else {
        ""
    };
    format!(
        r#"optimization {{
  execution_accelerators {{
    gpu_execution_accelerator: [
      {{
        name: "tensorrt"{precision}
        parameters {{ key: "max_workspace_size_bytes" value: "1073741824" }}
        parameters {{ key: "trt_engine_cache_enable" value: "true" }}
      }}
    ]
  }}
}}
"#
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

/// Errors unless `name` is a plain directory name that is also safe inside `config.pbtxt`'s
/// quotes: ASCII letters, digits, `_`, `-` and `.`, not starting with `.`.
pub fn check_name(name: &str) -> Result<()> {
    let plain = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if name.is_empty() || !plain || name.starts_with('.') {
        return Err(ExportError::Invalid(format!(
            "Triton model name `{name}` (--triton-name, default: the output file's stem) must be a plain name of ASCII letters, digits, `_`, `-` and `.`; pass --triton-name"
        )));
    }
    Ok(())
}

/// What goes into the entry besides the model file.
#[derive(Debug, Clone, Copy)]
pub struct EntryFiles<'a> {
    /// Labels in logit order (`labels.txt`).
    pub labels: &'a [String],
    /// The model card (`MODEL_CARD.md`).
    pub card: &'a str,
}

/// Errors on a label `labels.txt` cannot hold on one line (Triton splits it on `\n`).
fn check_labels(labels: &[String], classes: usize) -> Result<()> {
    if labels.len() != classes {
        return Err(ExportError::Invalid(format!(
            "Triton entry: {} labels for {classes} logits",
            labels.len()
        )));
    }
    match labels.iter().position(|l| l.chars().any(char::is_control)) {
        Some(i) => Err(ExportError::Invalid(format!(
            "{LABELS_FILE}: label {i} ({:?}) holds a control character (a line break would shift \
             every later label)",
            labels[i]
        ))),
        None => Ok(()),
    }
}

/// Writes the entry `<repo>/<name>/`: `1/model.onnx` (a copy of the validated `onnx_file`),
/// `config.pbtxt`, the labels and the card. The entry is assembled in a temporary directory
/// next to it and then replaces an existing entry as a whole (no file of an earlier export,
/// such as another version directory, survives); on failure the earlier entry is kept.
/// Returns the model directory.
pub fn write_repository(
    onnx_file: &Path,
    m: &TritonModel,
    o: &TritonOptions,
    files: EntryFiles<'_>,
) -> Result<PathBuf> {
    o.check()?;
    check_labels(files.labels, m.classes)?;
    std::fs::create_dir_all(&o.repo)
        .map_err(|e| ExportError::file(&o.repo, format!("cannot create: {e}")))?;
    let model_dir = o.repo.join(&o.name);
    let staging = o
        .repo
        .join(format!(".{}.tmp-{}", o.name, std::process::id()));
    let result = fill_entry(&staging, onnx_file, m, o, files)
        .and_then(|()| replace_dir(&staging, &model_dir));
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&staging);
    }
    result.map(|()| model_dir)
}

/// Writes every file of the entry into `dir` (created).
fn fill_entry(
    dir: &Path,
    onnx_file: &Path,
    m: &TritonModel,
    o: &TritonOptions,
    files: EntryFiles<'_>,
) -> Result<()> {
    let version_dir = dir.join("1");
    std::fs::create_dir_all(&version_dir)
        .map_err(|e| ExportError::file(&version_dir, format!("cannot create: {e}")))?;
    let dest = version_dir.join("model.onnx");
    std::fs::copy(onnx_file, &dest)
        .map_err(|e| ExportError::file(&dest, format!("cannot copy the model here: {e}")))?;
    let labels: String = files.labels.iter().map(|l| format!("{l}\n")).collect();
    let write = |name: &str, bytes: &[u8]| {
        let path = dir.join(name);
        std::fs::write(&path, bytes)
            .map_err(|e| ExportError::file(&path, format!("cannot write: {e}")))
    };
    write(LABELS_FILE, labels.as_bytes())?;
    write(CARD_FILE, files.card.as_bytes())?;
    write("config.pbtxt", config_pbtxt(m, o).as_bytes())
}

/// Moves `staging` to `dest`, replacing an existing `dest` (moved aside first, removed last).
fn replace_dir(staging: &Path, dest: &Path) -> Result<()> {
    let old = staging.with_extension("old");
    if dest.exists() {
        std::fs::rename(dest, &old).map_err(|e| {
            ExportError::file(dest, format!("cannot move the earlier entry aside: {e}"))
        })?;
    }
    if let Err(e) = std::fs::rename(staging, dest) {
        if old.exists() {
            let _ = std::fs::rename(&old, dest);
        }
        return Err(ExportError::file(
            dest,
            format!("cannot move the new entry in: {e}"),
        ));
    }
    if old.exists() {
        std::fs::remove_dir_all(&old).map_err(|e| {
            ExportError::file(&old, format!("cannot remove the earlier entry: {e}"))
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model() -> TritonModel {
        TritonModel {
            channels: 3,
            image_size: 224,
            classes: 7,
            projection_dim: 512,
        }
    }

    fn options(kind: TritonKind, tensorrt: bool, fp16: bool) -> TritonOptions {
        TritonOptions {
            kind,
            tensorrt,
            fp16,
            max_batch_size: 16,
            ..TritonOptions::new(Path::new("repo"), "clip")
        }
    }

    #[test]
    fn config_has_the_interface_batching_labels_and_warmup() {
        let text = config_pbtxt(&model(), &options(TritonKind::Cpu, false, false));
        for needle in [
            "dims: [ 3, 224, 224 ]",
            "dims: [ 7 ]",
            "label_filename: \"labels.txt\"",
            "preferred_batch_size: [ 4, 8, 16 ]",
            "max_queue_delay_microseconds: 2000",
            "max_batch_size: 16",
            "zero_data: true",
        ] {
            assert!(text.contains(needle), "{needle:?} not in:\n{text}");
        }
    }

    #[test]
    fn cpu_has_no_gpu_anything_and_gpu_adds_tensorrt_and_fp16_only_when_asked() {
        let cpu = config_pbtxt(&model(), &options(TritonKind::Cpu, false, false));
        assert!(cpu.contains("kind: KIND_CPU"), "{cpu}");
        assert!(!cpu.contains("GPU") && !cpu.contains("gpu"), "{cpu}");
        let gpu = config_pbtxt(&model(), &options(TritonKind::Gpu, false, false));
        assert!(gpu.contains("kind: KIND_GPU"), "{gpu}");
        assert!(!gpu.contains("tensorrt"), "{gpu}");
        let trt = config_pbtxt(&model(), &options(TritonKind::Gpu, true, false));
        assert!(trt.contains("name: \"tensorrt\""), "{trt}");
        assert!(!trt.contains("FP16"), "{trt}");
        let fp16 = config_pbtxt(&model(), &options(TritonKind::Gpu, true, true));
        assert!(fp16.contains("value: \"FP16\""), "{fp16}");
    }

    #[test]
    fn labels_with_line_breaks_and_names_that_break_the_config_are_refused() {
        let labels = ["dog".to_string(), "hot\ndog".to_string()];
        let err = check_labels(&labels, 2).expect_err("a line break");
        assert!(err.to_string().contains("labels.txt: label 1"), "{err}");
        assert!(check_labels(&labels[..1], 2).is_err());
        for bad in ["a\"b", "two words", "../x", ".hidden", ""] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_name("ahp_clip-v1.2").is_ok());
    }

    #[test]
    fn accelerators_that_do_not_fit_the_kind_are_refused() {
        let err = options(TritonKind::Cpu, true, false)
            .check()
            .expect_err("TensorRT on CPU");
        assert!(err.to_string().contains("--triton-kind gpu"), "{err}");
        let err = options(TritonKind::Gpu, false, true)
            .check()
            .expect_err("FP16 without TensorRT");
        assert!(err.to_string().contains("--triton-trt"), "{err}");
        assert!(options(TritonKind::Gpu, true, true).check().is_ok());
    }

    #[test]
    fn thread_counts_are_backend_parameters_only_when_set() {
        let default = config_pbtxt(&model(), &options(TritonKind::Cpu, false, false));
        assert!(!default.contains("thread_count"), "{default}");
        let two = TritonOptions {
            intra_op_threads: Some(2),
            ..options(TritonKind::Cpu, false, false)
        };
        let text = config_pbtxt(&model(), &two);
        assert!(
            text.contains(
                "parameters { key: \"intra_op_thread_count\" value: { string_value: \"2\" } }"
            ),
            "{text}"
        );
        assert!(text.contains("inter_op_thread_count"), "{text}");
        let zero = TritonOptions {
            intra_op_threads: Some(0),
            ..two
        };
        assert!(zero.check().is_err());
    }
}
