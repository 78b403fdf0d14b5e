//! The decrypted payload: the HMAC `hash_key`, the key records (`record`, read lazily by
//! `keyset`), the event history and the published verifiers.
//!
//! Invariant: a [`Payload`] that exists has unique ids, and every secret in it lives in a
//! zeroizing wrapper. Times are UTC and serialize as RFC 3339.

use std::collections::HashSet;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::error::OpenError;

type Result<T, E = OpenError> = std::result::Result<T, E>;
use crate::secret::{SecretKey, SecretString};
use crate::types::KeyHash;

pub use crate::record::{expires_within, now, time_opt, Event, KeyRecord, Status};
#[cfg(any(test, feature = "test-support"))]
pub use crate::record::{fmt_time, parse_time};
pub use crate::types::DEFAULT_PERMISSIONS;

/// The decrypted content of a vault.
#[derive(Serialize, Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct Payload {
    /// The key for HMAC-SHA256 over full keys.
    #[serde(with = "hash_key_hex")]
    pub hash_key: SecretKey,
    /// Key records in creation order.
    pub keys: super::keyset::Keys,
    /// History, oldest first.
    #[serde(default)]
    pub events: History,
    /// Incremented on every save; verifiers carry it, so a stale writer can be told from
    /// a current one. A vault written before revisions existed starts at 0.
    #[serde(default)]
    pub revision: u64,
    /// Verifier files kept current after every change (`publish`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub published: Vec<Published>,
    /// The seed of the vault's Ed25519 signing key: it signs every save and every verifier
    /// file published. Absent from vaults written before signing (and from format 1's
    /// JSON, which is never written again): the next save adds one.
    #[serde(skip)]
    pub signing_key: Option<SecretKey>,
    /// The save digests of this vault's last saves before the current one, oldest first,
    /// at most 32: its lineage. A verifier file holding one of them is behind
    /// this vault; one holding a digest it does not know comes from another lineage (a
    /// rolled-back copy, another vault). Kept only with a signing key.
    #[serde(skip)]
    pub recent_saves: Vec<[u8; 32]>,
    /// Rate limits, by key id (`create --rate-limit`, `limit`); a key absent here has none.
    /// Every id is one of the records'. Format 2 only (format 1 is never written again).
    #[serde(skip)]
    pub limits: std::collections::BTreeMap<String, mcp_key_verifier::RateLimit>,
}

/// How many earlier saves a vault remembers (see [`Payload::recent_saves`]).
pub const RECENT_SAVES: usize = 32;

/// The append-only history. A format-2 vault's history stays as the bytes it was read as
/// (checked when read, so it is known to decode) until something asks for the events: a
/// command that changes one key appends an event and writes the old ones back unread, so
/// the history's length costs a copy, not a decode and an encode, per change.
#[derive(Default)]
pub struct History {
    /// The payload the events were read from (shared with the records) and where in it
    /// they lie, in their encoding; already validated.
    encoded: super::keyset::Plain,
    range: std::ops::Range<usize>,
    /// How many events `encoded` holds.
    encoded_count: usize,
    /// Events added since (or every event, once materialised or when read from JSON).
    added: Vec<Event>,
    /// `encoded` decoded, followed by `added`: filled on first access.
    all: std::sync::OnceLock<Vec<Event>>,
}

impl History {
    /// A history of events in memory.
    pub fn from_events(events: Vec<Event>) -> History {
        History {
            added: events,
            ..History::default()
        }
    }

    /// A history kept encoded: `bytes` hold `count` events that the codec has validated.
    pub(crate) fn from_encoded(
        plain: super::keyset::Plain,
        range: std::ops::Range<usize>,
        count: usize,
    ) -> History {
        History {
            encoded: plain,
            range,
            encoded_count: count,
            ..History::default()
        }
    }

    /// The number of events.
    pub fn len(&self) -> usize {
        self.encoded_count + self.added.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every event, oldest first; decodes the stored ones on first use.
    pub fn all(&self) -> &[Event] {
        if self.encoded_count == 0 {
            return &self.added;
        }
        self.all.get_or_init(|| {
            let mut v = self.decode_stored();
            v.extend(self.added.iter().cloned());
            v
        })
    }

    /// The stored events, decoded.
    fn decode_stored(&self) -> Vec<Event> {
        crate::wire::decode_events(&self.encoded[self.range.clone()], self.encoded_count)
            .expect("the history was validated when it was read")
    }

    /// Appends an event.
    pub fn push(&mut self, e: Event) {
        if let Some(all) = self.all.get_mut() {
            all.push(e.clone());
        }
        self.added.push(e);
    }

    /// Every event, editable (for test fixtures that plant hostile history): the stored
    /// ones are decoded first.
    #[cfg(any(test, feature = "test-support"))]
    pub fn all_mut(&mut self) -> &mut Vec<Event> {
        if self.encoded_count > 0 {
            let mut v = self.decode_stored();
            v.append(&mut self.added);
            self.added = v;
            self.encoded = super::keyset::Plain::default();
            self.range = 0..0;
            self.encoded_count = 0;
            self.all = std::sync::OnceLock::new();
        }
        &mut self.added
    }

    /// The stored (still encoded) events and the ones added since, for the encoder.
    pub(crate) fn parts(&self) -> (&[u8], &[Event]) {
        (&self.encoded[self.range.clone()], &self.added)
    }
}

impl std::fmt::Debug for History {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("History").field("len", &self.len()).finish()
    }
}

