//! The compact binary payload of format 2 (specified byte by byte in
//! `docs/vault-format-2.md`, "Payload"): raw 32-byte secrets and hashes, integer times,
//! a permission dictionary, and the history as one length-delimited section.
//!
//! This module knows bytes, never keys or files. Invariants: `decode` never panics, never
//! allocates more than a fixed multiple of its input (every count read from the input is
//! capped by what the remaining bytes could hold before anything is reserved), and accepts
//! exactly one encoding of each payload, so `encode(decode(b)) == b` for every `b` it
//! accepts. Every buffer that holds plaintext is a zeroizing one.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Utc};
use zeroize::Zeroizing;

use crate::error::OpenError;

type Result<T, E = OpenError> = std::result::Result<T, E>;
use crate::keyset::{Keys, Part, Plain, Raw, ReadId};
use crate::records::{Event, History, KeyRecord, Payload, Published, RECENT_SAVES};
use crate::secret::SecretKey;
use crate::types::{EventAction, Permission};
use mcp_key_verifier::RateLimit;

use crate::wire::{
    bad, check_events, decode_events, modern_id, modern_secret, IdRef, Reader, MIN_EVENT,
    MIN_PUBLISHED, MIN_RECORD,
};

/// The first bytes of every format-2 payload (after decryption).
pub const MAGIC: &[u8; 4] = b"MKP2";

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
        // A leap second (`…23:59:60Z`, which RFC 3339 text may carry into a record) is
        // chrono's nanoseconds past 999,999,999; the payload holds only a second's worth,
        // so it is written as the last nanosecond of the second before.
        let nanos = t.timestamp_subsec_nanos().min(999_999_999);
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

/// Everything the encoder works out before writing: the dictionary in first-use order,
/// every record's permission indexes, and which records kept as read can be copied whole
/// (their indexes did not move).
struct Plan<'a> {
    dict: Vec<&'a str>,
    perm_idx: Vec<u32>,
    /// Where each record's indexes start in `perm_idx` (one more entry at the end).
    perm_at: Vec<usize>,
    /// Per part: a record kept as read whose indexes moved (re-encode its list).
    moved: Vec<bool>,
    section: &'a [u8],
    parts: Vec<Part<'a>>,
    ev_len: usize,
}

fn plan(p: &Payload) -> Plan<'_> {
    let (old_dict, section, parts) = p.keys.parts();
    let parts: Vec<Part<'_>> = parts.collect();
    // Keys mostly share a few permissions: a linear scan of a short dictionary beats
    // hashing, and a long one falls back to a map.
    let mut dict: Vec<&str> = Vec::new();
    let mut index: HashMap<&str, u32> = HashMap::new();
    let mut perm_idx: Vec<u32> = Vec::with_capacity(parts.len() * 3);
    let mut perm_at = Vec::with_capacity(parts.len() + 1);
    let mut moved = Vec::with_capacity(parts.len());
    // Each read-time index's place in the new dictionary, once known.
    let mut remap = vec![u32::MAX; old_dict.len()];
    for part in &parts {
        perm_at.push(perm_idx.len());
        let mut this_moved = false;
        match part {
            Part::Record(k) => {
                for perm in &k.permissions {
                    let i = dict_index(&mut dict, &mut index, perm.as_str());
                    perm_idx.push(i);
                }
            }
            Part::Raw(raw) => {
                let mut r = Reader {
                    b: &section[raw.perms as usize..raw.perms_end as usize],
                };
                let n = r.varint().expect("validated when read");
                for _ in 0..n {
                    let old = r.varint().expect("validated when read") as usize;
                    if remap[old] == u32::MAX {
                        remap[old] = dict_index(&mut dict, &mut index, old_dict[old].as_str());
                    }
                    let i = remap[old];
                    this_moved |= i as usize != old;
                    perm_idx.push(i);
                }
            }
        }
        moved.push(this_moved);
    }
    perm_at.push(perm_idx.len());
    // The history's length, counted once (it is written once, into the buffer).
    let (stored, added) = p.events.parts();
    let mut ev = Counter(stored.len());
    write_events(&mut ev, added);
    Plan {
        dict,
        perm_idx,
        perm_at,
        moved,
        section,
        parts,
        ev_len: ev.0,
    }
}

fn dict_index<'a>(
    dict: &mut Vec<&'a str>,
    index: &mut HashMap<&'a str, u32>,
    name: &'a str,
) -> u32 {
    let found = if dict.len() <= 16 {
        dict.iter().position(|d| *d == name).map(|i| i as u32)
    } else {
        index.get(name).copied()
    };
    found.unwrap_or_else(|| {
        let i = dict.len() as u32;
        dict.push(name);
        index.insert(name, i);
        i
    })
}

