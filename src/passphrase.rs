//! Where passphrases come from: a file, an environment variable, or a hidden prompt on the
//! controlling terminal — never the command line.
//!
//! Also how many tries a typed passphrase gets, and how strong a new one must be.
//!
//! Invariants: without a source and without a terminal we fail at once (exit 3) naming the
//! variables to set; we never block waiting on a pipe. Only a passphrase typed at the
//! terminal is asked again after a failed unlock (at most [`TRIES`] times); one from the
//! environment or a file gets one attempt. A new passphrase whose estimated strength is
//! below [`MIN_SCORE`] is refused (exit 2) unless the user allowed it; feedback names the
//! weakness, never the passphrase.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};

use mcp_key_vault::error::{PromptError, ReadError};

type Result<T, E = PromptError> = std::result::Result<T, E>;
use mcp_key_vault::secret::SecretString;

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

/// Tries a passphrase typed at the terminal gets, as `sudo` and `ssh` allow.
pub const TRIES: u32 = 3;

/// The lowest zxcvbn score (0–4) a new passphrase may have without
/// `--allow-weak-passphrase`; one point above it only draws a warning.
pub const MIN_SCORE: u8 = 2;

/// Characters of a passphrase the estimator looks at: its matching is superlinear in the
/// length, and a passphrase whose first 100 characters are strong is strong.
const ESTIMATE_CHARS: usize = 100;

/// Words the estimator counts as guessable in this context.
const CONTEXT_WORDS: [&str; 6] = [
    "mcp",
    "key",
    "manager",
    "vault",
    "passphrase",
    "mcp-key-manager",
];

/// The non-interactive sources for one passphrase.
#[derive(Debug, Clone)]
pub struct Source {
    /// A file named on the command line or in the `*_FILE` variable.
    pub file: Option<PathBuf>,
    /// The variable holding the passphrase itself.
    pub env: &'static str,
    /// The variable naming a file (for messages).
    pub env_file: &'static str,
    /// Whether [`Source::get_new`] accepts a passphrase the estimator calls weak.
    pub allow_weak: bool,
}

impl Source {
    /// The sources of the vault's current passphrase.
    pub fn current(file: Option<PathBuf>) -> Self {
        Source {
            file,
            env: ENV_PASSPHRASE,
            env_file: ENV_PASSPHRASE_FILE,
            allow_weak: false,
        }
    }

    /// The sources of the new passphrase given to `rekey`.
    pub fn new_for_rekey(file: Option<PathBuf>) -> Self {
        Source {
            file: file.or_else(|| std::env::var_os(ENV_NEW_PASSPHRASE_FILE).map(PathBuf::from)),
            env: ENV_NEW_PASSPHRASE,
            env_file: ENV_NEW_PASSPHRASE_FILE,
            allow_weak: false,
        }
    }

    /// The same sources, accepting (`true`) or refusing weak new passphrases.
    pub fn allow_weak(mut self, allow: bool) -> Self {
        self.allow_weak = allow;
        self
    }

