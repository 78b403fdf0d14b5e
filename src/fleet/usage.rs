//! Key usage across a fleet: each `serve --usage redis://…` instance adds what it counted
//! since its last flush (at most every second, and at SIGTERM) to one hash in the store;
//! `list`, `view` and `check --usage redis://…` read the sum.
//!
//! Layout: `mkm:{NAME}:usage`, a hash whose fields are `<key id> <CODE>` (a request count)
//! and `<key id> last` (the last use, Unix milliseconds); and per UTC day
//! `mkm:{NAME}:usage:<YYYY-MM-DD>`, a hash of `<key id> <CODE>` and `<key id> tool:<name>`
//! (the admitted `tools/call`s of each tool), kept [`DAY_TTL_SECONDS`]. One script per flush
//! adds the counts and keeps the later of two last uses. Key ids, codes, tool names, times and
//! counts only: never a key.
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
use crate::key_usage::KeyUsage;

/// The most distinct keys whose counts wait for a flush.
pub const MAX_PENDING_KEYS: usize = 100_000;
/// Keys per script call.
const BATCH: usize = 1_000;
/// How long a day's hash is kept: 400 days, a year and a margin.
pub const DAY_TTL_SECONDS: u64 = 400 * 86_400;
/// The most distinct tool names this instance counts per key and day; the rest count as
/// `tool:(other)`, so a client cannot grow the store with made-up names.
const MAX_TOOLS_PER_KEY: usize = 64;

/// The flush script. `KEYS[1]` the totals, `KEYS[2..]` day hashes; `ARGV`: the day hashes'
/// lifetime in seconds; the number of (field, count) pairs for the totals, the pairs; the
/// number of (key index, field, count) triples for the days, the triples; then (field,
/// milliseconds) pairs for last uses.
const ADD: &str = r"
local ttl = ARGV[1]
local i = 2
local n = tonumber(ARGV[i])
i = i + 1
for _ = 1, n do
  redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1])
  i = i + 2
end
local m = tonumber(ARGV[i])
i = i + 1
for _ = 1, m do
  redis.call('HINCRBY', KEYS[tonumber(ARGV[i])], ARGV[i + 1], ARGV[i + 2])
  i = i + 3
end
for k = 2, #KEYS do
  redis.call('EXPIRE', KEYS[k], ttl)
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
    /// (UTC day `YYYY-MM-DD`, field: a code or `tool:<name>`) → count.
    daily: BTreeMap<(String, String), u64>,
}

impl Delta {
    fn merge(&mut self, other: Delta) {
        self.last = self.last.max(other.last);
        for (code, n) in other.counts {
            *self.counts.entry(code).or_default() += n;
        }
        for (k, n) in other.daily {
            *self.daily.entry(k).or_default() += n;
        }
    }
}

/// The UTC day of `t`, as the day hashes are named.
pub fn day(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d").to_string()
}

/// Whether `name` is counted under its own name: 1-64 of `A-Za-z0-9_.-/`.
fn countable_tool(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b'/'))
}

