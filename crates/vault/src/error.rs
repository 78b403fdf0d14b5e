//! The library's errors, one type per operation: what failed, structured, with no advice
//! about which command to run next (the binary adds that) and no state of any caller.
//!
//! - [`OpenError`]: reading, parsing or unlocking a vault or an identity file
//!   ([`Store::open`](crate::Store::open), [`Store::begin`](crate::Store::begin),
//!   [`Vault::open`](crate::Vault::open), …).
//! - [`ChangeError`]: making or changing a vault in memory: creating one, slots,
//!   re-keying, rotation, importing records.
//! - [`SelectError`]: finding keys by id, prefix or name.
//! - [`SaveError`]: writing a vault ([`Txn::commit`](crate::Txn::commit),
//!   [`Store::create`](crate::Store::create)).
//! - [`PromptError`]: what the caller's [`Interaction`](crate::Interaction) answers when it
//!   cannot give a passphrase.
//! - [`IoError`] and [`ReadError`]: the file operations of [`fsio`](crate::fsio).
//!
//! Operations that do several of these ([`Store::update`](crate::Store::update)) return the
//! caller's own error type, built with `From`. Each type says which group of the binary's
//! exit-code table it belongs to ([`Category`]); every type is `#[non_exhaustive]`.
//!
//! Invariant: no `Display` of these errors ever contains a secret. Messages carry ids,
//! paths and counts, never key material or passphrases.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// The groups of errors that the binary's exit-code table distinguishes. Exhaustive: a
/// new group would be a new exit code, a breaking change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Category {
    /// The operation failed or the answer is "no".
    Failed,
    /// A value given by the caller is not acceptable.
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

/// An I/O failure: what we were doing, with the path involved, and the system's error.
#[derive(Debug)]
pub struct IoError {
    context: String,
    source: io::Error,
}

impl IoError {
    /// An error of `action` on `path`. The path is escaped: it may come from a planted
    /// symlink whose target holds terminal escapes.
    pub fn new(action: &str, path: &Path, source: io::Error) -> Self {
        IoError {
            context: format!("{action} {}", crate::display::path(path)),
            source,
        }
    }

    /// An error whose context (what we were doing, already safe to print) is given whole.
    pub fn with_context(context: String, source: io::Error) -> Self {
        IoError { context, source }
    }

    /// What we were doing.
    pub fn context(&self) -> &str {
        &self.context
    }

    /// The kind of the underlying error.
    pub fn kind(&self) -> io::ErrorKind {
        self.source.kind()
    }

    /// The context and the underlying error, taken apart.
    pub fn into_parts(self) -> (String, io::Error) {
        (self.context, self.source)
    }
}

impl fmt::Display for IoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hint = match self.source.kind() {
            io::ErrorKind::PermissionDenied => "; check the file's owner and permissions",
            io::ErrorKind::NotFound => "; check that the path exists",
            _ => "",
        };
        write!(f, "cannot {}: {}{hint}", self.context, self.source)
    }
}

impl std::error::Error for IoError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// A bounded read of a file ([`fsio::read_bounded`](crate::fsio::read_bounded)) failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum ReadError {
    /// The file could not be read, or is not a regular file.
    Io(IoError),
    /// The file is larger than the bound.
    TooLarge {
        /// The file.
        path: PathBuf,
        /// What the file should be ("vault", "env file").
        what: String,
        /// Its size when it was opened; `None` when it grew while being read.
        len: Option<u64>,
        /// The bound.
        max: u64,
    },
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Io(e) => e.fmt(f),
            ReadError::TooLarge {
                path,
                what,
                len: Some(len),
                max,
            } => write!(
                f,
                "{} is {len} bytes, more than the {max} bytes a {what} may have; it is not a \
                 {what}",
                crate::display::path(path)
            ),
            ReadError::TooLarge {
                path,
                len: None,
                max,
                ..
            } => write!(
                f,
                "{} grew beyond {max} bytes while being read",
                crate::display::path(path)
            ),
        }
    }
}