fn write_all<S: Sink>(s: &mut S, p: &Payload, plan: &Plan<'_>) {
    s.put(MAGIC);
    s.put(p.hash_key.expose());
    s.put(&p.revision.to_le_bytes());
    s.varint(plan.dict.len() as u64);
    for perm in &plan.dict {
        s.str(perm);
    }
    s.varint(plan.parts.len() as u64);
    // Unchanged records whose indexes did not move go back as the bytes they were read
    // as; neighbours in the payload read go in one copy.
    let mut run = 0..0;
    for (n, part) in plan.parts.iter().enumerate() {
        let idx = &plan.perm_idx[plan.perm_at[n]..plan.perm_at[n + 1]];
        if let Part::Raw(raw) = part {
            if !plan.moved[n] {
                let (start, end) = (raw.start as usize, raw.end as usize);
                if run.end != start || run.is_empty() {
                    s.put(&plan.section[run]);
                    run = start..start;
                }
                run.end = end;
                continue;
            }
        }
        s.put(&plan.section[std::mem::replace(&mut run, 0..0)]);
        match part {
            Part::Raw(raw) => {
                s.put(&plan.section[raw.start as usize..raw.perms as usize]);
                write_perms(s, idx);
                s.put(&plan.section[raw.perms_end as usize..raw.end as usize]);
            }
            Part::Record(k) => write_record(s, k, idx),
        }
    }
    s.put(&plan.section[run]);
    s.varint(p.published.len() as u64);
    for pb in &p.published {
        use std::os::unix::ffi::OsStrExt;
        s.bytes(pb.path.as_os_str().as_bytes());
        s.byte(u8::from(pb.names));
        s.opt_str(pb.then.as_deref());
    }
    // The history: a count and a byte length, so a reader can step over it.
    s.varint(p.events.len() as u64);
    s.varint(plan.ev_len as u64);
    if !s.skip(plan.ev_len) {
        // The events read from disk go back as they came (they were checked to be in the
        // one encoding), then the ones added since.
        let (stored, added) = p.events.parts();
        s.put(stored);
        write_events(s, added);
    }
    // The signing key's seed and the lineage, last: a payload written before signing
    // ends above.
    if let Some(k) = &p.signing_key {
        let saves = &p.recent_saves[p.recent_saves.len().saturating_sub(RECENT_SAVES)..];
        s.byte(if saves.is_empty() { 1 } else { 2 });
        s.put(k.expose());
        if !saves.is_empty() {
            s.varint(saves.len() as u64);
            for d in saves {
                s.put(d);
            }
        }
    }
    // Rate limits, last, only when a key has one: a payload without any ends above, as
    // before limits existed.
    if !p.limits.is_empty() {
        s.byte(LIMITS);
        s.varint(p.limits.len() as u64);
        for (id, l) in &p.limits {
            s.id(id);
            s.varint(u64::from(l.requests()));
            s.varint(u64::from(l.window_seconds()));
        }
    }
}

/// The tag of the rate-limit section.
const LIMITS: u8 = 3;

fn write_perms<S: Sink>(s: &mut S, idx: &[u32]) {
    s.varint(idx.len() as u64);
    for &i in idx {
        s.varint(u64::from(i));
    }
}

fn write_record<S: Sink>(s: &mut S, k: &KeyRecord, idx: &[u32]) {
    s.id(&k.id);
    s.str(&k.name);
    s.str(&k.description);
    s.time(&k.created_at);
    s.opt_time(k.expires_at.as_ref());
    s.opt_time(k.revoked_at.as_ref());
    write_perms(s, idx);
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
/// the AEAD tag, so it is encrypted in place without ever moving. Records and events that
/// are unchanged since they were read are copied as the bytes they were read as.
pub fn encode(p: &Payload) -> Zeroizing<Vec<u8>> {
    let plan = plan(p);
    let mut count = Counter(0);
    write_all(&mut count, p, &plan);
    let mut buf = Buf(Zeroizing::new(Vec::with_capacity(
        count.0 + crate::format::bounds::TAG_LEN,
    )));
    write_all(&mut buf, p, &plan);
    debug_assert_eq!(buf.0.len(), count.0);
    buf.0
}

/// How much of the payload to decode now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Events {
    /// Every record and event, now (benchmarks, fuzzing, tests).
    All,
    /// Check every record and event now, but decode a record or the history only when
    /// something reads it ([`Keys`], [`History`]): a change to one key of many writes the
    /// others back as the bytes they came as. What commands use.
    Lazy,
}

