//! Offline verification of presented keys through keyed hashes, for the `verify` command
//! and for servers that link this crate.
//!
//! Invariant: a presented key is never compared with a stored key. It is hashed with
//! HMAC-SHA256 under the vault's `hash_key`, and the digest is compared in constant time
//! ([`subtle::ConstantTimeEq`]) with the stored one. A wrong secret behind a known id and
//! an unknown key give the same verdict, [`Code::NotFound`].
//!
//! ```
//! use mcp_key_manager::verify::{api_key_from_headers, Code, Verifier};
//! # let dir = tempfile::tempdir().unwrap();
//! # let path = dir.path().join("verifier.json");
//! # std::fs::write(&path, r#"{"format":"mcp-key-verifier","version":1,"algorithm":"hmac-sha256",
//! #   "hash_key":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","generated_at":"2026-01-01T00:00:00Z",
//! #   "keys":[]}"#).unwrap();
//! let verifier = Verifier::from_file(&path)?;
//! let presented = api_key_from_headers(None, Some("Bearer mcp_0123456789abcdef_00"));
//! let verdict = verifier.verify(presented.unwrap_or(""), &["generate"]);
//! assert_eq!(verdict.code, Code::Malformed);
//! assert!(!verdict.is_valid());
//! # Ok::<(), mcp_key_manager::Error>(())
//! ```

use std::collections::HashMap;
use std::path::Path;

mod watch;
pub use watch::{ReloadEvent, Watched, DEFAULT_INTERVAL as WATCH_INTERVAL};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::error::{Error, Result};
use crate::keyfmt::{self, Shape};
use crate::secret::SecretKey;
use crate::vault::records::{fmt_time, parse_time};
use crate::vault::{Status, Vault};

/// The `format` field of a verifier file.
pub const VERIFIER_FORMAT: &str = "mcp-key-verifier";
/// Largest verifier file read (about 200 bytes per key).
pub const MAX_VERIFIER_BYTES: u64 = 256 * 1024 * 1024;

/// The outcome of one verification, in the order the checks are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// The key is not of a recognised shape.
    Malformed,
    /// No key with this id and secret is known (a wrong secret looks the same).
    NotFound,
    /// The key was revoked.
    Revoked,
    /// The key is past its expiry.
    Expired,
    /// The key lacks a required permission.
    InsufficientPermissions,
    /// The key is good.
    Valid,
}

impl Code {
    /// The upper-case code used in every output.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::Malformed => "MALFORMED",
            Code::NotFound => "NOT_FOUND",
            Code::Revoked => "REVOKED",
            Code::Expired => "EXPIRED",
            Code::InsufficientPermissions => "INSUFFICIENT_PERMISSIONS",
            Code::Valid => "VALID",
        }
    }
}

/// What the verifier knows about one key: nothing from which the key can be computed.
#[derive(Debug, Clone)]
pub struct KeyInfo {
    /// Public id.
    pub id: String,
    /// Name: from the vault, or from a verifier file written with names (`publish --names`).
    pub name: Option<String>,
    hash: [u8; 32],
    revoked: bool,
    /// Expiry.
    pub expires_at: Option<DateTime<Utc>>,
    /// Permissions.
    pub permissions: Vec<String>,
}

/// A verdict: the code, and the key it concerns when one was identified.
#[derive(Debug, Clone, Copy)]
pub struct Verdict<'a> {
    /// The outcome.
    pub code: Code,
    /// The matched key (absent for `MALFORMED` and `NOT_FOUND`).
    pub key: Option<&'a KeyInfo>,
}

impl Verdict<'_> {
    /// Whether the key may be accepted.
    pub fn is_valid(&self) -> bool {
        self.code == Code::Valid
    }
}

/// What one verification of a modern key reads, packed next to its id in the lookup table,
/// so that a lookup in a set of 100,000 keys costs one or two cache misses rather than one
/// per heap allocation of a [`KeyInfo`] (id, permissions, each permission's string).
#[derive(Clone, Copy)]
struct Hot {
    hash: [u8; 32],
    /// Expiry as (Unix seconds, nanoseconds); `None` for never.
    expires: Option<(i64, u32)>,
    /// Bit `b` set: the key has permission `perm_names[b]`. Only meaningful with `perm_bits`.
    perms: u64,
    index: u32,
    revoked: bool,
}

/// The hash an unknown id's digest is compared with, so that it costs what a known id's
/// comparison costs. No digest equals it in practice (and a match would still be refused:
/// the id must also be found).
const UNKNOWN_ID_HASH: [u8; 32] = [0x5a; 32];

