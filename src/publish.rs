//! Writing verifier files, and keeping the published ones current after every change.
//!
//! Invariant: a verifier file is only ever replaced by one of the same or a newer vault
//! revision (a slow or stale writer cannot undo a revocation), atomically, under the
//! file's own lock, keeping its mode and group; a file that is not a verifier is never
//! overwritten.

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::envstore::refuse_vault;
use crate::error::{Error, Result};
use mcp_key_vault::fsio::{self, Lock};
use mcp_key_vault::verify::{MAX_VERIFIER_BYTES, VERIFIER_FORMAT};
use mcp_key_vault::{KeyId, Permission, Published, Vault};
use mcp_key_verifier::time::format as fmt_time;

#[derive(Serialize)]
struct FileOut<'a> {
    format: &'static str,
    version: u32,
    algorithm: &'static str,
    hash_key: String,
    generated_at: String,
    revision: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    save_digest: Option<String>,
    keys: Vec<EntryOut<'a>>,
}

#[derive(Serialize)]
struct EntryOut<'a> {
    id: &'a KeyId,
    hash: String,
    status: &'static str,
    expires_at: Option<String>,
    permissions: &'a [Permission],
    #[serde(skip_serializing_if = "Option::is_none")]
    rate_limit: Option<LimitOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
}

/// An entry's `rate_limit` (docs/verifier.md, "Rate limits").
#[derive(Serialize)]
struct LimitOut {
    requests: u32,
    window_seconds: u32,
}

/// The bytes of a verifier file for `vault` as of `now` (docs/verifier.md): ids, keyed
/// hashes, the hash key, status, expiry, permissions, the revision and the save it comes
/// from, and with `names` the key names, signed by the vault. Nothing from which a key
/// can be computed.
pub fn verifier_bytes(vault: &Vault, names: bool, now: DateTime<Utc>) -> Vec<u8> {
    let hash_key = zeroize::Zeroizing::new(B64.encode(vault.hash_key().expose()));
    let limits = &vault.payload().limits;
    let f = FileOut {
        format: VERIFIER_FORMAT,
        version: 1,
        algorithm: "hmac-sha256",
        hash_key: hash_key.to_string(),
        generated_at: fmt_time(&now),
        revision: vault.revision(),
        save_digest: vault.save_digest(),
        keys: vault
            .keys()
            .iter()
            .map(|k| EntryOut {
                id: &k.id,
                hash: k.hash.to_hex(),
                status: k.status(now).as_str(),
                expires_at: k.expires_at.as_ref().map(fmt_time),
                permissions: &k.permissions,
                rate_limit: limits.get(k.id.as_str()).map(|l| LimitOut {
                    requests: l.requests(),
                    window_seconds: l.window_seconds(),
                }),
                name: names.then_some(k.name.as_str()),
            })
            .collect(),
    };
    let mut out = zeroize::Zeroizing::new(
        serde_json::to_vec_pretty(&f).expect("serializing plain structs cannot fail"),
    );
    drop(f);
    out.push(b'\n');
    mcp_key_vault::verify::sign_file(vault, &out)
}

/// The revision of the verifier file at `target` (see [`existing`]).
///
/// # Errors
/// As [`existing`].
pub fn existing_revision(target: &Path) -> Result<Option<u64>> {
    Ok(existing(target)?.map(|e| e.revision))
}

/// What a verifier file on disk says about where it comes from.
#[derive(Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Existing {
    #[serde(default)]
    pub(crate) format: String,
    /// Its vault revision (0 for files of older writers).
    #[serde(default)]
    pub revision: u64,
    /// The digest of the vault save it was written from, if its writer said.
    #[serde(default)]
    pub save_digest: Option<String>,
}

impl Existing {
    /// Whether the file comes from another lineage than `vault`: its save is neither the
    /// vault's own nor one the vault remembers having come from. A vault rolled back (a
    /// backup restored) and changed again, or two vaults writing one file: at any revision,
    /// so a restored vault saved more often than it was rolled back still does not pass
    /// for current. Files without a digest (older writers) never conflict.
    pub fn conflicts_with(&self, vault: &Vault) -> bool {
        match (&self.save_digest, vault.save_digest()) {
            (Some(theirs), Some(ours)) => *theirs != ours && !vault.descends_from(theirs),
            _ => false,
        }
    }
}

