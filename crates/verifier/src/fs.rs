//! Reading a verifier file: bounded, and never hanging on a FIFO put in its place.

use std::fs::{self, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::error::{Error, Result};

/// Largest verifier file read (about 200 bytes per key).
pub const MAX_VERIFIER_BYTES: u64 = 256 * 1024 * 1024;

/// The bytes of the verifier file at `path` and the metadata of the very file read (a
/// watcher records the identity of exactly the bytes it parsed).
///
/// # Errors
/// [`Error::Io`] when it cannot be opened or read, or is not a regular file;
/// [`Error::Invalid`] when it is larger than [`MAX_VERIFIER_BYTES`].
pub(crate) fn read_verifier_file(path: &Path) -> Result<(Vec<u8>, fs::Metadata)> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    let meta = file.metadata().map_err(|e| Error::io(path, e))?;
    if !meta.is_file() {
        let e = io::Error::new(
            io::ErrorKind::InvalidInput,
            "verifier file is not a regular file",
        );
        return Err(Error::io(path, e));
    }
    let shown = || crate::text::escape_controls(&path.to_string_lossy());
    let max = MAX_VERIFIER_BYTES;
    if meta.len() > max {
        return Err(Error::invalid(format!(
            "{} is {} bytes, more than the {max} bytes a verifier file may have; it is not a \
             verifier file",
            shown(),
            meta.len()
        )));
    }
    let mut buf = Vec::with_capacity(meta.len() as usize);
    file.take(max + 1)
        .read_to_end(&mut buf)
        .map_err(|e| Error::io(path, e))?;
    if buf.len() as u64 > max {
        return Err(Error::invalid(format!(
            "{} grew beyond {max} bytes while being read",
            shown()
        )));
    }
    Ok((buf, meta))
}