    /// A passphrase from the file or the variable, if either is set.
    ///
    /// # Errors
    /// [`PromptError::Unusable`] for an unreadable, empty or non-UTF-8 passphrase.
    pub fn non_interactive(&self) -> Result<Option<SecretString>> {
        if let Some(path) = &self.file {
            return read_file(path).map(Some);
        }
        match std::env::var(self.env) {
            Ok(v) => {
                let v = zeroize::Zeroizing::new(v);
                check(
                    SecretString::new(strip_one_newline(&v).to_string()),
                    self.env,
                )
                .map(Some)
            }
            Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(_)) => Err(PromptError::Unusable {
                reason: format!(
                    "{} is not valid UTF-8; set it to the passphrase as text",
                    self.env
                ),
            }),
        }
    }

    fn no_source(&self) -> PromptError {
        PromptError::NoPassphrase {
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
    /// [`PromptError::Unusable`] when there is no source and no terminal, or the input is empty.
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
    /// [`PromptError::Unusable`] when there is no source and no terminal, the input is empty,
    /// or the two entries differ; [`PromptError::Weak`] for a weak passphrase (see
    /// [`check_strength`]).
    pub fn get_new(&self, what: &str) -> Result<SecretString> {
        if let Some(p) = self.non_interactive()? {
            check_strength(&p, self.allow_weak)?;
            return Ok(p);
        }
        let first = prompt_hidden(&format!("New passphrase for {what}: "))
            .ok_or_else(|| self.no_source())??;
        let first = check(first, "the passphrase")?;
        // Judged before the second entry, so a refused one need not be typed twice.
        check_strength(&first, self.allow_weak)?;
        let second =
            prompt_hidden("Repeat the new passphrase: ").ok_or_else(|| self.no_source())??;
        // SecretString's equality is constant-time.
        if first != second {
            return Err(PromptError::Unusable {
                reason: "the two passphrases differ; nothing was changed, try again".into(),
            });
        }
        Ok(first)
    }
}

/// What the estimator says about a passphrase: a score from 0 (trivially guessable) to 4,
/// and its feedback, which never quotes the passphrase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Strength {
    /// zxcvbn's score, 0–4.
    pub score: u8,
    /// What is wrong with it, if anything.
    pub warning: Option<String>,
    /// How to do better.
    pub suggestions: Vec<String>,
}

impl Strength {
    /// The feedback as one sentence list, e.g. for an error message.
    pub fn feedback(&self) -> String {
        let mut parts: Vec<String> = self.warning.iter().cloned().collect();
        parts.extend(self.suggestions.iter().cloned());
        parts
            .iter()
            .map(|p| p.trim().trim_end_matches('.').to_string())
            .filter(|p| !p.is_empty())
            .collect::<Vec<_>>()
            .join(". ")
    }
}

/// Estimates a passphrase's strength with zxcvbn (its first `ESTIMATE_CHARS`
/// characters).
pub fn strength(p: &SecretString) -> Strength {
    let text = p.expose();
    let cut = text
        .char_indices()
        .nth(ESTIMATE_CHARS)
        .map_or(text.len(), |(i, _)| i);
    let e = zxcvbn::zxcvbn(&text[..cut], &CONTEXT_WORDS);
    let (warning, suggestions) = match e.feedback() {
        Some(f) => (
            f.warning().map(|w| w.to_string()),
            f.suggestions().iter().map(|s| s.to_string()).collect(),
        ),
        None => (None, Vec::new()),
    };
    Strength {
        score: u8::from(e.score()),
        warning,
        suggestions,
    }
}

/// Refuses a new passphrase scoring below [`MIN_SCORE`] unless `allow_weak`; warns on
/// stderr for one scoring [`MIN_SCORE`] (or a weak one that was allowed).
///
/// # Errors
/// [`PromptError::Weak`] (exit 2) with the estimator's feedback.
pub fn check_strength(p: &SecretString, allow_weak: bool) -> Result<()> {
    let s = strength(p);
    let feedback = s.feedback();
    let feedback = if feedback.is_empty() {
        String::new()
    } else {
        format!(": {feedback}")
    };
    if s.score < MIN_SCORE {
        if !allow_weak {
            return Err(PromptError::Weak {
                reason: format!(
                    "the new passphrase is too easy to guess (strength {} of 4){feedback}. \
                 Choose a longer one, such as four or more random words, or pass \
                 --allow-weak-passphrase to accept it anyway",
                    s.score
                ),
            });
        }
        eprintln!(
            "warning: accepting a weak passphrase (strength {} of 4) because of \
             --allow-weak-passphrase{feedback}",
            s.score
        );
    } else if s.score == MIN_SCORE {
        eprintln!(
            "warning: the new passphrase is only moderately strong (strength {} of 4){feedback}; \
             a longer one would resist guessing better",
            s.score
        );
    }
    Ok(())
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
            .map_err(|e| PromptError::Unusable {
                reason: format!("cannot read the passphrase from the terminal: {e}"),
            }),
    )
}