/// The verifier file at `target`: `Ok(None)` when there is none (or it is empty), an
/// error when the file is something else, which is then never overwritten.
///
/// # Errors
/// [`Error::Failed`] for a file that is not a verifier, [`Error::Io`] when unreadable.
pub fn existing(target: &Path) -> Result<Option<Existing>> {
    if let Some(store) = store_of(target)? {
        let mut con = store.connect()?;
        return Ok(store.held(&mut con)?.map(|h| Existing {
            format: VERIFIER_FORMAT.into(),
            revision: h.revision,
            save_digest: (!h.digest.is_empty()).then_some(h.digest),
        }));
    }
    let Some(bytes) = fsio::read_bounded(target, MAX_VERIFIER_BYTES, "verifier file")? else {
        return Ok(None);
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    match serde_json::from_slice::<Existing>(&bytes) {
        Ok(h) if h.format == VERIFIER_FORMAT => Ok(Some(h)),
        _ => Err(Error::failed(format!(
            "{} exists and is not a verifier file; refusing to overwrite it",
            mcp_key_vault::display::path(target)
        ))),
    }
}

/// Writes the verifier of `vault` to `path` unless the file there is of a newer revision.
/// Returns the revision written.
///
/// # Errors
/// [`Error::Failed`] when the file is newer or not a verifier, [`Error::Usage`] when it is
/// the vault itself, [`Error::Io`] for I/O and ownership problems.
pub fn write_verifier(
    vault: &Vault,
    vault_path: &Path,
    path: &Path,
    names: bool,
    now: DateTime<Utc>,
    force: bool,
) -> Result<u64> {
    if let Some(store) = store_of(path)? {
        return write_store(&store, vault, names, now, force);
    }
    fsio::ensure_parent(path)?;
    refuse_link_in_foreign_dir(path)?;
    let target = fsio::resolve_symlinks(path, false)?;
    refuse_vault(&target, vault_path, "verifier file")?;
    fsio::refuse_foreign_file_in_shared_dir(&target, "verifier file")?;
    // Checked before the lock file is made: a path re-pointed at `/etc/passwd` must not
    // leave a `/etc/passwd.lock` behind. Checked again under the lock.
    existing(&target)?;
    let _lock = Lock::acquire(&target, fsio::lock_timeout(), || {})?;
    if let Some(theirs) = existing(&target)? {
        if theirs.revision > vault.revision() {
            return Err(Error::failed(format!(
                "{} holds revision {}, newer than this vault's {}: another writer has \
                 already written a later state, so nothing was written (if this vault was \
                 restored from an older backup, run `mcp-key-manager publish --force PATH` once)",
                mcp_key_vault::display::path(&target),
                theirs.revision,
                vault.revision()
            )));
        }
        if !force && theirs.conflicts_with(vault) {
            return Err(Error::failed(format!(
                "{} holds revision {} from a save this vault does not come from: the vault \
                 was rolled back (restored from a backup) and changed again, or another vault \
                 writes this file, so nothing was written (a rollback can bring back revoked \
                 keys; once you know which state is right, run `mcp-key-manager publish \
                 --force PATH`)",
                mcp_key_vault::display::path(&target),
                theirs.revision
            )));
        }
    }
    let bytes = zeroize::Zeroizing::new(verifier_bytes(vault, names, now));
    fsio::atomic_write_keeping_mode(&target, &bytes)?;
    Ok(vault.revision())
}

/// The Redis store a target names, when it is one (`redis://…?key=NAME`).
///
/// # Errors
/// [`Error::Usage`] for a malformed store URL.
pub fn store_of(target: &Path) -> Result<Option<crate::fleet::store::Store>> {
    match target.to_str() {
        Some(t) if crate::fleet::store::is_store(t) => {
            crate::fleet::store::Store::parse(t).map(Some)
        }
        _ => Ok(None),
    }
}

/// Writes the verifier of `vault` to a Redis store: one atomic script compares the
/// revision and the lineage, stores, and announces the change.
fn write_store(
    store: &crate::fleet::store::Store,
    vault: &Vault,
    names: bool,
    now: DateTime<Utc>,
    force: bool,
) -> Result<u64> {
    use crate::fleet::store::Written;
    let digest = vault.save_digest().ok_or_else(|| {
        Error::failed("a vault in format 1 is published to a store after its first save")
    })?;
    let bytes = zeroize::Zeroizing::new(verifier_bytes(vault, names, now));
    match store.publish(&bytes, vault.revision(), &digest, &vault.lineage(), force)? {
        Written::Stored | Written::Same => Ok(vault.revision()),
        Written::Ahead(r) => Err(Error::failed(format!(
            "the Redis store {} holds revision {r}, newer than this vault's {}: another writer \
             has already written a later state, so nothing was written (if this vault was \
             restored from an older backup, run `mcp-key-manager publish --force URL` once)",
            store.url(),
            vault.revision()
        ))),
        Written::Conflict(r) => Err(Error::failed(format!(
            "the Redis store {} holds revision {r} from a save this vault does not come from: \
             the vault was rolled back and changed again, or another vault writes this store, \
             so nothing was written (once you know which state is right, run \
             `mcp-key-manager publish --force URL`)",
            store.url()
        ))),
    }
}

/// Refuses to follow a link at a publish target whose directory belongs to another user:
/// that user can swap the file for a link at any moment and so choose which file we
/// replace (root publishing into a directory a service account owns would overwrite
/// another project's verifier, or any root-owned file). A link in a directory of ours or
/// root's is followed as before.
///
/// # Errors
/// [`Error::Io`] (`PermissionDenied`) naming the link and the directory's owner.
pub fn refuse_link_in_foreign_dir(path: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt as _;
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return Ok(());
    };
    if !meta.file_type().is_symlink() {
        return Ok(());
    }
    let dir = fsio::parent_dir(path);
    let Ok(d) = std::fs::metadata(&dir) else {
        return Ok(());
    };
    if d.uid() == fsio::euid() || d.uid() == 0 {
        return Ok(());
    }
    Err(Error::Io {
        context: format!(
            "follow the link {}: its directory {} belongs to user {}, who can point it at any \
             file at any moment; publish to the file itself, or to a directory you own",
            mcp_key_vault::display::path(path),
            mcp_key_vault::display::path(&dir),
            d.uid()
        ),
        source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
    })
}

