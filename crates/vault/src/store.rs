//! The vault file's protocol, in one place: bounded read, parse, unlock (the derived key
//! cached), the exclusive lock, the re-read under the lock, the atomic replace, and the
//! hook that runs after a committed change.
//!
//! Invariant: every change is a read-modify-write under the vault's lock, of the bytes read
//! after the lock was taken, landing with one atomic replace; the revision grows by one
//! with every save. Nothing here talks to a terminal: prompts, progress and warnings go
//! through [`Interaction`].

use std::path::{Path, PathBuf};
use std::rc::Rc;

use crate::error::{ChangeError, IoError, OpenError, PromptError, ReadError, SaveError};
use crate::format::MAX_FILE_BYTES;
use crate::format::{Envelope, KdfParams};
use crate::fsio::{self, Lock};
use crate::secret::{SecretKey, SecretString};
use crate::v2::{self, Identities};
use crate::vault::{KeyCache, Vault};

/// What the store needs from whoever drives it: passphrases, and a voice for progress
/// and warnings. The CLI implements it with the terminal and the environment.
pub trait Interaction {
    /// The passphrase of an existing vault. `attempt` counts from 1.
    ///
    /// # Errors
    /// When no passphrase can be had ([`PromptError::NoPassphrase`]) or reading it fails.
    fn passphrase(&self, prompt: &str, attempt: u32) -> Result<SecretString, PromptError>;

    /// A key cache from a live unlock session that fits `env`, if there is one: commands
    /// use it before any passphrase source.
    fn session(&self, _env: &Envelope) -> Option<KeyCache> {
        None
    }

    /// The derived key a live unlock session holds (KDF settings, salt, key), whatever
    /// the vault's format: for a format-2 vault it opens the passphrase slot with that
    /// salt.
    fn session_key(&self) -> Option<crate::v2::SlotKey> {
        None
    }

    /// How many wrong passphrases may be typed before giving up (1 when the passphrase
    /// does not come from a person at a terminal).
    fn tries(&self) -> u32 {
        1
    }

    /// A new passphrase (`what` names what it is for).
    ///
    /// # Errors
    /// When none can be had, the two entries differ, or it is refused as too weak.
    fn new_passphrase(&self, what: &str) -> Result<SecretString, PromptError>;

    /// A key derivation with these settings is about to start; returns whether something
    /// was shown that [`Interaction::kdf_done`] should take back.
    fn kdf_started(&self, _kdf: &KdfParams) -> bool {
        false
    }

    /// The key derivation announced by [`Interaction::kdf_started`] is over.
    fn kdf_done(&self, _shown: bool) {}

    /// A warning for the user.
    fn warn(&self, msg: &str);

    /// Another process holds the lock of `target`; we wait.
    fn waiting_for_lock(&self, target: &Path);

    /// Age identities offered for unlocking a format-2 vault (`--identity`,
    /// `MCP_KEY_VAULT_IDENTITY`); tried before any passphrase.
    ///
    /// # Errors
    /// When the identity file cannot be read or parsed.
    fn identities(&self) -> Result<Option<Identities>, OpenError> {
        Ok(None)
    }

    /// The slot to unlock with (`--slot ID|LABEL`), if one was named.
    fn slot(&self) -> Option<String> {
        None
    }

    /// Whether the caller trusts the vault just opened. Called after every unlock, before
    /// the vault is returned (so before anything is changed, published or run for it). A
    /// passphrase proves membership; an age identity does not (an age recipient is public,
    /// so anyone can make a vault that identity opens), so a caller should accept an
    /// identity open only of a vault whose fingerprint it pinned.
    ///
    /// # Errors
    /// [`OpenError::Untrusted`] to refuse the vault.
    fn trust(&self, _opened: &Opened<'_>) -> Result<(), OpenError> {
        Ok(())
    }

    /// A save gave the vault at `path` its fingerprint: it is a new vault (`created`), or
    /// one written before signing got its signing key.
    fn now_signed(&self, _path: &Path, _fingerprint: &str, _created: bool) {}
}

/// A vault just opened, as [`Interaction::trust`] is asked about it.
#[derive(Debug, Clone, Copy)]
pub struct Opened<'a> {
    /// The vault path.
    pub path: &'a Path,
    /// The fingerprint of its signing key (`mkv1:…`); `None` for a vault written before
    /// signing (and every format-1 vault).
    pub fingerprint: Option<&'a str>,
    /// What opened it.
    pub by: OpenedBy,
    /// A passphrase slot bound to the vault's signing key opened it: only a holder of that
    /// passphrase can have made the binding, so this is the vault the slot was made for
    /// (not a copy of the slot in a vault someone else made).
    pub proven: bool,
}

