//! Key usage: per key id, when it was last presented and how often with which verdict;
//! the `mcp-key-usage` file that `serve` writes, and the merge that `list`, `view` and
//! `check` read (format in docs/usage.md).
//!
//! Invariant: a usage file holds key ids, times and counts, never a key; it is replaced
//! atomically (temporary file + rename), so a reader sees the old or the new file whole.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::key_usage::KeyUsage;
use mcp_key_vault::verify::Code;

/// The `format` field of a usage file.
pub const USAGE_FORMAT: &str = "mcp-key-usage";
/// Largest usage file read (about 150 bytes per key).
pub const MAX_USAGE_BYTES: u64 = 64 * 1024 * 1024;

/// The usage file `serve` writes by default for a verifier: `<verifier>.usage.json`.
pub fn default_path(verifier: &Path) -> PathBuf {
    let mut p = verifier.as_os_str().to_owned();
    p.push(".usage.json");
    PathBuf::from(p)
}

/// Every usage file beside a verifier: `<verifier>.usage.json` and
/// `<verifier>.usage.<anything>.json` (one per `serve` process, e.g. per host), sorted.
/// Missing directory or none found: empty.
pub fn files_beside(verifier: &Path) -> Vec<PathBuf> {
    let Some(name) = verifier.file_name().and_then(|n| n.to_str()) else {
        return Vec::new();
    };
    let dir = match verifier.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let prefix = format!("{name}.usage");
    let mut found: Vec<PathBuf> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().into_string().ok()?;
            let rest = n.strip_prefix(&prefix)?;
            (rest == ".json"
                || (rest.starts_with('.') && rest.ends_with(".json") && rest.len() > 6))
                .then(|| dir.join(&n))
        })
        .collect();
    found.sort();
    found
}

#[derive(Serialize, Deserialize)]
struct UsageFile {
    format: String,
    version: u32,
    #[serde(with = "mcp_key_vault::time_opt", default)]
    updated_at: Option<DateTime<Utc>>,
    keys: BTreeMap<String, KeyUsage>,
}

/// Reads one usage file; `Ok(None)` if it does not exist.
///
/// # Errors
/// [`Error::Io`] if it cannot be read, [`Error::Corrupt`] if it is not a usage file.
pub fn load(path: &Path) -> Result<Option<BTreeMap<String, KeyUsage>>> {
    let Some(bytes) = mcp_key_vault::fsio::read_bounded(path, MAX_USAGE_BYTES, "usage file")?
    else {
        return Ok(None);
    };
    let f: UsageFile = serde_json::from_slice(&bytes).map_err(|e| {
        Error::corrupt(format!(
            "{} is not a usage file ({})",
            path.display(),
            crate::error::json_problem(&e)
        ))
    })?;
    if f.format != USAGE_FORMAT || f.version != 1 {
        return Err(Error::corrupt(format!(
            "{} is not a version-1 {USAGE_FORMAT} file",
            path.display()
        )));
    }
    Ok(Some(f.keys))
}

/// Counts per verdict code, indexed like [`CODES`].
#[derive(Default, Clone, Copy)]
struct Counts([u64; 6]);

/// Every verdict code, in the order of [`Code`].
pub const CODES: [Code; 6] = [
    Code::Malformed,
    Code::NotFound,
    Code::Revoked,
    Code::Expired,
    Code::InsufficientPermissions,
    Code::Valid,
];

/// The index of `code` in [`CODES`].
pub fn code_index(code: Code) -> usize {
    match code {
        Code::Malformed => 0,
        Code::NotFound => 1,
        Code::Revoked => 2,
        Code::Expired => 3,
        Code::InsufficientPermissions => 4,
        Code::Valid => 5,
    }
}

struct Entry {
    last_used_at: DateTime<Utc>,
    counts: Counts,
    /// Counts of codes this release does not know, carried over from the file.
    other: BTreeMap<String, u64>,
}

