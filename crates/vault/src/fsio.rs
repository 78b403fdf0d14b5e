//! Files on disk: bounded reads, the advisory lock, and atomic replacement.
//!
//! Invariant: a file this module writes is either the old one or the complete new one,
//! never a mixture: the new content goes to a 0600 temporary file in the same directory,
//! is fsynced, renamed over the target, and the directory is fsynced.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::{IoError, ReadError};

/// Reads a regular file of at most `max` bytes; `Ok(None)` if it does not exist.
///
/// The file is opened without blocking (a FIFO cannot stall us), its type is checked on
/// the open handle, and the read is bounded with `take`, so a file that grows between
/// checks still cannot make us read more than `max + 1` bytes.
///
/// # Errors
/// [`ReadError::Io`] for I/O problems or a non-regular file; [`ReadError::TooLarge`]
/// when the file is larger than `max`.
pub fn read_bounded(path: &Path, max: u64, what: &str) -> Result<Option<Vec<u8>>, ReadError> {
    Ok(read_bounded_with_meta(path, max, what)?.map(|(bytes, _)| bytes))
}

/// Opens `path` to read, as every read of a file the tool keeps does: non-blocking, so a
/// FIFO put in its place cannot hang us. `None` when nothing is there.
///
/// # Errors
/// [`IoError`] when it cannot be opened.
pub fn open_to_read(path: &Path) -> Result<Option<fs::File>, IoError> {
    match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
    {
        Ok(f) => Ok(Some(f)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(IoError::new("read", path, e)),
    }
}

/// As [`read_bounded`], also returning the metadata of the file that was read, taken from
/// the open handle: a reader that watches a path replaced by rename records the identity
/// (device, inode, mtime, size) of exactly the bytes it parsed, not of a later file.
///
/// # Errors
/// As [`read_bounded`].
pub fn read_bounded_with_meta(
    path: &Path,
    max: u64,
    what: &str,
) -> Result<Option<(Vec<u8>, fs::Metadata)>, ReadError> {
    let Some(file) = open_to_read(path)? else {
        return Ok(None);
    };
    let meta = file.metadata().map_err(|e| IoError::new("read", path, e))?;
    if !meta.is_file() {
        return Err(ReadError::Io(IoError::new(
            "read",
            path,
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{what} is not a regular file"),
            ),
        )));
    }
    if meta.len() > max {
        return Err(ReadError::TooLarge {
            path: path.to_owned(),
            what: what.to_owned(),
            len: Some(meta.len()),
            max,
        });
    }
    let mut buf = Vec::with_capacity(meta.len() as usize);
    file.take(max + 1)
        .read_to_end(&mut buf)
        .map_err(|e| IoError::new("read", path, e))?;
    if buf.len() as u64 > max {
        return Err(ReadError::TooLarge {
            path: path.to_owned(),
            what: what.to_owned(),
            len: None,
            max,
        });
    }
    Ok(Some((buf, meta)))
}

/// The temporary files of [`atomic_write`] are named `.<name>.tmp-<12 hex>`.
const TMP_INFIX: &str = ".tmp-";
const TMP_HEX: usize = 12;

fn tmp_prefix(name: &std::ffi::OsStr) -> std::ffi::OsString {
    let mut p = std::ffi::OsString::from(".");
    p.push(name);
    p.push(TMP_INFIX);
    p
}

/// Writes `bytes` to `path` atomically with mode 0600.
///
/// Callers hold the [`Lock`] on `path`: a writer killed between creating its temporary
/// file and the rename leaves that file behind, and the next [`Lock::acquire`] on the
/// same path removes it (it may hold a key, as the env file's does).
///
/// # Errors
/// [`IoError`] naming the path; the target is left as it was.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> Result<(), IoError> {
    write_replacing(path, &mut |f| f.write_all(bytes), None)
}

/// As [`atomic_write`], the content written by `fill` into the temporary file as it is
/// produced (a large vault is not held whole in memory as text).
///
/// # Errors
/// As [`atomic_write`], and `fill`'s.
pub fn atomic_write_with(
    path: &Path,
    fill: &mut dyn FnMut(&mut dyn Write) -> io::Result<()>,
) -> Result<(), IoError> {
    write_replacing(path, &mut |f| fill(f), None)
}

/// As [`atomic_write`], but a file that already exists keeps its permission bits and,
/// where the process may set them, its owner and group: a `.env` that a server running as
/// another user reads must stay readable to it. A new file gets mode 0600.
///
/// # Errors
/// As [`atomic_write`].
pub fn atomic_write_keeping_mode(path: &Path, bytes: &[u8]) -> Result<(), IoError> {
    // Write bits for group and others are dropped: whoever can write the file chooses the
    // key a server accepts.
    let keep = fs::metadata(path)
        .ok()
        .map(|m| (m.mode() & 0o7755, m.uid(), m.gid()));
    write_replacing(path, &mut |f| f.write_all(bytes), keep)
}

