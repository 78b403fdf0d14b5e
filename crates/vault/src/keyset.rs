//! The key records of a payload, decoded only when asked for.
//!
//! A format-2 payload is checked record by record when it is read (so every record is
//! known to decode), but a record becomes a [`KeyRecord`] only when something reads it: a
//! command that revokes one key of 100,000 decodes that one, and the others go back into
//! the next save as the bytes they came as. `list` decodes them all, one at a time.
//!
//! Invariant: an entry with `raw` set is unchanged since it was read (its bytes, read with
//! the dictionary of that read, give its record); an entry without it holds its record.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::types::{KeyHash, KeyId, Permission};
use crate::record::KeyRecord;

/// A decrypted payload, shared by the records and the history that still point into it.
pub(crate) type Plain = std::sync::Arc<crate::secret::WipedBytes>;

/// Where a record's bytes lie in the payload [`Keys`] was read from: the record, and within it
/// the permission list (which depends on the dictionary).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Raw {
    pub start: u32,
    pub perms: u32,
    pub perms_end: u32,
    /// The 32-byte keyed hash.
    pub hash: u32,
    pub end: u32,
}

/// An id as read: a modern id's 16 hex digits inline (no allocation for each of 100,000
/// keys), any other id as text.
pub(crate) enum ReadId {
    /// A modern id, its hex text.
    Hex([u8; 16]),
    /// Any other id.
    Text(KeyId),
}

impl ReadId {
    /// The id of a record as stored.
    pub(crate) fn of(id: crate::wire::IdRef<'_>) -> ReadId {
        let mut buf = [0u8; 16];
        match id {
            crate::wire::IdRef::Hex(_) => {
                id.as_str(&mut buf);
                ReadId::Hex(buf)
            }
            crate::wire::IdRef::Text(t) => ReadId::Text(KeyId::from(t)),
        }
    }

    fn as_str(&self) -> &str {
        match self {
            ReadId::Hex(b) => std::str::from_utf8(b).expect("hex digits are ASCII"),
            ReadId::Text(k) => k.as_str(),
        }
    }
}

struct Entry {
    /// The id as read (also in `rec` once decoded; `rec`'s is the one that counts then).
    id: ReadId,
    raw: Option<Raw>,
    rec: OnceLock<Box<KeyRecord>>,
}

/// The key records, in creation order.
#[derive(Default)]
pub struct Keys {
    /// The whole decrypted payload as read, shared with the history (zeroizing: it holds
    /// secrets); [`Raw`] offsets point into it.
    encoded: Plain,
    /// The permission dictionary of that read.
    dict: Vec<Permission>,
    entries: Vec<Entry>,
    /// Every entry's id, for [`Keys::contains_id`]: built by its second call and kept by
    /// `push`, dropped by every other change. One lookup (`create`, `rotate`) is cheaper as
    /// a scan than as an index of 100,000 ids; `import-legacy` asks once per record, and a
    /// scan each time made importing n keys cost n²/2 comparisons.
    id_index: OnceLock<HashSet<Box<str>>>,
    /// Whether `contains_id` has scanned once.
    scanned: AtomicBool,
}

impl Keys {
    /// Records held in memory.
    pub fn from_records(records: Vec<KeyRecord>) -> Keys {
        Keys {
            entries: records.into_iter().map(Entry::decoded).collect(),
            ..Keys::default()
        }
    }

    /// Records kept encoded: `encoded` holds each `(id, raw)` record, already validated by
    /// the codec against `dict`.
    pub(crate) fn from_encoded(
        encoded: Plain,
        dict: Vec<Permission>,
        records: impl Iterator<Item = (ReadId, Raw)>,
    ) -> Keys {
        Keys {
            encoded,
            dict,
            entries: records
                .map(|(id, raw)| Entry {
                    id,
                    raw: Some(raw),
                    rec: OnceLock::new(),
                })
                .collect(),
            ..Keys::default()
        }
    }

    /// How many keys.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Record `i`, decoded on first use.
    pub fn get(&self, i: usize) -> Option<&KeyRecord> {
        self.entries.get(i).map(|e| self.record(e))
    }

    fn record<'a>(&'a self, e: &'a Entry) -> &'a KeyRecord {
        e.rec.get_or_init(|| {
            self.decode(e.raw.expect("an entry without its bytes holds its record"))
        })
    }

    /// The record whose bytes `raw` points at.
    fn decode(&self, raw: Raw) -> Box<KeyRecord> {
        Box::new(
            crate::wire::decode_record(
                &self.encoded[raw.start as usize..raw.end as usize],
                &self.dict,
            )
            .expect("the record was validated when it was read"),
        )
    }

    /// How many records are decoded (for tests of the laziness itself).
    #[cfg(any(test, feature = "test-support"))]
    pub fn decoded_count(&self) -> usize {
        self.entries
            .iter()
            .filter(|e| e.rec.get().is_some())
            .count()
    }

    /// The first record.
    pub fn first(&self) -> Option<&KeyRecord> {
        self.get(0)
    }

    /// The last record.
    pub fn last(&self) -> Option<&KeyRecord> {
        self.len().checked_sub(1).and_then(|i| self.get(i))
    }

