//! Rate limits: what a key may do per window, how one decision is made (GCRA, the generic
//! cell rate algorithm of the `governor` crate and Envoy's rate-limit service), and a
//! per-process limiter.
//!
//! A limit of `q` requests per `w` seconds lets a fresh key make `q` requests at once and
//! then one every `w/q` seconds: each key has a theoretical arrival time (TAT); a request
//! at `now` moves it to `max(TAT, now) + w/q` and is admitted when that is at most `w`
//! ahead of `now`. All times are whole microseconds, so every reader (Rust, Python,
//! TypeScript, the Redis script) computes exactly the same decisions; the vectors in
//! `tests/vectors/verifier/ratelimit.json` pin them.
//!
//! Memory: the limiter holds one 8-byte time per key it has seen and forgets keys whose
//! quota is whole again, so it never holds more than the verifier's keys.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::{Mutex, PoisonError};

/// Microseconds per second.
const US: u64 = 1_000_000;

/// The most requests one limit may allow per window.
pub const MAX_REQUESTS: u32 = 1_000_000_000;
/// The longest window, in seconds (one day).
pub const MAX_WINDOW_SECONDS: u32 = 86_400;

/// A rate limit: at most `requests` per `window_seconds`, bursts up to `requests`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RateLimit {
    requests: u32,
    window_seconds: u32,
}

/// Why a rate limit could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadLimit(&'static str);

impl fmt::Display for BadLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for BadLimit {}

impl RateLimit {
    /// `requests` per `window_seconds`.
    ///
    /// # Errors
    /// When `requests` is not 1..=[`MAX_REQUESTS`] or `window_seconds` not
    /// 1..=[`MAX_WINDOW_SECONDS`].
    pub fn new(requests: u32, window_seconds: u32) -> Result<RateLimit, BadLimit> {
        if !(1..=MAX_REQUESTS).contains(&requests) {
            return Err(BadLimit(
                "a rate limit allows 1 to 1,000,000,000 requests per window",
            ));
        }
        if !(1..=MAX_WINDOW_SECONDS).contains(&window_seconds) {
            return Err(BadLimit(
                "a rate limit's window is 1 second to 1 day (86,400 seconds)",
            ));
        }
        Ok(RateLimit {
            requests,
            window_seconds,
        })
    }

    /// The requests allowed per window (the burst).
    pub fn requests(self) -> u32 {
        self.requests
    }

    /// The window, in seconds.
    pub fn window_seconds(self) -> u32 {
        self.window_seconds
    }

    /// The window, in microseconds.
    pub fn window_us(self) -> u64 {
        u64::from(self.window_seconds) * US
    }

    /// The time one request uses of the window (the emission interval), in microseconds,
    /// rounded up: never more than `requests` per window.
    pub fn interval_us(self) -> u64 {
        self.window_us().div_ceil(u64::from(self.requests))
    }

    /// The IETF `RateLimit-Policy` value: `"key";q=100;w=60`.
    pub fn policy_header(self) -> String {
        format!("\"key\";q={};w={}", self.requests, self.window_seconds)
    }
}

/// `100/min`, `5/s`, `1000/hour`, `20000/day`; also `N/Ws` for any window of W seconds
/// (`10/30s`).
impl FromStr for RateLimit {
    type Err = BadLimit;

    fn from_str(s: &str) -> Result<RateLimit, BadLimit> {
        const SHAPE: &str = "a rate limit is N/sec, N/min, N/hour, N/day or N/<seconds>s \
                             (for example 100/min)";
        let (n, per) = s.trim().split_once('/').ok_or(BadLimit(SHAPE))?;
        let requests: u32 = n
            .trim()
            .parse()
            .ok()
            .filter(|_| n.trim().bytes().all(|b| b.is_ascii_digit()))
            .ok_or(BadLimit(SHAPE))?;
        let per = per.trim();
        let window_seconds = match per {
            "s" | "sec" | "second" => 1,
            "m" | "min" | "minute" => 60,
            "h" | "hour" => 3600,
            "d" | "day" => 86_400,
            _ => per
                .strip_suffix('s')
                .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|d| d.parse().ok())
                .ok_or(BadLimit(SHAPE))?,
        };
        RateLimit::new(requests, window_seconds)
    }
}