/// What opened a vault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum OpenedBy {
    /// A passphrase (or an unlock session started from one).
    Passphrase,
    /// An age identity (`--identity`), which proves nothing about who made the vault.
    Identity,
}

/// A parsed vault file of either format.
#[derive(Debug)]
pub enum Parsed {
    /// Format 1.
    V1(Envelope),
    /// Format 2.
    V2(v2::Header),
}

impl Parsed {
    /// Parses a vault file of either format (a plaintext legacy store is refused).
    ///
    /// # Errors
    /// [`OpenError::Corrupt`], [`OpenError::LegacyStore`].
    pub fn parse(bytes: &[u8]) -> Result<Parsed, OpenError> {
        match v2::detect(bytes)? {
            v2::Detected::V1(e) => Ok(Parsed::V1(e)),
            v2::Detected::V2(h) => Ok(Parsed::V2(h)),
            v2::Detected::Legacy => Err(crate::format::legacy_refusal()),
        }
    }

    /// The KDF settings a `rekey` starts from: format 1's, or format 2's first
    /// passphrase slot's (the default when there is none).
    pub fn kdf(&self) -> KdfParams {
        match self {
            Parsed::V1(e) => e.kdf,
            Parsed::V2(h) => v2::passphrase_kdf(h),
        }
    }

    /// The fingerprint of the vault's signing key, from the header (checked when parsed);
    /// `None` for a vault written before signing.
    pub fn fingerprint(&self) -> Option<String> {
        match self {
            Parsed::V1(_) => None,
            Parsed::V2(h) => h.fingerprint(),
        }
    }
}

/// What must be true of the vault path when a new vault is written.
#[derive(Debug, Clone, Copy)]
pub enum Expect<'a> {
    /// Nothing may exist there.
    Absent,
    /// Exactly these bytes must still be there (a plaintext store being replaced).
    Bytes(&'a [u8]),
}

/// A hook run after each committed change, while the vault lock is still held. What it
/// does with its own failures is the caller's: the change stands either way.
pub type AfterCommit = Box<dyn FnMut(&Vault)>;

/// How much of a large vault's start [`Store::unchanged_since`] compares: more than the
/// largest header (32 slots of at most ~12 KB of base64 each, or format 1's few hundred
/// bytes), so the save's nonce is always inside it.
const SAME_HEAD: usize = 1 << 20;
/// How much of its end: the last characters of the ciphertext (the tag) and the closing.
const SAME_TAIL: usize = 4 << 10;

/// The vault file at one path.
pub struct Store {
    path: PathBuf,
    ui: Rc<dyn Interaction>,
    cache: Option<KeyCache>,
    /// Format 2: the data key of the last unlock, kept apart from the passphrase cache so
    /// an identity-only unlock never asks for a passphrase.
    data_key: Option<KeyCache>,
    identities: Option<Option<Rc<Identities>>>,
    after_commit: Option<AfterCommit>,
    upgrade_said: bool,
    use_session: bool,
    /// The next save writes a vault made by this process (`create`, `begin_or_create`).
    creating: bool,
    /// Whether the last unlock was through a passphrase slot bound to the vault's key.
    proven: bool,
    /// The passphrase slot that unlocked, with its derived key: bound at the next save.
    slot_key: Option<(String, SecretKey)>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// A save as [`Store::unchanged_since`] recognises it: a small file whole, a large one by
/// its length, head and tail.
enum Seen {
    Whole(Vec<u8>),
    Sampled {
        len: usize,
        head: Vec<u8>,
        tail: Vec<u8>,
    },
}

impl Seen {
    fn of(file: Vec<u8>) -> Seen {
        let len = file.len();
        if len <= SAME_HEAD + SAME_TAIL {
            return Seen::Whole(file);
        }
        Seen::Sampled {
            len,
            head: file[..SAME_HEAD].to_vec(),
            tail: file[len - SAME_TAIL..].to_vec(),
        }
    }
}

impl Store {
    /// The vault at `path` (a symlink is followed to its target by the caller).
    pub fn new(path: PathBuf, ui: Rc<dyn Interaction>) -> Self {
        Store {
            path,
            ui,
            cache: None,
            data_key: None,
            identities: None,
            after_commit: None,
            upgrade_said: false,
            use_session: true,
            creating: false,
            proven: false,
            slot_key: None,
        }
    }

    /// Never takes the key from an unlock session: for `unlock` itself, which must start
    /// from the passphrase.
    pub fn without_session(mut self) -> Self {
        self.use_session = false;
        self
    }

