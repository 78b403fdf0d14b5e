//! The bridge between an unlock session and a vault: what a session holds for it, and how
//! a command gets the vault's key — a live session first, then the passphrase sources.
//!
//! Invariants: a session's key is used only for the exact KDF settings and salt it was
//! derived for; anything else falls back to the passphrase. A session starts only from the
//! passphrase itself, never from another session. Only this file knows the layout of the
//! session secret (the agent holds it as opaque bytes).

use std::path::{Path, PathBuf};

use crate::agent;
use crate::error::{Error, Result};
use mcp_key_vault::secret::{SecretBytes, SecretKey};
use mcp_key_vault::{Envelope, KdfParams, KeyCache};

use crate::redact::warn;

/// First byte of a format-1 session secret.
const BLOB_V1: u8 = 1;

/// The session secret of a format-1 vault: tag, KDF settings (3 × u32 LE), salt length
/// (u8) and salt, then the 32-byte derived key.
pub(super) fn encode(kdf: &KdfParams, salt: &[u8], key: &SecretKey) -> SecretBytes {
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
pub(super) fn canonical(p: &Path) -> Result<PathBuf> {
    match std::fs::canonicalize(p) {
        Ok(c) => Ok(c),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let dir = mcp_key_vault::fsio::parent_dir(p);
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
pub(super) fn session_key(vault: &Path) -> Option<mcp_key_vault::v2::SlotKey> {
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
