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

/// A large plaintext buffer (a decrypted payload), wiped when dropped: its bytes and its
/// spare capacity, each in one bulk pass. (`Zeroizing<Vec<u8>>` wipes the bytes one
/// volatile store at a time: a few milliseconds for the 18 MB payload of 100,000 keys.)
#[derive(Default)]
pub struct WipedBytes(Vec<u8>);

impl WipedBytes {
    /// Takes the bytes out of `z` (which is left empty).
    pub fn take(z: &mut Zeroizing<Vec<u8>>) -> Self {
        WipedBytes(std::mem::take(&mut **z))
    }
}

/// Zeroes every byte of `v`'s allocation and empties it (the allocation is kept).
fn wipe(v: &mut Vec<u8>) {
    use zeroize::Zeroize;
    v.as_mut_slice().zeroize();
    v.clear();
    v.spare_capacity_mut().zeroize();
}

impl Drop for WipedBytes {
    fn drop(&mut self) {
        wipe(&mut self.0);
    }
}

impl std::ops::Deref for WipedBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for WipedBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WipedBytes(<redacted, {} bytes>)", self.0.len())
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
    #[allow(unsafe_code)] // reads the allocation behind the Vec's back, to see it wiped
    fn a_wiped_buffer_is_zero_across_its_whole_allocation() {
        let mut v = Vec::with_capacity(4096);
        v.extend(std::iter::repeat_n(0xa5u8, 3000));
        let (ptr, cap) = (v.as_ptr(), v.capacity());
        // Bytes past `len` that held data once (a truncation leaves them behind).
        v.truncate(1000);
        wipe(&mut v);
        assert_eq!((v.len(), v.capacity(), v.as_ptr()), (0, cap, ptr));
        // SAFETY: the allocation is live and every byte of it was just written by `wipe`.
        let all = unsafe { std::slice::from_raw_parts(ptr, cap) };
        assert!(all.iter().all(|&b| b == 0));
    }

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