fn write_replacing(
    path: &Path,
    fill: &mut dyn FnMut(&mut File) -> io::Result<()>,
    keep: Option<(u32, u32, u32)>,
) -> Result<(), IoError> {
    let dir = parent_dir(path);
    let name = path.file_name().ok_or_else(|| {
        IoError::new("write", path, io::Error::other("the path has no file name"))
    })?;
    let mut tmp_name = tmp_prefix(name);
    tmp_name.push(crate::rng::hex(&crate::rng::bytes(TMP_HEX / 2)));
    let tmp = dir.join(tmp_name);
    let result = (|| -> io::Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_CLOEXEC)
            .open(&tmp)?;
        fill(&mut f)?;
        if let Some((mode, uid, gid)) = keep {
            // Only now, complete and about to replace the old file, does the temporary file
            // take the old one's mode: a writer killed earlier leaves a 0600 file. Owner
            // and group are best effort (only root may give a file away).
            let _ = std::os::unix::fs::fchown(&f, Some(uid), Some(gid));
            f.set_permissions(fs::Permissions::from_mode(mode))?;
        }
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)?;
        sync_dir(&dir)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(IoError::new("write", path, e));
    }
    Ok(())
}

/// The directory a path is in (`.` for a bare file name).
pub fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Creates `dir` and any missing parents with mode 0700.
///
/// # Errors
/// [`IoError`] naming the directory.
pub fn ensure_dir(dir: &Path) -> Result<(), IoError> {
    if dir.as_os_str().is_empty() || dir.is_dir() {
        return Ok(());
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| IoError::new("create directory", dir, e))
}

/// Creates the parent directory of `path` (mode 0700) if it is missing.
///
/// # Errors
/// As [`ensure_dir`].
pub fn ensure_parent(path: &Path) -> Result<(), IoError> {
    ensure_dir(&parent_dir(path))
}

/// Whether two paths name the same file: the same inode when both exist, otherwise the
/// same canonical directory and file name.
pub fn same_file(a: &Path, b: &Path) -> bool {
    if let (Ok(x), Ok(y)) = (fs::metadata(a), fs::metadata(b)) {
        return x.dev() == y.dev() && x.ino() == y.ino();
    }
    let canon = |p: &Path| {
        fs::canonicalize(parent_dir(p))
            .ok()
            .map(|d| d.join(p.file_name().unwrap_or_default()))
    };
    matches!((canon(a), canon(b)), (Some(x), Some(y)) if x == y)
}

/// Whether the file exists and can be read by group or others.
pub fn readable_by_others(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o044 != 0)
}

/// Whether the file (or directory) exists and can be written by group or others: whoever
/// can write `.env` or a verifier chooses which key a server accepts.
pub fn writable_by_others(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o022 != 0)
}

/// Removes the group and other write bits of an existing file.
///
/// # Errors
/// [`IoError`] naming the file.
pub fn drop_write_for_others(path: &Path) -> Result<(), IoError> {
    let mode = fs::metadata(path)
        .map_err(|e| IoError::new("inspect", path, e))?
        .permissions()
        .mode();
    fs::set_permissions(path, fs::Permissions::from_mode(mode & 0o7755))
        .map_err(|e| IoError::new("restrict the permissions of", path, e))
}

/// The effective user id of this process.
pub fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    #[allow(unsafe_code)]
    unsafe {
        libc::geteuid()
    }
}

/// Refuses to write secrets (a key, a verifier) into `target` when it belongs to another
/// user and sits in a directory others may write: there, that user may have planted the
/// file to read what we write into it (root running `create -u` in a shared directory
/// would hand them the key). A file of ours, or one in a directory only its owner
/// controls, is fine.
///
/// # Errors
/// [`IoError`] (`PermissionDenied`) saying why, naming the file and its owner.
pub fn refuse_foreign_file_in_shared_dir(target: &Path, what: &str) -> Result<(), IoError> {
    let Ok(meta) = fs::symlink_metadata(target) else {
        return Ok(());
    };
    let me = euid();
    let dir = parent_dir(target);
    if meta.uid() != me && writable_by_others(&dir) {
        return Err(IoError::with_context(
            format!(
                "write the {what} {}: it belongs to user {} and its directory {} is writable \
                 by others, so that user could have planted it to read what is written; remove \
                 it or use a path in a directory only you control",
                crate::display::path(target),
                meta.uid(),
                crate::display::path(&dir)
            ),
            io::Error::from(io::ErrorKind::PermissionDenied),
        ));
    }
    Ok(())
}