/// Runs a `--then` command after a successful write: through `sh -c`, with
/// `MCP_VERIFIER_PATH` set and every passphrase variable removed from its environment,
/// stdin closed, its output on our stderr.
///
/// # Errors
/// [`Error::Io`] when it cannot start or exits non-zero.
pub fn run_then(cmd: &str, path: &Path) -> Result<()> {
    let mut child = Command::new("/bin/sh")
        .arg("-c")
        .arg(cmd)
        .env("MCP_VERIFIER_PATH", path)
        .env_remove(crate::passphrase::ENV_PASSPHRASE)
        .env_remove(crate::passphrase::ENV_PASSPHRASE_FILE)
        .env_remove(crate::passphrase::ENV_NEW_PASSPHRASE)
        .env_remove(crate::passphrase::ENV_NEW_PASSPHRASE_FILE)
        .env_remove(crate::fleet::store::ENV_PASSWORD)
        .env_remove(crate::fleet::store::ENV_PASSWORD_FILE)
        .stdin(Stdio::null())
        // Its stdout goes to our stderr: our stdout carries the command's own answer
        // (`--json`, or the key of `use --print`), which a hook's chatter must not corrupt.
        .stdout(Stdio::from(std::io::stderr()))
        .stderr(Stdio::inherit())
        // Its own process group, so a timeout stops whatever it started too.
        .process_group(0)
        .spawn()
        .map_err(|e| Error::io("run the --then command for", path, e))?;
    // It runs while the vault is locked: a hook that hangs must not hold every other
    // change hostage.
    let deadline = std::time::Instant::now() + then_timeout();
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20))
            }
            Ok(None) => {
                kill_group(child.id());
                let _ = child.wait();
                return Err(Error::io(
                    "run the --then command for",
                    path,
                    std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("it ran longer than {:?} and was stopped", then_timeout()),
                    ),
                ));
            }
            Err(e) => return Err(Error::io("run the --then command for", path, e)),
        }
    };
    if !status.success() {
        return Err(Error::io(
            "run the --then command for",
            path,
            std::io::Error::other(format!("it exited with {status}")),
        ));
    }
    Ok(())
}

