//! The shapes of an API key: format 2, `[<org>_]mkm_<16 hex id>_<43 base62 secret><6 base62
//! checksum>`; format 1, `mcp_<16 hex id>_<64 hex secret>`; or a key imported from the
//! Python tool (docs/verifier.md, "Key shapes").
//!
//! A format-2 key carries a CRC32 of everything before its last six characters, so a typo
//! is told from an unknown key here, before any lookup: a reader answers `MALFORMED` with
//! [`Reason::Checksum`] without consulting its entries.
//!
//! Invariant: [`classify`] never allocates, so it is safe on untrusted input of any length.

/// Length of a key id in hex characters.
pub const ID_HEX: usize = 16;
/// Length of a format-1 key's secret in hex characters.
pub const SECRET_HEX: usize = 64;
/// Length of a full format-1 key: `mcp_` + id + `_` + secret.
pub const KEY_LEN: usize = 4 + ID_HEX + 1 + SECRET_HEX;
/// Shortest and longest legacy key accepted.
pub const LEGACY_LEN: std::ops::RangeInclusive<usize> = 16..=256;

/// The prefix of every format-2 key (after an organisation's own, if it has one). Chosen
/// for scanners: `mcp_` is issued by other MCP gateways too.
pub const PREFIX: &str = "mkm";
/// Length of a format-2 key's secret in base62 characters: 43 × log2(62) ≈ 256.03 bits.
pub const SECRET_BASE62: usize = 43;
/// Length of a format-2 key's checksum in base62 characters (62^6 > 2^32).
pub const CHECKSUM_LEN: usize = 6;
/// Length of a format-2 key without an organisation prefix: `mkm_` + id + `_` + secret +
/// checksum (70).
pub const KEY2_LEN: usize = PREFIX.len() + 1 + ID_HEX + 1 + SECRET_BASE62 + CHECKSUM_LEN;
/// Longest organisation prefix (`init --key-prefix`), in characters.
pub const ORG_PREFIX_MAX: usize = 16;
/// The base62 alphabet of format 2, in ASCII order: a digit's value is its index.
pub const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// One regular expression (Rust `regex`, Python `re`, JavaScript and Go RE2 syntax alike)
/// that matches every key of format 1 and format 2, with or without an organisation
/// prefix, as a whole word: what a secret scanner looks for. Keys imported from the
/// Python tool have no shape of their own and are not matched.
pub const KEY_PATTERN: &str = r"\b(?:mcp_[0-9a-f]{16}_[0-9a-f]{64}|(?:[a-z][a-z0-9]{0,15}_)?mkm_[0-9a-f]{16}_[0-9A-Za-z]{49})\b";

/// What a presented string looks like.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum Shape<'a> {
    /// A key of this tool (format 1, or format 2 with a good checksum); the id is public
    /// and selects the record.
    Modern {
        /// The 16-hex id inside the key.
        id: &'a str,
    },
    /// A key imported from the Python tool: found by keyed hash.
    Legacy,
    /// Anything else ([`why_malformed`] says why).
    Malformed,
}

/// Why a presented string is `MALFORMED`.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum Reason {
    /// It is not of any key's shape.
    Shape,
    /// It has the shape of a format-2 key, but its checksum does not match what comes
    /// before it: mistyped, truncated and completed, or made up.
    Checksum,
}

impl Reason {
    /// The upper-case reason code used in every output (`SHAPE`, `CHECKSUM`).
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Shape => "SHAPE",
            Reason::Checksum => "CHECKSUM",
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

fn is_lower_hex(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn is_legacy_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"_-.~+/=".contains(&b)
}

/// Classifies a presented key without looking anything up.
pub fn classify(key: &str) -> Shape<'_> {
    match judge(key) {
        Ok(Known::Modern(id)) => Shape::Modern { id },
        Ok(Known::Legacy) => Shape::Legacy,
        Err(_) => Shape::Malformed,
    }
}

/// Why `key` is [`Shape::Malformed`]; `None` when it is not.
pub fn why_malformed(key: &str) -> Option<Reason> {
    judge(key).err()
}

/// A key that may be looked up: [`Shape`] without `Malformed`, whose reason is the error.
pub(crate) enum Known<'a> {
    /// Format 1 or 2: the id.
    Modern(&'a str),
    /// Found by keyed hash.
    Legacy,
}

