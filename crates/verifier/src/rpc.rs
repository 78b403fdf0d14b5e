//! The answers an MCP server gives a refused request: JSON-RPC error bodies, HTTP statuses
//! and `WWW-Authenticate` challenges, as strings, so any HTTP stack can send them. They are
//! the answers of `mcp-key-manager serve`, word for word.
//!
//! Invariant: no answer carries the presented key; a challenge holds only fixed reasons
//! and permissions that pass [`scope_safe`].

use serde_json::json;

use crate::limit::{Decision, RateLimit};
use crate::verifier::Code;

/// Largest request body read to decide tool permissions (answered 413 past it).
pub const MAX_BODY_BYTES: u64 = 1024 * 1024;

/// JSON-RPC error code for routing headers that disagree with the body (SEP-2243).
pub const HEADER_MISMATCH: i64 = -32020;

/// JSON-RPC error code for a key over its rate limit (answered 429).
pub const RATE_LIMITED: i64 = -32029;

/// The reason given when no key was presented.
pub const NO_KEY: &str = "no API key presented (send X-API-Key or Authorization: Bearer)";

/// The reason given for a verdict.
pub fn reason(code: Code) -> &'static str {
    match code {
        Code::Malformed => "the API key is malformed",
        Code::NotFound => "unknown API key",
        Code::Revoked => "the API key was revoked",
        Code::Expired => "the API key has expired",
        Code::InsufficientPermissions => "the API key lacks a required permission",
        Code::Valid => "the API key is valid",
    }
}

/// One refusal: what to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// HTTP status.
    pub status: u16,
    /// The JSON-RPC error body (`Content-Type: application/json`, `Cache-Control: no-store`).
    pub body: String,
    /// The `WWW-Authenticate` value, for 401 and 403.
    pub challenge: Option<String>,
    /// Whether to close the connection (the body was not read to its end).
    pub close: bool,
    /// Further headers to send (lowercase names): `Retry-After` and the `RateLimit`
    /// headers of a 429.
    pub headers: Vec<(&'static str, String)>,
}

/// `{"jsonrpc":"2.0","id":null,"error":{"code":…,"message":…,"data":{"code":…}}}`.
pub fn error_body(code: i64, message: &str, data_code: &str) -> String {
    json!({"jsonrpc": "2.0", "id": null,
           "error": {"code": code, "message": message, "data": {"code": data_code}}})
    .to_string()
}

fn refusal(status: u16, code: i64, message: &str, data_code: &str) -> Refusal {
    Refusal {
        status,
        body: error_body(code, message, data_code),
        challenge: None,
        close: false,
        headers: Vec::new(),
    }
}

/// 401 for a verdict other than valid or insufficient permissions; `no_key` when no
/// usable key was presented.
pub fn unauthorized(code: Code, no_key: bool) -> Refusal {
    let why = if no_key { NO_KEY } else { reason(code) };
    let mut r = refusal(401, -32001, why, code.as_str());
    r.challenge = Some(format!(
        "Bearer error=\"invalid_token\", error_description=\"{why}\""
    ));
    r
}

/// 403 for a key lacking `missing` (names that fail [`scope_safe`] are left out of the
/// challenge).
pub fn forbidden(missing: &[String]) -> Refusal {
    lacking("the API key lacks the permission", missing)
}

/// 403 `insufficient_scope`: `what` lacks `missing` (only names that pass [`scope_safe`]).
fn lacking(what: &str, missing: &[String]) -> Refusal {
    let safe: Vec<&str> = missing
        .iter()
        .map(String::as_str)
        .filter(|p| scope_safe(p))
        .collect();
    let list = safe.join(" ");
    let why = format!("{what}{}: {list}", if safe.len() > 1 { "s" } else { "" });
    let mut r = refusal(403, -32003, &why, Code::InsufficientPermissions.as_str());
    r.challenge = Some(format!(
        "Bearer error=\"insufficient_scope\", scope=\"{list}\""
    ));
    r
}

/// 429 `RATE_LIMITED` for a valid key over `limit`, carrying the headers of
/// [`rate_limit_headers`].
pub fn rate_limited(limit: RateLimit, d: &Decision) -> Refusal {
    let secs = d.retry_after_secs();
    let body = json!({"jsonrpc": "2.0", "id": null, "error": {
        "code": RATE_LIMITED,
        "message": format!("rate limit exceeded for this API key ({limit}); retry after {secs} s"),
        "data": {"code": "RATE_LIMITED", "retry_after": secs}}});
    Refusal {
        status: 429,
        body: body.to_string(),
        challenge: None,
        close: false,
        headers: rate_limit_headers(limit, d),
    }
}

/// The headers every answer for a key with `limit` carries after decision `d`:
/// `RateLimit-Policy`, `RateLimit`, and for a refusal `Retry-After` (docs/verifier.md,
/// "Rate limits").
pub fn rate_limit_headers(limit: RateLimit, d: &Decision) -> Vec<(&'static str, String)> {
    let mut h = vec![
        ("ratelimit-policy", limit.policy_header()),
        ("ratelimit", d.header()),
    ];
    if !d.allowed {
        h.push(("retry-after", d.retry_after_secs().to_string()));
    }
    h
}

