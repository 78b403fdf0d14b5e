//! What every command shares: the context (paths, the terminal, the clock, stdout), the
//! terminal as the vault store sees it, and the small checks and warnings of several
//! commands. The command modules take it whole (`use super::context::*`): this is their
//! prelude, so its imports are `pub(super)`.

pub(super) use std::cell::RefCell;
pub(super) use std::io::{IsTerminal, Write};
pub(super) use std::path::{Path, PathBuf};
pub(super) use std::rc::Rc;

pub(super) use chrono::{DateTime, Utc};

pub(super) use crate::cli::{Cli, KdfArgs, Output, Preset};
pub(super) use crate::envstore::{EnvLock, EnvStore};
pub(super) use crate::error::{Error, Result};
pub(super) use crate::passphrase::Source;
pub(super) use mcp_key_vault::error::{OpenError, PromptError, SaveError};
pub(super) use mcp_key_vault::secret::SecretString;
pub(super) use mcp_key_vault::{Interaction, KdfParams, Published, Selector, Store, Txn, Vault};

pub(super) use super::output::{self, emit, stdout_error, Human, Report};
pub(super) use crate::redact::warn;

/// What every command gets: resolved paths, the terminal, the clock, stdout.
pub struct Ctx {
    /// The vault file (a symlink followed to its target).
    pub vault_path: PathBuf,
    /// The env file.
    pub env: EnvStore,
    /// Passphrases, progress and warnings.
    pub term: Rc<Terminal>,
    /// The time the command runs at (whole seconds).
    pub now: DateTime<Utc>,
    pub(super) out: Box<dyn Write>,
    color: bool,
    width: Option<usize>,
    republished: Rc<std::cell::RefCell<Vec<PathBuf>>>,
    /// The error of a republish after a change was saved, reported after the change.
    republish_error: Rc<std::cell::RefCell<Option<Error>>>,
    /// Published files to write even over a file from another lineage (`publish --force`).
    forced: Rc<std::cell::RefCell<Vec<PathBuf>>>,
}

impl Ctx {
    pub(super) fn from_cli(cli: &Cli) -> Ctx {
        let stdout_tty = std::io::stdout().is_terminal();
        // A symlinked vault is read and replaced at its target, as the env file is; a link
        // that cannot be followed is left for the command to report.
        let vault_path = mcp_key_vault::fsio::resolve_symlinks(&cli.global.vault, true)
            .unwrap_or_else(|_| cli.global.vault.clone());
        Ctx {
            vault_path: vault_path.clone(),
            env: EnvStore::new(cli.global.env_file.clone()),
            term: Rc::new(Terminal {
                source: Source::current(cli.global.passphrase_file.clone())
                    .allow_weak(cli.global.allow_weak_passphrase),
                vault_path: vault_path.clone(),
                identity: cli.global.identity.clone(),
                slot: cli.global.slot.clone(),
                expect_vault: cli.global.expect_vault.clone(),
            }),
            now: now(),
            // Rust's stdout is line-buffered: unwrapped, `list --json` makes one write(2)
            // per output line (170,000 for 10,000 keys). `run` flushes before returning.
            out: Box::new(std::io::BufWriter::new(std::io::stdout())),
            color: stdout_tty && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
            width: if stdout_tty {
                crate::sys::terminal_width()
            } else {
                None
            },
            republished: Rc::default(),
            republish_error: Rc::default(),
            forced: Rc::default(),
        }
    }

    /// The vault store, with this context's terminal; every committed change rewrites
    /// the published verifiers (noted in [`Ctx::republished`]).
    pub fn store(&self) -> VaultStore {
        let mut store = Store::new(
            self.vault_path.clone(),
            self.term.clone() as Rc<dyn Interaction>,
        );
        let dropped: Rc<RefCell<Vec<Published>>> = Rc::default();
        let (vault_path, now, noted, failed, forced, carried) = (
            self.vault_path.clone(),
            self.now,
            self.republished.clone(),
            self.republish_error.clone(),
            self.forced.clone(),
            dropped.clone(),
        );
        store.set_after_commit(Box::new(move |v| {
            let carried = std::mem::take(&mut *carried.borrow_mut());
            if !carried.is_empty() {
                warn(&crate::hooks::dropped_notice(&vault_path, &carried));
            }
            match crate::publish::republish(v, &vault_path, now, &forced.borrow()) {
                Ok(written) => noted.borrow_mut().extend(written),
                Err(e) => *failed.borrow_mut() = Some(e),
            }
        }));
        VaultStore {
            store,
            now: self.now,
            dropped,
        }
    }

