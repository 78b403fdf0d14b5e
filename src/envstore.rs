//! The env file on disk: reading it, its lock, and replacing it. What the text means is
//! [`crate::envfile`]'s business; this module only moves bytes safely.
//!
//! Invariant: the env file is changed only under its lock (`<target>.lock`, taken inside
//! the vault's lock when both are held), after re-reading it, with one atomic replace
//! that keeps the file's mode; symlinks are followed to their target, which must exist.

use std::path::{Path, PathBuf};

use crate::envfile::{self, Analysis};

/// The variables this tool writes and checks.
pub const VARS: [&str; 2] = ["MCP_API_KEY", "API_KEY_REQUIRED"];
use crate::error::{Error, Result};
use mcp_key_vault::error::ReadError;
use mcp_key_vault::fsio::{self, Lock};

/// Largest env file read.
pub const MAX_ENV_BYTES: u64 = 1024 * 1024;

/// The env file at one path (as given; links are resolved when it is used).
#[derive(Debug, Clone)]
pub struct EnvStore {
    path: PathBuf,
}

impl EnvStore {
    /// The env file at `path`.
    pub fn new(path: PathBuf) -> Self {
        EnvStore { path }
    }

    /// The path as given.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file that is read and written: `path` with symlinks followed.
    ///
    /// # Errors
    /// [`Error::Io`] for a dangling link or a loop.
    pub fn target(&self) -> Result<PathBuf> {
        Ok(fsio::resolve_symlinks(&self.path, false)?)
    }

    /// Reads the env file, if it exists, as python-dotenv loads it, with every place
    /// where the common loaders would disagree (see docs/envfile.md).
    ///
    /// # Errors
    /// [`Error::Io`] when it cannot be read or is larger than [`MAX_ENV_BYTES`].
    pub fn read(&self) -> Result<Option<Analysis>> {
        read_at(&self.target()?)
    }

    /// Whether a change to the env file would be refused outright (see [`EnvStore::lock`]),
    /// checked before anything else changes.
    ///
    /// # Errors
    /// As [`EnvStore::lock`], without taking the lock.
    pub fn check_writable(&self, vault: &Path) -> Result<()> {
        let target = self.target()?;
        refuse_vault(&target, vault, "env file")?;
        fsio::refuse_foreign_file_in_shared_dir(&target, "env file")?;
        refuse_ambiguous(&target, read_bytes(&target)?.as_deref())
    }

    /// Takes the env file's lock for a change. Refuses a target that is the vault itself
    /// (a key appended to the vault would sit there in clear), and one that another user
    /// could have planted (see [`fsio::refuse_foreign_file_in_shared_dir`]).
    ///
    /// # Errors
    /// [`Error::Usage`] for the vault itself, [`Error::Io`] otherwise.
    pub fn lock(&self, vault: &Path, on_wait: impl FnOnce()) -> Result<EnvLock> {
        let target = self.target()?;
        refuse_vault(&target, vault, "env file")?;
        fsio::refuse_foreign_file_in_shared_dir(&target, "env file")?;
        let lock = Lock::acquire(&target, fsio::lock_timeout(), on_wait)?;
        Ok(EnvLock {
            target,
            _lock: lock,
        })
    }
}

/// The env file, locked for a change.
#[derive(Debug)]
pub struct EnvLock {
    target: PathBuf,
    _lock: Lock,
}

impl EnvLock {
    /// The file being changed (links followed).
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Reads the file under the lock.
    ///
    /// # Errors
    /// As [`EnvStore::read`].
    pub fn read(&self) -> Result<Option<Analysis>> {
        read_at(&self.target)
    }

    /// Sets `assignments`, keeping every other byte, the mode and (where allowed) the owner.
    /// A file that the loaders would read ambiguously for either variable of [`VARS`] is
    /// not touched (every writer follows the rule `check` reports `ENV_AMBIGUOUS` by), and
    /// the result is re-read to confirm python-dotenv loads exactly the new values.
    ///
    /// # Errors
    /// [`Error::Failed`] for an ambiguous file, [`Error::Io`] when it cannot be written.
    pub fn set(&self, assignments: &[(&str, &str)]) -> Result<()> {
        fsio::refuse_foreign_file_in_shared_dir(&self.target, "env file")?;
        let old = read_bytes(&self.target)?;
        refuse_ambiguous(&self.target, old.as_deref())?;
        let new = envfile::apply_checked(old.as_deref().unwrap_or(b""), assignments)
            .map_err(|e| refusal(&self.target, &e))?;
        let old = zeroize::Zeroizing::new(old.unwrap_or_default());
        let new = zeroize::Zeroizing::new(new);
        if *old != *new || !self.target.exists() {
            fsio::atomic_write_keeping_mode(&self.target, &new)?;
        } else if fsio::writable_by_others(&self.target) {
            // Unchanged, but whoever may write it chooses the server's key: close that.
            fsio::drop_write_for_others(&self.target)?;
        }
        Ok(())
    }
}

/// Refuses to write `target` (an env file or a verifier) when it is the vault itself.
///
/// # Errors
/// [`Error::Usage`] naming the file.
pub fn refuse_vault(target: &Path, vault: &Path, what: &str) -> Result<()> {
    if fsio::same_file(target, vault) {
        return Err(Error::usage(format!(
            "the {what} {} is the vault itself; choose another path",
            mcp_key_vault::display::path(target)
        )));
    }
    Ok(())
}

fn read_bytes(target: &Path) -> Result<Option<Vec<u8>>> {
    fsio::read_bounded(target, MAX_ENV_BYTES, "env file").map_err(|e| match e {
        ReadError::Io(e) => e.into(),
        _ => Error::io(
            "read",
            target,
            std::io::Error::other(format!("the env file is larger than {MAX_ENV_BYTES} bytes")),
        ),
    })
}

fn read_at(target: &Path) -> Result<Option<Analysis>> {
    Ok(read_bytes(target)?.map(|b| envfile::analyze(&zeroize::Zeroizing::new(b))))
}

fn refusal(target: &Path, e: &envfile::EnvError) -> Error {
    Error::failed(format!(
        "refusing to edit {}: {e}\n(see docs/envfile.md)",
        mcp_key_vault::display::path(target)
    ))
}

/// Refuses an env file that is ambiguous for either variable this tool writes.
fn refuse_ambiguous(target: &Path, bytes: Option<&[u8]>) -> Result<()> {
    let bytes = zeroize::Zeroizing::new(bytes.unwrap_or_default().to_vec());
    envfile::editable(&bytes, &VARS).map_err(|e| refusal(target, &e))
}
