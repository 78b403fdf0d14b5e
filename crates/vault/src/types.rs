//! Value types parsed once, at the edge, by the layer that owns them: key ids, keyed
//! hashes, permissions and history actions.
//!
//! Invariant: a [`Permission`] that exists is valid (`[a-z0-9_.:-]{1,64}`); a [`KeyHash`]
//! is exactly 32 bytes (64 lowercase hex characters on the wire). A [`KeyId`] is the
//! public id of a record: 16 lowercase hex characters for keys made by this tool, any
//! text for keys imported from the Python tool.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use subtle::ConstantTimeEq;

/// Default permissions of a new key, as in the Python tool.
pub const DEFAULT_PERMISSIONS: [&str; 3] = ["generate", "info", "health"];

/// The impls every text newtype here shares: read as `str`, shown escaped (the text may
/// come from an old store and must not drive a terminal), compared with plain strings.
macro_rules! text_newtype {
    ($t:ident) => {
        impl std::ops::Deref for $t {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0[..]
            }
        }

        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&crate::display::sanitize(&self.0[..]))
            }
        }

        impl PartialEq<str> for $t {
            fn eq(&self, other: &str) -> bool {
                &self.0[..] == other
            }
        }

        impl PartialEq<&str> for $t {
            fn eq(&self, other: &&str) -> bool {
                &self.0[..] == *other
            }
        }

        impl PartialEq<String> for $t {
            fn eq(&self, other: &String) -> bool {
                self.0[..] == other[..]
            }
        }
    };
}

/// The public id of a key record.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct KeyId(String);

impl KeyId {
    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is an id of this tool's shape (16 lowercase hex characters), rather
    /// than an id imported from the Python tool.
    pub fn is_modern(&self) -> bool {
        crate::keyfmt::is_id(&self.0)
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({:?})", self.0)
    }
}

text_newtype!(KeyId);

impl From<String> for KeyId {
    fn from(s: String) -> Self {
        KeyId(s)
    }
}

impl From<&str> for KeyId {
    fn from(s: &str) -> Self {
        KeyId(s.to_string())
    }
}

/// HMAC-SHA256(hash_key, full key): what the vault and a verifier store instead of a key.
/// Not secret on its own (it cannot be inverted without the hash key), but compared in
/// constant time all the same.
#[derive(Clone, Copy)]
pub struct KeyHash(pub [u8; 32]);

impl KeyHash {
    /// Parses 64 lowercase (or uppercase) hex characters.
    pub fn from_hex(s: &str) -> Option<KeyHash> {
        crate::rng::unhex(s)?.try_into().ok().map(KeyHash)
    }

    /// 64 lowercase hex characters.
    pub fn to_hex(&self) -> String {
        crate::rng::hex(&self.0)
    }

    /// Constant-time equality.
    pub fn ct_eq(&self, other: &KeyHash) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl PartialEq for KeyHash {
    fn eq(&self, other: &Self) -> bool {
        self.ct_eq(other)
    }
}

impl Eq for KeyHash {}

impl fmt::Debug for KeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyHash({})", self.to_hex())
    }
}

impl Serialize for KeyHash {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for KeyHash {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        KeyHash::from_hex(&s).ok_or_else(|| serde::de::Error::custom("a hash is not 64 hex"))
    }
}

/// A permission name: `[a-z0-9_.:-]{1,64}`, e.g. `generate`, `tools:call:search`.
///
/// Shared text: the keys holding one permission hold one copy of its name (a format-2
/// record names permissions by index into a dictionary, and a hostile record naming one
/// long entry many times must not multiply it in memory).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Permission(std::sync::Arc<str>);

impl Serialize for Permission {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// Why a permission name was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidPermission(pub String);

impl fmt::Display for InvalidPermission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the permission {:?} is not valid; use 1-64 characters of a-z 0-9 _ . : -",
            crate::display::sanitize(&self.0)
        )
    }
}

impl std::error::Error for InvalidPermission {}

impl Permission {
    /// Whether `p` is an acceptable permission name.
    pub fn is_valid(p: &str) -> bool {
        (1..=64).contains(&p.len())
            && p.bytes().all(|b| {
                b.is_ascii_lowercase()
                    || b.is_ascii_digit()
                    || matches!(b, b'_' | b'.' | b':' | b'-')
            })
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The default permissions of a new key, as in the Python tool.
    pub fn defaults() -> Vec<Permission> {
        DEFAULT_PERMISSIONS
            .iter()
            .map(|p| Permission((*p).into()))
            .collect()
    }
}

impl Permission {
    /// A permission read from an authenticated payload, kept as it is (as
    /// `Deserialize` does): a bad name simply never matches a required one.
    pub(crate) fn trusted(s: &str) -> Permission {
        Permission(s.into())
    }
}

impl FromStr for Permission {
    type Err = InvalidPermission;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if Permission::is_valid(s) {
            Ok(Permission(s.into()))
        } else {
            Err(InvalidPermission(s.to_string()))
        }
    }
}

