//! One small function per subcommand, and the plumbing they share: opening the vault,
//! the locked read-modify-write, the env file, and output.
//!
//! Invariant: every change to the vault or the env file happens under that file's lock,
//! after re-reading it, and lands with one atomic replace.

mod keys;
mod lifecycle;
mod meta;
mod session;
mod verifycmd;

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use crate::cli::{Cli, Command, KdfArgs, Preset};
use crate::display::sanitize;
use crate::envfile;
use crate::error::{Error, Result};
use crate::fsio::{self, Lock};
use crate::passphrase::Source;
use crate::secret::SecretString;
use crate::vault::format::MAX_FILE_BYTES;
use crate::vault::{Envelope, KdfParams, KeyCache, KeyRecord, Vault};

/// Largest env file read.
pub const MAX_ENV_BYTES: u64 = 1024 * 1024;

/// What every command gets: resolved paths, the passphrase sources, the clock, stdout.
pub struct Ctx {
    /// The vault file.
    pub vault_path: PathBuf,
    /// The env file.
    pub env_path: PathBuf,
    /// Where the vault passphrase comes from.
    pub source: Source,
    /// The time the command runs at.
    pub now: DateTime<Utc>,
    /// Standard output.
    pub out: Box<dyn Write>,
    /// Whether human output may use colour.
    pub color: bool,
    /// The terminal width for tables, when stdout is a terminal.
    pub width: Option<usize>,
}

impl Ctx {
    fn from_cli(cli: &Cli) -> Ctx {
        let stdout_tty = std::io::stdout().is_terminal();
        // A symlinked vault is read and replaced at its target, as the env file is; a link
        // that cannot be followed is left for the command to report.
        let vault_path = fsio::resolve_symlinks(&cli.global.vault, true)
            .unwrap_or_else(|_| cli.global.vault.clone());
        Ctx {
            vault_path,
            env_path: cli.global.env_file.clone(),
            source: Source::current(cli.global.passphrase_file.clone())
                .allow_weak(cli.global.allow_weak_passphrase),
            now: chrono::DurationRound::duration_trunc(Utc::now(), chrono::Duration::seconds(1))
                .unwrap_or_else(|_| Utc::now()),
            // Rust's stdout is line-buffered: unwrapped, `list --json` makes one write(2)
            // per output line (170,000 for 10,000 keys). `run` flushes before returning.
            out: Box::new(std::io::BufWriter::new(std::io::stdout())),
            color: stdout_tty && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
            width: if stdout_tty {
                crate::sys::terminal_width()
            } else {
                None
            },
        }
    }
}

