//! [`ExecutionProvider`]: the ONNX Runtime execution providers ahp-runtime can use, and which
//! of them the loaded ONNX Runtime library includes.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use serde::Serialize;

/// An ONNX Runtime execution provider ahp-runtime can use.
///
/// GPU providers need the crate feature of the same name (`cuda`, `tensorrt`) *and* an ONNX
/// Runtime library built with them (e.g. the PyPI wheel `onnxruntime-gpu`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ExecutionProvider {
    /// NVIDIA TensorRT (crate feature `tensorrt`).
    #[serde(rename = "tensorrt")]
    TensorRt,
    /// NVIDIA CUDA (crate feature `cuda`).
    Cuda,
    /// ONNX Runtime's default CPU provider (always available).
    Cpu,
}

impl ExecutionProvider {
    /// All providers, in the order they are preferred.
    pub const ALL: [Self; 3] = [Self::TensorRt, Self::Cuda, Self::Cpu];

    /// Short lowercase name, as accepted by [`FromStr`] (`tensorrt`, `cuda`, `cpu`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TensorRt => "tensorrt",
            Self::Cuda => "cuda",
            Self::Cpu => "cpu",
        }
    }

    /// ONNX Runtime's name of the provider (`CUDAExecutionProvider`, ...).
    pub fn ort_name(self) -> &'static str {
        match self {
            Self::TensorRt => "TensorrtExecutionProvider",
            Self::Cuda => "CUDAExecutionProvider",
            Self::Cpu => "CPUExecutionProvider",
        }
    }

    /// Whether this build of ahp-runtime includes the provider (its cargo feature is on).
    pub fn is_compiled(self) -> bool {
        match self {
            Self::TensorRt => cfg!(feature = "tensorrt"),
            Self::Cuda => cfg!(feature = "cuda"),
            Self::Cpu => true,
        }
    }

    /// The provider followed by the ones it falls back to: `tensorrt` → TensorRT, CUDA, CPU;
    /// `cuda` → CUDA, CPU; `cpu` → CPU.
    pub fn with_fallbacks(self) -> Vec<Self> {
        Self::ALL.into_iter().skip_while(|p| *p != self).collect()
    }

    /// The default order: the compiled-in providers among TensorRT, CUDA, CPU.
    pub fn default_order() -> Vec<Self> {
        Self::ALL.into_iter().filter(|p| p.is_compiled()).collect()
    }
}

impl fmt::Display for ExecutionProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::TensorRt => "TensorRT",
            Self::Cuda => "CUDA",
            Self::Cpu => "CPU",
        })
    }
}

impl FromStr for ExecutionProvider {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "tensorrt" | "trt" => Ok(Self::TensorRt),
            "cuda" | "gpu" => Ok(Self::Cuda),
            "cpu" => Ok(Self::Cpu),
            other => Err(format!(
                "unknown execution provider {other:?} (expected cpu, cuda or tensorrt)"
            )),
        }
    }
}

impl ExecutionProvider {
    /// The `ort` registration of the provider, with registration failures as errors (`Err`
    /// when this build does not include it).
    pub(super) fn dispatch(self) -> Result<ort::ep::ExecutionProviderDispatch, String> {
        if !self.is_compiled() {
            return Err(format!(
                "ahp-runtime was built without its `{}` feature",
                self.as_str()
            ));
        }
        let dispatch = match self {
            Self::Cpu => Some(ort::ep::CPU::default().build()),
            #[cfg(feature = "cuda")]
            Self::Cuda => Some(ort::ep::CUDA::default().build()),
            #[cfg(feature = "tensorrt")]
            Self::TensorRt => Some(ort::ep::TensorRT::default().build()),
            #[allow(unreachable_patterns)]
            _ => None,
        };
        dispatch
            .map(|d| d.error_on_failure())
            .ok_or_else(|| format!("{self} is not compiled in"))
    }

    /// `Err` when the ONNX Runtime `library` in use was built without this (GPU) provider.
    pub(super) fn check_available(self, library: &Path) -> Result<(), String> {
        if self == Self::Cpu {
            return Ok(());
        }
        let available = available_providers();
        if available.iter().any(|p| p == self.ort_name()) {
            return Ok(());
        }
        Err(format!(
            "the ONNX Runtime library {} does not include {} (it has {}); a GPU build such as the PyPI wheel `onnxruntime-gpu` does",
            library.display(),
            self.ort_name(),
            available.join(", ")
        ))
    }
}

/// The providers the loaded ONNX Runtime library was built with (its `GetAvailableProviders`).
fn available_providers() -> Vec<String> {
    let candidates = [
        "TensorrtExecutionProvider",
        "CUDAExecutionProvider",
        "CPUExecutionProvider",
    ];
    let mut out = Vec::new();
    for name in candidates {
        let present = match name {
            #[cfg(feature = "tensorrt")]
            "TensorrtExecutionProvider" => {
                <ort::ep::TensorRT as ort::ep::ExecutionProvider>::is_available().unwrap_or(false)
            }
            #[cfg(feature = "cuda")]
            "CUDAExecutionProvider" => {
                <ort::ep::CUDA as ort::ep::ExecutionProvider>::is_available().unwrap_or(false)
            }
            "CPUExecutionProvider" => true,
            _ => false,
        };
        if present {
            out.push(name.to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn providers_parse_and_fall_back() {
        assert_eq!("CUDA".parse(), Ok(ExecutionProvider::Cuda));
        assert_eq!("trt".parse(), Ok(ExecutionProvider::TensorRt));
        assert!("tpu".parse::<ExecutionProvider>().is_err());
        assert_eq!(
            ExecutionProvider::TensorRt.with_fallbacks(),
            ExecutionProvider::ALL
        );
        assert_eq!(
            ExecutionProvider::Cpu.with_fallbacks(),
            [ExecutionProvider::Cpu]
        );
        assert_eq!(
            ExecutionProvider::default_order().last(),
            Some(&ExecutionProvider::Cpu)
        );
    }
}