/// Refuses a payload in which two records have the same id. Modern ids (nearly all) are
/// compared as sorted 64-bit numbers: a bounded O(n log n) whatever the ids, and no
/// hashing of 100,000 of them.
fn check_unique_ids<'a>(ids: impl Iterator<Item = IdRef<'a>>) -> Result<()> {
    let mut hex = Vec::new();
    let mut text = HashSet::new();
    let mut twice = None;
    for id in ids {
        match id {
            IdRef::Hex(b) => hex.push(u64::from_be_bytes(b)),
            IdRef::Text(t) => {
                if !text.insert(t) {
                    twice = Some(t.to_owned());
                }
            }
        }
    }
    hex.sort_unstable();
    if let Some(w) = hex.windows(2).find(|w| w[0] == w[1]) {
        twice = Some(IdRef::Hex(w[0].to_be_bytes()).to_id());
    }
    match twice {
        None => Ok(()),
        Some(id) => Err(OpenError::corrupt(format!(
            "the vault holds two keys with id {}; restore it from a backup",
            crate::display::sanitize(&id)
        ))),
    }
}

/// Decodes a payload, checking the invariants an authenticated payload must keep: unique
/// ids, permission indexes within the dictionary and in first-use order, a known secret
/// encoding, canonical metadata, no trailing bytes. With [`Events::Lazy`] the same checks
/// run, but records and events stay encoded until read.
///
/// # Errors
/// [`OpenError::Corrupt`] for anything malformed.
#[cfg(any(test, feature = "test-support"))]
pub fn decode(bytes: &[u8], events: Events) -> Result<Payload> {
    decode_owned(Zeroizing::new(bytes.to_vec()), events)
}

/// `decode` of a buffer the payload may keep: records and events left encoded point
/// into it rather than into a copy.
///
/// # Errors
/// [`OpenError::Corrupt`] for anything malformed.
pub fn decode_owned(mut buf: Zeroizing<Vec<u8>>, events: Events) -> Result<Payload> {
    let bytes = &buf[..];
    if u32::try_from(bytes.len()).is_err() {
        return Err(bad("larger than 4 GiB"));
    }
    let total = bytes.len();
    let mut r = Reader { b: bytes };
    if r.take(4)? != MAGIC {
        return Err(bad("not a format-2 payload"));
    }
    let hash_key = SecretKey::new(*Zeroizing::new(r.array::<32>()?));
    let revision = u64::from_le_bytes(r.array()?);
    let dict = read_dictionary(&mut r)?;
    let mut used = 0usize;
    let records = read_records(&mut r, total, dict.len(), &mut used)?;
    if used != dict.len() {
        // The writer puts in the dictionary exactly the permissions some key holds.
        return Err(bad("the permission dictionary holds an unused entry"));
    }
    let published = read_published(&mut r)?;
    let (nevents, ev_at, evbytes) = read_history_section(&mut r, total)?;
    let (signing_key, recent_saves) = read_signing_key(&mut r)?;
    let limits = read_limits(&mut r)?;
    let evlen = evbytes.len();
    let dict: Vec<Permission> = dict.iter().map(|p| Permission::trusted(p)).collect();
    let history = match events {
        Events::All => Some(History::from_events(decode_events(evbytes, nevents)?)),
        Events::Lazy => {
            check_events(evbytes, nevents)?;
            None
        }
    };
    // Nothing borrows the buffer any more: the records and the history keep it.
    let plain: Plain = std::sync::Arc::new(crate::secret::WipedBytes::take(&mut buf));
    let history = history
        .unwrap_or_else(|| History::from_encoded(plain.clone(), ev_at..ev_at + evlen, nevents));
    let keys = Keys::from_encoded(plain, dict, records.into_iter());
    if let Some(id) = limits.keys().find(|id| !keys.contains_id(id)) {
        return Err(bad(&format!(
            "a rate limit names {}, which no key has",
            crate::display::sanitize(id)
        )));
    }
    if events == Events::All {
        // Decoding each record now also proves the checks above and the decoder agree.
        for k in &keys {
            std::hint::black_box(k);
        }
    }
    Ok(Payload {
        hash_key,
        keys,
        events: history,
        revision,
        published,
        signing_key,
        recent_saves,
        limits,
    })
}

/// The permission dictionary: each permission once.
fn read_dictionary<'a>(r: &mut Reader<'a>) -> Result<Vec<&'a str>> {
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
    Ok(dict)
}

