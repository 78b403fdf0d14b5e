//! [`RequireApiKey`], a tower layer that guards an HTTP MCP server (feature `tower`).
//!
//! For every request the layer finds the key ([`api_key_from_header_values`], over every
//! `X-API-Key` and `Authorization` value), verifies it
//! against the current verifier and, when the key is refused, answers as
//! `mcp-key-manager serve` does (see [`crate::rpc`]): 401 with a JSON-RPC error and a
//! `WWW-Authenticate: Bearer error="invalid_token"` challenge, 403 with
//! `error="insufficient_scope"` for a missing permission. With
//! [`RequireApiKey::tool_permissions`] it also reads the body (at most
//! [`rpc::MAX_BODY_BYTES`], else 413) and the `Mcp-Method`/`Mcp-Name` headers, and asks for
//! `tools:call` or `tools:call:<tool>`, `prompts:get` or `prompts:get:<prompt>`, and
//! `resources:read` (see [`crate::routing`]); headers that disagree with the body are
//! answered 400 (`-32020`), as is a POST of protocol 2026-07-28 without `Mcp-Method`, and a
//! POST that shows no method at all is refused (403 `METHOD_UNSEEN`). A key with a rate limit (set in the vault, carried in the verifier)
//! is held to it in this process (every clone of the layer shares one count): 429 with
//! `Retry-After` over it, and the `RateLimit-Policy`/`RateLimit` headers on every answer
//! (docs/verifier.md, "Rate limits"). An accepted request carries the caller's [`crate::KeyInfo`]
//! in its extensions (with feature `oauth` and [`RequireApiKey::access_tokens`], an
//! accepted access token's `oauth::TokenInfo` instead).
//!
//! Body types: the request body must be `From<Bytes>` (the layer hands on the body it
//! read) and the response body `From<String>` (for its refusals); `axum::body::Body` is
//! both, so put the layer on an axum `Router` (`.layer(...)`). The layer does not time
//! out a slow body: the server's own read timeout does. It never logs, and never echoes
//! the key.
//!
//! ```ignore
//! let watched = Arc::new(Watched::open("verifier.json", |e| eprintln!("{e}"))?);
//! let app = axum::Router::new()
//!     .nest_service("/mcp", mcp_service)
//!     .layer(RequireApiKey::new(watched).tool_permissions(true));
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde_json::Value;
use tower_layer::Layer;
use tower_service::Service;

use crate::headers::api_key_from_header_values;
use crate::limit::Limiter;
use crate::permits::permits;
use crate::routing;
use crate::rpc::{self, Refusal};
use crate::verifier::{Code, Verifier};
use crate::watch::Watched;

/// Every value of header `name`, a value that is not visible ASCII (or SP/HTAB) as "".
fn header_values(h: &http::HeaderMap, name: impl header::AsHeaderName) -> Vec<&str> {
    h.get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap_or(""))
        .collect()
}

#[derive(Clone)]
enum Source {
    Watched(Arc<Watched>),
    Fixed(Arc<Verifier>),
}

/// A request let through, and the headers its answer gets.
type Checked<B> = (Request<B>, Vec<(&'static str, String)>);

/// A tower [`Layer`] that lets through only requests with a valid key: see the module doc.
#[derive(Clone)]
pub struct RequireApiKey {
    source: Source,
    require: Arc<[String]>,
    tool_permissions: bool,
    /// Rate limits, per process: shared by every clone of the layer.
    limiter: Arc<Limiter>,
    /// Access tokens beside keys (feature `oauth`).
    #[cfg(feature = "oauth")]
    tokens: Option<Arc<crate::oauth::TokenVerifier>>,
    /// The Protected Resource Metadata document served, with tokens.
    #[cfg(feature = "oauth")]
    metadata: Option<Arc<str>>,
}

impl fmt::Debug for RequireApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequireApiKey")
            .field("revision", &self.current().revision())
            .field("require", &self.require)
            .field("tool_permissions", &self.tool_permissions)
            .finish()
    }
}

impl RequireApiKey {
    /// Checks keys against `watched.current()`, so a published file takes effect without
    /// a restart.
    pub fn new(watched: Arc<Watched>) -> RequireApiKey {
        RequireApiKey {
            source: Source::Watched(watched),
            require: Arc::from(Vec::new()),
            tool_permissions: false,
            limiter: Arc::default(),
            #[cfg(feature = "oauth")]
            tokens: None,
            #[cfg(feature = "oauth")]
            metadata: None,
        }
    }

