//! The verifier: a set of keyed hashes loaded from a verifier file, and the verdict for a
//! presented key.
//!
//! Invariant: a presented key is never compared with a stored key. It is hashed with
//! HMAC-SHA256 under the file's `hash_key`, and the digest is compared in constant time
//! ([`subtle::ConstantTimeEq`]) with the stored one. A wrong secret behind a known id and
//! an unknown key give the same verdict, [`Code::NotFound`].

use std::collections::HashMap;
use std::path::Path;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::keys::{self, Known, Reason};
use crate::limit::RateLimit;
use crate::permits::permits;
use crate::text::escape_controls;
use crate::time::{format as fmt_time, parse_bounded as parse_time};

/// The largest revision a verifier file may carry: 2^53-1, what every reader (JavaScript's
/// numbers included) holds exactly. A writer never goes past it, so no revision saturates
/// and freezes its readers.
pub const MAX_REVISION: u64 = (1 << 53) - 1;

/// The `format` field of a verifier file.
pub const VERIFIER_FORMAT: &str = "mcp-key-verifier";

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
#[derive(Clone)]
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
    /// The rate limit the vault set for the key, if any.
    pub rate_limit: Option<RateLimit>,
}

impl KeyInfo {
    /// A key as a vault knows it: `hash` is the keyed hash of the full key under the
    /// verifier's hash key.
    pub fn new(
        id: String,
        name: Option<String>,
        hash: [u8; 32],
        revoked: bool,
        expires_at: Option<DateTime<Utc>>,
        permissions: Vec<String>,
    ) -> KeyInfo {
        KeyInfo {
            id,
            name,
            hash,
            revoked,
            expires_at,
            permissions,
            rate_limit: None,
        }
    }

    /// The same key, limited to `limit`.
    #[must_use]
    pub fn with_rate_limit(mut self, limit: Option<RateLimit>) -> KeyInfo {
        self.rate_limit = limit;
        self
    }

    /// Whether the key was revoked.
    pub fn is_revoked(&self) -> bool {
        self.revoked
    }
}

// The keyed hash is left out: it is not a key, but nothing needs it in a log either.
impl std::fmt::Debug for KeyInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyInfo")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("revoked", &self.revoked)
            .field("expires_at", &self.expires_at)
            .field("permissions", &self.permissions)
            .field("rate_limit", &self.rate_limit)
            .finish_non_exhaustive()
    }
}

/// A verdict: the code, and the key it concerns when one was identified.
#[derive(Debug, Clone, Copy)]
pub struct Verdict<'a> {
    /// The outcome.
    pub code: Code,
    /// The matched key (absent for `MALFORMED` and `NOT_FOUND`).
    pub key: Option<&'a KeyInfo>,
    /// Why the key is `MALFORMED` (`CHECKSUM` for a format-2 key with a typo); `None` for
    /// every other code.
    pub reason: Option<Reason>,
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
    hash_key: Zeroizing<[u8; 32]>,
    /// The vault revision this set of keys was written from (0 when unknown).
    revision: u64,
    /// The digest of the vault save it was written from, when the writer gave one.
    save_digest: Option<String>,
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

fn id_number(id: &str) -> Option<u64> {
    keys::is_id(id)
        .then(|| u64::from_str_radix(id, 16).ok())
        .flatten()
}

impl Verifier {
    /// A verifier over `keys`, their hashes keyed with `hash_key`, made from vault
    /// `revision` (what a vault library calls to publish; servers load files instead).
    ///
    /// ```
    /// use mcp_key_verifier::{keys::Reason, Code, KeyInfo, Verifier};
    /// let verifier = Verifier::new(&[7; 32], 1, Vec::<KeyInfo>::new());
    /// assert_eq!(verifier.verify("mcp_0123456789abcdef_00", &[]).code, Code::Malformed);
    /// // A format-2 key with a typo (a `Z` of ...ZxZx91hDRlg became `z`): no lookup needed.
    /// let typo = "mkm_0123456789abcdef_ZxZxZxZxZxZxZxZxZxZxZxZxZxZxZxZxZxZxZxZxzx91hDRlg";
    /// let verdict = verifier.verify(typo, &[]);
    /// assert_eq!((verdict.code, verdict.reason), (Code::Malformed, Some(Reason::Checksum)));
    /// ```
    pub fn new(hash_key: &[u8; 32], revision: u64, keys: Vec<KeyInfo>) -> Verifier {
        Verifier::build(Zeroizing::new(*hash_key), revision, keys)
    }