/// The shortest form that reads back as the same limit: `100/min`, `10/30s`.
impl fmt::Display for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.window_seconds {
            1 => write!(f, "{}/sec", self.requests),
            60 => write!(f, "{}/min", self.requests),
            3600 => write!(f, "{}/hour", self.requests),
            86_400 => write!(f, "{}/day", self.requests),
            w => write!(f, "{}/{w}s", self.requests),
        }
    }
}

/// One decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request is admitted.
    pub allowed: bool,
    /// Requests left in the window after this one.
    pub remaining: u32,
    /// Microseconds until the whole quota is available again.
    pub reset_us: u64,
    /// Refused only: microseconds until a request would be admitted.
    pub retry_after_us: u64,
}

impl Decision {
    /// The IETF `RateLimit` value: `"key";r=REMAINING;t=SECONDS` (the reset, rounded up).
    pub fn header(&self) -> String {
        format!(
            "\"key\";r={};t={}",
            self.remaining,
            self.reset_us.div_ceil(US)
        )
    }

    /// `Retry-After`, in whole seconds rounded up, at least 1.
    pub fn retry_after_secs(&self) -> u64 {
        self.retry_after_us.div_ceil(US).max(1)
    }
}

/// One GCRA step: the decision for a request at `now_us` when the key's theoretical
/// arrival time is `tat_us` (0 for a key not seen), and the TAT to keep (unchanged when
/// refused).
pub fn decide(limit: RateLimit, tat_us: u64, now_us: u64) -> (Decision, u64) {
    let t = limit.interval_us();
    let w = limit.window_us();
    let tat = tat_us.max(now_us);
    let new_tat = tat.saturating_add(t);
    let allow_at = new_tat.saturating_sub(w);
    if now_us < allow_at {
        let d = Decision {
            allowed: false,
            remaining: 0,
            reset_us: tat - now_us,
            retry_after_us: allow_at - now_us,
        };
        return (d, tat_us);
    }
    let used = new_tat - now_us;
    let remaining = u32::try_from((w - used) / t).unwrap_or(u32::MAX);
    let d = Decision {
        allowed: true,
        remaining,
        reset_us: used,
        retry_after_us: 0,
    };
    (d, new_tat)
}

/// A per-process limiter: the TAT of every key seen, by key id.
#[derive(Debug, Default)]
pub struct Limiter {
    tats: Mutex<Tats>,
}

#[derive(Debug, Default)]
struct Tats {
    by_id: HashMap<String, u64>,
    /// The size at which keys with a whole quota are next forgotten.
    prune_at: usize,
}

impl Limiter {
    /// An empty limiter.
    pub fn new() -> Limiter {
        Limiter::default()
    }

    /// Decides a request of key `id` under `limit` at `now_us` (microseconds since the
    /// Unix epoch), and remembers it when admitted.
    pub fn check(&self, id: &str, limit: RateLimit, now_us: u64) -> Decision {
        let mut tats = self.tats.lock().unwrap_or_else(PoisonError::into_inner);
        let tat = tats.by_id.get(id).copied().unwrap_or(0);
        let (d, new_tat) = decide(limit, tat, now_us);
        if d.allowed {
            if tats.by_id.len() >= tats.prune_at.max(1024) && !tats.by_id.contains_key(id) {
                // A key whose TAT has passed has its whole quota: forgetting it changes
                // no decision. Pruned each time the map doubles, so the cost is amortised.
                tats.by_id.retain(|_, t| *t > now_us);
                tats.prune_at = tats.by_id.len() * 2;
            }
            tats.by_id.insert(id.to_owned(), new_tat);
        }
        d
    }

