//! `serve`'s log: one line on stderr per event. Never a key, a token or a password.

use std::sync::atomic::{AtomicU64, Ordering};

use chrono::Utc;
use mcp_key_vault::display::sanitize;
use mcp_key_vault::verify::{Code, KeyInfo};

/// One line on stderr: time, `serve:`, the event.
pub(crate) fn log(msg: std::fmt::Arguments<'_>) {
    eprintln!(
        "{} serve: {msg}",
        Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    );
}

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
