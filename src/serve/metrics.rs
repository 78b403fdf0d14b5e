//! The counters behind `/metrics`, rendered as Prometheus text (exposition format 0.0.4).
//!
//! Invariant: every counter is a relaxed atomic, so counting never blocks a request; the
//! rendering reads each counter once and may be a few requests behind, never ahead.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use super::usage::{code_index, CODES};
use mcp_key_vault::verify::Code;

/// Upper bounds of the `/auth` latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.01, 0.1, 1.0, 10.0,
];

/// Everything `/metrics` reports.
#[derive(Default)]
pub struct Metrics {
    verdicts: [AtomicU64; 6],
    /// `/auth` answers that were not a verdict: 400, 408, 413.
    bad_body: [AtomicU64; 3],
    pub(crate) reloads_ok: AtomicU64,
    pub(crate) reloads_failed: AtomicU64,
    pub(crate) reloads_older: AtomicU64,
    pub(crate) connections_open: AtomicU64,
    pub(crate) connections_total: AtomicU64,
    /// Access tokens by outcome, in the order of [`TOKEN_RESULTS`].
    tokens: [AtomicU64; 5],
    latency_buckets: [AtomicU64; BUCKETS.len()],
    latency_count: AtomicU64,
    latency_sum_ns: AtomicU64,
}

/// The refusals that happen before a verdict.
#[derive(Clone, Copy)]
pub enum BadBody {
    /// 400: not JSON.
    NotJson = 0,
    /// 408: the body did not arrive in time.
    Timeout = 1,
    /// 413: larger than the limit.
    TooLarge = 2,
}

const BAD_STATUS: [&str; 3] = ["400", "408", "413"];

/// The outcomes of an access token at `/auth`.
const TOKEN_RESULTS: [&str; 5] = [
    "VALID",
    "INVALID_TOKEN",
    "EXPIRED",
    "INSUFFICIENT_SCOPE",
    "STALE",
];

impl Metrics {
    /// Counts one verdict of `/auth`.
    pub fn verdict(&self, code: Code) {
        self.verdicts[code_index(code)].fetch_add(1, Relaxed);
    }

    /// Counts one refused body.
    /// Counts an access token's outcome (one of [`TOKEN_RESULTS`]).
    pub fn token(&self, result: &str) {
        if let Some(i) = TOKEN_RESULTS.iter().position(|r| *r == result) {
            self.tokens[i].fetch_add(1, Relaxed);
        }
    }

    pub fn bad_body(&self, what: BadBody) {
        self.bad_body[what as usize].fetch_add(1, Relaxed);
    }

    /// Records how long one `/auth` answer took.
    pub fn latency(&self, d: Duration) {
        let s = d.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| s <= *b) {
            self.latency_buckets[i].fetch_add(1, Relaxed);
        }
        self.latency_count.fetch_add(1, Relaxed);
        self.latency_sum_ns
            .fetch_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX), Relaxed);
    }

    /// The Prometheus text.
    pub fn render(&self, revision: u64, keys: usize) -> String {
        let mut o = String::with_capacity(4096);
        let _ = writeln!(
            o,
            "# HELP mcp_key_serve_verdicts_total Requests to /auth by verdict code (no key at \
             all counts as MALFORMED).\n# TYPE mcp_key_serve_verdicts_total counter"
        );
        for (i, c) in CODES.iter().enumerate() {
            let _ = writeln!(
                o,
                "mcp_key_serve_verdicts_total{{code=\"{}\"}} {}",
                c.as_str(),
                self.verdicts[i].load(Relaxed)
            );
        }
        let _ = writeln!(
            o,
            "# HELP mcp_key_serve_bad_requests_total Requests to /auth refused for their body \
             before a verdict (400 not JSON, 408 too slow, 413 too large).\n\
             # TYPE mcp_key_serve_bad_requests_total counter"
        );
        for (i, s) in BAD_STATUS.iter().enumerate() {
            let _ = writeln!(
                o,
                "mcp_key_serve_bad_requests_total{{status=\"{s}\"}} {}",
                self.bad_body[i].load(Relaxed)
            );
        }
        let _ = writeln!(
            o,
            "# HELP mcp_key_serve_reloads_total Verifier file changes seen, by outcome \
             (failed: broken, unreadable or missing; older: a lower revision, ignored).\n\
             # TYPE mcp_key_serve_reloads_total counter\n\
             mcp_key_serve_reloads_total{{result=\"ok\"}} {}\n\
             mcp_key_serve_reloads_total{{result=\"failed\"}} {}\n\
             mcp_key_serve_reloads_total{{result=\"older\"}} {}",
            self.reloads_ok.load(Relaxed),
            self.reloads_failed.load(Relaxed),
            self.reloads_older.load(Relaxed)
        );
        let _ = writeln!(
            o,
            "# HELP mcp_key_serve_verifier_revision The revision of the verifier answering.\n\
             # TYPE mcp_key_serve_verifier_revision gauge\n\
             mcp_key_serve_verifier_revision {revision}\n\
             # HELP mcp_key_serve_verifier_keys Keys in the verifier answering.\n\
             # TYPE mcp_key_serve_verifier_keys gauge\n\
             mcp_key_serve_verifier_keys {keys}\n\
             # HELP mcp_key_serve_connections Open client connections.\n\
             # TYPE mcp_key_serve_connections gauge\n\
             mcp_key_serve_connections {}\n\
             # HELP mcp_key_serve_connections_total Client connections accepted.\n\
             # TYPE mcp_key_serve_connections_total counter\n\
             mcp_key_serve_connections_total {}",
            self.connections_open.load(Relaxed),
            self.connections_total.load(Relaxed)
        );
        let _ = writeln!(
            o,
            "# HELP mcp_key_serve_tokens_total Access tokens presented to /auth, by outcome.\n\
             # TYPE mcp_key_serve_tokens_total counter"
        );
        for (i, r) in TOKEN_RESULTS.iter().enumerate() {
            let _ = writeln!(
                o,
                "mcp_key_serve_tokens_total{{result=\"{r}\"}} {}",
                self.tokens[i].load(Relaxed)
            );
        }
        self.render_latency(&mut o);
        o
    }

    /// The `/auth` latency histogram, its buckets cumulative as Prometheus wants them.
    fn render_latency(&self, o: &mut String) {
        let _ = writeln!(
            o,
            "# HELP mcp_key_serve_auth_duration_seconds Time to answer /auth, from the parsed \
             request to the response.\n\
             # TYPE mcp_key_serve_auth_duration_seconds histogram"
        );
        let mut cumulative = 0;
        for (i, b) in BUCKETS.iter().enumerate() {
            cumulative += self.latency_buckets[i].load(Relaxed);
            let _ = writeln!(
                o,
                "mcp_key_serve_auth_duration_seconds_bucket{{le=\"{b}\"}} {cumulative}"
            );
        }
        let count = self.latency_count.load(Relaxed);
        let _ = writeln!(
            o,
            "mcp_key_serve_auth_duration_seconds_bucket{{le=\"+Inf\"}} {count}\n\
             mcp_key_serve_auth_duration_seconds_sum {}\n\
             mcp_key_serve_auth_duration_seconds_count {count}",
            self.latency_sum_ns.load(Relaxed) as f64 / 1e9
        );
    }
}
