//! Vault format 2 (`docs/vault-format-2.md`): several slots unlock one data key, and the
//! payload is a compact binary encoding.
//!
//! Invariant: a [`VaultV2`] only exists unlocked and holds the current data key; every
//! slot in it wraps that key; a slot removal or a passphrase change replaces the data key
//! and re-wraps it to every remaining slot before the method returns, so no save after it
//! can be read with the old key. Unlocking runs at most [`MAX_PASSPHRASE_KDFS`] Argon2id
//! derivations, whatever the header holds.

pub mod codec;
pub mod header;
pub mod slots;

use chrono::{DateTime, Utc};

pub use codec::{Contents, Events, Published};
pub use header::{detect, Detected, Header, Slot, SlotKind};
pub use slots::{AgeIdentity, Identities};

use crate::error::{Error, Result};
use crate::secret::{SecretKey, SecretString};
use crate::vault::crypto;
use crate::vault::format::KdfParams;
use crate::vault::records::{Event, Payload};

/// Most passphrase slots tried (one Argon2id each) by one unlock without `--slot`: a
/// header with 32 passphrase slots costs at most this many derivations.
pub const MAX_PASSPHRASE_KDFS: usize = 3;

/// What the user offers to unlock a vault.
#[derive(Default)]
pub struct Unlock<'a> {
    /// Identities from `--identity` / `MCP_KEY_VAULT_IDENTITY`; tried first.
    pub identities: Option<&'a Identities>,
    /// A passphrase, tried on passphrase slots after the identities.
    pub passphrase: Option<&'a SecretString>,
    /// `--slot ID|LABEL`: only this slot is tried.
    pub slot: Option<&'a str>,
}

/// An unlocked format-2 vault.
pub struct VaultV2 {
    slots: Vec<Slot>,
    data_key: SecretKey,
    unlocked_by: Option<String>,
    /// The decrypted content.
    pub contents: Contents,
}

impl std::fmt::Debug for VaultV2 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VaultV2")
            .field("slots", &self.slots.len())
            .field("keys", &self.contents.payload.keys.len())
            .finish_non_exhaustive()
    }
}

/// Finds a slot by id or label.
///
/// # Errors
/// [`Error::Usage`] when nothing matches.
pub fn find_slot(slots: &[Slot], sel: &str) -> Result<usize> {
    slots
        .iter()
        .position(|s| s.id == sel)
        .or_else(|| {
            (!sel.is_empty())
                .then(|| slots.iter().position(|s| s.label == sel))
                .flatten()
        })
        .ok_or_else(|| {
            Error::usage(format!(
                "no slot has the id or label {}; run `mcp-key-manager slot list`",
                crate::display::sanitize(sel)
            ))
        })
}

fn new_slot_id(slots: &[Slot]) -> String {
    loop {
        let id = crate::rng::hex(&crate::rng::bytes(4));
        if !slots.iter().any(|s| s.id == id) {
            return id;
        }
    }
}

fn check_label(slots: &[Slot], label: &str) -> Result<()> {
    if let Some(p) = header::label_problem(label) {
        return Err(Error::usage(p));
    }
    if !label.is_empty() && slots.iter().any(|s| s.label == label) {
        return Err(Error::usage(format!(
            "a slot is already labelled {}",
            crate::display::sanitize(label)
        )));
    }
    Ok(())
}

