//! The shapes of an API key: `mcp_<16 hex id>_<64 hex secret>`, or a key imported from
//! the Python tool.
//!
//! Invariant: [`classify`] never allocates, so it is safe on untrusted input of any length.

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
