//! Key usage across a fleet: each `serve --usage redis://…` instance adds what it counted
//! since its last flush (at most every second, and at SIGTERM) to one hash in the store;
//! `list`, `view` and `check --usage redis://…` read the sum.
//!
//! Layout: `mkm:{NAME}:usage`, a hash whose fields are `<key id> <CODE>` (a request count)
//! and `<key id> last` (the last use, Unix milliseconds). One script per flush adds the
//! counts and keeps the later of two last uses. Key ids, codes, times and counts only: never
//! a key.
//!
//! While the store is away, counts wait in memory for the next flush; past
//! [`MAX_PENDING_KEYS`] distinct keys waiting, new keys' counts are dropped and counted
//! (`mcp_key_serve_usage_dropped_total`), so an outage costs bounded memory.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use chrono::{DateTime, Utc};

use super::store::Store;
use crate::error::Result;
use crate::serve::usage::KeyUsage;

/// The most distinct keys whose counts wait for a flush.
pub const MAX_PENDING_KEYS: usize = 100_000;
/// Keys per script call.
const BATCH: usize = 1_000;

/// The flush script. `KEYS[1]` the hash; `ARGV[1]` the number of (field, count) pairs
/// that follow, then (field, milliseconds) pairs for last uses.
const ADD: &str = r"
local n = tonumber(ARGV[1])
local i = 2
for _ = 1, n do
  redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1])
  i = i + 2
end
while i <= #ARGV do
  local cur = tonumber(redis.call('HGET', KEYS[1], ARGV[i]) or '0')
  if tonumber(ARGV[i + 1]) > cur then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  end
  i = i + 2
end
return 1
";

#[derive(Default)]
struct Delta {
    last: i64,
    counts: BTreeMap<&'static str, u64>,
}

/// Usage counted by this instance and not yet in the store.
pub struct StoreUsage {
    store: Store,
    pending: Mutex<HashMap<String, Delta>>,
    dropped: AtomicU64,
}

impl StoreUsage {
    /// Usage for the store `url` names.
    ///
    /// # Errors
    /// As [`Store::parse`].
    pub fn new(url: &str) -> Result<StoreUsage> {
        Ok(StoreUsage {
            store: Store::parse(url)?,
            pending: Mutex::new(HashMap::new()),
            dropped: AtomicU64::new(0),
        })
    }

    /// Requests whose counts were dropped because too many keys were waiting.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Counts one request of key `id` with verdict `code` at `now`.
    pub fn record(&self, id: &str, code: &'static str, now: DateTime<Utc>) {
        let mut p = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        if !p.contains_key(id) && p.len() >= MAX_PENDING_KEYS {
            drop(p);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let d = p.entry(id.to_owned()).or_default();
        d.last = d.last.max(now.timestamp_millis());
        *d.counts.entry(code).or_default() += 1;
    }

    /// Adds what is waiting to the store; on failure it waits for the next flush.
    /// Returns whether anything was sent.
    ///
    /// # Errors
    /// [`crate::error::Error::Io`] when the store cannot be reached.
    pub fn flush(&self) -> Result<bool> {
        let waiting =
            std::mem::take(&mut *self.pending.lock().unwrap_or_else(PoisonError::into_inner));
        if waiting.is_empty() {
            return Ok(false);
        }
        let mut items: Vec<(String, Delta)> = waiting.into_iter().collect();
        let sent = self.send(&items);
        if let Err(e) = sent {
            // Back in line, merged with what arrived meanwhile.
            let mut p = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
            for (id, d) in items.drain(..) {
                if !p.contains_key(&id) && p.len() >= MAX_PENDING_KEYS {
                    let n: u64 = d.counts.values().sum();
                    self.dropped.fetch_add(n, Ordering::Relaxed);
                    continue;
                }
                let e = p.entry(id).or_default();
                e.last = e.last.max(d.last);
                for (code, n) in d.counts {
                    *e.counts.entry(code).or_default() += n;
                }
            }
            return Err(e);
        }
        Ok(true)
    }

    fn send(&self, items: &[(String, Delta)]) -> Result<()> {
        let mut con = self.store.connect()?;
        let script = redis::Script::new(ADD);
        for chunk in items.chunks(BATCH) {
            let mut call = script.key(self.store.usage_key());
            let pairs: usize = chunk.iter().map(|(_, d)| d.counts.len()).sum();
            call.arg(pairs);
            for (id, d) in chunk {
                for (code, n) in &d.counts {
                    call.arg(format!("{id} {code}")).arg(*n);
                }
            }
            for (id, d) in chunk {
                call.arg(format!("{id} last")).arg(d.last);
            }
            call.invoke::<i64>(&mut con)
                .map_err(|e| self.store.io("add usage to", e))?;
        }
        Ok(())
    }
}

/// The usage the store holds, by key id, as a usage file would hold it.
///
/// # Errors
/// As [`Store::parse`]; [`crate::error::Error::Io`] when the store cannot be reached.
pub fn read(url: &str) -> Result<BTreeMap<String, KeyUsage>> {
    let store = Store::parse(url)?;
    let mut con = store.connect()?;
    let fields: HashMap<String, i64> = redis::cmd("HGETALL")
        .arg(store.usage_key())
        .query(&mut con)
        .map_err(|e| store.io("read usage from", e))?;
    let mut out: BTreeMap<String, KeyUsage> = BTreeMap::new();
    for (field, value) in fields {
        let Some((id, what)) = field.rsplit_once(' ') else {
            continue;
        };
        let u = out.entry(id.to_owned()).or_default();
        if what == "last" {
            u.last_used_at = DateTime::from_timestamp_millis(value);
        } else if let Ok(n) = u64::try_from(value) {
            u.counts.insert(what.to_owned(), n);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store that is not there: a flush fails, keeps every count for the next one, and
    /// past the bound new keys are dropped and counted, not held.
    #[test]
    fn an_outage_keeps_counts_for_later_in_bounded_memory() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let u = StoreUsage::new(&format!("redis://127.0.0.1:{port}/0?key=t")).unwrap();
        let now = DateTime::from_timestamp(1_780_000_000, 0).unwrap();
        u.record("a", "VALID", now);
        u.record("a", "VALID", now);
        assert!(u.flush().is_err(), "nothing listens there");
        {
            let p = u.pending.lock().unwrap();
            assert_eq!(p["a"].counts["VALID"], 2, "kept for the next flush");
        }
        for i in 0..MAX_PENDING_KEYS + 10 {
            u.record(&format!("k{i}"), "VALID", now);
        }
        assert_eq!(u.pending.lock().unwrap().len(), MAX_PENDING_KEYS);
        assert_eq!(
            u.dropped(),
            11,
            "one key waiting already, eleven beyond the bound"
        );
        u.record("a", "REVOKED", now);
        assert_eq!(
            u.pending.lock().unwrap()["a"].counts["REVOKED"],
            1,
            "known keys still count"
        );
    }
}
