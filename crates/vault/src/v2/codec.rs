//! The compact binary payload of format 2 (specified byte by byte in
//! `docs/vault-format-2.md`, "Payload"): raw 32-byte secrets and hashes, integer times,
//! a permission dictionary, and the history as one length-delimited section.
//!
//! This module knows bytes, never keys or files. Invariants: `decode` never panics, never
//! allocates more than a fixed multiple of its input (every count read from the input is
//! capped by what the remaining bytes could hold before anything is reserved), and accepts
//! exactly one encoding of each payload, so `encode(decode(b)) == b` for every `b` it
//! accepts. Every buffer that holds plaintext is a zeroizing one.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::keyset::{Keys, Part, Plain, Raw, ReadId};
use crate::records::{Event, History, KeyRecord, Payload, Published};
use crate::secret::{SecretKey, SecretString};
use crate::types::{EventAction, KeyHash, KeyId, Permission};

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
}

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
    fn array_ref<const N: usize>(&mut self) -> Result<&'a [u8; N]> {
        Ok(self.take(N)?.try_into().expect("take gives N bytes"))
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
    #[inline]
    fn varint(&mut self) -> Result<u64> {
        // One byte (counts, lengths, indexes: nearly every integer) needs no loop.
        match self.b.split_first() {
            Some((&b, rest)) if b < 0x80 => {
                self.b = rest;
                Ok(u64::from(b))
            }
            _ => self.varint_long(),
        }
    }
    fn varint_long(&mut self) -> Result<u64> {
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
    /// A time's seconds and nanoseconds, the nanoseconds checked.
    fn time_parts(&mut self) -> Result<(i64, u32)> {
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
        Ok((secs, nanos))
    }
    fn time(&mut self) -> Result<DateTime<Utc>> {
        let (secs, nanos) = self.time_parts()?;
        DateTime::from_timestamp(secs, nanos).ok_or_else(|| bad("a time is out of range"))
    }
    /// A time's parts, checked to be in the range [`Reader::time`] accepts (chrono's: whole
    /// seconds decide it).
    fn checked_time(&mut self) -> Result<TimeParts> {
        let (secs, nanos) = self.time_parts()?;
        if !(DateTime::<Utc>::MIN_UTC.timestamp()..=DateTime::<Utc>::MAX_UTC.timestamp())
            .contains(&secs)
        {
            return Err(bad("a time is out of range"));
        }
        Ok((secs, nanos))
    }
    fn check_time(&mut self) -> Result<()> {
        self.checked_time().map(drop)
    }
    fn opt_checked_time(&mut self) -> Result<Option<TimeParts>> {
        Ok(if self.flag()? {
            Some(self.checked_time()?)
        } else {
            None
        })
    }
    fn id_ref(&mut self) -> Result<IdRef<'a>> {
        match self.byte()? {
            0 => Ok(IdRef::Hex(self.array()?)),
            1 => {
                let s = self.str()?;
                if modern_id(s).is_some() {
                    return Err(bad("a modern id is stored as text"));
                }
                Ok(IdRef::Text(s))
            }
            _ => Err(bad("unknown id encoding")),
        }
    }
    fn opt_id_ref(&mut self) -> Result<Option<IdRef<'a>>> {
        Ok(if self.flag()? {
            Some(self.id_ref()?)
        } else {
            None
        })
    }
    fn opt_id(&mut self) -> Result<Option<String>> {
        Ok(self.opt_id_ref()?.map(IdRef::to_id))
    }
    /// Reads one record in place, each field checked as far as the record alone allows
    /// (its permission indexes against `ndict` dictionary entries); also where its
    /// permission list starts and ends and its hash starts, as lengths remaining in the
    /// reader. The one walk over a record's fields: the check on open, `list --json`, the
    /// verifier and the decoder all read records through it.
    fn record(&mut self, ndict: usize) -> Result<(RecordRef<'a>, [usize; 3])> {
        let id = self.id_ref()?;
        let name = self.str()?;
        let description = self.str()?;
        let created_at = self.checked_time()?;
        let expires_at = self.opt_checked_time()?;
        let revoked_at = self.opt_checked_time()?;
        // The permission list, its count included (what the encoder rewrites when the
        // dictionary's order moves); `perms` is the indexes after the count.
        let at_perms = self.b.len();
        let nperm = self.count(1)?;
        let perms = self.b;
        for _ in 0..nperm {
            if usize::try_from(self.varint()?).map_or(true, |i| i >= ndict) {
                return Err(bad(
                    "a permission index is outside the dictionary or out of order",
                ));
            }
        }
        let at_perms_end = self.b.len();
        let perms = &perms[..perms.len() - at_perms_end];
        let metadata = self.bytes()?;
        let secret = match self.byte()? {
            0 => {
                if !matches!(id, IdRef::Hex(_)) {
                    return Err(bad("a raw secret belongs to a key without a modern id"));
                }
                SecretRef::Raw(self.array_ref()?)
            }
            1 => {
                let mut buf = [0u8; 16];
                let s = self.str()?;
                if modern_secret(id.as_str(&mut buf), s).is_some() {
                    return Err(bad("a modern key is stored as text"));
                }
                SecretRef::Text(s)
            }
            _ => return Err(bad("unknown secret encoding")),
        };
        let at_hash = self.b.len();
        let hash = self.array_ref()?;
        let rotated_from = self.opt_id_ref()?;
        let rotated_to = self.opt_id_ref()?;
        let v = RecordRef {
            id,
            name,
            description,
            created_at,
            expires_at,
            revoked_at,
            perms,
            nperm,
            metadata,
            secret,
            hash,
            rotated_from,
            rotated_to,
        };
        Ok((v, [at_perms, at_perms_end, at_hash]))
    }
    /// Checks a record as [`decode_record`] reads it, and what only the whole payload can
    /// tell: the first-use order of its permission indexes (`used`: how many dictionary
    /// entries came before) and that its metadata is canonical. Returns its id and where
    /// (as remaining lengths) its permission list starts and ends and its hash starts.
    fn check_record(
        &mut self,
        ndict: usize,
        used: &mut usize,
    ) -> Result<(IdRef<'a>, usize, usize, usize)> {
        let (v, [perms, perms_end, hash]) = self.record(ndict)?;
        // Entries are in first-use order (one encoding per payload): an index is either
        // one already used or exactly the next one.
        for i in v.permission_indexes() {
            if i > *used {
                return Err(bad(
                    "a permission index is outside the dictionary or out of order",
                ));
            }
            if i == *used {
                *used += 1;
            }
        }
        metadata(v.metadata)?;
        Ok((v.id, perms, perms_end, hash))
    }
    /// Checks an id as [`Reader::id_ref`] reads it.
    fn check_id(&mut self) -> Result<()> {
        self.id_ref().map(drop)
    }
    fn action(&mut self) -> Result<EventAction> {
        EventAction::ALL
            .get(usize::from(self.byte()?))
            .copied()
            .ok_or_else(|| bad("unknown history action"))
    }
    fn event(&mut self) -> Result<Event> {
        Ok(Event {
            at: self.time()?,
            action: self.action()?,
            key_id: self.opt_id()?.map(KeyId::from),
            name: self.opt_string()?,
            detail: self.opt_string()?,
        })
    }
    /// Checks an event as [`Reader::event`] would read it, allocating nothing.
    fn check_event(&mut self) -> Result<()> {
        self.check_time()?;
        self.action()?;
        if self.flag()? {
            self.check_id()?;
        }
        for _ in 0..2 {
            if self.flag()? {
                self.str()?;
            }
        }
        Ok(())
    }
}

