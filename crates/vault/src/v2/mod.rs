//! Vault format 2 (`docs/vault-format-2.md`): several slots unlock one data key, and the
//! payload is a compact binary encoding. `Sealing` (private) is the format-2 half of an
//! unlocked [`Vault`](crate::Vault): its slots and its data key.
//!
//! Invariant: a `Sealing` holds the current data key and every slot in it wraps that
//! key; a slot removal or a passphrase change replaces the data key and re-wraps it to
//! every remaining slot before the method returns, so no save after it can be read with
//! the old key. Unlocking runs at most [`MAX_PASSPHRASE_KDFS`] Argon2id derivations,
//! whatever the header holds.

#[cfg(feature = "test-support")]
pub mod codec;
#[cfg(not(feature = "test-support"))]
pub(crate) mod codec;
#[cfg(feature = "test-support")]
pub mod header;
#[cfg(not(feature = "test-support"))]
pub(crate) mod header;
pub(crate) mod slots;

use chrono::{DateTime, Utc};

pub use crate::wire::{datetime, IdRef, RecordRef, TimeParts};
pub use codec::Events;
pub use header::{detect, Detected, Header, Slot, SlotKind};
pub use slots::{check_binding, AgeIdentity, Bound, Identities, PluginUi};

use crate::crypto;
use crate::error::{ChangeError, OpenError};
use crate::format::KdfParams;
use crate::records::Payload;
use crate::secret::{SecretKey, SecretString};

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

/// The format-2 state of an unlocked vault: its slots and its data key.
pub(crate) struct Sealing {
    slots: Vec<Slot>,
    data_key: SecretKey,
    unlocked_by: Option<String>,
    /// The organisation prefix new keys carry, kept in the header.
    key_prefix: Option<String>,
}

impl std::fmt::Debug for Sealing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealing")
            .field("slots", &self.slots)
            .field("unlocked_by", &self.unlocked_by)
            .finish_non_exhaustive()
    }
}