    /// The keyed hash of `key` under this verifier's hash key: what a key record stores.
    pub fn keyed_hash(&self, key: &str) -> [u8; 32] {
        let mut mac = self.mac.clone();
        mac.update(key.as_bytes());
        mac.finalize().into_bytes().into()
    }

    fn build(hash_key: Zeroizing<[u8; 32]>, revision: u64, keys: Vec<KeyInfo>) -> Verifier {
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
        let mac = <Hmac<Sha256> as Mac>::new_from_slice(&hash_key[..])
            .expect("HMAC accepts keys of any length");
        Verifier {
            mac,
            hash_key,
            revision,
            save_digest: None,
            keys,
            by_id,
            by_hash,
            perm_names,
            perm_bits,
        }
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

    /// The same verifier, labelled with the digest of the vault save it was made from
    /// (64 lowercase hex characters; what [`Verifier::to_json`] writes as `save_digest`).
    ///
    /// # Panics
    /// If `digest` is not 64 lowercase hex characters.
    pub fn with_save_digest(mut self, digest: &str) -> Verifier {
        assert!(
            is_digest(digest),
            "a save digest is 64 lowercase hex characters"
        );
        self.save_digest = Some(digest.to_owned());
        self
    }

    /// The digest of the vault save this verifier was written from, if its file said.
    /// Two verifiers of one revision with different digests come from two saves that
    /// claim the same revision: a vault rolled back and changed again.
    pub fn save_digest(&self) -> Option<&str> {
        self.save_digest.as_deref()
    }

    /// Every key known, in file order.
    pub fn keys(&self) -> &[KeyInfo] {
        &self.keys
    }

    /// The key with id `id`: found through the id index (an imported key's id of the old
    /// form by a scan).
    pub fn key(&self, id: &str) -> Option<&KeyInfo> {
        match id_number(id) {
            Some(n) => {
                let hot = self.by_id.get(&n)?;
                self.keys.get(hot.index as usize).filter(|k| k.id == id)
            }
            None => self.keys.iter().find(|k| k.id == id),
        }
    }

    /// Whether any key carries a name (a file written with `publish --names`).
    pub fn has_names(&self) -> bool {
        self.keys.iter().any(|k| k.name.is_some())
    }

    /// Loads a verifier file written by `export-verifier`.
    ///
    /// # Errors
    /// [`Error::Io`] if it cannot be read, [`Error::Invalid`] if it is not a verifier file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Verifier> {
        let path = path.as_ref();
        let (bytes, _) = crate::fs::read_verifier_file(path)?;
        Verifier::from_json(&bytes)
    }

    /// Loads a verifier file that must be signed by the vault whose fingerprint is `trust`
    /// (`mkv1:…`, as `mcp-key-manager slot list` prints it).
    ///
    /// # Errors
    /// As [`Verifier::from_file`]; [`Error::Untrusted`] for a file that is unsigned,
    /// signed by another vault, or changed after it was signed; [`Error::Invalid`] for a
    /// pin that is not a fingerprint.
    pub fn from_file_trusted(path: impl AsRef<Path>, trust: &str) -> Result<Verifier> {
        let pin = crate::signature::parse_pin(trust)?;
        let (bytes, _) = crate::fs::read_verifier_file(path.as_ref())?;
        Verifier::from_json_trusted(&bytes, &pin)
    }

    /// Parses the bytes of a verifier file signed by the vault `trust` names.
    ///
    /// # Errors
    /// As [`Verifier::from_file_trusted`].
    pub fn from_json_trusted(bytes: &[u8], trust: &str) -> Result<Verifier> {
        let pin = crate::signature::parse_pin(trust)?;
        crate::signature::check_trusted(bytes, &pin)?;
        Verifier::from_json(bytes)
    }

