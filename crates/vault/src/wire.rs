//! Format 2's payload on the wire, read in place: one record, one event, the history section, each
//! field checked as it is read and nothing allocated that the caller does not keep. The
//! lazily decoded record set (`keyset`) and history (`records`) read through here, and
//! the whole-payload codec (`codec`) builds on it.
//!
//! Invariants: a read never panics and never allocates more than a fixed multiple of its
//! input (every count is capped by what the remaining bytes could hold before anything is
//! reserved); every field is checked against the one encoding the writer produces.

use chrono::{DateTime, Utc};
use zeroize::Zeroizing;

use crate::error::OpenError;

type Result<T, E = OpenError> = std::result::Result<T, E>;
use crate::record::{Event, KeyRecord};
use crate::secret::SecretString;
use crate::types::{EventAction, KeyHash, KeyId, Permission};

/// Smallest encoding of one key record in bytes (empty strings, no options): used to cap
/// counts read from the input before reserving anything.
pub(crate) const MIN_RECORD: usize = 1 + 1 + 1 + 1 + 1 + 1 + 1 + 1 + 1 + 32 + 1 + 1;
/// Smallest encoding of one event.
pub(crate) const MIN_EVENT: usize = 1 + 1 + 1 + 1 + 1;
/// Smallest encoding of one published verifier entry.
pub(crate) const MIN_PUBLISHED: usize = 1 + 1 + 1;

// ---------------------------------------------------------------------------------------
// Reading

pub(crate) fn bad(what: &str) -> OpenError {
    OpenError::corrupt(format!(
        "the vault decrypted but its content is malformed ({what}); restore it from a backup"
    ))
}

