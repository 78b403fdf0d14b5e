//! The compact binary payload of format 2 (specified byte by byte in
//! `docs/vault-format-2.md`, "Payload"): raw 32-byte secrets and hashes, integer times,
//! a permission dictionary, and the history as one length-delimited section.
//!
//! This module knows bytes, never keys or files. Invariants: [`decode`] never panics, never
//! allocates more than a fixed multiple of its input (every count read from the input is
//! capped by what the remaining bytes could hold before anything is reserved), and accepts
//! exactly one encoding of each payload, so `encode(decode(b)) == b` for every `b` it
//! accepts. Every buffer that holds plaintext is a zeroizing one.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::secret::{SecretKey, SecretString};
use crate::vault::records::{Event, KeyRecord, Payload, Published};
use crate::vault::types::{EventAction, KeyHash, KeyId, Permission};

/// The first bytes of every format-2 payload (after decryption).
pub const MAGIC: &[u8; 4] = b"MKP2";

/// Smallest encoding of one key record in bytes (empty strings, no options): used to cap
/// counts read from the input before reserving anything.
const MIN_RECORD: usize = 1 + 1 + 1 + 1 + 1 + 1 + 1 + 1 + 1 + 32 + 1 + 1;
/// Smallest encoding of one event.
const MIN_EVENT: usize = 1 + 1 + 1 + 1 + 1;
/// Smallest encoding of one published verifier entry.
const MIN_PUBLISHED: usize = 1 + 1 + 1;

// ---------------------------------------------------------------------------------------
// Writing

/// Where encoded bytes go: a counter first (for the exact size), then the buffer, so the
/// plaintext buffer is allocated once and never moves (a move would leave a copy behind).
trait Sink {
    fn put(&mut self, b: &[u8]);
    /// Accounts for `n` bytes already measured without writing them; `false` when the
    /// sink needs the bytes themselves.
    fn skip(&mut self, _n: usize) -> bool {
        false
    }
    fn byte(&mut self, b: u8) {
        self.put(&[b]);
    }
    fn varint(&mut self, mut v: u64) {
        let mut buf = [0u8; 10];
        let mut n = 0;
        loop {
            let low = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                buf[n] = low;
                n += 1;
                break;
            }
            buf[n] = low | 0x80;
            n += 1;
        }
        self.put(&buf[..n]);
    }
    fn bytes(&mut self, b: &[u8]) {
        self.varint(b.len() as u64);
        self.put(b);
    }
    fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }
    fn opt_str(&mut self, s: Option<&str>) {
        match s {
            None => self.byte(0),
            Some(s) => {
                self.byte(1);
                self.str(s);
            }
        }
    }
    fn time(&mut self, t: &DateTime<Utc>) {
        let secs = t.timestamp();
        let nanos = t.timestamp_subsec_nanos();
        let zz = ((secs << 1) ^ (secs >> 63)) as u64;
        self.varint(zz << 1 | u64::from(nanos != 0));
        if nanos != 0 {
            self.varint(u64::from(nanos));
        }
    }
    fn opt_time(&mut self, t: Option<&DateTime<Utc>>) {
        match t {
            None => self.byte(0),
            Some(t) => {
                self.byte(1);
                self.time(t);
            }
        }
    }
    /// An id: tag 0 + 8 raw bytes for 16 lowercase hex characters, tag 1 + string otherwise.
    fn id(&mut self, id: &str) {
        match modern_id(id) {
            Some(raw) => {
                self.byte(0);
                self.put(&raw);
            }
            None => {
                self.byte(1);
                self.str(id);
            }
        }
    }
    fn opt_id(&mut self, id: Option<&str>) {
        match id {
            None => self.byte(0),
            Some(id) => {
                self.byte(1);
                self.id(id);
            }
        }
    }
}

struct Counter(usize);
impl Sink for Counter {
    fn put(&mut self, b: &[u8]) {
        self.0 += b.len();
    }
    fn skip(&mut self, n: usize) -> bool {
        self.0 += n;
        true
    }
}

