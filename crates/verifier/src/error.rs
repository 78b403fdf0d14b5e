//! Why a verifier file could not be loaded.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// Why a verifier file could not be loaded. `Display` names the path or an entry id, never
/// a key or the hash key.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The file could not be read (also when it does not exist).
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
    /// The bytes are not a verifier file this release reads.
    Invalid(String),
    /// A trust pin was given and the file is unsigned, signed by another vault, or was
    /// changed after it was signed.
    Untrusted(String),
}

/// A `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(path: &Path, source: io::Error) -> Error {
        Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    pub(crate) fn invalid(msg: impl Into<String>) -> Error {
        Error::Invalid(msg.into())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io { path, source } => write!(
                f,
                "cannot read {}: {source}",
                crate::text::escape_controls(&path.to_string_lossy())
            ),
            Error::Invalid(msg) | Error::Untrusted(msg) => f.write_str(msg),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            Error::Invalid(_) | Error::Untrusted(_) => None,
        }
    }
}

/// Where a JSON document stopped making sense, without quoting it (it may hold a hash key).
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