/// Opens the data key of `header` with what `unlock` offers: identities first (only the
/// slots whose recipient they match), then the passphrase on at most
/// [`MAX_PASSPHRASE_KDFS`] passphrase slots in header order (or only the `--slot` one).
/// Returns the key and the index of the slot that opened it.
///
/// # Errors
/// [`Error::Usage`] for an unknown `--slot`; [`Error::Passphrase`] when nothing offered
/// opens a slot; [`Error::Corrupt`] for a slot whose wrapped key is not an age file.
pub fn unlock_data_key(slots: &[Slot], unlock: &Unlock<'_>) -> Result<(SecretKey, usize)> {
    let selected = unlock.slot.map(|s| find_slot(slots, s)).transpose()?;
    let eligible = |i: usize| selected.is_none_or(|s| s == i);
    let mut problems: Vec<String> = Vec::new();
    if let Some(ids) = unlock.identities {
        for identity in &ids.0 {
            match identity {
                AgeIdentity::X25519(x) => {
                    let r = x.to_public().to_string();
                    for (i, s) in slots.iter().enumerate() {
                        if eligible(i) && s.kind == SlotKind::Age && s.recipient == r {
                            match slots::unwrap(x, &s.wrapped_key)? {
                                Some(k) => return Ok((k, i)),
                                None => return Err(Error::wrong_passphrase()),
                            }
                        }
                    }
                }
                AgeIdentity::Plugin(p) => {
                    let name = p.plugin();
                    for (i, s) in slots.iter().enumerate() {
                        let matches = s.kind == SlotKind::Age
                            && header::recipient_kind(&s.recipient)
                                == Ok(header::RecipientKind::Plugin(name.to_string()));
                        if !eligible(i) || !matches {
                            continue;
                        }
                        let plugin = match age::plugin::IdentityPluginV1::new(
                            name,
                            std::slice::from_ref(p),
                            slots::TerminalCallbacks,
                        ) {
                            Ok(pl) => pl,
                            Err(e) => {
                                problems.push(e.to_string());
                                break;
                            }
                        };
                        match slots::unwrap(&plugin, &s.wrapped_key) {
                            Ok(Some(k)) => return Ok((k, i)),
                            Ok(None) => {}
                            Err(Error::Passphrase(m)) => problems.push(m),
                            Err(e) => return Err(e),
                        }
                    }
                }
            }
        }
    }
    if let Some(pass) = unlock.passphrase {
        let candidates: Vec<usize> = slots
            .iter()
            .enumerate()
            .filter(|(i, s)| eligible(*i) && matches!(s.kind, SlotKind::Passphrase { .. }))
            .map(|(i, _)| i)
            .collect();
        for &i in candidates.iter().take(MAX_PASSPHRASE_KDFS) {
            let s = &slots[i];
            let k = slots::derive_slot_key(s, pass)?;
            let Ok(identity) = slots::open_identity(s, &k) else {
                continue;
            };
            return match slots::unwrap(&identity, &s.wrapped_key)? {
                Some(key) => Ok((key, i)),
                None => Err(Error::wrong_passphrase()),
            };
        }
        if candidates.len() > MAX_PASSPHRASE_KDFS {
            return Err(Error::Passphrase(format!(
                "{}; this vault has {} passphrase slots and only the first {MAX_PASSPHRASE_KDFS} \
                 are tried: name yours with --slot ID|LABEL (see `slot list`)",
                crate::error::WRONG_PASSPHRASE,
                candidates.len()
            )));
        }
        if candidates.is_empty() && unlock.identities.is_none() {
            return Err(Error::Passphrase(
                "this vault has no passphrase slot that could be tried; unlock it with \
                 --identity FILE or MCP_KEY_VAULT_IDENTITY"
                    .into(),
            ));
        }
        return Err(Error::wrong_passphrase());
    }
    if unlock.identities.is_some() {
        let mut msg = "no slot of this vault matches the given identity, or the vault was \
                       modified; check --identity / MCP_KEY_VAULT_IDENTITY"
            .to_string();
        for p in problems {
            msg.push_str("; ");
            msg.push_str(&p);
        }
        return Err(Error::Passphrase(msg));
    }
    Err(Error::Passphrase(
        "no passphrase or identity available; set MCP_KEY_VAULT_PASSPHRASE, \
         MCP_KEY_VAULT_PASSPHRASE_FILE or MCP_KEY_VAULT_IDENTITY"
            .into(),
    ))
}

impl VaultV2 {
    fn with_first_slot(
        contents: Contents,
        make: impl FnOnce(&str) -> Result<(SlotKind, String)>,
        label: &str,
        now: DateTime<Utc>,
    ) -> Result<VaultV2> {
        check_label(&[], label)?;
        let id = new_slot_id(&[]);
        let (kind, recipient) = make(&id)?;
        let data_key = SecretKey::random();
        let wrapped_key = slots::wrap(&data_key, &recipient)?;
        Ok(VaultV2 {
            slots: vec![Slot {
                id: id.clone(),
                label: label.to_string(),
                created_at: now,
                recipient,
                kind,
                wrapped_key,
            }],
            data_key,
            unlocked_by: Some(id),
            contents,
        })
    }

    /// A new vault (or an upgraded one, given the contents) with one passphrase slot.
    ///
    /// # Errors
    /// As [`crypto::derive_key`]; [`Error::Usage`] for a bad label.
    pub fn create_with_passphrase(
        contents: Contents,
        passphrase: &SecretString,
        kdf: KdfParams,
        label: &str,
        now: DateTime<Utc>,
    ) -> Result<VaultV2> {
        VaultV2::with_first_slot(
            contents,
            |id| slots::new_passphrase_kind(passphrase, kdf, id),
            label,
            now,
        )
    }