struct Buf(Zeroizing<Vec<u8>>);
impl Sink for Buf {
    fn put(&mut self, b: &[u8]) {
        debug_assert!(self.0.capacity() - self.0.len() >= b.len(), "sized exactly");
        self.0.extend_from_slice(b);
    }
}

/// 16 lowercase hex characters as 8 bytes.
fn modern_id(id: &str) -> Option<[u8; 8]> {
    let b = id.as_bytes();
    if b.len() != 16 || !b.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let mut out = [0u8; 8];
    for (i, o) in out.iter_mut().enumerate() {
        *o = (nibble(b[2 * i]) << 4) | nibble(b[2 * i + 1]);
    }
    Some(out)
}

fn nibble(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        _ => c - b'a' + 10,
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn push_hex(out: &mut String, bytes: &[u8]) {
    for b in bytes {
        out.push(HEX[usize::from(b >> 4)] as char);
        out.push(HEX[usize::from(b & 15)] as char);
    }
}

/// `mcp_<id>_<64 hex>` whose id is the record's own: stored as its 32 raw secret bytes.
fn modern_secret(id: &str, key: &str) -> Option<[u8; 32]> {
    let rest = key
        .strip_prefix("mcp_")?
        .strip_prefix(id)?
        .strip_prefix('_')?;
    if modern_id(id).is_none() || rest.len() != 64 {
        return None;
    }
    let b = rest.as_bytes();
    if !b.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = (nibble(b[2 * i]) << 4) | nibble(b[2 * i + 1]);
    }
    Some(out)
}

fn write_all<S: Sink>(s: &mut S, p: &Payload, dict: &[&str], perm_idx: &[u32], ev_len: usize) {
    s.put(MAGIC);
    s.put(p.hash_key.expose());
    s.put(&p.revision.to_le_bytes());
    s.varint(dict.len() as u64);
    for perm in dict {
        s.str(perm);
    }
    s.varint(p.keys.len() as u64);
    let mut next_perm = perm_idx.iter();
    for k in &p.keys {
        s.id(&k.id);
        s.str(&k.name);
        s.str(&k.description);
        s.time(&k.created_at);
        s.opt_time(k.expires_at.as_ref());
        s.opt_time(k.revoked_at.as_ref());
        s.varint(k.permissions.len() as u64);
        for _ in &k.permissions {
            s.varint(u64::from(
                *next_perm.next().expect("one index per permission"),
            ));
        }
        if k.metadata.is_empty() {
            s.varint(0);
        } else {
            // serde_json's map is ordered by key: one canonical text per metadata value.
            let json = Zeroizing::new(
                serde_json::to_vec(&k.metadata).expect("serializing a JSON map cannot fail"),
            );
            s.bytes(&json);
        }
        match modern_secret(&k.id, k.secret.expose()) {
            Some(raw) => {
                let raw = Zeroizing::new(raw);
                s.byte(0);
                s.put(&raw[..]);
            }
            None => {
                s.byte(1);
                s.str(k.secret.expose());
            }
        }
        s.put(&k.hash.0);
        s.opt_id(k.rotated_from.as_deref());
        s.opt_id(k.rotated_to.as_deref());
    }
    s.varint(p.published.len() as u64);
    for pb in &p.published {
        use std::os::unix::ffi::OsStrExt;
        s.bytes(pb.path.as_os_str().as_bytes());
        s.byte(u8::from(pb.names));
        s.opt_str(pb.then.as_deref());
    }
    // The history: a count and a byte length, so a reader can step over it.
    s.varint(p.events.len() as u64);
    s.varint(ev_len as u64);
    if !s.skip(ev_len) {
        write_events(s, &p.events);
    }
}

fn write_events<S: Sink>(s: &mut S, events: &[Event]) {
    for e in events {
        s.time(&e.at);
        s.byte(action_code(e.action));
        s.opt_id(e.key_id.as_deref());
        s.opt_str(e.name.as_deref());
        s.opt_str(e.detail.as_deref());
    }
}