impl std::error::Error for ReadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ReadError::Io(e) => Some(e),
            ReadError::TooLarge { .. } => None,
        }
    }
}

impl From<IoError> for ReadError {
    fn from(e: IoError) -> Self {
        ReadError::Io(e)
    }
}

impl ReadError {
    /// Which group of the exit-code table this error belongs to.
    pub fn category(&self) -> Category {
        match self {
            ReadError::Io(_) => Category::Io,
            ReadError::TooLarge { .. } => Category::Corrupt,
        }
    }
}

/// The caller's [`Interaction`](crate::Interaction) could not give a passphrase.
#[derive(Debug)]
#[non_exhaustive]
pub enum PromptError {
    /// No passphrase source and no terminal to ask on.
    NoPassphrase {
        /// The variable holding a passphrase.
        var: &'static str,
        /// The variable naming a passphrase file.
        file_var: &'static str,
    },
    /// A passphrase that cannot be used: empty, unreadable, two entries that differ.
    Unusable {
        /// Why, without the passphrase.
        reason: String,
    },
    /// A new passphrase refused as too weak.
    Weak {
        /// Why, with the estimator's feedback.
        reason: String,
    },
    /// A passphrase file could not be read.
    Io(IoError),
}

impl PromptError {
    /// Which group of the exit-code table this error belongs to.
    pub fn category(&self) -> Category {
        match self {
            PromptError::NoPassphrase { .. } | PromptError::Unusable { .. } => Category::Passphrase,
            PromptError::Weak { .. } => Category::Usage,
            PromptError::Io(_) => Category::Io,
        }
    }
}

impl fmt::Display for PromptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PromptError::NoPassphrase { var, file_var } => no_passphrase(f, var, file_var),
            PromptError::Unusable { reason } | PromptError::Weak { reason } => f.write_str(reason),
            PromptError::Io(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for PromptError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PromptError::Io(e) => Some(e),
            _ => None,
        }
    }
}

fn no_passphrase(f: &mut fmt::Formatter<'_>, var: &str, file_var: &str) -> fmt::Result {
    // The flag that goes with the variables: the new passphrase of `rekey` and `slot add`
    // has its own.
    let flag = if file_var.contains("NEW") {
        "--new-passphrase-file"
    } else {
        "--passphrase-file"
    };
    write!(
        f,
        "no passphrase available: there is no terminal to ask on; set {var} or {file_var} \
         (or pass {flag})"
    )
}

/// Reading, parsing or unlocking a vault or an identity file failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum OpenError {
    /// There is no vault at this path.
    NoVault {
        /// The vault path.
        path: PathBuf,
    },
    /// A plaintext key store of the Python tool where a vault was expected.
    LegacyStore,
    /// The file is corrupt, of an unknown format or version, too large, or its header is
    /// out of bounds.
    Corrupt {
        /// What is wrong, by position and field, never by content.
        reason: String,
    },
    /// Authentication failed: a wrong passphrase or identity, or a modified vault (never
    /// told apart).
    WrongPassphrase,
    /// No passphrase source and no terminal to ask on.
    NoPassphrase {
        /// The variable holding a passphrase.
        var: &'static str,
        /// The variable naming a passphrase file.
        file_var: &'static str,
    },
    /// A passphrase or identity that cannot be used (other than a wrong one): empty,
    /// unreadable, an age plugin that is missing or failed, no slot it could open.
    Passphrase {
        /// Why.
        reason: String,
    },
    /// A value given by the caller is not acceptable (an identity file, a slot name).
    Invalid {
        /// Why.
        reason: String,
    },
    /// The vault opened, but the caller does not trust it: opened through an identity, it
    /// is not the vault the caller pinned (see [`Interaction::trust`](crate::Interaction::trust)).
    Untrusted {
        /// Why, naming the path and both fingerprints.
        reason: String,
    },
    /// An I/O or permission problem.
    Io(IoError),
}