    /// Lets the next republish write `path` over a file from another lineage: the
    /// operator's decision after a rollback (`publish --force`).
    pub fn force_publish(&self, path: PathBuf) {
        self.forced.borrow_mut().push(path);
    }

    /// The end of a command that changed the vault: the change stands and its result
    /// was reported; a republish that failed after it is the command's error now.
    ///
    /// # Errors
    /// The republish's error, naming each verifier file left stale.
    pub fn finish(&self) -> Result<()> {
        self.republish_error.borrow_mut().take().map_or(Ok(()), Err)
    }

    /// The verifier files rewritten by this command's changes.
    pub fn republished(&self) -> Vec<String> {
        self.republished
            .borrow()
            .iter()
            .map(|p| mcp_key_vault::display::path(p))
            .collect()
    }

    /// Locks the env file for a change (inside the vault's lock when both are held).
    ///
    /// # Errors
    /// As [`EnvStore::lock`].
    pub fn lock_env(&self) -> Result<EnvLock> {
        self.env.lock(&self.vault_path, || {
            self.term.waiting_for_lock(self.env.path())
        })
    }

    /// Sets variables in the env file under its lock, and warns if others may read or
    /// write it.
    ///
    /// # Errors
    /// As [`EnvStore::lock`] and the lock's `set`.
    pub fn set_env(&self, assignments: &[(&str, &str)]) -> Result<()> {
        let lock = self.lock_env()?;
        lock.set(assignments)?;
        warn_if_exposed(lock.target(), "env file");
        if assignments.iter().any(|(name, _)| *name == "MCP_API_KEY") {
            warn_if_git_would_commit(lock.target());
        }
        Ok(())
    }

    /// Prints a command's result.
    ///
    /// # Errors
    /// As [`output::emit`].
    pub fn emit<R: Report>(&mut self, output: Output, r: &R) -> Result<()> {
        let mut h = Human {
            out: &mut *self.out,
            color: self.color,
            width: self.width,
            now: self.now,
        };
        emit(&mut h, output, r)
    }

    /// Flushes stdout now: a command that printed a new key must know it reached the
    /// reader, not find out (or not) at exit.
    ///
    /// # Errors
    /// A failed write.
    pub fn flush(&mut self) -> Result<()> {
        self.out.flush().map_err(stdout_error)
    }

    /// Writes raw bytes (completions, the man page) to stdout.
    ///
    /// # Errors
    /// A failed write.
    pub fn write_raw(&mut self, bytes: &[u8]) -> Result<()> {
        self.out.write_all(bytes).map_err(stdout_error)
    }

    /// The env file's path for messages.
    pub fn env_shown(&self) -> String {
        mcp_key_vault::display::path(self.env.path())
    }
}

/// The vault [`Store`] as commands use it: every change made through it (a transaction,
/// an update) also drops the `--then` commands an older release kept in the vault, which
/// are never run (`crate::hooks`); the after-commit hook of [`Ctx::store`] says so once
/// the change is saved. `rekey` and `create` write what they are given.
pub struct VaultStore {
    store: Store,
    now: DateTime<Utc>,
    /// The records whose commands the open transaction dropped, for the after-commit hook.
    dropped: Rc<RefCell<Vec<Published>>>,
}

