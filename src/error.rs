//! The one error type of the crate and the one table that maps it to an exit code.
//!
//! Invariant: no `Display` of an [`Error`] ever contains a secret. Messages carry ids,
//! paths and counts, never key material or passphrases.

use std::fmt;
use std::io;
use std::path::Path;

/// Everything that can go wrong, grouped by the exit code the CLI reports for it.
#[derive(Debug)]
pub enum Error {
    /// The operation failed or the answer is "no" (exit 1): key not found, ambiguous id,
    /// refusing to overwrite, a check that found problems.
    Failed(String),
    /// The command line or a value given on it is not acceptable (exit 2).
    Usage(String),
    /// Wrong passphrase, a modified vault that fails authentication, or no passphrase
    /// available (exit 3).
    Passphrase(String),
    /// The vault is corrupt, of an unknown format or version, or its header is out of
    /// bounds; also a plaintext store of the Python tool (exit 4).
    Corrupt(String),
    /// An I/O or permission problem (exit 5).
    Io {
        /// What we were doing, with the path involved.
        context: String,
        /// The underlying operating-system error.
        source: io::Error,
    },
    /// A quiet "no": the command already reported why on stdout (exit 1, no message).
    Silent,
}

/// The message used for every authentication failure, so the tool never becomes an oracle
/// that tells a wrong passphrase apart from a modified file.
pub const WRONG_PASSPHRASE: &str = "wrong passphrase, or the vault was modified; \
check the passphrase (and MCP_KEY_VAULT_PASSPHRASE / MCP_KEY_VAULT_PASSPHRASE_FILE), \
or restore the vault from a backup";

impl Error {
    /// The documented exit code (README, "Exit codes").
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Failed(_) | Error::Silent => 1,
            Error::Usage(_) => 2,
            Error::Passphrase(_) => 3,
            Error::Corrupt(_) => 4,
            Error::Io { .. } => 5,
        }
    }

    /// An I/O error with the action and path it happened on.
    pub fn io(action: &str, path: &Path, source: io::Error) -> Self {
        Error::Io {
            context: format!("{action} {}", path.display()),
            source,
        }
    }

    pub(crate) fn failed(msg: impl Into<String>) -> Self {
        Error::Failed(msg.into())
    }

    pub(crate) fn usage(msg: impl Into<String>) -> Self {
        Error::Usage(msg.into())
    }

    pub(crate) fn corrupt(msg: impl Into<String>) -> Self {
        Error::Corrupt(msg.into())
    }

    pub(crate) fn wrong_passphrase() -> Self {
        Error::Passphrase(WRONG_PASSPHRASE.to_string())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
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

/// Shorthand used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Describes a JSON error by category and position only. serde_json's own messages can
/// quote the offending value, which in a key store may be a key: never show them.
pub(crate) fn json_problem(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let what = match e.classify() {
        Category::Io => "read error",
        Category::Syntax => "syntax error",
        Category::Data => "unexpected structure or value",
        Category::Eof => "unexpected end of data",
    };
    format!("{what} at line {}, column {}", e.line(), e.column())
}