/// Kills the process group `pgid` (a `--then` command and everything it started).
fn kill_group(pgid: u32) {
    let Ok(pgid) = libc::pid_t::try_from(pgid) else {
        return;
    };
    // SAFETY: kill(2) with a negative pid signals that process group; it touches no memory
    // of ours. The group is the one we created for this child and have not yet reaped.
    #[allow(unsafe_code)]
    unsafe {
        libc::kill(-pgid, libc::SIGKILL);
    }
}

/// How long a `--then` command may run: `MCP_THEN_TIMEOUT` seconds, default 60.
fn then_timeout() -> std::time::Duration {
    std::env::var("MCP_THEN_TIMEOUT")
        .ok()
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0 && *s <= 3600.0)
        .map_or(
            std::time::Duration::from_secs(60),
            std::time::Duration::from_secs_f64,
        )
}

/// Writes one published file and runs `then`, this user's command for it.
///
/// # Errors
/// As [`write_verifier`] and [`run_then`].
pub fn publish_one(
    vault: &Vault,
    vault_path: &Path,
    p: &Published,
    then: Option<&str>,
    now: DateTime<Utc>,
    force: bool,
) -> Result<()> {
    write_verifier(vault, vault_path, &p.path, p.names, now, force)?;
    // Never `p.then`: a command kept in the shared vault by an older release is not run
    // (crate::hooks).
    match then {
        Some(cmd) => run_then(cmd, &p.path),
        None => Ok(()),
    }
}

/// Rewrites every published verifier of `vault`, running this user's `--then` commands;
/// the after-commit hook of the store. One file's failure does not stop the others.
///
/// # Errors
/// [`Error::Io`] naming each file left stale and why, or the hooks file when it cannot be
/// read (then the files are written and no command runs); the vault change itself stands.
pub fn republish(
    vault: &Vault,
    vault_path: &Path,
    now: DateTime<Utc>,
    forced: &[PathBuf],
) -> Result<Vec<PathBuf>> {
    let mut failed = Vec::new();
    let mut written = Vec::new();
    let hooks = match vault.published() {
        [] => None,
        _ => crate::hooks::Hooks::read(vault_path)
            .map_err(|e| {
                failed.push(format!(
                    "{}: {e} (the files were written; no --then command was run)",
                    mcp_key_vault::display::path(&crate::hooks::location())
                ))
            })
            .ok(),
    };
    let unread = failed.len();
    for p in vault.published() {
        let then = hooks.as_ref().and_then(|h| h.get(&p.path));
        match publish_one(vault, vault_path, p, then, now, forced.contains(&p.path)) {
            Ok(()) => written.push(p.path.clone()),
            Err(e) => failed.push(format!("{}: {e}", mcp_key_vault::display::path(&p.path))),
        }
    }
    if failed.is_empty() {
        return Ok(written);
    }
    let stale = failed.len() - unread;
    Err(Error::Io {
        context: format!(
            "publish the verifier file{} after the change (the change itself was saved; the \
             next change retries, or run `mcp-key-manager publish PATH` once the problem is \
             fixed):\n  {}",
            if failed.len() == 1 { "" } else { "s" },
            failed.join("\n  ")
        ),
        source: std::io::Error::other(match stale {
            0 => "the --then commands were not run".to_string(),
            _ => format!("{stale} of {} not done", vault.published().len()),
        }),
    })
}
