//! Rate limits across a fleet (`serve --limits redis://…`): one Lua script per decision,
//! the same GCRA arithmetic as `mcp_key_verifier::limit::decide` on Redis's clock, so every
//! instance draws on one quota per key.
//!
//! Layout: `mkm:{NAME}:limit:<key id>`, a string holding the key's theoretical arrival time
//! in microseconds, expiring when the quota is whole again. Key ids and times only.
//!
//! When the store cannot be reached (or answers slower than [`DECISION_TIMEOUT`]), the
//! decision is made by this instance's own limiter, and the store is left alone for
//! [`PAUSE`]: a request never waits on a store that is away, and the limit still holds per
//! instance. Those decisions are counted (`mcp_key_serve_limit_fallbacks_total`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use mcp_key_verifier::limit::{now_us, Decision, Limiter, RateLimit};

use super::store::Store;
use crate::error::Result;

/// The longest a decision waits for the store before this instance decides alone.
pub const DECISION_TIMEOUT: Duration = Duration::from_millis(250);
/// How long the store is left alone after it failed a decision.
pub const PAUSE: Duration = Duration::from_secs(1);
/// Idle connections kept for decisions.
const POOL: usize = 16;

/// The decision script. `KEYS[1]` the key's TAT; `ARGV`: interval and window, in µs.
/// Returns `{admitted 0/1, reset µs, retry-after µs}`.
const DECIDE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local new = tat + interval
if now < new - window then
  return {0, tat - now, new - window - now}
end
redis.call('SET', KEYS[1], string.format('%d', new), 'PX', math.floor((new - now) / 1000) + 1000)
return {1, new - now, 0}
";

/// Rate-limit decisions shared through a store.
pub struct StoreLimits {
    store: Store,
    script: redis::Script,
    pool: Mutex<Vec<redis::Connection>>,
    /// Until when the store is left alone.
    paused_until: Mutex<Option<Instant>>,
    local: Limiter,
    fallbacks: AtomicU64,
}

impl StoreLimits {
    /// Limits shared through the store `url` names.
    ///
    /// # Errors
    /// As [`Store::parse`].
    pub fn new(url: &str) -> Result<StoreLimits> {
        Ok(StoreLimits {
            store: Store::parse(url)?,
            script: redis::Script::new(DECIDE),
            pool: Mutex::new(Vec::new()),
            paused_until: Mutex::new(None),
            local: Limiter::new(),
            fallbacks: AtomicU64::new(0),
        })
    }

    /// The store's URL (no secret in it).
    pub fn url(&self) -> &str {
        self.store.url()
    }

    /// Decisions this instance made alone because the store was away.
    pub fn fallbacks(&self) -> u64 {
        self.fallbacks.load(Ordering::Relaxed)
    }

    /// Decides a request of key `id` under `limit`. Blocks for at most about
    /// [`DECISION_TIMEOUT`] (run it off the async workers). With the decision comes the
    /// store's failure when this call found it away (once per [`PAUSE`]), for the log.
    pub fn check(&self, id: &str, limit: RateLimit) -> (Decision, Option<crate::error::Error>) {
        let paused = self
            .paused_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some_and(|t| Instant::now() < t);
        let mut failure = None;
        if !paused {
            match self.decide_in_store(id, limit) {
                Ok(d) => return (d, None),
                Err(e) => {
                    *self
                        .paused_until
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner) = Some(Instant::now() + PAUSE);
                    failure = Some(e);
                }
            }
        }
        self.fallbacks.fetch_add(1, Ordering::Relaxed);
        (self.local.check(id, limit, now_us()), failure)
    }

    fn decide_in_store(&self, id: &str, limit: RateLimit) -> Result<Decision> {
        let pooled = self
            .pool
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let mut con = match pooled {
            Some(c) => c,
            None => {
                let c = self.store.connect()?;
                c.set_read_timeout(Some(DECISION_TIMEOUT))
                    .and_then(|()| c.set_write_timeout(Some(DECISION_TIMEOUT)))
                    .map_err(|e| self.store.io("connect to", e))?;
                c
            }
        };
        let (admitted, reset_us, retry_us): (i64, i64, i64) = self
            .script
            .key(self.store.limit_key(id))
            .arg(limit.interval_us())
            .arg(limit.window_us())
            .invoke(&mut con)
            .map_err(|e| self.store.io("decide a rate limit with", e))?;
        let mut pool = self.pool.lock().unwrap_or_else(PoisonError::into_inner);
        if pool.len() < POOL {
            pool.push(con);
        }
        Ok(decision(limit, admitted == 1, reset_us, retry_us))
    }
}

/// A decision from the script's answer: what [`mcp_key_verifier::limit::decide`] would
/// give for the same TAT and clock.
fn decision(limit: RateLimit, admitted: bool, reset_us: i64, retry_us: i64) -> Decision {
    let reset = u64::try_from(reset_us).unwrap_or(0);
    let remaining = if admitted {
        let left = limit.window_us().saturating_sub(reset) / limit.interval_us();
        u32::try_from(left).unwrap_or(u32::MAX)
    } else {
        0
    };
    Decision {
        allowed: admitted,
        remaining,
        reset_us: reset,
        retry_after_us: u64::try_from(retry_us).unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The script's answers become the decisions the verifier crate makes, for the same
    /// TAT and clock.
    #[test]
    fn the_script_answer_reads_as_the_crate_decision() {
        let l: RateLimit = "60/min".parse().unwrap();
        let now = 1_800_000_000_000_000u64;
        let mut tat = 0;
        for _ in 0..61 {
            let (want, next) = mcp_key_verifier::limit::decide(l, tat, now);
            let new = tat.max(now) + l.interval_us();
            let got = if want.allowed {
                decision(l, true, i64::try_from(new - now).unwrap(), 0)
            } else {
                let retry = new - l.window_us() - now;
                let reset = tat.max(now) - now;
                decision(
                    l,
                    false,
                    i64::try_from(reset).unwrap(),
                    i64::try_from(retry).unwrap(),
                )
            };
            assert_eq!(got, want);
            tat = next;
        }
    }

    /// A store that is not there: the instance decides alone, at once after the first
    /// failure, and counts it.
    #[test]
    fn without_the_store_the_instance_decides_alone() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let s = StoreLimits::new(&format!("redis://127.0.0.1:{port}/0?key=t")).unwrap();
        let l: RateLimit = "2/min".parse().unwrap();
        let t0 = Instant::now();
        let got: Vec<(bool, bool)> = (0..3)
            .map(|_| {
                let (d, failure) = s.check("a", l);
                (d.allowed, failure.is_some())
            })
            .collect();
        assert_eq!(
            got,
            [(true, true), (true, false), (false, false)],
            "the limit holds per instance; the failure is told once"
        );
        assert_eq!(s.fallbacks(), 3);
        assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    }
}
