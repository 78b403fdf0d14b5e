//! The shape of an API key: `mcp_<16 hex id>_<64 hex secret>`, or a key imported from the
//! Python tool.
//!
//! The shapes themselves (and [`classify`]) belong to the verifier crate, which servers
//! link; this module adds what only the vault does: making keys and judging their strength.
//!
//! Invariant: [`generate`] builds the key inside a zeroizing buffer.

mod strength;

use crate::secret::SecretString;

pub use mcp_key_verifier::keys::{classify, is_id, Shape, ID_HEX, KEY_LEN, LEGACY_LEN, SECRET_HEX};

/// A fresh random id.
pub fn new_id() -> String {
    crate::rng::hex(&crate::rng::bytes(ID_HEX / 2))
}

/// A new full key for `id`, built in a zeroizing buffer.
pub fn generate(id: &str) -> SecretString {
    let mut secret = zeroize::Zeroizing::new([0u8; SECRET_HEX / 2]);
    crate::rng::fill(&mut secret[..]);
    let mut key = String::with_capacity(KEY_LEN);
    key.push_str("mcp_");
    key.push_str(id);
    key.push('_');
    crate::rng::push_hex(&mut key, &secret[..]);
    SecretString::new(key)
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

/// A short hint for `list -k` by which a person recognises a key they hold: the public id
/// and the last four characters, as GitHub shows tokens. Four hex characters are 16 of the
/// secret's 256 bits: no help to a guesser. A key weaker than 128 bits (an imported
/// guessable one) shows no characters at all.
pub fn hint(key: &str) -> String {
    let tail = &key[key.len().saturating_sub(4)..];
    match classify(key) {
        Shape::Modern { id } => format!("mcp_{id}_…{tail}"),
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
        assert_eq!(k.len(), KEY_LEN);
        assert!(k
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'));
        assert_eq!(classify(k), Shape::Modern { id: &id });
        assert_ne!(generate(&id).expose(), k);
    }

    #[test]
    fn hints_show_the_id_and_four_characters_never_more() {
        let id = new_id();
        let k = generate(&id);
        let k = k.expose();
        let h = hint(k);
        assert_eq!(h, format!("mcp_{id}_…{}", &k[k.len() - 4..]));
        assert!(!h.contains(&k[k.len() - 5..]));
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