/// Finds a slot by id or label.
///
/// # Errors
/// Why nothing matches, to be wrapped in the caller's error.
pub(crate) fn find_slot(slots: &[Slot], sel: &str) -> Result<usize, String> {
    slots
        .iter()
        .position(|s| s.id == sel)
        .or_else(|| {
            (!sel.is_empty())
                .then(|| slots.iter().position(|s| s.label == sel))
                .flatten()
        })
        .ok_or_else(|| {
            format!(
                "no slot has the id or label {}; run `mcp-key-manager slot list`",
                crate::display::sanitize(sel)
            )
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

fn check_label(slots: &[Slot], label: &str) -> Result<(), ChangeError> {
    if let Some(p) = header::label_problem(label) {
        return Err(ChangeError::invalid(p));
    }
    if !label.is_empty() && slots.iter().any(|s| s.label == label) {
        return Err(ChangeError::invalid(format!(
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
/// [`OpenError::Invalid`] for an unknown `--slot`; [`OpenError::Passphrase`] when nothing offered
/// opens a slot; [`OpenError::Corrupt`] for a slot whose wrapped key is not an age file.
pub(crate) fn unlock_data_key(
    slots: &[Slot],
    unlock: &Unlock<'_>,
) -> Result<(SecretKey, usize), OpenError> {
    let selected = unlock
        .slot
        .map(|s| find_slot(slots, s))
        .transpose()
        .map_err(OpenError::invalid)?;
    let eligible = |i: usize| selected.is_none_or(|s| s == i);
    let mut problems: Vec<String> = Vec::new();
    if let Some(ids) = unlock.identities {
        for identity in ids.list() {
            match identity {
                AgeIdentity::X25519(x) => {
                    let r = x.to_public().to_string();
                    for (i, s) in slots.iter().enumerate() {
                        if eligible(i) && s.kind == SlotKind::Age && s.recipient == r {
                            match slots::unwrap(x, &s.wrapped_key)? {
                                Some(k) => return Ok((k, i)),
                                None => return Err(OpenError::WrongPassphrase),
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
                            ids.callbacks(),
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
                            Err(OpenError::Passphrase { reason }) => problems.push(reason),
                            Err(e) => return Err(e),
                        }
                    }
                }
            }
        }
    }
    if let Some(pass) = unlock.passphrase {
        return unlock_with_passphrase(slots, unlock.slot, pass, unlock.identities.is_some())
            .map(|(key, i, _)| (key, i));
    }
    if unlock.identities.is_some() {
        let mut msg = "no slot of this vault matches the given identity, or the vault was \
                       modified; check --identity / MCP_KEY_VAULT_IDENTITY"
            .to_string();
        for p in problems {
            msg.push_str("; ");
            msg.push_str(&p);
        }
        return Err(OpenError::passphrase(msg));
    }
    Err(OpenError::passphrase(
        "no passphrase or identity available; set MCP_KEY_VAULT_PASSPHRASE, \
         MCP_KEY_VAULT_PASSPHRASE_FILE or MCP_KEY_VAULT_IDENTITY",
    ))
}

/// The KDF settings of the first passphrase slot of `h` (the default when it has none):
/// what an unlock announces and what `rekey` starts from.
pub(crate) fn passphrase_kdf(h: &Header) -> KdfParams {
    h.slots
        .iter()
        .find_map(|s| match &s.kind {
            SlotKind::Passphrase { kdf, .. } => Some(*kdf),
            SlotKind::Age => None,
        })
        .unwrap_or(KdfParams::DEFAULT)
}

/// Words for a slot in a history event or a message.
pub(crate) fn slot_words(s: &Slot) -> String {
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

/// A passphrase slot's derived key: its KDF settings, salt and Argon2id output. What an
/// unlock session keeps, so later commands open the slot without the passphrase.
pub type SlotKey = (KdfParams, Vec<u8>, SecretKey);

/// The passphrase on at most [`MAX_PASSPHRASE_KDFS`] passphrase slots in header order (or
/// only the `sel` one). Returns the data key, the slot's index and the slot's derived key.
///
/// # Errors
/// As [`unlock_data_key`].
pub(crate) fn unlock_with_passphrase(
    slots: &[Slot],
    sel: Option<&str>,
    pass: &SecretString,
    identities_tried: bool,
) -> Result<(SecretKey, usize, SlotKey), OpenError> {
    let selected = sel
        .map(|s| find_slot(slots, s))
        .transpose()
        .map_err(OpenError::invalid)?;
    let candidates: Vec<usize> = slots
        .iter()
        .enumerate()
        .filter(|(i, s)| {
            selected.is_none_or(|x| x == *i) && matches!(s.kind, SlotKind::Passphrase { .. })
        })
        .map(|(i, _)| i)
        .collect();
    for &i in candidates.iter().take(MAX_PASSPHRASE_KDFS) {
        let s = &slots[i];
        let k = slots::derive_slot_key(s, pass)?;
        match unlock_with_slot_key(s, &k)? {
            Some(key) => {
                let SlotKind::Passphrase { kdf, salt, .. } = &s.kind else {
                    unreachable!("a passphrase slot")
                };
                return Ok((key, i, (*kdf, salt.clone(), k)));
            }
            None => continue,
        }
    }
    if candidates.len() > MAX_PASSPHRASE_KDFS {
        return Err(OpenError::passphrase(format!(
            "{}; this vault has {} passphrase slots and only the first {MAX_PASSPHRASE_KDFS} \
             are tried: name yours with --slot ID|LABEL (see `slot list`)",
            crate::error::WRONG_PASSPHRASE,
            candidates.len()
        )));
    }
    if candidates.is_empty() && !identities_tried {
        return Err(OpenError::passphrase(
            "this vault has no passphrase slot that could be tried; unlock it with \
             --identity FILE or MCP_KEY_VAULT_IDENTITY",
        ));
    }
    Err(OpenError::WrongPassphrase)
}

/// Opens passphrase slot `s` with its derived key: `None` when the key does not open the
/// sealed identity (another passphrase), the data key when it does.
///
/// # Errors
/// [`OpenError::WrongPassphrase`] when the identity opens but the wrapped key does not
/// authenticate (a modified slot); [`OpenError::Corrupt`] for a wrapped key that is not an age
/// file.
pub(crate) fn unlock_with_slot_key(
    s: &Slot,
    slot_key: &SecretKey,
) -> Result<Option<SecretKey>, OpenError> {
    let Ok(identity) = slots::open_identity(s, slot_key) else {
        return Ok(None);
    };
    match slots::unwrap(&identity, &s.wrapped_key)? {
        Some(key) => Ok(Some(key)),
        None => Err(OpenError::WrongPassphrase),
    }
}

/// The index of the passphrase slot derived with `kdf` and `salt` (salts are random, so at
/// most one), within `sel` when given.
pub(crate) fn slot_for_key(
    slots: &[Slot],
    sel: Option<&str>,
    kdf: &KdfParams,
    salt: &[u8],
) -> Option<usize> {
    let selected = sel.and_then(|x| find_slot(slots, x).ok());
    slots.iter().enumerate().position(|(i, s)| {
        selected.is_none_or(|x| x == i)
            && matches!(&s.kind, SlotKind::Passphrase { kdf: k, salt: t, .. } if k == kdf && t == salt)
    })
}

/// The payload's signing key must be the one whose public half the header carries (and
/// signed with): a payload and a header of different vaults never pass as one.
fn check_signing_key(h: &Header, payload: &Payload) -> Result<(), OpenError> {
    let in_payload = payload.signing_key.as_ref().map(|k| {
        ed25519_dalek::SigningKey::from_bytes(k.expose())
            .verifying_key()
            .to_bytes()
    });
    let in_header = h.signature.as_ref().map(|s| s.public_key);
    if in_payload == in_header {
        return Ok(());
    }
    Err(OpenError::corrupt(
        "the vault's signing key does not match its header; restore it from a backup",
    ))
}

impl Sealing {
    fn with_first_slot(
        make: impl FnOnce(&str) -> Result<(SlotKind, String), ChangeError>,
        label: &str,
        now: DateTime<Utc>,
    ) -> Result<Sealing, ChangeError> {
        check_label(&[], label)?;
        let id = new_slot_id(&[]);
        let (kind, recipient) = make(&id)?;
        let data_key = SecretKey::random();
        let wrapped_key = slots::wrap(&data_key, &recipient)?;
        Ok(Sealing {
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
            key_prefix: None,
        })
    }

    /// A new sealing with one passphrase slot (one Argon2id derivation).
    ///
    /// # Errors
    /// As `crypto::derive_key`; [`ChangeError::Invalid`] for a bad label.
    pub fn with_passphrase(
        passphrase: &SecretString,
        kdf: KdfParams,
        label: &str,
        now: DateTime<Utc>,
        vault_key: Option<&[u8; 32]>,
    ) -> Result<Sealing, ChangeError> {
        Sealing::with_first_slot(
            |id| slots::new_passphrase_kind(passphrase, kdf, id, vault_key),
            label,
            now,
        )
    }

    /// A new sealing with one passphrase slot whose key is `slot_key`, already derived
    /// from the passphrase with `salt` and `kdf`: how a format-1 vault becomes format 2
    /// without asking for its passphrase again or running the KDF a second time.
    ///
    /// # Errors
    /// As `slots::wrap`.
    pub fn from_derived_key(
        slot_key: &SecretKey,
        kdf: KdfParams,
        salt: Vec<u8>,
        now: DateTime<Utc>,
        vault_key: Option<&[u8; 32]>,
    ) -> Result<Sealing, ChangeError> {
        Sealing::with_first_slot(
            |id| {
                Ok(slots::passphrase_kind_with_key(
                    slot_key, kdf, salt, id, vault_key,
                ))
            },
            "",
            now,
        )
    }

    /// A new sealing with one age slot.
    ///
    /// # Errors
    /// [`ChangeError::Invalid`] for a recipient or label that is not acceptable.
    pub fn with_recipient(
        recipient: &str,
        label: &str,
        now: DateTime<Utc>,
    ) -> Result<Sealing, ChangeError> {
        header::recipient_kind(recipient).map_err(ChangeError::invalid)?;
        Sealing::with_first_slot(|_| Ok((SlotKind::Age, recipient.to_string())), label, now)
    }

    /// Decrypts and decodes `h` with a known data key.
    ///
    /// # Errors
    /// [`OpenError::WrongPassphrase`] when the payload does not authenticate under `key`,
    /// [`OpenError::Corrupt`] when its content is malformed.
    pub fn open(
        h: &Header,
        key: SecretKey,
        unlocked_by: Option<String>,
        events: Events,
    ) -> Result<(Sealing, Payload), OpenError> {
        let plain = crypto::open(&key, &h.nonce, &h.ad(), &h.ciphertext)?;
        let payload = codec::decode_owned(plain, events)?;
        h.check_signature()?;
        check_signing_key(h, &payload)?;
        Ok((
            Sealing {
                slots: h.slots.clone(),
                data_key: key,
                unlocked_by,
                key_prefix: h.key_prefix.clone(),
            },
            payload,
        ))
    }

    /// The header of a new save of `payload`: encrypted under the data key with a fresh
    /// nonce, and signed by the payload's signing key (a payload without one, written
    /// before signing, gives an unsigned header; `Store` adds a key before it saves).
    pub(crate) fn sealed(&self, payload: &Payload) -> Header {
        use ed25519_dalek::Signer as _;
        let mut buf = codec::encode(payload);
        let mut nonce = [0u8; 24];
        crate::rng::fill(&mut nonce);
        let signer = payload
            .signing_key
            .as_ref()
            .map(|k| ed25519_dalek::SigningKey::from_bytes(k.expose()));
        let public_key = signer.as_ref().map(|s| s.verifying_key().to_bytes());
        let ad = Header::associated_data(
            &self.slots,
            &nonce,
            public_key.as_ref(),
            self.key_prefix.as_deref(),
        );
        crypto::seal_in_place(&self.data_key, &nonce, &ad, &mut buf);
        let ciphertext = std::mem::take(&mut *buf);
        let mut header = Header {
            slots: self.slots.clone(),
            nonce,
            ciphertext,
            // The public key is part of what is signed (the associated data): in place
            // before the signature is made.
            signature: public_key.map(|public_key| header::VaultSignature {
                public_key,
                signature: [0; 64],
            }),
            key_prefix: self.key_prefix.clone(),
        };
        if let (Some(signer), Some(sig)) = (signer, header.signature.as_ref()) {
            let signature = signer.sign(&header.signed_message()).to_bytes();
            header.signature = Some(header::VaultSignature {
                public_key: sig.public_key,
                signature,
            });
        }
        header
    }

    /// The slots, in header order.
    pub fn slots(&self) -> &[Slot] {
        &self.slots
    }

    /// The id of the slot that unlocked this vault, if it was unlocked through one.
    pub fn unlocked_by(&self) -> Option<&str> {
        self.unlocked_by.as_deref()
    }

    /// The slot that unlocked the vault and its wrapped key, for a cache that may reuse
    /// the data key while that slot still wraps the same bytes.
    pub(crate) fn cache_entry(&self) -> Option<(String, Vec<u8>, SecretKey)> {
        let id = self.unlocked_by.as_ref()?;
        let s = self.slots.iter().find(|s| &s.id == id)?;
        Some((id.clone(), s.wrapped_key.clone(), self.data_key.duplicate()))
    }

    /// A copy of the current data key. Only for tests that show a removed member's copy
    /// of the key stops working.
    #[cfg(any(test, feature = "test-support"))]
    pub fn data_key_for_tests(&self) -> SecretKey {
        self.data_key.duplicate()
    }

    /// The passphrase slot a `rekey` without `--slot` changes: the one that unlocked the
    /// vault, else the only passphrase slot.
    ///
    /// # Errors
    /// [`ChangeError::Invalid`] when that is ambiguous.
    pub fn default_passphrase_slot(&self) -> Result<String, ChangeError> {
        if let Some(id) = &self.unlocked_by {
            if let Some(s) = self.slots.iter().find(|s| &s.id == id) {
                if matches!(s.kind, SlotKind::Passphrase { .. }) {
                    return Ok(id.clone());
                }
            }
        }
        let pass: Vec<&Slot> = self
            .slots
            .iter()
            .filter(|s| matches!(s.kind, SlotKind::Passphrase { .. }))
            .collect();
        match pass.as_slice() {
            [one] => Ok(one.id.clone()),
            [] => Err(ChangeError::invalid(
                "this vault has no passphrase slot; add one with `slot add --passphrase`",
            )),
            _ => Err(ChangeError::invalid(
                "this vault has several passphrase slots; name the one to change with --slot",
            )),
        }
    }

    /// The KDF settings of a passphrase slot (the unlocking one, else the first), if any.
    pub fn kdf(&self) -> Option<(KdfParams, &[u8])> {
        fn pick(s: &Slot) -> Option<(KdfParams, &[u8])> {
            match &s.kind {
                SlotKind::Passphrase { kdf, salt, .. } => Some((*kdf, salt.as_slice())),
                SlotKind::Age => None,
            }
        }
        self.unlocked_by
            .as_ref()
            .and_then(|id| self.slots.iter().find(|s| &s.id == id))
            .and_then(pick)
            .or_else(|| self.slots.iter().find_map(pick))
    }

    /// Adds a passphrase slot (the current data key wrapped to its new identity).
    ///
    /// # Errors
    /// [`ChangeError::Invalid`] at 32 slots or for a bad label; as `crypto::derive_key`.
    pub fn add_passphrase_slot(
        &mut self,
        passphrase: &SecretString,
        kdf: KdfParams,
        label: &str,
        now: DateTime<Utc>,
        vault_key: Option<&[u8; 32]>,
    ) -> Result<&Slot, ChangeError> {
        self.check_room(label)?;
        let id = new_slot_id(&self.slots);
        let (kind, recipient) = slots::new_passphrase_kind(passphrase, kdf, &id, vault_key)?;
        self.push_slot(id, kind, recipient, label, now)
    }

    /// Adds an age slot for `recipient` (for a plugin recipient, the plugin must be on
    /// PATH to wrap the key).
    ///
    /// # Errors
    /// [`ChangeError::Invalid`] at 32 slots, for a bad label or recipient, or one already present;
    /// [`ChangeError::Refused`] when a plugin cannot wrap.
    pub fn add_age_slot(
        &mut self,
        recipient: &str,
        label: &str,
        now: DateTime<Utc>,
    ) -> Result<&Slot, ChangeError> {
        self.check_room(label)?;
        header::recipient_kind(recipient).map_err(ChangeError::invalid)?;
        if self.slots.iter().any(|s| s.recipient == recipient) {
            return Err(ChangeError::invalid("a slot already has that recipient"));
        }
        let id = new_slot_id(&self.slots);
        self.push_slot(id, SlotKind::Age, recipient.to_string(), label, now)
    }

    fn check_room(&self, label: &str) -> Result<(), ChangeError> {
        if self.slots.len() >= header::bounds::MAX_SLOTS {
            return Err(ChangeError::invalid(format!(
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
    ) -> Result<&Slot, ChangeError> {
        let wrapped_key = slots::wrap(&self.data_key, &recipient)?;
        self.slots.push(Slot {
            id,
            label: label.to_string(),
            created_at: now,
            recipient,
            kind,
            wrapped_key,
        });
        Ok(self.slots.last().expect("just pushed"))
    }

    /// Removes a slot and rotates the data key: a fresh key is wrapped to every remaining
    /// slot (no passphrase needed: passphrase slots keep their public recipient), so the
    /// removed member's copy of the old key opens no later save. The last slot stays.
    ///
    /// # Errors
    /// [`ChangeError::Invalid`] for an unknown slot; [`ChangeError::Refused`] for the last slot or when a
    /// plugin recipient cannot be re-wrapped (nothing is changed then).
    pub fn remove_slot(&mut self, sel: &str) -> Result<Slot, ChangeError> {
        let i = find_slot(&self.slots, sel).map_err(ChangeError::invalid)?;
        if self.slots.len() == 1 {
            return Err(ChangeError::refused(
                "the last slot cannot be removed: add another slot first",
            ));
        }
        let mut rest: Vec<Slot> = self.slots.clone();
        let removed = rest.remove(i);
        self.rotate_into(rest)?;
        if self.unlocked_by.as_deref() == Some(removed.id.as_str()) {
            self.unlocked_by = None;
        }
        Ok(removed)
    }

    /// Changes a passphrase slot's passphrase: a new identity under the new passphrase,
    /// and a new data key for every slot (whoever knew the old passphrase and kept the
    /// file may hold the old identity). Returns the slot's id.
    ///
    /// # Errors
    /// [`ChangeError::Invalid`] for an unknown or non-passphrase slot; as [`Sealing::remove_slot`].
    pub fn rekey_slot(
        &mut self,
        sel: &str,
        passphrase: &SecretString,
        kdf: KdfParams,
        vault_key: Option<&[u8; 32]>,
    ) -> Result<String, ChangeError> {
        let i = find_slot(&self.slots, sel).map_err(ChangeError::invalid)?;
        if !matches!(self.slots[i].kind, SlotKind::Passphrase { .. }) {
            return Err(ChangeError::invalid(
                "only a passphrase slot has a passphrase to change",
            ));
        }
        let mut next = self.slots.clone();
        let (kind, recipient) =
            slots::new_passphrase_kind(passphrase, kdf, &next[i].id, vault_key)?;
        next[i].kind = kind;
        next[i].recipient = recipient;
        self.rotate_into(next)?;
        Ok(self.slots[i].id.clone())
    }

    /// The organisation prefix new keys carry.
    pub(crate) fn key_prefix(&self) -> Option<&str> {
        self.key_prefix.as_deref()
    }

    /// Sets the organisation prefix new keys carry (`init --key-prefix`).
    pub(crate) fn set_key_prefix(&mut self, prefix: Option<String>) {
        self.key_prefix = prefix;
    }

    /// Binds passphrase slot `slot_id` to `vault_key` with its derived key; `true` when
    /// its binding changed (it had none, or one for another key).
    pub(crate) fn bind_slot(
        &mut self,
        slot_id: &str,
        slot_key: &SecretKey,
        vault_key: &[u8; 32],
    ) -> bool {
        let Some(slot) = self.slots.iter_mut().find(|s| s.id == slot_id) else {
            return false;
        };
        // Only with the slot's own key: a stale key (the slot was re-keyed since) must not
        // overwrite a valid binding.
        if slots::open_identity(slot, slot_key).is_err() {
            return false;
        }
        let want = slots::binding(slot_key, slot_id, vault_key);
        match &mut slot.kind {
            SlotKind::Passphrase { binding, .. } if *binding != Some(want) => {
                *binding = Some(want);
                true
            }
            _ => false,
        }
    }

    /// A fresh data key wrapped to every slot of `next`, committed only if all wraps work.
    fn rotate_into(&mut self, mut next: Vec<Slot>) -> Result<(), ChangeError> {
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
