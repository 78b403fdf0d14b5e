//! The commands run after a verifier file is written (`publish PATH --then CMD`), kept in
//! this user's configuration (`hooks.json`, see [`crate::userconfig`]) and never in the
//! vault: a vault is shared, and a command in it would run as whoever changes the vault
//! next, whoever wrote it (a former member, or the author of a forged vault). git keeps
//! hooks out of the repository for the same reason.
//!
//! Invariant: a command runs only for the vault and the verifier file it was added for, as
//! the user who added it. A command an older release kept in the vault is never run: the
//! next change drops it from the vault and says so once.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::userconfig;
use mcp_key_vault::display::{path as shown, sanitize};
use mcp_key_vault::{Published, Vault};

/// The file in the configuration directory.
pub const FILE: &str = "hooks.json";

/// The file's format version.
const VERSION: u32 = 1;

/// `hooks.json`: for each vault (its canonical path), each verifier file's command.
#[derive(Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct HooksFile {
    version: u32,
    #[serde(default)]
    vaults: BTreeMap<String, BTreeMap<String, String>>,
}

impl HooksFile {
    fn parse(bytes: Option<&[u8]>) -> Result<HooksFile> {
        let Some(bytes) = bytes else {
            return Ok(HooksFile {
                version: VERSION,
                vaults: BTreeMap::new(),
            });
        };
        let file: HooksFile = serde_json::from_slice(bytes).map_err(|e| {
            Error::corrupt(format!(
                "{} is not a hooks file ({e}); fix it, or remove it and add your --then \
                 commands again",
                shown(&location())
            ))
        })?;
        if file.version != VERSION {
            return Err(Error::corrupt(format!(
                "{} is of version {} (this release reads {VERSION}); it was written by a \
                 newer release",
                shown(&location()),
                file.version
            )));
        }
        Ok(file)
    }
}

/// Where the hooks file is (or would be): shown as the source of each command.
pub fn location() -> PathBuf {
    userconfig::dir().unwrap_or_default().join(FILE)
}

/// A path as a key of the file (JSON keys are text).
fn key(what: &str, path: &Path) -> Result<String> {
    path.to_str().map(String::from).ok_or_else(|| {
        Error::usage(format!(
            "the {what} path {} is not valid UTF-8, which a --then command needs",
            shown(path)
        ))
    })
}

/// The vault's key: its canonical path, the same however it was named.
fn vault_key(vault: &Path) -> Result<String> {
    let canonical = std::fs::canonicalize(vault).map_err(|e| Error::io("resolve", vault, e))?;
    key("vault", &canonical)
}

/// The vault's path as the source of a command it carries: absolute where it resolves.
pub fn vault_shown(vault: &Path) -> String {
    shown(&std::fs::canonicalize(vault).unwrap_or_else(|_| vault.to_path_buf()))
}

/// This user's commands for one vault.
pub struct Hooks {
    by_target: BTreeMap<String, String>,
}

impl Hooks {
    /// This user's commands for the vault at `vault` (none without a configuration file).
    ///
    /// # Errors
    /// [`Error::Io`] when the configuration directory or file is not this user's own or
    /// cannot be read, or the vault cannot be resolved; [`Error::Corrupt`] for a file that
    /// is not a hooks file.
    pub fn read(vault: &Path) -> Result<Hooks> {
        let bytes = userconfig::read(FILE)?;
        let mut file = HooksFile::parse(bytes.as_deref())?;
        let by_target = file.vaults.remove(&vault_key(vault)?).unwrap_or_default();
        Ok(Hooks { by_target })
    }

    /// The command for the verifier file `target`, as the vault records its path.
    pub fn get(&self, target: &Path) -> Option<&str> {
        let target = target.to_str()?;
        self.by_target.get(target).map(String::as_str)
    }
}

/// Sets (`Some`) or removes (`None`) this user's command for `target` of `vault`, under
/// the file's lock, replacing the file atomically. Returns the command it replaces.
///
/// # Errors
/// As [`userconfig::update`]; [`Error::Corrupt`] for a file that is not a hooks file;
/// [`Error::Usage`] for a path that is not UTF-8.
pub fn set(vault: &Path, target: &Path, command: Option<&str>) -> Result<Option<String>> {
    let vault = vault_key(vault)?;
    let target = key("verifier file", target)?;
    if command.is_none() && userconfig::read(FILE)?.is_none() {
        // Nothing to remove: no directory or file is made for it.
        return Ok(None);
    }
    let mut before = None;
    userconfig::update(FILE, |bytes| {
        let mut file = HooksFile::parse(bytes)?;
        let of_vault = file.vaults.entry(vault.clone()).or_default();
        before = match command {
            Some(cmd) => of_vault.insert(target.clone(), cmd.to_string()),
            None => of_vault.remove(&target),
        };
        if before.as_deref() == command {
            return Ok(None);
        }
        if of_vault.is_empty() {
            file.vaults.remove(&vault);
        }
        let mut out = serde_json::to_vec_pretty(&file).expect("a map of strings serializes");
        out.push(b'\n');
        Ok(Some(out))
    })?;
    Ok(before)
}

/// Drops from `vault` the commands an older release kept in it (they are never run), and
/// returns the records that carried one. The caller says so once the change is saved.
pub fn drop_from_vault(vault: &mut Vault, now: DateTime<Utc>) -> Vec<Published> {
    let carried: Vec<Published> = vault
        .published()
        .iter()
        .filter(|p| p.then.is_some())
        .cloned()
        .collect();
    for p in &carried {
        vault.publish(
            Published {
                then: None,
                ..p.clone()
            },
            now,
        );
    }
    carried
}

/// What to say once a change dropped the commands `carried` from the vault at `vault`.
pub fn dropped_notice(vault: &Path, carried: &[Published]) -> String {
    let list: Vec<String> = carried
        .iter()
        .map(|p| {
            format!(
                "{}: {}",
                shown(&p.path),
                sanitize(p.then.as_deref().unwrap_or_default())
            )
        })
        .collect();
    let (some, them) = match carried.len() {
        1 => ("a --then command".to_string(), "it"),
        n => (format!("{n} --then commands"), "them"),
    };
    format!(
        "the vault {} carries {some} written by an older release; {them} did not run and \
         this change removes {them} from the vault (a vault is shared: a command in it would \
         run as whoever changes the vault next):\n  {}\nTo run a command after each write, \
         add it for yourself (kept in {}): mcp-key-manager publish PATH --then CMD",
        vault_shown(vault),
        list.join("\n  "),
        shown(&location())
    )
}
