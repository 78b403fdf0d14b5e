//! Wrapping the data key to a slot and getting it back: age files for every slot, and for
//! passphrase slots an X25519 identity sealed under the slot's Argon2id key.
//!
//! Invariant: the data key, a derived key and an identity's secret half exist only in
//! zeroizing types; an age file is opened only for the slot whose recipient the identity
//! matches, so one identity never costs more than one unwrap per matching slot.

use std::io::{Read, Write};
use std::iter;
use std::sync::Arc;

use age::secrecy::ExposeSecret;
use zeroize::Zeroizing;

use super::header::{bounds, recipient_kind, RecipientKind, Slot, SlotKind};
use crate::crypto;
use crate::error::{ChangeError, IoError, OpenError};
use crate::format::KdfParams;
use crate::secret::{SecretKey, SecretString};

/// Largest identity file read, in bytes.
pub const IDENTITY_FILE_MAX: u64 = 64 * 1024;
/// Most identities taken from one file.
pub const IDENTITIES_MAX: usize = 64;

/// One age identity from an identity file.
pub enum AgeIdentity {
    /// `AGE-SECRET-KEY-1…`.
    X25519(age::x25519::Identity),
    /// `AGE-PLUGIN-<NAME>-1…`: handled by `age-plugin-<name>` on PATH.
    Plugin(age::plugin::Identity),
}

impl std::fmt::Debug for AgeIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AgeIdentity::X25519(i) => write!(f, "X25519({})", i.to_public()),
            AgeIdentity::Plugin(p) => write!(f, "Plugin({})", p.plugin()),
        }
    }
}

/// What an age plugin may ask of the person at the keyboard while it unwraps a slot
/// ("touch your YubiKey", a PIN). The library never talks to a terminal: the caller that
/// has one implements this and hands it over with [`Identities::with_ui`].
pub trait PluginUi: Send + Sync {
    /// A message from the plugin, to show (it may hold control characters).
    fn message(&self, message: &str);
    /// A secret the plugin asks for (`description` says what); `None` when there is no one
    /// to ask.
    fn secret(&self, description: &str) -> Option<SecretString>;
}

/// The age callbacks of a plugin: the caller's [`PluginUi`], or silence (no message shown,
/// nothing asked) when there is none.
#[derive(Clone, Default)]
pub(crate) struct PluginCallbacks(Option<Arc<dyn PluginUi>>);

impl age::Callbacks for PluginCallbacks {
    fn display_message(&self, message: &str) {
        if let Some(ui) = &self.0 {
            ui.message(message);
        }
    }
    fn confirm(&self, _: &str, _: &str, _: Option<&str>) -> Option<bool> {
        None
    }
    fn request_public_string(&self, _: &str) -> Option<String> {
        None
    }
    fn request_passphrase(&self, description: &str) -> Option<age::secrecy::SecretString> {
        let secret = self.0.as_ref()?.secret(description)?;
        Some(secret.expose().to_string().into())
    }
}

/// The identities of an identity file, in file order, and who answers their plugins.
#[derive(Default)]
pub struct Identities {
    list: Vec<AgeIdentity>,
    ui: PluginCallbacks,
}

impl std::fmt::Debug for Identities {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identities")
            .field("list", &self.list)
            .finish_non_exhaustive()
    }
}

impl Identities {
    /// These identities, with plugins that get no answers (see [`Identities::with_ui`]).
    pub fn new(list: Vec<AgeIdentity>) -> Identities {
        Identities {
            list,
            ui: PluginCallbacks::default(),
        }
    }

    /// The same identities; their plugins show messages and ask for secrets through `ui`.
    #[must_use]
    pub fn with_ui(mut self, ui: Arc<dyn PluginUi>) -> Identities {
        self.ui = PluginCallbacks(Some(ui));
        self
    }

    /// The identities, in file order.
    pub fn list(&self) -> &[AgeIdentity] {
        &self.list
    }

