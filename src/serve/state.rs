//! What every request handler shares: the [`State`] (with the refusal log of `log`), and the bounds
//! on what a request may bring.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use mcp_key_vault::verify::{Verifier, Watched};

pub(crate) use super::log::Log;
use super::metrics::Metrics;
use super::usage::Tracker;

/// Largest request head (request line and headers) accepted; larger gets 431.
pub const MAX_HEAD_BYTES: usize = 32 * 1024;

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
    pub(crate) log: Arc<Log>,
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