/// Metadata: empty, or the canonical JSON text of a non-empty object.
fn metadata(meta: &[u8]) -> Result<serde_json::Map<String, serde_json::Value>> {
    if meta.is_empty() {
        return Ok(serde_json::Map::new());
    }
    let m: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(meta).map_err(|_| bad("metadata is not a JSON object"))?;
    if m.is_empty() || serde_json::to_vec(&m).ok().as_deref() != Some(meta) {
        return Err(bad("metadata is not in canonical form"));
    }
    Ok(m)
}

/// Decodes `count` events that fill `bytes` exactly (the history section of a payload).
///
/// # Errors
/// [`Error::Corrupt`] for anything malformed.
pub fn decode_events(bytes: &[u8], count: usize) -> Result<Vec<Event>> {
    let mut r = Reader { b: bytes };
    if count > bytes.len() / MIN_EVENT {
        return Err(bad("the event count exceeds the history's bytes"));
    }
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        out.push(r.event()?);
    }
    if !r.b.is_empty() {
        return Err(bad("the history holds more bytes than its events"));
    }
    Ok(out)
}

/// Checks what [`decode_events`] would accept, building nothing.
fn check_events(bytes: &[u8], count: usize) -> Result<()> {
    let mut r = Reader { b: bytes };
    for _ in 0..count {
        r.check_event()?;
    }
    if !r.b.is_empty() {
        return Err(bad("the history holds more bytes than its events"));
    }
    Ok(())
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
        Some(id) => Err(Error::corrupt(format!(
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
/// [`Error::Corrupt`] for anything malformed.
#[cfg(any(test, feature = "test-support"))]
pub fn decode(bytes: &[u8], events: Events) -> Result<Payload> {
    decode_owned(Zeroizing::new(bytes.to_vec()), events)
}

/// `decode` of a buffer the payload may keep: records and events left encoded point
/// into it rather than into a copy.
///
/// # Errors
/// [`Error::Corrupt`] for anything malformed.
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
    let at = |r: &Reader<'_>| (total - r.b.len()) as u32;
    let mut records = Vec::with_capacity(nkeys);
    for _ in 0..nkeys {
        let start = at(&r);
        let (id, perms, perms_end, hash) = r.check_record(dict.len(), &mut used)?;
        let shift = |p: usize| (total - p) as u32;
        records.push((
            id,
            Raw {
                start,
                perms: shift(perms),
                perms_end: shift(perms_end),
                hash: shift(hash),
                end: at(&r),
            },
        ));
    }
    check_unique_ids(records.iter().map(|(id, _)| *id))?;
    let records: Vec<(ReadId, Raw)> = records
        .into_iter()
        .map(|(id, raw)| (ReadId::of(id), raw))
        .collect();
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
    let ev_at = total - r.b.len();
    let evbytes = r.take(evlen)?;
    if !r.b.is_empty() {
        return Err(bad("trailing bytes after the history"));
    }
    if nevents > evlen / MIN_EVENT {
        return Err(bad("the event count exceeds the history's bytes"));
    }
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
    })
}

/// An id as stored: the 8 bytes of a modern (16 hex digit) id, or the text of any other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdRef<'a> {
    /// A modern id's bytes.
    Hex([u8; 8]),
    /// An imported id, as it was.
    Text(&'a str),
}

impl<'a> IdRef<'a> {
    /// The id's text, using `buf` for a modern id's hex digits.
    pub fn as_str<'b>(&self, buf: &'b mut [u8; 16]) -> &'b str
    where
        'a: 'b,
    {
        match *self {
            IdRef::Hex(raw) => {
                for (i, b) in raw.iter().enumerate() {
                    buf[2 * i] = HEX[usize::from(b >> 4)];
                    buf[2 * i + 1] = HEX[usize::from(b & 15)];
                }
                std::str::from_utf8(&buf[..]).expect("hex digits are ASCII")
            }
            IdRef::Text(s) => s,
        }
    }

    fn to_id(self) -> String {
        let mut buf = [0u8; 16];
        self.as_str(&mut buf).to_owned()
    }
}