/// The records, checked and left encoded: each one's id and where its parts lie in the
/// payload of `total` bytes. `used` counts the dictionary entries they use.
fn read_records(
    r: &mut Reader<'_>,
    total: usize,
    ndict: usize,
    used: &mut usize,
) -> Result<Vec<(ReadId, Raw)>> {
    let nkeys = r.count(MIN_RECORD)?;
    let at = |r: &Reader<'_>| (total - r.b.len()) as u32;
    let mut records = Vec::with_capacity(nkeys);
    for _ in 0..nkeys {
        let start = at(r);
        let (id, perms, perms_end, hash) = r.check_record(ndict, used)?;
        let shift = |p: usize| (total - p) as u32;
        records.push((
            id,
            Raw {
                start,
                perms: shift(perms),
                perms_end: shift(perms_end),
                hash: shift(hash),
                end: at(r),
            },
        ));
    }
    check_unique_ids(records.iter().map(|(id, _)| *id))?;
    Ok(records
        .into_iter()
        .map(|(id, raw)| (ReadId::of(id), raw))
        .collect())
}

/// Where the vault was published.
fn read_published(r: &mut Reader<'_>) -> Result<Vec<Published>> {
    let npub = r.count(MIN_PUBLISHED)?;
    let mut published = Vec::with_capacity(npub);
    for _ in 0..npub {
        use std::os::unix::ffi::OsStrExt;
        let path = std::path::PathBuf::from(std::ffi::OsStr::from_bytes(r.bytes()?));
        let names = r.flag()?;
        let then = r.opt_string()?;
        published.push(Published { path, names, then });
    }
    Ok(published)
}

/// The history section, the payload's last: its event count, its offset in the payload
/// of `total` bytes, and its bytes, not yet checked.
fn read_history_section<'a>(r: &mut Reader<'a>, total: usize) -> Result<(usize, usize, &'a [u8])> {
    let nevents = r.count(MIN_EVENT)?;
    let evlen = r.len()?;
    let ev_at = total - r.b.len();
    let evbytes = r.take(evlen)?;
    if nevents > evlen / MIN_EVENT {
        return Err(bad("the event count exceeds the history's bytes"));
    }
    Ok((nevents, ev_at, evbytes))
}

/// The payload's optional last part: nothing (a vault written before signing); `0x01`
/// and the signing key's 32-byte seed; or `0x02`, the seed, a count of 1 to
/// [`RECENT_SAVES`] and that many 32-byte save digests (the vault's lineage).
fn read_signing_key(r: &mut Reader<'_>) -> Result<(Option<SecretKey>, Vec<[u8; 32]>)> {
    let tag = match r.b {
        [] | [LIMITS, ..] => return Ok((None, Vec::new())),
        [t, ..] => *t,
    };
    if tag != 1 && tag != 2 {
        return Err(bad("trailing bytes after the history"));
    }
    r.take(1)?;
    let seed = SecretKey::new(*Zeroizing::new(r.array::<32>()?));
    let mut saves = Vec::new();
    if tag == 2 {
        let n = r.count(32)?;
        if n == 0 || n > RECENT_SAVES {
            return Err(bad("the list of recent saves is empty or too long"));
        }
        for _ in 0..n {
            saves.push(r.array::<32>()?);
        }
    }
    Ok((Some(seed), saves))
}

/// The rate limits, the payload's optional last part: `0x03`, a count of at least one,
/// and that many (id, requests varint, window-seconds varint), ids in increasing order,
/// each limit within [`RateLimit::new`]'s bounds. Nothing may follow.
fn read_limits(r: &mut Reader<'_>) -> Result<BTreeMap<String, RateLimit>> {
    let mut limits = BTreeMap::new();
    if r.b.is_empty() {
        return Ok(limits);
    }
    if r.byte()? != LIMITS {
        return Err(bad("trailing bytes after the history"));
    }
    // An entry is at least 3 bytes (a text id of one byte is 3, a modern one 9).
    let n = r.count(3)?;
    if n == 0 {
        return Err(bad("an empty rate-limit section"));
    }
    for _ in 0..n {
        let id = r.id_ref()?.to_id();
        let mut num = || -> Result<u32> {
            u32::try_from(r.varint()?).map_err(|_| bad("a rate limit out of bounds"))
        };
        let (q, w) = (num()?, num()?);
        let limit = RateLimit::new(q, w).map_err(|_| bad("a rate limit out of bounds"))?;
        if limits.last_key_value().is_some_and(|(last, _)| *last >= id) {
            return Err(bad("the rate limits are not in increasing order of id"));
        }
        limits.insert(id, limit);
    }
    if !r.b.is_empty() {
        return Err(bad("trailing bytes after the rate limits"));
    }
    Ok(limits)
}

#[cfg(test)]
#[path = "codec_tests.rs"]
mod tests;
