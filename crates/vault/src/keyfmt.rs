//! Making API keys. New keys are of format 2, `mkm_<16 hex id>_<43 base62 secret><6 base62
//! checksum>` (optionally behind an organisation's prefix); keys of format 1
//! (`mcp_<16 hex id>_<64 hex secret>`) and keys imported from the Python tool stay valid.
//!
//! The shapes themselves (and [`classify`], the checksum) belong to the verifier crate,
//! which servers link; this module adds what only the vault does: making keys and judging
//! their strength.
//!
//! Invariant: [`generate`] builds the key inside a buffer that is never reallocated and
//! zeroized when dropped, from the operating system's CSPRNG.

mod strength;

use crate::secret::SecretString;

pub use mcp_key_verifier::keys::{
    checksum, classify, is_id, is_org_prefix, why_malformed, Reason, Shape, BASE62, CHECKSUM_LEN,
    ID_HEX, KEY2_LEN, KEY_LEN, KEY_PATTERN, LEGACY_LEN, ORG_PREFIX_MAX, PREFIX, SECRET_BASE62,
    SECRET_HEX,
};

/// A fresh random id.
pub fn new_id() -> String {
    crate::rng::hex(&crate::rng::bytes(ID_HEX / 2))
}

/// An organisation's own prefix, put before `mkm_` in the keys it makes
/// (`acme_mkm_…`): 1 to 16 characters, a lowercase letter then lowercase letters and
/// digits, not `mcp`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgPrefix(String);

impl OrgPrefix {
    /// `org` if it is a valid prefix ([`is_org_prefix`]).
    pub fn new(org: &str) -> Option<OrgPrefix> {
        is_org_prefix(org).then(|| OrgPrefix(org.to_owned()))
    }

