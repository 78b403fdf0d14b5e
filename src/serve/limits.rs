//! Rate limits at `/auth`: per instance (GCRA in this process, the default) or across the
//! fleet (`--limits redis://…`, one Redis script per decision; this instance decides alone
//! while the store is away). Only a request that would be admitted is counted.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use mcp_key_verifier::limit::{Decision, Limiter, RateLimit};

use super::log::log;
use crate::fleet::limits::StoreLimits;

/// Where decisions are made.
pub enum Limits {
    /// In this process.
    Local(Limiter),
    /// In a shared store.
    Store(Arc<StoreLimits>),
}

impl Limits {
    /// Decides a request of key `id` under `limit`.
    pub async fn check(&self, id: &str, limit: RateLimit) -> Decision {
        match self {
            Limits::Local(l) => l.check_now(id, limit),
            Limits::Store(s) => {
                let (d, failure) = s.check(id, limit).await;
                if let Some(e) = failure {
                    log(format_args!(
                        "rate limits: {e}; this instance decides alone for a second"
                    ));
                }
                d
            }
        }
    }

    /// How decisions are made, for the start-up line.
    pub fn describe(&self) -> String {
        match self {
            Limits::Local(_) => "per instance".into(),
            Limits::Store(s) => format!("across the fleet ({})", s.url()),
        }
    }

    /// Decisions made alone because the store was away.
    pub fn fallbacks(&self) -> Option<u64> {
        match self {
            Limits::Local(_) => None,
            Limits::Store(s) => Some(s.fallbacks()),
        }
    }
}

/// Refusals (429) per key id: bounded by the verifier's keys with a limit.
#[derive(Default)]
pub struct Refusals(Mutex<BTreeMap<String, u64>>);

impl Refusals {
    /// Counts one refusal of key `id`.
    pub fn add(&self, id: &str) {
        let mut m = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        match m.get_mut(id) {
            Some(n) => *n += 1,
            None => {
                m.insert(id.to_owned(), 1);
            }
        }
    }

    /// Every key id refused, with its count.
    pub fn snapshot(&self) -> Vec<(String, u64)> {
        let m = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        m.iter().map(|(k, v)| (k.clone(), *v)).collect()
    }
}