impl VaultStore {
    /// [`Store::begin`], the vault's old commands dropped.
    ///
    /// # Errors
    /// As [`Store::begin`].
    pub fn begin(&mut self) -> Result<Txn<'_>, OpenError> {
        let mut tx = self.store.begin()?;
        *self.dropped.borrow_mut() = crate::hooks::drop_from_vault(tx.vault(), self.now);
        Ok(tx)
    }

    /// [`Store::begin_or_create`], the vault's old commands dropped.
    ///
    /// # Errors
    /// As [`Store::begin_or_create`].
    pub fn begin_or_create<E>(&mut self, kdf: KdfParams) -> Result<Txn<'_>, E>
    where
        E: From<OpenError> + From<mcp_key_vault::ChangeError>,
    {
        let mut tx = self.store.begin_or_create::<E>(kdf)?;
        *self.dropped.borrow_mut() = crate::hooks::drop_from_vault(tx.vault(), self.now);
        Ok(tx)
    }

    /// [`Store::update`] through [`VaultStore::begin`].
    ///
    /// # Errors
    /// As [`Store::update`].
    pub fn update<T, E>(&mut self, change: impl FnOnce(&mut Vault) -> Result<T, E>) -> Result<T, E>
    where
        E: From<OpenError> + From<SaveError>,
    {
        let mut tx = self.begin()?;
        let out = change(tx.vault())?;
        tx.commit()?;
        Ok(out)
    }

    /// [`Store::open`].
    ///
    /// # Errors
    /// As [`Store::open`].
    pub fn open(&mut self) -> Result<Vault, OpenError> {
        self.store.open()
    }

    /// [`Store::snapshot`].
    ///
    /// # Errors
    /// As [`Store::snapshot`].
    pub fn snapshot<T, E>(&mut self, read: impl FnOnce(&Vault) -> Result<T, E>) -> Result<T, E>
    where
        E: From<OpenError>,
    {
        self.store.snapshot(read)
    }

    /// [`Store::create`].
    ///
    /// # Errors
    /// As [`Store::create`].
    pub fn create<E: From<SaveError>>(
        &mut self,
        vault: Vault,
        expect: mcp_key_vault::Expect<'_>,
        before_write: impl FnOnce() -> Result<(), E>,
    ) -> Result<(), E> {
        self.store.create(vault, expect, before_write)
    }

    /// [`Store::rekey`].
    ///
    /// # Errors
    /// As [`Store::rekey`].
    pub fn rekey<E>(
        &mut self,
        kdf: KdfParams,
        new: impl FnOnce() -> Result<SecretString, E>,
    ) -> Result<(), E>
    where
        E: From<OpenError> + From<SaveError> + From<mcp_key_vault::ChangeError>,
    {
        self.store.rekey(kdf, new)
    }

    /// [`Store::header`].
    ///
    /// # Errors
    /// As [`Store::header`].
    pub fn header(&self) -> Result<mcp_key_vault::Parsed, OpenError> {
        self.store.header()
    }

    /// [`Store::derived_key`].
    pub fn derived_key(&self) -> Option<(KdfParams, Vec<u8>, mcp_key_vault::SecretKey)> {
        self.store.derived_key()
    }

    /// [`Store::without_session`].
    pub fn without_session(self) -> Self {
        VaultStore {
            store: self.store.without_session(),
            ..self
        }
    }

    /// [`Store::path`].
    pub fn path(&self) -> &Path {
        self.store.path()
    }

    /// [`Store::exists`].
    pub fn exists(&self) -> bool {
        self.store.exists()
    }
}

/// The terminal and the environment, as the vault store sees them.
#[derive(Debug)]
pub struct Terminal {
    source: Source,
    vault_path: PathBuf,
    identity: Option<PathBuf>,
    slot: Option<String>,
    /// `--expect-vault` / `MCP_KEY_VAULT_FINGERPRINT`, checked.
    expect_vault: Option<String>,
}

impl Terminal {
    /// Whether weak new passphrases are accepted (`--allow-weak-passphrase`).
    pub fn allow_weak(&self) -> bool {
        self.source.allow_weak
    }
}

impl Interaction for Terminal {
    fn session(&self, env: &mcp_key_vault::Envelope) -> Option<mcp_key_vault::KeyCache> {
        super::session_key::from_session(&self.vault_path, env)
    }

    fn session_key(&self) -> Option<mcp_key_vault::v2::SlotKey> {
        super::session_key::session_key(&self.vault_path)
    }

    fn passphrase(&self, prompt: &str, _attempt: u32) -> Result<SecretString, PromptError> {
        self.source.get(prompt)
    }

    fn tries(&self) -> u32 {
        // Three tries for a person typing, as sudo and ssh allow; a passphrase from the
        // environment or a file is not going to change on a second read.
        if self.source.is_set() || !crate::passphrase::have_terminal() {
            1
        } else {
            crate::passphrase::TRIES
        }
    }

    fn new_passphrase(&self, what: &str) -> Result<SecretString, PromptError> {
        self.source.get_new(what)
    }

    fn identities(&self) -> Result<Option<mcp_key_vault::v2::Identities>, OpenError> {
        let Some(path) = self.identity.as_deref() else {
            return Ok(None);
        };
        let ids = mcp_key_vault::v2::Identities::from_file(path)?;
        Ok(Some(ids.with_ui(std::sync::Arc::new(
            crate::passphrase::TerminalPluginUi,
        ))))
    }

    fn slot(&self) -> Option<String> {
        self.slot.clone()
    }

    fn trust(&self, opened: &mcp_key_vault::Opened<'_>) -> Result<(), OpenError> {
        let pin = match self.expect_vault.as_deref().map(crate::trust::check_pin) {
            Some(Ok(p)) => Some(p),
            Some(Err(e)) => {
                return Err(OpenError::Invalid {
                    reason: e.to_string(),
                })
            }
            None => None,
        };
        crate::trust::decide(opened, pin.as_deref())
    }

    fn now_signed(&self, path: &Path, fingerprint: &str, created: bool) {
        crate::trust::now_signed(path, fingerprint, created);
    }