impl OpenError {
    /// Which group of the exit-code table this error belongs to.
    pub fn category(&self) -> Category {
        match self {
            OpenError::NoVault { .. } => Category::Failed,
            OpenError::LegacyStore | OpenError::Corrupt { .. } => Category::Corrupt,
            OpenError::WrongPassphrase
            | OpenError::NoPassphrase { .. }
            | OpenError::Passphrase { .. }
            | OpenError::Untrusted { .. } => Category::Passphrase,
            OpenError::Invalid { .. } => Category::Usage,
            OpenError::Io(_) => Category::Io,
        }
    }

    pub(crate) fn corrupt(reason: impl Into<String>) -> Self {
        OpenError::Corrupt {
            reason: reason.into(),
        }
    }

    pub(crate) fn passphrase(reason: impl Into<String>) -> Self {
        OpenError::Passphrase {
            reason: reason.into(),
        }
    }

    pub(crate) fn invalid(reason: impl Into<String>) -> Self {
        OpenError::Invalid {
            reason: reason.into(),
        }
    }
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenError::NoVault { path } => {
                write!(f, "no vault at {}", crate::display::path(path))
            }
            OpenError::LegacyStore => f.write_str(
                "this is a plaintext key store of the Python tool, not an encrypted vault",
            ),
            OpenError::WrongPassphrase => f.write_str(WRONG_PASSPHRASE),
            OpenError::NoPassphrase { var, file_var } => no_passphrase(f, var, file_var),
            OpenError::Corrupt { reason }
            | OpenError::Passphrase { reason }
            | OpenError::Invalid { reason }
            | OpenError::Untrusted { reason } => f.write_str(reason),
            OpenError::Io(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for OpenError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            OpenError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<IoError> for OpenError {
    fn from(e: IoError) -> Self {
        OpenError::Io(e)
    }
}

impl From<ReadError> for OpenError {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Io(e) => OpenError::Io(e),
            too_large => OpenError::corrupt(too_large.to_string()),
        }
    }
}

impl From<PromptError> for OpenError {
    fn from(e: PromptError) -> Self {
        match e {
            PromptError::NoPassphrase { var, file_var } => {
                OpenError::NoPassphrase { var, file_var }
            }
            PromptError::Unusable { reason } => OpenError::Passphrase { reason },
            PromptError::Weak { reason } => OpenError::Invalid { reason },
            PromptError::Io(e) => OpenError::Io(e),
        }
    }
}

/// Making or changing a vault in memory failed: creating one, adding, removing or
/// re-keying a slot, rotating a key, importing a record.
#[derive(Debug)]
#[non_exhaustive]
pub enum ChangeError {
    /// A value given by the caller is not acceptable (KDF settings, a recipient, a label, a
    /// slot that does not exist).
    Invalid {
        /// Why.
        reason: String,
    },
    /// The change is refused: it would remove the last way in, or an age recipient or
    /// plugin could not be wrapped to.
    Refused {
        /// Why.
        reason: String,
    },
    /// A record being imported is not consistent, or the key derivation failed.
    Corrupt {
        /// Why.
        reason: String,
    },
    /// The passphrase given to prove access (re-keying a slot) is wrong.
    WrongPassphrase,
    /// A passphrase that cannot be used here.
    Passphrase {
        /// Why.
        reason: String,
    },
}

impl ChangeError {
    /// Which group of the exit-code table this error belongs to.
    pub fn category(&self) -> Category {
        match self {
            ChangeError::Invalid { .. } => Category::Usage,
            ChangeError::Refused { .. } => Category::Failed,
            ChangeError::Corrupt { .. } => Category::Corrupt,
            ChangeError::WrongPassphrase | ChangeError::Passphrase { .. } => Category::Passphrase,
        }
    }

    pub(crate) fn invalid(reason: impl Into<String>) -> Self {
        ChangeError::Invalid {
            reason: reason.into(),
        }
    }

