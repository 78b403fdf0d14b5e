//! One key record and one history event, as the vault keeps them: the leaf types every
//! other part of the payload (the lazily read record set, the history, the codecs) is
//! built from. Times are UTC, in whole seconds when the tool makes them, and serialize as
//! RFC 3339.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::secret::SecretString;
use crate::types::{EventAction, KeyHash, KeyId, Permission};

/// A key's status at a given moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Usable.
    Active,
    /// Revoked by an administrator (or inactive in the Python tool).
    Revoked,
    /// Past its expiry.
    Expired,
}

impl Status {
    /// The one rule for a key's status, used by the vault, `list`, `verify` and the
    /// [`Verifier`](mcp_key_verifier::Verifier): revoked wins over expired; a key expires at
    /// the instant of its expiry.
    pub fn of(revoked: bool, expires_at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Status {
        if revoked {
            Status::Revoked
        } else if expires_at.is_some_and(|e| e <= now) {
            Status::Expired
        } else {
            Status::Active
        }
    }

    /// The lowercase word used in every output.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::Revoked => "revoked",
            Status::Expired => "expired",
        }
    }
}

/// One API key as the vault stores it.
#[derive(Serialize, Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct KeyRecord {
    /// Public identifier: 16 lowercase hex characters (imported keys keep their old id).
    pub id: KeyId,
    /// Human name.
    pub name: String,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// When it was made.
    #[serde(with = "time")]
    pub created_at: DateTime<Utc>,
    /// When it stops being valid; `None` is never.
    #[serde(with = "time_opt", default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was revoked; `None` if it was not.
    #[serde(with = "time_opt", default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<DateTime<Utc>>,
    /// What the key may do.
    #[serde(default)]
    pub permissions: Vec<Permission>,
    /// Free-form metadata carried over from the Python tool.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// The full key string. Leaves the vault only through `create` and `use`.
    pub secret: SecretString,
    /// HMAC-SHA256(hash_key, full key), lowercase hex on the wire.
    pub hash: KeyHash,
    /// The key this one replaced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotated_from: Option<KeyId>,
    /// The key that replaced this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotated_to: Option<KeyId>,
}

impl KeyRecord {
    /// The status at `now`: revoked wins over expired.
    pub fn status(&self, now: DateTime<Utc>) -> Status {
        Status::of(self.revoked_at.is_some(), self.expires_at, now)
    }

    /// Whether the key holds `p`.
    pub fn has_permission(&self, p: &str) -> bool {
        self.permissions.iter().any(|q| q == p)
    }

    /// Whether the key is not of this tool's formats (it was imported from the Python tool).
    pub fn is_legacy(&self) -> bool {
        !self.id.is_modern() || !is_tool_key(self.secret.expose())
    }

    /// Whether the key expires within `days` days of `now` (and has not yet).
    pub fn expires_within(&self, now: DateTime<Utc>, days: i64) -> bool {
        expires_within(self.expires_at, now, days)
    }
}

/// Whether `key` was made by this tool: it starts with `mcp_` (format 1, as always
/// counted) or is a key of format 2.
pub(crate) fn is_tool_key(key: &str) -> bool {
    key.starts_with("mcp_")
        || matches!(crate::keyfmt::classify(key), crate::keyfmt::Shape::Modern { .. })
}

/// Whether a key expiring at `expires_at` expires within `days` days of `now` (and has not
/// yet).
pub fn expires_within(expires_at: Option<DateTime<Utc>>, now: DateTime<Utc>, days: i64) -> bool {
    let horizon = now
        .checked_add_signed(chrono::Duration::days(days))
        .unwrap_or(DateTime::<Utc>::MAX_UTC);
    expires_at.is_some_and(|e| e > now && e <= horizon)
}

/// One entry of the append-only history.
#[derive(Serialize, Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct Event {
    /// When it happened.
    #[serde(with = "time")]
    pub at: DateTime<Utc>,
    /// What happened.
    pub action: EventAction,
    /// The key it concerns, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<KeyId>,
    /// The key's name at the time, so the events of a deleted key stay readable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A non-secret detail (permissions granted, successor id, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// The current time in whole seconds, as every record and event of the vault keeps it.
pub fn now() -> DateTime<Utc> {
    let t = Utc::now();
    chrono::DurationRound::duration_trunc(t, chrono::Duration::seconds(1)).unwrap_or(t)
}

pub use mcp_key_verifier::time::{format as fmt_time, parse as parse_time};

mod time {
    use super::*;
    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&fmt_time(t))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let s = String::deserialize(d)?;
        parse_time(&s).ok_or_else(|| serde::de::Error::custom("a time is not RFC 3339"))
    }
}

/// Serde for an optional time as RFC 3339 (the vault, verifier and usage files).
pub mod time_opt {
    use super::*;
    /// Writes `None` as null, a time as [`fmt_time`] does.
    pub fn serialize<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&fmt_time(t)),
            None => s.serialize_none(),
        }
    }
    /// Reads null as `None`, a string as [`parse_time`] does.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(None),
            Some(s) => parse_time(&s)
                .map(Some)
                .ok_or_else(|| serde::de::Error::custom("a time is not RFC 3339")),
        }
    }
}
