//! What `serve` knows of one key's use: when it was last presented and how often with which
//! verdict. The shape usage files (`serve/usage.rs`) and the fleet's Redis hashes
//! (`fleet/usage.rs`) both hold, and what `list`, `view` and `check` merge.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What is known about one key's use, in one file or merged over several.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyUsage {
    /// The last time the key was presented and identified (any verdict from `REVOKED` on:
    /// the request named this key with its right secret).
    #[serde(with = "mcp_key_vault::time_opt", default)]
    pub last_used_at: Option<DateTime<Utc>>,
    /// Requests by verdict code (`VALID`, `INSUFFICIENT_PERMISSIONS`, `REVOKED`,
    /// `EXPIRED`). Codes a newer writer adds are kept as they are.
    #[serde(default)]
    pub counts: BTreeMap<String, u64>,
}

impl KeyUsage {
    /// Folds `other` in: the later time, the summed counts.
    pub fn merge(&mut self, other: &KeyUsage) {
        self.last_used_at = self.last_used_at.max(other.last_used_at);
        for (code, n) in &other.counts {
            let c = self.counts.entry(code.clone()).or_default();
            *c = c.saturating_add(*n);
        }
    }
}