/// The rules of docs/verifier.md ("Key shapes"), in their order.
pub(crate) fn judge(key: &str) -> Result<Known<'_>, Reason> {
    // 1. Format 1, exactly; `mcp_` is never read as anything else.
    if let Some(rest) = key.strip_prefix("mcp_") {
        if key.len() == KEY_LEN && rest.as_bytes()[ID_HEX] == b'_' {
            let (id, secret) = (&rest[..ID_HEX], &rest[ID_HEX + 1..]);
            if is_lower_hex(id) && is_lower_hex(secret) {
                return Ok(Known::Modern(id));
            }
        }
        return Err(Reason::Shape);
    }
    // 2. The layout of format 2: the checksum is checked before the prefix, so a typo
    //    anywhere (the prefix too) is a checksum error.
    if let Some((head, id)) = format2_layout(key) {
        let (body, sum) = key.split_at(key.len() - CHECKSUM_LEN);
        if checksum(body).as_slice() != sum.as_bytes() {
            return Err(Reason::Checksum);
        }
        return if is_format2_head(head) {
            Ok(Known::Modern(id))
        } else {
            Err(Reason::Shape)
        };
    }
    // 3. What starts as a format-2 key is judged as one only, never as a legacy key.
    if claims_format2(key) {
        return Err(Reason::Shape);
    }
    // 4. A key of the Python tool.
    if LEGACY_LEN.contains(&key.len()) && key.bytes().all(is_legacy_char) {
        Ok(Known::Legacy)
    } else {
        Err(Reason::Shape)
    }
}

/// Characters after the head of a format-2 key: id, `_`, secret, checksum.
const TAIL2: usize = ID_HEX + 1 + SECRET_BASE62 + CHECKSUM_LEN;
/// Longest head read as a format-2 head: an organisation prefix, `_mkm_`, and room for a
/// typo that adds a character.
const HEAD2_MAX: usize = ORG_PREFIX_MAX + 1 + PREFIX.len() + 1 + 4;

/// `(head, id)` when `key` ends with `<16 lowercase hex>_<49 base62>` after 1 to
/// [`HEAD2_MAX`] characters of the legacy alphabet (the head, `mkm_` in a good key).
fn format2_layout(key: &str) -> Option<(&str, &str)> {
    let b = key.as_bytes();
    let head_len = b.len().checked_sub(TAIL2)?;
    if !(1..=HEAD2_MAX).contains(&head_len) || b[b.len() - SECRET_BASE62 - CHECKSUM_LEN - 1] != b'_'
    {
        return None;
    }
    // Bytes first: every byte checked is ASCII, so the slices below fall on characters.
    let (head, tail) = b.split_at(head_len);
    let (id, rest) = tail.split_at(ID_HEX);
    (head.iter().all(|c| is_legacy_char(*c))
        && id
            .iter()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c))
        && rest[1..].iter().all(u8::is_ascii_alphanumeric))
    .then(|| (&key[..head_len], &key[head_len..head_len + ID_HEX]))
}

/// Whether `head` is `mkm_` or `<org>_mkm_`.
fn is_format2_head(head: &str) -> bool {
    let Some(org) = head.strip_suffix("mkm_") else {
        return false;
    };
    org.is_empty() || org.strip_suffix('_').is_some_and(is_org_prefix)
}

/// Whether `key` starts as a format-2 key does: `mkm_` or `<org>_mkm_`.
fn claims_format2(key: &str) -> bool {
    if key.starts_with("mkm_") {
        return true;
    }
    let b = key.as_bytes();
    let org_len = b
        .iter()
        .take(ORG_PREFIX_MAX + 1)
        .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        .count();
    key[org_len..].starts_with("_mkm_") && is_org_prefix(&key[..org_len])
}

/// Whether `org` may stand before `mkm_` in a format-2 key: 1 to 16 characters, a
/// lowercase letter then lowercase letters and digits, and not `mcp` (a key starting with
/// `mcp_` is read as format 1 only).
pub fn is_org_prefix(org: &str) -> bool {
    let b = org.as_bytes();
    (1..=ORG_PREFIX_MAX).contains(&b.len())
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && org != "mcp"
}

/// The checksum of a format-2 key whose first characters are `body`: CRC-32 (IEEE 802.3,
/// as zlib computes it) of `body`'s bytes, as six base62 digits, most significant first.
pub fn checksum(body: &str) -> [u8; CHECKSUM_LEN] {
    let mut v = crc32(body.as_bytes());
    let mut out = [b'0'; CHECKSUM_LEN];
    for d in out.iter_mut().rev() {
        *d = BASE62[(v % 62) as usize];
        v /= 62;
    }
    out
}

const CRC_TABLE: [u32; 256] = {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
};

/// CRC-32/ISO-HDLC (the one of zlib, PNG and Ethernet). A table of 1 KiB rather than a
/// dependency: a key's checksum covers at most 70-odd bytes.
fn crc32(data: &[u8]) -> u32 {
    !data.iter().fold(!0u32, |c, &b| {
        CRC_TABLE[((c ^ u32::from(b)) & 0xff) as usize] ^ (c >> 8)
    })
}