/// Verifies keys against a set of keyed hashes. Lookups are O(1): by the id inside a key,
/// or by keyed hash for keys imported from the Python tool.
pub struct Verifier {
    mac: Hmac<Sha256>,
    hash_key: SecretKey,
    /// The vault revision this set of keys was written from (0 when unknown).
    revision: u64,
    keys: Vec<KeyInfo>,
    by_id: HashMap<u64, Hot>,
    by_hash: HashMap<[u8; 32], usize>,
    /// Distinct permission names, when there are at most 64 (then `Hot::perms` is exact).
    perm_names: Vec<String>,
    perm_bits: bool,
}

fn time_key(t: &DateTime<Utc>) -> (i64, u32) {
    (t.timestamp(), t.timestamp_subsec_nanos())
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("revision", &self.revision)
            .field("keys", &self.keys.len())
            .finish_non_exhaustive()
    }
}

/// What a verifier keeps of one record: read in place where it is still encoded (only what
/// a verifier keeps is copied), or copied from the record decoded earlier.
fn key_info(look: &crate::vault::keyset::Look<'_>, dict: &[crate::vault::Permission]) -> KeyInfo {
    use crate::vault::keyset::Look;
    match look {
        Look::Record(k) => KeyInfo {
            id: k.id.to_string(),
            name: Some(k.name.clone()),
            hash: k.hash.0,
            revoked: k.revoked_at.is_some(),
            expires_at: k.expires_at,
            permissions: k
                .permissions
                .iter()
                .map(|p| p.as_str().to_string())
                .collect(),
        },
        Look::InPlace(r) => KeyInfo {
            id: r.id.as_str(&mut [0u8; 16]).to_string(),
            name: Some(r.name.to_string()),
            hash: *r.hash,
            revoked: r.revoked_at.is_some(),
            expires_at: r.expires_at.map(crate::vault::v2::codec::datetime),
            permissions: r
                .permission_indexes()
                .map(|i| dict[i].as_str().to_string())
                .collect(),
        },
    }
}

fn id_number(id: &str) -> Option<u64> {
    keyfmt::is_id(id)
        .then(|| u64::from_str_radix(id, 16).ok())
        .flatten()
}