/// The usage a running `serve` collects, and its file (or the shared store it adds to).
pub struct Tracker {
    path: PathBuf,
    keys: Mutex<HashMap<String, Entry>>,
    dirty: AtomicBool,
    /// `--usage redis://…`: counts go to the store, not to a file.
    store: Option<crate::fleet::usage::StoreUsage>,
}

impl Tracker {
    /// A tracker writing to `path`, continuing from what the file already holds.
    ///
    /// # Errors
    /// As [`load`]; the caller decides whether a broken file stops it.
    pub fn open(path: &Path) -> Result<Tracker> {
        let t = Tracker::empty(path);
        if let Some(keys) = load(path)? {
            let mut map = t.keys.lock().unwrap_or_else(PoisonError::into_inner);
            for (id, u) in keys {
                let mut e = Entry {
                    last_used_at: u.last_used_at.unwrap_or(DateTime::UNIX_EPOCH),
                    counts: Counts::default(),
                    other: BTreeMap::new(),
                };
                for (code, n) in u.counts {
                    match CODES.iter().position(|c| c.as_str() == code) {
                        Some(i) => e.counts.0[i] = n,
                        None => {
                            e.other.insert(code, n);
                        }
                    }
                }
                map.insert(id, e);
            }
        }
        Ok(t)
    }

    /// A tracker that starts from nothing (the file, if any, will be replaced).
    pub fn empty(path: &Path) -> Tracker {
        Tracker {
            path: path.to_path_buf(),
            keys: Mutex::new(HashMap::new()),
            dirty: AtomicBool::new(false),
            store: None,
        }
    }

    /// A tracker adding its counts to a Redis store (`--usage redis://…`).
    ///
    /// # Errors
    /// As [`crate::fleet::store::Store::parse`].
    pub fn for_store(url: &str) -> Result<Tracker> {
        Ok(Tracker {
            store: Some(crate::fleet::usage::StoreUsage::new(url)?),
            ..Tracker::empty(Path::new(url))
        })
    }

    /// Whether counts go to a shared store.
    pub fn is_store(&self) -> bool {
        self.store.is_some()
    }

    /// Counts that could not wait for the store (too many keys pending during an outage).
    pub fn dropped(&self) -> u64 {
        self.store.as_ref().map_or(0, |s| s.dropped())
    }

    /// The file written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Records one request that identified key `id` with verdict `code` at `now`.
    pub fn record(&self, id: &str, code: Code, now: DateTime<Utc>) {
        let mut map = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        let e = match map.get_mut(id) {
            Some(e) => e,
            None => map.entry(id.to_string()).or_insert(Entry {
                last_used_at: now,
                counts: Counts::default(),
                other: BTreeMap::new(),
            }),
        };
        e.last_used_at = e.last_used_at.max(now);
        e.counts.0[code_index(code)] += 1;
        drop(map);
        if let Some(s) = &self.store {
            s.record(id, code.as_str(), now);
        }
        self.dirty.store(true, Ordering::Release);
    }

    /// Records the `tools/call`s of `tools` an admitted request of key `id` made: counted
    /// per tool and day in a shared store (a usage file keeps only verdicts).
    pub fn record_tools(&self, id: &str, tools: &[String], now: DateTime<Utc>) {
        if let Some(s) = &self.store {
            s.record_tools(id, tools, now);
        }
    }

    /// A snapshot, as the file would hold it.
    pub fn snapshot(&self) -> BTreeMap<String, KeyUsage> {
        let map = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        map.iter()
            .map(|(id, e)| {
                let mut counts = e.other.clone();
                for (i, n) in e.counts.0.iter().enumerate() {
                    if *n > 0 {
                        counts.insert(CODES[i].as_str().to_string(), *n);
                    }
                }
                (
                    id.clone(),
                    KeyUsage {
                        last_used_at: (e.last_used_at != DateTime::UNIX_EPOCH)
                            .then_some(e.last_used_at),
                        counts,
                    },
                )
            })
            .collect()
    }

