//! The encrypted vault: an [`Envelope`] on disk around a [`Payload`] in memory.
//!
//! Invariant: a [`Vault`] only exists unlocked; it keeps the derived key so that saving
//! needs no second key derivation, and every save uses a fresh random nonce.

use crate::{crypto, format, v2};

use chrono::{DateTime, Duration, Utc};

use crate::format::{Envelope, KdfParams};
use crate::keyset::Keys;
use crate::records::{Event, KeyRecord, Payload, Published, Status};
use crate::types::{EventAction, KeyHash, KeyId, Permission};

use crate::display::sanitize;
use crate::error::{ChangeError, OpenError, SelectError};
use crate::keyfmt;
use crate::legacy::LegacyRecord;
use crate::secret::{SecretKey, SecretString};
use mcp_key_verifier::RateLimit;

/// An unlocked vault.
///
/// Its payload is changed only through the methods below, each of which appends its
/// history event, so ids stay unique and every change is recorded by construction.
#[derive(Debug)]
pub struct Vault {
    seal: Seal,
    payload: Payload,
    /// Set when this process turned a format-1 vault into format 2 and nobody has been
    /// told yet (see [`Vault::take_upgrade_notice`]).
    upgraded: bool,
    /// The digest of the save this vault was read from or last written as (format 2).
    saved_as: std::sync::Mutex<Option<[u8; 32]>>,
}

/// How the payload is sealed: the format the vault was read in (a new vault is format 2).
#[derive(Debug)]
enum Seal {
    /// Format 1: one passphrase; the derived key encrypts the payload. Written only by
    /// [`Vault::to_bytes`] for fixtures; the store upgrades it before saving.
    V1 {
        kdf: KdfParams,
        salt: Vec<u8>,
        key: SecretKey,
    },
    /// Format 2: slots around a data key.
    V2(v2::Sealing),
}

/// What [`Vault::rotate`] did.
#[derive(Debug)]
pub struct Rotation {
    /// Index of the old key.
    pub old: usize,
    /// Index of the successor.
    pub new: usize,
    /// The successor's full key.
    pub key: SecretString,
    /// The old key's status before the rotation.
    pub old_status: Status,
    /// Until when the old key stays valid (with a grace period), else `None` (revoked).
    pub old_valid_until: Option<DateTime<Utc>>,
}

impl Vault {
    /// A new, empty format-2 vault with one passphrase slot under `passphrase`, a fresh
    /// data key and a fresh `hash_key`.
    ///
    /// # Errors
    /// As `crypto::derive_key`.
    pub fn create(passphrase: &SecretString, kdf: KdfParams) -> Result<Vault, ChangeError> {
        kdf.check_bounds()?;
        let payload = Payload::new();
        let vault_key = public_key(&payload);
        Ok(Vault {
            seal: Seal::V2(v2::Sealing::with_passphrase(
                passphrase,
                kdf,
                "",
                Utc::now(),
                vault_key.as_ref(),
            )?),
            payload,
            upgraded: false,
            saved_as: Default::default(),
        })
    }

    /// A new, empty format-2 vault whose one slot is the age recipient `recipient`.
    ///
    /// # Errors
    /// [`ChangeError::Invalid`] for a recipient or label that is not acceptable.
    pub fn create_with_recipient(recipient: &str, label: &str) -> Result<Vault, ChangeError> {
        Ok(Vault {
            seal: Seal::V2(v2::Sealing::with_recipient(recipient, label, Utc::now())?),
            payload: Payload::new(),
            upgraded: false,
            saved_as: Default::default(),
        })
    }

    /// A new, empty vault in format 1, for fixtures that need a file of the old format
    /// (upgrade tests, benchmarks against format 1). The tool itself never writes one.
    ///
    /// # Errors
    /// As [`crypto::derive_key`].
    #[cfg(any(test, feature = "test-support"))]
    pub fn create_format1(passphrase: &SecretString, kdf: KdfParams) -> Result<Vault, ChangeError> {
        kdf.check_bounds()?;
        let salt = crate::rng::bytes(crate::crypto::SALT_LEN);
        let key = crypto::derive_key(passphrase, &salt, &kdf)?;
        Ok(Vault {
            seal: Seal::V1 { kdf, salt, key },
            payload: Payload::new(),
            upgraded: false,
            saved_as: Default::default(),
        })
    }

    /// Parses, unlocks and decrypts a vault of either format with a passphrase.
    ///
    /// # Errors
    /// [`OpenError::Corrupt`] for a bad or out-of-bounds header, [`OpenError::WrongPassphrase`]
    /// when authentication fails.
    pub fn open(bytes: &[u8], passphrase: &SecretString) -> Result<Vault, OpenError> {
        Vault::open_with(
            bytes,
            &v2::Unlock {
                passphrase: Some(passphrase),
                ..v2::Unlock::default()
            },
        )
    }

    /// Parses, unlocks and decrypts a vault of either format with what `unlock` offers
    /// (a format-1 vault takes only the passphrase).
    ///
    /// # Errors
    /// As [`Vault::open`]; [`OpenError::Passphrase`] when nothing offered fits.
    pub fn open_with(bytes: &[u8], unlock: &v2::Unlock<'_>) -> Result<Vault, OpenError> {
        match v2::detect(bytes)? {
            v2::Detected::V1(env) => {
                let pass = unlock.passphrase.ok_or_else(|| {
                    OpenError::passphrase("a format-1 vault opens only with its passphrase")
                })?;
                let key = crypto::derive_key(pass, &env.salt, &env.kdf)?;
                Vault::unlock(&env, key)
            }
            v2::Detected::V2(h) => Vault::unlock_v2(&h, unlock),
            v2::Detected::Legacy => Err(format::legacy_refusal()),
        }
    }

    /// Decrypts a format-1 `env` with an already derived key (see [`KeyCache`]).
    ///
    /// # Errors
    /// [`OpenError::WrongPassphrase`] when authentication fails, [`OpenError::Corrupt`] when the
    /// authenticated content is malformed.
    pub fn unlock(env: &Envelope, key: SecretKey) -> Result<Vault, OpenError> {
        let plain = crypto::open(&key, &env.nonce, &env.ad(), &env.ciphertext)?;
        let payload = Payload::from_json(&plain)?;
        Ok(Vault {
            seal: Seal::V1 {
                kdf: env.kdf,
                salt: env.salt.clone(),
                key,
            },
            payload,
            upgraded: false,
            saved_as: Default::default(),
        })
    }