/// A key's secret as stored: the 32 random bytes of a modern key, or the text of any other.
pub(crate) enum SecretRef<'a> {
    /// A modern key `mcp_<id>_<64 hex>`: its 32 bytes.
    Raw(&'a [u8; 32]),
    /// Any other key, whole.
    Text(&'a str),
}

/// A time as stored: seconds since the epoch and nanoseconds, already range-checked.
pub type TimeParts = (i64, u32);

/// The time a record read in place holds (its parts were range-checked when read).
pub fn datetime((secs, nanos): TimeParts) -> DateTime<Utc> {
    DateTime::from_timestamp(secs, nanos).expect("range-checked when read")
}

/// One record read in place: every field borrowed from the payload, nothing allocated
/// (what `list --json` renders, and what `decode_record` builds a [`KeyRecord`] from).
pub struct RecordRef<'a> {
    /// The key id.
    pub id: IdRef<'a>,
    /// The name.
    pub name: &'a str,
    /// The description.
    pub description: &'a str,
    /// When it was created.
    pub created_at: TimeParts,
    /// When it expires, if ever.
    pub expires_at: Option<TimeParts>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<TimeParts>,
    /// The permission indexes (varints), `nperm` of them, checked against the dictionary.
    perms: &'a [u8],
    nperm: usize,
    /// Empty, or the canonical JSON text of a non-empty object.
    pub metadata: &'a [u8],
    pub(crate) secret: SecretRef<'a>,
    /// The keyed hash of the key.
    pub hash: &'a [u8; 32],
    /// The key this one replaced (`rotate`).
    pub rotated_from: Option<IdRef<'a>>,
    /// The key that replaced this one (`rotate`).
    pub rotated_to: Option<IdRef<'a>>,
}