/// Usage counted by this instance and not yet in the store.
pub struct StoreUsage {
    store: Store,
    pending: Mutex<HashMap<String, Delta>>,
    dropped: AtomicU64,
    /// The UTC day, and the tool names counted under their own name today, by key id.
    tool_names: Mutex<(String, HashMap<String, Vec<String>>)>,
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
            tool_names: Mutex::default(),
        })
    }

    /// Requests whose counts were dropped because too many keys were waiting.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Counts one request of key `id` with verdict `code` at `now`.
    pub fn record(&self, id: &str, code: &'static str, now: DateTime<Utc>) {
        self.with_delta(id, |d| {
            d.last = d.last.max(now.timestamp_millis());
            *d.counts.entry(code).or_default() += 1;
            *d.daily.entry((day(now), code.to_owned())).or_default() += 1;
        });
    }

    /// Counts the `tools/call`s of `tools` an admitted request of key `id` made at `now`.
    pub fn record_tools(&self, id: &str, tools: &[String], now: DateTime<Utc>) {
        if tools.is_empty() {
            return;
        }
        let today = day(now);
        let fields: Vec<String> = {
            let mut names = self
                .tool_names
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if names.0 != today {
                *names = (today.clone(), HashMap::new());
            }
            if !names.1.contains_key(id) && names.1.len() >= MAX_PENDING_KEYS {
                return;
            }
            let seen = names.1.entry(id.to_owned()).or_default();
            tools
                .iter()
                .map(|t| {
                    let known = seen.iter().any(|x| x == t)
                        || (countable_tool(t) && seen.len() < MAX_TOOLS_PER_KEY && {
                            seen.push(t.clone());
                            true
                        });
                    if known {
                        format!("tool:{t}")
                    } else {
                        "tool:(other)".to_owned()
                    }
                })
                .collect()
        };
        self.with_delta(id, |d| {
            for f in fields {
                *d.daily.entry((today.clone(), f)).or_default() += 1;
            }
        });
    }

    fn with_delta(&self, id: &str, f: impl FnOnce(&mut Delta)) {
        let mut p = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        if !p.contains_key(id) && p.len() >= MAX_PENDING_KEYS {
            drop(p);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        f(p.entry(id.to_owned()).or_default());
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
                p.entry(id).or_default().merge(d);
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
            // The day hashes this chunk touches, each one key of the script.
            let mut days: Vec<&str> = Vec::new();
            for (_, d) in chunk {
                for (day, _) in d.daily.keys() {
                    if !days.contains(&day.as_str()) {
                        days.push(day);
                    }
                }
            }
            for day in &days {
                call.key(format!("{}:{day}", self.store.usage_key()));
            }
            call.arg(DAY_TTL_SECONDS);
            let pairs: usize = chunk.iter().map(|(_, d)| d.counts.len()).sum();
            call.arg(pairs);
            for (id, d) in chunk {
                for (code, n) in &d.counts {
                    call.arg(format!("{id} {code}")).arg(*n);
                }
            }
            let triples: usize = chunk.iter().map(|(_, d)| d.daily.len()).sum();
            call.arg(triples);
            for (id, d) in chunk {
                for ((day, field), n) in &d.daily {
                    let k = days.iter().position(|x| x == day).expect("collected above") + 2;
                    call.arg(k).arg(format!("{id} {field}")).arg(*n);
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

/// One key's usage on one UTC day: counts by verdict, and admitted `tools/call`s by tool.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DayUsage {
    /// `YYYY-MM-DD`.
    pub day: String,
    /// Requests by verdict code.
    pub counts: BTreeMap<String, u64>,
    /// Admitted `tools/call`s by tool name (`(other)`: past the names counted).
    pub tools: BTreeMap<String, u64>,
}

/// Key `id`'s usage on each of the `days` UTC days up to `today` that has any, newest
/// first.
///
/// # Errors
/// As [`Store::parse`]; [`crate::error::Error::Io`] when the store cannot be reached.
pub fn read_days(url: &str, id: &str, today: DateTime<Utc>, days: u32) -> Result<Vec<DayUsage>> {
    let store = Store::parse(url)?;
    let mut con = store.connect()?;
    let mut out = Vec::new();
    for back in 0..days {
        let d = day(today - chrono::Duration::days(i64::from(back)));
        let key = format!("{}:{d}", store.usage_key());
        let mut usage = DayUsage {
            day: d,
            ..DayUsage::default()
        };
        // HSCAN with a pattern: only this key's fields, however many keys the day holds.
        let pattern = format!("{} *", glob_escape(id));
        let mut cursor = 0u64;
        loop {
            let (next, fields): (u64, Vec<(String, u64)>) = redis::cmd("HSCAN")
                .arg(&key)
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000)
                .query(&mut con)
                .map_err(|e| store.io("read usage from", e))?;
            for (field, n) in fields {
                let Some(what) = field.strip_prefix(id).and_then(|f| f.strip_prefix(' ')) else {
                    continue;
                };
                match what.strip_prefix("tool:") {
                    Some(tool) => usage.tools.insert(tool.to_owned(), n),
                    None => usage.counts.insert(what.to_owned(), n),
                };
            }
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
        if !usage.counts.is_empty() || !usage.tools.is_empty() {
            out.push(usage);
        }
    }
    Ok(out)
}

/// `s` with Redis glob characters escaped.
fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
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
