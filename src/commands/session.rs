//! `unlock` and `lock`, and the bridge between an unlock session and a format-1 vault:
//! what a session holds for it, and how a command gets the vault's key — a live session
//! first, then the passphrase sources (three tries at a terminal).
//!
//! Invariants: a session's key is used only for the exact KDF settings and salt it was
//! derived for; anything else falls back to the passphrase. A session starts only from the
//! passphrase itself, never from another session. Only this file knows the layout of the
//! session secret (the agent holds it as opaque bytes).

use std::io;

use serde::Serialize;

use super::output::{human_time, relative, Human, Report};
use super::*;
use crate::agent;
use crate::cli::UnlockArgs;
use crate::secret::{SecretBytes, SecretKey};
use crate::time::format as fmt_time;
use crate::vault::{Envelope, KeyCache};

/// First byte of a format-1 session secret.
const BLOB_V1: u8 = 1;

/// The session secret of a format-1 vault: tag, KDF settings (3 × u32 LE), salt length
/// (u8) and salt, then the 32-byte derived key.
fn encode(kdf: &KdfParams, salt: &[u8], key: &SecretKey) -> SecretBytes {
    let mut b = Vec::with_capacity(1 + 12 + 1 + salt.len() + 32);
    b.push(BLOB_V1);
    for v in [kdf.memory_kib, kdf.iterations, kdf.parallelism] {
        b.extend_from_slice(&v.to_le_bytes());
    }
    b.push(u8::try_from(salt.len()).expect("salts are 16 bytes, bounded by the format"));
    b.extend_from_slice(salt);
    b.extend_from_slice(key.expose());
    SecretBytes::new(b)
}

/// The inverse of [`encode`]; `None` for anything else (another format's session).
fn decode(blob: &SecretBytes) -> Option<(KdfParams, Vec<u8>, SecretKey)> {
    let b = blob.expose();
    let (&tag, rest) = b.split_first()?;
    if tag != BLOB_V1 || rest.len() < 13 {
        return None;
    }
    let u = |i: usize| u32::from_le_bytes(rest[i..i + 4].try_into().expect("4 bytes"));
    let kdf = KdfParams {
        memory_kib: u(0),
        iterations: u(4),
        parallelism: u(8),
    };
    let salt_len = usize::from(rest[12]);
    let rest = &rest[13..];
    if rest.len() != salt_len + 32 {
        return None;
    }
    let mut key = zeroize::Zeroizing::new([0u8; 32]);
    key.copy_from_slice(&rest[salt_len..]);
    Some((kdf, rest[..salt_len].to_vec(), SecretKey::new(*key)))
}

/// The vault's identity for sessions: its canonical path. A vault file that is gone (so
/// that `lock` can still end its session) is named by its canonical directory.
fn canonical(p: &Path) -> Result<PathBuf> {
    match std::fs::canonicalize(p) {
        Ok(c) => Ok(c),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let dir = crate::fsio::parent_dir(p);
            let name = p
                .file_name()
                .ok_or_else(|| Error::io("resolve the vault path", p, e))?;
            std::fs::canonicalize(&dir)
                .map(|d| d.join(name))
                .map_err(|e| Error::io("resolve the vault path", p, e))
        }
        Err(e) => Err(Error::io("resolve the vault path", p, e)),
    }
}

/// A key cache seeded from this vault's live session, when there is one and it fits `env`.
/// Problems with the session are warnings: the passphrase still works.
pub(super) fn from_session(vault: &Path, env: &Envelope) -> Option<KeyCache> {
    let canon = canonical(vault).ok()?;
    match agent::fetch(&canon) {
        Ok(Some(blob)) => match decode(&blob) {
            Some((kdf, salt, key)) if kdf == env.kdf && salt == env.salt => {
                Some(KeyCache::from_key(kdf, salt, key))
            }
            _ => {
                warn(
                    "the unlock session of this vault no longer fits it (its passphrase \
                     changed); ignoring it: run `mcp-key-manager lock`",
                );
                None
            }
        },
        Ok(None) => None,
        Err(e) => {
            warn(&format!("not using the unlock session: {e}"));
            None
        }
    }
}

/// The derived key this vault's live session holds, whatever it fits: format 1's vault key,
/// or the key of the format-2 passphrase slot derived with the same settings and salt (the
/// store checks which slot, if any, it opens).
pub(super) fn session_key(vault: &Path) -> Option<crate::vault::v2::SlotKey> {
    let canon = canonical(vault).ok()?;
    match agent::fetch(&canon) {
        Ok(Some(blob)) => decode(&blob),
        Ok(None) => None,
        Err(e) => {
            warn(&format!("not using the unlock session: {e}"));
            None
        }
    }
}

/// Ends the vault's session after its key changed (rekey). A failure is a warning: the
/// old session's key no longer fits the vault, so it cannot open it anyway.
pub(super) fn end_after_rekey(vault: &Path) {
    let Ok(canon) = canonical(vault) else { return };
    match agent::invalidate(&canon) {
        Ok(true) => eprintln!("The unlock session of this vault ended with the old passphrase."),
        Ok(false) => {}
        Err(e) => warn(&format!("could not end the unlock session: {e}")),
    }
}