impl<'a> RecordRef<'a> {
    /// The permissions, in the record's order, as dictionary indexes.
    pub fn permission_indexes(&self) -> impl Iterator<Item = usize> + 'a {
        let mut r = Reader { b: self.perms };
        (0..self.nperm).map(move |_| r.varint().expect("checked when viewed") as usize)
    }

    /// The whole key string, in zeroizing memory.
    pub fn secret(&self) -> SecretString {
        match self.secret {
            SecretRef::Raw(raw) => {
                let mut s = Zeroizing::new(Vec::with_capacity(85));
                s.extend_from_slice(b"mcp_");
                let mut buf = [0u8; 16];
                s.extend_from_slice(self.id.as_str(&mut buf).as_bytes());
                s.push(b'_');
                for b in raw.iter() {
                    s.push(HEX[usize::from(b >> 4)]);
                    s.push(HEX[usize::from(b & 15)]);
                }
                SecretString::new(
                    String::from_utf8(std::mem::take(&mut *s)).expect("ASCII hex and a hex id"),
                )
            }
            SecretRef::Text(s) => SecretString::new(s.to_owned()),
        }
    }

    /// Whether the key is not of this tool's format ([`KeyRecord::is_legacy`]).
    pub fn is_legacy(&self) -> bool {
        match (&self.secret, &self.id) {
            (SecretRef::Raw(_), _) => false,
            (SecretRef::Text(s), IdRef::Hex(_)) => !s.starts_with("mcp_"),
            (SecretRef::Text(_), IdRef::Text(_)) => true,
        }
    }
}

/// Reads one record that fills `bytes` exactly, in place, checking each field against
/// `ndict` dictionary entries (the checks of `decode` that span records, such as
/// first-use order, are not repeated).
///
/// # Errors
/// [`Error::Corrupt`] for anything malformed.
pub(crate) fn view_record(bytes: &[u8], ndict: usize) -> Result<RecordRef<'_>> {
    let mut r = Reader { b: bytes };
    let (v, _) = r.record(ndict)?;
    if !r.b.is_empty() {
        return Err(bad("a record holds more bytes than its fields"));
    }
    Ok(v)
}