    /// Checks keys against one fixed verifier (tests, or a server that never reloads).
    pub fn from_verifier(verifier: Verifier) -> RequireApiKey {
        RequireApiKey {
            source: Source::Fixed(Arc::new(verifier)),
            require: Arc::from(Vec::new()),
            tool_permissions: false,
            limiter: Arc::default(),
            #[cfg(feature = "oauth")]
            tokens: None,
            #[cfg(feature = "oauth")]
            metadata: None,
        }
    }

    /// Permissions every request's key must hold.
    pub fn require(mut self, permissions: &[&str]) -> RequireApiKey {
        self.require = permissions.iter().map(|p| p.to_string()).collect();
        self
    }

    /// Whether to ask for per-method permissions (`tools:call[:<tool>]`,
    /// `prompts:get[:<prompt>]`, `resources:read`), reading the body to see the method.
    pub fn tool_permissions(mut self, on: bool) -> RequireApiKey {
        self.tool_permissions = on;
        self
    }

    /// Accepts OAuth access tokens checked by `tokens` beside keys (feature `oauth`;
    /// docs/oauth.md), and serves `/.well-known/oauth-protected-resource` (and the
    /// path-suffixed form) naming `scopes_supported`. The layer fetches no keys: give the
    /// verifier each issuer's JWK Set ([`crate::oauth::TokenVerifier::set_jwks`]) and
    /// refresh it as the issuer rotates keys; a token of an unknown key is refused.
    #[cfg(feature = "oauth")]
    pub fn access_tokens(
        mut self,
        tokens: Arc<crate::oauth::TokenVerifier>,
        scopes_supported: &[&str],
    ) -> RequireApiKey {
        let issuers: Vec<String> = tokens.issuers().map(str::to_owned).collect();
        let scopes: Vec<String> = scopes_supported.iter().map(|s| s.to_string()).collect();
        let doc = crate::oauth::metadata_json(tokens.resource(), &issuers, &scopes);
        self.metadata = Some(Arc::from(doc));
        self.tokens = Some(tokens);
        self
    }

    fn current(&self) -> Arc<Verifier> {
        match &self.source {
            Source::Watched(w) => w.current(),
            Source::Fixed(v) => Arc::clone(v),
        }
    }

    /// The key check, the tool check, then the key's rate limit; the request to hand on
    /// with the `RateLimit` headers for its answer, or the refusal.
    async fn check<B>(&self, req: Request<B>) -> Result<Checked<B>, Refusal>
    where
        B: Body + From<Bytes>,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        #[cfg(feature = "oauth")]
        if let Some(tokens) = &self.tokens {
            if let Some(token) = bearer_token(req.headers()) {
                let checked =
                    tokens::check(tokens, &token, &self.require, req, self.tool_permissions);
                return checked.await.map(|req| (req, Vec::new()));
            }
        }
        let info = {
            let verifier = self.current();
            let h = req.headers();
            // Every value of each header: a repeated one means no key. A value that is not
            // visible ASCII is present but holds no usable key.
            let (x_api_key, authorization) = (
                header_values(h, "x-api-key"),
                header_values(h, header::AUTHORIZATION),
            );
            let key = api_key_from_header_values(&x_api_key, &authorization);
            let required: Vec<&str> = self.require.iter().map(String::as_str).collect();
            let verdict = verifier.verify(key.unwrap_or(""), &required);
            match (verdict.code, verdict.key) {
                (Code::Valid, Some(info)) => info.clone(),
                // A valid verdict always names its key; answer as for an unknown key if not.
                (Code::Valid, None) => return Err(rpc::unauthorized(Code::NotFound, false)),
                (Code::InsufficientPermissions, info) => {
                    let held = info.map(|k| &k.permissions[..]).unwrap_or_default();
                    let missing: Vec<String> = required
                        .iter()
                        .filter(|r| !permits(held, r))
                        .map(|r| r.to_string())
                        .collect();
                    return Err(rpc::forbidden(&missing));
                }
                (code, _) => return Err(rpc::unauthorized(code, key.is_none())),
            }
        };
        let mut req = if self.tool_permissions {
            check_tools(req, &info.permissions, rpc::forbidden).await?
        } else {
            req
        };
        // The rate limit last: only a request that would be admitted uses the quota.
        let limited = match info.rate_limit {
            None => Vec::new(),
            Some(limit) => {
                let d = self.limiter.check_now(&info.id, limit);
                if !d.allowed {
                    return Err(rpc::rate_limited(limit, &d));
                }
                rpc::rate_limit_headers(limit, &d)
            }
        };
        req.extensions_mut().insert(info);
        Ok((req, limited))
    }
}