    /// A new vault with one age slot.
    ///
    /// # Errors
    /// [`Error::Usage`] for a recipient or label that is not acceptable.
    pub fn create_with_recipient(
        contents: Contents,
        recipient: &str,
        label: &str,
        now: DateTime<Utc>,
    ) -> Result<VaultV2> {
        header::recipient_kind(recipient).map_err(Error::usage)?;
        VaultV2::with_first_slot(
            contents,
            |_| Ok((SlotKind::Age, recipient.to_string())),
            label,
            now,
        )
    }

    /// A format-1 payload moved into format 2 under one passphrase slot (same passphrase,
    /// same KDF settings), with an `upgrade` event in its history.
    ///
    /// # Errors
    /// As [`VaultV2::create_with_passphrase`].
    pub fn upgrade(
        payload: Payload,
        revision: u64,
        passphrase: &SecretString,
        kdf: KdfParams,
        now: DateTime<Utc>,
    ) -> Result<VaultV2> {
        let mut v = VaultV2::create_with_passphrase(
            Contents {
                payload,
                revision,
                published: Vec::new(),
            },
            passphrase,
            kdf,
            "",
            now,
        )?;
        let id = v.slots[0].id.clone();
        v.event(
            now,
            "upgrade",
            format!("format 1 -> 2; passphrase slot {id}"),
        );
        Ok(v)
    }

    /// Parses, unlocks and decodes in one call.
    ///
    /// # Errors
    /// As [`Header::parse`], [`unlock_data_key`] and [`codec::decode`].
    pub fn open(bytes: &[u8], unlock: &Unlock<'_>) -> Result<VaultV2> {
        let h = Header::parse(bytes)?;
        VaultV2::unlock(h, unlock)
    }

    /// Unlocks a parsed header.
    ///
    /// # Errors
    /// As [`unlock_data_key`] and [`VaultV2::with_data_key`].
    pub fn unlock(h: Header, unlock: &Unlock<'_>) -> Result<VaultV2> {
        let (key, i) = unlock_data_key(&h.slots, unlock)?;
        let id = h.slots[i].id.clone();
        let mut v = VaultV2::with_data_key(h, key, Events::All)?;
        v.unlocked_by = Some(id);
        Ok(v)
    }

    /// Decrypts with an already known data key (a cached one, or a test's).
    ///
    /// # Errors
    /// [`Error::Passphrase`] when the payload does not authenticate under `key`,
    /// [`Error::Corrupt`] when its content is malformed.
    pub fn with_data_key(h: Header, key: SecretKey, events: Events) -> Result<VaultV2> {
        let plain = crypto::open(&key, &h.nonce, &h.ad(), &h.ciphertext)?;
        let contents = codec::decode(&plain, events)?;
        Ok(VaultV2 {
            slots: h.slots,
            data_key: key,
            unlocked_by: None,
            contents,
        })
    }