/// Decodes one record that fills `bytes` exactly, with the dictionary it was written with
/// ([`view_record`], then copied out).
///
/// # Errors
/// [`Error::Corrupt`] for anything malformed.
pub(crate) fn decode_record(bytes: &[u8], dict: &[Permission]) -> Result<KeyRecord> {
    let v = view_record(bytes, dict.len())?;
    let metadata = metadata(v.metadata)?;
    let secret = v.secret();
    Ok(KeyRecord {
        id: KeyId::from(v.id.to_id()),
        name: v.name.to_owned(),
        description: v.description.to_owned(),
        created_at: datetime(v.created_at),
        expires_at: v.expires_at.map(datetime),
        revoked_at: v.revoked_at.map(datetime),
        permissions: v.permission_indexes().map(|i| dict[i].clone()).collect(),
        metadata,
        secret,
        hash: KeyHash(*v.hash),
        rotated_from: v.rotated_from.map(|i| KeyId::from(i.to_id())),
        rotated_to: v.rotated_to.map(|i| KeyId::from(i.to_id())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vault::NewKey;

    fn sample() -> Payload {
        let mut v = crate::vault::test_vault();
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

    /// The same change made to records kept as read and to records all in memory encodes
    /// to the same bytes: unchanged records are copied, and re-encoded with new indexes
    /// when the dictionary's order moved.
    #[test]
    fn records_kept_as_read_encode_like_records_in_memory() {
        let b = encode(&sample());
        type Change = (&'static str, fn(&mut Keys));
        let changes: [Change; 6] = [
            ("nothing", |_| {}),
            ("revoke the second", |k| {
                k[1].revoked_at = Some(DateTime::from_timestamp(1_780_000_100, 0).unwrap());
            }),
            ("delete the first (the dictionary reorders)", |k| {
                k.remove(0);
            }),
            ("grant a new permission to the last", |k| {
                k[2].permissions.push("zz".parse().unwrap());
            }),
            (
                "grant a new permission to the first (the second's indexes move, the third's do not)",
                |k| {
                    k[0].permissions.push("zz".parse().unwrap());
                },
            ),
            ("deny p0 to the first (the dictionary reorders)", |k| {
                k[0].permissions.retain(|p| p.as_str() != "p0");
            }),
        ];
        for (what, change) in changes {
            let mut lazy = decode(&b, Events::Lazy).unwrap();
            assert_eq!(lazy.keys.decoded_count(), 0, "decoding decodes no record");
            change(&mut lazy.keys);
            let mut in_memory = decode(&b, Events::All).unwrap();
            let mut fresh = Keys::default();
            fresh.append(&mut in_memory.keys);
            in_memory.keys = fresh;
            change(&mut in_memory.keys);
            let (x, y) = (encode(&lazy), encode(&in_memory));
            assert_eq!(&x[..], &y[..], "{what}");
            let again = decode(&x, Events::All).unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(json(&again), json(&in_memory), "{what}");
        }
        // Revoking one key decodes that key only.
        let mut lazy = decode(&b, Events::Lazy).unwrap();
        lazy.keys[1].revoked_at = None;
        assert_eq!(lazy.keys.decoded_count(), 1);
        assert_eq!(lazy.keys.id(2), "legacy-id");
        assert!(lazy.keys.contains_id("legacy-id"));
        let hashes: Vec<KeyHash> = (0..3).map(|i| lazy.keys.hash(i)).collect();
        assert_eq!(
            lazy.keys.decoded_count(),
            1,
            "ids and hashes need no decoding"
        );
        let all = decode(&b, Events::All).unwrap();
        for (i, h) in hashes.iter().enumerate() {
            assert_eq!(h.0, all.keys[i].hash.0, "hash of key {i}");
        }
    }

    /// The range check without chrono agrees with chrono at and beyond both ends.
    #[test]
    fn checked_times_are_the_times_that_decode() {
        let (min, max) = (
            DateTime::<Utc>::MIN_UTC.timestamp(),
            DateTime::<Utc>::MAX_UTC.timestamp(),
        );
        for secs in [min - 1, min, min + 1, -1, 0, 1, max - 1, max, max + 1] {
            for nanos in [0u32, 1, 999_999_999] {
                let mut b = Vec::new();
                let zz = ((secs << 1) ^ (secs >> 63)) as u64;
                let mut c = Buf(Zeroizing::new(Vec::with_capacity(32)));
                c.varint(zz << 1 | u64::from(nanos != 0));
                if nanos != 0 {
                    c.varint(u64::from(nanos));
                }
                b.extend_from_slice(&c.0);
                let checked = Reader { b: &b }.check_time().is_ok();
                let decoded = Reader { b: &b }.time().is_ok();
                assert_eq!(checked, decoded, "{secs}.{nanos:09}");
            }
        }
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
        let lazy = decode(&b, Events::Lazy).unwrap();
        assert_eq!(lazy.keys.len(), 3);
        assert_eq!(lazy.events.len(), c.events.len());
        assert_eq!(
            &encode(&lazy)[..],
            &b[..],
            "a history kept encoded goes back as it came"
        );
        assert_eq!(
            json(&lazy),
            json(&c),
            "and decodes to the same events when asked"
        );
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

    /// A leap second (from an imported store or a format-1 record) is saved as the last
    /// nanosecond before it, so the vault still opens.
    #[test]
    fn a_leap_second_is_saved_as_the_nanosecond_before() {
        let mut p = sample();
        let leap = crate::records::parse_time("2016-12-31T23:59:60Z").unwrap();
        assert!(
            leap.timestamp_subsec_nanos() >= 1_000_000_000,
            "chrono's leap second"
        );
        p.keys[0].expires_at = Some(leap);
        p.keys[1].created_at = leap;
        let back = decode(&encode(&p), Events::All).unwrap();
        let before = crate::records::parse_time("2016-12-31T23:59:59.999999999Z").unwrap();
        assert_eq!(back.keys[0].expires_at, Some(before));
        assert_eq!(back.keys[1].created_at, before);
    }

    /// Two records with one id are refused, whichever kind of id, wherever they are.
    #[test]
    fn a_repeated_id_is_refused() {
        assert!(decode(&encode(&sample()), Events::Lazy).is_ok());
        for (what, at, from) in [
            ("a modern id, first and last", 2, 0),
            ("a modern id, neighbours", 1, 0),
            ("an imported id", 0, 2),
        ] {
            let mut p = sample();
            let id = p.keys.id(from).to_owned();
            p.keys[at].id = id.as_str().into();
            let e = match decode(&encode(&p), Events::Lazy) {
                Err(e) => e.to_string(),
                Ok(_) => panic!("{what}: accepted"),
            };
            assert!(e.contains(&format!("two keys with id {id}")), "{what}: {e}");
        }
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