impl RequireApiKey {
    /// A refusal's challenge with `resource_metadata` when tokens are on (and, for a
    /// request without credentials, only that and the scope: RFC 9728 §5.1).
    fn with_resource_metadata(&self, r: Refusal) -> Refusal {
        #[cfg(feature = "oauth")]
        if let Some(t) = &self.tokens {
            return tokens::with_resource_metadata(r, t.resource(), &self.require);
        }
        r
    }

    /// The metadata document, when `req` asks for it and tokens are on.
    #[cfg(feature = "oauth")]
    fn metadata_for<B>(&self, req: &Request<B>) -> Option<Arc<str>> {
        const WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";
        let rest = req.uri().path().strip_prefix(WELL_KNOWN)?;
        (rest.is_empty() || rest.starts_with('/'))
            .then(|| self.metadata.clone())
            .flatten()
    }
}

/// The value of the one `Authorization: Bearer` header when it holds a JWT and no
/// `X-API-Key` comes with it.
#[cfg(feature = "oauth")]
fn bearer_token(h: &http::HeaderMap) -> Option<String> {
    if h.contains_key("x-api-key") {
        return None;
    }
    let mut all = h.get_all(header::AUTHORIZATION).iter();
    let (Some(v), None) = (all.next(), all.next()) else {
        return None;
    };
    let (scheme, token) = v.to_str().ok()?.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && crate::oauth::TokenVerifier::looks_like_token(token))
        .then(|| token.to_owned())
}

/// Access tokens in the layer (feature `oauth`).
#[cfg(feature = "oauth")]
mod tokens {
    use super::*;
    use crate::oauth::TokenVerifier;

    /// The token, `require`, then the tool permissions, against its scopes; the request
    /// carries the [`crate::oauth::TokenInfo`] when accepted.
    pub(super) async fn check<B>(
        tokens: &TokenVerifier,
        token: &str,
        require: &[String],
        mut req: Request<B>,
        tool_permissions: bool,
    ) -> Result<Request<B>, Refusal>
    where
        B: Body + From<Bytes>,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        let info = tokens
            .verify(token, now)
            .map_err(|e| rpc::invalid_token(e.code(), &e.description()))?;
        let missing: Vec<String> = require
            .iter()
            .filter(|r| !permits(&info.permissions, r))
            .cloned()
            .collect();
        if !missing.is_empty() {
            return Err(rpc::insufficient_scope(&missing));
        }
        if tool_permissions {
            req = check_tools(req, &info.permissions, rpc::insufficient_scope).await?;
        }
        req.extensions_mut().insert((*info).clone());
        Ok(req)
    }

    /// `r` with `resource_metadata` in its challenge; for no credentials at all, the
    /// challenge is that and the scope needed.
    pub(super) fn with_resource_metadata(
        mut r: Refusal,
        resource: &str,
        require: &[String],
    ) -> Refusal {
        let url = crate::oauth::metadata_url(resource);
        let no_credentials = r.body.contains(rpc::NO_KEY);
        r.challenge = match r.challenge.take() {
            _ if no_credentials => {
                let scope: Vec<&str> = require
                    .iter()
                    .map(String::as_str)
                    .filter(|p| rpc::scope_safe(p))
                    .collect();
                Some(if scope.is_empty() {
                    format!("Bearer resource_metadata=\"{url}\"")
                } else {
                    format!(
                        "Bearer resource_metadata=\"{url}\", scope=\"{}\"",
                        scope.join(" ")
                    )
                })
            }
            Some(c) => Some(format!("{c}, resource_metadata=\"{url}\"")),
            None => None,
        };
        r
    }

    pub(super) fn metadata_response<B: From<String>>(doc: &str) -> Response<B> {
        let mut res = Response::new(B::from(doc.to_owned()));
        let h = res.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("max-age=300"),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
        res
    }
}

