//! The decrypted payload: the HMAC `hash_key`, the key records and the event history.
//!
//! Invariant: a [`Payload`] that exists has unique ids, and every secret in it lives in a
//! zeroizing wrapper. Times are UTC and serialize as RFC 3339.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::Sha256;
use zeroize::Zeroizing;

use super::types::{EventAction, KeyHash, KeyId, Permission};
use crate::error::{Error, Result};
use crate::secret::{SecretKey, SecretString};

/// Default permissions of a new key, as in the Python tool.
pub const DEFAULT_PERMISSIONS: [&str; 3] = ["generate", "info", "health"];

/// A key's status at a given moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Usable.
    Active,
    /// Revoked by an administrator (or inactive in the Python tool).
    Revoked,
    /// Past its expiry.
    Expired,
}

impl Status {
    /// The one rule for a key's status, used by the vault, `list`, `verify` and the
    /// [`Verifier`](crate::verify::Verifier): revoked wins over expired; a key expires at
    /// the instant of its expiry.
    pub fn of(revoked: bool, expires_at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Status {
        if revoked {
            Status::Revoked
        } else if expires_at.is_some_and(|e| e <= now) {
            Status::Expired
        } else {
            Status::Active
        }
    }

    /// The lowercase word used in every output.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::Revoked => "revoked",
            Status::Expired => "expired",
        }
    }
}

/// One API key as the vault stores it.
#[derive(Serialize, Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct KeyRecord {
    /// Public identifier: 16 lowercase hex characters (imported keys keep their old id).
    pub id: KeyId,
    /// Human name.
    pub name: String,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// When it was made.
    #[serde(with = "time")]
    pub created_at: DateTime<Utc>,
    /// When it stops being valid; `None` is never.
    #[serde(with = "time_opt", default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was revoked; `None` if it was not.
    #[serde(with = "time_opt", default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<DateTime<Utc>>,
    /// What the key may do.
    #[serde(default)]
    pub permissions: Vec<Permission>,
    /// Free-form metadata carried over from the Python tool.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// The full key string. Leaves the vault only through `create` and `use`.
    pub secret: SecretString,
    /// HMAC-SHA256(hash_key, full key), lowercase hex on the wire.
    pub hash: KeyHash,
    /// The key this one replaced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotated_from: Option<KeyId>,
    /// The key that replaced this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotated_to: Option<KeyId>,
}

impl KeyRecord {
    /// The status at `now`: revoked wins over expired.
    pub fn status(&self, now: DateTime<Utc>) -> Status {
        Status::of(self.revoked_at.is_some(), self.expires_at, now)
    }

    /// Whether the key holds `p`.
    pub fn has_permission(&self, p: &str) -> bool {
        self.permissions.iter().any(|q| q == p)
    }

    /// Whether the key is of this tool's format (not imported from the Python tool).
    pub fn is_legacy(&self) -> bool {
        !self.id.is_modern() || !self.secret.expose().starts_with("mcp_")
    }

    /// Whether the key expires within `days` days of `now` (and has not yet).
    pub fn expires_within(&self, now: DateTime<Utc>, days: i64) -> bool {
        expires_within(self.expires_at, now, days)
    }
}

/// Whether a key expiring at `expires_at` expires within `days` days of `now` (and has not
/// yet).
pub fn expires_within(expires_at: Option<DateTime<Utc>>, now: DateTime<Utc>, days: i64) -> bool {
    let horizon = now
        .checked_add_signed(chrono::Duration::days(days))
        .unwrap_or(DateTime::<Utc>::MAX_UTC);
    expires_at.is_some_and(|e| e > now && e <= horizon)
}

/// One entry of the append-only history.
#[derive(Serialize, Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct Event {
    /// When it happened.
    #[serde(with = "time")]
    pub at: DateTime<Utc>,
    /// What happened.
    pub action: EventAction,
    /// The key it concerns, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<KeyId>,
    /// The key's name at the time, so the events of a deleted key stay readable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A non-secret detail (permissions granted, successor id, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

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
}

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
        crate::v2::codec::decode_events(&self.encoded[self.range.clone()], self.encoded_count)
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
        }
    }

    /// Parses decrypted bytes, checking the invariants an authenticated payload must keep.
    ///
    /// # Errors
    /// [`Error::Corrupt`] if the JSON does not match or an id repeats.
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        let p: Payload = serde_json::from_slice(bytes).map_err(|e| {
            Error::corrupt(format!(
                "the vault decrypted but its content is malformed ({}); restore it \
                 from a backup",
                crate::error::json_problem(&e)
            ))
        })?;
        let mut seen = HashSet::with_capacity(p.keys.len());
        for k in &p.keys {
            if !seen.insert(k.id.as_str()) {
                return Err(Error::corrupt(format!(
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

/// The current time in whole seconds, as every record and event of the vault keeps it.
pub fn now() -> DateTime<Utc> {
    let t = Utc::now();
    chrono::DurationRound::duration_trunc(t, chrono::Duration::seconds(1)).unwrap_or(t)
}

pub use mcp_key_verifier::time::{format as fmt_time, parse as parse_time};

mod time {
    use super::*;
    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&fmt_time(t))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let s = String::deserialize(d)?;
        parse_time(&s).ok_or_else(|| serde::de::Error::custom("a time is not RFC 3339"))
    }
}

/// Serde for an optional time as RFC 3339 (the vault, verifier and usage files).
pub mod time_opt {
    use super::*;
    /// Writes `None` as null, a time as [`fmt_time`] does.
    pub fn serialize<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&fmt_time(t)),
            None => s.serialize_none(),
        }
    }
    /// Reads null as `None`, a string as [`parse_time`] does.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(None),
            Some(s) => parse_time(&s)
                .map(Some)
                .ok_or_else(|| serde::de::Error::custom("a time is not RFC 3339")),
        }
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