    /// The settings, salt and key the vault was last unlocked with (for an unlock
    /// session), if it was.
    pub fn derived_key(&self) -> Option<(KdfParams, Vec<u8>, crate::secret::SecretKey)> {
        let (kdf, salt, key) = self.cache.as_ref()?.cached()?;
        Some((*kdf, salt.to_vec(), key.duplicate()))
    }

    /// The vault path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether a file (or a link) is at the vault path.
    pub fn exists(&self) -> bool {
        self.path.exists() || self.path.is_symlink()
    }

    /// Sets the hook run once after each transaction that saved, under the lock.
    pub fn set_after_commit(&mut self, hook: AfterCommit) {
        self.after_commit = Some(hook);
    }

    fn read(&self) -> Result<Option<Vec<u8>>, ReadError> {
        fsio::read_bounded(&self.path, MAX_FILE_BYTES, "vault")
    }

    /// Whether the file still holds the save `seen` was taken of. A small file is
    /// compared whole. A large one is compared by its length, its first [`SAME_HEAD`] bytes
    /// (the whole header, with the save's random 24-byte nonce) and its last [`SAME_TAIL`]
    /// (the end of the ciphertext, its authentication tag): every save of either format
    /// has a fresh random nonce, and the same tag over a different ciphertext under the
    /// same nonce would be a forgery. So for the writers the lock orders (this tool's)
    /// equal samples mean the same save, and a 24 MB vault is not read twice per change.
    /// A process that ignores the lock can change the file at any moment anyway.
    fn unchanged_since(&self, seen: &Seen) -> Result<bool, OpenError> {
        use std::io::{Read, Seek, SeekFrom};
        let (len, head_seen, tail_seen) = match seen {
            Seen::Whole(first) => return Ok(self.read()?.as_deref() == Some(&first[..])),
            Seen::Sampled { len, head, tail } => (*len, head, tail),
        };
        let io = |e| OpenError::Io(IoError::new("read", &self.path, e));
        let Some(mut file) = fsio::open_to_read(&self.path)? else {
            return Ok(false);
        };
        let meta = file.metadata().map_err(io)?;
        if !meta.is_file() || meta.len() != len as u64 {
            return Ok(false);
        }
        let mut head = vec![0u8; SAME_HEAD];
        // A file that shrank meanwhile ends a read early: not the same save.
        match file.read_exact(&mut head) {
            Ok(()) if head == *head_seen => {}
            Ok(()) => return Ok(false),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(false),
            Err(e) => return Err(io(e)),
        }
        let mut tail = vec![0u8; SAME_TAIL];
        file.seek(SeekFrom::Start((len - SAME_TAIL) as u64))
            .map_err(io)?;
        match file.read_exact(&mut tail) {
            Ok(()) => Ok(tail == *tail_seen),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(false),
            Err(e) => Err(io(e)),
        }
    }

    fn read_existing(&self) -> Result<Vec<u8>, OpenError> {
        self.read()?.ok_or_else(|| OpenError::NoVault {
            path: self.path.clone(),
        })
    }

    fn warn_if_exposed(&self) {
        if fsio::writable_by_others(&self.path) {
            self.ui.warn(&format!(
                "the vault {} is writable by group or others; run `chmod 600 {}`",
                crate::display::path(&self.path),
                crate::display::path(&self.path)
            ));
        } else if fsio::readable_by_others(&self.path) {
            self.ui.warn(&format!(
                "the vault {} is readable by group or others; run `chmod 600 {}`",
                crate::display::path(&self.path),
                crate::display::path(&self.path)
            ));
        }
    }

    /// The cache of the derived key, asking for the passphrase the first time.
    fn cache(&mut self, attempt: u32) -> Result<&mut KeyCache, OpenError> {
        if self.cache.is_none() {
            let pass = self.ui.passphrase("Vault passphrase: ", attempt)?;
            self.cache = Some(KeyCache::new(pass));
        }
        Ok(self.cache.as_mut().expect("just filled"))
    }

    /// Unlocks a vault of either format.
    fn unlock(&mut self, parsed: &Parsed) -> Result<Vault, OpenError> {
        let (vault, by, fingerprint) = match parsed {
            Parsed::V1(env) => (self.unlock_v1(env)?, OpenedBy::Passphrase, None),
            Parsed::V2(h) => {
                let vault = self.unlock_v2(h)?;
                let slot = vault
                    .unlocked_by()
                    .and_then(|id| h.slots.iter().find(|s| s.id == id));
                let by = match slot.map(|s| &s.kind) {
                    Some(v2::SlotKind::Passphrase { .. }) => OpenedBy::Passphrase,
                    _ => OpenedBy::Identity,
                };
                (vault, by, h.fingerprint())
            }
        };
        // Format 1 has no slots: its passphrase's key encrypts the payload itself, so only a
        // holder of the passphrase can have written it.
        let proven = match parsed {
            Parsed::V1(_) => true,
            Parsed::V2(_) => by == OpenedBy::Passphrase && self.proven && fingerprint.is_some(),
        };
        self.ui.trust(&Opened {
            path: &self.path,
            fingerprint: fingerprint.as_deref(),
            by,
            proven,
        })?;
        Ok(vault)
    }