    /// Record `i`, to change: from now on it is encoded from the record, not its old bytes.
    pub fn get_mut(&mut self, i: usize) -> Option<&mut KeyRecord> {
        // The record's id may change.
        self.id_index.take();
        let e = self.entries.get(i)?;
        self.record(e);
        let e = &mut self.entries[i];
        e.raw = None;
        e.rec.get_mut().map(|b| &mut **b)
    }

    /// The id of key `i`, without decoding its record.
    pub fn id(&self, i: usize) -> &str {
        let e = &self.entries[i];
        e.rec.get().map_or(e.id.as_str(), |r| r.id.as_str())
    }

    /// The keyed hash of key `i`, without decoding its record.
    pub fn hash(&self, i: usize) -> KeyHash {
        let e = &self.entries[i];
        match (e.rec.get(), e.raw) {
            (Some(r), _) => r.hash,
            (None, Some(raw)) => {
                let at = raw.hash as usize;
                KeyHash(
                    self.encoded[at..at + 32]
                        .try_into()
                        .expect("a hash is 32 bytes"),
                )
            }
            (None, None) => unreachable!("an entry without its bytes holds its record"),
        }
    }

    /// Every id, in order, without decoding any record.
    pub fn ids(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        (0..self.entries.len()).map(|i| self.id(i))
    }

    /// Whether some key has this id.
    pub fn contains_id(&self, id: &str) -> bool {
        if let Some(index) = self.id_index.get() {
            return index.contains(id);
        }
        if !self.scanned.swap(true, Ordering::Relaxed) {
            return self.ids().any(|k| k == id);
        }
        self.id_index
            .get_or_init(|| self.ids().map(Box::from).collect())
            .contains(id)
    }

    /// Every record, in order, each decoded as the iteration reaches it.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &KeyRecord> + ExactSizeIterator + '_ {
        self.entries.iter().map(|e| self.record(e))
    }

    /// Every record, in order, without keeping what it decodes: a record not decoded yet is
    /// decoded for the moment it is looked at and dropped after (`list` of 100,000 keys
    /// holds one record at a time, not all of them).
    pub fn each(&self) -> impl Iterator<Item = Rec<'_>> + '_ {
        self.entries.iter().map(|e| match (e.rec.get(), e.raw) {
            (Some(r), _) => Rec::Kept(r),
            (None, Some(raw)) => Rec::Passing(self.decode(raw)),
            (None, None) => unreachable!("an entry without its bytes holds its record"),
        })
    }

    /// Every record, in order, as a [`Look`]: a record decoded earlier, or one read in place
    /// from the payload without decoding (allocating) anything — for `list --json`, which
    /// renders every field of 100,000 records once.
    pub fn looks(&self) -> impl Iterator<Item = Look<'_>> + '_ {
        self.entries.iter().map(|e| self.look_at(e))
    }

    /// Record `i` as a [`Look`].
    ///
    /// # Panics
    /// When `i` is out of range.
    pub(crate) fn look(&self, i: usize) -> Look<'_> {
        self.look_at(&self.entries[i])
    }

    fn look_at<'a>(&'a self, e: &'a Entry) -> Look<'a> {
        match (e.rec.get(), e.raw) {
            (Some(r), _) => Look::Record(r),
            (None, Some(raw)) => Look::InPlace(
                crate::wire::view_record(
                    &self.encoded[raw.start as usize..raw.end as usize],
                    self.dict.len(),
                )
                .expect("the record was validated when it was read"),
            ),
            (None, None) => unreachable!("an entry without its bytes holds its record"),
        }
    }

    /// The permission names that [`Look::InPlace`] records' indexes refer to.
    pub fn dict(&self) -> &[Permission] {
        &self.dict
    }

    /// Every record, to change.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut KeyRecord> + '_ {
        self.id_index.take();
        for e in &self.entries {
            self.record(e);
        }
        self.entries.iter_mut().map(|e| {
            e.raw = None;
            &mut **e.rec.get_mut().expect("decoded above")
        })
    }

    /// Appends a record.
    pub fn push(&mut self, r: KeyRecord) {
        if let Some(index) = self.id_index.get_mut() {
            index.insert(r.id.as_str().into());
        }
        self.entries.push(Entry::decoded(r));
    }

    /// Removes record `i` and returns it.
    ///
    /// # Panics
    /// When `i` is out of range, as `Vec::remove`.
    pub fn remove(&mut self, i: usize) -> KeyRecord {
        self.id_index.take();
        self.record(&self.entries[i]);
        let e = self.entries.remove(i);
        *e.rec.into_inner().expect("decoded above")
    }

    /// Moves every record of `other` to the end of this one.
    pub fn append(&mut self, other: &mut Keys) {
        self.id_index.take();
        let other = std::mem::take(other);
        for e in &other.entries {
            other.record(e);
        }
        self.entries.extend(other.entries.into_iter().map(|mut e| {
            e.raw = None;
            e
        }));
    }

    /// For the encoder: the read-time dictionary, the encoded section, and each entry's
    /// unchanged bytes or its record.
    pub(crate) fn parts(&self) -> (&[Permission], &[u8], impl Iterator<Item = Part<'_>>) {
        (
            &self.dict,
            &self.encoded,
            self.entries.iter().map(|e| match (e.raw, e.rec.get()) {
                (Some(raw), _) => Part::Raw(raw),
                (None, Some(r)) => Part::Record(r),
                (None, None) => unreachable!("an entry without its bytes holds its record"),
            }),
        )
    }
}

