//! The one header rule: where a server finds the presented key.

/// Extracts the presented key from request headers: `X-API-Key: <key>` or
/// `Authorization: Bearer <key>` (scheme case-insensitive, surrounding whitespace
/// trimmed). Anything else — another scheme, an empty key, a key with inner whitespace —
/// gives `None`. When both headers are present, `X-API-Key` wins.
///
/// ```
/// use mcp_key_verifier::api_key_from_headers;
/// assert_eq!(api_key_from_headers(Some("  abc  "), None), Some("abc"));
/// assert_eq!(api_key_from_headers(None, Some("bearer xyz")), Some("xyz"));
/// assert_eq!(api_key_from_headers(None, Some("Basic xyz")), None);
/// assert_eq!(api_key_from_headers(Some(""), None), None);
/// ```
pub fn api_key_from_headers<'a>(
    x_api_key: Option<&'a str>,
    authorization: Option<&'a str>,
) -> Option<&'a str> {
    let clean = |s: &'a str| -> Option<&'a str> {
        let s = s.trim();
        (!s.is_empty() && !s.chars().any(char::is_whitespace)).then_some(s)
    };
    if let Some(k) = x_api_key {
        return clean(k);
    }
    let auth = authorization?.trim();
    let (scheme, rest) = auth.split_once([' ', '\t'])?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    clean(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_extraction() {
        let k = "mcp_0123456789abcdef_00";
        assert_eq!(api_key_from_headers(Some(k), None), Some(k));
        assert_eq!(
            api_key_from_headers(Some(&format!(" {k}\t")), None),
            Some(k)
        );
        assert_eq!(
            api_key_from_headers(None, Some(&format!("Bearer {k}"))),
            Some(k)
        );
        assert_eq!(
            api_key_from_headers(None, Some(&format!("BEARER  {k} "))),
            Some(k)
        );
        assert_eq!(
            api_key_from_headers(None, Some(&format!("bearer\t{k}"))),
            Some(k)
        );
        assert_eq!(api_key_from_headers(Some(k), Some("Bearer other")), Some(k));
        for bad in [
            format!("Basic {k}"),
            format!("Token {k}"),
            "Bearer".to_string(),
            "Bearer ".to_string(),
            format!("Bearer {k} extra"),
            format!("Bearer{k}"),
            String::new(),
        ] {
            assert_eq!(api_key_from_headers(None, Some(&bad)), None, "{bad:?}");
        }
        assert_eq!(api_key_from_headers(Some("   "), None), None);
        assert_eq!(api_key_from_headers(Some("a b"), None), None);
        assert_eq!(api_key_from_headers(None, None), None);
    }
}
