//! Finding and loading the ONNX Runtime shared library.
//!
//! `ort` is built with `load-dynamic`: nothing is downloaded or linked at build time, and the
//! library is opened at run time, once per process. Where it is looked for, first match wins:
//!
//! 1. an explicit path given to [`ClassifierBuilder::ort_library`](crate::ClassifierBuilder::ort_library);
//! 2. the environment variable `ORT_DYLIB_PATH` (when set and not empty);
//! 3. the default directory filled by `scripts/fetch-onnxruntime.sh`:
//!    `${AHP_ORT_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ahp/onnxruntime}`, where the file
//!    `libonnxruntime.so` (a symlink the script creates) or else the newest
//!    `libonnxruntime.so.X.Y.Z` is used.
//!
//! A missing library, a file that is not a loadable library and a library older than ONNX Runtime
//! [`MIN_ORT_VERSION`] are errors ([`Error::OrtNotFound`], [`Error::OrtLoad`]) whose message says
//! how to get a suitable one; `ort` never gets to panic.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use ort::environment::Environment;

use crate::error::{Error, Result};

/// Environment variable naming the ONNX Runtime shared library (the same one `ort` uses).
pub const ORT_DYLIB_PATH_VAR: &str = "ORT_DYLIB_PATH";
/// Environment variable overriding the default directory of `scripts/fetch-onnxruntime.sh`.
pub const AHP_ORT_DIR_VAR: &str = "AHP_ORT_DIR";
/// The oldest ONNX Runtime this crate accepts (`ort`'s `api-24` feature).
pub const MIN_ORT_VERSION: &str = "1.24";
/// The ONNX Runtime version `scripts/fetch-onnxruntime.sh` installs and the tests run with.
pub const TESTED_ORT_VERSION: &str = "1.32.0";