/// The one-byte code of an action (its index in [`EventAction::ALL`]).
fn action_code(a: EventAction) -> u8 {
    EventAction::ALL
        .iter()
        .position(|&b| b == a)
        .expect("every action is in ALL") as u8
}

/// Encodes `p` into a zeroizing buffer of exactly the right size, with 16 bytes spare for
/// the AEAD tag, so it is encrypted in place without ever moving.
pub fn encode(p: &Payload) -> Zeroizing<Vec<u8>> {
    // The dictionary and every record's indexes, found once for both passes. Keys mostly
    // share a few permissions: a linear scan of a short dictionary beats hashing, and a
    // long one falls back to a map.
    let mut dict: Vec<&str> = Vec::new();
    let mut index: HashMap<&str, u32> = HashMap::new();
    let mut perm_idx: Vec<u32> = Vec::with_capacity(p.keys.len() * 3);
    for k in &p.keys {
        for perm in &k.permissions {
            let name: &str = perm;
            let i = if dict.len() <= 16 {
                dict.iter().position(|d| *d == name).map(|i| i as u32)
            } else {
                index.get(name).copied()
            };
            let i = i.unwrap_or_else(|| {
                let i = dict.len() as u32;
                dict.push(name);
                index.insert(name, i);
                i
            });
            perm_idx.push(i);
        }
    }
    // The history's length, counted once (it is written once, into the buffer).
    let mut ev = Counter(0);
    write_events(&mut ev, &p.events);
    let mut count = Counter(0);
    write_all(&mut count, p, &dict, &perm_idx, ev.0);
    let mut buf = Buf(Zeroizing::new(Vec::with_capacity(
        count.0 + crate::vault::format::bounds::TAG_LEN,
    )));
    write_all(&mut buf, p, &dict, &perm_idx, ev.0);
    debug_assert_eq!(buf.0.len(), count.0);
    buf.0
}

// ---------------------------------------------------------------------------------------
// Reading

fn bad(what: &str) -> Error {
    Error::corrupt(format!(
        "the vault decrypted but its content is malformed ({what}); restore it from a backup"
    ))
}

struct Reader<'a> {
    b: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if n > self.b.len() {
            return Err(bad("truncated"));
        }
        let (a, rest) = self.b.split_at(n);
        self.b = rest;
        Ok(a)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
    fn byte(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn flag(&mut self) -> Result<bool> {
        match self.byte()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(bad("a flag is neither 0 nor 1")),
        }
    }
    /// LEB128, minimal encoding only (so each value has one encoding), at most 64 bits.
    fn varint(&mut self) -> Result<u64> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let b = self.byte()?;
            let low = u64::from(b & 0x7f);
            if i == 9 && b > 1 {
                return Err(bad("an integer overflows 64 bits"));
            }
            v |= low << (7 * i);
            if b & 0x80 == 0 {
                if i > 0 && b == 0 {
                    return Err(bad("an integer is not minimally encoded"));
                }
                return Ok(v);
            }
        }
        Err(bad("an integer overflows 64 bits"))
    }
    /// A count of items each at least `min` bytes long: never more than the rest could hold.
    fn count(&mut self, min: usize) -> Result<usize> {
        let n = self.varint()?;
        if n > (self.b.len() / min.max(1)) as u64 {
            return Err(bad("a count exceeds what the remaining bytes can hold"));
        }
        Ok(n as usize)
    }
    fn len(&mut self) -> Result<usize> {
        let n = self.varint()?;
        if n > self.b.len() as u64 {
            return Err(bad("truncated"));
        }
        Ok(n as usize)
    }
    fn bytes(&mut self) -> Result<&'a [u8]> {
        let n = self.len()?;
        self.take(n)
    }
    fn str(&mut self) -> Result<&'a str> {
        std::str::from_utf8(self.bytes()?).map_err(|_| bad("a text field is not UTF-8"))
    }
    fn string(&mut self) -> Result<String> {
        self.str().map(str::to_owned)
    }
    fn opt_string(&mut self) -> Result<Option<String>> {
        Ok(if self.flag()? {
            Some(self.string()?)
        } else {
            None
        })
    }
    fn time(&mut self) -> Result<DateTime<Utc>> {
        let v = self.varint()?;
        let zz = v >> 1;
        let secs = ((zz >> 1) as i64) ^ -((zz & 1) as i64);
        let nanos = if v & 1 == 1 {
            let n = self.varint()?;
            if n == 0 || n >= 1_000_000_000 {
                return Err(bad("a time has invalid nanoseconds"));
            }
            n as u32
        } else {
            0
        };
        DateTime::from_timestamp(secs, nanos).ok_or_else(|| bad("a time is out of range"))
    }
    fn opt_time(&mut self) -> Result<Option<DateTime<Utc>>> {
        Ok(if self.flag()? {
            Some(self.time()?)
        } else {
            None
        })
    }
    fn id(&mut self) -> Result<String> {
        match self.byte()? {
            0 => {
                let raw: [u8; 8] = self.array()?;
                let mut s = String::with_capacity(16);
                push_hex(&mut s, &raw);
                Ok(s)
            }
            1 => {
                let s = self.string()?;
                if modern_id(&s).is_some() {
                    return Err(bad("a modern id is stored as text"));
                }
                Ok(s)
            }
            _ => Err(bad("unknown id encoding")),
        }
    }
    fn opt_id(&mut self) -> Result<Option<String>> {
        Ok(if self.flag()? { Some(self.id()?) } else { None })
    }
}