    /// Parses the bytes of a verifier file.
    ///
    /// # Errors
    /// [`Error::Invalid`] if it is not a version-1 verifier file.
    pub fn from_json(bytes: &[u8]) -> Result<Verifier> {
        let not_a_file = |e: serde_json::Error| {
            Error::invalid(format!(
                "not a verifier file ({}); write one with `mcp-key-manager \
                 export-verifier --out PATH`",
                crate::error::json_problem(&e)
            ))
        };
        // A member written twice is refused wherever it is (serde's derive refuses a known
        // field twice, but would skip an unknown one): readers that kept the last would read
        // `"status":"revoked","status":"active"` as active.
        serde_json::from_slice::<NoDuplicateMembers>(bytes).map_err(|e| {
            if e.is_data() {
                Error::invalid(format!(
                    "the verifier has an object with a member twice (line {}, column {})",
                    e.line(),
                    e.column()
                ))
            } else {
                not_a_file(e)
            }
        })?;
        let f: VerifierFile = serde_json::from_slice(bytes).map_err(not_a_file)?;
        if f.format != VERIFIER_FORMAT || f.version != 1 || f.algorithm != "hmac-sha256" {
            return Err(Error::invalid(
                "unsupported verifier file (expected mcp-key-verifier version 1, hmac-sha256)",
            ));
        }
        let hk = Zeroizing::new(
            B64.decode(&f.hash_key)
                .map_err(|_| Error::invalid("the verifier's hash_key is not base64"))?,
        );
        let hk: [u8; 32] = hk[..]
            .try_into()
            .map_err(|_| Error::invalid("the verifier's hash_key is not 32 bytes"))?;
        if parse_time(&f.generated_at).is_none() {
            return Err(Error::invalid(
                "the verifier's generated_at is not an RFC 3339 time",
            ));
        }
        let mut seen = std::collections::HashSet::with_capacity(f.keys.len());
        let mut keys = Vec::with_capacity(f.keys.len());
        for k in f.keys {
            let id = escape_controls(&k.id);
            if !seen.insert(k.id.clone()) {
                return Err(Error::invalid(format!(
                    "the verifier has two entries with the id {id}"
                )));
            }
            let hash = hash_from_hex(&k.hash).ok_or_else(|| {
                Error::invalid(format!("the verifier entry {id} has a malformed hash"))
            })?;
            let expires_at = match k.expires_at.as_deref() {
                None => None,
                Some(s) => Some(parse_time(s).ok_or_else(|| {
                    Error::invalid(format!(
                        "the verifier entry {id} has a malformed expires_at"
                    ))
                })?),
            };
            let rate_limit = match k.rate_limit {
                None => None,
                Some(l) => Some(
                    u32::try_from(l.requests)
                        .ok()
                        .zip(u32::try_from(l.window_seconds).ok())
                        .and_then(|(q, w)| RateLimit::new(q, w).ok())
                        .ok_or_else(|| {
                            Error::invalid(format!(
                                "the verifier entry {id} has a rate_limit out of bounds (1 to \
                                 1,000,000,000 requests per 1 to 86,400 seconds)"
                            ))
                        })?,
                ),
            };
            keys.push(KeyInfo {
                id: k.id,
                name: k.name,
                hash,
                revoked: k.status == "revoked",
                expires_at,
                permissions: k.permissions,
                rate_limit,
            });
        }
        if f.revision > MAX_REVISION {
            return Err(Error::invalid(
                "the verifier's revision is larger than 2^53-1 (the largest every reader holds \
                 exactly)",
            ));
        }
        let mut v = Verifier::build(Zeroizing::new(hk), f.revision, keys);
        if let Some(d) = f.save_digest {
            if !is_digest(&d) {
                return Err(Error::invalid(
                    "the verifier's save_digest is not 64 lowercase hex characters",
                ));
            }
            v.save_digest = Some(d);
        }
        Ok(v)
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
            hash_key: B64.encode(&self.hash_key[..]),
            generated_at: fmt_time(&now),
            revision,
            save_digest: self.save_digest.clone(),
            signature: None,
            keys: self
                .keys
                .iter()
                .map(|k| VerifierEntry {
                    id: k.id.clone(),
                    hash: crate::hex::encode(&k.hash),
                    status: self.status(k, now).into(),
                    expires_at: k.expires_at.as_ref().map(fmt_time),
                    permissions: k.permissions.clone(),
                    rate_limit: k.rate_limit.map(|l| LimitEntry {
                        requests: u64::from(l.requests()),
                        window_seconds: u64::from(l.window_seconds()),
                    }),
                    name: if include_names { k.name.clone() } else { None },
                })
                .collect(),
        };
        let mut out = serde_json::to_vec_pretty(&f).expect("serializing plain structs cannot fail");
        out.push(b'\n');
        out
    }

    /// The `status` a file records: `revoked`, `expired` (as of `now`) or `active`.
    fn status(&self, k: &KeyInfo, now: DateTime<Utc>) -> &'static str {
        if k.revoked {
            "revoked"
        } else if k.expires_at.is_some_and(|e| e <= now) {
            "expired"
        } else {
            "active"
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
    /// The checks run in the order of [`Code`]: shape (and a format-2 key's checksum,
    /// [`Verdict::reason`]), existence (by keyed hash, in constant time), revocation,
    /// expiry, permissions.
    pub fn verify(&self, key: &str, required: &[&str]) -> Verdict<'_> {
        self.verify_at(key, required, Utc::now())
    }

    /// Verifies `key` as of `now`.
    pub fn verify_at(&self, key: &str, required: &[&str], now: DateTime<Utc>) -> Verdict<'_> {
        let not_found = Verdict {
            code: Code::NotFound,
            key: None,
            reason: None,
        };
        let digest = || self.keyed_hash(key);
        // The shape, and a format-2 key's checksum, before anything is looked up.
        let shape = match keys::judge(key) {
            Ok(shape) => shape,
            Err(reason) => {
                return Verdict {
                    code: Code::Malformed,
                    key: None,
                    reason: Some(reason),
                }
            }
        };
        let info = match shape {
            Known::Modern(id) => {
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
                    // `permits` on the bitmask: the permission itself, or the broad one
                    // that grants it (`tools:call` for `tools:call:X`, whether or not
                    // `tools:call:X` is in the table).
                    let has = |p: &str| {
                        self.perm_names
                            .iter()
                            .position(|q| q == p)
                            .is_some_and(|b| hot.perms & (1 << b) != 0)
                    };
                    has(r) || crate::permits::broader(r).is_some_and(has)
                }) {
                    Code::InsufficientPermissions
                } else {
                    Code::Valid
                };
                return Verdict {
                    code,
                    key: Some(info),
                    reason: None,
                };
            }
            Known::Legacy => {
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
        } else if !required.iter().all(|r| permits(&info.permissions, r)) {
            Code::InsufficientPermissions
        } else {
            Code::Valid
        };
        Verdict {
            code,
            key: Some(info),
            reason: None,
        }
    }
}