/// The default directory of the ONNX Runtime library:
/// `${AHP_ORT_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ahp/onnxruntime}` (empty variables count as
/// unset). `None` when none of these variables is set.
pub fn default_ort_dir() -> Option<PathBuf> {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(dir) = var(AHP_ORT_DIR_VAR) {
        return Some(PathBuf::from(dir));
    }
    let cache = var("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| var("HOME").map(|home| PathBuf::from(home).join(".cache")))?;
    Some(cache.join("ahp").join("onnxruntime"))
}

/// The platform's unversioned library file name (`libonnxruntime.so`, `libonnxruntime.dylib`,
/// `onnxruntime.dll`).
fn plain_library_name() -> String {
    format!(
        "{}onnxruntime{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    )
}

/// The newest versioned library in `dir` (`libonnxruntime.so.1.32.0` on Linux,
/// `libonnxruntime.1.32.0.dylib` on macOS).
fn newest_versioned_library(dir: &Path) -> Option<PathBuf> {
    let prefix = format!("{}onnxruntime", std::env::consts::DLL_PREFIX);
    let suffix = std::env::consts::DLL_SUFFIX;
    let entries = std::fs::read_dir(dir).ok()?;
    let mut best: Option<(Vec<u64>, PathBuf)> = None;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(&prefix) else {
            continue;
        };
        // `.so.1.32.0` (Linux) or `.1.32.0.dylib` (macOS)
        let version = rest
            .strip_prefix(suffix)
            .and_then(|v| v.strip_prefix('.'))
            .or_else(|| rest.strip_suffix(suffix).and_then(|v| v.strip_prefix('.')));
        let Some(version) = version else { continue };
        let Ok(parts) = version
            .split('.')
            .map(str::parse::<u64>)
            .collect::<std::result::Result<Vec<_>, _>>()
        else {
            continue;
        };
        if best.as_ref().is_none_or(|(v, _)| parts > *v) {
            best = Some((parts, entry.path()));
        }
    }
    best.map(|(_, path)| path)
}

/// Resolves the ONNX Runtime library path (see the [module docs](self) for the order). Does not
/// load it.
pub fn find_ort_library(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(path) = explicit {
        return existing(
            path.to_path_buf(),
            "the path given to ClassifierBuilder::ort_library",
        );
    }
    if let Some(path) = std::env::var_os(ORT_DYLIB_PATH_VAR).filter(|v| !v.is_empty()) {
        return existing(
            PathBuf::from(path),
            "the environment variable ORT_DYLIB_PATH",
        );
    }
    let Some(dir) = default_ort_dir() else {
        return Err(Error::OrtNotFound {
            tried: Vec::new(),
            via: "the default location",
        });
    };
    let plain = dir.join(plain_library_name());
    if plain.is_file() {
        return Ok(plain);
    }
    newest_versioned_library(&dir).ok_or(Error::OrtNotFound {
        tried: vec![
            plain,
            dir.join(format!(
                "{}.{TESTED_ORT_VERSION} (or any version)",
                plain_library_name()
            )),
        ],
        via: "the default location (ORT_DYLIB_PATH is not set)",
    })
}

fn existing(path: PathBuf, via: &'static str) -> Result<PathBuf> {
    if path.is_file() {
        Ok(path)
    } else {
        Err(Error::OrtNotFound {
            tried: vec![path],
            via,
        })
    }
}

/// The process-wide ONNX Runtime environment and the library it was loaded from.
#[derive(Clone)]
pub(crate) struct Runtime {
    pub(crate) environment: Environment,
    pub(crate) library: PathBuf,
}

static RUNTIME: Mutex<Option<Runtime>> = Mutex::new(None);

/// Loads ONNX Runtime (once per process) and creates the environment. Later calls return the
/// same runtime whatever `explicit` says: a process can only load one ONNX Runtime.
pub(crate) fn runtime(explicit: Option<&Path>) -> Result<Runtime> {
    let mut slot = RUNTIME.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(rt) = slot.as_ref() {
        return Ok(rt.clone());
    }
    let library = find_ort_library(explicit)?;
    let builder = ort::init_from(&library).map_err(|e| Error::OrtLoad {
        path: library.clone(),
        message: load_error_message(&e),
    })?;
    let environment = builder
        .with_name("ahp-runtime")
        .build()
        .map_err(|e| Error::OrtLoad {
            path: library.clone(),
            message: format!("cannot create the ONNX Runtime environment: {e}"),
        })?;
    log::info!(
        "ahp-runtime: loaded ONNX Runtime from {}",
        library.display()
    );
    let rt = Runtime {
        environment,
        library,
    };
    *slot = Some(rt.clone());
    Ok(rt)
}

fn load_error_message(e: &ort::LoadDynamicError) -> String {
    match e {
        ort::LoadDynamicError::BadVersion { version_str, .. } => format!(
            "it is ONNX Runtime {version_str}, older than the oldest supported version {MIN_ORT_VERSION}"
        ),
        other => other.to_string(),
    }
}

/// The path of the ONNX Runtime library this process loaded, if it loaded one.
pub fn loaded_ort_library() -> Option<PathBuf> {
    RUNTIME
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .as_ref()
        .map(|rt| rt.library.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_versioned_library_is_picked() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        for name in [
            "libonnxruntime.so.1.9.0",
            "libonnxruntime.so.1.32.0",
            "libonnxruntime.so.1.24.1",
            "libonnxruntime_providers_shared.so",
            "libonnxruntime.so.x",
        ] {
            std::fs::write(dir.path().join(name), b"")?;
        }
        let found = newest_versioned_library(dir.path());
        assert_eq!(found, Some(dir.path().join("libonnxruntime.so.1.32.0")));
        Ok(())
    }

    #[test]
    fn missing_explicit_library_says_how_to_get_one() {
        let err = find_ort_library(Some(Path::new("/nonexistent/libonnxruntime.so")))
            .expect_err("missing");
        let msg = err.to_string();
        assert!(msg.contains("/nonexistent/libonnxruntime.so"), "{msg}");
        assert!(msg.contains("scripts/fetch-onnxruntime.sh"), "{msg}");
        assert!(msg.contains("ORT_DYLIB_PATH"), "{msg}");
    }

    #[test]
    fn too_old_library_names_the_versions() {
        let e = ort::LoadDynamicError::BadVersion {
            version_str: "1.20.1".to_string(),
            path: PathBuf::from("/x/libonnxruntime.so.1.20.1"),
        };
        let msg = load_error_message(&e);
        assert!(
            msg.contains("1.20.1") && msg.contains(MIN_ORT_VERSION),
            "{msg}"
        );
    }
}