    /// Decides at the current time.
    pub fn check_now(&self, id: &str, limit: RateLimit) -> Decision {
        self.check(id, limit, now_us())
    }

    /// Keys held (for tests and metrics).
    pub fn len(&self) -> usize {
        self.tats
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .by_id
            .len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Microseconds since the Unix epoch, now.
pub fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_read_and_print_in_one_form() {
        for (text, shown, q, w) in [
            ("100/min", "100/min", 100, 60),
            ("5/s", "5/sec", 5, 1),
            ("1000/hour", "1000/hour", 1000, 3600),
            ("7/d", "7/day", 7, 86_400),
            ("10/30s", "10/30s", 10, 30),
            (" 3 / minute ", "3/min", 3, 60),
            ("2/60s", "2/min", 2, 60),
        ] {
            let l: RateLimit = text.parse().unwrap();
            assert_eq!((l.requests(), l.window_seconds()), (q, w), "{text}");
            assert_eq!(l.to_string(), shown);
            assert_eq!(shown.parse::<RateLimit>().unwrap(), l);
        }
        for bad in [
            "",
            "100",
            "0/min",
            "-1/min",
            "+1/min",
            "1/week",
            "1/0s",
            "1/86401s",
            "1/s/s",
            "1.5/min",
            "1000000001/s",
            "1/ms",
        ] {
            assert!(bad.parse::<RateLimit>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_burst_of_the_quota_then_one_per_interval() {
        let l = RateLimit::new(60, 60).unwrap();
        let (mut tat, t0) = (0, 1_000 * US);
        for i in 0..60 {
            let (d, next) = decide(l, tat, t0);
            assert!(d.allowed, "request {i}");
            assert_eq!(d.remaining, 59 - i);
            tat = next;
        }
        let (d, same) = decide(l, tat, t0);
        assert!(!d.allowed);
        assert_eq!(same, tat, "a refusal uses nothing");
        assert_eq!((d.retry_after_us, d.retry_after_secs()), (US, 1));
        assert_eq!(d.reset_us, 60 * US);
        assert_eq!(d.header(), "\"key\";r=0;t=60");
        // Half a second later still refused; a second later exactly one more.
        assert!(!decide(l, tat, t0 + US / 2).0.allowed);
        let (d, tat) = decide(l, tat, t0 + US);
        assert!(d.allowed && d.remaining == 0);
        assert!(!decide(l, tat, t0 + US).0.allowed);
        // A window later the whole quota is back.
        let (d, _) = decide(l, tat, t0 + 61 * US);
        assert_eq!(d.remaining, 59);
    }

    #[test]
    fn an_interval_that_does_not_divide_rounds_towards_fewer() {
        let l = RateLimit::new(7, 1).unwrap();
        assert_eq!(l.interval_us(), 142_858);
        let mut tat = 0;
        let mut admitted = 0;
        for _ in 0..10 {
            let (d, next) = decide(l, tat, 5 * US);
            admitted += u32::from(d.allowed);
            tat = next;
        }
        assert_eq!(
            admitted, 6,
            "7 intervals rounded up overrun the window by 6 µs"
        );
    }

    #[test]
    fn the_limiter_counts_keys_apart_and_forgets_whole_quotas() {
        let lim = Limiter::new();
        let l = RateLimit::new(2, 10).unwrap();
        let now = 50 * US;
        assert!(lim.check("a", l, now).allowed);
        assert!(lim.check("a", l, now).allowed);
        assert!(!lim.check("a", l, now).allowed);
        assert!(
            lim.check("b", l, now).allowed,
            "another key has its own quota"
        );
        for i in 0..5000 {
            lim.check(&format!("k{i}"), l, now + 100 * US + i);
        }
        assert!(lim.len() <= 5002);
        let later = now + 1_000 * US;
        for i in 0..10_000 {
            lim.check(&format!("z{i}"), l, later);
        }
        assert_eq!(
            lim.len(),
            10_000,
            "every key whose quota is whole was forgotten"
        );
    }
}