    /// Unlocks a format-2 header with what `unlock` offers (identities first, then the
    /// passphrase on at most [`v2::MAX_PASSPHRASE_KDFS`] slots).
    ///
    /// # Errors
    /// [`OpenError::Invalid`] for an unknown `--slot`; [`OpenError::Passphrase`] when
    /// nothing offered opens a slot; as [`Vault::with_data_key`].
    pub fn unlock_v2(h: &v2::Header, unlock: &v2::Unlock<'_>) -> Result<Vault, OpenError> {
        let (key, i) = v2::unlock_data_key(&h.slots, unlock)?;
        let id = h.slots[i].id.clone();
        Vault::with_data_key(h, key, Some(id))
    }

    /// Decrypts a format-2 header with a known data key (a cached one, or a test's), as
    /// if unlocked through slot `by`.
    ///
    /// # Errors
    /// [`OpenError::WrongPassphrase`] when the payload does not authenticate under `key`,
    /// [`OpenError::Corrupt`] when its content is malformed.
    pub fn with_data_key(
        h: &v2::Header,
        key: SecretKey,
        by: Option<String>,
    ) -> Result<Vault, OpenError> {
        let (sealing, payload) = v2::Sealing::open(h, key, by, v2::Events::Lazy)?;
        Ok(Vault {
            seal: Seal::V2(sealing),
            payload,
            upgraded: false,
            saved_as: std::sync::Mutex::new(Some(h.save_digest())),
        })
    }

    /// Writes the file [`Vault::to_bytes`] gives; a format-2 vault's ciphertext is encoded
    /// piece by piece as it is written, never held whole as text.
    ///
    /// # Errors
    /// A failed write.
    pub fn write_to(&self, w: &mut dyn std::io::Write) -> std::io::Result<()> {
        match &self.seal {
            Seal::V2(s) => {
                let header = s.sealed(&self.payload);
                header.write_to(w)?;
                self.saved(&header);
                Ok(())
            }
            Seal::V1 { .. } => w.write_all(&self.to_bytes()),
        }
    }

    fn saved(&self, header: &v2::Header) {
        *self
            .saved_as
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(header.save_digest());
    }

    /// The digest of the save this vault was read from or last written as: what a
    /// verifier published from it carries as `save_digest` (64 lowercase hex). `None` for
    /// a vault read in format 1 and not saved since.
    pub fn save_digest(&self) -> Option<String> {
        self.saved_as_bytes().map(|d| hex(&d))
    }