    /// Writes the file atomically if anything changed since the last flush.
    /// Returns whether it wrote.
    ///
    /// # Errors
    /// [`Error::Io`] naming the path; the change stays pending for the next flush.
    pub fn flush(&self, now: DateTime<Utc>) -> Result<bool> {
        if let Some(s) = &self.store {
            return s.flush();
        }
        if !self.dirty.swap(false, Ordering::AcqRel) {
            return Ok(false);
        }
        let f = UsageFile {
            format: USAGE_FORMAT.into(),
            version: 1,
            updated_at: Some(now),
            keys: self.snapshot(),
        };
        let mut bytes =
            serde_json::to_vec_pretty(&f).expect("serializing plain structs cannot fail");
        bytes.push(b'\n');
        mcp_key_vault::fsio::atomic_write(&self.path, &bytes).inspect_err(|_| {
            self.dirty.store(true, Ordering::Release);
        })?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcp_key_verifier::time::parse as parse_time;

    /// Merges usage files as `list`/`view`/`check` do, failing on the first bad one.
    fn load_and_merge<P: AsRef<Path>>(paths: &[P]) -> Result<BTreeMap<String, KeyUsage>> {
        let mut all: BTreeMap<String, KeyUsage> = BTreeMap::new();
        for p in paths {
            for (id, u) in load(p.as_ref())?.into_iter().flatten() {
                all.entry(id).or_default().merge(&u);
            }
        }
        Ok(all)
    }

    #[test]
    fn flush_load_and_merge() {
        let dir = tempfile::tempdir().unwrap();
        let verifier = dir.path().join("v.json");
        let a = default_path(&verifier);
        let b = dir.path().join("v.json.usage.host2.json");
        assert_eq!(a, dir.path().join("v.json.usage.json"));
        let t1 = parse_time("2026-06-01T00:00:00Z").unwrap();
        let t2 = parse_time("2026-06-02T00:00:00Z").unwrap();

        let ta = Tracker::empty(&a);
        assert!(!ta.flush(t1).unwrap(), "nothing to write yet");
        ta.record("0123456789abcdef", Code::Valid, t2);
        ta.record("0123456789abcdef", Code::Valid, t1);
        ta.record("0123456789abcdef", Code::InsufficientPermissions, t1);
        assert!(ta.flush(t2).unwrap());
        let tb = Tracker::empty(&b);
        tb.record("0123456789abcdef", Code::Valid, t1);
        tb.record("fedcba9876543210", Code::Revoked, t1);
        tb.flush(t2).unwrap();
        std::fs::write(dir.path().join("v.json.usage.json.lock"), "").unwrap();

        assert_eq!(
            files_beside(&verifier),
            vec![b.clone(), a.clone()],
            "sorted, no .lock"
        );
        let merged = load_and_merge(&files_beside(&verifier)).unwrap();
        let one = &merged["0123456789abcdef"];
        assert_eq!(one.last_used_at, Some(t2));
        assert_eq!(one.counts["VALID"], 3);
        assert_eq!(one.counts["INSUFFICIENT_PERMISSIONS"], 1);
        assert_eq!(merged["fedcba9876543210"].counts["REVOKED"], 1);

        // A restarted serve continues from its file.
        let again = Tracker::open(&a).unwrap();
        again.record("0123456789abcdef", Code::Valid, t1);
        assert_eq!(again.snapshot()["0123456789abcdef"].counts["VALID"], 3);

        // Missing files are skipped; a broken one is an error naming it.
        assert!(load_and_merge(&[dir.path().join("none.json")])
            .unwrap()
            .is_empty());
        std::fs::write(&b, "{").unwrap();
        let e = load_and_merge(&[&a, &b]).unwrap_err();
        assert_eq!(e.category(), crate::error::Category::Corrupt);
        assert!(e.to_string().contains("host2"), "{e}");
    }
}