/// What the request needs under tool permissions, from its routing headers and its body.
async fn check_tools<B>(
    req: Request<B>,
    held: &[String],
    forbidden: fn(&[String]) -> Refusal,
) -> Result<Request<B>, Refusal>
where
    B: Body + From<Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (parts, body) = req.into_parts();
    let h = &parts.headers;
    let values = |name: &str| {
        h.get_all(name)
            .iter()
            .map(HeaderValue::as_bytes)
            .collect::<Vec<_>>()
    };
    let (method, version) = (values("mcp-method"), values("mcp-protocol-version"));
    if parts.method == Method::POST && routing::method_missing(&method, &version) {
        return Err(rpc::bad_routing(
            routing::BadRouting::MethodMissing.reason(),
        ));
    }
    let routing = routing::routing(&method, &values("mcp-name"), &version)
        .map_err(|e| rpc::bad_routing(e.reason()))?;
    let declared = h
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > rpc::MAX_BODY_BYTES) {
        return Err(rpc::body_too_large());
    }
    let bytes = match Limited::new(body, rpc::MAX_BODY_BYTES as usize)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<LengthLimitError>() => return Err(rpc::body_too_large()),
        Err(_) => return Err(rpc::bad_body()),
    };
    let needed = if bytes.trim_ascii().is_empty() {
        match &routing {
            Some(r) => routing::needed_for(&r.method, r.name.as_deref())
                .into_iter()
                .collect(),
            // Fail closed: a POST carries a JSON-RPC message; one that shows none is refused.
            None if parts.method == Method::POST => return Err(rpc::method_unseen()),
            None => Vec::new(),
        }
    } else {
        let message: Value = serde_json::from_slice(&bytes).map_err(|_| rpc::parse_error())?;
        if let Some(r) = &routing {
            if !routing::body_matches(r, &message) {
                return Err(rpc::header_mismatch());
            }
        }
        routing::needed_permissions(&message)
    };
    let missing = rpc::missing_permissions(held, &needed);
    if !missing.is_empty() {
        return Err(forbidden(&missing));
    }
    Ok(Request::from_parts(parts, B::from(bytes)))
}

fn respond<B: From<String>>(r: Refusal) -> Response<B> {
    let mut res = Response::new(B::from(r.body));
    *res.status_mut() = StatusCode::from_u16(r.status).unwrap_or(StatusCode::FORBIDDEN);
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(v) = r.challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
        h.insert(header::WWW_AUTHENTICATE, v);
    }
    if r.close {
        h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    add_headers(h, r.headers);
    res
}

fn add_headers(h: &mut http::HeaderMap, headers: Vec<(&'static str, String)>) {
    for (name, value) in headers {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(http::HeaderName::from_static(name), v);
        }
    }
}

impl<S> Layer<S> for RequireApiKey {
    type Service = RequireApiKeyService<S>;

    fn layer(&self, inner: S) -> RequireApiKeyService<S> {
        RequireApiKeyService {
            inner,
            config: self.clone(),
        }
    }
}

