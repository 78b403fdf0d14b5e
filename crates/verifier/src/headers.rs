//! The one header rule: where a server finds the presented key.

/// Extracts the presented key from one request's `X-API-Key` and `Authorization` headers,
/// each absent or present once: see [`api_key_from_header_values`], the rule in full (this
/// is it for a request whose headers are not repeated).
///
/// ```
/// use mcp_key_verifier::api_key_from_headers;
/// assert_eq!(api_key_from_headers(Some("  abc  "), None), Some("abc"));
/// assert_eq!(api_key_from_headers(None, Some("bearer xyz")), Some("xyz"));
/// assert_eq!(api_key_from_headers(None, Some("Basic xyz")), None);
/// assert_eq!(api_key_from_headers(Some(""), None), None);
/// assert_eq!(api_key_from_headers(Some("\u{a0}abc"), None), None);
/// ```
pub fn api_key_from_headers<'a>(
    x_api_key: Option<&'a str>,
    authorization: Option<&'a str>,
) -> Option<&'a str> {
    api_key_from_header_values(x_api_key.as_slice(), authorization.as_slice())
}

/// Extracts the presented key from all the values of a request's `X-API-Key` headers and
/// all those of its `Authorization` headers (docs/verifier.md, "Header rule"):
///
/// - two or more `X-API-Key` headers, or two or more `Authorization` headers: no key (an
///   ambiguous request is refused, whichever value a proxy or a framework would pick);
/// - otherwise `X-API-Key`, when present, alone decides; else `Authorization` must be the
///   scheme `Bearer` (any case) followed by one or more SP or HTAB and the key;
/// - only SP and HTAB are trimmed around the value; the key must be non-empty visible ASCII
///   (`!` to `~`): any other character (whitespace of any kind, a control, non-ASCII) means
///   no key.
///
/// ```
/// use mcp_key_verifier::api_key_from_header_values;
/// assert_eq!(api_key_from_header_values(&["abc"], &[]), Some("abc"));
/// assert_eq!(api_key_from_header_values(&[], &["Bearer\txyz"]), Some("xyz"));
/// assert_eq!(api_key_from_header_values(&["abc", "abc"], &[]), None);
/// assert_eq!(api_key_from_header_values(&[], &["Bearer a", "Bearer b"]), None);
/// ```
pub fn api_key_from_header_values<'a>(
    x_api_key: &[&'a str],
    authorization: &[&'a str],
) -> Option<&'a str> {
    if x_api_key.len() > 1 || authorization.len() > 1 {
        return None;
    }
    if let Some(k) = x_api_key.first() {
        return clean(k);
    }
    let auth = trim_ows(authorization.first()?);
    let (scheme, rest) = auth.split_once([' ', '\t'])?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    clean(rest)
}

/// `s` without leading and trailing SP and HTAB (HTTP's optional whitespace), and nothing
/// else.
fn trim_ows(s: &str) -> &str {
    s.trim_matches([' ', '\t'])
}

/// The key in a header value: trimmed of SP/HTAB, non-empty, visible ASCII only.
fn clean(s: &str) -> Option<&str> {
    let s = trim_ows(s);
    (!s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic())).then_some(s)
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