    fn identities(&mut self) -> Result<Option<Rc<Identities>>, OpenError> {
        if self.identities.is_none() {
            self.identities = Some(self.ui.identities()?.map(Rc::new));
        }
        Ok(self.identities.clone().flatten())
    }

    /// Format 2: a cached data key if the unlocking slot still wraps the same bytes; else
    /// the identities (no prompt); else the passphrase, with retries at a terminal.
    fn unlock_v2(&mut self, h: &v2::Header) -> Result<Vault, OpenError> {
        if let Some((id, key)) = self.data_key.as_ref().and_then(|c| c.data_key_for(h)) {
            return Vault::with_data_key(h, key, Some(id));
        }
        let slot = self.ui.slot();
        let has_passphrase_slot = h.slots.iter().any(|s| {
            matches!(s.kind, v2::SlotKind::Passphrase { .. })
                && slot.as_deref().is_none_or(|x| s.id == x || s.label == x)
        });
        let ids = self.identities()?;
        let mut id_error = None;
        if let Some(ids) = &ids {
            let offer = v2::Unlock {
                identities: Some(ids),
                passphrase: None,
                slot: slot.as_deref(),
            };
            match Vault::unlock_v2(h, &offer) {
                Ok(v) => return Ok(self.remember_v2(v)),
                Err(e @ (OpenError::Passphrase { .. } | OpenError::WrongPassphrase))
                    if has_passphrase_slot =>
                {
                    id_error = Some(e)
                }
                Err(e) => return Err(e),
            }
        }
        self.adopt_session_key(h);
        if let Some(v) = self.unlock_with_cached_key(h, slot.as_deref())? {
            return Ok(v);
        }
        self.unlock_with_passphrase(h, slot.as_deref(), ids.is_some(), id_error)
    }

    /// A derived key from an unlock session (or an earlier derivation in this process)
    /// opens its passphrase slot without a passphrase or a KDF: the session's key becomes
    /// the cache when it fits a slot of `h`.
    fn adopt_session_key(&mut self, h: &v2::Header) {
        if self.cache.is_none() && self.use_session {
            if let Some((kdf, salt, key)) = self.ui.session_key() {
                if v2::slot_for_key(&h.slots, None, &kdf, &salt).is_some() {
                    self.cache = Some(KeyCache::from_key(kdf, salt, key));
                } else {
                    self.ui.warn(
                        "the unlock session of this vault no longer fits it (its passphrase \
                         changed); ignoring it: run `mcp-key-manager lock`",
                    );
                }
            }
        }
    }

    /// Opens `h` with the cached derived key, if there is one and it opens a slot.
    fn unlock_with_cached_key(
        &mut self,
        h: &v2::Header,
        slot: Option<&str>,
    ) -> Result<Option<Vault>, OpenError> {
        if let Some((kdf, salt, key)) = self.cache.as_ref().and_then(|c| c.cached()) {
            if let Some(i) = v2::slot_for_key(&h.slots, slot, kdf, salt) {
                if let Some(dk) = v2::unlock_with_slot_key(&h.slots[i], key)? {
                    let by = h.slots[i].id.clone();
                    let key = key.duplicate();
                    let v = Vault::with_data_key(h, dk, Some(by.clone()))?;
                    self.check_binding(&v, by, key)?;
                    return Ok(Some(self.remember_v2(v)));
                }
            }
        }
        Ok(None)
    }

    /// After a passphrase slot opened `v`: a slot bound to another vault key is a copy in a
    /// vault someone else made (refused); a slot bound to this one proves the vault; an
    /// unbound one (made before binding) proves nothing and is bound at the next save.
    fn check_binding(&mut self, v: &Vault, slot_id: String, key: SecretKey) -> Result<(), OpenError> {
        match v.passphrase_slot_binding(&slot_id, &key) {
            v2::Bound::Other => Err(OpenError::Untrusted {
                reason: format!(
                    "the passphrase slot {slot_id} of {} is bound to another vault: this file \
                     is a vault someone else made with a copy of your slot; refused",
                    crate::display::path(&self.path)
                ),
            }),
            bound => {
                self.proven = bound == v2::Bound::Yes;
                self.slot_key = Some((slot_id, key));
                Ok(())
            }
        }
    }