/// Runs a parsed command line.
///
/// # Errors
/// Whatever the command fails with; [`Error::exit_code`] gives the exit code.
pub fn run(cli: Cli) -> Result<()> {
    if let Command::SessionAgent(a) = &cli.command {
        return crate::agent::serve(&a.socket, std::time::Duration::from_secs(a.timeout_secs));
    }
    let mut ctx = Ctx::from_cli(&cli);
    let r = match cli.command {
        Command::Init { kdf, json } => keys::init(&mut ctx, &kdf, json),
        Command::Create {
            name,
            description,
            expires_in_days,
            use_in_env,
            permissions,
            quiet,
            json,
        } => keys::create(
            &mut ctx,
            keys::CreateArgs {
                name,
                description,
                expires_in_days,
                use_in_env,
                permissions,
                quiet,
                json,
            },
        ),
        Command::List {
            active_only,
            show_keys,
            expiring,
            json,
        } => keys::list(&mut ctx, active_only, show_keys, expiring, json),
        Command::View { id, json } => keys::view(&mut ctx, &id, json),
        Command::Revoke { id, json } => keys::revoke(&mut ctx, &id, json),
        Command::Delete { id, yes, json } => keys::delete(&mut ctx, &id, yes, json),
        Command::Use { id, print, json } => keys::use_key(&mut ctx, &id, print, json),
        Command::EnableRequirement { json } => keys::enable_requirement(&mut ctx, json),
        Command::Verify {
            from_env,
            require,
            verifier,
            json,
        } => verifycmd::verify(&mut ctx, from_env, &require, verifier.as_deref(), json),
        Command::Check {
            warn_days,
            strict,
            json,
        } => verifycmd::check(&mut ctx, warn_days, strict, json),
        Command::ExportVerifier { out, json } => verifycmd::export(&mut ctx, &out, json),
        Command::Rotate {
            id,
            grace_days,
            use_in_env,
            quiet,
            json,
        } => lifecycle::rotate(&mut ctx, &id, grace_days, use_in_env, quiet, json),
        Command::Grant {
            id,
            permissions,
            json,
        } => lifecycle::change_permissions(&mut ctx, &id, &permissions, true, json),
        Command::Deny {
            id,
            permissions,
            json,
        } => lifecycle::change_permissions(&mut ctx, &id, &permissions, false, json),
        Command::Rekey {
            kdf,
            new_passphrase_file,
            json,
        } => lifecycle::rekey(&mut ctx, &kdf, new_passphrase_file, json),
        Command::History { id, json } => lifecycle::history(&mut ctx, id.as_deref(), json),
        Command::ImportLegacy {
            path,
            keep_plaintext,
            kdf,
            json,
        } => lifecycle::import_legacy(&mut ctx, path, keep_plaintext, &kdf, json),
        Command::Completions { shell } => meta::completions(&mut ctx, shell),
        Command::Man => meta::man(&mut ctx),
        Command::Unlock(a) => session::unlock_cmd(&mut ctx, &a),
        Command::Lock(a) => session::lock_cmd(&mut ctx, &a),
        Command::SessionAgent(_) => unreachable!("handled above"),
    };
    // A command's own "no" (exit 1) must survive a reader that went away: `check | head`
    // in CI may not turn a failed check into success.
    let flushed = ctx.out.flush();
    r?;
    flushed?;
    Ok(())
}

impl From<std::io::Error> for Error {
    /// Only writes to stdout reach this conversion.
    fn from(e: std::io::Error) -> Self {
        Error::Io {
            context: "write to standard output".into(),
            source: e,
        }
    }
}

/// A warning on stderr.
pub fn warn(msg: &str) {
    eprintln!("warning: {msg}");
}

/// Whether a permission name is acceptable: `[a-z0-9_.:-]{1,64}`.
pub fn valid_permission(p: &str) -> bool {
    (1..=64).contains(&p.len())
        && p.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'.' | b':' | b'-')
        })
}

fn check_permissions(perms: &[String]) -> Result<()> {
    for p in perms {
        if !valid_permission(p) {
            return Err(Error::usage(format!(
                "the permission {:?} is not valid; use 1-64 characters of a-z 0-9 _ . : -",
                sanitize(p)
            )));
        }
    }
    Ok(())
}

/// Rejects text that could drive a terminal or is unreasonably long.
fn check_text(what: &str, s: &str, max: usize) -> Result<()> {
    if s.chars().any(crate::display::needs_escape) {
        return Err(Error::usage(format!(
            "the {what} contains control characters or terminal escape sequences; use plain text"
        )));
    }
    if s.chars().count() > max {
        return Err(Error::usage(format!(
            "the {what} is longer than {max} characters"
        )));
    }
    Ok(())
}

/// Resolves `init`-style flags into KDF settings, checked against the policy.
fn kdf_from_args(a: &KdfArgs, base: KdfParams) -> Result<KdfParams> {
    let mut k = match a.kdf_preset {
        Some(Preset::Minimum) => KdfParams::MINIMUM,
        Some(Preset::Default) => KdfParams::DEFAULT,
        Some(Preset::High) => KdfParams {
            memory_kib: 262_144,
            iterations: 4,
            parallelism: 1,
        },
        None => base,
    };
    if let Some(m) = a.kdf_memory_kib {
        k.memory_kib = m;
    }
    if let Some(t) = a.kdf_iterations {
        k.iterations = t;
    }
    if let Some(p) = a.kdf_parallelism {
        k.parallelism = p;
    }
    k.check_policy()?;
    if let Some(ms) = a.kdf_target_ms {
        k.iterations = calibrate(k, ms)?;
        k.check_policy()?;
    }
    Ok(k)
}