impl Verifier {
    fn build(hash_key: SecretKey, revision: u64, keys: Vec<KeyInfo>) -> Verifier {
        // At most 65 names are collected: past 64 the bitmask is off and the slow path is
        // used, so a hostile file with millions of permissions costs linear time.
        let mut perm_names: Vec<String> = Vec::new();
        'all: for k in &keys {
            for p in &k.permissions {
                if !perm_names.contains(p) {
                    perm_names.push(p.clone());
                    if perm_names.len() > 64 {
                        break 'all;
                    }
                }
            }
        }
        let perm_bits = perm_names.len() <= 64;
        let mut by_id = HashMap::with_capacity(keys.len());
        let mut by_hash = HashMap::new();
        for (i, k) in keys.iter().enumerate() {
            match id_number(&k.id) {
                Some(n) => {
                    let perms = if perm_bits {
                        k.permissions.iter().fold(0u64, |m, p| {
                            m | perm_names.iter().position(|q| q == p).map_or(0, |b| 1 << b)
                        })
                    } else {
                        0
                    };
                    by_id.insert(
                        n,
                        Hot {
                            hash: k.hash,
                            expires: k.expires_at.as_ref().map(time_key),
                            perms,
                            index: u32::try_from(i).expect("fewer than 2^32 keys"),
                            revoked: k.revoked,
                        },
                    );
                }
                None => {
                    by_hash.insert(k.hash, i);
                }
            }
            // Imported keys keep an id of the old form; they are found by hash. A modern
            // id can also hold an imported (legacy-shaped) key, so index those by hash too.
            by_hash.entry(k.hash).or_insert(i);
        }
        let mac = <Hmac<Sha256> as Mac>::new_from_slice(hash_key.expose())
            .expect("HMAC accepts keys of any length");
        Verifier {
            mac,
            hash_key,
            revision,
            keys,
            by_id,
            by_hash,
            perm_names,
            perm_bits,
        }
    }

    /// A verifier over every key of an unlocked vault.
    ///
    /// ```
    /// use mcp_key_manager::vault::{KdfParams, NewKey, Vault};
    /// use mcp_key_manager::verify::{Code, Verifier};
    /// use mcp_key_manager::SecretString;
    ///
    /// // A throwaway vault with cheap KDF settings (the CLI refuses these for real vaults).
    /// let cheap = KdfParams { memory_kib: 8, iterations: 1, parallelism: 1 };
    /// let mut vault = Vault::create(&SecretString::new("example".into()), cheap)?;
    /// let spec = NewKey {
    ///     name: "server".into(),
    ///     description: String::new(),
    ///     expires_at: None,
    ///     permissions: vec!["generate".parse().unwrap()],
    /// };
    /// let (_, key) = vault.create_key(spec, chrono::Utc::now());
    ///
    /// let verifier = Verifier::from_vault(&vault);
    /// assert!(verifier.verify(key.expose(), &["generate"]).is_valid());
    /// assert_eq!(verifier.verify(key.expose(), &["admin"]).code, Code::InsufficientPermissions);
    /// # Ok::<(), mcp_key_manager::Error>(())
    /// ```
    pub fn from_vault(vault: &Vault) -> Verifier {
        let dict = vault.keys().dict();
        let keys = vault.keys().looks().map(|l| key_info(&l, dict)).collect();
        Verifier::build(vault.hash_key().duplicate(), vault.revision(), keys)
    }

    /// A verifier of only the records the `presented` keys could match — the record with a
    /// presented modern key's id, and every record whose keyed hash is a presented key's —
    /// so every verdict for those keys is the one [`Verifier::from_vault`] gives, without
    /// copying 100,000 records to check one key (what `verify` does against a vault).
    pub fn from_vault_for(vault: &Vault, presented: &[&str]) -> Verifier {
        if presented.len() >= vault.keys().len() / 4 {
            // Most records would be copied anyway: skip the keyed hash of each key here.
            return Verifier::from_vault(vault);
        }
        let mut ids = std::collections::HashSet::new();
        let mut hashes = std::collections::HashSet::new();
        for key in presented {
            if let Shape::Modern { id } = keyfmt::classify(key) {
                ids.insert(id);
            }
            hashes.insert(vault.keyed_hash(key).0);
        }
        let all = vault.keys();
        let dict = all.dict();
        let keys = (0..all.len())
            .filter(|&i| ids.contains(all.id(i)) || hashes.contains(&all.hash(i).0))
            .map(|i| key_info(&all.look(i), dict))
            .collect();
        Verifier::build(vault.hash_key().duplicate(), vault.revision(), keys)
    }

    /// The same verifier, labelled with the vault `revision` it was made from (what
    /// [`Verifier::to_json`] writes and [`Verifier::revision`] reports).
    #[must_use]
    pub fn with_revision(mut self, revision: u64) -> Verifier {
        self.revision = revision;
        self
    }

    /// The vault revision this verifier was written from; 0 for a file without one.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// Every key known, in file order.
    pub fn keys(&self) -> &[KeyInfo] {
        &self.keys
    }

    /// Whether any key carries a name (a file written with `publish --names`).
    pub fn has_names(&self) -> bool {
        self.keys.iter().any(|k| k.name.is_some())
    }

    /// Loads a verifier file written by `export-verifier`.
    ///
    /// # Errors
    /// [`Error::Io`] if it cannot be read, [`Error::Corrupt`] if it is not a verifier file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Verifier> {
        let path = path.as_ref();
        let bytes = crate::fsio::read_bounded(path, MAX_VERIFIER_BYTES, "verifier file")?
            .ok_or_else(|| {
                Error::io(
                    "read",
                    path,
                    std::io::Error::from(std::io::ErrorKind::NotFound),
                )
            })?;
        Verifier::from_json(&bytes)
    }

    /// Parses the bytes of a verifier file.
    ///
    /// # Errors
    /// [`Error::Corrupt`] if it is not a version-1 verifier file.
    pub fn from_json(bytes: &[u8]) -> Result<Verifier> {
        let f: VerifierFile = serde_json::from_slice(bytes).map_err(|e| {
            Error::corrupt(format!(
                "not a verifier file ({}); write one with `mcp-key-manager \
                 export-verifier --out PATH`",
                crate::error::json_problem(&e)
            ))
        })?;
        if f.format != VERIFIER_FORMAT || f.version != 1 || f.algorithm != "hmac-sha256" {
            return Err(Error::corrupt(
                "unsupported verifier file (expected mcp-key-verifier version 1, hmac-sha256)",
            ));
        }
        let hk = zeroize::Zeroizing::new(
            B64.decode(&f.hash_key)
                .map_err(|_| Error::corrupt("the verifier's hash_key is not base64"))?,
        );
        let hk: [u8; 32] = hk[..]
            .try_into()
            .map_err(|_| Error::corrupt("the verifier's hash_key is not 32 bytes"))?;
        if parse_time(&f.generated_at).is_none() {
            return Err(Error::corrupt(
                "the verifier's generated_at is not an RFC 3339 time",
            ));
        }
        let mut seen = std::collections::HashSet::with_capacity(f.keys.len());
        let mut keys = Vec::with_capacity(f.keys.len());
        for k in f.keys {
            let id = crate::display::sanitize(&k.id);
            if !seen.insert(k.id.clone()) {
                return Err(Error::corrupt(format!(
                    "the verifier has two entries with the id {id}"
                )));
            }
            let hash = hash_from_hex(&k.hash).ok_or_else(|| {
                Error::corrupt(format!("the verifier entry {id} has a malformed hash"))
            })?;
            let expires_at = match k.expires_at.as_deref() {
                None => None,
                Some(s) => Some(parse_time(s).ok_or_else(|| {
                    Error::corrupt(format!(
                        "the verifier entry {id} has a malformed expires_at"
                    ))
                })?),
            };
            keys.push(KeyInfo {
                id: k.id,
                name: k.name,
                hash,
                revoked: k.status == "revoked",
                expires_at,
                permissions: k.permissions,
            });
        }
        Ok(Verifier::build(SecretKey::new(hk), f.revision, keys))
    }

    /// The verifier file's bytes (pretty JSON). Holds ids, keyed hashes, the hash key,
    /// status, expiry and permissions: nothing from which a key can be computed.
    /// Its `revision` is [`Verifier::revision`]; names are left out (see
    /// [`Verifier::to_json_with`]).
    pub fn to_json(&self, now: DateTime<Utc>) -> Vec<u8> {
        self.to_json_with(now, self.revision, false)
    }

    /// As [`Verifier::to_json`], with the `revision` to write and whether key names are
    /// included (`publish --names`: names help server logs, and are left out by default
    /// because a name may say more about its holder than the id does).
    pub fn to_json_with(&self, now: DateTime<Utc>, revision: u64, include_names: bool) -> Vec<u8> {
        let f = VerifierFile {
            format: VERIFIER_FORMAT.into(),
            version: 1,
            algorithm: "hmac-sha256".into(),
            hash_key: B64.encode(self.hash_key.expose()),
            generated_at: fmt_time(&now),
            revision,
            keys: self
                .keys
                .iter()
                .map(|k| VerifierEntry {
                    id: k.id.clone(),
                    hash: crate::rng::hex(&k.hash),
                    status: self.status(k, now).as_str().into(),
                    expires_at: k.expires_at.as_ref().map(fmt_time),
                    permissions: k.permissions.clone(),
                    name: if include_names { k.name.clone() } else { None },
                })
                .collect(),
        };
        let mut out = serde_json::to_vec_pretty(&f).expect("serializing plain structs cannot fail");
        out.push(b'\n');
        out
    }

    fn status(&self, k: &KeyInfo, now: DateTime<Utc>) -> Status {
        if k.revoked {
            Status::Revoked
        } else if k.expires_at.is_some_and(|e| e <= now) {
            Status::Expired
        } else {
            Status::Active
        }
    }

    /// Number of keys known.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no key is known.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Verifies `key` at the current time, requiring every permission in `required`.
    ///
    /// The checks run in the order of [`Code`]: shape, existence (by keyed hash, in
    /// constant time), revocation, expiry, permissions. See [`Verifier::from_vault`] for an
    /// example.
    pub fn verify(&self, key: &str, required: &[&str]) -> Verdict<'_> {
        self.verify_at(key, required, Utc::now())
    }

    /// Verifies `key` as of `now`.
    pub fn verify_at(&self, key: &str, required: &[&str], now: DateTime<Utc>) -> Verdict<'_> {
        let not_found = Verdict {
            code: Code::NotFound,
            key: None,
        };
        let digest = || -> [u8; 32] {
            let mut mac = self.mac.clone();
            mac.update(key.as_bytes());
            mac.finalize().into_bytes().into()
        };
        let info = match keyfmt::classify(key) {
            Shape::Malformed => {
                return Verdict {
                    code: Code::Malformed,
                    key: None,
                }
            }
            Shape::Modern { id } => {
                // An unknown id and a wrong secret behind a known one do the same work: the
                // digest, one lookup, one constant-time comparison (against a hash no key
                // has, for an unknown id), one branch on both results. Timing then tells an
                // attacker nothing about which ids exist (measured: `cargo bench --bench
                // timing`).
                let d = digest();
                let hot = id_number(id).and_then(|n| self.by_id.get(&n));
                let stored = hot.map_or(&UNKNOWN_ID_HASH, |h| &h.hash);
                let (found, equal) = (hot.is_some(), hashes_equal(&d, stored));
                let Some(hot) = hot.filter(|_| found & equal) else {
                    return not_found;
                };
                let info = &self.keys[hot.index as usize];
                if !self.perm_bits {
                    return self.judge(info, required, now);
                }
                let code = if hot.revoked {
                    Code::Revoked
                } else if hot.expires.is_some_and(|e| e <= time_key(&now)) {
                    Code::Expired
                } else if !required.iter().all(|r| {
                    self.perm_names
                        .iter()
                        .position(|q| q == r)
                        .is_some_and(|b| hot.perms & (1 << b) != 0)
                }) {
                    Code::InsufficientPermissions
                } else {
                    Code::Valid
                };
                return Verdict {
                    code,
                    key: Some(info),
                };
            }
            Shape::Legacy => {
                // The lookup is by keyed hash: its timing can only tell an attacker about
                // digests under a key they do not have.
                let d = digest();
                match self.by_hash.get(&d) {
                    Some(&i) if hashes_equal(&d, &self.keys[i].hash) => &self.keys[i],
                    _ => return not_found,
                }
            }
        };
        self.judge(info, required, now)
    }

    fn judge<'a>(&self, info: &'a KeyInfo, required: &[&str], now: DateTime<Utc>) -> Verdict<'a> {
        let code = if info.revoked {
            Code::Revoked
        } else if info.expires_at.is_some_and(|e| e <= now) {
            Code::Expired
        } else if !required
            .iter()
            .all(|r| info.permissions.iter().any(|p| p == r))
        {
            Code::InsufficientPermissions
        } else {
            Code::Valid
        };
        Verdict {
            code,
            key: Some(info),
        }
    }
}