    /// Opens `h` with the passphrase, asking again (up to the interaction's tries) when it
    /// is wrong; `id_error` is why the identities failed, if they were offered.
    fn unlock_with_passphrase(
        &mut self,
        h: &v2::Header,
        slot: Option<&str>,
        identities_offered: bool,
        mut id_error: Option<OpenError>,
    ) -> Result<Vault, OpenError> {
        let tries = self.ui.tries().max(1);
        let mut attempt = 1;
        loop {
            let ui = Rc::clone(&self.ui);
            let pass = self.passphrase_for(attempt, &mut id_error)?;
            let r = announced(&*ui, &v2::passphrase_kdf(h), || {
                v2::unlock_with_passphrase(&h.slots, slot, &pass, identities_offered)
            });
            match r {
                Err(e) => {
                    ask_again(&*ui, e, attempt, tries)?;
                    self.cache = None;
                    attempt += 1;
                }
                Ok((dk, i, (kdf, salt, key))) => {
                    let slot_key = key.duplicate();
                    let mut c = KeyCache::new(pass);
                    c.remember_key(kdf, salt, key);
                    self.cache = Some(c);
                    let by = h.slots[i].id.clone();
                    let v = Vault::with_data_key(h, dk, Some(by.clone()))?;
                    self.check_binding(&v, by, slot_key)?;
                    return Ok(self.remember_v2(v));
                }
            }
        }
    }

    /// The passphrase for this attempt, from the cache or asked for. When none can be had
    /// and an identity was offered and failed, the error says that, not "no passphrase".
    fn passphrase_for(
        &mut self,
        attempt: u32,
        id_error: &mut Option<OpenError>,
    ) -> Result<SecretString, OpenError> {
        Ok(match self.cache(attempt) {
            Ok(c) => match c.passphrase() {
                Some(p) => p.duplicate(),
                // A session key that fits no slot any more: ask for the passphrase.
                None => {
                    self.cache = None;
                    match self.cache(attempt) {
                        Ok(c) => c
                            .passphrase()
                            .map(SecretString::duplicate)
                            .ok_or_else(|| OpenError::passphrase("no passphrase available"))?,
                        Err(e) => return Err(id_error.take().unwrap_or(e)),
                    }
                }
            },
            Err(e) => return Err(id_error.take().unwrap_or(e)),
        })
    }

    fn remember_v2(&mut self, v: Vault) -> Vault {
        let mut c = KeyCache::new(crate::secret::SecretString::new(String::new()));
        c.remember_data_key(&v);
        self.data_key = Some(c);
        v
    }

    /// Derives (at most once per passphrase and salt) and decrypts, letting a person at a
    /// terminal type a mistyped passphrase again.
    fn unlock_v1(&mut self, env: &Envelope) -> Result<Vault, OpenError> {
        if self.cache.is_none() && self.use_session {
            self.cache = self.ui.session(env);
        }
        let tries = self.ui.tries().max(1);
        let mut attempt = 1;
        loop {
            let ui = Rc::clone(&self.ui);
            let cache = self.cache(attempt)?;
            let r = announced(&*ui, &env.kdf, || cache.unlock(env));
            match r {
                Err(e) => {
                    ask_again(&*ui, e, attempt, tries)?;
                    self.cache = None;
                    attempt += 1;
                }
                Ok(v) => {
                    if env.kdf.below_policy() {
                        self.ui.warn(&format!(
                            "this vault's Argon2id settings ({} KiB, {} passes) are below the \
                             minimum for new vaults; run `mcp-key-manager rekey` to strengthen \
                             them",
                            env.kdf.memory_kib, env.kdf.iterations
                        ));
                    }
                    return Ok(v);
                }
            }
        }
    }

    /// Opens the vault for reading. No lock: writers replace the file atomically, so a
    /// reader sees the old or the new vault, never a mixture.
    ///
    /// # Errors
    /// [`OpenError::NoVault`], [`OpenError::Corrupt`], [`OpenError::WrongPassphrase`],
    /// [`OpenError::Io`], and what the [`Interaction`] fails with.
    pub fn open(&mut self) -> Result<Vault, OpenError> {
        let parsed = Parsed::parse(&self.read_existing()?)?;
        self.warn_if_exposed();
        self.unlock(&parsed)
    }

    /// Parses the vault without unlocking it (its header is public).
    ///
    /// # Errors
    /// As [`Store::open`], but never a passphrase error.
    pub fn header(&self) -> Result<Parsed, OpenError> {
        Parsed::parse(&self.read_existing()?)
    }