/// The file's permission bits, if it exists.
pub fn mode(path: &Path) -> Option<u32> {
    fs::metadata(path).ok().map(|m| m.mode() & 0o7777)
}

/// An exclusive advisory lock on a sidecar file, released on drop.
#[derive(Debug)]
pub struct Lock {
    _file: File,
}

/// How long to wait for another process's lock: `MCP_KEY_LOCK_TIMEOUT` seconds, default 30.
pub fn lock_timeout() -> Duration {
    std::env::var("MCP_KEY_LOCK_TIMEOUT")
        .ok()
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0 && *s <= 86_400.0)
        .map(Duration::from_secs_f64)
        .unwrap_or(Duration::from_secs(30))
}

impl Lock {
    /// Takes the lock on `<target>.lock`, waiting up to `timeout`; `on_wait` is called
    /// once if the lock is busy, so the caller can say that it is waiting.
    ///
    /// # Errors
    /// [`IoError`] when the lock file cannot be opened, or with `TimedOut` when another
    /// process holds the lock for longer than `timeout`.
    pub fn acquire(
        target: &Path,
        timeout: Duration,
        on_wait: impl FnOnce(),
    ) -> Result<Lock, IoError> {
        let mut lock_path = target.as_os_str().to_owned();
        lock_path.push(".lock");
        let lock_path = PathBuf::from(lock_path);
        let file = open_lock_file(&lock_path)?;
        let start = Instant::now();
        let mut on_wait = Some(on_wait);
        let mut pause = Duration::from_millis(2);
        loop {
            match file.try_lock() {
                Ok(()) => {
                    remove_stale_temps(target);
                    return Ok(Lock { _file: file });
                }
                Err(fs::TryLockError::WouldBlock) => {}
                Err(fs::TryLockError::Error(e)) => {
                    return Err(IoError::new("lock", &lock_path, e));
                }
            }
            if let Some(f) = on_wait.take() {
                f();
            }
            if start.elapsed() >= timeout {
                return Err(IoError::with_context(
                    format!(
                        "lock {} (another mcp-key-manager has held it for {:.0?}; if no other \
                         process is running, raise MCP_KEY_LOCK_TIMEOUT or try again)",
                        crate::display::path(&lock_path),
                        timeout
                    ),
                    io::Error::from(io::ErrorKind::TimedOut),
                ));
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(50));
        }
    }
}

/// Opens (creating) a lock file: never through a symlink (a planted `keys.json.lock ->
/// /etc/x` would make root create that file), and only a regular file we may use.
fn open_lock_file(lock_path: &Path) -> Result<File, IoError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(lock_path)
        .map_err(|e| {
            let e = if e.raw_os_error() == Some(libc::ELOOP) {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "the lock file is a symbolic link; remove it",
                )
            } else {
                e
            };
            IoError::new("open the lock file", lock_path, e)
        })?;
    let meta = file
        .metadata()
        .map_err(|e| IoError::new("open the lock file", lock_path, e))?;
    if !meta.is_file() {
        return Err(IoError::new(
            "open the lock file",
            lock_path,
            io::Error::new(io::ErrorKind::InvalidInput, "it is not a regular file"),
        ));
    }
    if meta.uid() != euid() && writable_by_others(&parent_dir(lock_path)) {
        return Err(IoError::new(
            "open the lock file",
            lock_path,
            io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "it belongs to user {} in a directory others can write; remove it",
                    meta.uid()
                ),
            ),
        ));
    }
    Ok(file)
}

