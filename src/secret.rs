//! Wrappers that hold secrets from birth to drop: zeroed when dropped, never printed.
//!
//! Invariant: neither type implements `Display` or `Clone`, and `Debug` prints a fixed
//! placeholder, so a secret cannot reach output by accident.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::Zeroizing;

/// A secret string: a passphrase or a full API key.
pub struct SecretString(Zeroizing<String>);

impl SecretString {
    /// Wraps a string; the caller gives up its copy.
    pub fn new(s: String) -> Self {
        SecretString(Zeroizing::new(s))
    }

    /// The secret itself. Call it only where the value is used.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// A second, independently zeroized copy (deliberately not `Clone`, so copies are visible).
    pub fn duplicate(&self) -> Self {
        SecretString::new(self.0.as_str().to_owned())
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretString(<redacted>)")
    }
}

impl PartialEq for SecretString {
    fn eq(&self, other: &Self) -> bool {
        use subtle::ConstantTimeEq;
        self.0.as_bytes().ct_eq(other.0.as_bytes()).into()
    }
}

impl Serialize for SecretString {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for SecretString {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(SecretString::new)
    }
}

/// A 32-byte secret key: the vault key derived by Argon2id, or the HMAC `hash_key`.
pub struct SecretKey(Zeroizing<[u8; 32]>);

impl SecretKey {
    /// Wraps key bytes.
    pub fn new(bytes: [u8; 32]) -> Self {
        SecretKey(Zeroizing::new(bytes))
    }

    /// A fresh key from the operating system's CSPRNG.
    pub fn random() -> Self {
        let mut k = Zeroizing::new([0u8; 32]);
        crate::rng::fill(&mut k[..]);
        SecretKey(k)
    }

    /// The key bytes. Call it only where the key is used.
    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }

    /// A second, independently zeroized copy.
    pub fn duplicate(&self) -> Self {
        SecretKey::new(*self.0)
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

/// Secret bytes of any length: the opaque session secret an unlock agent holds.
pub struct SecretBytes(Zeroizing<Vec<u8>>);

impl SecretBytes {
    /// Wraps bytes; the caller gives up its copy.
    pub fn new(bytes: Vec<u8>) -> Self {
        SecretBytes(Zeroizing::new(bytes))
    }

    /// The bytes. Call it only where they are used.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// The bytes, writable, for filling a buffer in place (no second copy).
    pub fn expose_mut(&mut self) -> &mut [u8] {
        &mut self.0
    }

    /// Shortens to `len` bytes, keeping the allocation (so locked pages stay locked); the
    /// whole allocation is still wiped on drop.
    pub fn truncate(&mut self, len: usize) {
        self.0.truncate(len);
    }

    /// The length in bytes (not secret).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretBytes(<redacted, {} bytes>)", self.0.len())
    }
}

impl PartialEq for SecretBytes {
    fn eq(&self, other: &Self) -> bool {
        use subtle::ConstantTimeEq;
        self.0.as_slice().ct_eq(other.0.as_slice()).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_secret() {
        let s = SecretString::new("mcp_0123456789abcdef_topsecret".into());
        let k = SecretKey::new([0x41; 32]);
        let shown = format!("{s:?} {k:?} {:#?}", s);
        assert!(!shown.contains("topsecret"), "{shown}");
        assert!(!shown.contains("65, 65"), "{shown}");
        assert!(shown.contains("redacted"));
    }

    #[test]
    fn equality_compares_contents() {
        assert_eq!(
            SecretString::new("abc".into()),
            SecretString::new("abc".into())
        );
        assert_ne!(
            SecretString::new("abc".into()),
            SecretString::new("abd".into())
        );
        assert_ne!(
            SecretString::new("abc".into()),
            SecretString::new("abcd".into())
        );
    }
}