    fn lock(&self) -> Result<Lock, IoError> {
        Lock::acquire(&self.path, fsio::lock_timeout(), || {
            self.ui.waiting_for_lock(&self.path)
        })
    }

    /// Takes the lock and returns the vault as it is under it. The key is derived before
    /// the lock is taken (the slow part, and the prompt), then the file is re-read under
    /// the lock and decrypted with the cached key.
    fn locked(&mut self) -> Result<(Lock, Vault), OpenError> {
        let first = self.read_existing()?;
        let env = Parsed::parse(&first)?;
        // What is needed to recognise this save later, not the whole file: its memory is
        // free again before the payload is decrypted.
        let seen = Seen::of(first);
        self.warn_if_exposed();
        let vault = self.unlock(&env)?;
        drop(env);
        let lock = self.lock()?;
        // When no other writer replaced the file meanwhile (the usual case), the vault
        // already unlocked is the one under the lock: checking that costs far less than
        // decrypting and decoding it a second time.
        if self.unchanged_since(&seen)? {
            return Ok((lock, vault));
        }
        drop(vault);
        let again = self.read_existing()?;
        let env = Parsed::parse(&again)?;
        drop(again);
        let vault = self.unlock(&env)?;
        Ok((lock, vault))
    }

    /// Opens a transaction: the vault, read and unlocked under its lock, which is held
    /// until the transaction drops. Each `Txn::commit` saves; a transaction dropped
    /// without one writes nothing.
    ///
    /// # Errors
    /// As [`Store::open`].
    pub fn begin(&mut self) -> Result<Txn<'_>, OpenError> {
        let (lock, vault) = self.locked()?;
        Ok(Txn {
            store: self,
            vault,
            saved: false,
            _lock: lock,
        })
    }

    /// As [`Store::begin`], but a missing vault is created (with a new passphrase and
    /// `kdf`); it is written at the first commit.
    ///
    /// # Errors
    /// As [`Store::begin`], and when no new passphrase can be had.
    pub fn begin_or_create<E>(&mut self, kdf: KdfParams) -> Result<Txn<'_>, E>
    where
        E: From<OpenError> + From<ChangeError>,
    {
        // `begin` reads, parses and reports on an existing file; parsing it here as well
        // would cost a third pass over a large vault.
        if self.path.exists() {
            return Ok(self.begin()?);
        }
        let pass = self
            .ui
            .new_passphrase("the new vault")
            .map_err(OpenError::from)?;
        let fresh = Vault::create(&pass, kdf)?;
        let mut cache = KeyCache::new(pass);
        cache.remember(&fresh);
        self.cache = Some(cache);
        fsio::ensure_parent(&self.path).map_err(OpenError::from)?;
        let lock = self.lock().map_err(OpenError::from)?;
        // Another process may have created the vault while we derived our key.
        let vault = match self.read().map_err(OpenError::from)? {
            Some(bytes) => self.unlock(&Parsed::parse(&bytes)?)?,
            None => {
                self.creating = true;
                let mut v = fresh;
                v.record(
                    crate::records::now(),
                    crate::types::EventAction::Init,
                    None,
                    None,
                );
                v
            }
        };
        Ok(Txn {
            store: self,
            vault,
            saved: false,
            _lock: lock,
        })
    }

    /// The locked read-modify-write of an existing vault: one derivation, one encryption,
    /// one atomic replace. `change` runs under the lock; when it fails, nothing is written.
    ///
    /// # Errors
    /// As [`Store::open`] and [`Txn::commit`] (both converted into the caller's error
    /// type `E`), or `change`'s own error.
    pub fn update<T, E>(&mut self, change: impl FnOnce(&mut Vault) -> Result<T, E>) -> Result<T, E>
    where
        E: From<OpenError> + From<SaveError>,
    {
        let mut tx = self.begin()?;
        let out = change(tx.vault())?;
        tx.commit()?;
        Ok(out)
    }

    /// Reads the vault under its lock without changing it: for writers of derived files
    /// (a verifier) that must not write a state older than one already written.
    ///
    /// # Errors
    /// As [`Store::open`], or `read`'s own error.
    pub fn snapshot<T, E>(&mut self, read: impl FnOnce(&Vault) -> Result<T, E>) -> Result<T, E>
    where
        E: From<OpenError>,
    {
        let (_lock, vault) = self.locked()?;
        read(&vault)
    }