impl Serialize for History {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.all().serialize(s)
    }
}

impl<'de> Deserialize<'de> for History {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<History, D::Error> {
        Vec::<Event>::deserialize(d).map(History::from_events)
    }
}

/// A verifier file that every committed change rewrites.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Published {
    /// Where it is written (as given, made absolute).
    pub path: std::path::PathBuf,
    /// Whether key names are included.
    #[serde(default)]
    pub names: bool,
    /// A command run after each successful write, with `MCP_VERIFIER_PATH` set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub then: Option<String>,
}

impl Payload {
    /// An empty payload with a fresh random `hash_key`.
    pub fn new() -> Self {
        Payload {
            hash_key: SecretKey::random(),
            keys: super::keyset::Keys::default(),
            events: History::default(),
            revision: 0,
            published: Vec::new(),
            signing_key: Some(SecretKey::random()),
            recent_saves: Vec::new(),
            limits: std::collections::BTreeMap::new(),
        }
    }

    /// Parses decrypted bytes, checking the invariants an authenticated payload must keep.
    ///
    /// # Errors
    /// [`OpenError::Corrupt`] if the JSON does not match or an id repeats.
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        let p: Payload = serde_json::from_slice(bytes).map_err(|e| {
            OpenError::corrupt(format!(
                "the vault decrypted but its content is malformed ({}); restore it \
                 from a backup",
                crate::error::json_problem(&e)
            ))
        })?;
        let mut seen = HashSet::with_capacity(p.keys.len());
        for k in &p.keys {
            if !seen.insert(k.id.as_str()) {
                return Err(OpenError::corrupt(format!(
                    "the vault holds two keys with id {}; restore it from a backup",
                    crate::display::sanitize(&k.id)
                )));
            }
        }
        Ok(p)
    }

    /// Serializes, in one pass, into a zeroizing buffer that wipes every smaller buffer it
    /// outgrows, so no reallocation leaves a stray plaintext copy behind.
    pub fn to_json(&self) -> Zeroizing<Vec<u8>> {
        // A record is rarely over 450 bytes and an event over 130: the guess usually holds
        // the whole payload, and when it does not, growing costs one copy, not a second
        // serialization.
        let guess = 1024 + self.keys.len() * 450 + self.events.len() * 130;
        let mut out = WipingWriter(Zeroizing::new(Vec::with_capacity(guess)));
        serde_json::to_writer(&mut out, self).expect("serializing to memory cannot fail");
        // Room for the AEAD tag, so the buffer can be encrypted in place without moving.
        out.reserve(crate::format::bounds::TAG_LEN);
        out.0
    }

    /// HMAC-SHA256(hash_key, key).
    pub fn keyed_hash(&self, key: &str) -> KeyHash {
        keyed_hash(&self.hash_key, key)
    }
}

impl Default for Payload {
    fn default() -> Self {
        Payload::new()
    }
}

/// HMAC-SHA256(hash_key, key).
pub fn keyed_hash(hash_key: &SecretKey, key: &str) -> KeyHash {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(hash_key.expose())
        .expect("HMAC accepts keys of any length");
    mac.update(key.as_bytes());
    KeyHash(mac.finalize().into_bytes().into())
}

/// A growable zeroizing buffer: when full, it moves to one half as large again and the old
/// one is wiped as it drops (`Zeroizing<Vec>` clears the whole capacity).
struct WipingWriter(Zeroizing<Vec<u8>>);

impl WipingWriter {
    /// Makes room for `extra` more bytes; a buffer that must move is wiped as it drops.
    fn reserve(&mut self, extra: usize) {
        let v = &mut self.0;
        if v.capacity() - v.len() < extra {
            let cap = (v.len() + extra).max(v.capacity() + v.capacity() / 2);
            let mut bigger = Zeroizing::new(Vec::with_capacity(cap));
            bigger.extend_from_slice(v);
            *v = bigger;
        }
    }
}

impl std::io::Write for WipingWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.reserve(buf.len());
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

mod hash_key_hex {
    use super::*;
    pub fn serialize<S: Serializer>(k: &SecretKey, s: S) -> Result<S::Ok, S::Error> {
        let mut h = Zeroizing::new(String::with_capacity(64));
        crate::rng::push_hex(&mut h, k.expose());
        s.serialize_str(&h)
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SecretKey, D::Error> {
        let s = SecretString::deserialize(d)?;
        let v = Zeroizing::new(
            crate::rng::unhex(s.expose())
                .ok_or_else(|| serde::de::Error::custom("hash_key is not hex"))?,
        );
        let arr: [u8; 32] = v[..]
            .try_into()
            .map_err(|_| serde::de::Error::custom("hash_key is not 32 bytes"))?;
        Ok(SecretKey::new(arr))
    }
}
