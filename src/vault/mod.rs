//! The encrypted vault: an [`Envelope`] on disk around a [`Payload`] in memory.
//!
//! Invariant: a [`Vault`] only exists unlocked; it keeps the derived key so that saving
//! needs no second key derivation, and every save uses a fresh random nonce.

pub mod crypto;
pub mod format;
pub mod records;
pub mod v2;

use chrono::{DateTime, Utc};

pub use format::{Detected, Envelope, KdfParams};
pub use records::{Event, KeyRecord, Payload, Status, DEFAULT_PERMISSIONS};

use crate::display::sanitize;
use crate::error::{Error, Result};
use crate::keyfmt;
use crate::secret::{SecretKey, SecretString};

/// Length of a new salt in bytes (RFC 9106 recommends 128 bits).
pub const SALT_LEN: usize = 16;

/// An unlocked vault.
#[derive(Debug)]
pub struct Vault {
    kdf: KdfParams,
    salt: Vec<u8>,
    key: SecretKey,
    /// The decrypted content.
    pub payload: Payload,
}

impl Vault {
    /// A new, empty vault under `passphrase` with fresh salt and `hash_key`.
    ///
    /// # Errors
    /// As [`crypto::derive_key`].
    pub fn create(passphrase: &SecretString, kdf: KdfParams) -> Result<Vault> {
        kdf.check_bounds()?;
        let salt = crate::rng::bytes(SALT_LEN);
        let key = crypto::derive_key(passphrase, &salt, &kdf)?;
        Ok(Vault {
            kdf,
            salt,
            key,
            payload: Payload::new(),
        })
    }

    /// Parses, derives and decrypts in one call.
    ///
    /// # Errors
    /// [`Error::Corrupt`] for a bad or out-of-bounds header, [`Error::Passphrase`] when
    /// authentication fails.
    pub fn open(bytes: &[u8], passphrase: &SecretString) -> Result<Vault> {
        let env = Envelope::parse(bytes)?;
        let key = crypto::derive_key(passphrase, &env.salt, &env.kdf)?;
        Vault::unlock(&env, key)
    }

    /// Decrypts `env` with an already derived key (see [`KeyCache`]).
    ///
    /// # Errors
    /// [`Error::Passphrase`] when authentication fails, [`Error::Corrupt`] when the
    /// authenticated content is malformed.
    pub fn unlock(env: &Envelope, key: SecretKey) -> Result<Vault> {
        let plain = crypto::open(&key, &env.nonce, &env.ad(), &env.ciphertext)?;
        let payload = Payload::from_json(&plain)?;
        Ok(Vault {
            kdf: env.kdf,
            salt: env.salt.clone(),
            key,
            payload,
        })
    }

    /// The file's bytes: the payload sealed under a fresh nonce with the current key.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut buf = self.payload.to_json();
        let mut nonce = [0u8; 24];
        crate::rng::fill(&mut nonce);
        let ad = Envelope::associated_data(&self.kdf, &self.salt, &nonce);
        // Encrypting in place keeps one payload-sized buffer alive instead of two; once
        // sealed it holds only ciphertext and leaves its zeroizing wrapper.
        crypto::seal_in_place(&self.key, &nonce, &ad, &mut buf);
        let ciphertext = std::mem::take(&mut *buf);
        Envelope {
            kdf: self.kdf,
            salt: self.salt.clone(),
            nonce,
            ciphertext,
        }
        .to_bytes()
    }

    /// Changes the passphrase and KDF settings: new salt, new key, same payload.
    ///
    /// # Errors
    /// As [`crypto::derive_key`].
    pub fn rekey(&mut self, passphrase: &SecretString, kdf: KdfParams) -> Result<()> {
        kdf.check_bounds()?;
        let salt = crate::rng::bytes(SALT_LEN);
        self.key = crypto::derive_key(passphrase, &salt, &kdf)?;
        self.salt = salt;
        self.kdf = kdf;
        Ok(())
    }

    /// The KDF settings of this vault.
    pub fn kdf(&self) -> KdfParams {
        self.kdf
    }

    /// The salt (public).
    pub fn salt(&self) -> &[u8] {
        &self.salt
    }

    /// All key records.
    pub fn keys(&self) -> &[KeyRecord] {
        &self.payload.keys
    }

    /// Finds a key by full id or unique prefix, as git does.
    ///
    /// # Errors
    /// [`Error::Failed`] when nothing matches or the prefix is ambiguous (listing candidates).
    pub fn find(&self, prefix: &str) -> Result<usize> {
        find_index(&self.payload.keys, prefix)
    }

    /// Appends an event to the history.
    pub fn record(
        &mut self,
        at: DateTime<Utc>,
        action: &str,
        key: Option<usize>,
        detail: Option<String>,
    ) {
        let (key_id, name) = match key.and_then(|i| self.payload.keys.get(i)) {
            Some(k) => (Some(k.id.clone()), Some(k.name.clone())),
            None => (None, None),
        };
        self.payload.events.push(Event {
            at,
            action: action.to_string(),
            key_id,
            name,
            detail,
        });
    }

    /// Makes a new key, stores its record and returns its index and the full key.
    pub fn add_key(&mut self, spec: NewKey, now: DateTime<Utc>) -> (usize, SecretString) {
        let id = loop {
            let id = keyfmt::new_id();
            if !self.payload.keys.iter().any(|k| k.id == id) {
                break id;
            }
        };
        let secret = keyfmt::generate(&id);
        let hash = self.payload.keyed_hash(secret.expose());
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
        self.record(now, "create", Some(idx), None);
        (idx, secret)
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
    pub permissions: Vec<String>,
}

