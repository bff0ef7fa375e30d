//! The one way ahp writes and reads files it does not own the life of.
//!
//! * [`write_atomic`] / [`TempFile`]: write next to the destination (same directory, so the
//!   rename is atomic), fsync, rename over it. A failed or killed write never leaves a partial
//!   destination: the old file stays byte-identical. Destinations that are not regular files
//!   (device nodes, FIFOs, directories, sockets) are refused, so `ahp-export ... /dev/full`
//!   cannot replace a device node. A symlink destination is followed: its target is replaced
//!   (when that target is a regular file or does not exist yet), the link stays.
//! * Temporary files are named `.NAME.PID.tmp`; a writer first removes the ones of the same
//!   destination left by processes that no longer run (after `kill -9`), on Linux where it can
//!   tell.
//! * [`read_regular`]: reads a regular file with a size cap; FIFOs and device nodes are refused
//!   before they are opened (opening a FIFO blocks; `/dev/zero` never ends).

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::error::{Result, SpecError};

/// A file that is deleted when dropped unless [`TempFile::persist`] moved it into place.
#[derive(Debug)]
pub struct TempFile {
    path: PathBuf,
    dest: PathBuf,
    done: bool,
}

impl TempFile {
    /// A temporary path next to `dest` (resolved through symlinks), after checking that `dest`
    /// is absent or a regular file and that its directory exists. Stale temporary files of the
    /// same destination left by dead processes are removed.
    pub fn next_to(dest: &Path) -> Result<Self> {
        let dest = resolve_destination(dest)?;
        let name = file_name(&dest)?;
        let dir = parent_dir(&dest);
        if !dir.is_dir() {
            return Err(SpecError::file(&dir, "output directory does not exist"));
        }
        remove_stale_temps(&dir, &name);
        Ok(Self {
            path: dir.join(format!(".{name}.{}.tmp", std::process::id())),
            dest,
            done: false,
        })
    }