/// Whether `id` is a well-formed key id.
pub fn is_id(id: &str) -> bool {
    id.len() == ID_HEX && is_lower_hex(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A format-2 key of `head` (`mkm_` or `<org>_mkm_`), id and secret, with its checksum.
    fn key2(head: &str, id: &str, secret: &str) -> String {
        let body = format!("{head}{id}_{secret}");
        let sum = checksum(&body);
        format!("{body}{}", std::str::from_utf8(&sum).unwrap())
    }

    #[test]
    fn crc32_is_the_ieee_one() {
        // The check value of CRC-32/ISO-HDLC, and zlib.crc32(b"") == 0.
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
        assert_eq!(&checksum(""), b"000000");
        // 0xCBF43926 in base62, as Python's zlib.crc32 and the vectors' generator give it.
        assert_eq!(&checksum("123456789"), b"3jZRME");
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
        assert_eq!(why_malformed("mcp_short"), Some(Reason::Shape));
        assert_eq!(why_malformed(&good), None);
    }

    #[test]
    fn format_2_keys_are_modern_and_every_substitution_is_malformed() {
        let id = "0123456789abcdef";
        let secret = "Zx".repeat(21) + "9";
        for head in [
            "mkm_",
            "acme_mkm_",
            "a_mkm_",
            "mkm_mkm_",
            "abcdefghijklmnop_mkm_",
        ] {
            let k = key2(head, id, &secret);
            assert_eq!(classify(&k), Shape::Modern { id }, "{k}");
            assert_eq!(k.len(), KEY2_LEN + head.len() - 4);
            // Any one character replaced by any other character a key may hold is caught
            // offline; by another base62 character (or within the head), as a checksum.
            let legacy_chars = (b'0'..=b'z')
                .filter(|c| is_legacy_char(*c))
                .chain(*b"-.~+/=");
            let alphabet: Vec<u8> = legacy_chars.collect();
            for at in 0..k.len() {
                for &c in &alphabet {
                    let mut typo = k.clone().into_bytes();
                    if typo[at] == c {
                        continue;
                    }
                    typo[at] = c;
                    let typo = String::from_utf8(typo).unwrap();
                    let r = why_malformed(&typo);
                    assert!(r.is_some(), "{typo}");
                    let in_head = at < head.len();
                    let in_id = (head.len()..head.len() + ID_HEX).contains(&at);
                    let stays_in_layout = if in_head {
                        true
                    } else if in_id {
                        c.is_ascii_digit() || (b'a'..=b'f').contains(&c)
                    } else {
                        at != head.len() + ID_HEX && c.is_ascii_alphanumeric()
                    };
                    if stays_in_layout {
                        assert_eq!(r, Some(Reason::Checksum), "{typo}");
                    }
                }
            }
            // A character lost or added: malformed too.
            assert!(why_malformed(&k[..k.len() - 1]).is_some());
            assert!(why_malformed(&format!("{k}0")).is_some());
            assert!(why_malformed(&k[1..]).is_some());
        }
    }

    #[test]
    fn a_good_checksum_does_not_make_a_wrong_prefix_right() {
        let (id, secret) = ("0123456789abcdef", "a".repeat(43));
        for head in [
            "mkx_",
            "MKM_",
            "Acme_mkm_",
            "ac-me_mkm_",
            "mkm-",
            "mkm_mkm-",
            "abcdefghijklmnopq_mkm_",
            "9lives_mkm_",
        ] {
            let k = key2(head, id, &secret);
            assert_eq!(why_malformed(&k), Some(Reason::Shape), "{k}");
        }
        // An uppercase id is outside the layout: the shape is wrong whatever the checksum.
        let k = key2("mkm_", "0123456789ABCDEF", &secret);
        assert_eq!(why_malformed(&k), Some(Reason::Shape));
        // `mcp` cannot be an organisation prefix: such a key is read as format 1.
        assert!(!is_org_prefix("mcp"));
        let k = key2("mcp_mkm_", id, &secret);
        assert_eq!(why_malformed(&k), Some(Reason::Shape));
    }

    #[test]
    fn legacy_keys_are_not_mistaken_for_format_2() {
        // The Python tool's 64 hex, a key with every legacy character, and strings near
        // format 2's layout without its head.
        for k in [
            "3f9a1c7e5b2d8f4a6c0e1b3d5f7a9c2e4b6d8f0a1c3e5b7d9f2a4c6e8b0d1f3a".to_string(),
            "Legacy_Key-1.2~3+4/5=0123456789abcdef".into(),
            format!("mkmlab-{}", "x".repeat(40)),
            format!("{}_{}", "0".repeat(16), "a".repeat(49)),
        ] {
            assert_eq!(classify(&k), Shape::Legacy, "{k}");
        }
    }

    #[test]
    fn org_prefixes() {
        for ok in ["a", "acme", "acme2", "abcdefghijklmnop"] {
            assert!(is_org_prefix(ok), "{ok}");
        }
        for bad in [
            "",
            "Acme",
            "2acme",
            "ac_me",
            "ac-me",
            "abcdefghijklmnopq",
            "mcp",
            "é",
        ] {
            assert!(!is_org_prefix(bad), "{bad}");
        }
    }
}
