//! What a request asks of a key under `--tool-permissions`: the JSON-RPC method and tool
//! name, read from the JSON-RPC body, or from the `Mcp-Method` / `Mcp-Name` headers (MCP
//! 2026-07-28, SEP-2243) when the operator says the upstream checks them.
//!
//! Invariant: fail closed. A request whose method cannot be seen is refused, never allowed:
//! behind nginx `auth_request` (headers only) a request without a body shows nothing, and
//! allowing it let a key limited to one tool call every tool. A body, when there is one, is
//! always read and must agree with the headers. Headers alone decide only with
//! `--trust-routing-headers` and a protocol version whose servers must refuse a header/body
//! mismatch: the version is the client's claim, so only the operator, who knows the
//! upstream, can say that the claim is checked.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use hyper::header::{HeaderMap, HeaderName};
use serde_json::Value;

static MCP_METHOD: HeaderName = HeaderName::from_static("mcp-method");
static MCP_NAME: HeaderName = HeaderName::from_static("mcp-name");
static MCP_PROTOCOL_VERSION: HeaderName = HeaderName::from_static("mcp-protocol-version");

/// The protocol versions whose servers must refuse a body that disagrees with
/// `Mcp-Method`/`Mcp-Name` (an allowlist: a later version is added when it is known to
/// keep the rule).
pub const CHECKED_VERSIONS: &[&str] = &["2026-07-28"];

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

/// The routing headers of one request.
#[derive(Debug, PartialEq, Eq)]
pub struct Routing {
    /// `Mcp-Method`.
    pub method: String,
    /// `Mcp-Name`, decoded from the Base64 sentinel form where it was sent so.
    pub name: Option<String>,
    /// The protocol version obliges the server to refuse a header/body mismatch.
    pub checked_version: bool,
}

/// Why the routing headers cannot be used: the request is answered 400.
#[derive(Debug, PartialEq, Eq)]
pub enum BadRouting {
    /// A header repeated, not visible ASCII, or a malformed Base64 sentinel.
    Malformed(&'static str),
    /// `Mcp-Name` is required by the method and absent.
    NameMissing,
}

/// Reads `Mcp-Method`, `Mcp-Name` and `MCP-Protocol-Version`; `Ok(None)` when no
/// `Mcp-Method` was sent.
///
/// # Errors
/// [`BadRouting`] for a header that is repeated or unreadable, or a name-bearing method
/// without `Mcp-Name`.
pub fn routing(h: &HeaderMap) -> Result<Option<Routing>, BadRouting> {
    let one = |name: &HeaderName, what: &'static str| -> Result<Option<&str>, BadRouting> {
        let mut values = h.get_all(name).iter();
        let Some(v) = values.next() else {
            return Ok(None);
        };
        if values.next().is_some() {
            return Err(BadRouting::Malformed(what));
        }
        v.to_str()
            .map(|s| Some(s.trim()))
            .map_err(|_| BadRouting::Malformed(what))
    };
    let Some(method) = one(
        &MCP_METHOD,
        "the Mcp-Method header is repeated or not ASCII",
    )?
    else {
        return Ok(None);
    };
    let name = match one(&MCP_NAME, "the Mcp-Name header is repeated or not ASCII")? {
        Some(raw) => Some(decode_name(raw).ok_or(BadRouting::Malformed(
            "the Mcp-Name header carries a malformed base64 sentinel",
        ))?),
        None => None,
    };
    if name.is_none() && matches!(method, "tools/call" | "prompts/get" | "resources/read") {
        return Err(BadRouting::NameMissing);
    }
    let version = one(
        &MCP_PROTOCOL_VERSION,
        "the MCP-Protocol-Version header is repeated or not ASCII",
    )?;
    Ok(Some(Routing {
        method: method.to_string(),
        name,
        checked_version: version.is_some_and(|v| CHECKED_VERSIONS.contains(&v)),
    }))
}

/// `=?base64?…?=` decoded (canonical Base64 of UTF-8 only); any other value as it is.
fn decode_name(raw: &str) -> Option<String> {
    let Some(payload) = raw
        .strip_prefix("=?base64?")
        .and_then(|r| r.strip_suffix("?="))
    else {
        return Some(raw.to_string());
    };
    let bytes = B64.decode(payload).ok()?;
    // The encoder emits only the canonical form; another spelling of the same bytes could
    // match a body value by accident.
    if B64.encode(&bytes) != payload {
        return None;
    }
    String::from_utf8(bytes).ok()
}

/// What one message needs beyond the always-required permissions: alternatives, any one
/// of which satisfies it; `None` when the method needs nothing more.
pub fn needed_for(method: &str, name: Option<&str>) -> Option<Vec<String>> {
    let with_name = |base: &str| match name {
        Some(n) => vec![base.to_string(), format!("{base}:{n}")],
        None => vec![base.to_string()],
    };
    match method {
        "tools/call" => Some(with_name("tools:call")),
        "resources/read" => Some(vec!["resources:read".into()]),
        "prompts/get" => Some(with_name("prompts:get")),
        _ => None,
    }
}