/// Removes the temporary files that writers of `target` killed mid-write left behind.
/// Only the holder of `target`'s lock may call it: every writer holds that lock while its
/// temporary file exists, so any such file found now is stale. Best effort: a failure to
/// list or remove leaves the files, as before.
fn remove_stale_temps(target: &Path) {
    let Some(name) = target.file_name() else {
        return;
    };
    let prefix = tmp_prefix(name);
    let prefix = prefix.as_encoded_bytes();
    let Ok(entries) = fs::read_dir(parent_dir(target)) else {
        return;
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let n = file_name.as_encoded_bytes();
        let stale = n.len() == prefix.len() + TMP_HEX
            && n.starts_with(prefix)
            && n[prefix.len()..]
                .iter()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b));
        if stale && entry.file_type().is_ok_and(|t| t.is_file()) {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// Refuses to follow a link that another user may have planted: one in a directory others
/// can write, owned by neither us nor the directory's owner (the kernel's
/// `protected_symlinks` rule, which does not apply here because we follow links ourselves).
/// Through such a link, root running `use` in a shared directory would write a key into a
/// file of the planter's choosing.
fn refuse_planted_link(link: &Path, meta: &fs::Metadata) -> Result<(), IoError> {
    let dir = parent_dir(link);
    let Ok(d) = fs::metadata(&dir) else {
        return Ok(());
    };
    if d.permissions().mode() & 0o022 != 0 && meta.uid() != euid() && meta.uid() != d.uid() {
        return Err(IoError::with_context(
            format!(
                "follow the link {}: it belongs to user {} in the directory {}, which others \
                 can write, so it may have been planted to redirect what is written; remove it \
                 or use a path in a directory only you control",
                crate::display::path(link),
                meta.uid(),
                crate::display::path(&dir)
            ),
            io::Error::from(io::ErrorKind::PermissionDenied),
        ));
    }
    Ok(())
}

/// Follows a chain of symbolic links to the file they name. `path` itself may not exist
/// yet. A link whose target does not exist is refused rather than written through, unless
/// `dangling_ok` (the vault: a link made before the vault) and the target's directory exists.
///
/// # Errors
/// [`IoError`] for a loop, or a link whose target does not exist.
pub fn resolve_symlinks(path: &Path, dangling_ok: bool) -> Result<PathBuf, IoError> {
    let mut p = path.to_path_buf();
    for _ in 0..40 {
        match fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => {
                refuse_planted_link(&p, &m)?;
                let target =
                    fs::read_link(&p).map_err(|e| IoError::new("follow the link", &p, e))?;
                p = if target.is_absolute() {
                    target
                } else {
                    parent_dir(&p).join(target)
                };
            }
            Ok(_) => return Ok(p),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if p != path && !(dangling_ok && parent_dir(&p).is_dir()) {
                    return Err(IoError::new(
                        "follow the link",
                        path,
                        io::Error::new(
                            io::ErrorKind::NotFound,
                            format!(
                                "it points to {}, which does not exist",
                                crate::display::path(&p)
                            ),
                        ),
                    ));
                }
                return Ok(p);
            }
            Err(e) => return Err(IoError::new("inspect", &p, e)),
        }
    }
    Err(IoError::new(
        "follow the link",
        path,
        io::Error::other("too many levels of symbolic links"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_sets_mode() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        atomic_write(&p, b"one").unwrap();
        atomic_write(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(mode(&p), Some(0o600));
        assert_eq!(
            fs::read_dir(d.path()).unwrap().count(),
            1,
            "no temp file left"
        );
    }

    #[test]
    fn keeping_mode_keeps_an_existing_files_mode() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join(".env");
        atomic_write_keeping_mode(&p, b"new").unwrap();
        assert_eq!(mode(&p), Some(0o600), "a new file is private");
        fs::set_permissions(&p, fs::Permissions::from_mode(0o640)).unwrap();
        atomic_write_keeping_mode(&p, b"again").unwrap();
        assert_eq!(mode(&p), Some(0o640));
        assert_eq!(fs::read(&p).unwrap(), b"again");
        atomic_write(&p, b"vault").unwrap();
        assert_eq!(mode(&p), Some(0o600), "the vault is always private");
    }

    #[test]
    fn bounded_read_refuses_large_and_special_files() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        fs::write(&p, vec![b'x'; 100]).unwrap();
        assert!(read_bounded(&p, 100, "vault").unwrap().is_some());
        assert!(matches!(
            read_bounded(&p, 99, "vault"),
            Err(ReadError::TooLarge { .. })
        ));
        assert!(read_bounded(&d.path().join("none"), 10, "vault")
            .unwrap()
            .is_none());
        assert!(matches!(
            read_bounded(d.path(), 10, "vault"),
            Err(ReadError::Io(_))
        ));
    }

    #[test]
    fn taking_the_lock_removes_stale_temp_files_only() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("keys.json");
        atomic_write(&p, b"v").unwrap();
        let keep = [
            ".keys.json.tmp-backup",
            ".keys.json.tmp-0123456789abc",
            ".other.tmp-0123456789ab",
            "keys.json.tmp-0123456789ab",
        ];
        for n in keep
            .iter()
            .chain(&[".keys.json.tmp-0123456789ab", ".keys.json.tmp-ffffffffffff"])
        {
            fs::write(d.path().join(n), b"x").unwrap();
        }
        drop(Lock::acquire(&p, Duration::ZERO, || {}).unwrap());
        let mut left: Vec<String> = fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        let mut want: Vec<String> = keep.iter().map(|s| s.to_string()).collect();
        want.extend(["keys.json".to_string(), "keys.json.lock".to_string()]);
        want.sort();
        assert_eq!(left, want);
    }

    #[test]
    fn lock_times_out_while_held() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("v");
        let held = Lock::acquire(&p, Duration::ZERO, || {}).unwrap();
        let mut waited = false;
        let e = Lock::acquire(&p, Duration::from_millis(30), || waited = true).unwrap_err();
        assert!(waited);
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        drop(held);
        Lock::acquire(&p, Duration::ZERO, || {}).unwrap();
    }
}