/// Picks the number of passes that makes one derivation take about `target_ms` here.
fn calibrate(k: KdfParams, target_ms: u64) -> Result<u32> {
    if !(50..=60_000).contains(&target_ms) {
        return Err(Error::usage("--kdf-target-ms must be between 50 and 60000"));
    }
    let probe = KdfParams { iterations: 1, ..k };
    let pass = SecretString::new("calibration".into());
    let salt = crate::rng::bytes(16);
    let start = std::time::Instant::now();
    crate::vault::crypto::derive_key(&pass, &salt, &probe)?;
    let one = start.elapsed().as_secs_f64() * 1000.0;
    let t = (target_ms as f64 / one.max(0.001)).round() as u64;
    let max_t = (crate::vault::format::bounds::WORK_KIB_MAX / u64::from(k.memory_kib))
        .min(u64::from(crate::vault::format::bounds::ITERATIONS_MAX));
    Ok(t.clamp(u64::from(KdfParams::MINIMUM.iterations), max_t) as u32)
}

/// Reads and recognises the vault file; `None` when it does not exist.
fn read_envelope(path: &Path) -> Result<Option<Envelope>> {
    match fsio::read_bounded(path, MAX_FILE_BYTES, "vault")? {
        None => Ok(None),
        Some(bytes) => Envelope::parse(&bytes).map(Some),
    }
}

fn no_vault(path: &Path) -> Error {
    Error::failed(format!(
        "no vault at {}; create one with `mcp-key-manager init` (or `create NAME`), or point \
         --vault / MCP_KEY_VAULT at it",
        path.display()
    ))
}

fn warn_if_exposed(path: &Path, what: &str) {
    if fsio::readable_by_others(path) {
        warn(&format!(
            "the {what} {} is readable by group or others; run `chmod 600 {}`",
            path.display(),
            path.display()
        ));
    }
}

/// Says on stderr that the KDF is running, when stderr is a terminal and it will take a
/// noticeable time; returns whether it did (so the line can be cleared).
fn announce_unlock(kdf: &KdfParams) -> bool {
    let slow = u64::from(kdf.memory_kib) * u64::from(kdf.iterations) >= 65_536 * 2;
    if slow && std::io::stderr().is_terminal() {
        eprint!(
            "Unlocking vault (Argon2id, {} MiB, {} passes)…",
            kdf.memory_kib / 1024,
            kdf.iterations
        );
        return true;
    }
    false
}

fn clear_announcement(shown: bool) {
    if shown {
        eprint!("\r\x1b[2K");
    }
}

fn unlock(cache: &mut KeyCache, env: &Envelope) -> Result<Vault> {
    let shown = announce_unlock(&env.kdf);
    let r = cache.unlock(env);
    clear_announcement(shown);
    let v = r?;
    if env.kdf.below_policy() {
        warn(&format!(
            "this vault's Argon2id settings ({} KiB, {} passes) are below the minimum for new \
             vaults; run `mcp-key-manager rekey` to strengthen them",
            env.kdf.memory_kib, env.kdf.iterations
        ));
    }
    Ok(v)
}

/// Opens the vault for reading (no lock: writers replace the file atomically).
fn open_vault(ctx: &Ctx) -> Result<Vault> {
    let env = read_envelope(&ctx.vault_path)?.ok_or_else(|| no_vault(&ctx.vault_path))?;
    warn_if_exposed(&ctx.vault_path, "vault");
    session::open(ctx, &env, "Vault passphrase: ")
}

fn lock(path: &Path) -> Result<Lock> {
    Lock::acquire(path, fsio::lock_timeout(), || {
        eprintln!(
            "waiting for another mcp-key-manager to release {}.lock…",
            path.display()
        );
    })
}

