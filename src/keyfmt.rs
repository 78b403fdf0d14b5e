//! The shape of an API key: `mcp_<16 hex id>_<64 hex secret>`, or a key imported from the
//! Python tool.
//!
//! Invariant: [`generate`] builds the key inside a zeroizing buffer; [`classify`] never
//! allocates, so it is safe on untrusted input of any length.

use crate::secret::SecretString;

/// Length of a key id in hex characters.
pub const ID_HEX: usize = 16;
/// Length of a key secret in hex characters.
pub const SECRET_HEX: usize = 64;
/// Length of a full key: `mcp_` + id + `_` + secret.
pub const KEY_LEN: usize = 4 + ID_HEX + 1 + SECRET_HEX;
/// Shortest and longest legacy key accepted.
pub const LEGACY_LEN: std::ops::RangeInclusive<usize> = 16..=256;

/// What a presented string looks like.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum Shape<'a> {
    /// A key of this tool; the id is public and selects the record.
    Modern {
        /// The 16-hex id inside the key.
        id: &'a str,
    },
    /// A key imported from the Python tool: found by keyed hash.
    Legacy,
    /// Anything else.
    Malformed,
}

fn is_lower_hex(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Classifies a presented key without looking anything up.
pub fn classify(key: &str) -> Shape<'_> {
    if let Some(rest) = key.strip_prefix("mcp_") {
        if key.len() == KEY_LEN && rest.as_bytes()[ID_HEX] == b'_' {
            let (id, secret) = (&rest[..ID_HEX], &rest[ID_HEX + 1..]);
            if is_lower_hex(id) && is_lower_hex(secret) {
                return Shape::Modern { id };
            }
        }
        return Shape::Malformed;
    }
    let legacy_char = |b: u8| b.is_ascii_alphanumeric() || b"_-.~+/=".contains(&b);
    if LEGACY_LEN.contains(&key.len()) && key.bytes().all(legacy_char) {
        Shape::Legacy
    } else {
        Shape::Malformed
    }
}

/// Whether `id` is a well-formed key id.
pub fn is_id(id: &str) -> bool {
    id.len() == ID_HEX && is_lower_hex(id)
}

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
    // zxcvbn counts guesses in a u64, so it cannot tell 64 bits from 256: past its cap
    // the estimate is the brute-force space of the characters used.
    let estimated = zxcvbn::zxcvbn(key, &[]).guesses_log10() * std::f64::consts::LOG2_10;
    if estimated < 63.0 {
        return estimated;
    }
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
    f64::max(estimated, key.len() as f64 * f64::log2(pool))
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
    fn classify_rejects_near_misses() {
        let good = format!("mcp_{}_{}", "a".repeat(16), "b".repeat(64));
        assert!(matches!(classify(&good), Shape::Modern { .. }));
        for bad in [
            good.replace("mcp_", "mcq_"),
            good.to_uppercase(),
            format!("{good}0"),
            good[..good.len() - 1].to_string(),
            format!("mcp_{}_{}", "g".repeat(16), "b".repeat(64)),
            format!("mcp_{}-{}", "a".repeat(16), "b".repeat(64)),
            "mcp_".into(),
            String::new(),
            "short".into(),
            "has space in it and is long".into(),
            "é".repeat(20),
        ] {
            assert!(!matches!(classify(&bad), Shape::Modern { .. }), "{bad}");
        }
        assert_eq!(classify(&"ab12".repeat(16)), Shape::Legacy);
        assert_eq!(classify("mcp_short"), Shape::Malformed);
        assert_eq!(classify(&"a".repeat(300)), Shape::Malformed);
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