impl TryFrom<String> for Permission {
    type Error = InvalidPermission;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        if Permission::is_valid(&s) {
            Ok(Permission(s.into()))
        } else {
            Err(InvalidPermission(s))
        }
    }
}

impl<'de> Deserialize<'de> for Permission {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Vaults written before permissions were checked on every path may hold any
        // string; an authenticated payload is trusted as it is, and a bad name simply
        // never matches a required one.
        Ok(Permission(String::deserialize(d)?.into()))
    }
}

text_newtype!(Permission);

impl fmt::Debug for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

/// What a history event records.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum EventAction {
    /// The vault was created.
    Init,
    /// A key was created.
    Create,
    /// A key was written to an env file or printed by `use`.
    Use,
    /// A key was revoked.
    Revoke,
    /// A key's record was deleted.
    Delete,
    /// A key was replaced by a successor.
    Rotate,
    /// Permissions were added.
    Grant,
    /// Permissions were removed.
    Deny,
    /// The passphrase or KDF settings changed.
    Rekey,
    /// A key was imported from the Python tool.
    Import,
    /// A verifier path was published.
    Publish,
    /// A verifier path was unpublished.
    Unpublish,
    /// A slot was added (format 2).
    SlotAdd,
    /// A slot was removed and the data key rotated (format 2).
    SlotRemove,
    /// A format-1 vault was rewritten as format 2.
    Upgrade,
    /// A key's rate limit was set or cleared.
    Limit,
}

impl EventAction {
    /// The lowercase word used in every output.
    pub fn as_str(self) -> &'static str {
        match self {
            EventAction::Init => "init",
            EventAction::Create => "create",
            EventAction::Use => "use",
            EventAction::Revoke => "revoke",
            EventAction::Delete => "delete",
            EventAction::Rotate => "rotate",
            EventAction::Grant => "grant",
            EventAction::Deny => "deny",
            EventAction::Rekey => "rekey",
            EventAction::Import => "import",
            EventAction::Publish => "publish",
            EventAction::Unpublish => "unpublish",
            EventAction::SlotAdd => "slot-add",
            EventAction::SlotRemove => "slot-remove",
            EventAction::Upgrade => "upgrade",
            EventAction::Limit => "limit",
        }
    }

    /// Every action, in the order of its format-2 payload code (the index).
    pub const ALL: [EventAction; 16] = [
        EventAction::Init,
        EventAction::Create,
        EventAction::Use,
        EventAction::Revoke,
        EventAction::Delete,
        EventAction::Rotate,
        EventAction::Grant,
        EventAction::Deny,
        EventAction::Rekey,
        EventAction::Import,
        EventAction::Publish,
        EventAction::Unpublish,
        EventAction::SlotAdd,
        EventAction::SlotRemove,
        EventAction::Upgrade,
        EventAction::Limit,
    ];
}

impl PartialEq<&str> for EventAction {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl fmt::Display for EventAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permissions_are_checked_when_parsed() {
        assert!("tools:call:search".parse::<Permission>().is_ok());
        for bad in ["", "Upper", "white space", "a\x1b[31m", &"x".repeat(65)] {
            let e = bad.parse::<Permission>().unwrap_err().to_string();
            assert!(e.contains("not valid") && !e.contains('\x1b'), "{e}");
        }
    }

    #[test]
    fn hashes_round_trip_as_hex_and_compare_by_value() {
        let h = KeyHash([0xab; 32]);
        let json = serde_json::to_string(&h).unwrap();
        assert_eq!(json, format!("\"{}\"", "ab".repeat(32)));
        let back: KeyHash = serde_json::from_str(&json).unwrap();
        assert_eq!(back, h);
        assert_ne!(back, KeyHash([0xac; 32]));
        assert!(serde_json::from_str::<KeyHash>("\"abcd\"").is_err());
    }

    #[test]
    fn actions_keep_their_wire_names() {
        for a in [EventAction::Init, EventAction::Use, EventAction::Unpublish] {
            let json = serde_json::to_string(&a).unwrap();
            assert_eq!(json, format!("\"{}\"", a.as_str()));
            assert_eq!(serde_json::from_str::<EventAction>(&json).unwrap(), a);
        }
    }
}
