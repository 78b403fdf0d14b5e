//! The plaintext `keys.json` of the Python tool: recognising it, and reading it into
//! records for `import-legacy`.
//!
//! Invariant: [`parse_store`] either returns every record, fully validated, or a list of
//! problems naming each bad record by id, so an import never writes half a store.

use chrono::{DateTime, Local, NaiveDateTime, TimeZone, Utc};
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::display::sanitize;
use crate::keyfmt;
use crate::secret::SecretString;
use crate::types::Permission;

/// Reads a plaintext store, bounded as a vault file is; `None` when there is none.
///
/// # Errors
/// [`ReadError`](crate::error::ReadError) when it cannot be read or is too large.
pub fn read_file(path: &std::path::Path) -> Result<Option<Vec<u8>>, crate::error::ReadError> {
    crate::fsio::read_bounded(path, crate::format::MAX_FILE_BYTES, "key store")
}

/// Whether `bytes` are already an encrypted vault (of either format) rather than a
/// plaintext store.
///
/// # Errors
/// [`OpenError::Corrupt`](crate::error::OpenError::Corrupt) for bytes that are neither.
pub fn is_encrypted_vault(bytes: &[u8]) -> Result<bool, crate::error::OpenError> {
    use crate::v2::{detect, Detected};
    Ok(matches!(detect(bytes)?, Detected::V1(_) | Detected::V2(_)))
}

/// One validated record of the old store.
#[derive(Debug)]
pub struct LegacyRecord {
    /// The id (the map key, equal to `key_id`).
    pub id: String,
    /// The full key as the old tool issued it.
    pub key: SecretString,
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Creation time, converted to UTC.
    pub created_at: DateTime<Utc>,
    /// Expiry, converted to UTC.
    pub expires_at: Option<DateTime<Utc>>,
    /// `is_active`.
    pub active: bool,
    /// Permissions.
    pub permissions: Vec<Permission>,
    /// Metadata object.
    pub metadata: Map<String, Value>,
}

/// Keeps every entry of a JSON object, duplicates included (serde_json's map keeps the last).
struct Entries(Vec<(String, Value)>);

impl<'de> serde::Deserialize<'de> for Entries {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Entries;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object of id -> key record")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Entries, A::Error> {
                let mut v = Vec::new();
                while let Some((k, val)) = m.next_entry::<String, Value>()? {
                    v.push((k, val));
                }
                Ok(Entries(v))
            }
        }
        d.deserialize_map(V)
    }
}

/// Parses a naive local timestamp as Python's `datetime.isoformat()` writes it (with or
/// without microseconds), or an RFC 3339 time with an offset, into UTC.
pub fn parse_legacy_time(s: &str) -> Option<DateTime<Utc>> {
    if let Some(t) = mcp_key_verifier::time::parse(s) {
        return Some(t);
    }
    let naive = NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
        .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f"))
        .ok()?;
    // A time in a daylight-saving gap does not exist locally; take the hour after.
    Local
        .from_local_datetime(&naive)
        .earliest()
        .or_else(|| {
            Local
                .from_local_datetime(&(naive + chrono::Duration::hours(1)))
                .earliest()
        })
        .map(|t| t.with_timezone(&Utc))
}