/// What a JSON-RPC message (or batch) needs beyond the always-required permissions: a list
/// of alternatives, each satisfied by any one of its permissions.
pub fn needed_permissions(message: &Value) -> Vec<Vec<String>> {
    let one = |m: &Value| -> Option<Vec<String>> {
        let method = m.get("method")?.as_str()?;
        let name = m
            .get("params")
            .and_then(|p| p.get("name"))
            .and_then(Value::as_str);
        needed_for(method, name)
    };
    match message {
        Value::Array(batch) => batch.iter().filter_map(one).collect(),
        m => one(m).into_iter().collect(),
    }
}

/// Whether the body's message says what the headers say (SEP-2243): the same method, and
/// for a name-bearing method the same name (`uri` for `resources/read`). A batch never
/// matches headers, which describe one message.
pub fn body_matches(r: &Routing, message: &Value) -> bool {
    let Some(method) = message.get("method").and_then(Value::as_str) else {
        return false;
    };
    if method != r.method {
        return false;
    }
    let key = match method {
        "tools/call" | "prompts/get" => "name",
        "resources/read" => "uri",
        _ => return true,
    };
    let body_name = message
        .get("params")
        .and_then(|p| p.get(key))
        .and_then(Value::as_str);
    body_name == r.name.as_deref()
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;
    use serde_json::json;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn routing_headers_are_read_and_checked_versions_are_an_allowlist() {
        let r = routing(&headers(&[
            ("mcp-method", "tools/call"),
            ("mcp-name", "add"),
            ("mcp-protocol-version", "2026-07-28"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(r.method, "tools/call");
        assert_eq!(r.name.as_deref(), Some("add"));
        assert!(r.checked_version);
        for v in [
            "2025-11-25",
            "2026-07-27",
            "zzzz-zz-zz",
            "2026-7-28",
            "",
            "2027-01-01",
            "9999-99-99",
        ] {
            let r = routing(&headers(&[
                ("mcp-method", "tools/list"),
                ("mcp-protocol-version", v),
            ]))
            .unwrap()
            .unwrap();
            assert!(!r.checked_version, "{v}");
        }
        assert!(routing(&headers(&[("mcp-method", "tools/list")]))
            .unwrap()
            .is_some_and(|r| !r.checked_version));
        assert_eq!(routing(&headers(&[("mcp-name", "add")])), Ok(None));
    }

    #[test]
    fn bad_routing_headers_are_refused() {
        assert_eq!(
            routing(&headers(&[("mcp-method", "tools/call")])),
            Err(BadRouting::NameMissing)
        );
        assert!(matches!(
            routing(&headers(&[("mcp-method", "a"), ("mcp-method", "b")])),
            Err(BadRouting::Malformed(_))
        ));
        assert!(matches!(
            routing(&headers(&[
                ("mcp-method", "tools/call"),
                ("mcp-name", "=?base64?!!?=")
            ])),
            Err(BadRouting::Malformed(_))
        ));
        // Non-canonical Base64 (trailing bits set) is not the name it decodes to.
        assert!(matches!(
            routing(&headers(&[
                ("mcp-method", "tools/call"),
                ("mcp-name", "=?base64?YR==?=")
            ])),
            Err(BadRouting::Malformed(_))
        ));
        assert!(matches!(
            routing(&headers(&[
                ("mcp-method", "tools/call"),
                ("mcp-name", "=?base64?YQ=?=")
            ])),
            Err(BadRouting::Malformed(_))
        ));
    }

    #[test]
    fn base64_sentinel_names_are_decoded() {
        let r = routing(&headers(&[
            ("mcp-method", "tools/call"),
            ("mcp-name", "=?base64?w6ljaG8=?="),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(r.name.as_deref(), Some("écho"));
    }

    #[test]
    fn a_body_matches_its_headers_only_when_method_and_name_agree() {
        let r = Routing {
            method: "tools/call".into(),
            name: Some("add".into()),
            checked_version: true,
        };
        assert!(body_matches(
            &r,
            &json!({"method":"tools/call","params":{"name":"add"}})
        ));
        assert!(!body_matches(
            &r,
            &json!({"method":"tools/call","params":{"name":"mul"}})
        ));
        assert!(!body_matches(&r, &json!({"method":"tools/list"})));
        assert!(!body_matches(
            &r,
            &json!([{"method":"tools/call","params":{"name":"add"}}])
        ));
        let read = Routing {
            method: "resources/read".into(),
            name: Some("file:///a".into()),
            checked_version: true,
        };
        assert!(body_matches(
            &read,
            &json!({"method":"resources/read","params":{"uri":"file:///a"}})
        ));
        assert!(!body_matches(
            &read,
            &json!({"method":"resources/read","params":{"uri":"file:///b"}})
        ));
    }
}