    /// The file's bytes: the payload encoded, sealed under the data key with a fresh
    /// nonce, bound to every header field.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut buf = codec::encode(&self.contents);
        let mut nonce = [0u8; 24];
        crate::rng::fill(&mut nonce);
        let ad = Header::associated_data(&self.slots, &nonce);
        crypto::seal_in_place(&self.data_key, &nonce, &ad, &mut buf);
        let ciphertext = std::mem::take(&mut *buf);
        Header {
            slots: self.slots.clone(),
            nonce,
            ciphertext,
        }
        .to_bytes()
    }

    /// The slots, in header order.
    pub fn slots(&self) -> &[Slot] {
        &self.slots
    }

    /// The id of the slot that unlocked this vault, if it was unlocked through one.
    pub fn unlocked_by(&self) -> Option<&str> {
        self.unlocked_by.as_deref()
    }

    /// A copy of the current data key. Only for tests that show a removed member's copy
    /// of the key stops working.
    #[doc(hidden)]
    pub fn data_key_for_tests(&self) -> SecretKey {
        self.data_key.duplicate()
    }

    fn event(&mut self, at: DateTime<Utc>, action: &str, detail: String) {
        self.contents.payload.events.push(Event {
            at,
            action: action.to_string(),
            key_id: None,
            name: None,
            detail: Some(detail),
        });
    }

    fn slot_words(s: &Slot) -> String {
        if s.label.is_empty() {
            format!("{} slot {}", s.kind.as_str(), s.id)
        } else {
            format!(
                "{} slot {} ({})",
                s.kind.as_str(),
                s.id,
                crate::display::sanitize(&s.label)
            )
        }
    }

    /// Adds a passphrase slot (the current data key wrapped to its new identity).
    ///
    /// # Errors
    /// [`Error::Usage`] at 32 slots or for a bad label; as [`crypto::derive_key`].
    pub fn add_passphrase_slot(
        &mut self,
        passphrase: &SecretString,
        kdf: KdfParams,
        label: &str,
        now: DateTime<Utc>,
    ) -> Result<&Slot> {
        self.check_room(label)?;
        let id = new_slot_id(&self.slots);
        let (kind, recipient) = slots::new_passphrase_kind(passphrase, kdf, &id)?;
        self.push_slot(id, kind, recipient, label, now)
    }

    /// Adds an age slot for `recipient` (for a plugin recipient, the plugin must be on
    /// PATH to wrap the key).
    ///
    /// # Errors
    /// [`Error::Usage`] at 32 slots, for a bad label or recipient, or one already present;
    /// [`Error::Failed`] when a plugin cannot wrap.
    pub fn add_age_slot(
        &mut self,
        recipient: &str,
        label: &str,
        now: DateTime<Utc>,
    ) -> Result<&Slot> {
        self.check_room(label)?;
        header::recipient_kind(recipient).map_err(Error::usage)?;
        if self.slots.iter().any(|s| s.recipient == recipient) {
            return Err(Error::usage("a slot already has that recipient"));
        }
        let id = new_slot_id(&self.slots);
        self.push_slot(id, SlotKind::Age, recipient.to_string(), label, now)
    }

    fn check_room(&self, label: &str) -> Result<()> {
        if self.slots.len() >= header::bounds::MAX_SLOTS {
            return Err(Error::usage(format!(
                "a vault has at most {} slots; remove one first",
                header::bounds::MAX_SLOTS
            )));
        }
        check_label(&self.slots, label)
    }

    fn push_slot(
        &mut self,
        id: String,
        kind: SlotKind,
        recipient: String,
        label: &str,
        now: DateTime<Utc>,
    ) -> Result<&Slot> {
        let wrapped_key = slots::wrap(&self.data_key, &recipient)?;
        let slot = Slot {
            id,
            label: label.to_string(),
            created_at: now,
            recipient,
            kind,
            wrapped_key,
        };
        let words = VaultV2::slot_words(&slot);
        self.slots.push(slot);
        self.event(now, "slot-add", words);
        Ok(self.slots.last().expect("just pushed"))
    }

    /// Removes a slot and rotates the data key: a fresh key is wrapped to every remaining
    /// slot (no passphrase needed: passphrase slots keep their public recipient), so the
    /// removed member's copy of the old key opens no later save. The last slot stays.
    ///
    /// # Errors
    /// [`Error::Usage`] for an unknown slot; [`Error::Failed`] for the last slot or when a
    /// plugin recipient cannot be re-wrapped (nothing is changed then).
    pub fn remove_slot(&mut self, sel: &str, now: DateTime<Utc>) -> Result<Slot> {
        let i = find_slot(&self.slots, sel)?;
        if self.slots.len() == 1 {
            return Err(Error::failed(
                "the last slot cannot be removed: add another slot first",
            ));
        }
        let mut rest: Vec<Slot> = self.slots.clone();
        let removed = rest.remove(i);
        self.rotate_into(rest)?;
        self.event(now, "slot-remove", VaultV2::slot_words(&removed));
        if self.unlocked_by.as_deref() == Some(removed.id.as_str()) {
            self.unlocked_by = None;
        }
        Ok(removed)
    }

    /// Changes a passphrase slot's passphrase: a new identity under the new passphrase,
    /// and a new data key for every slot (whoever knew the old passphrase and kept the
    /// file may hold the old identity).
    ///
    /// # Errors
    /// [`Error::Usage`] for an unknown or non-passphrase slot; as [`VaultV2::remove_slot`].
    pub fn rekey_slot(
        &mut self,
        sel: &str,
        passphrase: &SecretString,
        kdf: KdfParams,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let i = find_slot(&self.slots, sel)?;
        if !matches!(self.slots[i].kind, SlotKind::Passphrase { .. }) {
            return Err(Error::usage(
                "only a passphrase slot has a passphrase to change",
            ));
        }
        let mut next = self.slots.clone();
        let (kind, recipient) = slots::new_passphrase_kind(passphrase, kdf, &next[i].id)?;
        next[i].kind = kind;
        next[i].recipient = recipient;
        self.rotate_into(next)?;
        let words = VaultV2::slot_words(&self.slots[i]);
        self.event(now, "rekey", words);
        Ok(())
    }

    /// A fresh data key wrapped to every slot of `next`, committed only if all wraps work.
    fn rotate_into(&mut self, mut next: Vec<Slot>) -> Result<()> {
        let key = SecretKey::random();
        for s in &mut next {
            s.wrapped_key = slots::wrap(&key, &s.recipient)?;
        }
        self.slots = next;
        self.data_key = key;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