/// The service of [`RequireApiKey`].
#[derive(Clone, Debug)]
pub struct RequireApiKeyService<S> {
    inner: S,
    config: RequireApiKey,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for RequireApiKeyService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Body + From<Bytes> + Send + 'static,
    ReqBody::Data: Send,
    ReqBody::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    ResBody: From<String> + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<ResBody>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        // The ready service goes with this call; the clone waits for the next poll_ready.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let config = self.config.clone();
        Box::pin(async move {
            #[cfg(feature = "oauth")]
            if let Some(doc) = config.metadata_for(&req) {
                return Ok(tokens::metadata_response(&doc));
            }
            match config.check(req).await {
                Ok((req, headers)) => {
                    let mut res = inner.call(req).await?;
                    add_headers(res.headers_mut(), headers);
                    Ok(res)
                }
                Err(refusal) => Ok(respond(config.with_resource_metadata(refusal))),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verifier::KeyInfo;
    use http_body_util::Full;
    use std::convert::Infallible;
    use std::future::{ready, Ready};

    /// Answers 200 with the caller's id and the body it was handed.
    #[derive(Clone)]
    struct Inner;

    impl Service<Request<Full<Bytes>>> for Inner {
        type Response = Response<String>;
        type Error = Infallible;
        type Future = Ready<Result<Response<String>, Infallible>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, req: Request<Full<Bytes>>) -> Self::Future {
            let id = match req.extensions().get::<KeyInfo>() {
                Some(k) => k.id.clone(),
                None => token_subject(&req),
            };
            let mut body = req.into_body();
            let bytes = match Pin::new(&mut body)
                .poll_frame(&mut Context::from_waker(std::task::Waker::noop()))
            {
                Poll::Ready(Some(Ok(f))) => f.into_data().unwrap_or_default(),
                _ => Bytes::new(),
            };
            ready(Ok(Response::new(format!(
                "{id} {}",
                String::from_utf8_lossy(&bytes)
            ))))
        }
    }

    /// The subject of an accepted access token, the caller when no key is.
    fn token_subject<B>(req: &Request<B>) -> String {
        #[cfg(feature = "oauth")]
        if let Some(t) = req.extensions().get::<crate::oauth::TokenInfo>() {
            return t.subject.clone();
        }
        let _ = req;
        panic!("neither a key nor a token reached the handler")
    }

    const KEY: &str =
        "mcp_00000000000000b2_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    fn layer() -> RequireApiKey {
        let hasher = Verifier::new(&[1; 32], 0, Vec::new());
        let info = KeyInfo::new(
            "00000000000000b2".into(),
            None,
            hasher.keyed_hash(KEY),
            false,
            None,
            vec!["tools:call:echo".into()],
        );
        RequireApiKey::from_verifier(Verifier::new(&[1; 32], 1, vec![info]))
    }

    async fn send(
        layer: &RequireApiKey,
        method: &str,
        headers: &[(&str, &[u8])],
        body: &str,
    ) -> (u16, String, HeaderMapCopy) {
        let mut req = Request::builder().method(method).uri("/mcp");
        for (k, v) in headers {
            req = req.header(*k, HeaderValue::from_bytes(v).unwrap());
        }
        let req = req.body(Full::new(Bytes::from(body.to_string()))).unwrap();
        let res = layer.layer(Inner).call(req).await.unwrap();
        let status = res.status().as_u16();
        let h = res.headers().clone();
        (status, res.into_body(), HeaderMapCopy(h))
    }

    struct HeaderMapCopy(http::HeaderMap);
    impl HeaderMapCopy {
        fn get(&self, name: &str) -> &str {
            self.0.get(name).map_or("", |v| v.to_str().unwrap())
        }
    }

    /// A key limited to 2/min: two answers with the `RateLimit` headers, then 429 with
    /// `Retry-After` and the JSON-RPC body; the clones of a layer share the count; an
    /// unlimited key gets no such headers.
    #[tokio::test]
    async fn a_rate_limited_key_gets_429_after_its_quota() {
        let hasher = Verifier::new(&[1; 32], 0, Vec::new());
        let limited = KeyInfo::new(
            "00000000000000b2".into(),
            None,
            hasher.keyed_hash(KEY),
            false,
            None,
            Vec::new(),
        )
        .with_rate_limit(Some("2/min".parse().unwrap()));
        let l = RequireApiKey::from_verifier(Verifier::new(&[1; 32], 1, vec![limited]));
        let key = [("x-api-key", KEY.as_bytes())];
        let (s, _, h) = send(&l, "GET", &key, "").await;
        assert_eq!(s, 200);
        assert_eq!(h.get("ratelimit-policy"), "\"key\";q=2;w=60");
        assert_eq!(h.get("ratelimit"), "\"key\";r=1;t=30");
        let (s, _, h) = send(&l.clone(), "GET", &key, "").await;
        assert_eq!((s, h.get("ratelimit")), (200, "\"key\";r=0;t=60"));
        let (s, body, h) = send(&l, "GET", &key, "").await;
        assert_eq!(s, 429);
        assert_eq!(h.get("retry-after"), "30");
        assert_eq!(h.get("content-type"), "application/json");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["error"]["code"], rpc::RATE_LIMITED);
        assert_eq!(v["error"]["data"]["code"], "RATE_LIMITED");
        assert_eq!(v["error"]["data"]["retry_after"], 30);
        let (s, _, h) = send(&layer(), "POST", &key, ECHO).await;
        assert_eq!((s, h.get("ratelimit")), (200, ""));
    }