    pub(crate) fn callbacks(&self) -> PluginCallbacks {
        self.ui.clone()
    }

    /// Parses the text of an age identity file: one identity per line, `#` comments and
    /// blank lines ignored. Never echoes a line (it may be a secret).
    ///
    /// # Errors
    /// [`OpenError::Invalid`] naming the line number of anything that is not an identity.
    pub fn parse(text: &str) -> Result<Identities, OpenError> {
        let mut out = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if out.len() == IDENTITIES_MAX {
                return Err(OpenError::invalid(format!(
                    "the identity file holds more than {IDENTITIES_MAX} identities"
                )));
            }
            if let Ok(i) = line.parse::<age::x25519::Identity>() {
                out.push(AgeIdentity::X25519(i));
            } else if let Ok(p) = line.parse::<age::plugin::Identity>() {
                out.push(AgeIdentity::Plugin(p));
            } else {
                return Err(OpenError::invalid(format!(
                    "line {} of the identity file is not an age identity (AGE-SECRET-KEY-1… \
                     or AGE-PLUGIN-…)",
                    n + 1
                )));
            }
        }
        if out.is_empty() {
            return Err(OpenError::invalid("the identity file holds no identity"));
        }
        Ok(Identities::new(out))
    }

    /// Reads and parses an identity file (at most 64 KiB).
    ///
    /// # Errors
    /// [`OpenError::Io`] if it cannot be read, [`OpenError::Invalid`] as [`Identities::parse`].
    pub fn from_file(path: &std::path::Path) -> Result<Identities, OpenError> {
        let f =
            std::fs::File::open(path).map_err(|e| IoError::new("read identity file", path, e))?;
        let mut text = Zeroizing::new(String::new());
        f.take(IDENTITY_FILE_MAX + 1)
            .read_to_string(&mut text)
            .map_err(|e| IoError::new("read identity file", path, e))?;
        if text.len() as u64 > IDENTITY_FILE_MAX {
            return Err(OpenError::invalid(format!(
                "the identity file {} is larger than 64 KiB",
                path.display()
            )));
        }
        Identities::parse(&text)
    }
}

/// Wraps the data key to one age recipient: an age file whose plaintext is the key.
///
/// # Errors
/// [`ChangeError::Invalid`] for a recipient that does not parse, [`ChangeError::Refused`] when a
/// plugin is missing or refuses.
pub fn wrap(data_key: &SecretKey, recipient: &str) -> Result<Vec<u8>, ChangeError> {
    let kind = recipient_kind(recipient).map_err(ChangeError::invalid)?;
    let enc = match kind {
        RecipientKind::X25519 => {
            let r: age::x25519::Recipient = recipient
                .parse()
                .map_err(|_| ChangeError::invalid("not an age recipient"))?;
            age::Encryptor::with_recipients(iter::once(&r as &dyn age::Recipient))
        }
        RecipientKind::Plugin(name) => {
            let r: age::plugin::Recipient = recipient
                .parse()
                .map_err(|_| ChangeError::invalid("not an age plugin recipient"))?;
            // Wrapping to a recipient asks nothing of a person: the plugin gets no answers.
            let p =
                age::plugin::RecipientPluginV1::new(&name, &[r], &[], PluginCallbacks::default())
                    .map_err(|e| {
                    ChangeError::refused(format!("cannot wrap to {}: {e}", plugin_hint(&name)))
                })?;
            age::Encryptor::with_recipients(iter::once(&p as &dyn age::Recipient))
        }
    }
    .map_err(|e| ChangeError::refused(format!("cannot wrap the vault key to a recipient: {e}")))?;
    let mut out = Vec::with_capacity(512);
    let mut w = enc
        .wrap_output(&mut out)
        .map_err(|e| ChangeError::refused(format!("age encryption failed: {e}")))?;
    w.write_all(data_key.expose())
        .and_then(|()| w.finish().map(|_| ()))
        .map_err(|e| ChangeError::refused(format!("age encryption failed: {e}")))?;
    if out.len() > bounds::WRAPPED_MAX {
        return Err(ChangeError::refused(
            "the recipient's wrapped key is larger than a vault header allows (8 KiB)",
        ));
    }
    Ok(out)
}

