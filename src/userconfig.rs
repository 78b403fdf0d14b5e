//! The user's own configuration, kept out of every file that is shared: the vaults this
//! user has opened and trusts (`known_vaults`) and the commands run after a publish
//! (`hooks`). A vault, a verifier or a Redis value never holds either (git keeps hooks out
//! of the repository for the same reason).
//!
//! The directory is `MCP_KEY_MANAGER_CONFIG_DIR` if set, else
//! `$XDG_CONFIG_HOME/mcp-key-manager`, else `$HOME/.config/mcp-key-manager`. It is created
//! 0700, and refused when it is not a directory owned by this user or is writable by
//! others (whoever could write it could plant a hook or a trust record).

use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use mcp_key_vault::fsio;

/// The variable naming the configuration directory.
pub const ENV_CONFIG_DIR: &str = "MCP_KEY_MANAGER_CONFIG_DIR";

/// Largest configuration file read.
const MAX_FILE: u64 = 4 << 20;

/// The configuration directory, when one can be named (no variable and no home: none).
pub fn dir() -> Option<PathBuf> {
    let var = |name: &str| {
        std::env::var_os(name)
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
    };
    var(ENV_CONFIG_DIR)
        .or_else(|| var("XDG_CONFIG_HOME").map(|x| x.join("mcp-key-manager")))
        .or_else(|| var("HOME").map(|h| h.join(".config").join("mcp-key-manager")))
}

/// The directory, checked: ours and not writable by others. `None` when it cannot be
/// named or does not exist (and `create` is false).
///
/// # Errors
/// [`Error::Io`] when it cannot be created, or is not a directory of ours that only we can
/// write.
pub fn checked_dir(create: bool) -> Result<Option<PathBuf>> {
    let Some(d) = dir() else { return Ok(None) };
    match std::fs::symlink_metadata(&d) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if !create {
                return Ok(None);
            }
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&d)
                .map_err(|e| Error::io("create the configuration directory", &d, e))?;
        }
        Err(e) => return Err(Error::io("inspect", &d, e)),
        Ok(_) => {}
    }
    let meta = std::fs::symlink_metadata(&d).map_err(|e| Error::io("inspect", &d, e))?;
    let why = if !meta.file_type().is_dir() {
        Some("it is not a directory")
    } else if meta.uid() != fsio::euid() {
        Some("it belongs to another user")
    } else if meta.mode() & 0o022 != 0 {
        Some("others can write it")
    } else {
        None
    };
    match why {
        Some(why) => Err(Error::Io {
            context: format!(
                "use the configuration directory {} ({why}; set {ENV_CONFIG_DIR} to a \
                 directory only you control)",
                mcp_key_vault::display::path(&d)
            ),
            source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        }),
        None => Ok(Some(d)),
    }
}

/// Reads the configuration file `name`; `None` when there is no directory or no file.
///
/// # Errors
/// As [`checked_dir`]; [`Error::Io`] when the file cannot be read, belongs to another user
/// or is writable by others.
pub fn read(name: &str) -> Result<Option<Vec<u8>>> {
    let Some(d) = checked_dir(false)? else {
        return Ok(None);
    };
    let path = d.join(name);
    refuse_foreign(&path)?;
    Ok(fsio::read_bounded(&path, MAX_FILE, "configuration file")?)
}

/// Read-modify-write of the configuration file `name` under its lock: `change` gets the
/// current bytes (`None`: no file) and returns the new ones (`None`: leave it as it is).
///
/// # Errors
/// As [`checked_dir`], or when the file cannot be written; `change`'s own error.
pub fn update(
    name: &str,
    change: impl FnOnce(Option<&[u8]>) -> Result<Option<Vec<u8>>>,
) -> Result<PathBuf> {
    let d = checked_dir(true)?.ok_or_else(|| no_dir(name))?;
    let path = d.join(name);
    let _lock = fsio::Lock::acquire(&path, fsio::lock_timeout(), || {})?;
    refuse_foreign(&path)?;
    let now = fsio::read_bounded(&path, MAX_FILE, "configuration file")?;
    if let Some(new) = change(now.as_deref())? {
        fsio::atomic_write(&path, &new)?;
    }
    Ok(path)
}

fn no_dir(name: &str) -> Error {
    Error::usage(format!(
        "there is no configuration directory to keep {name} in: set {ENV_CONFIG_DIR}, \
         XDG_CONFIG_HOME or HOME"
    ))
}

fn refuse_foreign(path: &Path) -> Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.uid() != fsio::euid() || m.mode() & 0o022 != 0 || !m.file_type().is_file() => {
            Err(Error::Io {
                context: format!(
                    "read {} (it is not a regular file of yours that only you can write)",
                    mcp_key_vault::display::path(path)
                ),
                source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
            })
        }
        _ => Ok(()),
    }
}