fn read_file(path: &Path) -> Result<SecretString> {
    let bytes = mcp_key_vault::fsio::read_bounded(path, MAX_FILE, "passphrase file")
        .map_err(|e| match e {
            ReadError::Io(e) => PromptError::Io(e),
            _ => PromptError::Unusable {
                reason: format!(
                    "the passphrase file {} is larger than {MAX_FILE} bytes",
                    mcp_key_vault::display::path(path)
                ),
            },
        })?
        .ok_or_else(|| PromptError::Unusable {
            reason: format!(
                "the passphrase file {} does not exist; check --passphrase-file / {}",
                mcp_key_vault::display::path(path),
                ENV_PASSPHRASE_FILE
            ),
        })?;
    let bytes = zeroize::Zeroizing::new(bytes);
    let text = std::str::from_utf8(&bytes).map_err(|_| PromptError::Unusable {
        reason: format!(
            "the passphrase file {} is not UTF-8 text",
            mcp_key_vault::display::path(path)
        ),
    })?;
    if mcp_key_vault::fsio::readable_by_others(path) {
        eprintln!(
            "warning: the passphrase file {} is readable by group or others; run `chmod 600 {}`",
            mcp_key_vault::display::path(path),
            mcp_key_vault::display::path(path)
        );
    }
    let text = strip_one_newline(text);
    check(
        SecretString::new(text.to_string()),
        &mcp_key_vault::display::path(path),
    )
}

/// The one rule for both non-interactive sources: a single trailing newline (`\n` or
/// `\r\n`), as `echo` and editors add, is not part of the passphrase; anything else is.
/// So `MCP_KEY_VAULT_PASSPHRASE=$'hunter2\n'` and a file holding `hunter2\n` both give
/// `hunter2`.
fn strip_one_newline(text: &str) -> &str {
    text.strip_suffix("\r\n")
        .or_else(|| text.strip_suffix('\n'))
        .unwrap_or(text)
}

fn check(p: SecretString, what: &str) -> Result<SecretString> {
    if p.expose().is_empty() {
        return Err(PromptError::Unusable {
            reason: format!("{what} is empty; an empty passphrase is not accepted"),
        });
    }
    Ok(p)
}

/// What age plugins ask of the person at the keyboard, answered at the terminal: messages
/// ("touch your YubiKey") on stderr, escaped; a PIN at a hidden prompt when stdin is a
/// terminal, never otherwise.
#[derive(Debug, Clone, Copy)]
pub struct TerminalPluginUi;

impl mcp_key_vault::v2::PluginUi for TerminalPluginUi {
    fn message(&self, message: &str) {
        eprintln!("{}", mcp_key_vault::display::sanitize(message));
    }

    fn secret(&self, description: &str) -> Option<SecretString> {
        use std::io::IsTerminal;
        if !std::io::stdin().is_terminal() {
            return None;
        }
        let prompt = format!("{}: ", mcp_key_vault::display::sanitize(description));
        rpassword::prompt_password(prompt)
            .ok()
            .map(SecretString::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strength_refuses_the_trivial_and_accepts_the_fixture() {
        let s = |p: &str| strength(&SecretString::new(p.into()));
        assert!(s("abc").score < MIN_SCORE);
        assert!(s("password1").score < MIN_SCORE);
        assert!(s("correct horse battery staple").score > MIN_SCORE);
        let weak = check_strength(&SecretString::new("password1".into()), false).unwrap_err();
        assert!(matches!(weak, PromptError::Weak { .. }));
        let msg = weak.to_string();
        assert!(
            !msg.contains("password1"),
            "the passphrase is never echoed: {msg}"
        );
        assert!(msg.contains("--allow-weak-passphrase"), "{msg}");
        assert!(check_strength(&SecretString::new("password1".into()), true).is_ok());
        // A very long passphrase is judged on its start, in bounded time.
        let long = "x".repeat(60_000);
        let t = std::time::Instant::now();
        assert!(s(&long).score < MIN_SCORE);
        assert!(t.elapsed() < std::time::Duration::from_secs(2));
    }

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
        assert!(matches!(read_file(&p), Err(PromptError::Unusable { .. })));
        std::fs::write(&p, b"\xff\xfe").unwrap();
        assert!(matches!(read_file(&p), Err(PromptError::Unusable { .. })));
    }
}