    /// Writes a vault made by the caller (`init`, `import-legacy`) where `expect` holds,
    /// checked under the lock; `before_write` runs under the lock just before the replace.
    ///
    /// # Errors
    /// [`SaveError::Changed`] when the path no longer matches `expect`; I/O errors;
    /// `before_write`'s own.
    pub fn create<E: From<SaveError>>(
        &mut self,
        mut vault: Vault,
        expect: Expect<'_>,
        before_write: impl FnOnce() -> Result<(), E>,
    ) -> Result<(), E> {
        fsio::ensure_parent(&self.path).map_err(SaveError::from)?;
        let _lock = self.lock().map_err(SaveError::from)?;
        let now = self.read().map_err(read_for_save)?.map(zeroize::Zeroizing::new);
        match (expect, now.as_deref()) {
            (Expect::Absent, None) => {}
            (Expect::Absent, Some(_)) => {
                return Err(SaveError::Changed {
                    reason: format!(
                        "{} was created by another process meanwhile; nothing was written",
                        crate::display::path(&self.path)
                    ),
                }
                .into())
            }
            (Expect::Bytes(b), Some(n)) if n[..] == *b => {}
            (Expect::Bytes(_), _) => {
                return Err(SaveError::Changed {
                    reason: "the file changed while it was being read; nothing was written, run \
                             the command again"
                        .into(),
                }
                .into())
            }
        }
        before_write()?;
        self.creating = true;
        self.commit(&mut vault)?;
        self.after_commit(&vault);
        Ok(())
    }

    /// Re-keys the vault: the current passphrase unlocks it (before the new one is asked
    /// for), then `new` gives the new passphrase, and the vault is re-sealed under the lock.
    ///
    /// # Errors
    /// As [`Store::update`], and whatever `new` fails with.
    pub fn rekey<E>(
        &mut self,
        kdf: KdfParams,
        new: impl FnOnce() -> Result<SecretString, E>,
    ) -> Result<(), E>
    where
        E: From<OpenError> + From<SaveError> + From<ChangeError>,
    {
        let env = Parsed::parse(&self.read_existing()?)?;
        drop(self.unlock(&env)?);
        let pass = new()?;
        // The slot's key changes with its passphrase: the new slot is bound by `rekey_slot`
        // itself, and the old key must not bind it again at the save.
        self.slot_key = None;
        let ui = Rc::clone(&self.ui);
        self.update(|v| {
            announced(&*ui, &kdf, || {
                v.rekey_slot(ui.slot().as_deref(), &pass, kdf)
            })?;
            v.record(
                crate::records::now(),
                crate::types::EventAction::Rekey,
                None,
                None,
            );
            Ok(())
        })
    }

    /// Saves under the held lock (the caller runs the after-commit hook). A format-1 vault is
    /// written as format 2 (said once on stderr, recorded in its history).
    fn commit(&mut self, vault: &mut Vault) -> Result<(), SaveError> {
        vault.upgrade(chrono::Utc::now())?;
        if vault.take_upgrade_notice() && !self.upgrade_said {
            self.upgrade_said = true;
            self.ui.warn(&format!(
                "{} was upgraded from vault format 1 to format 2 (slots: see `slot list`); \
                 releases before format 2 cannot read it",
                crate::display::path(&self.path)
            ));
        }
        let gained_key = vault.ensure_signing_key();
        if let Some((id, key)) = &self.slot_key {
            vault.bind_passphrase_slot(id, key);
        }
        vault.note_parent_save();
        vault.bump_revision();
        fsio::atomic_write_with(&self.path, &mut |w| vault.write_to(w))?;
        let created = std::mem::take(&mut self.creating);
        if gained_key || created {
            if let Some(fp) = vault.fingerprint() {
                self.ui.now_signed(&self.path, &fp, created);
            }
        }
        Ok(())
    }

    /// Runs the after-commit hook once for the vault as saved.
    fn after_commit(&mut self, vault: &Vault) {
        if let Some(hook) = self.after_commit.as_mut() {
            hook(vault);
        }
    }
}

/// Runs `derive` (a key derivation with `kdf`) between the user interface's announcement
/// and its retraction.
fn announced<T>(ui: &dyn Interaction, kdf: &KdfParams, derive: impl FnOnce() -> T) -> T {
    let shown = ui.kdf_started(kdf);
    let r = derive();
    ui.kdf_done(shown);
    r
}

/// A read of the vault while saving: a file grown past the bound is not one to replace.
fn read_for_save(e: ReadError) -> SaveError {
    match e {
        ReadError::Io(e) => SaveError::Io(e),
        other => SaveError::Changed {
            reason: other.to_string(),
        },
    }
}

