//! Signed verifier files and trust pins (docs/verifier.md, "Signatures and trust pins").
//!
//! A vault signs every verifier file it publishes with its Ed25519 key: the signature
//! line is inserted after the file's first line, and covers the file without it. A reader
//! given a trust pin (the vault's fingerprint) refuses a file that is unsigned, signed by
//! another vault, or changed after it was signed — before it parses anything else.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ed25519_dalek::{Signature, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// What a verifier file's signature covers before the unsigned file: a vault key signs
/// nothing else with this context.
pub const SIGNATURE_CONTEXT: &[u8] = b"mcp-key-verifier/signature/v1\n";

/// How a signed file starts; the line goes on with `ed25519:<key>:<signature>",\n`.
const LINE_OPENS: &[u8] = b"{\n  \"signature\": \"";
const KEY_B64: usize = 44;
const SIG_B64: usize = 88;

/// The fingerprint of a vault's public key: `mkv1:` and 32 lowercase base32 characters
/// (the first 160 bits of its SHA-256).
pub fn fingerprint(public_key: &[u8; 32]) -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let digest = Sha256::digest(public_key);
    let mut out = String::with_capacity(5 + 32);
    out.push_str("mkv1:");
    // 20 bytes = 160 bits = 32 groups of 5 bits, most significant first.
    let mut acc: u64 = 0;
    let mut bits = 0;
    for &b in &digest[..20] {
        acc = (acc << 8) | u64::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((acc >> bits) & 31) as usize]));
        }
    }
    out
}

/// Whether `pin` (as a person typed it: any case, surrounding spaces) names `fingerprint`.
pub fn pin_matches(pin: &str, fingerprint: &str) -> bool {
    pin.trim().to_ascii_lowercase() == fingerprint
}

/// A pin as it is compared: trimmed and lowercased, and of the fingerprint's shape.
///
/// # Errors
/// [`Error::Invalid`] for anything that is not `mkv1:` and 32 base32 characters.
pub fn parse_pin(pin: &str) -> Result<String> {
    let p = pin.trim().to_ascii_lowercase();
    let ok = p.len() == 37
        && p.starts_with("mkv1:")
        && p[5..]
            .bytes()
            .all(|b| matches!(b, b'a'..=b'z' | b'2'..=b'7'));
    if ok {
        Ok(p)
    } else {
        Err(Error::invalid(
            "a trust pin is a vault fingerprint: mkv1: and 32 characters (a-z, 2-7), as \
             `mcp-key-manager slot list` prints it",
        ))
    }
}

/// The parts of a signed file.
struct Signed {
    public_key: [u8; 32],
    signature: [u8; 64],
    /// The file without its signature line: what was signed (after the context).
    unsigned: Vec<u8>,
}

/// Splits a file into its signature and the unsigned file; `None` when it does not start
/// with a signature line.
fn split(bytes: &[u8]) -> Result<Option<Signed>> {
    let Some(rest) = bytes.strip_prefix(LINE_OPENS) else {
        return Ok(None);
    };
    let bad = || Error::invalid("the verifier file's signature line is malformed");
    let line_len = 8 + KEY_B64 + 1 + SIG_B64 + 3;
    let line = rest.get(..line_len).ok_or_else(bad)?;
    let (tag, line) = line.split_at(8);
    let (key, line) = line.split_at(KEY_B64);
    let (colon, line) = line.split_at(1);
    let (sig, end) = line.split_at(SIG_B64);
    if tag != b"ed25519:" || colon != b":" || end != b"\",\n" {
        return Err(bad());
    }
    let public_key: [u8; 32] = B64
        .decode(key)
        .ok()
        .and_then(|k| k.try_into().ok())
        .ok_or_else(bad)?;
    let signature: [u8; 64] = B64
        .decode(sig)
        .ok()
        .and_then(|s| s.try_into().ok())
        .ok_or_else(bad)?;
    let mut unsigned = Vec::with_capacity(bytes.len());
    unsigned.extend_from_slice(b"{\n");
    unsigned.extend_from_slice(&rest[line_len..]);
    Ok(Some(Signed {
        public_key,
        signature,
        unsigned,
    }))
}