/// The locked read-modify-write of an existing vault. The key is derived before the lock
/// is taken (the slow part), then the file is re-read under the lock and decrypted with the
/// cached key: one derivation, one encryption, one atomic replace.
fn update<T>(ctx: &Ctx, f: impl FnOnce(&mut Vault) -> Result<T>) -> Result<T> {
    let read = || {
        fsio::read_bounded(&ctx.vault_path, MAX_FILE_BYTES, "vault")?
            .ok_or_else(|| no_vault(&ctx.vault_path))
    };
    let first = read()?;
    let env = Envelope::parse(&first)?;
    warn_if_exposed(&ctx.vault_path, "vault");
    let mut cache = session::key_cache(ctx, &env, "Vault passphrase: ")?;
    let _lock = lock(&ctx.vault_path)?;
    // Re-read under the lock, but parse again only if another writer replaced the file
    // meanwhile: comparing bytes costs far less than parsing and decoding them.
    let again = read()?;
    let env = if again == first {
        env
    } else {
        drop(env);
        Envelope::parse(&again)?
    };
    drop((first, again));
    let mut vault = unlock(&mut cache, &env)?;
    drop(env);
    let out = f(&mut vault)?;
    fsio::atomic_write(&ctx.vault_path, &vault.to_bytes())?;
    Ok(out)
}

/// As [`update`], but a missing vault is created first (with a twice-asked passphrase).
fn update_or_create<T>(
    ctx: &Ctx,
    kdf: KdfParams,
    f: impl FnOnce(&mut Vault) -> Result<T>,
) -> Result<T> {
    // `update` reads, parses and reports on an existing file; parsing it here as well
    // would cost a third pass over a large vault.
    if ctx.vault_path.exists() {
        return update(ctx, f);
    }
    let pass = ctx.source.get_new("the new vault")?;
    let fresh = Vault::create(&pass, kdf)?;
    let mut cache = KeyCache::new(pass);
    cache.remember(&fresh);
    fsio::ensure_parent(&ctx.vault_path)?;
    let _lock = lock(&ctx.vault_path)?;
    // Another process may have created the vault while we derived our key.
    let mut vault = match read_envelope(&ctx.vault_path)? {
        Some(env) => unlock(&mut cache, &env)?,
        None => {
            let mut v = fresh;
            let now = ctx.now;
            v.record(now, "init", None, None);
            v
        }
    };
    let out = f(&mut vault)?;
    fsio::atomic_write(&ctx.vault_path, &vault.to_bytes())?;
    Ok(out)
}

/// Refuses to write `target` (an env file or a verifier) when it is the vault itself: a
/// plaintext key appended to the vault would corrupt it and sit there in clear.
fn refuse_vault(ctx: &Ctx, target: &Path, what: &str) -> Result<()> {
    if fsio::same_file(target, &ctx.vault_path) {
        return Err(Error::usage(format!(
            "the {what} {} is the vault itself; choose another path",
            target.display()
        )));
    }
    Ok(())
}

/// Sets variables in the env file under its lock, following a symlink to its target and
/// keeping every other byte.
fn write_env(ctx: &Ctx, assignments: &[(&str, &str)]) -> Result<()> {
    let target = fsio::resolve_symlinks(&ctx.env_path, false)?;
    refuse_vault(ctx, &target, "env file")?;
    let _lock = lock(&target)?;
    write_env_locked(&target, assignments)
}

/// As `write_env`, for a caller that already holds the lock of `target` (the resolved env
/// file).
fn write_env_locked(target: &Path, assignments: &[(&str, &str)]) -> Result<()> {
    let old =
        fsio::read_bounded(target, MAX_ENV_BYTES, "env file").map_err(|e| env_error(e, target))?;
    let new = envfile::apply(old.as_deref().unwrap_or(b""), assignments);
    let old = zeroize::Zeroizing::new(old.unwrap_or_default());
    let new = zeroize::Zeroizing::new(new);
    if *old != *new || !target.exists() {
        fsio::atomic_write_keeping_mode(target, &new)?;
    }
    warn_if_exposed(target, "env file");
    Ok(())
}