/// A stored keyed hash (64 hex characters) as bytes.
pub(crate) fn hash_from_hex(s: &str) -> Option<[u8; 32]> {
    crate::rng::unhex(s)?.try_into().ok()
}

// Unknown fields are ignored, at the top level and in entries: a newer writer may add
// fields, and an older reader must keep working with its file (docs/verifier.md).
#[derive(Serialize, Deserialize)]
struct VerifierFile {
    format: String,
    version: u32,
    algorithm: String,
    hash_key: String,
    generated_at: String,
    /// Absent in files of older releases: revision 0.
    #[serde(default)]
    revision: u64,
    keys: Vec<VerifierEntry>,
}

#[derive(Serialize, Deserialize)]
struct VerifierEntry {
    id: String,
    hash: String,
    status: String,
    #[serde(default)]
    expires_at: Option<String>,
    #[serde(default)]
    permissions: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
}

/// Extracts the presented key from request headers: `X-API-Key: <key>` or
/// `Authorization: Bearer <key>` (scheme case-insensitive, surrounding whitespace
/// trimmed). Anything else — another scheme, an empty key, a key with inner whitespace —
/// gives `None`. When both headers are present, `X-API-Key` wins.
///
/// ```
/// use mcp_key_manager::verify::api_key_from_headers;
/// assert_eq!(api_key_from_headers(Some("  abc  "), None), Some("abc"));
/// assert_eq!(api_key_from_headers(None, Some("bearer xyz")), Some("xyz"));
/// assert_eq!(api_key_from_headers(None, Some("Basic xyz")), None);
/// assert_eq!(api_key_from_headers(Some(""), None), None);
/// ```
pub fn api_key_from_headers<'a>(
    x_api_key: Option<&'a str>,
    authorization: Option<&'a str>,
) -> Option<&'a str> {
    let clean = |s: &'a str| -> Option<&'a str> {
        let s = s.trim();
        (!s.is_empty() && !s.chars().any(char::is_whitespace)).then_some(s)
    };
    if let Some(k) = x_api_key {
        return clean(k);
    }
    let auth = authorization?.trim();
    let (scheme, rest) = auth.split_once([' ', '\t'])?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    clean(rest)
}

