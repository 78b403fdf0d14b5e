//! `unlock` and `lock`, and the bridge between an unlock session and a format-1 vault:
//! what a session holds for it, and how a command gets the vault's key — a live session
//! first, then the passphrase sources (three tries at a terminal).
//!
//! Invariants: a session's key is used only for the exact KDF settings and salt it was
//! derived for; anything else falls back to the passphrase. A session starts only from the
//! passphrase itself, never from another session. Only this file knows the layout of the
//! session secret (the agent holds it as opaque bytes).

use super::*;
use crate::agent;
use crate::cli::{LockArgs, UnlockArgs};
use crate::secret::{SecretBytes, SecretKey};
use crate::vault::crypto;
use crate::vault::records::fmt_time;

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
fn canonical(ctx: &Ctx) -> Result<PathBuf> {
    let p = &ctx.vault_path;
    match std::fs::canonicalize(p) {
        Ok(c) => Ok(c),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let dir = match p.parent() {
                Some(d) if !d.as_os_str().is_empty() => d,
                _ => Path::new("."),
            };
            let name = p
                .file_name()
                .ok_or_else(|| Error::io("resolve the vault path", p, e))?;
            std::fs::canonicalize(dir)
                .map(|d| d.join(name))
                .map_err(|e| Error::io("resolve the vault path", p, e))
        }
        Err(e) => Err(Error::io("resolve the vault path", p, e)),
    }
}

/// A key cache seeded from this vault's live session, when there is one and it fits `env`.
/// Problems with the session are warnings: the passphrase still works.
fn from_session(ctx: &Ctx, env: &Envelope) -> Option<KeyCache> {
    let canon = canonical(ctx).ok()?;
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

/// A key cache from the passphrase sources, proved by decrypting `env`; at a terminal a
/// wrong passphrase may be typed again (three tries).
fn from_passphrase(ctx: &Ctx, env: &Envelope, prompt: &str) -> Result<KeyCache> {
    ctx.source.with_retries(prompt, |pass| {
        let mut cache = KeyCache::new(pass);
        let shown = announce_unlock(&env.kdf);
        let key = cache.key_for(env);
        clear_announcement(shown);
        // Decrypting proves the passphrase; the plaintext is wiped as it is dropped.
        crypto::open(&key?, &env.nonce, &env.ad(), &env.ciphertext)?;
        Ok(cache)
    })
}

/// The key cache a command unlocks `env` with: the live session's key, else the
/// passphrase (verified against `env`, three tries at a terminal).
///
/// # Errors
/// As [`crate::passphrase::Source::with_retries`]; exit 3 after a wrong passphrase.
pub(super) fn key_cache(ctx: &Ctx, env: &Envelope, prompt: &str) -> Result<KeyCache> {
    match from_session(ctx, env) {
        Some(c) => Ok(c),
        None => from_passphrase(ctx, env, prompt),
    }
}

/// Opens `env` for reading: as [`key_cache`], decrypting once.
///
/// # Errors
/// As [`key_cache`] and [`Vault::unlock`].
pub(super) fn open(ctx: &Ctx, env: &Envelope, prompt: &str) -> Result<Vault> {
    if let Some(mut c) = from_session(ctx, env) {
        return unlock(&mut c, env);
    }
    ctx.source
        .with_retries(prompt, |pass| unlock(&mut KeyCache::new(pass), env))
}

/// Ends the vault's session after its key changed (rekey). A failure is a warning: the
/// old session's key no longer fits the vault, so it cannot open it anyway.
pub(super) fn end_after_rekey(ctx: &Ctx) {
    let Ok(canon) = canonical(ctx) else { return };
    match agent::invalidate(&canon) {
        Ok(true) => eprintln!("The unlock session of this vault ended with the old passphrase."),
        Ok(false) => {}
        Err(e) => warn(&format!("could not end the unlock session: {e}")),
    }
}

/// `unlock`: start a session (or replace the live one), or report on it.
pub(super) fn unlock_cmd(ctx: &mut Ctx, a: &UnlockArgs) -> Result<()> {
    if a.status {
        return status(ctx, a.json);
    }
    let env = read_envelope(&ctx.vault_path)?.ok_or_else(|| no_vault(&ctx.vault_path))?;
    warn_if_exposed(&ctx.vault_path, "vault");
    let canon = canonical(ctx)?;
    // Never from a live session: starting or extending one takes the passphrase.
    let mut cache = from_passphrase(ctx, &env, "Vault passphrase: ")?;
    let key = cache.key_for(&env)?;
    drop(cache);
    let info = agent::start(&canon, encode(&env.kdf, &env.salt, &key), a.timeout)?;
    drop(key);
    if !info.memory_locked {
        warn(
            "the system refused to lock the session's memory (mlock; see `ulimit -l`), so \
             the key may reach swap",
        );
    }
    if a.json {
        return print_json(
            ctx,
            &serde_json::json!({
                "vault": canon.display().to_string(),
                "unlocked": true,
                "expires_at": fmt_time(&info.expires_at),
                "pid": info.pid,
                "memory_locked": info.memory_locked,
            }),
        );
    }
    writeln!(
        ctx.out,
        "Unlocked {} until {} ({}): commands need no passphrase until then.\n\
         End it sooner with `mcp-key-manager lock`.",
        canon.display(),
        human_time(&info.expires_at),
        relative(&info.expires_at, Utc::now()),
    )?;
    Ok(())
}

/// `unlock --status`: exit 0 and the expiry when a session is live, exit 1 when none.
fn status(ctx: &mut Ctx, json: bool) -> Result<()> {
    // A vault that cannot be resolved (deleted, moved) is shown by the path given.
    let (shown, info) = match canonical(ctx) {
        Ok(c) => {
            let info = agent::status(&c)?;
            (c, info)
        }
        Err(_) => (ctx.vault_path.clone(), None),
    };
    if json {
        print_json(
            ctx,
            &serde_json::json!({
                "vault": shown.display().to_string(),
                "live": info.is_some(),
                "expires_at": info.as_ref().map(|i| fmt_time(&i.expires_at)),
                "pid": info.as_ref().map(|i| i.pid),
            }),
        )?;
    } else if let Some(i) = &info {
        writeln!(
            ctx.out,
            "A session for {} is live until {} ({}); agent pid {}.",
            shown.display(),
            human_time(&i.expires_at),
            relative(&i.expires_at, Utc::now()),
            i.pid
        )?;
    } else {
        writeln!(
            ctx.out,
            "No session is live for {}; start one with `mcp-key-manager unlock`.",
            shown.display()
        )?;
    }
    if info.is_none() {
        return Err(Error::Silent);
    }
    Ok(())
}

/// `lock`: end the session; succeeds whether or not one was live.
pub(super) fn lock_cmd(ctx: &mut Ctx, a: &LockArgs) -> Result<()> {
    let (shown, ended) = match canonical(ctx) {
        Ok(c) => {
            let ended = agent::stop(&c)?;
            (c, ended)
        }
        Err(_) => (ctx.vault_path.clone(), false),
    };
    if a.json {
        return print_json(
            ctx,
            &serde_json::json!({"vault": shown.display().to_string(), "ended": ended}),
        );
    }
    if ended {
        writeln!(ctx.out, "Locked {}: the session ended.", shown.display())?;
    } else {
        writeln!(ctx.out, "No session was live for {}.", shown.display())?;
    }
    Ok(())
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