fn valid_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Reads and validates a whole store.
///
/// # Errors
/// A list of human-readable problems, one per bad record (ids sanitized, no key value).
pub fn parse_store(bytes: &[u8]) -> Result<Vec<LegacyRecord>, Vec<String>> {
    let entries: Entries = serde_json::from_slice(bytes).map_err(|e| {
        vec![format!(
            "the file is not a JSON object of key records ({})",
            crate::error::json_problem(&e)
        )]
    })?;
    let mut problems = Vec::new();
    let mut out: Vec<LegacyRecord> = Vec::new();
    let mut seen_ids = std::collections::HashSet::new();
    let mut seen_keys = std::collections::HashSet::new();
    for (id, value) in entries.0 {
        let shown = sanitize(&keyfmt_display_id(&id));
        if !seen_ids.insert(id.clone()) {
            problems.push(format!("record {shown}: the id appears more than once"));
            continue;
        }
        match parse_record(&id, value) {
            Ok(r) => {
                // Duplicates are found through a digest, so no plain copy of a key is kept.
                let digest: [u8; 32] = Sha256::digest(r.key.expose().as_bytes()).into();
                if !seen_keys.insert(digest) {
                    problems.push(format!(
                        "record {shown}: its key value is the same as another record's"
                    ));
                } else {
                    out.push(r);
                }
            }
            Err(why) => problems.push(format!("record {shown}: {why}")),
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

fn keyfmt_display_id(id: &str) -> String {
    crate::display::truncate(id, 64)
}

fn parse_record(id: &str, value: Value) -> Result<LegacyRecord, String> {
    if !valid_id(id) {
        return Err("the id must be 1-64 characters of [A-Za-z0-9_-]".into());
    }
    let Value::Object(mut r) = value else {
        return Err("the record is not a JSON object".into());
    };
    let mut take_str = |field: &str, required: bool| -> Result<Option<String>, String> {
        match r.remove(field) {
            Some(Value::String(s)) => Ok(Some(s)),
            Some(Value::Null) | None if !required => Ok(None),
            None | Some(Value::Null) => Err(format!("the field {field} is missing")),
            Some(_) => Err(format!("the field {field} is not a string")),
        }
    };
    let key_id = take_str("key_id", false)?;
    if key_id.as_deref().is_some_and(|k| k != id) {
        return Err("its key_id differs from the id it is stored under".into());
    }
    let key = SecretString::new(take_str("key_value", true)?.unwrap_or_default());
    match keyfmt::why_malformed(key.expose()) {
        None => {}
        // Readers would refuse it before any lookup (docs/verifier.md, "Key shapes").
        Some(keyfmt::Reason::Checksum) => {
            return Err(
                "its key_value has the layout of a format-2 key of this tool but not \
                        its checksum; no reader would accept it"
                    .into(),
            )
        }
        Some(keyfmt::Reason::Shape) => {
            return Err(
                "its key_value is not a key (16-256 characters of [A-Za-z0-9_.~+/=-])".into(),
            )
        }
    }
    let name = take_str("name", true)?.unwrap_or_default();
    let description = take_str("description", false)?.unwrap_or_default();
    let created = take_str("created_at", true)?.unwrap_or_default();
    let created_at = parse_legacy_time(&created)
        .ok_or("its created_at is not a date-time like 2025-01-31T12:00:00[.123456]")?;
    let expires_at = match take_str("expires_at", false)? {
        None => None,
        Some(s) => Some(
            parse_legacy_time(&s)
                .ok_or("its expires_at is not a date-time like 2025-01-31T12:00:00[.123456]")?,
        ),
    };
    let active = match r.remove("is_active") {
        None | Some(Value::Null) => true,
        Some(Value::Bool(b)) => b,
        Some(_) => return Err("the field is_active is not true or false".into()),
    };
    let permissions = match r.remove("permissions") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a
            .into_iter()
            .map(|p| match p {
                Value::String(s) => Permission::try_from(s)
                    .map_err(|_| "a permission is not of the form [a-z0-9_.:-]{1,64}"),
                _ => Err("a permission is not a string"),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err("the field permissions is not a list".into()),
    };
    let metadata = match r.remove("metadata") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m,
        Some(_) => return Err("the field metadata is not an object".into()),
    };
    Ok(LegacyRecord {
        id: id.to_string(),
        key,
        name,
        description,
        created_at,
        expires_at,
        active,
        permissions,
        metadata,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn naive_times_with_and_without_microseconds() {
        let a = parse_legacy_time("2025-03-01T12:00:00").unwrap();
        let b = parse_legacy_time("2025-03-01T12:00:00.250000").unwrap();
        assert_eq!((b - a).num_milliseconds(), 250);
        assert!(parse_legacy_time("2025-03-01").is_none());
        assert_eq!(
            parse_legacy_time("2025-03-01T12:00:00+02:00").unwrap(),
            parse_time_utc("2025-03-01T10:00:00Z")
        );
    }

    fn parse_time_utc(s: &str) -> DateTime<Utc> {
        mcp_key_verifier::time::parse(s).unwrap()
    }

    #[test]
    fn duplicate_ids_are_reported() {
        let k = "ab".repeat(32);
        let rec =
            format!(r#"{{"key_value": "{k}", "name": "n", "created_at": "2025-01-01T00:00:00"}}"#);
        let store = format!(r#"{{"a1": {rec}, "a1": {rec}}}"#);
        let problems = parse_store(store.as_bytes()).unwrap_err();
        assert!(
            problems.iter().any(|p| p.contains("more than once")),
            "{problems:?}"
        );
        assert!(!problems.iter().any(|p| p.contains(&k)));
    }
}
