//! Randomness and the small text encodings used for ids, secrets and hashes.
//!
//! Every random byte in the crate comes from the operating system's CSPRNG through [`fill`].

use rand::rngs::OsRng;
use rand::RngCore;

/// Fills `buf` from the operating system's CSPRNG.
///
/// # Panics
/// Only if the operating system cannot provide randomness at all (getrandom(2) failing on
/// Linux), in which case no key may be made and aborting is the safe answer.
pub fn fill(buf: &mut [u8]) {
    OsRng.fill_bytes(buf);
}

/// `n` random bytes.
pub fn bytes(n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    fill(&mut v);
    v
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Lowercase hexadecimal.
pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    push_hex(&mut s, bytes);
    s
}

/// Appends lowercase hexadecimal to `out` (lets callers build secrets in a zeroized buffer).
pub fn push_hex(out: &mut String, bytes: &[u8]) {
    for b in bytes {
        out.push(HEX[(b >> 4) as usize] as char);
        out.push(HEX[(b & 15) as usize] as char);
    }
}

/// Parses lowercase or uppercase hexadecimal; `None` on any other character or odd length.
pub fn unhex(s: &str) -> Option<Vec<u8>> {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    let b = s.as_bytes();
    if !b.len().is_multiple_of(2) {
        return None;
    }
    b.chunks(2)
        .map(|p| Some(nibble(p[0])? << 4 | nibble(p[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let b = [0u8, 1, 0x7f, 0x80, 0xff, 0xab];
        assert_eq!(hex(&b), "00017f80ffab");
        assert_eq!(unhex(&hex(&b)).unwrap(), b);
        assert_eq!(unhex("ABcd").unwrap(), vec![0xab, 0xcd]);
        assert!(unhex("abc").is_none());
        assert!(unhex("zz").is_none());
    }

    #[test]
    fn random_bytes_differ() {
        assert_ne!(bytes(32), bytes(32));
    }
}
