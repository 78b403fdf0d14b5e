//! The binary's error: what any command can fail with, the library's errors by operation
//! folded into the groups of the exit-code table, and the binary's own states (a quiet
//! "no" whose reason is already on stdout).
//!
//! Invariant: no `Display` of an [`Error`] ever contains a secret. Messages carry ids,
//! paths and counts, never key material or passphrases.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

pub use mcp_key_vault::error::{Category, WRONG_PASSPHRASE};
use mcp_key_vault::error::{
    ChangeError, IoError, OpenError, PromptError, ReadError, SaveError, SelectError,
};

/// Everything a command can fail with. Grouped by [`Error::category`], from which
/// `commands::exit_code` derives the documented exit code.
#[derive(Debug)]
pub enum Error {
    /// No key record matches an id argument.
    KeyNotFound {
        /// The message, already free of anything that could be a key.
        message: String,
    },
    /// There is no vault at this path.
    NoVault {
        /// The vault path.
        path: PathBuf,
    },
    /// Authentication failed: a wrong passphrase, or a modified vault (never told apart).
    WrongPassphrase,
    /// No passphrase source and no terminal to ask on.
    NoPassphrase {
        /// The variable holding a passphrase.
        var: &'static str,
        /// The variable naming a passphrase file.
        file_var: &'static str,
    },
    /// A plaintext key store of the Python tool where a vault was expected.
    LegacyStore,
    /// The operation failed or the answer is "no": ambiguous id, refusing to overwrite,
    /// a check that found problems.
    Failed(String),
    /// A value given by the caller is not acceptable.
    Usage(String),
    /// A passphrase problem other than a wrong one (empty, mismatched, unreadable).
    Passphrase(String),
    /// A corrupt, unknown or out-of-bounds file.
    Corrupt(String),
    /// An I/O or permission problem.
    Io {
        /// What we were doing, with the path involved.
        context: String,
        /// The underlying operating-system error.
        source: io::Error,
    },
    /// A quiet "no": the command already reported why on stdout.
    Silent,
}

impl Error {
    /// Which group of the exit-code table this error belongs to.
    pub fn category(&self) -> Category {
        match self {
            Error::KeyNotFound { .. } | Error::NoVault { .. } | Error::Failed(_) => {
                Category::Failed
            }
            Error::Silent => Category::Failed,
            Error::Usage(_) => Category::Usage,
            Error::WrongPassphrase | Error::NoPassphrase { .. } | Error::Passphrase(_) => {
                Category::Passphrase
            }
            Error::LegacyStore | Error::Corrupt(_) => Category::Corrupt,
            Error::Io { .. } => Category::Io,
        }
    }

    /// An I/O error with the action and path it happened on (the path escaped).
    pub fn io(action: &str, path: &Path, source: io::Error) -> Self {
        IoError::new(action, path, source).into()
    }

    /// [`Error::Failed`] with this message.
    pub fn failed(msg: impl Into<String>) -> Self {
        Error::Failed(msg.into())
    }

    /// [`Error::Usage`] with this message.
    pub fn usage(msg: impl Into<String>) -> Self {
        Error::Usage(msg.into())
    }