    fn saved_as_bytes(&self) -> Option<[u8; 32]> {
        *self
            .saved_as
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether `digest` (64 hex) names one of this vault's earlier saves that it
    /// remembers: a verifier file holding it is behind this vault, not from another
    /// lineage (a rolled-back copy, another vault).
    pub fn descends_from(&self, digest: &str) -> bool {
        self.payload.recent_saves.iter().any(|d| hex(d) == digest)
    }

    /// The digests of the saves this vault comes from (64 hex each), oldest first: what a
    /// shared store is told, so that it can refuse a value from another lineage itself.
    pub fn lineage(&self) -> Vec<String> {
        self.payload.recent_saves.iter().map(hex).collect()
    }

    /// Before a save: the save this vault was read from (or last written as) becomes the
    /// newest of its remembered earlier saves.
    pub(crate) fn note_parent_save(&mut self) {
        if let Some(d) = self.saved_as_bytes() {
            let saves = &mut self.payload.recent_saves;
            if saves.last() != Some(&d) {
                saves.push(d);
            }
            let excess = saves.len().saturating_sub(crate::records::RECENT_SAVES);
            saves.drain(..excess);
        }
    }

    /// The fingerprint of the vault's signing key (`mkv1:…`); `None` for a vault read
    /// from a file written before signing and not saved since.
    pub fn fingerprint(&self) -> Option<String> {
        let k = self.payload.signing_key.as_ref()?;
        let public = ed25519_dalek::SigningKey::from_bytes(k.expose()).verifying_key();
        Some(mcp_key_verifier::fingerprint(&public.to_bytes()))
    }

    /// Signs `message` with the vault's key: its public key and the signature, or `None`
    /// for a vault without a key yet. Callers put their own context in `message` (a
    /// save and a verifier file are signed with different ones).
    pub(crate) fn sign(&self, message: &[u8]) -> Option<([u8; 32], [u8; 64])> {
        use ed25519_dalek::Signer as _;
        let k = self.payload.signing_key.as_ref()?;
        let signer = ed25519_dalek::SigningKey::from_bytes(k.expose());
        Some((
            signer.verifying_key().to_bytes(),
            signer.sign(message).to_bytes(),
        ))
    }

    /// The organisation prefix new keys carry (`acme` in `acme_mkm_…`), if the vault has one.
    pub fn key_prefix(&self) -> Option<&str> {
        match &self.seal {
            Seal::V2(s) => s.key_prefix(),
            Seal::V1 { .. } => None,
        }
    }

    /// Sets the organisation prefix new keys carry (`init --key-prefix`); it is in the
    /// header, bound to the payload, from the next save on. Keys made before keep theirs.
    ///
    /// # Errors
    /// [`ChangeError`] when a format-1 vault cannot be upgraded first.
    pub fn set_key_prefix(&mut self, prefix: &keyfmt::OrgPrefix) -> Result<(), ChangeError> {
        self.sealing_mut(Utc::now())?
            .set_key_prefix(Some(prefix.as_str().to_owned()));
        Ok(())
    }

    /// The public key new passphrase slots are bound to: the vault's signing key, made
    /// first if the vault has none (after the upgrade a format-1 vault needs anyway).
    fn vault_key_for_slots(&mut self, now: DateTime<Utc>) -> Result<Option<[u8; 32]>, ChangeError> {
        self.upgrade(now)?;
        self.ensure_signing_key();
        Ok(public_key(&self.payload))
    }

    /// Binds the passphrase slot `slot_id` to this vault's signing key with the slot's
    /// derived key (`slot_key`), when it is not bound to it yet: a slot made before binding,
    /// or before the vault had its key, is bound by the first save of someone who opened it
    /// with its passphrase. `true` when the binding changed.
    pub fn bind_passphrase_slot(&mut self, slot_id: &str, slot_key: &SecretKey) -> bool {
        let Some(pk) = public_key(&self.payload) else {
            return false;
        };
        match &mut self.seal {
            Seal::V2(s) => s.bind_slot(slot_id, slot_key, &pk),
            Seal::V1 { .. } => false,
        }
    }

    /// How the passphrase slot `slot_id`, opened with `slot_key`, stands to this vault's
    /// signing key.
    pub fn passphrase_slot_binding(&self, slot_id: &str, slot_key: &SecretKey) -> v2::Bound {
        let Seal::V2(s) = &self.seal else {
            return v2::Bound::Unbound;
        };
        match s.slots().iter().find(|x| x.id == slot_id) {
            Some(slot) => v2::check_binding(slot, slot_key, public_key(&self.payload).as_ref()),
            None => v2::Bound::Unbound,
        }
    }

    /// Gives a vault written before signing its signing key (the next save is signed);
    /// `true` when it had none.
    pub fn ensure_signing_key(&mut self) -> bool {
        if self.payload.signing_key.is_some() {
            return false;
        }
        self.payload.signing_key = Some(SecretKey::random());
        true
    }

    /// The file's bytes: the payload sealed under a fresh nonce, in the vault's format.
    pub fn to_bytes(&self) -> Vec<u8> {
        let (kdf, salt, key) = match &self.seal {
            Seal::V2(s) => {
                let header = s.sealed(&self.payload);
                self.saved(&header);
                return header.to_bytes();
            }
            Seal::V1 { kdf, salt, key } => (kdf, salt, key),
        };
        let mut buf = self.payload().to_json();
        let mut nonce = [0u8; 24];
        crate::rng::fill(&mut nonce);
        let ad = Envelope::associated_data(kdf, salt, &nonce);
        // Encrypting in place keeps one payload-sized buffer alive instead of two; once
        // sealed it holds only ciphertext and leaves its zeroizing wrapper.
        crypto::seal_in_place(key, &nonce, &ad, &mut buf);
        let ciphertext = std::mem::take(&mut *buf);
        Envelope {
            kdf: *kdf,
            salt: salt.clone(),
            nonce,
            ciphertext,
        }
        .to_bytes()
    }

    /// The vault's format version: 1 until a format-1 vault is upgraded, else 2.
    pub fn format_version(&self) -> u32 {
        match self.seal {
            Seal::V1 { .. } => 1,
            Seal::V2(_) => 2,
        }
    }

    /// Turns a format-1 vault into format 2: one passphrase slot sealed under the key
    /// already derived from its passphrase (same salt and settings: no second KDF, no
    /// prompt), a fresh data key, and an `upgrade` event. `false` if it already was.
    ///
    /// # Errors
    /// [`ChangeError`] when the new passphrase slot cannot be made.
    pub fn upgrade(&mut self, now: DateTime<Utc>) -> Result<bool, ChangeError> {
        if matches!(self.seal, Seal::V2(_)) {
            return Ok(false);
        }
        // The passphrase slot is bound to the vault's signing key from the start.
        self.ensure_signing_key();
        let vault_key = public_key(&self.payload);
        let Seal::V1 { kdf, salt, key } = &self.seal else {
            return Ok(false);
        };
        let sealing =
            v2::Sealing::from_derived_key(key, *kdf, salt.clone(), now, vault_key.as_ref())?;
        let detail = format!("format 1 -> 2; {}", v2::slot_words(&sealing.slots()[0]));
        self.seal = Seal::V2(sealing);
        self.upgraded = true;
        self.record(now, EventAction::Upgrade, None, Some(detail));
        Ok(true)
    }

    /// Whether this vault was upgraded to format 2 since the last call (once).
    pub fn take_upgrade_notice(&mut self) -> bool {
        std::mem::take(&mut self.upgraded)
    }

    fn sealing_mut(&mut self, now: DateTime<Utc>) -> Result<&mut v2::Sealing, ChangeError> {
        self.upgrade(now)?;
        match &mut self.seal {
            Seal::V2(s) => Ok(s),
            Seal::V1 { .. } => unreachable!("upgraded above"),
        }
    }

    /// The format-2 slots (none for a format-1 vault not yet upgraded).
    pub fn slots(&self) -> &[v2::Slot] {
        match &self.seal {
            Seal::V2(s) => s.slots(),
            Seal::V1 { .. } => &[],
        }
    }

    /// The id of the slot that unlocked this vault (format 2).
    pub fn unlocked_by(&self) -> Option<&str> {
        match &self.seal {
            Seal::V2(s) => s.unlocked_by(),
            Seal::V1 { .. } => None,
        }
    }

    /// For a cache of the data key: the unlocking slot, its wrapped key, the data key.
    pub(crate) fn data_key_cache_entry(&self) -> Option<(String, Vec<u8>, SecretKey)> {
        match &self.seal {
            Seal::V2(s) => s.cache_entry(),
            Seal::V1 { .. } => None,
        }
    }

    /// A copy of the format-2 data key, for tests that show a removed member's copy of
    /// it stops working. Never call it from the tool itself.
    #[cfg(any(test, feature = "test-support"))]
    pub fn data_key_for_tests(&self) -> Option<SecretKey> {
        match &self.seal {
            Seal::V2(s) => Some(s.data_key_for_tests()),
            Seal::V1 { .. } => None,
        }
    }

    /// Adds a passphrase slot (format 2; a format-1 vault is upgraded first).
    ///
    /// # Errors
    /// [`ChangeError::Invalid`] at 32 slots or for a bad label.
    pub fn add_passphrase_slot(
        &mut self,
        passphrase: &SecretString,
        kdf: KdfParams,
        label: &str,
        now: DateTime<Utc>,
    ) -> Result<v2::Slot, ChangeError> {
        let vault_key = self.vault_key_for_slots(now)?;
        let slot = self
            .sealing_mut(now)?
            .add_passphrase_slot(passphrase, kdf, label, now, vault_key.as_ref())?
            .clone();
        self.record(now, EventAction::SlotAdd, None, Some(v2::slot_words(&slot)));
        Ok(slot)
    }

    /// Adds an age slot (format 2; a format-1 vault is upgraded first).
    ///
    /// # Errors
    /// [`ChangeError::Invalid`] at 32 slots, for a bad label or recipient, or one already
    /// present; [`ChangeError::Refused`] when a plugin cannot wrap.
    pub fn add_age_slot(
        &mut self,
        recipient: &str,
        label: &str,
        now: DateTime<Utc>,
    ) -> Result<v2::Slot, ChangeError> {
        let slot = self
            .sealing_mut(now)?
            .add_age_slot(recipient, label, now)?
            .clone();
        self.record(now, EventAction::SlotAdd, None, Some(v2::slot_words(&slot)));
        Ok(slot)
    }

    /// Removes a slot by id or label and rotates the data key.
    ///
    /// # Errors
    /// [`ChangeError::Invalid`] for an unknown slot; [`ChangeError::Refused`] for the last
    /// slot or when a plugin recipient cannot be re-wrapped (nothing is changed then).
    pub fn remove_slot(&mut self, sel: &str, now: DateTime<Utc>) -> Result<v2::Slot, ChangeError> {
        let slot = self.sealing_mut(now)?.remove_slot(sel)?;
        self.record(
            now,
            EventAction::SlotRemove,
            None,
            Some(v2::slot_words(&slot)),
        );
        Ok(slot)
    }

    /// Changes the passphrase (and KDF settings) of one passphrase slot (`slot`, else the
    /// one that unlocked the vault, else the only one) and rotates the data key. A
    /// format-1 vault is upgraded first.
    ///
    /// # Errors
    /// [`ChangeError::Invalid`] for KDF settings out of bounds, or a slot that is unknown,
    /// not a passphrase slot, or not given when several could be meant; as
    /// [`Vault::remove_slot`] for re-wrapping.
    pub fn rekey(&mut self, passphrase: &SecretString, kdf: KdfParams) -> Result<(), ChangeError> {
        self.rekey_slot(None, passphrase, kdf)
    }

    /// As [`Vault::rekey`], naming the slot.
    ///
    /// # Errors
    /// As [`Vault::rekey`].
    pub fn rekey_slot(
        &mut self,
        slot: Option<&str>,
        passphrase: &SecretString,
        kdf: KdfParams,
    ) -> Result<(), ChangeError> {
        kdf.check_bounds()?;
        let vault_key = self.vault_key_for_slots(Utc::now())?;
        let s = self.sealing_mut(Utc::now())?;
        let sel = match slot {
            Some(x) => x.to_string(),
            None => s.default_passphrase_slot()?,
        };
        s.rekey_slot(&sel, passphrase, kdf, vault_key.as_ref())?;
        Ok(())
    }

    /// The KDF settings of this vault (format 2: of the unlocking passphrase slot, else
    /// the first passphrase slot, else the default).
    pub fn kdf(&self) -> KdfParams {
        match &self.seal {
            Seal::V1 { kdf, .. } => *kdf,
            Seal::V2(s) => s.kdf().map_or(KdfParams::DEFAULT, |(k, _)| k),
        }
    }

    /// The salt of [`Vault::kdf`]'s slot (public; empty when there is none).
    pub fn salt(&self) -> &[u8] {
        match &self.seal {
            Seal::V1 { salt, .. } => salt,
            Seal::V2(s) => s.kdf().map_or(&[][..], |(_, salt)| salt),
        }
    }

    /// All key records, in creation order.
    pub fn keys(&self) -> &Keys {
        &self.payload.keys
    }

    /// The history, oldest first.
    pub fn events(&self) -> &[Event] {
        self.payload.events.all()
    }

    /// The decrypted payload, read-only.
    pub fn payload(&self) -> &Payload {
        &self.payload
    }

    /// The payload for test fixtures and benchmarks that must build states no command
    /// makes (a key expired an hour ago, hostile names). Bypasses every invariant of
    /// this type: never call it from the tool itself.
    #[cfg(any(test, feature = "test-support"))]
    pub fn payload_mut_unchecked(&mut self) -> &mut Payload {
        &mut self.payload
    }

    /// The number of saves this vault has seen (0 for a vault older than revisions).
    pub fn revision(&self) -> u64 {
        self.payload.revision
    }

    /// Moves the revision to `r` (never back), so the next save is newer than a verifier of
    /// revision `r`: for a vault restored from a backup, whose servers hold a later state.
    pub fn advance_revision(&mut self, r: u64) {
        // Never to the largest revision a verifier may carry: the next save must still be
        // able to go past it (a saturated revision would freeze every reader).
        let r = r.min(mcp_key_verifier::MAX_REVISION - 1);
        self.payload.revision = self.payload.revision.max(r);
    }

    /// Counts one more save; the store calls it once per committed change.
    pub(crate) fn bump_revision(&mut self) {
        self.payload.revision = self.payload.revision.saturating_add(1);
    }

    /// The published verifier files.
    pub fn published(&self) -> &[Published] {
        &self.payload.published
    }

    /// Records `p` as published (replacing an entry for the same path); `false` when the
    /// same entry was already there.
    pub fn publish(&mut self, p: Published, now: DateTime<Utc>) -> bool {
        let list = &mut self.payload.published;
        if list.contains(&p) {
            return false;
        }
        // The hook is part of the record: it runs as whoever makes the next change.
        let detail = match &p.then {
            Some(cmd) => format!("{} (then: {cmd})", p.path.display()),
            None => p.path.display().to_string(),
        };
        match list.iter_mut().find(|q| q.path == p.path) {
            Some(q) => *q = p,
            None => list.push(p),
        }
        self.record(now, EventAction::Publish, None, Some(detail));
        true
    }

    /// Stops publishing to `path` (the file stays); `false` when it was not published.
    pub fn unpublish(&mut self, path: &std::path::Path, now: DateTime<Utc>) -> bool {
        let before = self.payload.published.len();
        self.payload.published.retain(|q| q.path != path);
        if self.payload.published.len() == before {
            return false;
        }
        let detail = path.display().to_string();
        self.record(now, EventAction::Unpublish, None, Some(detail));
        true
    }

    /// The HMAC key of the keyed hashes.
    pub fn hash_key(&self) -> &SecretKey {
        &self.payload.hash_key
    }

    /// HMAC-SHA256(hash_key, key).
    pub fn keyed_hash(&self, key: &str) -> KeyHash {
        self.payload.keyed_hash(key)
    }

    /// The index of the record whose full key is `key`, compared by keyed hash in
    /// constant time.
    pub fn find_by_key(&self, key: &str) -> Option<usize> {
        let want = self.keyed_hash(key);
        // Hashes only: no record is decoded to find one.
        (0..self.payload.keys.len()).position(|i| self.payload.keys.hash(i).ct_eq(&want))
    }

    /// Finds a key by full id or unique prefix, as git does.
    ///
    /// # Errors
    /// [`SelectError::NotFound`] or [`SelectError::Ambiguous`] (listing candidates).
    pub fn find(&self, prefix: &str) -> Result<usize, SelectError> {
        find_index(&self.payload.keys, prefix)
    }

    /// Appends an event to the history.
    pub fn record(
        &mut self,
        at: DateTime<Utc>,
        action: EventAction,
        key: Option<usize>,
        detail: Option<String>,
    ) {
        let (key_id, name) = match key.and_then(|i| self.payload.keys.get(i)) {
            Some(k) => (Some(k.id.clone()), Some(k.name.clone())),
            None => (None, None),
        };
        self.payload.events.push(Event {
            at,
            action,
            key_id,
            name,
            detail,
        });
    }

    fn new_id(&self) -> KeyId {
        loop {
            let id = keyfmt::new_id();
            if !self.payload.keys.contains_id(&id) {
                return KeyId::from(id);
            }
        }
    }

    /// Makes a new key, stores its record and returns its index and the full key.
    pub fn create_key(&mut self, spec: NewKey, now: DateTime<Utc>) -> (usize, SecretString) {
        let id = self.new_id();
        let org = self.key_prefix().and_then(keyfmt::OrgPrefix::new);
        let secret = keyfmt::generate_with(org.as_ref(), &id);
        let hash = self.keyed_hash(secret.expose());
        self.payload.keys.push(KeyRecord {
            id,
            name: spec.name,
            description: spec.description,
            created_at: now,
            expires_at: spec.expires_at,
            revoked_at: None,
            permissions: spec.permissions,
            metadata: serde_json::Map::new(),
            secret: secret.duplicate(),
            hash,
            rotated_from: None,
            rotated_to: None,
        });
        let idx = self.payload.keys.len() - 1;
        self.record(now, EventAction::Create, Some(idx), None);
        (idx, secret)
    }

    /// Revokes key `i`; `false` when it already was.
    pub fn revoke(&mut self, i: usize, now: DateTime<Utc>) -> bool {
        if self.payload.keys[i].revoked_at.is_some() {
            return false;
        }
        self.payload.keys[i].revoked_at = Some(now);
        self.record(now, EventAction::Revoke, Some(i), None);
        true
    }

    /// Removes key `i`'s record (and its rate limit; its history stays) and returns it.
    pub fn delete(&mut self, i: usize, now: DateTime<Utc>) -> KeyRecord {
        self.record(now, EventAction::Delete, Some(i), None);
        let k = self.payload.keys.remove(i);
        self.payload.limits.remove(k.id.as_str());
        k
    }

    /// Key `i`'s rate limit, if it has one.
    pub fn rate_limit(&self, i: usize) -> Option<RateLimit> {
        if self.payload.limits.is_empty() {
            return None;
        }
        self.payload.limits.get(self.payload.keys.id(i)).copied()
    }

    /// Sets key `i`'s rate limit (`None` clears it); `false` when it already was so.
    ///
    /// # Errors
    /// [`ChangeError::Refused`] for a format-1 vault, which has no place for limits.
    pub fn set_rate_limit(
        &mut self,
        i: usize,
        limit: Option<RateLimit>,
        now: DateTime<Utc>,
    ) -> Result<bool, ChangeError> {
        if self.rate_limit(i) == limit {
            return Ok(false);
        }
        if self.format_version() == 1 {
            return Err(ChangeError::refused(
                "a format-1 vault has no place for rate limits; run `mcp-key-manager upgrade` \
                 first",
            ));
        }
        let id = self.payload.keys.id(i).to_owned();
        let detail = limit.map_or_else(|| "none".to_owned(), |l| l.to_string());
        match limit {
            Some(l) => self.payload.limits.insert(id, l),
            None => self.payload.limits.remove(&id),
        };
        self.record(now, EventAction::Limit, Some(i), Some(detail));
        Ok(true)
    }

    /// Records that key `i` was handed out by `use` (`detail`: where to).
    pub fn record_use(&mut self, i: usize, now: DateTime<Utc>, detail: &str) {
        self.record(now, EventAction::Use, Some(i), Some(detail.to_string()));
    }

    /// Replaces key `i` with a successor of the same name, description, permissions and
    /// validity period. The old key is revoked now, or with `grace_days` stays valid that
    /// long (never longer than it already was).
    ///
    /// # Errors
    /// [`ChangeError::Refused`] when the key was already rotated to a successor that still exists.
    pub fn rotate(
        &mut self,
        i: usize,
        grace_days: Option<u32>,
        now: DateTime<Utc>,
    ) -> Result<Rotation, ChangeError> {
        let old = &self.payload.keys[i];
        if let Some(next) = &old.rotated_to {
            if self.payload.keys.contains_id(next) {
                return Err(ChangeError::refused(format!(
                    "key {} was already rotated to {next}; rotate {next} instead",
                    old.id
                )));
            }
        }
        let old_status = old.status(now);
        let validity = old.expires_at.map(|e| e - old.created_at);
        let spec = NewKey {
            name: old.name.clone(),
            description: old.description.clone(),
            expires_at: validity.map(|d| now + d.max(Duration::days(1))),
            permissions: old.permissions.clone(),
        };
        let old_id = old.id.clone();
        let limit = self.rate_limit(i);
        let (j, key) = self.create_key(spec, now);
        let new_id = self.payload.keys[j].id.clone();
        // The successor keeps the limit (no event: the rotation is the change).
        if let Some(l) = limit {
            self.payload.limits.insert(new_id.to_string(), l);
        }
        self.payload.keys[j].rotated_from = Some(old_id);
        let o = &mut self.payload.keys[i];
        o.rotated_to = Some(new_id.clone());
        let old_valid_until = match grace_days {
            Some(d) => {
                let until = now + Duration::days(i64::from(d));
                if o.revoked_at.is_none() {
                    o.expires_at = Some(o.expires_at.map_or(until, |e| e.min(until)));
                }
                o.expires_at
            }
            None => {
                if o.revoked_at.is_none() {
                    o.revoked_at = Some(now);
                }
                None
            }
        };
        self.record(
            now,
            EventAction::Rotate,
            Some(i),
            Some(format!("successor {new_id}")),
        );
        Ok(Rotation {
            old: i,
            new: j,
            key,
            old_status,
            old_valid_until,
        })
    }

    /// Adds `perms` to key `i`; returns those it did not have.
    pub fn grant(&mut self, i: usize, perms: &[Permission], now: DateTime<Utc>) -> Vec<Permission> {
        let k = &mut self.payload.keys[i];
        let mut added = Vec::new();
        for p in perms {
            if !k.permissions.contains(p) && !added.contains(p) {
                k.permissions.push(p.clone());
                added.push(p.clone());
            }
        }
        self.record_permissions(EventAction::Grant, i, &added, now);
        added
    }

    /// Removes `perms` from key `i`; returns those it had.
    pub fn deny(&mut self, i: usize, perms: &[Permission], now: DateTime<Utc>) -> Vec<Permission> {
        let k = &mut self.payload.keys[i];
        let mut removed = Vec::new();
        for p in perms {
            if k.permissions.contains(p) {
                k.permissions.retain(|x| x != p);
                removed.push(p.clone());
            }
        }
        self.record_permissions(EventAction::Deny, i, &removed, now);
        removed
    }

    fn record_permissions(
        &mut self,
        action: EventAction,
        i: usize,
        changed: &[Permission],
        now: DateTime<Utc>,
    ) {
        if !changed.is_empty() {
            let list: Vec<&str> = changed.iter().map(|p| p.as_str()).collect();
            self.record(now, action, Some(i), Some(list.join(",")));
        }
    }

    /// Adds a record imported from the Python tool (an inactive one becomes revoked now).
    ///
    /// # Errors
    /// [`OpenError::Corrupt`] when its id is already taken.
    pub fn import_record(
        &mut self,
        r: LegacyRecord,
        now: DateTime<Utc>,
        source: &str,
    ) -> Result<usize, ChangeError> {
        if self.payload.keys.contains_id(&r.id) {
            return Err(ChangeError::corrupt(format!(
                "the id {} is imported twice",
                sanitize(&r.id)
            )));
        }
        let hash = self.keyed_hash(r.key.expose());
        self.payload.keys.push(KeyRecord {
            id: KeyId::from(r.id),
            name: r.name,
            description: r.description,
            created_at: r.created_at,
            expires_at: r.expires_at,
            revoked_at: (!r.active).then_some(now),
            permissions: r.permissions,
            metadata: r.metadata,
            secret: r.key,
            hash,
            rotated_from: None,
            rotated_to: None,
        });
        let i = self.payload.keys.len() - 1;
        self.record(now, EventAction::Import, Some(i), Some(source.to_string()));
        Ok(i)
    }
}

/// How a command names a key.
#[derive(Debug, Clone, Copy)]
pub enum Selector<'a> {
    /// An id, or a unique prefix of one.
    Id(&'a str),
    /// An exact name.
    Name(&'a str),
}

impl Vault {
    /// The key `sel` names.
    ///
    /// # Errors
    /// As [`Vault::find`]; for a name, [`SelectError::NotFound`] or, when several keys share
    /// it, [`SelectError::Ambiguous`] listing them.
    pub fn select(&self, sel: Selector<'_>) -> Result<usize, SelectError> {
        match sel {
            Selector::Id(id) => self.find(id).map_err(|e| match e {
                SelectError::NotFound { message }
                    if self.keys().looks().any(|k| k.name() == id) =>
                {
                    SelectError::NotFound {
                        message: format!("{message} (a key has that name: select it with --name)"),
                    }
                }
                other => other,
            }),
            Selector::Name(name) => self.select_name(name),
        }
    }

    /// [`Vault::select`], with what to tell the user when a name several keys share was
    /// taken to mean the one not rotated away (a rotation's grace period).
    ///
    /// # Errors
    /// As [`Vault::select`].
    pub fn select_noting(&self, sel: Selector<'_>) -> Result<(usize, Option<String>), SelectError> {
        let Selector::Name(name) = sel else {
            return self.select(sel).map(|i| (i, None));
        };
        let (i, shared) = self.select_name_counting(name)?;
        let note = (shared > 1).then(|| {
            format!(
                "{shared} keys are named \"{}\" (the others were rotated into it and may be in \
                 their grace period); using {}, the current one",
                sanitize(name),
                self.keys().id(i)
            )
        });
        Ok((i, note))
    }

    fn select_name(&self, name: &str) -> Result<usize, SelectError> {
        self.select_name_counting(name).map(|(i, _)| i)
    }

    /// The key a name means, and how many keys carry that name.
    fn select_name_counting(&self, name: &str) -> Result<(usize, usize), SelectError> {
        // Names are compared in place: no record is decoded (and kept) to be looked at.
        let hits: Vec<usize> = (self.keys().looks().enumerate())
            .filter(|(_, k)| k.name() == name)
            .map(|(i, _)| i)
            .collect();
        match hits.as_slice() {
            [i] => return Ok((*i, 1)),
            [] => {
                return Err(SelectError::NotFound {
                    message: format!("no key is named \"{}\"", sanitize(name)),
                })
            }
            _ => {}
        }
        // During a rotation's grace period the old key keeps its name: the one not rotated
        // away is the key the name means now.
        let mut current = hits
            .iter()
            .filter(|&&i| !self.keys().look(i).rotated_away());
        if let (Some(&i), None) = (current.next(), current.next()) {
            return Ok((i, hits.len()));
        }
        let ids: Vec<&str> = hits.iter().map(|&i| self.keys().id(i)).collect();
        Err(SelectError::Ambiguous {
            message: format!(
                "{} keys are named \"{}\": {}; give an id instead",
                hits.len(),
                sanitize(name),
                ids.join(", ")
            ),
        })
    }

    /// The keys `sels` name, each resolved before anything changes, duplicates once.
    ///
    /// # Errors
    /// The first selector that names no key, or is ambiguous.
    pub fn select_all(&self, sels: &[Selector<'_>]) -> Result<Vec<usize>, SelectError> {
        self.select_all_noting(sels).map(|(chosen, _)| chosen)
    }

    /// [`Vault::select_all`], with the notes of [`Vault::select_noting`].
    ///
    /// # Errors
    /// As [`Vault::select_all`].
    pub fn select_all_noting(
        &self,
        sels: &[Selector<'_>],
    ) -> Result<(Vec<usize>, Vec<String>), SelectError> {
        let mut out = Vec::with_capacity(sels.len());
        let mut notes = Vec::new();
        for s in sels {
            let (i, note) = self.select_noting(*s)?;
            notes.extend(note);
            if !out.contains(&i) {
                out.push(i);
            }
        }
        Ok((out, notes))
    }
}

/// What `create` (and `rotate`) needs to make a key.
#[derive(Debug, Clone)]
pub struct NewKey {
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Expiry, `None` for never.
    pub expires_at: Option<DateTime<Utc>>,
    /// Permissions.
    pub permissions: Vec<Permission>,
}

/// Finds a record by full id or unique prefix.
///
/// An exact id wins over everything, so an imported id such as `mcp_prod_server_key_01`
/// stays reachable; only a string of the exact shape of a whole key is refused as one,
/// without being echoed.
///
/// # Errors
/// [`SelectError::NotFound`], [`SelectError::Ambiguous`]; [`SelectError::Invalid`] for an
/// empty argument or a whole key.
pub fn find_index(keys: &Keys, prefix: &str) -> Result<usize, SelectError> {
    if prefix.is_empty() {
        return Err(SelectError::Invalid {
            reason: "a key id must not be empty".into(),
        });
    }
    // Ids only: no record is decoded unless it is named in an error.
    if let Some(i) = keys.ids().position(|id| id == prefix) {
        return Ok(i);
    }
    if looks_like_key(prefix) {
        // Never echo it: this is a whole key, pasted where an id belongs.
        return Err(SelectError::Invalid {
            reason: "that looks like a whole key, not an id: give only its id (see `list`), \
                     and never put a key on the command line"
                .into(),
        });
    }
    let hits: Vec<usize> = keys
        .ids()
        .enumerate()
        .filter(|(_, id)| id.starts_with(prefix))
        .map(|(i, _)| i)
        .collect();
    match hits.as_slice() {
        [i] => Ok(*i),
        [] => Err(SelectError::NotFound {
            message: not_found(prefix),
        }),
        many => {
            let names: Vec<String> = many
                .iter()
                .take(10)
                .map(|&i| format!("{} ({})", keys[i].id, sanitize(&keys[i].name)))
                .collect();
            Err(SelectError::Ambiguous {
                message: format!(
                    "the id prefix {} is ambiguous: it matches {}{}; give more characters",
                    sanitize(prefix),
                    names.join(", "),
                    if many.len() > 10 { ", …" } else { "" }
                ),
            })
        }
    }
}

/// Whether an argument given where an id belongs has the exact shape of a key of this
/// tool (checked after an exact id match, so imported ids of any shape stay reachable).
pub fn looks_like_key(arg: &str) -> bool {
    matches!(keyfmt::classify(arg), keyfmt::Shape::Modern { .. })
}

/// The message for an id argument that matched nothing. The argument is repeated only
/// when it could be an id prefix (1-16 lowercase hex characters): a key of the Python
/// tool (`changeme-api-key`) is indistinguishable from a mistyped imported id.
pub fn not_found(arg: &str) -> String {
    let hexish = arg.len() <= keyfmt::ID_HEX
        && arg
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if hexish {
        format!("no key with id {arg}")
    } else {
        "no key with id matching the argument (not repeated here, in case it was a key)".to_string()
    }
}

/// Caches the key derived for one passphrase, so that re-reading the vault after taking
/// the lock costs no second derivation unless a concurrent `rekey` changed the salt.
/// A cache may also start from a ready key (an unlock session), with no passphrase.
#[derive(Debug)]
pub struct KeyCache {
    passphrase: Option<SecretString>,
    cached: Option<(KdfParams, Vec<u8>, SecretKey)>,
    /// Format 2: the slot that unlocked, its wrapped key, and the data key.
    data_key: Option<(String, Vec<u8>, SecretKey)>,
}

impl KeyCache {
    /// A cache for `passphrase`.
    pub fn new(passphrase: SecretString) -> Self {
        KeyCache {
            passphrase: Some(passphrase),
            cached: None,
            data_key: None,
        }
    }

    /// A cache seeded with a key already derived for these settings and salt (from an
    /// unlock session): it derives nothing, and fails for any other salt.
    pub fn from_key(kdf: KdfParams, salt: Vec<u8>, key: SecretKey) -> Self {
        KeyCache {
            passphrase: None,
            cached: Some((kdf, salt, key)),
            data_key: None,
        }
    }

    /// Remembers a key derived elsewhere for `kdf` and `salt` (a format-2 passphrase
    /// slot's), so an unlock session can be started from it.
    pub(crate) fn remember_key(&mut self, kdf: KdfParams, salt: Vec<u8>, key: SecretKey) {
        self.cached = Some((kdf, salt, key));
    }

    /// The passphrase itself; `None` for a cache seeded from a session.
    pub fn passphrase(&self) -> Option<&SecretString> {
        self.passphrase.as_ref()
    }

    /// The settings, salt and key last derived or seeded, if any.
    pub fn cached(&self) -> Option<(&KdfParams, &[u8], &SecretKey)> {
        self.cached
            .as_ref()
            .map(|(k, s, key)| (k, s.as_slice(), key))
    }

    /// The key for this envelope's salt and settings, derived at most once.
    ///
    /// # Errors
    /// As `crypto::derive_key`; [`OpenError::Passphrase`] for a seeded cache whose key does
    /// not fit this envelope (the vault was re-keyed since the session began).
    pub fn key_for(&mut self, env: &Envelope) -> Result<SecretKey, OpenError> {
        if let Some((kdf, salt, key)) = &self.cached {
            if *kdf == env.kdf && *salt == env.salt {
                return Ok(key.duplicate());
            }
        }
        let Some(passphrase) = &self.passphrase else {
            return Err(OpenError::passphrase(
                "the vault's passphrase changed while this command ran on an unlock session; \
                 run it again (and `unlock` again)",
            ));
        };
        let key = crypto::derive_key(passphrase, &env.salt, &env.kdf)?;
        self.cached = Some((env.kdf, env.salt.clone(), key.duplicate()));
        Ok(key)
    }

    /// Unlocks an envelope.
    ///
    /// # Errors
    /// As [`Vault::unlock`].
    pub fn unlock(&mut self, env: &Envelope) -> Result<Vault, OpenError> {
        let key = self.key_for(env)?;
        Vault::unlock(env, key)
    }

    /// Remembers the key of a vault this process made or re-keyed.
    pub fn remember(&mut self, vault: &Vault) {
        match &vault.seal {
            Seal::V1 { kdf, salt, key } => {
                self.cached = Some((*kdf, salt.clone(), key.duplicate()));
            }
            Seal::V2(_) => self.data_key = vault.data_key_cache_entry(),
        }
    }

    /// The cached format-2 data key, if slot `id` still wraps exactly `wrapped`.
    pub(crate) fn data_key_for(&self, h: &v2::Header) -> Option<(String, SecretKey)> {
        let (id, wrapped, key) = self.data_key.as_ref()?;
        h.slots
            .iter()
            .any(|s| &s.id == id && &s.wrapped_key == wrapped)
            .then(|| (id.clone(), key.duplicate()))
    }

    /// Remembers the data key of a format-2 vault just unlocked.
    pub(crate) fn remember_data_key(&mut self, vault: &Vault) {
        self.data_key = vault.data_key_cache_entry();
    }
}

/// The public half of a payload's signing key.
fn public_key(payload: &Payload) -> Option<[u8; 32]> {
    let k = payload.signing_key.as_ref()?;
    Some(
        ed25519_dalek::SigningKey::from_bytes(k.expose())
            .verifying_key()
            .to_bytes(),
    )
}

fn hex(d: &[u8; 32]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// An empty vault for tests: passphrase `p`, the cheapest KDF the format allows.
#[cfg(any(test, feature = "test-support"))]
pub fn test_vault() -> Vault {
    let kdf = KdfParams {
        memory_kib: 8,
        iterations: 1,
        parallelism: 1,
    };
    Vault::create(&SecretString::new("p".into()), kdf).expect("the cheapest KDF is in bounds")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weak() -> KdfParams {
        KdfParams {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        }
    }

    /// Selecting by name (and the hint that an id is a name) reads names in place: at
    /// 100,000 keys nothing is decoded and kept to be looked at.
    #[test]
    fn selecting_by_name_decodes_nothing() {
        let mut v = test_vault();
        let now = chrono::DateTime::from_timestamp(1_780_000_000, 0).unwrap();
        for name in ["alpha", "twin", "beta", "twin"] {
            v.create_key(
                NewKey {
                    name: name.into(),
                    description: String::new(),
                    expires_at: None,
                    permissions: vec![],
                },
                now,
            );
        }
        let v = Vault::open(&v.to_bytes(), &SecretString::new("p".into())).unwrap();
        assert_eq!(v.select(Selector::Name("beta")).unwrap(), 2);
        let twins = v.select(Selector::Name("twin")).unwrap_err().to_string();
        assert!(
            twins.contains(v.keys().id(1)) && twins.contains(v.keys().id(3)),
            "{twins}"
        );
        let hint = v.select(Selector::Id("alpha")).unwrap_err().to_string();
        assert!(hint.contains("a key has that name"), "{hint}");
        assert!(v.select(Selector::Name("gamma")).is_err());
        assert_eq!(v.keys().decoded_count(), 0);
    }

    #[test]
    fn round_trip_with_fresh_nonce() {
        let pass = SecretString::new("correct horse".into());
        let mut v = Vault::create(&pass, weak()).unwrap();
        let now = Utc::now();
        let (_, key) = v.create_key(
            NewKey {
                name: "n".into(),
                description: "d".into(),
                expires_at: None,
                permissions: vec!["info".parse().unwrap()],
            },
            now,
        );
        let a = v.to_bytes();
        let b = v.to_bytes();
        assert_ne!(a, b, "each save must use a fresh nonce");
        let w = Vault::open(&a, &pass).unwrap();
        assert_eq!(w.keys().len(), 1);
        assert_eq!(w.keys()[0].secret.expose(), key.expose());
        assert_eq!(w.keys()[0].hash, w.keyed_hash(key.expose()));
        let wrong = SecretString::new("wrong".into());
        assert!(matches!(
            Vault::open(&a, &wrong),
            Err(OpenError::WrongPassphrase)
        ));
    }

    #[test]
    fn prefix_lookup() {
        let pass = SecretString::new("p".into());
        let mut v = Vault::create(&pass, weak()).unwrap();
        for (i, id) in ["abc0000000000001", "abc0000000000002", "def0000000000003"]
            .iter()
            .enumerate()
        {
            v.create_key(
                NewKey {
                    name: format!("k{i}"),
                    description: String::new(),
                    expires_at: None,
                    permissions: vec![],
                },
                Utc::now(),
            );
            v.payload_mut_unchecked().keys[i].id = (*id).into();
        }
        assert_eq!(v.find("def").unwrap(), 2);
        assert_eq!(v.find("abc0000000000002").unwrap(), 1);
        let e = v.find("abc").unwrap_err().to_string();
        assert!(
            e.contains("ambiguous") && e.contains("abc0000000000001"),
            "{e}"
        );
        assert!(matches!(v.find("fff"), Err(SelectError::NotFound { .. })));
    }
}