/// Finds a record by full id or unique prefix.
///
/// # Errors
/// [`Error::Failed`] when nothing matches or several do.
pub fn find_index(keys: &[KeyRecord], prefix: &str) -> Result<usize> {
    if prefix.is_empty() {
        return Err(Error::usage("a key id must not be empty"));
    }
    if prefix.starts_with("mcp_") && prefix.len() > 4 + keyfmt::ID_HEX {
        // Never echo it: this is a whole key, pasted where an id belongs.
        return Err(Error::usage(
            "that looks like a whole key, not an id: give only its 16-hex id (see `list`), \
             and never put a key on the command line",
        ));
    }
    if let Some(i) = keys.iter().position(|k| k.id == prefix) {
        return Ok(i);
    }
    let hits: Vec<usize> = keys
        .iter()
        .enumerate()
        .filter(|(_, k)| k.id.starts_with(prefix))
        .map(|(i, _)| i)
        .collect();
    match hits.as_slice() {
        [i] => Ok(*i),
        // An argument much longer than any id may be a pasted key: say so without echoing it.
        [] if prefix.len() >= 48 => Err(Error::failed(
            "no key has that id (the argument is longer than any id; if it was a key, never put \
             keys on the command line); run `mcp-key-manager list` to see the ids",
        )),
        [] => Err(Error::failed(format!(
            "no key with id {}; run `mcp-key-manager list` to see the ids",
            sanitize(prefix)
        ))),
        many => {
            let names: Vec<String> = many
                .iter()
                .take(10)
                .map(|&i| format!("{} ({})", keys[i].id, sanitize(&keys[i].name)))
                .collect();
            Err(Error::failed(format!(
                "the id prefix {} is ambiguous: it matches {}{}; give more characters",
                sanitize(prefix),
                names.join(", "),
                if many.len() > 10 { ", …" } else { "" }
            )))
        }
    }
}

/// Caches the key derived for one passphrase, so that re-reading the vault after taking
/// the lock costs no second derivation unless a concurrent `rekey` changed the salt.
#[derive(Debug)]
pub struct KeyCache {
    passphrase: SecretString,
    cached: Option<(KdfParams, Vec<u8>, SecretKey)>,
}

impl KeyCache {
    /// A cache for `passphrase`.
    pub fn new(passphrase: SecretString) -> Self {
        KeyCache {
            passphrase,
            cached: None,
        }
    }

    /// The passphrase itself.
    pub fn passphrase(&self) -> &SecretString {
        &self.passphrase
    }

    /// The key for this envelope's salt and settings, derived at most once.
    ///
    /// # Errors
    /// As [`crypto::derive_key`].
    pub fn key_for(&mut self, env: &Envelope) -> Result<SecretKey> {
        if let Some((kdf, salt, key)) = &self.cached {
            if *kdf == env.kdf && *salt == env.salt {
                return Ok(key.duplicate());
            }
        }
        let key = crypto::derive_key(&self.passphrase, &env.salt, &env.kdf)?;
        self.cached = Some((env.kdf, env.salt.clone(), key.duplicate()));
        Ok(key)
    }

    /// Unlocks an envelope.
    ///
    /// # Errors
    /// As [`Vault::unlock`].
    pub fn unlock(&mut self, env: &Envelope) -> Result<Vault> {
        let key = self.key_for(env)?;
        Vault::unlock(env, key)
    }

    /// Remembers the key of a vault this process made or re-keyed.
    pub fn remember(&mut self, vault: &Vault) {
        self.cached = Some((vault.kdf, vault.salt.clone(), vault.key.duplicate()));
    }
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

    #[test]
    fn round_trip_with_fresh_nonce() {
        let pass = SecretString::new("correct horse".into());
        let mut v = Vault::create(&pass, weak()).unwrap();
        let now = Utc::now();
        let (_, key) = v.add_key(
            NewKey {
                name: "n".into(),
                description: "d".into(),
                expires_at: None,
                permissions: vec!["info".into()],
            },
            now,
        );
        let a = v.to_bytes();
        let b = v.to_bytes();
        assert_ne!(a, b, "each save must use a fresh nonce");
        let w = Vault::open(&a, &pass).unwrap();
        assert_eq!(w.keys().len(), 1);
        assert_eq!(w.keys()[0].secret.expose(), key.expose());
        assert_eq!(w.keys()[0].hash, w.payload.keyed_hash(key.expose()));
        let wrong = SecretString::new("wrong".into());
        assert!(matches!(Vault::open(&a, &wrong), Err(Error::Passphrase(_))));
    }

    #[test]
    fn prefix_lookup() {
        let pass = SecretString::new("p".into());
        let mut v = Vault::create(&pass, weak()).unwrap();
        for (i, id) in ["abc0000000000001", "abc0000000000002", "def0000000000003"]
            .iter()
            .enumerate()
        {
            v.add_key(
                NewKey {
                    name: format!("k{i}"),
                    description: String::new(),
                    expires_at: None,
                    permissions: vec![],
                },
                Utc::now(),
            );
            v.payload.keys[i].id = id.to_string();
        }
        assert_eq!(v.find("def").unwrap(), 2);
        assert_eq!(v.find("abc0000000000002").unwrap(), 1);
        let e = v.find("abc").unwrap_err().to_string();
        assert!(
            e.contains("ambiguous") && e.contains("abc0000000000001"),
            "{e}"
        );
        assert!(matches!(v.find("fff"), Err(Error::Failed(_))));
    }
}