    pub(crate) fn refused(reason: impl Into<String>) -> Self {
        ChangeError::Refused {
            reason: reason.into(),
        }
    }

    pub(crate) fn corrupt(reason: impl Into<String>) -> Self {
        ChangeError::Corrupt {
            reason: reason.into(),
        }
    }

    pub(crate) fn passphrase(reason: impl Into<String>) -> Self {
        ChangeError::Passphrase {
            reason: reason.into(),
        }
    }
}

impl fmt::Display for ChangeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChangeError::WrongPassphrase => f.write_str(WRONG_PASSPHRASE),
            ChangeError::Invalid { reason }
            | ChangeError::Refused { reason }
            | ChangeError::Corrupt { reason }
            | ChangeError::Passphrase { reason } => f.write_str(reason),
        }
    }
}

impl std::error::Error for ChangeError {}

/// Unlocking a slot is part of some changes (re-keying it): its failures keep their
/// group.
impl From<OpenError> for ChangeError {
    fn from(e: OpenError) -> Self {
        match e {
            OpenError::WrongPassphrase => ChangeError::WrongPassphrase,
            OpenError::Invalid { reason } => ChangeError::Invalid { reason },
            e @ (OpenError::NoPassphrase { .. }
            | OpenError::Passphrase { .. }
            | OpenError::Untrusted { .. }) => ChangeError::passphrase(e.to_string()),
            e @ (OpenError::NoVault { .. } | OpenError::Io(_)) => {
                ChangeError::refused(e.to_string())
            }
            e => ChangeError::corrupt(e.to_string()),
        }
    }
}

/// Selecting keys by id, id prefix or name failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum SelectError {
    /// No key matches. The argument is kept only when it may be shown (see
    /// [`crate::not_found`]).
    NotFound {
        /// The message, already free of anything that could be a key.
        message: String,
    },
    /// More than one key matches.
    Ambiguous {
        /// The message, naming the matching ids.
        message: String,
    },
    /// The argument cannot name a key (empty, or a key itself).
    Invalid {
        /// Why.
        reason: String,
    },
}

impl SelectError {
    /// Which group of the exit-code table this error belongs to.
    pub fn category(&self) -> Category {
        match self {
            SelectError::NotFound { .. } | SelectError::Ambiguous { .. } => Category::Failed,
            SelectError::Invalid { .. } => Category::Usage,
        }
    }
}

impl fmt::Display for SelectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SelectError::NotFound { message }
            | SelectError::Ambiguous { message }
            | SelectError::Invalid { reason: message } => f.write_str(message),
        }
    }
}

impl std::error::Error for SelectError {}

/// Writing a vault failed; the file on disk is as it was.
#[derive(Debug)]
#[non_exhaustive]
pub enum SaveError {
    /// The file changed or appeared since it was read; nothing was written.
    Changed {
        /// What changed.
        reason: String,
    },
    /// The vault could not be sealed for writing (its upgrade to format 2 failed).
    Seal(ChangeError),
    /// The file could not be written.
    Io(IoError),
}

impl SaveError {
    /// Which group of the exit-code table this error belongs to.
    pub fn category(&self) -> Category {
        match self {
            SaveError::Changed { .. } => Category::Failed,
            SaveError::Seal(e) => e.category(),
            SaveError::Io(_) => Category::Io,
        }
    }
}

impl fmt::Display for SaveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SaveError::Changed { reason } => f.write_str(reason),
            SaveError::Seal(e) => e.fmt(f),
            SaveError::Io(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for SaveError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SaveError::Seal(e) => Some(e),
            SaveError::Io(e) => Some(e),
            SaveError::Changed { .. } => None,
        }
    }
}

impl From<IoError> for SaveError {
    fn from(e: IoError) -> Self {
        SaveError::Io(e)
    }
}

impl From<ChangeError> for SaveError {
    fn from(e: ChangeError) -> Self {
        SaveError::Seal(e)
    }
}

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
