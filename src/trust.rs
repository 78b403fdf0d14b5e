//! Which vaults this user trusts: the `known_vaults` record in the user's configuration
//! directory (canonical vault path → fingerprint), like ssh's `known_hosts`.
//!
//! The rule (docs/commands.md, "Trusting a vault"): a passphrase slot bound to the vault's
//! signing key proves the vault (only a passphrase holder can bind it) and records its
//! fingerprint; an unbound passphrase slot (made before binding) is trusted on first use and
//! must match the record afterwards (slots are public header data a forger can copy); an
//! age identity proves nothing about who made the vault (its recipient is public), so an
//! identity open is trusted only when the fingerprint is pinned: `--expect-vault FPR` /
//! `MCP_KEY_VAULT_FINGERPRINT`, or this record. A pin always decides. A mismatch refuses
//! with exit 3, naming both fingerprints; nothing is changed, published or run for a vault
//! refused here.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use mcp_key_vault::error::OpenError;
use mcp_key_vault::{Opened, OpenedBy};
use mcp_key_verifier::signature::{parse_pin, pin_matches};

use crate::error::{Error, Result};
use crate::redact::warn;

/// The file in the configuration directory.
const FILE: &str = "known_vaults.json";

/// What `--expect-vault` accepts besides a fingerprint: a vault written before signing.
pub const UNSIGNED: &str = "unsigned";

/// The record: canonical vault path → fingerprint.
#[derive(serde::Serialize, serde::Deserialize, Default)]
struct Known {
    version: u32,
    vaults: BTreeMap<String, String>,
}

/// The vault's name in the record: its canonical path (the path itself when it cannot
/// be resolved).
fn key(path: &Path) -> String {
    std::fs::canonicalize(path)
        .unwrap_or_else(|_| PathBuf::from(path))
        .to_string_lossy()
        .into_owned()
}

fn parse(bytes: &[u8]) -> Result<Known> {
    serde_json::from_slice(bytes).map_err(|e| {
        Error::corrupt(format!(
            "the known_vaults file in the configuration directory is not readable ({}); \
             fix or remove it",
            crate::error::json_problem(&e)
        ))
    })
}

/// The fingerprint recorded for the vault at `path`.
///
/// # Errors
/// When the record cannot be read.
pub fn known(path: &Path) -> Result<Option<String>> {
    let Some(bytes) = crate::userconfig::read(FILE)? else {
        return Ok(None);
    };
    Ok(parse(&bytes)?.vaults.remove(&key(path)))
}

/// Records `fingerprint` for the vault at `path`; says so when it replaces another.
///
/// # Errors
/// When the record cannot be written.
pub fn record(path: &Path, fingerprint: &str) -> Result<()> {
    // No configuration directory at all (no HOME, as under some service managers):
    // nothing to record in, and nothing to warn about on every command.
    if crate::userconfig::dir().is_none() {
        return Ok(());
    }
    let k = key(path);
    crate::userconfig::update(FILE, |now| {
        let mut known = match now {
            Some(b) => parse(b)?,
            None => Known {
                version: 1,
                ..Known::default()
            },
        };
        match known.vaults.insert(k.clone(), fingerprint.to_owned()) {
            Some(old) if old == fingerprint => return Ok(None),
            Some(old) => warn(&format!(
                "the vault {} now has fingerprint {fingerprint} (it was {old}), as you chose; \
                 recorded",
                mcp_key_vault::display::path(path)
            )),
            None => {}
        }
        Ok(Some(
            serde_json::to_vec_pretty(&known).expect("serializing a map cannot fail"),
        ))
    })?;
    Ok(())
}

/// A pin as given (`--expect-vault`): a fingerprint or `unsigned`.
///
/// # Errors
/// [`Error::Usage`] for anything else.
pub fn check_pin(pin: &str) -> Result<String> {
    if pin.trim().eq_ignore_ascii_case(UNSIGNED) {
        return Ok(UNSIGNED.into());
    }
    parse_pin(pin).map_err(|e| Error::usage(format!("--expect-vault: {e}")))
}