/// A record from [`Keys::each`]: one the vault keeps, or one decoded for the moment.
pub enum Rec<'a> {
    /// Decoded earlier and kept.
    Kept(&'a KeyRecord),
    /// Decoded for this look only.
    Passing(Box<KeyRecord>),
}

impl std::ops::Deref for Rec<'_> {
    type Target = KeyRecord;
    fn deref(&self) -> &KeyRecord {
        match self {
            Rec::Kept(r) => r,
            Rec::Passing(r) => r,
        }
    }
}

/// A record from [`Keys::looks`].
// One at a time, by value, in an iterator: boxing the large variant would allocate once
// per record, which is what reading in place avoids.
#[allow(clippy::large_enum_variant)]
pub enum Look<'a> {
    /// Decoded earlier (or new).
    Record(&'a KeyRecord),
    /// Read in place from the payload; permission indexes refer to [`Keys::dict`].
    InPlace(crate::wire::RecordRef<'a>),
}

impl Look<'_> {
    /// The key's name.
    pub(crate) fn name(&self) -> &str {
        match self {
            Look::Record(k) => &k.name,
            Look::InPlace(r) => r.name,
        }
    }

    /// Whether the key was rotated into a successor (it may still be in its grace period).
    pub(crate) fn rotated_away(&self) -> bool {
        match self {
            Look::Record(k) => k.rotated_to.is_some(),
            Look::InPlace(r) => r.rotated_to.is_some(),
        }
    }
}

/// One record as the encoder sees it.
pub(crate) enum Part<'a> {
    /// Unchanged: its bytes in the encoded section.
    Raw(Raw),
    /// New or changed.
    Record(&'a KeyRecord),
}

impl Entry {
    fn decoded(r: KeyRecord) -> Entry {
        Entry {
            id: ReadId::Text(r.id.clone()),
            raw: None,
            rec: OnceLock::from(Box::new(r)),
        }
    }
}

impl std::ops::Index<usize> for Keys {
    type Output = KeyRecord;
    fn index(&self, i: usize) -> &KeyRecord {
        self.record(&self.entries[i])
    }
}

impl std::ops::IndexMut<usize> for Keys {
    fn index_mut(&mut self, i: usize) -> &mut KeyRecord {
        let n = self.entries.len();
        self.get_mut(i)
            .unwrap_or_else(|| panic!("key index {i} out of range for {n} keys"))
    }
}

impl<'a> IntoIterator for &'a Keys {
    type Item = &'a KeyRecord;
    type IntoIter = Box<dyn Iterator<Item = &'a KeyRecord> + 'a>;
    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.iter())
    }
}

impl<'a> IntoIterator for &'a mut Keys {
    type Item = &'a mut KeyRecord;
    type IntoIter = Box<dyn Iterator<Item = &'a mut KeyRecord> + 'a>;
    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.iter_mut())
    }
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys").field("len", &self.len()).finish()
    }
}

impl Serialize for Keys {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for Keys {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Keys, D::Error> {
        Vec::<KeyRecord>::deserialize(d).map(Keys::from_records)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vault::{test_vault, NewKey};

    /// Three records with ids "a", "b", "c", held in memory.
    fn keys() -> Keys {
        let mut v = test_vault();
        for _ in 0..3 {
            let spec = NewKey {
                name: "k".into(),
                description: String::new(),
                expires_at: None,
                permissions: Vec::new(),
            };
            v.create_key(spec, chrono::Utc::now());
        }
        let json = serde_json::to_vec(v.keys()).expect("records serialize");
        let mut keys: Keys = serde_json::from_slice(&json).expect("records deserialize");
        for (i, id) in ["a", "b", "c"].into_iter().enumerate() {
            keys[i].id = id.into();
        }
        keys
    }

    /// The id index answers as a scan would through every change: a stale index would let
    /// an import take an id twice.
    #[test]
    fn contains_id_answers_as_a_scan_through_changes() {
        let mut k = keys();
        let mut last = k.remove(2);
        assert!(k.contains_id("a"), "the first lookup scans");
        assert!(!k.contains_id("c"), "the second builds the index");
        assert!(k.id_index.get().is_some());
        last.id = "c".into();
        k.push(last);
        assert!(k.contains_id("c"), "push keeps the index");
        k.remove(0);
        assert!(!k.contains_id("a"), "remove drops the index");
        k[0].id = "z".into();
        assert!(k.contains_id("z") && !k.contains_id("b"), "a changed id");
        let mut other = keys();
        other.remove(2);
        other.remove(1);
        k.append(&mut other);
        assert!(k.contains_id("a"), "append");
        assert_eq!(k.ids().collect::<Vec<_>>(), ["z", "c", "a"]);
    }
}