pub(crate) struct Reader<'a> {
    pub(crate) b: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if n > self.b.len() {
            return Err(bad("truncated"));
        }
        let (a, rest) = self.b.split_at(n);
        self.b = rest;
        Ok(a)
    }
    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
    pub(crate) fn array_ref<const N: usize>(&mut self) -> Result<&'a [u8; N]> {
        Ok(self.take(N)?.try_into().expect("take gives N bytes"))
    }
    pub(crate) fn byte(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    pub(crate) fn flag(&mut self) -> Result<bool> {
        match self.byte()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(bad("a flag is neither 0 nor 1")),
        }
    }
    /// LEB128, minimal encoding only (so each value has one encoding), at most 64 bits.
    #[inline]
    pub(crate) fn varint(&mut self) -> Result<u64> {
        // One byte (counts, lengths, indexes: nearly every integer) needs no loop.
        match self.b.split_first() {
            Some((&b, rest)) if b < 0x80 => {
                self.b = rest;
                Ok(u64::from(b))
            }
            _ => self.varint_long(),
        }
    }
    pub(crate) fn varint_long(&mut self) -> Result<u64> {
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
    pub(crate) fn count(&mut self, min: usize) -> Result<usize> {
        let n = self.varint()?;
        if n > (self.b.len() / min.max(1)) as u64 {
            return Err(bad("a count exceeds what the remaining bytes can hold"));
        }
        Ok(n as usize)
    }
    pub(crate) fn len(&mut self) -> Result<usize> {
        let n = self.varint()?;
        if n > self.b.len() as u64 {
            return Err(bad("truncated"));
        }
        Ok(n as usize)
    }
    pub(crate) fn bytes(&mut self) -> Result<&'a [u8]> {
        let n = self.len()?;
        self.take(n)
    }
    pub(crate) fn str(&mut self) -> Result<&'a str> {
        std::str::from_utf8(self.bytes()?).map_err(|_| bad("a text field is not UTF-8"))
    }
    pub(crate) fn string(&mut self) -> Result<String> {
        self.str().map(str::to_owned)
    }
    pub(crate) fn opt_string(&mut self) -> Result<Option<String>> {
        Ok(if self.flag()? {
            Some(self.string()?)
        } else {
            None
        })
    }
    /// A time's seconds and nanoseconds, the nanoseconds checked.
    pub(crate) fn time_parts(&mut self) -> Result<(i64, u32)> {
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
    pub(crate) fn time(&mut self) -> Result<DateTime<Utc>> {
        let (secs, nanos) = self.time_parts()?;
        DateTime::from_timestamp(secs, nanos).ok_or_else(|| bad("a time is out of range"))
    }
    /// A time's parts, checked to be in the range [`Reader::time`] accepts (chrono's: whole
    /// seconds decide it).
    pub(crate) fn checked_time(&mut self) -> Result<TimeParts> {
        let (secs, nanos) = self.time_parts()?;
        if !(DateTime::<Utc>::MIN_UTC.timestamp()..=DateTime::<Utc>::MAX_UTC.timestamp())
            .contains(&secs)
        {
            return Err(bad("a time is out of range"));
        }
        Ok((secs, nanos))
    }
    pub(crate) fn check_time(&mut self) -> Result<()> {
        self.checked_time().map(drop)
    }
    pub(crate) fn opt_checked_time(&mut self) -> Result<Option<TimeParts>> {
        Ok(if self.flag()? {
            Some(self.checked_time()?)
        } else {
            None
        })
    }
    pub(crate) fn id_ref(&mut self) -> Result<IdRef<'a>> {
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
    pub(crate) fn opt_id_ref(&mut self) -> Result<Option<IdRef<'a>>> {
        Ok(if self.flag()? {
            Some(self.id_ref()?)
        } else {
            None
        })
    }
    pub(crate) fn opt_id(&mut self) -> Result<Option<String>> {
        Ok(self.opt_id_ref()?.map(IdRef::to_id))
    }
    /// Reads one record in place, each field checked as far as the record alone allows
    /// (its permission indexes against `ndict` dictionary entries); also where its
    /// permission list starts and ends and its hash starts, as lengths remaining in the
    /// reader. The one walk over a record's fields: the check on open, `list --json`, the
    /// verifier and the decoder all read records through it.
    pub(crate) fn record(&mut self, ndict: usize) -> Result<(RecordRef<'a>, [usize; 3])> {
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
    pub(crate) fn check_record(
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
    pub(crate) fn check_id(&mut self) -> Result<()> {
        self.id_ref().map(drop)
    }
    pub(crate) fn action(&mut self) -> Result<EventAction> {
        EventAction::ALL
            .get(usize::from(self.byte()?))
            .copied()
            .ok_or_else(|| bad("unknown history action"))
    }
    pub(crate) fn event(&mut self) -> Result<Event> {
        Ok(Event {
            at: self.time()?,
            action: self.action()?,
            key_id: self.opt_id()?.map(KeyId::from),
            name: self.opt_string()?,
            detail: self.opt_string()?,
        })
    }
    /// Checks an event as [`Reader::event`] would read it, allocating nothing.
    pub(crate) fn check_event(&mut self) -> Result<()> {
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
pub(crate) fn metadata(meta: &[u8]) -> Result<serde_json::Map<String, serde_json::Value>> {
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
/// [`OpenError::Corrupt`] for anything malformed.
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
pub(crate) fn check_events(bytes: &[u8], count: usize) -> Result<()> {
    let mut r = Reader { b: bytes };
    for _ in 0..count {
        r.check_event()?;
    }
    if !r.b.is_empty() {
        return Err(bad("the history holds more bytes than its events"));
    }
    Ok(())
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

    pub(crate) fn to_id(self) -> String {
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
            (SecretRef::Text(s), IdRef::Hex(_)) => !crate::record::is_tool_key(s),
            (SecretRef::Text(_), IdRef::Text(_)) => true,
        }
    }
}

/// Reads one record that fills `bytes` exactly, in place, checking each field against
/// `ndict` dictionary entries (the checks of `decode` that span records, such as
/// first-use order, are not repeated).
///
/// # Errors
/// [`OpenError::Corrupt`] for anything malformed.
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
/// [`OpenError::Corrupt`] for anything malformed.
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

/// 16 lowercase hex characters as 8 bytes.
pub(crate) fn modern_id(id: &str) -> Option<[u8; 8]> {
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

pub(crate) fn nibble(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        _ => c - b'a' + 10,
    }
}

pub(crate) const HEX: &[u8; 16] = b"0123456789abcdef";

/// `mcp_<id>_<64 hex>` whose id is the record's own: stored as its 32 raw secret bytes.
pub(crate) fn modern_secret(id: &str, key: &str) -> Option<[u8; 32]> {
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
