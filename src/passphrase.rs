//! Where passphrases come from: a file, an environment variable, or a hidden prompt on the
//! controlling terminal — never the command line.
//!
//! Invariant: without a source and without a terminal we fail at once (exit 3) naming the
//! variables to set; we never block waiting on a pipe.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::secret::SecretString;

/// Variable holding the passphrase itself.
pub const ENV_PASSPHRASE: &str = "MCP_KEY_VAULT_PASSPHRASE";
/// Variable naming a file that holds the passphrase.
pub const ENV_PASSPHRASE_FILE: &str = "MCP_KEY_VAULT_PASSPHRASE_FILE";
/// Variable holding the new passphrase for `rekey`.
pub const ENV_NEW_PASSPHRASE: &str = "MCP_KEY_VAULT_NEW_PASSPHRASE";
/// Variable naming a file that holds the new passphrase for `rekey`.
pub const ENV_NEW_PASSPHRASE_FILE: &str = "MCP_KEY_VAULT_NEW_PASSPHRASE_FILE";

/// Largest passphrase file read.
const MAX_FILE: u64 = 64 * 1024;

/// The non-interactive sources for one passphrase.
#[derive(Debug, Clone)]
pub struct Source {
    /// A file named on the command line or in the `*_FILE` variable.
    pub file: Option<PathBuf>,
    /// The variable holding the passphrase itself.
    pub env: &'static str,
    /// The variable naming a file (for messages).
    pub env_file: &'static str,
}

impl Source {
    /// The sources of the vault's current passphrase.
    pub fn current(file: Option<PathBuf>) -> Self {
        Source {
            file,
            env: ENV_PASSPHRASE,
            env_file: ENV_PASSPHRASE_FILE,
        }
    }

    /// The sources of the new passphrase given to `rekey`.
    pub fn new_for_rekey(file: Option<PathBuf>) -> Self {
        Source {
            file: file.or_else(|| std::env::var_os(ENV_NEW_PASSPHRASE_FILE).map(PathBuf::from)),
            env: ENV_NEW_PASSPHRASE,
            env_file: ENV_NEW_PASSPHRASE_FILE,
        }
    }

    /// A passphrase from the file or the variable, if either is set.
    ///
    /// # Errors
    /// [`Error::Passphrase`] for an unreadable, empty or non-UTF-8 passphrase.
    pub fn non_interactive(&self) -> Result<Option<SecretString>> {
        if let Some(path) = &self.file {
            return read_file(path).map(Some);
        }
        match std::env::var(self.env) {
            Ok(v) => check(SecretString::new(v), self.env).map(Some),
            Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(_)) => Err(Error::Passphrase(format!(
                "{} is not valid UTF-8; set it to the passphrase as text",
                self.env
            ))),
        }
    }

    fn no_source(&self) -> Error {
        Error::NoPassphrase {
            var: self.env,
            file_var: self.env_file,
        }
    }

    /// Whether a non-interactive source (file or variable) is configured.
    pub fn is_set(&self) -> bool {
        self.file.is_some() || std::env::var_os(self.env).is_some()
    }

    /// The passphrase of an existing vault: a source, else one hidden prompt.
    ///
    /// # Errors
    /// [`Error::Passphrase`] when there is no source and no terminal, or the input is empty.
    pub fn get(&self, prompt: &str) -> Result<SecretString> {
        if let Some(p) = self.non_interactive()? {
            return Ok(p);
        }
        let p = prompt_hidden(prompt).ok_or_else(|| self.no_source())??;
        check(p, "the passphrase")
    }

    /// A new passphrase: a source, else typed twice at a hidden prompt and compared in
    /// constant time.
    ///
    /// # Errors
    /// [`Error::Passphrase`] when there is no source and no terminal, the input is empty,
    /// or the two entries differ.
    pub fn get_new(&self, what: &str) -> Result<SecretString> {
        if let Some(p) = self.non_interactive()? {
            return Ok(p);
        }
        let first = prompt_hidden(&format!("New passphrase for {what}: "))
            .ok_or_else(|| self.no_source())??;
        let first = check(first, "the passphrase")?;
        let second =
            prompt_hidden("Repeat the new passphrase: ").ok_or_else(|| self.no_source())??;
        // SecretString's equality is constant-time.
        if first != second {
            return Err(Error::Passphrase(
                "the two passphrases differ; nothing was changed, try again".into(),
            ));
        }
        Ok(first)
    }
}

/// Whether a controlling terminal can be opened.
pub fn have_terminal() -> bool {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .is_ok()
}

/// Prompts on the controlling terminal with echo off; `None` when there is no terminal.
fn prompt_hidden(prompt: &str) -> Option<Result<SecretString>> {
    if !have_terminal() {
        return None;
    }
    Some(
        rpassword::prompt_password(prompt)
            .map(SecretString::new)
            .map_err(|e| {
                Error::Passphrase(format!("cannot read the passphrase from the terminal: {e}"))
            }),
    )
}

fn read_file(path: &Path) -> Result<SecretString> {
    let bytes = crate::fsio::read_bounded(path, MAX_FILE, "passphrase file")
        .map_err(|e| match e {
            Error::Corrupt(_) => Error::Passphrase(format!(
                "the passphrase file {} is larger than {MAX_FILE} bytes",
                path.display()
            )),
            other => other,
        })?
        .ok_or_else(|| {
            Error::Passphrase(format!(
                "the passphrase file {} does not exist; check --passphrase-file / {}",
                path.display(),
                ENV_PASSPHRASE_FILE
            ))
        })?;
    let bytes = zeroize::Zeroizing::new(bytes);
    let text = std::str::from_utf8(&bytes).map_err(|_| {
        Error::Passphrase(format!(
            "the passphrase file {} is not UTF-8 text",
            path.display()
        ))
    })?;
    let text = text
        .strip_suffix("\r\n")
        .or_else(|| text.strip_suffix('\n'))
        .unwrap_or(text);
    check(
        SecretString::new(text.to_string()),
        &path.display().to_string(),
    )
}

fn check(p: SecretString, what: &str) -> Result<SecretString> {
    if p.expose().is_empty() {
        return Err(Error::Passphrase(format!(
            "{what} is empty; an empty passphrase is not accepted"
        )));
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_source_strips_one_newline() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("pw");
        for (content, want) in [
            ("secret\n", "secret"),
            ("secret\r\n", "secret"),
            ("secret\n\n", "secret\n"),
            ("secret", "secret"),
        ] {
            std::fs::write(&p, content).unwrap();
            assert_eq!(read_file(&p).unwrap().expose(), want);
        }
        std::fs::write(&p, "\n").unwrap();
        assert!(matches!(read_file(&p), Err(Error::Passphrase(_))));
        std::fs::write(&p, b"\xff\xfe").unwrap();
        assert!(matches!(read_file(&p), Err(Error::Passphrase(_))));
    }
}
