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
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use mcp_key_verifier::limit::{now_us, Decision, Limiter, RateLimit};

use super::store::Store;
use crate::error::Result;

/// The longest a decision waits for the store before this instance decides alone.
pub const DECISION_TIMEOUT: Duration = Duration::from_millis(250);
/// How long the store is left alone after it failed a decision.
pub const PAUSE: Duration = Duration::from_secs(1);
/// The decision script. `KEYS[1]` the key's TAT; `ARGV`: interval and window, in µs.
/// Returns `{admitted 0/1, reset µs, retry-after µs}`.
const DECIDE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
-- A value that is not a number (written by hand) counts as a whole quota.
local tat = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
if tat < now then tat = now end
local new = tat + interval
if now < new - window then
  return {0, tat - now, new - window - now}
end
redis.call('SET', KEYS[1], string.format('%d', new), 'PX', math.floor((new - now) / 1000) + 1000)
return {1, new - now, 0}
";

/// Rate-limit decisions shared through a store.
///
/// Decisions are asked of [`WORKERS`] threads, each with its own connection; a thread takes
/// every question waiting (up to [`BATCH`]) and sends them in one pipeline, so a busy
/// instance pays one round trip per batch, not per request, and no async worker blocks.
pub struct StoreLimits {
    url: String,
    asks: std::sync::mpsc::SyncSender<Ask>,
    /// Until when the store is left alone.
    paused_until: Arc<Mutex<Option<Instant>>>,
    local: Limiter,
    fallbacks: AtomicU64,
}

/// Threads deciding in the store.
pub const WORKERS: usize = 2;
/// Most decisions in one pipeline.
pub const BATCH: usize = 128;
/// Most questions waiting; past it, this instance decides alone.
const QUEUE: usize = 4096;

struct Ask {
    key: String,
    limit: RateLimit,
    reply: tokio::sync::oneshot::Sender<Result<Decision>>,
}

impl StoreLimits {
    /// Limits shared through the store `url` names; starts the worker threads.
    ///
    /// # Errors
    /// As [`Store::parse`]; [`crate::error::Error::Io`] when a thread cannot be started.
    pub fn new(url: &str) -> Result<StoreLimits> {
        let store = Store::parse(url)?;
        let (tx, rx) = std::sync::mpsc::sync_channel::<Ask>(QUEUE);
        let rx = Arc::new(Mutex::new(rx));
        for n in 0..WORKERS {
            let (store, rx) = (store.clone(), Arc::clone(&rx));
            std::thread::Builder::new()
                .name(format!("limits-{n}"))
                .spawn(move || work(&store, &rx))
                .map_err(|e| crate::error::Error::Io {
                    context: "start a rate-limit thread".into(),
                    source: e,
                })?;
        }
        Ok(StoreLimits {
            url: store.url().to_owned(),
            asks: tx,
            paused_until: Arc::default(),
            local: Limiter::new(),
            fallbacks: AtomicU64::new(0),
        })
    }

    /// The store's URL (no secret in it).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Decisions this instance made alone because the store was away.
    pub fn fallbacks(&self) -> u64 {
        self.fallbacks.load(Ordering::Relaxed)
    }

    /// Decides a request of key `id` under `limit`, waiting at most about
    /// [`DECISION_TIMEOUT`]. With the decision comes the store's failure when this call
    /// found it away (once per [`PAUSE`]), for the log.
    pub async fn check(
        &self,
        id: &str,
        limit: RateLimit,
    ) -> (Decision, Option<crate::error::Error>) {
        let paused = self
            .paused_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some_and(|t| Instant::now() < t);
        let mut failure = None;
        if !paused {
            match self.ask(id, limit).await {
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

    async fn ask(&self, id: &str, limit: RateLimit) -> Result<Decision> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let ask = Ask {
            key: id.to_owned(),
            limit,
            reply,
        };
        let unavailable = |why: &str| crate::error::Error::Io {
            context: format!("decide a rate limit with the Redis store {}", self.url),
            source: std::io::Error::other(why.to_owned()),
        };
        self.asks
            .try_send(ask)
            .map_err(|_| unavailable("too many decisions waiting"))?;
        // The worker's own timeouts bound this; the outer one covers a connect that hangs.
        match tokio::time::timeout(DECISION_TIMEOUT * 4, answer).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(unavailable("the rate-limit thread stopped")),
            Err(_) => Err(unavailable("no answer in time")),
        }
    }
}

/// A worker: takes every question waiting, asks them in one pipeline, answers each.
fn work(store: &Store, asks: &Mutex<std::sync::mpsc::Receiver<Ask>>) {
    let script = redis::Script::new(DECIDE);
    let mut con: Option<super::store::Conn> = None;
    loop {
        let batch = {
            let rx = asks.lock().unwrap_or_else(PoisonError::into_inner);
            let Ok(first) = rx.recv() else { return };
            let mut batch = vec![first];
            while batch.len() < BATCH {
                match rx.try_recv() {
                    Ok(a) => batch.push(a),
                    Err(_) => break,
                }
            }
            batch
        };
        match decide_batch(store, &script, &mut con, &batch) {
            Ok(decisions) => {
                for (ask, d) in batch.into_iter().zip(decisions) {
                    let _ = ask.reply.send(Ok(d));
                }
            }
            Err(e) => {
                con = None;
                let why = e.to_string();
                for ask in batch {
                    let _ = ask.reply.send(Err(crate::error::Error::Io {
                        context: "decide a rate limit".into(),
                        source: std::io::Error::other(why.clone()),
                    }));
                }
            }
        }
    }
}

fn decide_batch(
    store: &Store,
    script: &redis::Script,
    con: &mut Option<super::store::Conn>,
    batch: &[Ask],
) -> Result<Vec<Decision>> {
    if con.is_none() {
        let c = store.connect()?;
        c.set_timeouts(DECISION_TIMEOUT)
            .map_err(|e| store.io("connect to", e))?;
        *con = Some(c);
    }
    let c = con.as_mut().expect("connected above");
    let mut pipe = redis::pipe();
    for a in batch {
        pipe.cmd("EVALSHA")
            .arg(script.get_hash())
            .arg(1)
            .arg(store.limit_key(&a.key))
            .arg(a.limit.interval_us())
            .arg(a.limit.window_us());
    }
    let answers: Vec<(i64, i64, i64)> = match pipe.query(c) {
        Ok(a) => a,
        Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
            // A restarted store has forgotten the script: load it, ask again once.
            script
                .load(c)
                .map_err(|e| store.io("load the rate-limit script into", e))?;
            pipe.query(c)
                .map_err(|e| store.io("decide a rate limit with", e))?
        }
        Err(e) => return Err(store.io("decide a rate limit with", e)),
    };
    Ok(batch
        .iter()
        .zip(answers)
        .map(|(a, (admitted, reset, retry))| decision(a.limit, admitted == 1, reset, retry))
        .collect())
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
    #[tokio::test]
    async fn without_the_store_the_instance_decides_alone() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let s = StoreLimits::new(&format!("redis://127.0.0.1:{port}/0?key=t")).unwrap();
        let l: RateLimit = "2/min".parse().unwrap();
        let t0 = Instant::now();
        let mut got = Vec::new();
        for _ in 0..3 {
            let (d, failure) = s.check("a", l).await;
            got.push((d.allowed, failure.is_some()));
        }
        assert_eq!(
            got,
            [(true, true), (true, false), (false, false)],
            "the limit holds per instance; the failure is told once"
        );
        assert_eq!(s.fallbacks(), 3);
        assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    }
}
