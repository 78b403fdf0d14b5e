//! The answers of `serve`: `/auth` (and every path below it), `/healthz`, `/metrics`.
//!
//! Invariant: no response, header or log line carries the presented key. Header values
//! taken from the verifier file (ids, names, permissions) are made header-safe first, so a
//! hand-edited file cannot inject headers or break a proxy's parsing.

use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode};
use serde_json::{json, Value};

use super::metrics::BadBody;
use super::state::{State, MAX_HEAD_BYTES};
use super::tools;
use mcp_key_vault::verify::{Code, KeyInfo};
use mcp_key_verifier::api_key_from_header_values;
use mcp_key_verifier::routing;
use mcp_key_verifier::rpc::{self, scope_safe};

/// Largest request body read with `--tool-permissions`.
pub use rpc::MAX_BODY_BYTES;

/// The response body type.
pub type Body = Full<Bytes>;

static X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");
static X_MCP_REQUIRE: HeaderName = HeaderName::from_static("x-mcp-require");
static X_MCP_KEY_ID: HeaderName = HeaderName::from_static("x-mcp-key-id");
static X_MCP_KEY_PERMISSIONS: HeaderName = HeaderName::from_static("x-mcp-key-permissions");
static X_MCP_KEY_NAME: HeaderName = HeaderName::from_static("x-mcp-key-name");
static X_MCP_SUBJECT: HeaderName = HeaderName::from_static("x-mcp-subject");
static X_MCP_ERROR: HeaderName = HeaderName::from_static("x-mcp-error");

/// Routes one request.
pub async fn handle(req: Request<Incoming>, st: Arc<State>) -> Result<Response<Body>, Infallible> {
    // hyper bounds what it buffers, not the head itself: depending on how the bytes arrive it
    // let up to 48 KiB through. The documented limit is counted here, on what was parsed.
    if head_size(&req) > MAX_HEAD_BYTES {
        return Ok(json_response(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            &json!({"error": "the request head is larger than 32 KiB"}),
        ));
    }
    let path = req.uri().path();
    Ok(if path == "/auth" || path.starts_with("/auth/") {
        let t0 = Instant::now();
        let r = auth(req, &st).await;
        st.metrics.latency(t0.elapsed());
        r
    } else if path == "/healthz" {
        healthz(&st)
    } else if path == "/metrics" {
        let v = st.source.current();
        let mut text = st.metrics.render(v.revision(), v.len());
        if st.usage.is_store() {
            text.push_str(&format!(
                "# HELP mcp_key_serve_usage_dropped_total Requests whose usage counts were \
                 dropped while the store was away (too many keys waiting).\n\
                 # TYPE mcp_key_serve_usage_dropped_total counter\n\
                 mcp_key_serve_usage_dropped_total {}\n",
                st.usage.dropped()
            ));
        }
        limit_metrics(&st, &mut text);
        if let Some(b) = &st.bridge {
            b.render_metrics(&mut text);
        }
        if let Some(age) = st.bridge.as_ref().and_then(|b| b.state_age()) {
            text.push_str(&format!(
                "# HELP mcp_key_serve_authorization_state_age_seconds Time since the shared \
                 state's revocations were last confirmed current.\n\
                 # TYPE mcp_key_serve_authorization_state_age_seconds gauge\n\
                 mcp_key_serve_authorization_state_age_seconds {:.3}\n",
                age.as_secs_f64().min(1e9)
            ));
        }
        if let Some(age) = st.source.age() {
            text.push_str(&format!(
                "# HELP mcp_key_serve_store_age_seconds Time since the shared store was last \
                 reached.\n# TYPE mcp_key_serve_store_age_seconds gauge\n\
                 mcp_key_serve_store_age_seconds {:.3}\n",
                age.as_secs_f64().min(1e9)
            ));
        }
        let mut r = Response::new(Full::new(Bytes::from(text)));
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        );
        r
    } else if let Some(b) = st.bridge.as_ref().filter(|b| b.owns(path)) {
        let b = Arc::clone(b);
        let served = super::bridge::Served {
            keys: st.source.current(),
            log: Arc::clone(&st.log),
            read_timeout: st.read_timeout,
        };
        b.handle(req, served).await
    } else if let Some(t) = st.tokens.as_ref().filter(|_| is_metadata_path(path)) {
        // RFC 9728: public, cacheable, readable from a browser-based client.
        super::bridge::public_json(t.metadata.clone())
    } else {
        json_response(
            StatusCode::NOT_FOUND,
            &json!({"error": "unknown path; serve answers /auth, /healthz and /metrics"}),
        )
    })
}