/// Decides whether to trust a vault just opened (the store's `Interaction::trust`).
///
/// # Errors
/// [`OpenError::Untrusted`] (exit 3) to refuse it.
pub fn decide(o: &Opened<'_>, pin: Option<&str>) -> std::result::Result<(), OpenError> {
    let shown = mcp_key_vault::display::path(o.path);
    let untrusted = |reason: String| OpenError::Untrusted { reason };
    let fp = o.fingerprint;
    if let Some(pin) = pin {
        return match (pin, fp) {
            (UNSIGNED, None) => Ok(()),
            (UNSIGNED, Some(f)) => Err(untrusted(format!(
                "the vault {shown} is signed ({f}) but --expect-vault said unsigned; refused"
            ))),
            (pin, Some(f)) if pin_matches(pin, f) => {
                remember(o.path, f);
                Ok(())
            }
            (pin, Some(f)) => Err(untrusted(format!(
                "the vault {shown} has fingerprint {f}, not the expected {pin}: it is not the \
                 vault you pinned (it may have been replaced); refused"
            ))),
            (pin, None) => Err(untrusted(format!(
                "the vault {shown} is not signed, and {pin} was expected: refused"
            ))),
        };
    }
    if o.proven {
        // A passphrase slot bound to this vault's key: only a holder of the passphrase can
        // have bound it, so this is the vault the slot was made for.
        if let Some(f) = fp {
            remember(o.path, f);
        }
        return Ok(());
    }
    let known = known(o.path).map_err(|e| untrusted(e.to_string()))?;
    // An age identity proves nothing about who made the vault (its recipient is public),
    // and neither does a passphrase slot not bound to this vault's key (slots are public
    // header data a forger can copy): the fingerprint must be the recorded one.
    let what = match o.by {
        OpenedBy::Passphrase => {
            "a passphrase slot not bound to it (a copy of such a slot in a \
                                 vault someone else made opens the same way)"
        }
        _ => "an identity, which proves nothing about who made it",
    };
    match (known, fp) {
        (Some(k), Some(f)) if k == f => Ok(()),
        (Some(k), Some(f)) => Err(untrusted(format!(
            "the vault {shown} has fingerprint {f}, but {k} is the one you opened here \
             before: it may have been replaced by a vault someone else made, opened with \
             {what}; refused (if it was re-created on purpose, pass --expect-vault {f} after \
             checking that fingerprint)"
        ))),
        (Some(k), None) => Err(untrusted(format!(
            "the vault {shown} is not signed, but {k} is the one you opened here before: \
             refused"
        ))),
        (None, Some(f)) => Err(untrusted(format!(
            "the vault {shown} (fingerprint {f}) was opened with {what}, and it is not \
             pinned here: check the fingerprint with whoever keeps the vault (`slot list` \
             shows it) and pass --expect-vault {f} or set MCP_KEY_VAULT_FINGERPRINT (a \
             passphrase slot is bound by your next change); refused"
        ))),
        (None, None) => Err(untrusted(format!(
            "the vault {shown} is not signed yet (written before this release) and was opened \
             with {what}: pass --expect-vault unsigned once if you know this file (its next \
             save signs it and binds your slot); refused"
        ))),
    }
}

/// Records a trusted fingerprint; a record that cannot be written is a warning (the open
/// itself was trusted).
fn remember(path: &Path, fingerprint: &str) {
    if let Err(e) = record(path, fingerprint) {
        warn(&format!("could not record the vault's fingerprint: {e}"));
    }
}

/// A save gave the vault its fingerprint: recorded (whoever made or signed the vault
/// trusts it); said once for a vault written before signing (a new one says it in its
/// own output).
pub fn now_signed(path: &Path, fingerprint: &str, created: bool) {
    remember(path, fingerprint);
    if created {
        return;
    }
    eprintln!(
        "The vault {} is now signed; its fingerprint is {fingerprint} (pin it where it is \
         opened with an identity: MCP_KEY_VAULT_FINGERPRINT).",
        mcp_key_vault::display::path(path)
    );
}