fn plugin_hint(name: &str) -> String {
    format!(
        "the plugin age-plugin-{} (is it on PATH?)",
        crate::display::sanitize(name)
    )
}

/// Opens a wrapped data key with `identity`.
///
/// `Ok(None)`: the identity does not match this file. `Err(Passphrase)`: it matched but
/// the file does not authenticate (modified). `Err(Corrupt)`: not an age file.
pub fn unwrap(
    identity: &dyn age::Identity,
    wrapped: &[u8],
) -> Result<Option<SecretKey>, OpenError> {
    let dec = age::Decryptor::new_buffered(wrapped)
        .map_err(|_| OpenError::corrupt("a slot's wrapped key is not an age file"))?;
    let mut reader = match dec.decrypt(iter::once(identity)) {
        Ok(r) => r,
        Err(age::DecryptError::NoMatchingKeys) => return Ok(None),
        Err(age::DecryptError::MissingPlugin { binary_name }) => {
            return Err(OpenError::passphrase(format!(
                "{} is not on PATH; install it to unlock with this identity",
                crate::display::sanitize(&binary_name)
            )))
        }
        Err(age::DecryptError::Plugin(errs)) => {
            return Err(OpenError::passphrase(format!(
                "the age plugin failed: {}",
                crate::display::sanitize(
                    &errs
                        .iter()
                        .map(|e| e.to_string())
                        .collect::<Vec<_>>()
                        .join("; ")
                )
            )))
        }
        Err(_) => return Err(OpenError::WrongPassphrase),
    };
    let mut plain = Zeroizing::new(Vec::with_capacity(33));
    (&mut reader)
        .take(33)
        .read_to_end(&mut plain)
        .map_err(|_| OpenError::WrongPassphrase)?;
    let key: [u8; 32] = plain[..]
        .try_into()
        .map_err(|_| OpenError::corrupt("a slot's wrapped key does not hold 32 bytes"))?;
    Ok(Some(SecretKey::new(key)))
}

/// The associated data of a sealed identity: the slot it belongs to.
fn identity_ad(slot_id: &str, recipient: &str) -> Vec<u8> {
    format!("mcp-key-vault/2/slot-identity;id={slot_id};recipient={recipient}").into_bytes()
}

/// A new passphrase slot's secret parts: a fresh X25519 identity sealed under
/// Argon2id(passphrase, fresh salt). Returns the kind and the recipient.
///
/// # Errors
/// As [`crypto::derive_key`].
pub fn new_passphrase_kind(
    passphrase: &SecretString,
    kdf: KdfParams,
    slot_id: &str,
    vault_key: Option<&[u8; 32]>,
) -> Result<(SlotKind, String), ChangeError> {
    kdf.check_bounds()?;
    let salt = crate::rng::bytes(crate::crypto::SALT_LEN);
    let kek = crypto::derive_key(passphrase, &salt, &kdf)?;
    Ok(passphrase_kind_with_key(
        &kek, kdf, salt, slot_id, vault_key,
    ))
}

/// What binds a passphrase slot to one vault: HMAC-SHA256 under the slot's derived key over
/// the slot id and the vault's public signing key. Only whoever knows the passphrase can
/// make it, so a slot copied into a vault with another key does not carry a valid one.
pub fn binding(slot_key: &SecretKey, slot_id: &str, vault_key: &[u8; 32]) -> [u8; 32] {
    use hmac::{Hmac, Mac};
    let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(slot_key.expose())
        .expect("HMAC takes any key length");
    mac.update(b"mcp-key-vault/2/slot-binding\n");
    mac.update(slot_id.as_bytes());
    mac.update(b"\n");
    mac.update(vault_key);
    mac.finalize().into_bytes().into()
}