/// `/.well-known/oauth-protected-resource`, alone or with the resource's path after it.
fn is_metadata_path(path: &str) -> bool {
    const WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";
    path.strip_prefix(WELL_KNOWN)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

fn healthz(st: &State) -> Response<Body> {
    if st.draining.load(Ordering::Relaxed) {
        return json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({"status": "shutting down"}),
        );
    }
    let v = st.source.current();
    let reload_error = st.last_reload_error();
    let age = st.source.age();
    let stale = age.is_some_and(|a| a > st.max_stale);
    let mut body = json!({
        "status": if stale { "stale" } else { "ok" },
        "revision": v.revision(),
        "keys": v.len(),
        "names": v.has_names(),
        "reload_error": reload_error,
    });
    if let Some(a) = age {
        body["store_age_seconds"] = json!((a.as_secs_f64().min(1e9) * 1000.0).round() / 1000.0);
        body["max_stale_seconds"] = json!(st.max_stale.as_secs());
    }
    // The bridge's shared revocations: past --max-stale its tokens get 503, keys do not.
    if let Some(a) = st.bridge.as_ref().and_then(|b| b.state_age()) {
        body["authorization_state_age_seconds"] =
            json!((a.as_secs_f64().min(1e9) * 1000.0).round() / 1000.0);
        body["authorization_state"] = json!(if a > st.max_stale { "stale" } else { "ok" });
    }
    let status = if stale {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    json_response(status, &body)
}

/// The size of a request head as it was sent: the request line and every `name: value\r\n`.
fn head_size<B>(req: &Request<B>) -> usize {
    let line = req.method().as_str().len()
        + req.uri().path_and_query().map_or(1, |p| p.as_str().len())
        + " HTTP/1.1\r\n".len()
        + 1;
    req.headers()
        .iter()
        .fold(line, |n, (k, v)| n + k.as_str().len() + v.len() + 4)
}

fn json_response(status: StatusCode, body: &Value) -> Response<Body> {
    json_text(status, body.to_string())
}

/// A JSON body that must not be cached.
fn json_text(status: StatusCode, body: String) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn rpc_error(status: StatusCode, code: i64, message: &str, data_code: &str) -> Response<Body> {
    let mut r = json_text(status, rpc::error_body(code, message, data_code));
    set_error_code(&mut r, data_code);
    r
}

/// `X-MCP-Error: <data.code>` on a refusal, so a proxy that writes its own error body
/// (nginx after `auth_request`) can say what serve said.
fn set_error_code(r: &mut Response<Body>, data_code: &str) {
    if let Ok(v) = HeaderValue::from_str(data_code) {
        r.headers_mut().insert(X_MCP_ERROR.clone(), v);
    }
}

/// A refusal of the verifier crate's [`rpc`] as a response: the same words as every
/// middleware's.
fn refusal(r: rpc::Refusal) -> Response<Body> {
    let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let data_code = serde_json::from_str::<Value>(&r.body)
        .ok()
        .and_then(|v| v["error"]["data"]["code"].as_str().map(str::to_owned));
    let mut resp = json_text(status, r.body);
    if let Some(c) = data_code {
        set_error_code(&mut resp, &c);
    }
    let h = resp.headers_mut();
    if let Some(c) = r.challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
        h.insert(header::WWW_AUTHENTICATE, c);
    }
    if r.close {
        h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    for (name, value) in r.headers {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(HeaderName::from_static(name), v);
        }
    }
    resp
}

fn unauthorized(code: Code, no_key: bool) -> Response<Body> {
    refusal(rpc::unauthorized(code, no_key))
}

fn forbidden(missing: &[String]) -> Response<Body> {
    refusal(rpc::forbidden(missing))
}