    /// The prefix.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A new full key of format 2 for `id`: `mkm_<id>_<secret><checksum>`.
pub fn generate(id: &str) -> SecretString {
    generate_with(None, id)
}

/// A new full key of format 2 for `id`, behind `org`'s prefix if one is given.
pub fn generate_with(org: Option<&OrgPrefix>, id: &str) -> SecretString {
    let org_len = org.map_or(0, |o| o.0.len() + 1);
    // Sized once: the string never moves, so no copy of the secret is left behind.
    let mut key = String::with_capacity(org_len + KEY2_LEN);
    if let Some(o) = org {
        key.push_str(&o.0);
        key.push('_');
    }
    key.push_str(PREFIX);
    key.push('_');
    key.push_str(id);
    key.push('_');
    push_base62_secret(&mut key);
    let sum = checksum(&key);
    key.extend(sum.iter().map(|&b| char::from(b)));
    debug_assert_eq!(key.len(), org_len + KEY2_LEN);
    SecretString::new(key)
}

/// Appends the secret: 32 random bytes (256 bits) as a number written in [`SECRET_BASE62`]
/// base62 digits, most significant first (62^43 > 2^256, so the first digit is at most
/// `y`, 60). Drawn as bytes rather than as 43 characters so that a vault can store the
/// secret in 32 bytes, as it stores a format-1 key's.
fn push_base62_secret(key: &mut String) {
    let mut n = zeroize::Zeroizing::new([0u8; 32]);
    crate::rng::fill(&mut n[..]);
    let mut digits = zeroize::Zeroizing::new([0u8; SECRET_BASE62]);
    for d in digits.iter_mut().rev() {
        // One long division of the 256-bit number by 62; the remainder is the digit.
        let mut rem = 0u32;
        for byte in n.iter_mut() {
            let cur = (rem << 8) | u32::from(*byte);
            *byte = (cur / 62) as u8;
            rem = cur % 62;
        }
        *d = BASE62[rem as usize];
    }
    key.extend(digits.iter().map(|&b| char::from(b)));
}

/// The estimated strength of a presented or stored key, in bits: 256 for a key of this
/// tool (32 random bytes), otherwise log2 of the guesses the zxcvbn estimator expects an
/// attacker to need (dictionaries, patterns, brute force), so `changeme-api-key` scores
/// low and a random 64-hex key of the Python tool high.
pub fn strength_bits(key: &str) -> f64 {
    if let Shape::Modern { .. } = classify(key) {
        return 256.0;
    }
    let charset = charset_bits(key);
    // zxcvbn takes milliseconds a key; where it provably cannot bring the key under the
    // character-set bound, that bound is its answer (`strength`).
    if charset >= 128.0 && strength::charset_bound_is_exact(key) {
        return charset;
    }
    estimated_bits(key, charset)
}

/// zxcvbn's estimate, or past its cap the character-set bound `charset`.
fn estimated_bits(key: &str, charset: f64) -> f64 {
    // zxcvbn counts guesses in a u64, so it cannot tell 64 bits from 256: past its cap
    // the estimate is the brute-force space of the characters used.
    let estimated = zxcvbn::zxcvbn(key, &[]).guesses_log10() * std::f64::consts::LOG2_10;
    if estimated < 63.0 {
        return estimated;
    }
    f64::max(estimated, charset)
}

/// The brute-force space of the characters `key` uses: its length times log2 of the size of
/// the classes present (16 for hex text).
fn charset_bits(key: &str) -> f64 {
    let has = |f: fn(&u8) -> bool| key.bytes().any(|b| f(&b));
    let pool = if key.bytes().all(|b| b.is_ascii_hexdigit()) {
        16.0
    } else {
        let mut p = 0.0;
        for (present, size) in [
            (has(u8::is_ascii_lowercase), 26.0),
            (has(u8::is_ascii_uppercase), 26.0),
            (has(u8::is_ascii_digit), 10.0),
            (has(|b| !b.is_ascii_alphanumeric()), 32.0),
        ] {
            if present {
                p += size;
            }
        }
        p
    };
    key.len() as f64 * f64::log2(pool)
}

/// A short hint for `list -k` by which a person recognises a key they hold: its prefix,
/// the public id and the last four characters, as GitHub shows tokens. Four hex characters
/// of a format-1 key are 16 of the secret's 256 bits; four of a format-2 key's checksum
/// narrow a CRC-32 of the key to one value in 3,844, at most 21 bits of 256: no help to a
/// guesser either way. A key weaker than 128 bits (an imported guessable one) shows no
/// characters at all.
pub fn hint(key: &str) -> String {
    let tail = &key[key.len().saturating_sub(4)..];
    match classify(key) {
        // The prefix and id end at the key's last `_` in both formats.
        Shape::Modern { .. } => {
            let head = key.rfind('_').map_or("", |i| &key[..=i]);
            format!("{head}…{tail}")
        }
        _ if strength_bits(key) >= 128.0 => format!("…{tail} (imported)"),
        _ => "(imported key)".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_have_the_documented_shape() {
        let id = new_id();
        assert!(is_id(&id));
        let k = generate(&id);
        let k = k.expose();
        assert_eq!(k.len(), KEY2_LEN);
        assert!(k.starts_with(&format!("mkm_{id}_")));
        assert!(k[21..].bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_eq!(&checksum(&k[..k.len() - 6]), &k.as_bytes()[k.len() - 6..]);
        assert_eq!(classify(k), Shape::Modern { id: &id });
        assert_ne!(generate(&id).expose(), k);
        let acme = OrgPrefix::new("acme").unwrap();
        let k = generate_with(Some(&acme), &id);
        assert!(k.expose().starts_with(&format!("acme_mkm_{id}_")));
        assert_eq!(classify(k.expose()), Shape::Modern { id: &id });
        assert_eq!(OrgPrefix::new("mcp"), None);
        assert_eq!(OrgPrefix::new("Acme"), None);
    }

    #[test]
    fn secrets_use_every_base62_character_evenly() {
        // 2,000 secrets, the 42 digits after the first: each of the 62 characters is
        // expected 1,355 times; a biased draw (say `b % 62` of each byte, which favours
        // the first 8 by 25%) is far outside ±20%. The first digit is at most `y`.
        let mut seen = [0u32; 128];
        for _ in 0..2000 {
            let k = generate(&new_id());
            let secret = &k.expose()[21..21 + SECRET_BASE62];
            assert!(secret.as_bytes()[0] <= b'y', "{}", &secret[..1]);
            for b in secret[1..].bytes() {
                seen[usize::from(b)] += 1;
            }
        }
        let expected = 2000.0 * (SECRET_BASE62 - 1) as f64 / 62.0;
        for &c in BASE62 {
            let n = f64::from(seen[usize::from(c)]);
            assert!((n / expected - 1.0).abs() < 0.2, "{} {n}", char::from(c));
        }
    }

    #[test]
    fn hints_show_the_id_and_four_characters_never_more() {
        let id = new_id();
        let k = generate(&id);
        let k = k.expose();
        let h = hint(k);
        assert_eq!(h, format!("mkm_{id}_…{}", &k[k.len() - 4..]));
        assert!(!h.contains(&k[k.len() - 5..]));
        let old = format!("mcp_{id}_{}", "ab".repeat(32));
        assert_eq!(hint(&old), format!("mcp_{id}_…abab"));
        assert_eq!(hint("changeme-api-key"), "(imported key)");
        let random = "3f9a1c7e5b2d8f4a6c0e1b3d5f7a9c2e4b6d8f0a1c3e5b7d9f2a4c6e8b0d1f3a";
        assert_eq!(hint(random), "…1f3a (imported)");
    }

    #[test]
    fn guessable_legacy_keys_score_low_and_random_ones_high() {
        assert!(strength_bits("changeme-api-key") < 64.0);
        assert!(strength_bits("password123456789") < 64.0);
        let random = "3f9a1c7e5b2d8f4a6c0e1b3d5f7a9c2e4b6d8f0a1c3e5b7d9f2a4c6e8b0d1f3a";
        assert!(strength_bits(random) >= 128.0, "{}", strength_bits(random));
        assert_eq!(strength_bits(generate(&new_id()).expose()), 256.0);
        // Beyond zxcvbn's cap, a short random-looking key is still under 128 bits.
        assert!(strength_bits("Xk9qT2mZ7wLp") < 128.0);
    }
}