/// A stored keyed hash (64 hex characters) as bytes.
fn hash_from_hex(s: &str) -> Option<[u8; 32]> {
    crate::hex::decode(s)?.try_into().ok()
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
    /// The digest of the vault save the file was written from; absent from older writers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    save_digest: Option<String>,
    /// `ed25519:<key>:<signature>`: checked (as bytes, before parsing) only by a reader
    /// given a trust pin; writers insert it as the first line (`signature.rs`).
    #[serde(default, skip_serializing)]
    #[allow(dead_code)]
    signature: Option<String>,
    keys: Vec<VerifierEntry>,
}

/// Whether `s` is a save digest: 64 lowercase hex characters.
fn is_digest(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
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
    rate_limit: Option<LimitEntry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
}

/// An entry's `rate_limit`: `requests` per `window_seconds`.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitEntry {
    requests: u64,
    window_seconds: u64,
}

/// Whether `json` parses with no object holding a member twice.
#[cfg_attr(not(feature = "oauth"), allow(dead_code))]
pub(crate) fn has_distinct_members(json: &[u8]) -> bool {
    serde_json::from_slice::<NoDuplicateMembers>(json).is_ok()
}

/// A JSON value that deserializes only when no object in it has the same member twice;
/// nothing is kept. Names are compared decoded, as a reader would see them.
struct NoDuplicateMembers;

impl<'de> Deserialize<'de> for NoDuplicateMembers {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_any(NoDuplicateMembers)
    }
}