/// A value from the verifier file as a header value: visible ASCII (and inner spaces when
/// `spaces`) kept, every other byte, `%` and `,` percent-encoded, at most 256 bytes of input.
pub fn header_safe(s: &str, spaces: bool) -> HeaderValue {
    let mut end = s.len().min(256);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    let mut out = String::with_capacity(end);
    for b in s[..end].trim().bytes() {
        if (0x21..=0x7e).contains(&b) && b != b'%' && b != b',' || (spaces && b == b' ') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    HeaderValue::from_str(&out).expect("only visible ASCII and spaces remain")
}

fn content_length(h: &HeaderMap) -> Option<u64> {
    h.get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Reads the body, bounded in size and time; on failure the answer to send.
async fn read_body(
    body: Incoming,
    headers: &HeaderMap,
    st: &State,
) -> Result<Bytes, Response<Body>> {
    let too_large = || {
        st.metrics.bad_body(BadBody::TooLarge);
        refusal(rpc::body_too_large())
    };
    if content_length(headers).is_some_and(|n| n > MAX_BODY_BYTES) {
        return Err(too_large());
    }
    let deadline = tokio::time::Instant::now() + st.read_timeout;
    // One of a bounded number of bodies in memory at once; waiting for a place counts
    // against the same read timeout.
    let Ok(Ok(_permit)) = tokio::time::timeout_at(deadline, st.body_permits.acquire()).await else {
        return Err(rpc_error(
            StatusCode::SERVICE_UNAVAILABLE,
            -32600,
            "too many request bodies are being read; try again",
            "BUSY",
        ));
    };
    let limited = Limited::new(body, MAX_BODY_BYTES as usize);
    match tokio::time::timeout_at(deadline, limited.collect()).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.is::<LengthLimitError>() => Err(too_large()),
        Ok(Err(_)) => {
            // The client went away or sent a broken chunked body: no one reads this.
            st.metrics.bad_body(BadBody::NotJson);
            Err(refusal(rpc::bad_body()))
        }
        Err(_) => {
            st.metrics.bad_body(BadBody::Timeout);
            let mut r = rpc_error(
                StatusCode::REQUEST_TIMEOUT,
                -32600,
                &format!(
                    "the request body did not arrive within {} s",
                    st.read_timeout.as_secs()
                ),
                "BODY_TIMEOUT",
            );
            r.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            Err(r)
        }
    }
}

/// What the request needs under `--tool-permissions`, from its routing headers or its body
/// (see `tools`); on failure the answer to send, 403 `METHOD_UNSEEN` when neither shows a
/// method.
async fn needed_by_request(
    h: &HeaderMap,
    body: Incoming,
    st: &State,
) -> Result<Vec<Vec<String>>, Response<Body>> {
    let routing = tools::from_headers(h).map_err(|e| {
        st.metrics.bad_body(BadBody::NotJson);
        refusal(rpc::bad_routing(e.reason()))
    })?;
    // A body, when one comes, is read: it is what the upstream will run.
    let has_body =
        content_length(h).is_some_and(|n| n > 0) || h.contains_key(header::TRANSFER_ENCODING);
    if !has_body && st.trust_routing_headers {
        if let Some(r) = routing.as_ref().filter(|r| r.checked_version) {
            // The upstream refuses a body that disagrees with these headers.
            return Ok(routing::needed_for(&r.method, r.name.as_deref())
                .into_iter()
                .collect());
        }
    }
    let bytes = read_body(body, h, st).await?;
    if bytes.trim_ascii().is_empty() {
        return Err(rpc_error(
            StatusCode::FORBIDDEN,
            -32003,
            "--tool-permissions: the request shows no JSON-RPC method (no body, and no \
             trusted Mcp-Method header), so it is refused; forward the body to /auth, or \
             run serve with --trust-routing-headers in front of a server that checks \
             Mcp-Method/Mcp-Name (protocol 2026-07-28)",
            "METHOD_UNSEEN",
        ));
    }
    let Ok(message) = serde_json::from_slice::<Value>(&bytes) else {
        st.metrics.bad_body(BadBody::NotJson);
        return Err(refusal(rpc::parse_error()));
    };
    if routing
        .as_ref()
        .is_some_and(|r| !routing::body_matches(r, &message))
    {
        st.metrics.bad_body(BadBody::NotJson);
        return Err(refusal(rpc::header_mismatch()));
    }
    Ok(routing::needed_permissions(&message))
}

/// Most distinct permissions one request may require (`--require` and `X-MCP-Require`).
const MAX_REQUIRED: usize = 64;

/// Decides `/auth`. The key is judged before any body is read: an unauthenticated client
/// never gets a body read (or a body permit) out of this service.
async fn auth(req: Request<Incoming>, st: &State) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let h = &parts.headers;
    if st.source.age().is_some_and(|a| a > st.max_stale) {
        // Cut off from the shared store for longer than allowed: a key revoked meanwhile
        // would still pass, so nothing does.
        return rpc_error(
            StatusCode::SERVICE_UNAVAILABLE,
            -32001,
            "the key store has not been reached for longer than --max-stale; try again later",
            "STALE",
        );
    }
    let verifier = st.source.current();

    let required = match required_permissions(h, &st.require) {
        Ok(r) => r,
        Err(why) => return rpc_error(StatusCode::BAD_REQUEST, -32600, why, "BAD_REQUIRE"),
    };
    if let (Some(tokens), Some(token)) = (&st.tokens, bearer_token(h)) {
        let r = token_auth(tokens, token, &required, h, body, st).await;
        return with_resource_metadata(r, st);
    }
    let key = presented_key(h);
    let now = Utc::now();
    if let (Some(tokens), None) = (&st.tokens, key) {
        // No credentials at all: the RFC 9728 challenge, naming where to get a token.
        st.metrics.verdict(Code::Malformed);
        return no_credentials(tokens, &required);
    }
    let verdict = verifier.verify_at(key.unwrap_or(""), &required, now);
    match verdict.code {
        Code::Valid => {}
        Code::InsufficientPermissions => {
            decided(st, now, verdict.code, verdict.key);
            let r = forbidden(&missing_required(&required, verdict.key));
            return with_resource_metadata(r, st);
        }
        code => {
            decided(st, now, code, verdict.key);
            return with_resource_metadata(unauthorized(code, key.is_none()), st);
        }
    }
    let Some(info) = verdict.key else {
        // A valid verdict always names its key; answer as for an unknown key if not.
        return unauthorized(Code::NotFound, false);
    };

    let tools = if st.tool_permissions {
        match check_tool_permissions(&parts.headers, body, st, info, now).await {
            // The tools are only counted in a shared store's usage: named only then.
            Ok(needed) if st.usage.is_store() => tools_called(&needed),
            Ok(_) => Vec::new(),
            Err(r) => return with_resource_metadata(r, st),
        }
    } else if st.usage.is_store() {
        // Usage per tool without reading the body: what the 2026-07-28 headers declare.
        match tools::from_headers(&parts.headers) {
            Ok(Some(r)) if r.method == "tools/call" => r.name.into_iter().collect(),
            _ => Vec::new(),
        }
    } else {
        Vec::new()
    };

    let limited = match info.rate_limit {
        None => None,
        Some(limit) => {
            let d = st.limits.check(&info.id, limit).await;
            if !d.allowed {
                st.limit_refusals.add(&info.id);
                st.log.rate_limited(info);
                return refusal(rpc::rate_limited(limit, &d));
            }
            Some((limit, d))
        }
    };
    decided(st, now, Code::Valid, Some(info));
    st.usage.record_tools(&info.id, &tools, now);
    let mut r = accepted(info);
    if let Some((limit, d)) = limited {
        add_limit_headers(&mut r, limit, &d);
    }
    r
}

