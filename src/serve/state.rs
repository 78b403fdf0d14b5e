//! What every request handler shares: the [`State`], the refusal log, and the bounds
//! on what a request may bring.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::Utc;
use mcp_key_vault::display::sanitize;
use mcp_key_vault::verify::{Code, KeyInfo, Verifier, Watched};

use super::log::log;
use super::metrics::Metrics;
use super::usage::Tracker;

/// Largest request head (request line and headers) accepted; larger gets 431.
pub const MAX_HEAD_BYTES: usize = 32 * 1024;

/// Logs refusals of identified keys (revoked, expired, lacking a permission: each worth a
/// look), at most [`Log::BURST`] lines per ten seconds; the rest are counted and the count
/// is logged when the next window opens. Unknown and malformed keys are only counted in
/// `/metrics`: they name no key, and logging them would let anyone flood the log.
pub(crate) struct Log {
    window: AtomicU64,
    lines: AtomicU64,
    dropped: AtomicU64,
}

impl Log {
    const BURST: u64 = 20;

    pub(crate) fn new() -> Log {
        Log {
            window: AtomicU64::new(0),
            lines: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        }
    }

    pub(crate) fn rate_limited(&self, key: &KeyInfo) {
        self.refused_as(key, "RATE_LIMITED");
    }

    pub(crate) fn refused(&self, key: &KeyInfo, code: Code) {
        self.refused_as(key, code.as_str());
    }

    fn refused_as(&self, key: &KeyInfo, code: &str) {
        let window = u64::try_from(Utc::now().timestamp() / 10).unwrap_or(0);
        if self.window.swap(window, Ordering::Relaxed) != window {
            self.lines.store(0, Ordering::Relaxed);
            let dropped = self.dropped.swap(0, Ordering::Relaxed);
            if dropped > 0 {
                log(format_args!("{dropped} more refusals not logged"));
            }
        }
        if self.lines.fetch_add(1, Ordering::Relaxed) >= Self::BURST {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        match &key.name {
            Some(n) => log(format_args!(
                "refused {} key_id={} name={:?}",
                code,
                sanitize(&key.id),
                sanitize(n)
            )),
            None => log(format_args!(
                "refused {} key_id={}",
                code,
                sanitize(&key.id)
            )),
        }
    }
}

/// What every request handler shares.
pub struct State {
    pub(crate) source: Source,
    /// Where rate-limit decisions are made.
    pub(crate) limits: super::limits::Limits,
    /// 429s per key id, for `/metrics`.
    pub(crate) limit_refusals: super::limits::Refusals,
    /// Access tokens (`--resource` and `--issuer`), when on.
    pub(crate) tokens: Option<Arc<super::oauth::Tokens>>,
    /// `--authorization-server`, when on.
    pub(crate) bridge: Option<Arc<super::bridge::Bridge>>,
    /// `--max-stale`: past this long without reaching a shared store, /auth answers 503.
    pub(crate) max_stale: Duration,
    pub(crate) require: Vec<String>,
    pub(crate) tool_permissions: bool,
    /// `--trust-routing-headers`: without a body, decide from `Mcp-Method`/`Mcp-Name`.
    pub(crate) trust_routing_headers: bool,
    pub(crate) usage: Tracker,
    pub(crate) metrics: Arc<Metrics>,
    /// How long a request head or body may take to arrive.
    pub(crate) read_timeout: Duration,
    pub(crate) log: Log,
    pub(crate) draining: AtomicBool,
    /// Bodies being read at once (with `--tool-permissions`): each may hold up to 1 MiB,
    /// so this bounds their memory across all connections, not just per connection.
    pub(crate) body_permits: tokio::sync::Semaphore,
    pub(crate) reload_error: Arc<Mutex<Option<String>>>,
}

/// Where the verifier comes from: a file `serve` watches, or a Redis store it follows.
pub enum Source {
    /// A verifier file.
    File(Watched),
    /// A shared store (`--verifier redis://…`).
    Store(crate::fleet::follower::Follower),
}

impl Source {
    /// The verifier answering now.
    pub fn current(&self) -> Arc<Verifier> {
        match self {
            Source::File(w) => w.current(),
            Source::Store(f) => f
                .current()
                .expect("serve starts from a store only once a verifier was loaded"),
        }
    }

    /// The file's path or the store's URL, for logs.
    pub fn describe(&self) -> String {
        match self {
            Source::File(w) => w.path().display().to_string(),
            Source::Store(f) => f.url().to_string(),
        }
    }

    /// The pinned fingerprint, if any.
    pub fn trust(&self) -> Option<&str> {
        match self {
            Source::File(w) => w.trust(),
            Source::Store(f) => Some(f.trust()),
        }
    }

    /// How long ago a shared store was last reached (`None` for a file, which is always
    /// at hand).
    pub fn age(&self) -> Option<Duration> {
        match self {
            Source::File(_) => None,
            Source::Store(f) => Some(f.age().unwrap_or(Duration::MAX)),
        }
    }
}

/// Most request bodies read at the same time (64 MiB at most in flight).
pub(crate) const MAX_BODIES_IN_FLIGHT: usize = 64;

impl State {
    pub(crate) fn last_reload_error(&self) -> Option<String> {
        self.reload_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}