/// After a failed unlock: `Ok` when a person at a terminal may type the passphrase again
/// (said on stderr, with the tries left), else the error to give up with.
fn ask_again(ui: &dyn Interaction, e: OpenError, attempt: u32, tries: u32) -> Result<(), OpenError> {
    match e {
        OpenError::WrongPassphrase if attempt < tries => {
            ui.warn(&format!(
                "wrong passphrase, or the vault was modified; try again ({} of {tries} tries \
                 left)",
                tries - attempt
            ));
            Ok(())
        }
        OpenError::WrongPassphrase if tries > 1 => Err(OpenError::passphrase(format!(
            "{} ({tries} tries)",
            crate::error::WRONG_PASSPHRASE
        ))),
        e => Err(e),
    }
}

/// A change in progress: the vault under its lock. See [`Store::begin`].
pub struct Txn<'s> {
    store: &'s mut Store,
    vault: Vault,
    /// Whether something was saved whose after-commit hook has not run yet.
    saved: bool,
    _lock: Lock,
}

impl Drop for Txn<'_> {
    /// The after-commit hook runs once per transaction, after its last save and while the
    /// lock is still held (fields drop after this): a change saved in two steps (a new key,
    /// then the use recorded once the env file holds it) republishes once, and its
    /// `--then` commands run once.
    fn drop(&mut self) {
        if self.saved {
            self.store.after_commit(&self.vault);
        }
    }
}

impl Txn<'_> {
    /// The vault, to change.
    pub fn vault(&mut self) -> &mut Vault {
        &mut self.vault
    }

    /// Saves the vault as it is now (the lock stays held). A change that must be on disk
    /// before a side effect (a new key before it is written into an env file) commits,
    /// does the side effect, and commits again. The after-commit hook runs once, when the
    /// transaction ends.
    ///
    /// # Errors
    /// [`SaveError`] when the vault cannot be written.
    pub fn commit(&mut self) -> Result<(), SaveError> {
        self.store.commit(&mut self.vault)?;
        self.saved = true;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vault::NewKey;

    struct Quiet;
    impl Interaction for Quiet {
        fn passphrase(&self, _prompt: &str, _attempt: u32) -> Result<SecretString, PromptError> {
            Ok(SecretString::new("p".into()))
        }
        fn new_passphrase(&self, _what: &str) -> Result<SecretString, PromptError> {
            Ok(SecretString::new("p".into()))
        }
        fn warn(&self, _msg: &str) {}
        fn waiting_for_lock(&self, _path: &Path) {}
    }

    /// A vault too large to compare whole is compared by its length, head and tail: a save
    /// by another writer (a fresh nonce, here with the very same length) is told apart
    /// from the save that was read.
    #[test]
    fn a_large_vault_replaced_meanwhile_is_noticed() {
        let weak = KdfParams {
            memory_kib: 8,
            iterations: 1,
            parallelism: 1,
        };
        let mut v = Vault::create(&SecretString::new("p".into()), weak).unwrap();
        let now = chrono::DateTime::from_timestamp(1_780_000_000, 0).unwrap();
        while v.to_bytes().len() <= SAME_HEAD + SAME_TAIL {
            for i in 0..2000 {
                v.create_key(
                    NewKey {
                        name: format!("key {i}"),
                        description: "a description long enough to grow the file".into(),
                        expires_at: None,
                        permissions: Vec::new(),
                    },
                    now,
                );
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.json");
        let first = v.to_bytes();
        std::fs::write(&path, &first).unwrap();
        let store = Store::new(path.clone(), Rc::new(Quiet));
        let seen = Seen::of(first.clone());
        assert!(
            matches!(seen, Seen::Sampled { .. }),
            "sampled, not kept whole"
        );
        assert!(store.unchanged_since(&seen).unwrap(), "the same save");

        let again = v.to_bytes();
        assert_eq!(
            again.len(),
            first.len(),
            "the same content: only the nonce differs"
        );
        std::fs::write(&path, &again).unwrap();
        assert!(
            !store.unchanged_since(&seen).unwrap(),
            "a new save, same length"
        );

        let mut longer = first.clone();
        longer.push(b'\n');
        std::fs::write(&path, &longer).unwrap();
        assert!(!store.unchanged_since(&seen).unwrap(), "a longer file");
        std::fs::write(&path, &first[..first.len() - 1]).unwrap();
        assert!(!store.unchanged_since(&seen).unwrap(), "a shorter file");
        let mut other_tag = first.clone();
        let at = other_tag.len() - 10;
        other_tag[at] ^= 1;
        std::fs::write(&path, &other_tag).unwrap();
        assert!(!store.unchanged_since(&seen).unwrap(), "another tail");
        std::fs::remove_file(&path).unwrap();
        assert!(!store.unchanged_since(&seen).unwrap(), "no file");
        std::fs::write(&path, &first).unwrap();
        assert!(
            store.unchanged_since(&seen).unwrap(),
            "the same save, written back"
        );
    }
}