/// The rate-limit counters of `/metrics`: 429s per key id, and decisions made alone while
/// the limits store was away.
fn limit_metrics(st: &State, text: &mut String) {
    use std::fmt::Write as _;
    let _ = writeln!(
        text,
        "# HELP mcp_key_serve_rate_limited_total Requests refused 429 for a key over its rate \
         limit, by key id.\n# TYPE mcp_key_serve_rate_limited_total counter"
    );
    for (id, n) in st.limit_refusals.snapshot() {
        let id = header_safe(&id, false);
        let id = id.to_str().unwrap_or("").replace(['"', '\\'], "_");
        let _ = writeln!(
            text,
            "mcp_key_serve_rate_limited_total{{key_id=\"{id}\"}} {n}"
        );
    }
    if let Some(n) = st.limits.fallbacks() {
        let _ = writeln!(
            text,
            "# HELP mcp_key_serve_limit_fallbacks_total Rate-limit decisions this instance made \
             alone because the limits store was away.\n\
             # TYPE mcp_key_serve_limit_fallbacks_total counter\n\
             mcp_key_serve_limit_fallbacks_total {n}"
        );
    }
}

/// The `RateLimit-Policy`, `RateLimit` (and for a refusal `Retry-After`) headers.
fn add_limit_headers(
    r: &mut Response<Body>,
    limit: mcp_key_verifier::RateLimit,
    d: &mcp_key_verifier::limit::Decision,
) {
    let h = r.headers_mut();
    for (name, value) in rpc::rate_limit_headers(limit, d) {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(HeaderName::from_static(name), v);
        }
    }
}