fn env_error(e: Error, path: &Path) -> Error {
    match e {
        Error::Corrupt(_) => Error::Io {
            context: format!("read {}", path.display()),
            source: std::io::Error::other(format!(
                "the env file is larger than {MAX_ENV_BYTES} bytes"
            )),
        },
        other => other,
    }
}

/// Reads the env file (following symlinks), if it exists.
fn read_env(ctx: &Ctx) -> Result<Option<envfile::EnvFile>> {
    read_env_at(&fsio::resolve_symlinks(&ctx.env_path, false)?)
}

/// Reads an env file whose symlinks are already resolved, if it exists.
fn read_env_at(target: &Path) -> Result<Option<envfile::EnvFile>> {
    Ok(fsio::read_bounded(target, MAX_ENV_BYTES, "env file")
        .map_err(|e| env_error(e, target))?
        .map(|b| envfile::EnvFile::parse(&zeroize::Zeroizing::new(b))))
}

/// The `MCP_API_KEY` of a read env file, best effort: a missing or unreadable file has none.
fn served_key(env: Result<Option<envfile::EnvFile>>) -> Option<SecretString> {
    env.ok()
        .flatten()
        .and_then(|e| e.get("MCP_API_KEY"))
        .map(SecretString::new)
}

/// The vault key whose full key is the env file's `MCP_API_KEY`, compared by keyed hash.
fn env_key_index(vault: &Vault, env_key: &str) -> Option<usize> {
    let want = crate::vault::records::keyed_hash(&vault.payload.hash_key, env_key);
    vault.keys().iter().position(|k| {
        crate::verify::hash_from_hex(&k.hash)
            .is_some_and(|h| crate::verify::hashes_equal(&h, &want))
    })
}

// ---- shared output helpers ----

/// `2026-11-26 03:47 UTC`.
pub fn human_time(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// "in 12 days", "3 days ago", "in 5 hours", "just now".
pub fn relative(t: &DateTime<Utc>, now: DateTime<Utc>) -> String {
    let d = *t - now;
    let (future, d) = if d >= chrono::Duration::zero() {
        (true, d)
    } else {
        (false, -d)
    };
    let amount = if d.num_hours() >= 36 {
        plural(whole_days(d), "day")
    } else if d.num_days() >= 1 {
        plural(d.num_days(), "day")
    } else if d.num_hours() >= 1 {
        plural(d.num_hours(), "hour")
    } else if d.num_minutes() >= 1 {
        plural(d.num_minutes(), "minute")
    } else {
        return "just now".into();
    };
    if future {
        format!("in {amount}")
    } else {
        format!("{amount} ago")
    }
}

/// Whole days in a duration, rounded to the nearest day, so that a 90-day key read a second
/// after its creation shows 90 days, not 89.
pub fn whole_days(d: chrono::Duration) -> i64 {
    let s = d.num_seconds();
    (s + s.signum() * 43_200) / 86_400
}

fn plural(n: i64, unit: &str) -> String {
    if n == 1 {
        format!("1 {unit}")
    } else {
        format!("{n} {unit}s")
    }
}

/// The JSON shape of a key record shared by `list`, `view` and others. Never the secret.
pub fn key_json(k: &KeyRecord, now: DateTime<Utc>) -> serde_json::Value {
    use crate::vault::records::fmt_time;
    serde_json::json!({
        "id": k.id,
        "name": k.name,
        "description": k.description,
        "status": k.status(now).as_str(),
        "created_at": fmt_time(&k.created_at),
        "expires_at": k.expires_at.as_ref().map(fmt_time),
        "revoked_at": k.revoked_at.as_ref().map(fmt_time),
        "permissions": k.permissions,
        "rotated_from": k.rotated_from,
        "rotated_to": k.rotated_to,
        "legacy": !crate::keyfmt::is_id(&k.id) || !k.secret.expose().starts_with("mcp_"),
    })
}

fn print_json(ctx: &mut Ctx, v: &serde_json::Value) -> Result<()> {
    serde_json::to_writer_pretty(&mut ctx.out, v).map_err(std::io::Error::from)?;
    writeln!(ctx.out)?;
    Ok(())
}