/// How a passphrase slot, opened with `slot_key`, stands to the vault whose signing key is
/// `vault_key`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// Its binding is valid for this vault: it was made for it by a passphrase holder.
    Yes,
    /// It has no binding (made before binding), or the vault has no signing key yet.
    Unbound,
    /// Its binding is for another vault key: a slot copied into a vault someone else made.
    Other,
}

/// Checks a passphrase slot's binding (constant time).
pub fn check_binding(slot: &Slot, slot_key: &SecretKey, vault_key: Option<&[u8; 32]>) -> Bound {
    let (
        SlotKind::Passphrase {
            binding: Some(b), ..
        },
        Some(pk),
    ) = (&slot.kind, vault_key)
    else {
        return Bound::Unbound;
    };
    use subtle::ConstantTimeEq as _;
    if bool::from(binding(slot_key, &slot.id, pk).ct_eq(b)) {
        Bound::Yes
    } else {
        Bound::Other
    }
}

/// A passphrase slot's secret parts under an already derived slot key (`kdf` and `salt`
/// are what derived it): a fresh X25519 identity, sealed under that key.
pub fn passphrase_kind_with_key(
    slot_key: &SecretKey,
    kdf: KdfParams,
    salt: Vec<u8>,
    slot_id: &str,
    vault_key: Option<&[u8; 32]>,
) -> (SlotKind, String) {
    let identity = age::x25519::Identity::generate();
    let recipient = identity.to_public().to_string();
    let mut nonce = [0u8; 24];
    crate::rng::fill(&mut nonce);
    let secret = identity.to_string();
    let sealed = crypto::seal(
        slot_key,
        &nonce,
        &identity_ad(slot_id, &recipient),
        secret.expose_secret().as_bytes(),
    );
    debug_assert_eq!(sealed.len(), bounds::SEALED_IDENTITY_LEN);
    (
        SlotKind::Passphrase {
            kdf,
            salt,
            nonce,
            sealed_identity: sealed,
            binding: vault_key.map(|pk| binding(slot_key, slot_id, pk)),
        },
        recipient,
    )
}

/// Derives a passphrase slot's key (the one expensive step: Argon2id).
///
/// # Errors
/// As [`crypto::derive_key`]; [`OpenError::Invalid`] if the slot is not a passphrase slot.
pub fn derive_slot_key(slot: &Slot, passphrase: &SecretString) -> Result<SecretKey, OpenError> {
    match &slot.kind {
        SlotKind::Passphrase { kdf, salt, .. } => crypto::derive_key(passphrase, salt, kdf),
        SlotKind::Age => Err(OpenError::invalid("an age slot has no passphrase")),
    }
}

/// Opens a passphrase slot's identity with its derived key.
///
/// # Errors
/// [`OpenError::Passphrase`] when the key is wrong or the slot was modified.
pub fn open_identity(
    slot: &Slot,
    slot_key: &SecretKey,
) -> Result<age::x25519::Identity, OpenError> {
    let SlotKind::Passphrase {
        nonce,
        sealed_identity,
        ..
    } = &slot.kind
    else {
        return Err(OpenError::invalid("an age slot has no sealed identity"));
    };
    let plain = crypto::open(
        slot_key,
        nonce,
        &identity_ad(&slot.id, &slot.recipient),
        sealed_identity,
    )?;
    let text = std::str::from_utf8(&plain).map_err(|_| OpenError::WrongPassphrase)?;
    let identity: age::x25519::Identity = text.parse().map_err(|_| OpenError::WrongPassphrase)?;
    if identity.to_public().to_string() != slot.recipient {
        return Err(OpenError::WrongPassphrase);
    }
    Ok(identity)
}