/// How much of the payload to decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Events {
    /// Everything.
    All,
    /// Step over the history (its count and bytes are still checked for framing):
    /// for readers that show no history.
    Skip,
}

/// Decodes a payload, checking the invariants an authenticated payload must keep: unique
/// ids, permission indexes within the dictionary, a known secret encoding, no trailing
/// bytes.
///
/// # Errors
/// [`Error::Corrupt`] for anything malformed.
pub fn decode(bytes: &[u8], events: Events) -> Result<Payload> {
    let mut r = Reader { b: bytes };
    if r.take(4)? != MAGIC {
        return Err(bad("not a format-2 payload"));
    }
    let hash_key = SecretKey::new(*Zeroizing::new(r.array::<32>()?));
    let revision = u64::from_le_bytes(r.array()?);
    let ndict = r.count(1)?;
    let mut dict: Vec<&str> = Vec::with_capacity(ndict);
    let mut seen_perm = HashSet::with_capacity(ndict);
    for _ in 0..ndict {
        let p = r.str()?;
        if !seen_perm.insert(p) {
            return Err(bad("a permission repeats in the dictionary"));
        }
        dict.push(p);
    }
    let mut used = 0usize;
    let nkeys = r.count(MIN_RECORD)?;
    let mut keys = Vec::with_capacity(nkeys);
    for _ in 0..nkeys {
        let id = r.id()?;
        let name = r.string()?;
        let description = r.string()?;
        let created_at = r.time()?;
        let expires_at = r.opt_time()?;
        let revoked_at = r.opt_time()?;
        let nperm = r.count(1)?;
        let mut permissions = Vec::with_capacity(nperm);
        for _ in 0..nperm {
            let i = r.varint()?;
            // Entries are in first-use order (one encoding per payload): an index is
            // either one already used or exactly the next one.
            let p = usize::try_from(i)
                .ok()
                .filter(|&i| i <= used)
                .and_then(|i| dict.get(i).map(|p| (i, p)))
                .ok_or_else(|| {
                    bad("a permission index is outside the dictionary or out of order")
                })?;
            if p.0 == used {
                used += 1;
            }
            permissions.push(Permission::trusted((*p.1).to_owned()));
        }
        let meta = r.bytes()?;
        let metadata = if meta.is_empty() {
            serde_json::Map::new()
        } else {
            let m: serde_json::Map<String, serde_json::Value> =
                serde_json::from_slice(meta).map_err(|_| bad("metadata is not a JSON object"))?;
            if m.is_empty() || serde_json::to_vec(&m).ok().as_deref() != Some(meta) {
                return Err(bad("metadata is not in canonical form"));
            }
            m
        };
        let secret = match r.byte()? {
            0 => {
                let raw = Zeroizing::new(r.array::<32>()?);
                if modern_id(&id).is_none() {
                    return Err(bad("a raw secret belongs to a key without a modern id"));
                }
                let mut s = Zeroizing::new(String::with_capacity(85));
                s.push_str("mcp_");
                s.push_str(&id);
                s.push('_');
                push_hex(&mut s, &raw[..]);
                SecretString::new(std::mem::take(&mut *s))
            }
            1 => {
                let s = SecretString::new(r.string()?);
                if modern_secret(&id, s.expose()).is_some() {
                    return Err(bad("a modern key is stored as text"));
                }
                s
            }
            _ => return Err(bad("unknown secret encoding")),
        };
        let hash = KeyHash(r.array()?);
        let rotated_from = r.opt_id()?;
        let rotated_to = r.opt_id()?;
        keys.push(KeyRecord {
            id: KeyId::from(id),
            name,
            description,
            created_at,
            expires_at,
            revoked_at,
            permissions,
            metadata,
            secret,
            hash,
            rotated_from: rotated_from.map(KeyId::from),
            rotated_to: rotated_to.map(KeyId::from),
        });
    }
    let mut ids = HashSet::with_capacity(keys.len());
    for k in &keys {
        if !ids.insert(&*k.id) {
            return Err(Error::corrupt(format!(
                "the vault holds two keys with id {}; restore it from a backup",
                crate::display::sanitize(&k.id)
            )));
        }
    }
    drop(ids);
    if used != dict.len() {
        // The writer puts in the dictionary exactly the permissions some key holds.
        return Err(bad("the permission dictionary holds an unused entry"));
    }
    let npub = r.count(MIN_PUBLISHED)?;
    let mut published = Vec::with_capacity(npub);
    for _ in 0..npub {
        use std::os::unix::ffi::OsStrExt;
        let path = std::path::PathBuf::from(std::ffi::OsStr::from_bytes(r.bytes()?));
        let names = r.flag()?;
        let then = r.opt_string()?;
        published.push(Published { path, names, then });
    }
    let nevents = r.count(MIN_EVENT)?;
    let evlen = r.len()?;
    let evbytes = r.take(evlen)?;
    if !r.b.is_empty() {
        return Err(bad("trailing bytes after the history"));
    }
    if nevents > evlen / MIN_EVENT {
        return Err(bad("the event count exceeds the history's bytes"));
    }
    let events = match events {
        Events::Skip => Vec::new(),
        Events::All => {
            let mut er = Reader { b: evbytes };
            let mut out = Vec::with_capacity(nevents);
            for _ in 0..nevents {
                out.push(Event {
                    at: er.time()?,
                    action: *EventAction::ALL
                        .get(usize::from(er.byte()?))
                        .ok_or_else(|| bad("unknown history action"))?,
                    key_id: er.opt_id()?.map(KeyId::from),
                    name: er.opt_string()?,
                    detail: er.opt_string()?,
                });
            }
            if !er.b.is_empty() {
                return Err(bad("the history holds more bytes than its events"));
            }
            out
        }
    };
    Ok(Payload {
        hash_key,
        keys,
        events,
        revision,
        published,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vault::{NewKey, Vault};

    fn sample() -> Payload {
        let mut v = Vault::create(
            &SecretString::new("p".into()),
            crate::KdfParams {
                memory_kib: 8,
                iterations: 1,
                parallelism: 1,
            },
        )
        .unwrap();
        let now = DateTime::from_timestamp(1_780_000_000, 0).unwrap();
        for i in 0..3 {
            v.create_key(
                NewKey {
                    name: format!("k{i} ✓"),
                    description: "d".into(),
                    expires_at: (i != 1).then(|| now + chrono::Duration::days(90)),
                    permissions: vec![
                        "info".parse().unwrap(),
                        format!("p{}", i % 2).parse().unwrap(),
                    ],
                },
                now,
            );
        }
        v.revoke(1, now);
        let p = v.payload_mut_unchecked();
        p.keys[1].revoked_at = Some(DateTime::from_timestamp(-5, 123).unwrap());
        p.keys[2].id = "legacy-id".into();
        p.keys[2].secret = SecretString::new("a".repeat(64));
        p.keys[2]
            .metadata
            .insert("x".into(), serde_json::json!([1.5, {"b": null}]));
        p.keys[0].rotated_to = Some("legacy-id".into());
        let id0 = p.keys[0].id.clone();
        p.keys[2].rotated_from = Some(id0);
        p.revision = 42;
        p.published.push(Published {
            path: "/tmp/v.json".into(),
            names: true,
            then: Some("true".into()),
        });
        std::mem::take(p)
    }

    fn json(c: &Payload) -> Vec<u8> {
        c.to_json().to_vec()
    }

    #[test]
    fn round_trip_is_exact_and_unique() {
        let c = sample();
        let b = encode(&c);
        let d = decode(&b, Events::All).unwrap();
        assert_eq!(json(&d), json(&c));
        assert_eq!(d.revision, 42);
        assert_eq!(d.published, c.published);
        assert_eq!(&encode(&d)[..], &b[..], "one encoding per payload");
        let skipped = decode(&b, Events::Skip).unwrap();
        assert!(skipped.events.is_empty());
        assert_eq!(skipped.keys.len(), 3);
        assert_eq!(
            b.capacity() - b.len(),
            16,
            "room for the tag, sized exactly"
        );
    }

    #[test]
    fn compact_per_key() {
        let c = sample();
        let b = encode(&c);
        // Three records with their events: far below format 1's ~500 bytes per key.
        assert!(b.len() < 3 * 200, "{} bytes", b.len());
    }

    #[test]
    fn every_truncation_and_trailing_byte_is_refused() {
        let b = encode(&sample());
        for n in 0..b.len() {
            assert!(
                matches!(decode(&b[..n], Events::All), Err(Error::Corrupt(_))),
                "prefix of {n}"
            );
        }
        let mut longer = b.to_vec();
        longer.push(0);
        assert!(decode(&longer, Events::All).is_err());
    }

    #[test]
    fn counts_beyond_the_input_are_refused_before_allocating() {
        let mut b = MAGIC.to_vec();
        b.extend_from_slice(&[0; 40]);
        b.push(0); // no permissions
        b.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]); // 4 billion keys
        let e = decode(&b, Events::All).unwrap_err().to_string();
        assert!(e.contains("count exceeds"), "{e}");
    }

    #[test]
    fn non_minimal_varints_are_refused() {
        let mut r = Reader { b: &[0x80, 0x00] };
        assert!(r.varint().is_err());
        let mut r = Reader {
            b: &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
        };
        assert_eq!(r.varint().unwrap(), u64::MAX);
        let mut r = Reader {
            b: &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02],
        };
        assert!(r.varint().is_err());
    }

    #[test]
    fn times_round_trip_at_the_extremes() {
        for t in [
            DateTime::<Utc>::MIN_UTC,
            DateTime::<Utc>::MAX_UTC,
            DateTime::from_timestamp(0, 0).unwrap(),
            DateTime::from_timestamp(-1, 999_999_999).unwrap(),
        ] {
            let mut b = Buf(Zeroizing::new(Vec::with_capacity(32)));
            b.time(&t);
            let mut r = Reader { b: &b.0 };
            assert_eq!(r.time().unwrap(), t);
            assert!(r.b.is_empty());
        }
    }
}
