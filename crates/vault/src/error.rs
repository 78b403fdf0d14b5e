//! The library's error type: what failed, structured, with no advice about which command
//! to run next (the binary adds that, see `commands::report`).
//!
//! Invariant: no `Display` of an [`Error`] ever contains a secret. Messages carry ids,
//! paths and counts, never key material or passphrases.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// Everything that can go wrong. Grouped by [`Error::category`], from which the binary
/// derives its documented exit code.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// No key record matches an id argument. The argument is kept only when it may be
    /// shown (see [`crate::vault::not_found`]).
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
    /// A file is not a verifier file this release reads.
    NotAVerifier(String),
    /// The operation failed or the answer is "no": ambiguous id, refusing to overwrite,
    /// a check that found problems.
    Failed(String),
    /// A value given by the caller is not acceptable.
    Usage(String),
    /// A passphrase problem other than a wrong one (empty, mismatched, unreadable).
    Passphrase(String),
    /// The vault is corrupt, of an unknown format or version, or its header is out of
    /// bounds.
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

/// The groups of [`Error`] that the exit-code table distinguishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Category {
    /// The operation failed or the answer is "no".
    Failed,
    /// A usage error.
    Usage,
    /// Wrong or unavailable passphrase.
    Passphrase,
    /// A corrupt, tampered, unknown or out-of-bounds file.
    Corrupt,
    /// I/O or permissions.
    Io,
}

/// The message used for every authentication failure, so the tool never becomes an oracle
/// that tells a wrong passphrase apart from a modified file.
pub const WRONG_PASSPHRASE: &str = "wrong passphrase, or the vault was modified";

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
            Error::LegacyStore | Error::NotAVerifier(_) | Error::Corrupt(_) => Category::Corrupt,
            Error::Io { .. } => Category::Io,
        }
    }

    /// An I/O error with the action and path it happened on. The path is escaped: it may
    /// come from a planted symlink whose target holds terminal escapes.
    pub fn io(action: &str, path: &Path, source: io::Error) -> Self {
        Error::Io {
            context: format!("{action} {}", crate::display::path(path)),
            source,
        }
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

    pub(crate) fn wrong_passphrase() -> Self {
        Error::WrongPassphrase
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::KeyNotFound { message } => f.write_str(message),
            Error::NoVault { path } => {
                write!(f, "no vault at {}", crate::display::path(path))
            }
            Error::WrongPassphrase => f.write_str(WRONG_PASSPHRASE),
            Error::NoPassphrase { var, file_var } => {
                // The flag that goes with the variables: the new passphrase of `rekey` and
                // `slot add` has its own.
                let flag = if file_var.contains("NEW") {
                    "--new-passphrase-file"
                } else {
                    "--passphrase-file"
                };
                write!(
                    f,
                    "no passphrase available: there is no terminal to ask on; set {var} or \
                     {file_var} (or pass {flag})"
                )
            }
            Error::LegacyStore => f.write_str(
                "this is a plaintext key store of the Python tool, not an encrypted vault",
            ),
            Error::NotAVerifier(m)
            | Error::Failed(m)
            | Error::Usage(m)
            | Error::Passphrase(m)
            | Error::Corrupt(m) => f.write_str(m),
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

/// Shorthand used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Describes a JSON error by category and position only. serde_json's own messages can
/// quote the offending value, which in a key store may be a key: never show them.
pub fn json_problem(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let what = match e.classify() {
        Category::Io => "read error",
        Category::Syntax => "syntax error",
        Category::Data => "unexpected structure or value",
        Category::Eof => "unexpected end of data",
    };
    format!("{what} at line {}, column {}", e.line(), e.column())
}