/// The permissions a request needs: `--require` and those its `X-MCP-Require` headers
/// name; on a bad header, what is wrong with it (answered 400 `BAD_REQUIRE`).
fn required_permissions<'a>(
    h: &'a HeaderMap,
    require: &'a [String],
) -> Result<Vec<&'a str>, &'static str> {
    let mut required: Vec<&str> = require.iter().map(String::as_str).collect();
    for v in h.get_all(&X_MCP_REQUIRE) {
        // An unreadable requirement must not be dropped (that would let a request through
        // with less than the route demands): refuse the request instead.
        let Ok(s) = v.to_str() else {
            return Err("the X-MCP-Require header is not ASCII");
        };
        for p in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            // Bounded and checked before the key: a header of thousands of tokens must not
            // buy an unauthenticated client CPU time (the list is searched per token).
            if !mcp_key_vault::Permission::is_valid(p) {
                return Err("the X-MCP-Require header names an invalid permission");
            }
            if !required.contains(&p) {
                if required.len() >= MAX_REQUIRED {
                    return Err("the X-MCP-Require header names too many permissions");
                }
                required.push(p);
            }
        }
    }
    Ok(required)
}

/// The key presented in `X-API-Key` or `Authorization`, if any.
fn presented_key(h: &HeaderMap) -> Option<&str> {
    // Every value of each header: a repeated one gives no key (the one header rule). A
    // value that is not visible ASCII is present but holds no usable key.
    let all = |name: &HeaderName| -> Vec<&str> {
        h.get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap_or(""))
            .collect()
    };
    api_key_from_header_values(&all(&X_API_KEY), &all(&header::AUTHORIZATION))
}

/// Counts a decision: in the metrics, and for an identified key in its usage and (when
/// refused) the refusal log.
fn decided(st: &State, now: DateTime<Utc>, code: Code, info: Option<&KeyInfo>) {
    st.metrics.verdict(code);
    if let Some(k) = info {
        st.usage.record(&k.id, code, now);
        if code != Code::Valid {
            st.log.refused(k, code);
        }
    }
}

/// The value of the one `Authorization: Bearer` header when it holds a JWT (and no
/// `X-API-Key` is sent): an access token rather than a key.
fn bearer_token(h: &HeaderMap) -> Option<&str> {
    if h.contains_key(&X_API_KEY) {
        return None;
    }
    let mut all = h.get_all(header::AUTHORIZATION).iter();
    let (Some(v), None) = (all.next(), all.next()) else {
        return None;
    };
    let v = v.to_str().ok()?.trim();
    let (scheme, token) = v.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer")
        && mcp_key_verifier::oauth::TokenVerifier::looks_like_token(token))
    .then_some(token)
}

