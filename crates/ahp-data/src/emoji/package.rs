//! The files of a package: read from its verified tarball bytes (`package/...` entries of the
//! `.tgz`), or from a directory holding the package unpacked (`DIR/package/...`, e.g. a small
//! committed sample). Reads are bounded per file and in total.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::error::{DataError, Result};

/// Largest file taken from a package (the biggest `icons.json` is ~30 MB).
const MAX_FILE_BYTES: u64 = 128 << 20;

/// Most bytes taken from one package in all.
const MAX_TOTAL_BYTES: u64 = 512 << 20;

/// Where a package's files are.
#[derive(Debug, Clone)]
pub enum PackageSource {
    /// An unpacked package directory.
    Dir(PathBuf),
    /// A tarball's verified bytes, with its path for errors.
    Tarball(PathBuf, std::sync::Arc<Vec<u8>>),
}

/// The files of one package that a designer needs, by path inside the package
/// (`package/icons.json`, `package/color/svg/1F415.svg`, ...).
#[derive(Debug, Default)]
pub struct PackageFiles {
    /// Where they came from (for errors).
    pub source: PathBuf,
    files: BTreeMap<String, Vec<u8>>,
}

impl PackageFiles {
    /// Reads the files for which `wanted(path)` holds.
    pub fn read(source: &PackageSource, wanted: impl Fn(&str) -> bool) -> Result<Self> {
        let (path, files) = match source {
            PackageSource::Dir(dir) => (dir, read_dir(dir, &wanted)?),
            PackageSource::Tarball(path, bytes) => (path, read_tarball(path, bytes, &wanted)?),
        };
        Ok(Self {
            source: path.clone(),
            files,
        })
    }

    /// `path` parsed as JSON, or `None` when the package has no such file (a file that is
    /// there but does not parse is an error).
    pub fn json_if_present<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<Option<T>> {
        if self.files.contains_key(path) {
            self.json(path).map(Some)
        } else {
            Ok(None)
        }
    }

    /// The bytes of `path`, or an error naming the package source and the path.
    pub fn get(&self, path: &str) -> Result<&[u8]> {
        self.files.get(path).map(Vec::as_slice).ok_or_else(|| {
            DataError::package(
                self.source.display().to_string(),
                format!("has no file `{path}`"),
            )
        })
    }

    /// `path` parsed as JSON.
    pub fn json<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T> {
        serde_json::from_slice(self.get(path)?).map_err(|e| {
            DataError::package(
                self.source.display().to_string(),
                format!("`{path}` is not the expected JSON: {e}"),
            )
        })
    }
}

/// Fails once a package has given more than [`MAX_TOTAL_BYTES`].
fn check_budget(source: &Path, total: u64) -> Result<()> {
    if total > MAX_TOTAL_BYTES {
        return Err(DataError::package(
            source.display().to_string(),
            format!("holds more than {MAX_TOTAL_BYTES} bytes of wanted files"),
        ));
    }
    Ok(())
}

fn read_tarball(
    path: &Path,
    bytes: &[u8],
    wanted: &dyn Fn(&str) -> bool,
) -> Result<BTreeMap<String, Vec<u8>>> {
    let bad = |e: std::io::Error| {
        DataError::package(
            path.display().to_string(),
            format!("not a readable .tgz: {e}"),
        )
    };
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(bytes));
    let (mut files, mut total) = (BTreeMap::new(), 0u64);
    for entry in archive.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let name = entry.path().map_err(bad)?.to_string_lossy().into_owned();
        if !entry.header().entry_type().is_file() || !wanted(&name) {
            continue;
        }
        if entry.size() > MAX_FILE_BYTES {
            return Err(DataError::package(
                path.display().to_string(),
                format!("`{name}` is larger than {MAX_FILE_BYTES} bytes"),
            ));
        }
        total += entry.size();
        check_budget(path, total)?;
        let mut data = Vec::with_capacity(entry.size() as usize);
        entry.read_to_end(&mut data).map_err(bad)?;
        files.insert(name, data);
    }
    Ok(files)
}

fn read_dir(root: &Path, wanted: &dyn Fn(&str) -> bool) -> Result<BTreeMap<String, Vec<u8>>> {
    let (mut files, mut total) = (BTreeMap::new(), 0u64);
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries =
            std::fs::read_dir(&dir).map_err(|e| DataError::io(&dir, "read directory", e))?;
        for entry in entries {
            let entry = entry.map_err(|e| DataError::io(&dir, "read directory", e))?;
            let kind = entry
                .file_type()
                .map_err(|e| DataError::io(entry.path(), "stat", e))?;
            let path = entry.path();
            let rel = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .to_string_lossy()
                .replace('\\', "/");
            if kind.is_dir() {
                stack.push(path);
            } else if wanted(&rel) {
                // FIFOs, devices and links to them are refused here, by name
                let bytes = ahp_spec::files::read_regular(&path, MAX_FILE_BYTES)?;
                total += bytes.len() as u64;
                check_budget(root, total)?;
                files.insert(rel, bytes);
            }
        }
    }
    Ok(files)
}