/// The comparison used for hashes, exposed so a test can pin that it is `subtle`'s
/// constant-time equality.
pub fn hashes_equal(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.ct_eq(b).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::SecretString;
    use crate::vault::{KdfParams, NewKey, Vault};
    use chrono::Duration;

    fn cheap_vault() -> (Vault, Vec<(String, SecretString)>) {
        let weak = KdfParams {
            memory_kib: 8,
            iterations: 1,
            parallelism: 1,
        };
        let mut v = Vault::create(&SecretString::new("p".into()), weak).unwrap();
        let now = Utc::now();
        let mut keys = Vec::new();
        for (name, perms, exp) in [
            (
                "good",
                vec!["generate", "info"],
                Some(now + Duration::days(3)),
            ),
            ("revoked", vec!["generate"], None),
            (
                "expired",
                vec!["generate"],
                Some(now - Duration::seconds(1)),
            ),
        ] {
            let (i, key) = v.create_key(
                NewKey {
                    name: name.into(),
                    description: String::new(),
                    expires_at: exp,
                    permissions: perms.into_iter().map(|p| p.parse().unwrap()).collect(),
                },
                now,
            );
            keys.push((v.keys()[i].id.to_string(), key));
        }
        v.payload_mut_unchecked().keys[1].revoked_at = Some(now);
        (v, keys)
    }

    #[test]
    fn every_code_through_the_library() {
        let (v, keys) = cheap_vault();
        let ver = Verifier::from_vault(&v);
        let good = keys[0].1.expose();
        assert_eq!(ver.verify(good, &[]).code, Code::Valid);
        assert_eq!(ver.verify(good, &["info"]).code, Code::Valid);
        assert_eq!(
            ver.verify(good, &["info", "admin"]).code,
            Code::InsufficientPermissions
        );
        assert_eq!(ver.verify(keys[1].1.expose(), &[]).code, Code::Revoked);
        assert_eq!(ver.verify(keys[2].1.expose(), &[]).code, Code::Expired);
        let wrong = format!("{}{}", &good[..21], "0".repeat(64));
        let wrong_v = ver.verify(&wrong, &[]);
        assert_eq!(wrong_v.code, Code::NotFound);
        assert!(
            wrong_v.key.is_none(),
            "a wrong secret reveals nothing about the id"
        );
        let unknown = format!("mcp_{}_{}", "f".repeat(16), "0".repeat(64));
        assert_eq!(ver.verify(&unknown, &[]).code, Code::NotFound);
        assert_eq!(ver.verify("mcp_x", &[]).code, Code::Malformed);
        assert_eq!(ver.verify("", &[]).code, Code::Malformed);
        // Revoked is reported before expired and before permissions.
        assert_eq!(
            ver.verify(keys[1].1.expose(), &["nope"]).code,
            Code::Revoked
        );
    }

    /// A verifier made from records read in place is the one made from decoded records:
    /// the same keys, fields and verdicts.
    #[test]
    fn records_read_in_place_make_the_same_verifier() {
        let (v, keys) = cheap_vault();
        let reopened = Vault::open(&v.to_bytes(), &SecretString::new("p".into())).unwrap();
        assert_eq!(reopened.keys().decoded_count(), 0);
        let in_place = Verifier::from_vault(&reopened);
        assert_eq!(reopened.keys().decoded_count(), 0, "nothing decoded for it");
        let decoded = Verifier::from_vault(&v);
        assert_eq!(
            format!("{:?}", in_place.keys()),
            format!("{:?}", decoded.keys())
        );
        let now = Utc::now();
        assert_eq!(in_place.to_json(now), decoded.to_json(now));
        for (_, k) in &keys {
            for perms in [&[][..], &["info"][..], &["admin"][..]] {
                assert_eq!(
                    in_place.verify(k.expose(), perms).code,
                    decoded.verify(k.expose(), perms).code
                );
            }
        }
    }

    /// A verifier of only the records some keys could match gives those keys the verdicts
    /// (code and key) of the verifier of every record: valid, revoked, expired, wrong
    /// secret behind a known id, unknown id, imported keys by hash, malformed; alone and
    /// together.
    #[test]
    fn a_verifier_for_some_keys_judges_them_as_the_whole_one() {
        let (mut v, keys) = cheap_vault();
        let now = Utc::now();
        for i in 0..60 {
            v.create_key(
                NewKey {
                    name: format!("filler {i}"),
                    description: String::new(),
                    expires_at: None,
                    permissions: vec!["info".parse().unwrap()],
                },
                now,
            );
        }
        let legacy = "sk-imported-0123456789abcdefghijklmnopqrstuvwxyz";
        let hash = v.keyed_hash(legacy);
        v.payload_mut_unchecked()
            .keys
            .push(crate::vault::KeyRecord {
                id: "old-id".into(),
                name: "imported".into(),
                description: String::new(),
                created_at: now,
                expires_at: None,
                revoked_at: None,
                permissions: vec!["info".parse().unwrap()],
                metadata: serde_json::Map::new(),
                secret: SecretString::new(legacy.into()),
                hash,
                rotated_from: None,
                rotated_to: None,
            });
        let v = Vault::open(&v.to_bytes(), &SecretString::new("p".into())).unwrap();
        let good = keys[0].1.expose().to_string();
        let presented: Vec<String> = vec![
            good.clone(),
            keys[1].1.expose().into(),
            keys[2].1.expose().into(),
            format!("{}{}", &good[..21], "0".repeat(64)),
            format!("mcp_{}_{}", "f".repeat(16), "0".repeat(64)),
            legacy.into(),
            "sk-imported-but-not-this-one-0123456789abcdefghij".into(),
            "mcp_x".into(),
        ];
        let whole = Verifier::from_vault(&v);
        let judged = |ver: &Verifier, k: &str| {
            let d = ver.verify_at(k, &["info"], now);
            (
                d.code,
                d.key
                    .map(|i| (i.id.clone(), i.name.clone(), i.permissions.clone())),
            )
        };
        let all: Vec<&str> = presented.iter().map(String::as_str).collect();
        let together = Verifier::from_vault_for(&v, &all);
        assert!(together.keys().len() < v.keys().len(), "a subset");
        for k in &all {
            assert_eq!(judged(&together, k), judged(&whole, k), "{k}");
            let alone = Verifier::from_vault_for(&v, &[k]);
            assert!(
                alone.keys().len() <= 1,
                "{k}: {} records",
                alone.keys().len()
            );
            assert_eq!(judged(&alone, k), judged(&whole, k), "{k}");
        }
        assert_eq!(
            judged(&whole, legacy).0,
            Code::Valid,
            "the imported key is found"
        );
        assert_eq!(judged(&whole, &good).0, Code::Valid);
    }

    #[test]
    fn verifier_file_round_trip_and_no_secret() {
        let (v, keys) = cheap_vault();
        let ver = Verifier::from_vault(&v);
        let bytes = ver.to_json(Utc::now());
        let text = String::from_utf8(bytes.clone()).unwrap();
        for (_, k) in &keys {
            assert!(!text.contains(k.expose()));
            assert!(!text.contains(&k.expose()[21..]));
        }
        let back = Verifier::from_json(&bytes).unwrap();
        for (i, (_, k)) in keys.iter().enumerate() {
            assert_eq!(
                back.verify(k.expose(), &[]).code,
                ver.verify(k.expose(), &[]).code,
                "key {i}"
            );
        }
        assert!(Verifier::from_json(b"{}").is_err());
        let other = text.replace("mcp-key-verifier", "something-else");
        assert!(matches!(
            Verifier::from_json(other.as_bytes()),
            Err(Error::Corrupt(_))
        ));
    }

    #[test]
    fn revision_names_and_unknown_fields() {
        let (mut v, keys) = cheap_vault();
        v.payload_mut_unchecked().keys[0].name = "ci-bot".into();
        let ver = Verifier::from_vault(&v).with_revision(17);
        let now = Utc::now();
        // Names only on request; the revision given is the one written.
        let plain: serde_json::Value = serde_json::from_slice(&ver.to_json(now)).unwrap();
        assert_eq!(plain["revision"], 17);
        assert!(plain["keys"][0].get("name").is_none());
        let named = ver.to_json_with(now, 18, true);
        let back = Verifier::from_json(&named).unwrap();
        assert_eq!(back.revision(), 18);
        assert!(back.has_names());
        let verdict = back.verify(keys[0].1.expose(), &[]);
        assert_eq!(verdict.key.unwrap().name.as_deref(), Some("ci-bot"));
        let unnamed = Verifier::from_json(&ver.to_json(now)).unwrap();
        assert!(!unnamed.has_names());
        assert_eq!(unnamed.keys()[0].name, None);

        // A newer writer's fields are ignored; a file without revision is revision 0.
        let mut f: serde_json::Value = serde_json::from_slice(&ver.to_json(now)).unwrap();
        f["comment"] = "from the future".into();
        f["keys"][0]["labels"] = serde_json::json!({"team": "infra"});
        f.as_object_mut().unwrap().remove("revision");
        let old = Verifier::from_json(&serde_json::to_vec(&f).unwrap()).unwrap();
        assert_eq!(old.revision(), 0);
        assert!(old.verify(keys[0].1.expose(), &[]).is_valid());

        // Rejected: duplicate ids, a bad generated_at, a negative revision.
        let mut dup = f.clone();
        let first = dup["keys"][0].clone();
        dup["keys"].as_array_mut().unwrap().push(first);
        let e = Verifier::from_json(&serde_json::to_vec(&dup).unwrap()).unwrap_err();
        assert!(e.to_string().contains("two entries"), "{e}");
        let mut bad_time = f.clone();
        bad_time["generated_at"] = "2026-02-30T00:00:00Z".into();
        assert!(Verifier::from_json(&serde_json::to_vec(&bad_time).unwrap()).is_err());
        let mut negative = f;
        negative["revision"] = (-1).into();
        assert!(Verifier::from_json(&serde_json::to_vec(&negative).unwrap()).is_err());
    }

    #[test]
    fn legacy_keys_are_found_by_keyed_hash() {
        let (mut v, _) = cheap_vault();
        let legacy = "ab".repeat(32);
        let hash = v.keyed_hash(&legacy);
        let mut rec = serde_json::from_value::<crate::vault::KeyRecord>(serde_json::json!({
            "id": "legacy-id", "name": "old", "created_at": "2025-01-01T00:00:00Z",
            "secret": legacy, "hash": hash, "permissions": ["generate"]
        }))
        .unwrap();
        rec.description = "imported".into();
        v.payload_mut_unchecked().keys.push(rec);
        let ver = Verifier::from_vault(&v);
        let verdict = ver.verify(&legacy, &["generate"]);
        assert_eq!(verdict.code, Code::Valid);
        assert_eq!(verdict.key.unwrap().id, "legacy-id");
        assert_eq!(ver.verify(&"cd".repeat(32), &[]).code, Code::NotFound);
    }

    #[test]
    fn the_hash_comparison_is_constant_time_equality() {
        // `hashes_equal` is subtle's ConstantTimeEq: same answers as ==, and it is the
        // function both lookup paths call (see verify_at).
        let a = [7u8; 32];
        let mut b = a;
        assert!(hashes_equal(&a, &b));
        b[31] ^= 1;
        assert!(!hashes_equal(&a, &b));
        b = a;
        b[0] ^= 0x80;
        assert!(!hashes_equal(&a, &b));
    }

    /// A stored hash that differs from the presented key's digest in one bit, at either
    /// end, is NOT_FOUND for a modern and for a legacy key: the lookup compares whole
    /// digests, never a prefix.
    #[test]
    fn one_bit_off_in_the_stored_hash_is_not_found() {
        for (byte, bit) in [(0usize, 0u8), (31, 7)] {
            let (mut v, keys) = cheap_vault();
            let legacy = "ab".repeat(32);
            let mut rec = serde_json::from_value::<crate::vault::KeyRecord>(serde_json::json!({
                "id": "legacy-id", "name": "old", "created_at": "2025-01-01T00:00:00Z",
                "secret": legacy, "hash": v.keyed_hash(&legacy)
            }))
            .unwrap();
            rec.hash.0[byte] ^= 1 << bit;
            v.payload_mut_unchecked().keys.push(rec);
            v.payload_mut_unchecked().keys[0].hash.0[byte] ^= 1 << bit;
            let ver = Verifier::from_vault(&v);
            assert_eq!(ver.verify(keys[0].1.expose(), &[]).code, Code::NotFound);
            assert_eq!(ver.verify(&legacy, &[]).code, Code::NotFound);
        }
    }

    #[test]
    fn header_extraction() {
        let k = "mcp_0123456789abcdef_00";
        assert_eq!(api_key_from_headers(Some(k), None), Some(k));
        assert_eq!(
            api_key_from_headers(Some(&format!(" {k}\t")), None),
            Some(k)
        );
        assert_eq!(
            api_key_from_headers(None, Some(&format!("Bearer {k}"))),
            Some(k)
        );
        assert_eq!(
            api_key_from_headers(None, Some(&format!("BEARER  {k} "))),
            Some(k)
        );
        assert_eq!(
            api_key_from_headers(None, Some(&format!("bearer\t{k}"))),
            Some(k)
        );
        assert_eq!(api_key_from_headers(Some(k), Some("Bearer other")), Some(k));
        for bad in [
            format!("Basic {k}"),
            format!("Token {k}"),
            "Bearer".to_string(),
            "Bearer ".to_string(),
            format!("Bearer {k} extra"),
            format!("Bearer{k}"),
            String::new(),
        ] {
            assert_eq!(api_key_from_headers(None, Some(&bad)), None, "{bad:?}");
        }
        assert_eq!(api_key_from_headers(Some("   "), None), None);
        assert_eq!(api_key_from_headers(Some("a b"), None), None);
        assert_eq!(api_key_from_headers(None, None), None);
    }
}