    fn kdf_started(&self, kdf: &KdfParams) -> bool {
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

    fn kdf_done(&self, shown: bool) {
        if shown {
            eprint!("\r\x1b[2K");
        }
    }

    fn warn(&self, msg: &str) {
        warn(msg);
    }

    fn waiting_for_lock(&self, target: &Path) {
        eprintln!(
            "waiting for another mcp-key-manager to release {}.lock…",
            mcp_key_vault::display::path(target)
        );
    }
}

/// The current time in whole seconds, as the vault keeps it. A change made after waiting
/// (for a passphrase, for another process's lock) takes the time anew once the wait is over.
pub fn now() -> DateTime<Utc> {
    chrono::DurationRound::duration_trunc(Utc::now(), chrono::Duration::seconds(1))
        .unwrap_or_else(|_| Utc::now())
}

/// [`Vault::select`], saying so when a name several keys share (a rotation's grace
/// period) was taken to mean the current one.
///
/// # Errors
/// As [`Vault::select`].
pub(super) fn select(v: &Vault, sel: Selector<'_>) -> Result<usize> {
    let (i, note) = v.select_noting(sel)?;
    if let Some(note) = note {
        warn(&note);
    }
    Ok(i)
}

/// [`Vault::select_all`], with the note of [`select`] for each shared name.
///
/// # Errors
/// As [`Vault::select_all`].
pub(super) fn select_all(v: &Vault, sels: &[Selector<'_>]) -> Result<Vec<usize>> {
    let (chosen, notes) = v.select_all_noting(sels)?;
    notes.iter().for_each(|n| warn(n));
    Ok(chosen)
}

/// Warns when the env file that now holds a key sits in a git work tree and is not
/// ignored: `git add -A` would commit the key. Quiet when git is missing or says nothing.
/// git is asked with the index and the fsmonitor hook left out, so a hostile checkout's
/// configuration cannot make this run anything.
pub(super) fn warn_if_git_would_commit(path: &Path) {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return;
    };
    let git = |args: &[&std::ffi::OsStr]| {
        std::process::Command::new("git")
            .args(["-c", "core.fsmonitor=", "-c", "core.hooksPath=/dev/null"])
            .args(args)
            .current_dir(if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            })
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .ok()
            .and_then(|s| s.code())
    };
    let os = |s: &'static str| std::ffi::OsStr::new(s);
    if git(&[os("rev-parse"), os("--is-inside-work-tree")]) != Some(0) {
        return;
    }
    // check-ignore: 0 ignored, 1 not ignored, anything else an error (say nothing).
    if git(&[
        os("check-ignore"),
        os("--no-index"),
        os("-q"),
        os("--"),
        name,
    ]) == Some(1)
    {
        warn(&format!(
            "{} is in a git work tree and not ignored: `git add -A` would commit the key; add \
             `{}` to .gitignore",
            mcp_key_vault::display::path(path),
            mcp_key_vault::display::sanitize(&name.to_string_lossy())
        ));
    }
}

/// Warns when a file that decides which key a server accepts is writable or readable by
/// others.
pub(super) fn warn_if_exposed(path: &Path, what: &str) {
    let shown = mcp_key_vault::display::path(path);
    if mcp_key_vault::fsio::writable_by_others(path) {
        warn(&format!(
            "the {what} {shown} is writable by group or others, so they choose the server's \
             key; run `chmod 600 {shown}`"
        ));
    } else if mcp_key_vault::fsio::readable_by_others(path) {
        warn(&format!(
            "the {what} {shown} is readable by group or others; run `chmod 600 {shown}`"
        ));
    }
}

/// Rejects text that could drive a terminal or is unreasonably long.
pub(super) fn check_text(what: &str, s: &str, max: usize) -> Result<()> {
    if s.chars().any(mcp_key_vault::display::needs_escape) {
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

/// Checks a key's name and description.
pub(super) fn validate_name_description(name: &str, description: &str) -> Result<()> {
    if name.trim().is_empty() {
        return Err(Error::usage("the key name must not be empty"));
    }
    check_text("name", name, 256)?;
    check_text("description", description, 4096)
}

/// Resolves `init`-style flags into KDF settings, checked against the policy.
pub(super) fn kdf_from_args(a: &KdfArgs, base: KdfParams) -> Result<KdfParams> {
    let mut k = match a.kdf_preset {
        Some(Preset::Minimum) => KdfParams::MINIMUM,
        Some(Preset::Default) => KdfParams::DEFAULT,
        Some(Preset::High) => KdfParams::HIGH,
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
        if !(50..=60_000).contains(&ms) {
            return Err(Error::usage("--kdf-target-ms must be between 50 and 60000"));
        }
        k.iterations = k.calibrate(ms)?;
        k.check_policy()?;
    }
    Ok(k)
}