/// 401 `INVALID_TOKEN` (or `EXPIRED`) for an access token that does not verify; `why`
/// must hold no token (docs/oauth.md).
pub fn invalid_token(data_code: &str, why: &str) -> Refusal {
    let mut r = refusal(401, -32001, why, data_code);
    r.challenge = Some(format!(
        "Bearer error=\"invalid_token\", error_description=\"{}\"",
        why.replace(['"', '\\'], "'")
    ));
    r
}

/// 403 for an access token lacking `missing` (only the scope this request needs is named).
pub fn insufficient_scope(missing: &[String]) -> Refusal {
    lacking("the access token lacks the scope", missing)
}

/// 403 `METHOD_UNSEEN`: a request that must show its JSON-RPC method and shows none.
pub fn method_unseen() -> Refusal {
    refusal(
        403,
        -32003,
        "tool permissions: the request shows no JSON-RPC method (no body and no Mcp-Method \
         header), so it is refused",
        "METHOD_UNSEEN",
    )
}

/// 400 for unusable routing headers.
pub fn bad_routing(why: &str) -> Refusal {
    refusal(400, HEADER_MISMATCH, why, "BAD_ROUTING")
}

/// 400 `HEADER_MISMATCH`: `Mcp-Method`/`Mcp-Name` disagree with the body.
pub fn header_mismatch() -> Refusal {
    refusal(
        400,
        HEADER_MISMATCH,
        "the Mcp-Method/Mcp-Name headers do not match the request body",
        "HEADER_MISMATCH",
    )
}

/// 400 `PARSE_ERROR`: the body is not JSON.
pub fn parse_error() -> Refusal {
    refusal(400, -32700, "the body is not JSON", "PARSE_ERROR")
}

/// 400 `BAD_BODY`: the body could not be read.
pub fn bad_body() -> Refusal {
    refusal(
        400,
        -32600,
        "the request body could not be read",
        "BAD_BODY",
    )
}

/// 413 `BODY_TOO_LARGE` (the connection is to be closed).
pub fn body_too_large() -> Refusal {
    let mut r = refusal(
        413,
        -32600,
        &format!("the request body is larger than {MAX_BODY_BYTES} bytes"),
        "BODY_TOO_LARGE",
    );
    r.close = true;
    r
}

/// A permission that can stand inside the quoted `scope` of `WWW-Authenticate`: visible
/// ASCII without `"` and `\`.
pub fn scope_safe(p: &str) -> bool {
    !p.is_empty()
        && p.bytes()
            .all(|b| matches!(b, 0x21 | 0x23..=0x5b | 0x5d..=0x7e))
}

/// The permissions a key holding `held` lacks for `needed` (alternatives, any one of
/// which satisfies an entry; see [`crate::routing::needed_permissions`]), naming for each
/// unmet entry the narrowest alternative that can be quoted.
pub fn missing_permissions(held: &[String], needed: &[Vec<String>]) -> Vec<String> {
    let mut missing: Vec<String> = Vec::new();
    for alternatives in needed {
        if alternatives.is_empty()
            || alternatives
                .iter()
                .any(|a| crate::permits::permits(held, a))
        {
            continue;
        }
        let narrow = alternatives
            .iter()
            .rev()
            .find(|a| scope_safe(a))
            .unwrap_or(&alternatives[0]);
        if !missing.contains(narrow) {
            missing.push(narrow.clone());
        }
    }
    missing
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_those_of_serve() {
        let r = unauthorized(Code::NotFound, false);
        assert_eq!(r.status, 401);
        let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(
            v,
            json!({"jsonrpc":"2.0","id":null,"error":{"code":-32001,
                   "message":"unknown API key","data":{"code":"NOT_FOUND"}}})
        );
        assert_eq!(
            r.challenge.as_deref(),
            Some("Bearer error=\"invalid_token\", error_description=\"unknown API key\"")
        );
        assert!(unauthorized(Code::Malformed, true).body.contains(NO_KEY));
        let f = forbidden(&["tools:call:add".into()]);
        assert_eq!(f.status, 403);
        assert!(f.body.contains("-32003") && f.body.contains("INSUFFICIENT_PERMISSIONS"));
        assert_eq!(
            f.challenge.as_deref(),
            Some("Bearer error=\"insufficient_scope\", scope=\"tools:call:add\"")
        );
        assert!(scope_safe("tools:call:echo"));
        assert!(!scope_safe("a\"b") && !scope_safe("a b") && !scope_safe(""));
    }

    #[test]
    fn missing_names_the_narrowest_alternative() {
        let needed = vec![
            vec!["tools:call".to_string(), "tools:call:add".to_string()],
            vec!["resources:read".to_string()],
        ];
        assert_eq!(
            missing_permissions(&["resources:read".into()], &needed),
            vec!["tools:call:add".to_string()]
        );
        assert!(
            missing_permissions(&["tools:call".into(), "resources:read".into()], &needed)
                .is_empty()
        );
    }
}