    /// [`Error::Corrupt`] with this message.
    pub fn corrupt(msg: impl Into<String>) -> Self {
        Error::Corrupt(msg.into())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::KeyNotFound { message } => f.write_str(message),
            Error::NoVault { path } => OpenError::NoVault { path: path.clone() }.fmt(f),
            Error::WrongPassphrase => f.write_str(WRONG_PASSPHRASE),
            Error::NoPassphrase { var, file_var } => {
                PromptError::NoPassphrase { var, file_var }.fmt(f)
            }
            Error::LegacyStore => OpenError::LegacyStore.fmt(f),
            Error::Failed(m) | Error::Usage(m) | Error::Passphrase(m) | Error::Corrupt(m) => {
                f.write_str(m)
            }
            Error::Io { context, source } => {
                let hint = match source.kind() {
                    io::ErrorKind::PermissionDenied => "; check the file's owner and permissions",
                    io::ErrorKind::NotFound => "; check that the path exists",
                    _ => "",
                };
                write!(f, "cannot {context}: {source}{hint}")
            }
            Error::Silent => Ok(()),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl From<IoError> for Error {
    fn from(e: IoError) -> Error {
        let (context, source) = e.into_parts();
        Error::Io { context, source }
    }
}

impl From<ReadError> for Error {
    fn from(e: ReadError) -> Error {
        match e {
            ReadError::Io(e) => e.into(),
            too_large => Error::Corrupt(too_large.to_string()),
        }
    }
}

impl From<PromptError> for Error {
    fn from(e: PromptError) -> Error {
        match e {
            PromptError::NoPassphrase { var, file_var } => Error::NoPassphrase { var, file_var },
            PromptError::Unusable { reason } => Error::Passphrase(reason),
            PromptError::Weak { reason } => Error::Usage(reason),
            PromptError::Io(e) => e.into(),
            other => Error::Passphrase(other.to_string()),
        }
    }
}

impl From<OpenError> for Error {
    fn from(e: OpenError) -> Error {
        match e {
            OpenError::NoVault { path } => Error::NoVault { path },
            OpenError::LegacyStore => Error::LegacyStore,
            OpenError::Corrupt { reason } => Error::Corrupt(reason),
            OpenError::WrongPassphrase => Error::WrongPassphrase,
            OpenError::NoPassphrase { var, file_var } => Error::NoPassphrase { var, file_var },
            OpenError::Passphrase { reason } => Error::Passphrase(reason),
            OpenError::Invalid { reason } => Error::Usage(reason),
            OpenError::Untrusted { reason } => Error::Passphrase(reason),
            OpenError::Io(e) => e.into(),
            other => by_category(other.category(), other.to_string()),
        }
    }
}

impl From<ChangeError> for Error {
    fn from(e: ChangeError) -> Error {
        match e {
            ChangeError::Invalid { reason } => Error::Usage(reason),
            ChangeError::Refused { reason } => Error::Failed(reason),
            ChangeError::Corrupt { reason } => Error::Corrupt(reason),
            ChangeError::WrongPassphrase => Error::WrongPassphrase,
            ChangeError::Passphrase { reason } => Error::Passphrase(reason),
            other => by_category(other.category(), other.to_string()),
        }
    }
}

impl From<SelectError> for Error {
    fn from(e: SelectError) -> Error {
        match e {
            SelectError::NotFound { message } => Error::KeyNotFound { message },
            SelectError::Ambiguous { message } => Error::Failed(message),
            SelectError::Invalid { reason } => Error::Usage(reason),
            other => by_category(other.category(), other.to_string()),
        }
    }
}

impl From<SaveError> for Error {
    fn from(e: SaveError) -> Error {
        match e {
            SaveError::Changed { reason } => Error::Failed(reason),
            SaveError::Seal(e) => e.into(),
            SaveError::Io(e) => e.into(),
            other => by_category(other.category(), other.to_string()),
        }
    }
}

impl From<mcp_key_verifier::Error> for Error {
    fn from(e: mcp_key_verifier::Error) -> Error {
        match e {
            mcp_key_verifier::Error::Io { path, source } => Error::io("read", &path, source),
            mcp_key_verifier::Error::Invalid(m) => Error::Corrupt(m),
            // The enum is non-exhaustive; a new kind of failure is a file we cannot use.
            other => Error::Corrupt(other.to_string()),
        }
    }
}

/// A library error of a kind this release does not know yet (the library's enums are
/// non-exhaustive), kept in its group with its message.
fn by_category(c: Category, message: String) -> Error {
    match c {
        Category::Usage => Error::Usage(message),
        Category::Passphrase => Error::Passphrase(message),
        Category::Corrupt => Error::Corrupt(message),
        Category::Io => Error::Io {
            context: message,
            source: io::Error::other("I/O error"),
        },
        Category::Failed => Error::Failed(message),
    }
}

/// Shorthand used throughout the binary.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Describes a JSON error by category and position only (see the library's).
pub use mcp_key_vault::error::json_problem;