    const ECHO: &str = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}}"#;
    const ADD: &str = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"add"}}"#;

    #[tokio::test]
    async fn keys_and_refusals() {
        let l = layer();
        let (s, body, _) = send(&l, "POST", &[("x-api-key", KEY.as_bytes())], ECHO).await;
        assert_eq!((s, body), (200, format!("00000000000000b2 {ECHO}")));
        // Not visible ASCII: present, but no usable key.
        let (s, body, h) = send(&l, "POST", &[("x-api-key", b"caf\xe9")], ECHO).await;
        assert_eq!(s, 401);
        assert!(body.contains(rpc::NO_KEY) && body.contains("MALFORMED"));
        assert_eq!(h.get("content-type"), "application/json");
        assert_eq!(h.get("cache-control"), "no-store");
        assert!(h
            .get("www-authenticate")
            .starts_with("Bearer error=\"invalid_token\""));
        let (s, body, _) = send(&l, "GET", &[("authorization", b"Bearer mcp_x")], "").await;
        assert_eq!(s, 401);
        assert!(body.contains("the API key is malformed"));
        assert!(!body.contains("mcp_x"));

        // A repeated key header is ambiguous: no key, whichever value comes first.
        let bearer = format!("Bearer {KEY}");
        for twice in [
            [
                ("x-api-key", KEY.as_bytes()),
                ("x-api-key", b"other".as_slice()),
            ],
            [("x-api-key", KEY.as_bytes()), ("x-api-key", KEY.as_bytes())],
            [
                ("authorization", bearer.as_bytes()),
                ("authorization", b"Bearer x"),
            ],
        ] {
            let (s, body, _) = send(&l, "POST", &twice, ECHO).await;
            assert_eq!(s, 401, "{:?}", twice.map(|(k, _)| k));
            assert!(body.contains(rpc::NO_KEY));
        }

        let strict = layer().require(&["admin"]);
        let (s, body, h) = send(&strict, "GET", &[("x-api-key", KEY.as_bytes())], "").await;
        assert_eq!(s, 403);
        assert!(body.contains("INSUFFICIENT_PERMISSIONS"));
        assert_eq!(
            h.get("www-authenticate"),
            "Bearer error=\"insufficient_scope\", scope=\"admin\""
        );
    }

    #[tokio::test]
    async fn tool_permissions() {
        let l = layer().tool_permissions(true);
        let k: (&str, &[u8]) = ("x-api-key", KEY.as_bytes());
        assert_eq!(send(&l, "POST", &[k], ECHO).await.0, 200);
        let (s, _, h) = send(&l, "POST", &[k], ADD).await;
        assert_eq!(s, 403);
        assert_eq!(
            h.get("www-authenticate"),
            "Bearer error=\"insufficient_scope\", scope=\"tools:call:add\""
        );
        // GET and DELETE without a body: the key check only.
        assert_eq!(send(&l, "GET", &[k], "").await.0, 200);
        assert_eq!(send(&l, "DELETE", &[k], "").await.0, 200);
        // A POST that shows nothing is refused; headers alone are judged.
        let (s, body, _) = send(&l, "POST", &[k], " ").await;
        assert_eq!(s, 403);
        assert!(body.contains("METHOD_UNSEEN"));
        let add_headers = [k, ("mcp-method", b"tools/call"), ("mcp-name", b"add")];
        assert_eq!(send(&l, "POST", &add_headers, "").await.0, 403);
        let echo_b64 = [
            k,
            ("mcp-method", b"tools/call"),
            ("mcp-name", b"=?base64?ZWNobw==?="),
        ];
        assert_eq!(send(&l, "POST", &echo_b64, ECHO).await.0, 200);
        let echo_headers = [k, ("mcp-method", b"tools/call"), ("mcp-name", b"echo")];
        let (s, body, _) = send(&l, "POST", &echo_headers, ADD).await;
        assert_eq!(s, 400);
        assert!(body.contains("-32020") && body.contains("HEADER_MISMATCH"));
        assert!(send(&l, "POST", &[k], "{").await.1.contains("PARSE_ERROR"));
        // Protocol 2026-07-28 without Mcp-Method: 400 -32020 (SEP-2243), body or not; a
        // GET of that version is not a JSON-RPC message and is not held to it.
        let v2026: (&str, &[u8]) = ("mcp-protocol-version", b"2026-07-28");
        for body in [ECHO, ""] {
            let (s, b, _) = send(&l, "POST", &[k, v2026], body).await;
            assert_eq!(s, 400, "{body:?}");
            assert!(b.contains("-32020") && b.contains("BAD_ROUTING"), "{b}");
        }
        assert_eq!(send(&l, "GET", &[k, v2026], "").await.0, 200);
        let big = " ".repeat(rpc::MAX_BODY_BYTES as usize + 1);
        let (s, _, h) = send(&l, "POST", &[k], &big).await;
        assert_eq!((s, h.get("connection")), (413, "close"));
        let (s, _, _) = send(&l, "POST", &[k, ("content-length", b"99999999")], ECHO).await;
        assert_eq!(s, 413);
    }

    /// Access tokens beside keys: an EdDSA token of the issuer passes and carries its
    /// `TokenInfo`; a missing scope is 403 `insufficient_scope` with `resource_metadata`; no
    /// credentials is the RFC 9728 challenge; the metadata route answers without a key.
    #[cfg(feature = "oauth")]
    #[tokio::test]
    async fn access_tokens_beside_keys() {
        use base64::Engine as _;
        use ring::signature::{Ed25519KeyPair, KeyPair};
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        let pair = Ed25519KeyPair::from_seed_unchecked(&[9; 32]).unwrap();
        let jwks = serde_json::json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "k",
            "alg": "EdDSA", "x": b64(pair.public_key().as_ref())}]});
        let resource = "https://mcp.example.com/mcp";
        let tokens = Arc::new(crate::oauth::TokenVerifier::new(
            resource,
            &["https://id.example.com".into()],
            "scope",
        ));
        tokens.set_jwks(0, jwks.to_string().as_bytes()).unwrap();
        let mint = |scope: &str| {
            let h = b64(br#"{"alg":"EdDSA","kid":"k"}"#);
            let c = b64(
                serde_json::json!({"iss": "https://id.example.com", "aud": resource,
                "exp": 4_000_000_000u64, "sub": "bob", "scope": scope})
                .to_string()
                .as_bytes(),
            );
            let sig = pair.sign(format!("{h}.{c}").as_bytes());
            format!("{h}.{c}.{}", b64(sig.as_ref()))
        };
        let l = layer()
            .tool_permissions(true)
            .access_tokens(tokens, &["tools:call"]);
        let ok = format!("Bearer {}", mint("tools:call:echo"));
        let (s, body, _) = send(&l, "POST", &[("authorization", ok.as_bytes())], ECHO).await;
        assert_eq!(s, 200, "{body}");
        assert!(
            body.starts_with("bob "),
            "the handler saw the token's subject: {body}"
        );
        let (s, _, h) = send(&l, "POST", &[("authorization", ok.as_bytes())], ADD).await;
        assert_eq!(s, 403);
        let c = h.get("www-authenticate");
        assert!(
            c.contains("insufficient_scope") && c.contains("scope=\"tools:call tools:call:add\"")
                || c.contains("scope=\"tools:call:add\""),
            "{c}"
        );
        assert!(c.contains("resource_metadata=\"https://mcp.example.com/.well-known/oauth-protected-resource/mcp\""), "{c}");
        let (s, _, h) = send(&l, "POST", &[], ECHO).await;
        assert_eq!(s, 401);
        assert_eq!(
            h.get("www-authenticate"),
            "Bearer resource_metadata=\"https://mcp.example.com/.well-known/oauth-protected-resource/mcp\""
        );
        let forged = format!("Bearer {}x", &ok[7..ok.len() - 1]);
        let (s, body, _) = send(&l, "POST", &[("authorization", forged.as_bytes())], ECHO).await;
        assert_eq!(s, 401);
        assert!(body.contains("INVALID_TOKEN"), "{body}");
        // Keys still pass.
        let (s, _, _) = send(&l, "POST", &[("x-api-key", KEY.as_bytes())], ECHO).await;
        assert_eq!(s, 200);
        let req = Request::builder()
            .uri("/.well-known/oauth-protected-resource/mcp")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let res = l.layer(Inner).call(req).await.unwrap();
        assert_eq!(res.status(), 200);
        let doc: Value = serde_json::from_str(res.body()).unwrap();
        assert_eq!(doc["resource"], resource);
    }
}