    /// The temporary path (write the content here).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Flushes the temporary file to disk and renames it over the destination given to
    /// [`TempFile::next_to`].
    pub fn persist(mut self) -> Result<()> {
        let io = |e: std::io::Error| write_error(&self.dest, &self.path, "sync", e);
        // A writable handle: Windows refuses to flush a read-only one.
        File::options()
            .write(true)
            .open(&self.path)
            .and_then(|f| f.sync_all())
            .map_err(io)?;
        // The destination may have changed kind since `next_to` (checked again just before).
        check_destination_kind(&self.dest)?;
        std::fs::rename(&self.path, &self.dest).map_err(|e| {
            SpecError::file(
                &self.dest,
                format!("cannot move {} here: {e}", self.path.display()),
            )
        })?;
        self.done = true;
        sync_dir(&parent_dir(&self.dest));
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Writes `bytes` to `path` atomically (see the module documentation).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = TempFile::next_to(path)?;
    // Truncate, not create_new: a temporary file of a killed process whose PID came back (a
    // container's PID 1) is ours to overwrite.
    let mut f = File::options()
        .write(true)
        .create(true)
        .truncate(true)
        .open(tmp.path())
        .map_err(|e| write_error(path, tmp.path(), "create", e))?;
    f.write_all(bytes)
        .map_err(|e| write_error(path, tmp.path(), "write", e))?;
    drop(f);
    tmp.persist()
}

/// A failed write, naming the destination first (the temporary file is gone by then).
fn write_error(dest: &Path, tmp: &Path, action: &str, e: std::io::Error) -> SpecError {
    SpecError::file(
        dest,
        format!(
            "cannot {action} it (through the temporary {}): {e}",
            tmp.display()
        ),
    )
}

/// Reads a whole regular file of at most `max_bytes` bytes. Non-regular files (FIFOs, device
/// nodes, directories) and larger files are refused with an error naming the file and the limit.
pub fn read_regular(path: &Path, max_bytes: u64) -> Result<Vec<u8>> {
    let meta = regular_metadata(path)?;
    if meta.len() > max_bytes {
        return Err(too_large(path, meta.len(), max_bytes));
    }
    let file = File::open(path).map_err(|source| SpecError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    // The size may change between the check and the read: never read more than the cap.
    let mut bytes = Vec::new();
    file.take(max_bytes + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| SpecError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    if bytes.len() as u64 > max_bytes {
        return Err(too_large(path, bytes.len() as u64, max_bytes));
    }
    Ok(bytes)
}

/// Checks that `path` is a regular file (following symlinks), without opening it.
pub fn check_regular(path: &Path) -> Result<()> {
    regular_metadata(path).map(drop)
}

/// The metadata of `path` (following symlinks) if it is a regular file.
fn regular_metadata(path: &Path) -> Result<std::fs::Metadata> {
    let meta = std::fs::metadata(path).map_err(|source| SpecError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    if meta.is_file() {
        Ok(meta)
    } else {
        Err(SpecError::file(path, not_regular(&meta)))
    }
}

fn too_large(path: &Path, len: u64, max: u64) -> SpecError {
    SpecError::file(
        path,
        format!("file is larger than the limit of {max} bytes ({len} bytes)"),
    )
}

/// What a non-regular file is, for error messages.
fn not_regular(meta: &std::fs::Metadata) -> String {
    let kind = if meta.is_dir() {
        "a directory"
    } else {
        special_kind(meta)
    };
    format!("not a regular file ({kind})")
}

#[cfg(unix)]
fn special_kind(meta: &std::fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "a special file"
    }
}

#[cfg(not(unix))]
fn special_kind(_meta: &std::fs::Metadata) -> &'static str {
    "a special file"
}

/// The path a write to `dest` replaces: `dest`, or the target of the symlink chain at `dest`.
fn resolve_destination(dest: &Path) -> Result<PathBuf> {
    let resolved = match std::fs::symlink_metadata(dest) {
        Ok(m) if m.file_type().is_symlink() => match std::fs::canonicalize(dest) {
            Ok(target) => target,
            // A dangling link: the file it names is created.
            Err(_) => {
                let target = std::fs::read_link(dest).map_err(|source| SpecError::Io {
                    path: dest.to_path_buf(),
                    source,
                })?;
                parent_dir(dest).join(target)
            }
        },
        _ => dest.to_path_buf(),
    };
    check_destination_kind(&resolved)?;
    Ok(resolved)
}

fn check_destination_kind(dest: &Path) -> Result<()> {
    match std::fs::metadata(dest) {
        Ok(m) if !m.is_file() => Err(SpecError::file(
            dest,
            format!(
                "refusing to replace it: {} (write to a regular file path)",
                not_regular(&m)
            ),
        )),
        _ => Ok(()),
    }
}

fn file_name(dest: &Path) -> Result<String> {
    dest.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| SpecError::file(dest, "not a file path"))
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Removes `.NAME.PID.tmp` files in `dir` whose process no longer runs (Linux only: elsewhere
/// liveness cannot be told, and nothing is removed).
fn remove_stale_temps(dir: &Path, name: &str) {
    if !Path::new("/proc/self").exists() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let prefix = format!(".{name}.");
    for entry in entries.flatten() {
        let file = entry.file_name();
        let Some(pid) = file
            .to_str()
            .and_then(|f| f.strip_prefix(&prefix))
            .and_then(|rest| rest.strip_suffix(".tmp"))
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        let alive = Path::new("/proc").join(pid.to_string()).exists();
        if !alive && entry.file_type().is_ok_and(|t| t.is_file()) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Makes a rename durable (best effort: not every platform can open a directory).
fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// sha256 of a file's contents, lowercase hex (read in 1 MiB chunks).
pub fn sha256_file(path: &Path) -> Result<String> {
    use sha2::Digest;
    let mut file =
        File::open(path).map_err(|e| SpecError::file(path, format!("cannot open: {e}")))?;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| SpecError::file(path, format!("cannot read: {e}")))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(format!("{:x}", hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ahp-files-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("tmpdir");
        dir
    }

    #[test]
    fn writes_and_replaces() -> Result<()> {
        let dir = tmpdir("write");
        let p = dir.join("a.json");
        write_atomic(&p, b"one")?;
        write_atomic(&p, b"two")?;
        assert_eq!(std::fs::read(&p).ok(), Some(b"two".to_vec()));
        let left: Vec<_> = std::fs::read_dir(&dir).expect("ls").flatten().collect();
        assert_eq!(left.len(), 1, "no temporary file left");
        Ok(())
    }

    #[test]
    fn refuses_directories_and_devices() {
        let dir = tmpdir("refuse");
        let err = write_atomic(&dir, b"x").expect_err("directory");
        assert!(err.to_string().contains("not a regular file"), "{err}");
        if Path::new("/dev/null").exists() {
            let err = write_atomic(Path::new("/dev/null"), b"x").expect_err("device");
            assert!(err.to_string().contains("character device"), "{err}");
        }
        let err = write_atomic(&dir.join("missing/x"), b"x").expect_err("no dir");
        assert!(err.to_string().contains("does not exist"), "{err}");
    }

    #[cfg(unix)]
    #[test]
    fn follows_symlinks_and_keeps_them() -> Result<()> {
        let dir = tmpdir("link");
        let target = dir.join("target.bin");
        std::fs::write(&target, b"old").expect("write");
        let link = dir.join("link.bin");
        std::os::unix::fs::symlink(&target, &link).expect("symlink");
        write_atomic(&link, b"new")?;
        assert!(std::fs::symlink_metadata(&link)
            .expect("meta")
            .file_type()
            .is_symlink());
        assert_eq!(std::fs::read(&target).ok(), Some(b"new".to_vec()));
        Ok(())
    }

    #[test]
    fn stale_temporaries_of_dead_processes_are_removed() -> Result<()> {
        if !Path::new("/proc/self").exists() {
            return Ok(());
        }
        let dir = tmpdir("stale");
        // PIDs above the kernel's pid_max (4194304 at most) never run.
        let stale = dir.join(".m.onnx.4294967295.tmp");
        std::fs::write(&stale, b"partial").expect("write");
        let other = dir.join(".other.onnx.4294967295.tmp");
        std::fs::write(&other, b"partial").expect("write");
        write_atomic(&dir.join("m.onnx"), b"model")?;
        assert!(
            !stale.exists(),
            "stale temp of the same destination removed"
        );
        assert!(other.exists(), "another destination's temp is left alone");
        Ok(())
    }

    #[test]
    fn reads_are_capped_and_regular_only() {
        let dir = tmpdir("read");
        let p = dir.join("f");
        std::fs::write(&p, [7u8; 100]).expect("write");
        assert_eq!(read_regular(&p, 100).ok().map(|b| b.len()), Some(100));
        let err = read_regular(&p, 99).expect_err("too large");
        assert!(err.to_string().contains("limit of 99 bytes"), "{err}");
        let err = read_regular(&dir, 1 << 20).expect_err("dir");
        assert!(err.to_string().contains("a directory"), "{err}");
        if Path::new("/dev/zero").exists() {
            let err = read_regular(Path::new("/dev/zero"), 1 << 20).expect_err("device");
            assert!(err.to_string().contains("character device"), "{err}");
        }
    }
}