/// Checks that `bytes` are a verifier file signed by the vault whose fingerprint is `pin`
/// (already [`parse_pin`]ned).
///
/// # Errors
/// [`Error::Untrusted`] for an unsigned file, a file signed by another vault, or one
/// changed after it was signed; [`Error::Invalid`] for a malformed signature line.
pub fn check_trusted(bytes: &[u8], pin: &str) -> Result<()> {
    let Some(s) = split(bytes)? else {
        return Err(Error::Untrusted(format!(
            "the verifier file is not signed, and {pin} is trusted: refused"
        )));
    };
    let found = fingerprint(&s.public_key);
    if !pin_matches(pin, &found) {
        return Err(Error::Untrusted(format!(
            "the verifier file is signed by vault {found}, not by the trusted {pin}: refused"
        )));
    }
    let key = VerifyingKey::from_bytes(&s.public_key)
        .map_err(|_| Error::invalid("the verifier file's signing key is not a valid key"))?;
    let mut msg = Vec::with_capacity(SIGNATURE_CONTEXT.len() + s.unsigned.len());
    msg.extend_from_slice(SIGNATURE_CONTEXT);
    msg.extend_from_slice(&s.unsigned);
    key.verify_strict(&msg, &Signature::from_bytes(&s.signature))
        .map_err(|_| {
            Error::Untrusted(format!(
                "the verifier file's signature by {found} does not verify: it was changed \
                 after it was signed; refused"
            ))
        })
}

/// The bytes a signature covers for the unsigned file `unsigned`.
pub fn signed_message(unsigned: &[u8]) -> Vec<u8> {
    let mut msg = Vec::with_capacity(SIGNATURE_CONTEXT.len() + unsigned.len());
    msg.extend_from_slice(SIGNATURE_CONTEXT);
    msg.extend_from_slice(unsigned);
    msg
}

/// The signed file: `unsigned` (which starts with `{` and a newline) with the signature
/// line inserted after its first line.
///
/// # Panics
/// If `unsigned` does not start with `{` and a newline (what [`crate::Verifier::to_json`]
/// writes).
pub fn insert_signature(unsigned: &[u8], public_key: &[u8; 32], signature: &[u8; 64]) -> Vec<u8> {
    let rest = unsigned
        .strip_prefix(b"{\n")
        .expect("a verifier file starts with `{` and a newline");
    let mut out = Vec::with_capacity(unsigned.len() + 160);
    out.extend_from_slice(LINE_OPENS);
    out.extend_from_slice(b"ed25519:");
    out.extend_from_slice(B64.encode(public_key).as_bytes());
    out.push(b':');
    out.extend_from_slice(B64.encode(signature).as_bytes());
    out.extend_from_slice(b"\",\n");
    out.extend_from_slice(rest);
    out
}

/// The fingerprint of the vault that signed `bytes`, if they are signed (checked: `None`
/// for a signature that does not verify).
pub fn signer(bytes: &[u8]) -> Option<String> {
    let s = split(bytes).ok()??;
    let fp = fingerprint(&s.public_key);
    check_trusted(bytes, &fp).ok().map(|()| fp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_are_base32_of_the_first_160_bits() {
        // SHA-256 of 32 zero bytes begins 66687aadf862bd776c8fc18b8e9f8e20089714856e…
        assert_eq!(
            fingerprint(&[0; 32]),
            "mkv1:mzuhvlpymk6xo3epygfy5h4oeaejofef"
        );
        assert!(pin_matches(
            "  MKV1:MZUHVLPYMK6XO3EPYGFY5H4OEAEJOFEF\n",
            &fingerprint(&[0; 32])
        ));
        assert!(parse_pin("mkv1:mzuhvlpymk6xo3epygfy5h4oeaejofe1").is_err());
        assert!(parse_pin("mkv1:mzuhvlpymk6xo3epygfy5h4oeaejofe").is_err());
    }

    #[test]
    fn a_signature_covers_the_file_without_its_line() {
        let sk = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        let pk = sk.verifying_key().to_bytes();
        let unsigned = b"{\n  \"format\": \"mcp-key-verifier\"\n}\n";
        use ed25519_dalek::Signer as _;
        let sig = sk.sign(&signed_message(unsigned)).to_bytes();
        let signed = insert_signature(unsigned, &pk, &sig);
        let pin = fingerprint(&pk);
        assert!(check_trusted(&signed, &pin).is_ok());
        assert_eq!(signer(&signed), Some(pin.clone()));
        let mut changed = signed.clone();
        let at = changed.len() - 4;
        changed[at] ^= 1;
        assert!(matches!(
            check_trusted(&changed, &pin),
            Err(Error::Untrusted(_))
        ));
        assert!(matches!(
            check_trusted(unsigned, &pin),
            Err(Error::Untrusted(_))
        ));
        let other = fingerprint(&[1; 32]);
        assert!(matches!(
            check_trusted(&signed, &other),
            Err(Error::Untrusted(_))
        ));
    }
}