impl<'de> serde::de::Visitor<'de> for NoDuplicateMembers {
    type Value = NoDuplicateMembers;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> std::result::Result<Self, E> {
        Ok(self)
    }
    fn visit_i64<E>(self, _: i64) -> std::result::Result<Self, E> {
        Ok(self)
    }
    fn visit_u64<E>(self, _: u64) -> std::result::Result<Self, E> {
        Ok(self)
    }
    fn visit_f64<E>(self, _: f64) -> std::result::Result<Self, E> {
        Ok(self)
    }
    fn visit_str<E>(self, _: &str) -> std::result::Result<Self, E> {
        Ok(self)
    }
    fn visit_unit<E>(self) -> std::result::Result<Self, E> {
        Ok(self)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(
        self,
        mut seq: A,
    ) -> std::result::Result<Self, A::Error> {
        while seq.next_element::<NoDuplicateMembers>()?.is_some() {}
        Ok(self)
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(
        self,
        mut map: A,
    ) -> std::result::Result<Self, A::Error> {
        // Objects here have a handful of members (an entry has six): a list is faster than
        // a set until an object is large.
        let mut names: Vec<Name<'de>> = Vec::new();
        let mut set: std::collections::HashSet<Name<'de>> = Default::default();
        while let Some(name) = map.next_key::<Name<'de>>()? {
            let repeated = if set.is_empty() && names.len() < 16 {
                let r = names.contains(&name);
                names.push(name);
                r
            } else {
                if set.is_empty() {
                    set.extend(names.drain(..));
                }
                !set.insert(name)
            };
            if repeated {
                return Err(serde::de::Error::custom("an object has a member twice"));
            }
            map.next_value::<NoDuplicateMembers>()?;
        }
        Ok(self)
    }
}

/// A member name, borrowed from the file when it has no escape (no allocation per member).
#[derive(PartialEq, Eq, Hash)]
struct Name<'de>(std::borrow::Cow<'de, str>);

impl<'de> Deserialize<'de> for Name<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Name<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a member name")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> std::result::Result<Name<'de>, E> {
                Ok(Name(std::borrow::Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> std::result::Result<Name<'de>, E> {
                Ok(Name(std::borrow::Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(V)
    }
}

/// The comparison used for hashes, exposed so a test can pin that it is `subtle`'s
/// constant-time equality.
pub fn hashes_equal(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.ct_eq(b).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_found_by_its_id_exactly() {
        let key = |id: &str| KeyInfo::new(id.into(), None, [1; 32], false, None, vec![]);
        let v = Verifier::new(
            &[7; 32],
            1,
            vec![
                key("00000000000000a1"),
                key("legacy-1"),
                key("00000000000000b2"),
            ],
        );
        assert_eq!(
            v.key("00000000000000b2").map(|k| k.id.as_str()),
            Some("00000000000000b2")
        );
        assert_eq!(v.key("legacy-1").map(|k| k.id.as_str()), Some("legacy-1"));
        assert!(v.key("00000000000000A1").is_none());
        assert!(v.key("00000000000000c3").is_none());
        assert!(v.key("").is_none());
    }

    #[test]
    fn a_member_twice_is_refused_however_it_is_written() {
        let file = |extra: &str| {
            format!(
                r#"{{"format":"mcp-key-verifier","version":1,"algorithm":"hmac-sha256",
                "hash_key":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
                "generated_at":"2026-01-01T00:00:00Z",{extra}"keys":[]}}"#
            )
        };
        assert!(Verifier::from_json(file("").as_bytes()).is_ok());
        // Compared decoded: an escaped name is the same name.
        let escaped = file(r#""note":1,"note":2,"#);
        assert!(Verifier::from_json(escaped.as_bytes()).is_err());
        // Past 16 members the names go to a set: still found, and distinct ones still pass.
        let many: String = (0..40).map(|i| format!(r#""m{i}":{i},"#)).collect();
        assert!(Verifier::from_json(file(&many).as_bytes()).is_ok());
        let twice = format!(r#"{many}"m3":0,"#);
        let e = Verifier::from_json(file(&twice).as_bytes()).unwrap_err();
        assert!(e.to_string().contains("a member twice"), "{e}");
        // In a nested unknown value too.
        let nested = file(r#""x":[{"a":{"b":1,"b":2}}],"#);
        assert!(Verifier::from_json(nested.as_bytes()).is_err());
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
}