/// `/auth` for an access token: the token, then `--require`/`X-MCP-Require`, then the
/// tool permissions, against its scopes.
async fn token_auth(
    tokens: &Arc<super::oauth::Tokens>,
    token: &str,
    required: &[&str],
    h: &HeaderMap,
    body: Incoming,
    st: &State,
) -> Response<Body> {
    // A token of this serve's own issuer: its key is looked at on every request.
    let keys = st.source.current();
    let own = st
        .bridge
        .as_ref()
        .and_then(|b| b.admit(token, &keys, Utc::now().timestamp(), st.max_stale));
    let (subject, permissions, key): (std::borrow::Cow<'_, str>, Arc<[String]>, _) = match own {
        Some(Ok(a)) => (a.key.id.as_str().into(), a.permissions, Some(a.key)),
        Some(Err(e)) if e.code == "STALE" => {
            st.metrics.token(e.code);
            return rpc_error(StatusCode::SERVICE_UNAVAILABLE, -32001, &e.why, "STALE");
        }
        Some(Err(e)) => {
            st.metrics.token(e.code);
            return refusal(rpc::invalid_token(e.code, &e.why));
        }
        None => match tokens.verify(token).await {
            Ok(i) => (i.subject.clone().into(), i.permissions.clone().into(), None),
            Err(e) => {
                st.metrics.token(e.code());
                return refusal(rpc::invalid_token(e.code(), &e.description()));
            }
        },
    };
    let missing: Vec<String> = required
        .iter()
        .filter(|r| !mcp_key_verifier::permits(&permissions, r))
        .map(|r| r.to_string())
        .collect();
    if !missing.is_empty() {
        st.metrics.token("INSUFFICIENT_SCOPE");
        return refusal(rpc::insufficient_scope(&missing));
    }
    if st.tool_permissions {
        let needed = match needed_by_request(h, body, st).await {
            Ok(n) => n,
            Err(r) => return r,
        };
        let missing = rpc::missing_permissions(&permissions, &needed);
        if !missing.is_empty() {
            st.metrics.token("INSUFFICIENT_SCOPE");
            return refusal(rpc::insufficient_scope(&missing));
        }
    }
    // A token of this serve's own issuer counts as its key's use, under the key's limit.
    let mut limited = None;
    if let Some(k) = &key {
        if let Some(limit) = k.rate_limit {
            let d = st.limits.check(&k.id, limit).await;
            if !d.allowed {
                st.limit_refusals.add(&k.id);
                st.log.rate_limited(k);
                return refusal(rpc::rate_limited(limit, &d));
            }
            limited = Some((limit, d));
        }
        st.usage.record(&k.id, Code::Valid, Utc::now());
    }
    st.metrics.token("VALID");
    let mut r = Response::new(Full::new(Bytes::new()));
    if let Some((limit, d)) = limited {
        add_limit_headers(&mut r, limit, &d);
    }
    let out = r.headers_mut();
    out.insert(X_MCP_SUBJECT.clone(), header_safe(&subject, false));
    out.insert(
        X_MCP_KEY_PERMISSIONS.clone(),
        permissions_header(&permissions),
    );
    // An external issuer's token has no key id or name: empty, so that no client-sent one
    // survives a proxy. This serve's own tokens name the key they stand for.
    let (id, name) = key.map_or(("", None), |k| (k.id.as_str(), k.name.as_deref()));
    out.insert(X_MCP_KEY_ID.clone(), header_safe(id, false));
    out.insert(
        X_MCP_KEY_NAME.clone(),
        header_safe(name.unwrap_or(""), true),
    );
    out.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// 401 for a request with no credentials when tokens are on: `Bearer resource_metadata=…`
/// (RFC 9728 §5.1), with the scope the request needs when it names one.
fn no_credentials(tokens: &super::oauth::Tokens, required: &[&str]) -> Response<Body> {
    let mut r = unauthorized(Code::Malformed, true);
    let scope: Vec<&str> = required.iter().copied().filter(|p| scope_safe(p)).collect();
    let mut challenge = format!("Bearer resource_metadata=\"{}\"", tokens.metadata_url);
    if !scope.is_empty() {
        challenge.push_str(&format!(", scope=\"{}\"", scope.join(" ")));
    }
    if let Ok(v) = HeaderValue::from_str(&challenge) {
        r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    r
}

/// A refusal's challenge with `resource_metadata` added when tokens are on.
fn with_resource_metadata(mut r: Response<Body>, st: &State) -> Response<Body> {
    let Some(t) = &st.tokens else { return r };
    let h = r.headers_mut();
    let Some(c) = h
        .get(header::WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
    else {
        return r;
    };
    if c.contains("resource_metadata=") {
        return r;
    }
    let c = format!("{c}, resource_metadata=\"{}\"", t.metadata_url);
    if let Ok(v) = HeaderValue::from_str(&c) {
        h.insert(header::WWW_AUTHENTICATE, v);
    }
    r
}

/// Permissions as the `X-MCP-Key-Permissions` value: those safe in a header, comma-joined.
fn permissions_header(perms: &[String]) -> HeaderValue {
    let perms: Vec<&str> = perms
        .iter()
        .map(String::as_str)
        .filter(|p| scope_safe(p) && !p.contains(','))
        .collect();
    HeaderValue::from_str(&perms.join(",")).unwrap_or(HeaderValue::from_static(""))
}

/// The required permissions the key lacks, those safe to name in a response.
fn missing_required(required: &[&str], key: Option<&KeyInfo>) -> Vec<String> {
    let perms = key.map(|k| &k.permissions[..]).unwrap_or_default();
    required
        .iter()
        .filter(|r| !mcp_key_verifier::permits(perms, r))
        .filter(|r| scope_safe(r))
        .map(|r| r.to_string())
        .collect()
}

/// The tools a request calls, from what it needs (`tools:call:<name>` alternatives).
fn tools_called(needed: &[Vec<String>]) -> Vec<String> {
    let mut tools: Vec<String> = Vec::new();
    for alternatives in needed {
        for p in alternatives {
            if let Some(t) = p.strip_prefix("tools:call:") {
                if !tools.iter().any(|x| x == t) {
                    tools.push(t.to_owned());
                }
            }
        }
    }
    tools
}

/// `--tool-permissions`: whether the key `info` (already found valid) holds what the
/// request's method and tool need (what it needs, when it does); if not, the answer to
/// send, counted as a refusal when it is a 403.
async fn check_tool_permissions(
    h: &HeaderMap,
    body: Incoming,
    st: &State,
    info: &KeyInfo,
    now: DateTime<Utc>,
) -> Result<Vec<Vec<String>>, Response<Body>> {
    let needed = match needed_by_request(h, body, st).await {
        Ok(n) => n,
        Err(r) => {
            if r.status() == StatusCode::FORBIDDEN {
                decided(st, now, Code::InsufficientPermissions, Some(info));
            }
            return Err(r);
        }
    };
    let missing = rpc::missing_permissions(&info.permissions, &needed);
    if !missing.is_empty() {
        decided(st, now, Code::InsufficientPermissions, Some(info));
        return Err(forbidden(&missing));
    }
    Ok(needed)
}

/// The 200 answer: the key's id, permissions and name for the upstream, made header-safe.
fn accepted(info: &KeyInfo) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::new()));
    let out = r.headers_mut();
    out.insert(X_MCP_KEY_ID.clone(), header_safe(&info.id, false));
    out.insert(X_MCP_SUBJECT.clone(), header_safe(&info.id, false));
    out.insert(
        X_MCP_KEY_PERMISSIONS.clone(),
        permissions_header(&info.permissions),
    );
    // Every identity header, empty when it does not apply, so that a proxy copying them
    // (Traefik, Caddy, Envoy) replaces whatever the client sent.
    let name = info.name.as_deref().unwrap_or("");
    out.insert(X_MCP_KEY_NAME.clone(), header_safe(name, true));
    out.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_values_from_the_file_are_made_safe() {
        assert_eq!(header_safe("ci-bot", true), "ci-bot");
        assert_eq!(header_safe("ci bot", true), "ci bot");
        assert_eq!(header_safe("ci bot", false), "ci%20bot");
        assert_eq!(header_safe("a\r\nX-Evil: 1", true), "a%0D%0AX-Evil: 1");
        assert_eq!(header_safe("équipe,1%", true), "%C3%A9quipe%2C1%25");
        assert_eq!(header_safe(&"x".repeat(1000), true).len(), 256);
        assert!(scope_safe("tools:call:echo"));
        assert!(!scope_safe("a\"b") && !scope_safe("a b") && !scope_safe(""));
    }
}