#[derive(Serialize)]
struct Session {
    vault: String,
    /// Set by `unlock`.
    #[serde(skip_serializing_if = "Option::is_none")]
    unlocked: Option<bool>,
    /// Set by `unlock --status`.
    #[serde(skip_serializing_if = "Option::is_none")]
    live: Option<bool>,
    expires_at: Option<String>,
    pid: Option<u32>,
    memory_locked: Option<bool>,
    #[serde(skip)]
    expires: Option<chrono::DateTime<Utc>>,
    #[serde(skip)]
    started: bool,
}

impl Report for Session {
    fn human(&self, h: &mut Human<'_>) -> io::Result<()> {
        match (&self.expires, self.started) {
            (Some(t), true) => writeln!(
                h.out,
                "Unlocked {} until {} ({}): commands need no passphrase until then.\n\
                 End it sooner with `mcp-key-manager lock`.",
                self.vault,
                human_time(t),
                relative(t, Utc::now()),
            ),
            (Some(t), false) => writeln!(
                h.out,
                "A session for {} is live until {} ({}); agent pid {}.",
                self.vault,
                human_time(t),
                relative(t, Utc::now()),
                self.pid.unwrap_or_default()
            ),
            (None, _) => writeln!(
                h.out,
                "No session is live for {}; start one with `mcp-key-manager unlock`.",
                self.vault
            ),
        }
    }

    fn ok(&self) -> bool {
        self.unlocked.or(self.live).unwrap_or(false)
    }
}

/// `unlock`: start a session (or replace the live one), or report on it.
pub(super) fn unlock_cmd(ctx: &mut Ctx, a: UnlockArgs) -> Result<()> {
    if a.status {
        return status(ctx, a.out.output());
    }
    let canon = canonical(&ctx.vault_path)?;
    // Never from a live session: starting or extending one takes the passphrase. The
    // store proves it by decrypting; the key it derived is what the session holds.
    let mut store = ctx.store().without_session();
    drop(store.open()?);
    // A format-2 vault opened through an age identity has no passphrase key to hold.
    let (kdf, salt, key) = store.derived_key().ok_or_else(|| {
        Error::usage(
            "an unlock session holds a passphrase's key; this vault was opened with an age \
             identity, which needs no session (unset MCP_KEY_VAULT_IDENTITY to unlock with \
             the passphrase)",
        )
    })?;
    drop(store);
    let info = agent::start(&canon, encode(&kdf, &salt, &key), a.timeout)?;
    drop(key);
    if !info.memory_locked {
        warn(
            "the system refused to lock the session's memory (mlock; see `ulimit -l`), so \
             the key may reach swap",
        );
    }
    let r = Session {
        vault: crate::display::path(&canon),
        unlocked: Some(true),
        live: None,
        expires_at: Some(fmt_time(&info.expires_at)),
        pid: Some(info.pid),
        memory_locked: Some(info.memory_locked),
        expires: Some(info.expires_at),
        started: true,
    };
    ctx.emit(a.out.output(), &r)
}

/// `unlock --status`: exit 0 and the expiry when a session is live, exit 1 when none.
fn status(ctx: &mut Ctx, output: Output) -> Result<()> {
    // A vault that cannot be resolved (deleted, moved) is shown by the path given.
    let (shown, info) = match canonical(&ctx.vault_path) {
        Ok(c) => {
            let info = agent::status(&c).unwrap_or_else(|e| {
                warn(&format!("cannot ask the session agent: {e}"));
                None
            });
            (c, info)
        }
        Err(_) => (ctx.vault_path.clone(), None),
    };
    let r = Session {
        vault: crate::display::path(&shown),
        unlocked: None,
        live: Some(info.is_some()),
        expires_at: info.as_ref().map(|i| fmt_time(&i.expires_at)),
        pid: info.as_ref().map(|i| i.pid),
        memory_locked: info.as_ref().map(|i| i.memory_locked),
        expires: info.as_ref().map(|i| i.expires_at),
        started: false,
    };
    ctx.emit(output, &r)
}

#[derive(Serialize)]
struct Locked {
    vault: String,
    ended: bool,
}

impl Report for Locked {
    fn human(&self, h: &mut Human<'_>) -> io::Result<()> {
        if self.ended {
            writeln!(h.out, "Locked {}: the session ended.", self.vault)
        } else {
            writeln!(h.out, "No session was live for {}.", self.vault)
        }
    }
}

/// `lock`: end the session; succeeds whether or not one was live.
pub(super) fn lock_cmd(ctx: &mut Ctx, a: crate::cli::JsonFlag) -> Result<()> {
    let (shown, ended) = match canonical(&ctx.vault_path) {
        Ok(c) => (c.clone(), agent::stop(&c)?),
        Err(_) => (ctx.vault_path.clone(), false),
    };
    let r = Locked {
        vault: crate::display::path(&shown),
        ended,
    };
    ctx.emit(a.output(), &r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_secret_round_trips_and_rejects_other_shapes() {
        let kdf = KdfParams::MINIMUM;
        let salt = vec![7u8; 16];
        let blob = encode(&kdf, &salt, &SecretKey::new([9; 32]));
        let (k, s, key) = decode(&blob).unwrap();
        assert_eq!((k, s), (kdf, salt));
        assert_eq!(key.expose(), &[9; 32]);
        let mut other = blob.expose().to_vec();
        other[0] = 2;
        assert!(decode(&SecretBytes::new(other)).is_none());
        let short = blob.expose()[..blob.len() - 1].to_vec();
        assert!(decode(&SecretBytes::new(short)).is_none());
        assert!(decode(&SecretBytes::new(Vec::new())).is_none());
    }
}
