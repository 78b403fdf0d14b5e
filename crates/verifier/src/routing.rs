//! What a JSON-RPC request asks of a key under tool permissions: the method and tool name,
//! from the `Mcp-Method` / `Mcp-Name` headers (MCP 2026-07-28, SEP-2243) and from the body.
//! Pure functions over header values and JSON, shared by every HTTP stack.
//!
//! Invariant: fail closed. A caller that cannot see a request's method refuses it; a
//! header/body disagreement is refused, so a client cannot name one tool in the headers
//! and call another in the body.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde_json::Value;

/// The protocol versions whose servers must refuse a body that disagrees with
/// `Mcp-Method`/`Mcp-Name` (an allowlist: a later version is added when it is known to keep
/// the rule). The version is the client's claim: a proxy that decides from the headers
/// alone must also know that its upstream checks them.
pub const CHECKED_VERSIONS: &[&str] = &["2026-07-28"];

/// The routing headers of one request.
#[derive(Debug, PartialEq, Eq)]
pub struct Routing {
    /// `Mcp-Method`.
    pub method: String,
    /// `Mcp-Name`, decoded from the Base64 sentinel form where it was sent so.
    pub name: Option<String>,
    /// The request claims a protocol version whose servers must refuse a header/body
    /// mismatch ([`CHECKED_VERSIONS`]).
    pub checked_version: bool,
}

/// Why the routing headers cannot be used: the request is answered 400.
#[derive(Debug, PartialEq, Eq)]
pub enum BadRouting {
    /// A header repeated, not visible ASCII, or a malformed Base64 sentinel.
    Malformed(&'static str),
    /// `Mcp-Name` is required by the method and absent.
    NameMissing,
    /// `Mcp-Method` is absent from a POST that claims a protocol version requiring it
    /// (see [`method_missing`]).
    MethodMissing,
}

impl BadRouting {
    /// The reason to give.
    pub fn reason(&self) -> &'static str {
        match self {
            BadRouting::Malformed(why) => why,
            BadRouting::NameMissing => "the Mcp-Name header is required with this Mcp-Method",
            BadRouting::MethodMissing => {
                "the Mcp-Method header is required on every POST with MCP-Protocol-Version \
                 2026-07-28"
            }
        }
    }
}

/// Whether a request claiming a [`CHECKED_VERSIONS`] protocol version (one `MCP-Protocol-Version`
/// value) sent no `Mcp-Method`: SEP-2243 requires it on every POST of that version, and its
/// servers answer such a request 400 with JSON-RPC `-32020`. A caller that decides from the
/// headers refuses it the same way rather than as a request whose method it cannot see.
pub fn method_missing(method: &[&[u8]], version: &[&[u8]]) -> bool {
    method.is_empty()
        && matches!(version, [v] if CHECKED_VERSIONS.iter().any(|c| c.as_bytes() == v.trim_ascii()))
}

/// Reads the routing headers from every value of `Mcp-Method`, `Mcp-Name` and
/// `MCP-Protocol-Version` (raw bytes, in order); `Ok(None)` when no `Mcp-Method` was sent.
///
/// # Errors
/// [`BadRouting`] for a header that is repeated or unreadable, or a name-bearing method
/// without `Mcp-Name`.
pub fn routing(
    method: &[&[u8]],
    name: &[&[u8]],
    version: &[&[u8]],
) -> Result<Option<Routing>, BadRouting> {
    let one = |values: &[&[u8]], what: &'static str| -> Result<Option<String>, BadRouting> {
        match values {
            [] => Ok(None),
            [v] if v.iter().all(|b| *b == b'\t' || (0x20..0x7f).contains(b)) => {
                // Visible ASCII, spaces and tabs: what `http` calls a readable value.
                Ok(Some(String::from_utf8_lossy(v).trim().to_string()))
            }
            _ => Err(BadRouting::Malformed(what)),
        }
    };
    let Some(method) = one(method, "the Mcp-Method header is repeated or not ASCII")? else {
        return Ok(None);
    };
    let name = match one(name, "the Mcp-Name header is repeated or not ASCII")? {
        Some(raw) => Some(decode_name(&raw).ok_or(BadRouting::Malformed(
            "the Mcp-Name header carries a malformed base64 sentinel",
        ))?),
        None => None,
    };
    if name.is_none()
        && matches!(
            method.as_str(),
            "tools/call" | "prompts/get" | "resources/read"
        )
    {
        return Err(BadRouting::NameMissing);
    }
    let version = one(
        version,
        "the MCP-Protocol-Version header is repeated or not ASCII",
    )?;
    Ok(Some(Routing {
        method,
        name,
        checked_version: version
            .as_deref()
            .is_some_and(|v| CHECKED_VERSIONS.contains(&v)),
    }))
}

