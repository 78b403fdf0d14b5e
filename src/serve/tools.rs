//! What a request asks of a key under `--tool-permissions`, as `serve` sees it: the
//! routing headers read from hyper's `HeaderMap` into the verifier crate's
//! [`routing`] rule, and the start-up line that says what the
//! decision rests on.
//!
//! Invariant: fail closed (see `http::needed_by_request`). A request whose method cannot be
//! seen is refused, never allowed; a body, when there is one, is always read and must agree
//! with the headers; headers alone decide only with `--trust-routing-headers`, because the
//! protocol version that makes the upstream check them is the client's claim.

use hyper::header::{HeaderMap, HeaderName};
use mcp_key_verifier::routing::{self, BadRouting, Routing};

static MCP_METHOD: HeaderName = HeaderName::from_static("mcp-method");
static MCP_NAME: HeaderName = HeaderName::from_static("mcp-name");
static MCP_PROTOCOL_VERSION: HeaderName = HeaderName::from_static("mcp-protocol-version");

/// The start-up line that says what `--tool-permissions` decides from.
pub fn decides_from(trust_headers: bool) -> &'static str {
    if trust_headers {
        "tool permissions are decided from the JSON-RPC body when there is one (checked \
         against the Mcp-Method/Mcp-Name headers), else from those headers with protocol \
         2026-07-28 (--trust-routing-headers: the upstream must refuse a header/body \
         mismatch); a request showing neither is refused (403 METHOD_UNSEEN)"
    } else {
        "tool permissions are decided from the JSON-RPC body (checked against any \
         Mcp-Method/Mcp-Name headers); a request without a body is refused (403 \
         METHOD_UNSEEN); behind a proxy that sends headers only, see --trust-routing-headers"
    }
}

/// The routing headers of a request; `Ok(None)` when no `Mcp-Method` was sent.
///
/// # Errors
/// As [`routing::routing`], and [`BadRouting::MethodMissing`] when the request claims
/// protocol 2026-07-28 without `Mcp-Method` (`/auth` cannot tell a POST from a GET behind
/// `auth_request`; either way the request is refused, with the status the protocol gives).
pub fn from_headers(h: &HeaderMap) -> Result<Option<Routing>, BadRouting> {
    let all = |name: &HeaderName| -> Vec<&[u8]> {
        h.get_all(name).iter().map(|v| v.as_bytes()).collect()
    };
    let (method, version) = (all(&MCP_METHOD), all(&MCP_PROTOCOL_VERSION));
    if routing::method_missing(&method, &version) {
        return Err(BadRouting::MethodMissing);
    }
    routing::routing(&method, &all(&MCP_NAME), &version)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn routing_headers_are_read_from_a_header_map() {
        let r = from_headers(&headers(&[
            ("mcp-method", "tools/call"),
            ("mcp-name", "=?base64?w6ljaG8=?="),
            ("mcp-protocol-version", "2026-07-28"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(
            (r.method.as_str(), r.name.as_deref()),
            ("tools/call", Some("écho"))
        );
        assert!(r.checked_version);
        assert!(from_headers(&headers(&[("mcp-method", "a"), ("mcp-method", "b")])).is_err());
        assert_eq!(from_headers(&headers(&[("mcp-name", "add")])), Ok(None));
        assert_eq!(
            from_headers(&headers(&[("mcp-protocol-version", "2026-07-28")])),
            Err(BadRouting::MethodMissing)
        );
        assert_eq!(
            from_headers(&headers(&[("mcp-protocol-version", "2025-11-25")])),
            Ok(None)
        );
    }
}