/// `=?base64?…?=` decoded (canonical Base64 of UTF-8 only); any other value as it is;
/// `None` for a malformed sentinel.
pub fn decode_name(raw: &str) -> Option<String> {
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
    use serde_json::json;

    fn r(m: &[&str], n: &[&str], v: &[&str]) -> Result<Option<Routing>, BadRouting> {
        fn b<'a>(s: &[&'a str]) -> Vec<&'a [u8]> {
            s.iter().map(|x| x.as_bytes()).collect()
        }
        routing(&b(m), &b(n), &b(v))
    }

    #[test]
    fn routing_headers_are_read() {
        let x = r(&["tools/call"], &["add"], &["2026-07-28"])
            .unwrap()
            .unwrap();
        assert_eq!(
            (x.method.as_str(), x.name.as_deref()),
            ("tools/call", Some("add"))
        );
        assert!(x.checked_version);
        for v in [
            "2025-11-25",
            "2026-07-27",
            "zzzz-zz-zz",
            "2026-7-28",
            "",
            "2027-01-01",
        ] {
            assert!(
                !r(&["tools/list"], &[], &[v])
                    .unwrap()
                    .unwrap()
                    .checked_version
            );
        }
        assert_eq!(r(&[], &["add"], &[]), Ok(None));
        assert!(method_missing(&[], &[b"2026-07-28"]));
        assert!(method_missing(&[], &[b" 2026-07-28 "]));
        assert!(!method_missing(&[b"ping"], &[b"2026-07-28"]));
        assert!(!method_missing(&[], &[b"2025-11-25"]));
        assert!(!method_missing(&[], &[]));
        assert!(!method_missing(&[], &[b"2026-07-28", b"2026-07-28"]));
        assert_eq!(r(&["tools/call"], &[], &[]), Err(BadRouting::NameMissing));
        for bad in [
            r(&["a", "b"], &[], &[]),
            r(&["tools/call"], &["=?base64?!!?="], &[]),
            r(&["tools/call"], &["=?base64?YR==?="], &[]),
            r(&["tools/call"], &["=?base64?YQ=?="], &[]),
            r(&["tools/call"], &["caf\u{e9}"], &[]),
        ] {
            assert!(matches!(bad, Err(BadRouting::Malformed(_))), "{bad:?}");
        }
        let x = r(&["tools/call"], &["=?base64?w6ljaG8=?="], &[])
            .unwrap()
            .unwrap();
        assert_eq!(x.name.as_deref(), Some("écho"));
    }

    #[test]
    fn needed_permissions_of_messages_and_batches() {
        let call = json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}});
        assert_eq!(
            needed_permissions(&call),
            vec![vec![
                "tools:call".to_string(),
                "tools:call:echo".to_string()
            ]]
        );
        let batch = json!([call, {"method":"resources/read","params":{"uri":"x"}},
                           {"method":"prompts/get","params":{"name":"p"}},
                           {"method":"tools/list"}, 3, {"method":"tools/call"}]);
        let n = needed_permissions(&batch);
        assert_eq!(n.len(), 4);
        assert_eq!(n[1], vec!["resources:read".to_string()]);
        assert_eq!(n[2][1], "prompts:get:p");
        assert_eq!(n[3], vec!["tools:call".to_string()]);
        assert!(needed_permissions(&json!({"method":"initialize"})).is_empty());
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
