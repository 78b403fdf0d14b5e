//! `serve --authorization-server`: a small OAuth 2.1 authorization server that turns a key
//! of this vault into short-lived, audience-bound access tokens for hosted MCP clients
//! (docs/oauth.md, "serve as an authorization server for hosted clients").
//!
//! Routes, under the issuer's path: RFC 8414 metadata, `jwks_uri`, `/authorize` (a consent
//! page where a person pastes a key), `/token` (code exchange with PKCE S256, refresh-token
//! rotation), `/register` (RFC 7591), `/revoke` (RFC 7009).
//!
//! Invariants: a token is only as good as its key (`/auth` checks the key behind a token
//! on every request, against the verifier answering then); no key, code, token or
//! signing key reaches a response other than the one it is issued in, a log line or a
//! metric; an error before the redirect URI is known to be the client's is shown on a
//! page, never sent to an unverified URI.

pub mod clients;
pub mod grants;
pub mod page;
pub mod shared;
pub mod signing;
pub mod store;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine as _;
use chrono::{TimeZone as _, Utc};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::log::log;
use super::log::Log;
#[cfg(test)]
use super::oauth::default_issuer;
use super::oauth::BridgeSettings;
use crate::error::{Error, Result};
use clients::Clients;
use grants::Grants;
use mcp_key_vault::display::sanitize;
use mcp_key_vault::verify::{Code, KeyInfo, Verifier};
use mcp_key_verifier::oauth::{TokenError, TokenVerifier};
use signing::Signer;
use store::{GrantError, Pending, Store};

/// The default lifetime of an access token, in seconds.
pub const DEFAULT_TOKEN_LIFETIME: u64 = 15 * 60;
/// The longest lifetime of an access token, in seconds.
pub const MAX_TOKEN_LIFETIME: u64 = store::MAX_TOKEN_LIFETIME as u64;
/// The largest form or JSON body read by the bridge's endpoints.
const MAX_FORM_BYTES: usize = 16 * 1024;
/// The longest `state` kept (a pending request's size is bounded by these).
const MAX_STATE_BYTES: usize = 512;
/// Most scopes one request may ask for.
const MAX_SCOPES: usize = 64;
/// Tokens of this issuer kept verified (their claims), at most.
const OWN_CACHE_ENTRIES: usize = 10_000;
/// The consent cookie (`__Host-`: Secure, Path=/, no Domain; RFC 6265bis §4.1.3.2).
const COOKIE: &str = "__Host-mcp-consent";

type Body = Full<Bytes>;

/// What the bridge takes from the server it runs in, for one request.
#[derive(Clone)]
pub struct Served {
    /// The keys, as the verifier knows them now.
    pub keys: Arc<Verifier>,
    /// Where refusals of identified keys are logged.
    pub log: Arc<Log>,
    /// How long a request body may take to arrive.
    pub read_timeout: std::time::Duration,
}

/// The bridge, ready for requests.
pub struct Bridge {
    /// The issuer identifier (`iss`).
    pub issuer: String,
    /// The issuer's path (empty, or `/x` without a trailing slash): its routes are below.
    path: String,
    resource: String,
    /// `--scope`: the scopes a client may ask for (any valid permission when empty).
    scopes: Vec<String>,
    lifetime: i64,
    dynamic_registration: bool,
    signer: Signer,
    verifier: TokenVerifier,
    grants: Grants,
    clients: Clients,
    metadata: String,
    /// This issuer's tokens already verified, by the SHA-256 of the token: what `/auth`
    /// needs of them, so that a token seen before costs a lookup (its key and revocation
    /// are still checked on every request).
    seen: std::sync::Mutex<HashMap<[u8; 32], Arc<Own>>>,
    counters: Counters,
}

/// The answers on the consent page, as counted.
const CONSENTS: [&str; 4] = ["approved", "denied", "key_refused", "form_refused"];
/// The grants of `/token`, and their outcomes, as counted.
const GRANT_TYPES: [&str; 2] = ["authorization_code", "refresh_token"];
const GRANT_RESULTS: [&str; 4] = ["issued", "refused", "reused", "unavailable"];

/// What the bridge counts for `/metrics` (relaxed atomics: counting never blocks).
#[derive(Default)]
struct Counters {
    consents: [AtomicU64; CONSENTS.len()],
    grants: [[AtomicU64; GRANT_RESULTS.len()]; GRANT_TYPES.len()],
}

impl Counters {
    fn consent(&self, result: usize) {
        self.consents[result].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a `/token` answer of grant type `grant` (an index of [`GRANT_TYPES`]).
    fn grant<T, E>(
        &self,
        grant: usize,
        r: &std::result::Result<std::result::Result<T, E>, GrantError>,
    ) {
        let result = match r {
            Ok(Ok(_)) => 0,
            Ok(Err(_)) | Err(GrantError::Invalid) => 1,
            Err(GrantError::Reused) => 2,
            Err(GrantError::Full | GrantError::Unavailable) => 3,
        };
        self.grants[grant][result].fetch_add(1, Ordering::Relaxed);
    }
}

/// What `/auth` needs of a verified token of this issuer.
struct Own {
    subject: String,
    permissions: Arc<[String]>,
    jti: String,
    /// Its family's denylist entry ([`store::family_entry`] of its `sid`).
    family: String,
    iat: i64,
    exp: i64,
}

impl std::fmt::Debug for Bridge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bridge")
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

/// The bridge's routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Metadata,
    Jwks,
    Authorize,
    Token,
    Register,
    Revoke,
}

/// Why a token of this issuer is refused at `/auth`.
pub struct Refused {
    /// `INVALID_TOKEN`, `EXPIRED`, or `STALE` (the shared denylist is out of date: 503).
    pub code: &'static str,
    pub why: String,
}

/// A token of this issuer, accepted: the key behind it and what it may do now.
pub struct Admitted<'k> {
    /// The key, as the verifier answering now knows it (its rate limit applies).
    pub key: &'k KeyInfo,
    /// The token's scopes the key still holds.
    pub permissions: Arc<[String]>,
}

impl Bridge {
    /// Loads (or creates) the signing key and builds the metadata.
    ///
    /// # Errors
    /// [`Error::Usage`] for an issuer that is not an HTTPS URL (HTTP on loopback), or a
    /// signing key that cannot be used (see [`Signer::load_or_create`]).
    pub fn start(s: &BridgeSettings, resource: &str, scopes: &[String]) -> Result<Bridge> {
        if !clients::redirect_uri_ok(&s.issuer) || s.issuer.contains('?') {
            return Err(Error::usage(format!(
                "the issuer must be an https:// URL (http:// only on loopback) without query \
                 or fragment: {}",
                sanitize(&s.issuer)
            )));
        }
        let issuer = s.issuer.trim_end_matches('/').to_owned();
        let path = match issuer
            .split_once("://")
            .and_then(|(_, r)| r.find('/').map(|i| &r[i..]))
        {
            Some(p) => p.to_owned(),
            None => String::new(),
        };
        let lifetime = s.token_lifetime.clamp(60, MAX_TOKEN_LIFETIME);
        let signer = Signer::load_or_create(&s.signing_key)?;
        let verifier = TokenVerifier::new(resource, std::slice::from_ref(&issuer), "scope");
        verifier
            .set_jwks(0, signer.jwks.as_bytes())
            .map_err(Error::usage)?;
        let mut metadata = json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{issuer}/authorize"),
            "token_endpoint": format!("{issuer}/token"),
            "revocation_endpoint": format!("{issuer}/revoke"),
            "jwks_uri": format!("{issuer}/jwks.json"),
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["none"],
            "revocation_endpoint_auth_methods_supported": ["none"],
            "client_id_metadata_document_supported": true,
            "authorization_response_iss_parameter_supported": true,
        });
        if s.dynamic_registration {
            metadata["registration_endpoint"] = json!(format!("{issuer}/register"));
        }
        if !scopes.is_empty() {
            metadata["scopes_supported"] = json!(scopes);
        }
        let grants = match &s.state {
            // Nothing this process did not issue is trusted as unrevoked: its denylist
            // starts empty, so tokens from before a restart are refused (their refresh
            // tokens are gone with the memory anyway; clients authorize again).
            None => Grants::Local(Box::new(Store::new(
                signer.hashing_secret(),
                Utc::now().timestamp() - 1,
            ))),
            // The fleet's denylist is the store's: tokens from before its epoch only.
            Some(url) => {
                let local = Store::new(signer.hashing_secret(), 0);
                Grants::Shared(Arc::new(shared::Shared::start(url, local)?))
            }
        };
        let clients = Clients::new(s.allow_private_clients, grants.shared().cloned());
        Ok(Bridge {
            path,
            resource: resource.to_owned(),
            scopes: scopes.to_vec(),
            lifetime: i64::try_from(lifetime).unwrap_or(900),
            dynamic_registration: s.dynamic_registration,
            verifier,
            grants,
            clients,
            metadata: metadata.to_string(),
            seen: std::sync::Mutex::default(),
            counters: Counters::default(),
            signer,
            issuer,
        })
    }

    fn route(&self, method: &Method, path: &str) -> Option<Route> {
        const WELL_KNOWN: &str = "/.well-known/oauth-authorization-server";
        if method == Method::GET && path.strip_prefix(WELL_KNOWN) == Some(self.path.as_str()) {
            return Some(Route::Metadata);
        }
        Some(match path.strip_prefix(self.path.as_str())? {
            "/jwks.json" => Route::Jwks,
            "/authorize" => Route::Authorize,
            "/token" => Route::Token,
            "/register" if self.dynamic_registration => Route::Register,
            "/revoke" => Route::Revoke,
            _ => return None,
        })
    }

    /// How long ago the shared state's revocations were last confirmed current (`None`
    /// when the state is this process's).
    pub fn state_age(&self) -> Option<std::time::Duration> {
        self.grants.age()
    }

    /// The bridge's counters, as Prometheus text.
    pub fn render_metrics(&self, o: &mut String) {
        let c = &self.counters;
        let _ = writeln!(
            o,
            "# HELP mcp_key_serve_bridge_consents_total Answers on the consent page.\n\
             # TYPE mcp_key_serve_bridge_consents_total counter"
        );
        for (i, r) in CONSENTS.iter().enumerate() {
            let n = c.consents[i].load(Ordering::Relaxed);
            let _ = writeln!(
                o,
                "mcp_key_serve_bridge_consents_total{{result=\"{r}\"}} {n}"
            );
        }
        let _ = writeln!(
            o,
            "# HELP mcp_key_serve_bridge_grants_total Code exchanges and refreshes at /token \
             (reused: a code or refresh token used again, its family revoked).\n\
             # TYPE mcp_key_serve_bridge_grants_total counter"
        );
        for (g, grant) in GRANT_TYPES.iter().enumerate() {
            for (i, r) in GRANT_RESULTS.iter().enumerate() {
                let n = c.grants[g][i].load(Ordering::Relaxed);
                let _ = writeln!(
                    o,
                    "mcp_key_serve_bridge_grants_total{{grant=\"{grant}\",result=\"{r}\"}} {n}"
                );
            }
        }
    }

    /// Whether `path` is one of the bridge's.
    pub fn owns(&self, path: &str) -> bool {
        self.route(&Method::GET, path).is_some() || self.route(&Method::POST, path).is_some()
    }

    /// Checks an access token at `/auth` if it is one of this issuer's (`None` otherwise):
    /// signature, audience, expiry (once per token, then kept), and on every request that
    /// it is not revoked and its key is valid in `keys` now; its scopes cut to the key's
    /// permissions. With a shared state whose denylist has not been confirmed current for
    /// `max_stale`, refused as `STALE`.
    pub fn admit<'k>(
        &self,
        token: &str,
        keys: &'k Verifier,
        now: i64,
        max_stale: std::time::Duration,
    ) -> Option<std::result::Result<Admitted<'k>, Refused>> {
        let invalid = |why: &str| Refused {
            code: "INVALID_TOKEN",
            why: why.to_owned(),
        };
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let leeway = mcp_key_verifier::oauth::LEEWAY_SECONDS as i64;
        let hit = self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&digest)
            .filter(|o| o.exp + leeway > now)
            .cloned();
        let own = match hit {
            Some(o) => o,
            None => {
                // A cheap look at the claims routes the token; the signature decides.
                let claims = claims_of(token)?;
                if claims.get("iss").and_then(Value::as_str) != Some(&self.issuer) {
                    return None;
                }
                let info = match self.verifier.verify(token, now) {
                    Ok(i) => i,
                    Err(TokenError::Expired) => {
                        return Some(Err(Refused {
                            code: "EXPIRED",
                            why: TokenError::Expired.description(),
                        }))
                    }
                    Err(e) => return Some(Err(invalid(&e.description()))),
                };
                let own = Arc::new(Own {
                    subject: info.subject.clone(),
                    permissions: info.permissions.clone().into(),
                    jti: claims
                        .get("jti")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_owned(),
                    family: claims
                        .get("sid")
                        .and_then(Value::as_str)
                        .and_then(|s| s.parse().ok())
                        .map(store::family_entry)
                        .unwrap_or_default(),
                    iat: claims.get("iat").and_then(Value::as_i64).unwrap_or(0),
                    exp: info.expires_at,
                });
                // This issuer mints nothing longer than an hour, nor from a clock further
                // ahead than its instances may be: such a token was not minted as it says.
                if own.exp - own.iat > store::MAX_TOKEN_LIFETIME || own.iat > now + leeway {
                    return Some(Err(invalid(
                        "the token's iat or lifetime is not this issuer's",
                    )));
                }
                let mut seen = self
                    .seen
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if seen.len() >= OWN_CACHE_ENTRIES {
                    seen.retain(|_, o| o.exp + leeway > now);
                    if seen.len() >= OWN_CACHE_ENTRIES {
                        seen.clear();
                    }
                }
                seen.insert(digest, Arc::clone(&own));
                own
            }
        };
        if self.grants.age().is_some_and(|a| a > max_stale) {
            return Some(Err(Refused {
                code: "STALE",
                why: "the authorization server's revocations have not been reached for \
                      longer than --max-stale; try again later"
                    .into(),
            }));
        }
        if own.jti.is_empty()
            || own.family.is_empty()
            || self.grants.is_denied(&own.jti, &own.family, own.iat, now)
        {
            return Some(Err(invalid("the access token was revoked")));
        }
        let Some(key) = valid_key(keys, &own.subject, now) else {
            return Some(Err(invalid(
                "the key this access token was issued for is no longer valid",
            )));
        };
        // Cut to the key's permissions now: shared as they are unless one was taken.
        let held = own
            .permissions
            .iter()
            .all(|s| mcp_key_verifier::permits(&key.permissions, s));
        Some(Ok(Admitted {
            permissions: if held {
                Arc::clone(&own.permissions)
            } else {
                cut(&own.permissions, &key.permissions).into()
            },
            key,
        }))
    }

    /// Answers one of the bridge's routes.
    pub async fn handle(self: &Arc<Self>, req: Request<Incoming>, st: Served) -> Response<Body> {
        let (parts, body) = req.into_parts();
        let Some(route) = self.route(&parts.method, parts.uri.path()) else {
            return oauth_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "invalid_request",
                "method not allowed",
            );
        };
        let now = Utc::now().timestamp();
        let form = match (route, &parts.method) {
            (Route::Metadata, _) => return public_json(self.metadata.clone()),
            (Route::Jwks, &Method::GET) => return public_json(self.signer.jwks.clone()),
            (Route::Authorize, &Method::GET) => {
                return self
                    .authorize(parts.uri.query().unwrap_or(""), &parts.headers, now)
                    .await
            }
            (Route::Authorize | Route::Token | Route::Register | Route::Revoke, &Method::POST) => {
                match read_form(body, &parts.headers, &st).await {
                    Ok(b) => b,
                    Err(r) => return r,
                }
            }
            _ => {
                return oauth_error(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "invalid_request",
                    "method not allowed",
                )
            }
        };
        let headers = parts.headers;
        self.off_thread(move |b| match route {
            Route::Authorize => b.consent(&form, &headers, &st, now),
            Route::Token => b.token(&form, &st, now),
            Route::Register => b.register(&form, now),
            _ => b.revoke(&form, now),
        })
        .await
        .unwrap_or_else(|| {
            oauth_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "the request could not be completed",
            )
        })
    }

    /// Runs `f`, which may wait on the shared store, off the async workers when the state
    /// is shared (in one process it only takes a lock: run here). `None` if it panicked.
    async fn off_thread<R: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&Bridge) -> R + Send + 'static,
    ) -> Option<R> {
        if self.grants.shared().is_none() {
            return Some(f(self));
        }
        let me = Arc::clone(self);
        tokio::task::spawn_blocking(move || f(&me)).await.ok()
    }

    /// GET `/authorize`: the request checked, then the consent page.
    async fn authorize(
        self: &Arc<Self>,
        query: &str,
        headers: &HeaderMap,
        now: i64,
    ) -> Response<Body> {
        let Ok(p) = params(query.as_bytes()) else {
            return page_error(StatusCode::BAD_REQUEST, "The request repeats a parameter.");
        };
        let Some(client_id) = p.get("client_id").cloned() else {
            return page_error(
                StatusCode::BAD_REQUEST,
                "The request names no client (client_id).",
            );
        };
        let me = Arc::clone(self);
        let id = client_id.clone();
        let client = match tokio::task::spawn_blocking(move || me.clients.get(&id, now)).await {
            Ok(Ok(c)) => c,
            Ok(Err(clients::Refused(why))) if why == clients::Refused::STORE_DOWN => {
                return unavailable_page()
            }
            Ok(Err(clients::Refused(why))) => {
                return page_error(
                    StatusCode::BAD_REQUEST,
                    &format!("The client is not accepted: {why}."),
                )
            }
            Err(_) => {
                return page_error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "The client could not be looked up.",
                )
            }
        };
        let Some(redirect_uri) = p.get("redirect_uri").cloned() else {
            return page_error(
                StatusCode::BAD_REQUEST,
                "The request names no redirect_uri.",
            );
        };
        if !client.redirect_uris.contains(&redirect_uri) {
            return page_error(
                StatusCode::BAD_REQUEST,
                "The redirect_uri is not one the client lists; nothing is sent to it.",
            );
        }
        // From here on, errors go back to the client (RFC 6749 §4.1.2.1), with `iss`.
        let state = p.get("state").cloned();
        if state.as_ref().is_some_and(|s| s.len() > MAX_STATE_BYTES) {
            // Not echoed: a state this long is not one a client meant.
            return self.redirect(
                &redirect_uri,
                &[
                    ("error", "invalid_request"),
                    ("error_description", "state is longer than 512 bytes"),
                ],
                None,
            );
        }
        let back = |error: &str, why: &str| {
            self.redirect(
                &redirect_uri,
                &[("error", error), ("error_description", why)],
                state.as_deref(),
            )
        };
        if p.get("response_type").map(String::as_str) != Some("code") {
            return back("unsupported_response_type", "response_type must be code");
        }
        if p.get("code_challenge_method").map(String::as_str) != Some("S256") {
            return back(
                "invalid_request",
                "PKCE is required, with code_challenge_method S256 (plain is not accepted)",
            );
        }
        let challenge = p.get("code_challenge").cloned().unwrap_or_default();
        if challenge.len() != 43 || !challenge.bytes().all(is_b64url) {
            return back(
                "invalid_request",
                "code_challenge must be a base64url SHA-256 (43 characters)",
            );
        }
        if p.get("resource").is_some_and(|r| *r != self.resource) {
            return back("invalid_target", "resource is not this server's");
        }
        let (scopes, explicit) = match p.get("scope") {
            Some(s) => {
                let asked: Vec<String> = dedup(s.split_ascii_whitespace());
                if asked.len() > MAX_SCOPES {
                    return back("invalid_scope", "more than 64 scopes");
                }
                if let Some(bad) = asked.iter().find(|s| !self.scope_allowed(s)) {
                    let why = format!("the scope {} is not offered here", sanitize(bad));
                    return back("invalid_scope", &why);
                }
                (asked, true)
            }
            None => (self.scopes.clone(), false),
        };
        let csrf = store::random_token();
        let existing = cookie(headers).filter(|c| c.len() == 43 && c.bytes().all(is_b64url));
        let fresh = existing.is_none().then(store::random_token);
        let browser = existing.map_or_else(
            || fresh.as_deref().cloned().unwrap_or_default(),
            str::to_owned,
        );
        let pending = Pending {
            client_id: client.id.clone(),
            client_name: client.name.clone(),
            redirect_uri: redirect_uri.clone(),
            state,
            challenge,
            scopes,
            explicit_scope: explicit,
            csrf: self.grants.digest(&csrf),
            cookie: self.grants.digest(&browser),
            expires: now + store::PENDING_LIFETIME,
            attempts: 0,
        };
        let kept = pending.clone();
        let added = self
            .off_thread(move |b| b.grants.add_pending(kept, now))
            .await;
        let handle = match added {
            Some(Ok(Some(h))) => h,
            Some(Ok(None)) => {
                return page_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Too many authorizations are waiting; try again later.",
                )
            }
            _ => return unavailable_page(),
        };
        let mut r = self.consent_page(&pending, &handle, &csrf, None, StatusCode::OK);
        if let Some(c) = fresh {
            let v = format!(
                "{COOKIE}={}; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age={}",
                c.as_str(),
                store::PENDING_LIFETIME
            );
            if let Ok(v) = HeaderValue::from_str(&v) {
                r.headers_mut().insert(header::SET_COOKIE, v);
            }
        }
        r
    }

    fn scope_allowed(&self, s: &str) -> bool {
        if self.scopes.is_empty() {
            mcp_key_vault::Permission::is_valid(s)
        } else {
            self.scopes.iter().any(|x| x == s)
        }
    }

    fn consent_page(
        &self,
        p: &Pending,
        handle: &str,
        csrf: &str,
        error: Option<&str>,
        status: StatusCode,
    ) -> Response<Body> {
        let host = clients::authority(&p.redirect_uri);
        let html = page::consent(&page::Consent {
            action: &format!("{}/authorize", self.path),
            client_id: &p.client_id,
            client_name: p.client_name.as_deref(),
            redirect_host: host,
            scopes: &p.scopes,
            request: handle,
            csrf,
            error,
        });
        html_response(status, html)
    }

    /// POST `/authorize`: the person's answer on the consent page.
    fn consent(&self, body: &[u8], headers: &HeaderMap, st: &Served, now: i64) -> Response<Body> {
        let Ok(p) = params(body) else {
            return page_error(StatusCode::BAD_REQUEST, "The form repeats a field.");
        };
        let field = |k: &str| p.get(k).map(String::as_str).unwrap_or("");
        let handle = field("request");
        let found = if well_formed(handle) {
            self.grants.pending(handle, now)
        } else {
            Ok(None)
        };
        let pending = match found {
            Ok(Some(p)) => p,
            Ok(None) => {
                return page_error(
                    StatusCode::BAD_REQUEST,
                    "This page has expired or was already used. Start again from the client.",
                )
            }
            Err(_) => return unavailable_page(),
        };
        // The form's token must be the one this page was given, and the browser must be
        // the one it was given to: another site cannot post it for the person.
        let csrf = field("csrf");
        let browser_ok = cookie(headers).is_some_and(|c| self.grants.matches(c, &pending.cookie));
        if !self.grants.matches(csrf, &pending.csrf) || !browser_ok {
            self.counters.consent(3);
            return page_error(
                StatusCode::FORBIDDEN,
                "The form could not be verified (it did not come from this page in this \
                 browser). Start again from the client.",
            );
        }
        if field("decision") == "deny" {
            if self.grants.take_pending(handle, now).is_err() {
                return unavailable_page();
            }
            self.counters.consent(1);
            return self.redirect(
                &pending.redirect_uri,
                &[
                    ("error", "access_denied"),
                    ("error_description", "the person denied access"),
                ],
                pending.state.as_deref(),
            );
        }
        let keys = Arc::clone(&st.keys);
        let required: Vec<&str> = if pending.explicit_scope {
            pending.scopes.iter().map(String::as_str).collect()
        } else {
            Vec::new()
        };
        let verdict = keys.verify_at(
            field("key").trim(),
            &required,
            Utc.timestamp_opt(now, 0).single().unwrap_or_else(Utc::now),
        );
        let refused = match (verdict.code, verdict.key) {
            (Code::Valid, Some(info)) => {
                let scopes: Vec<String> = if pending.explicit_scope {
                    pending.scopes.clone()
                } else if pending.scopes.is_empty() {
                    info.permissions.clone()
                } else {
                    pending
                        .scopes
                        .iter()
                        .filter(|s| mcp_key_verifier::permits(&info.permissions, s))
                        .cloned()
                        .collect()
                };
                if scopes.is_empty() {
                    Some("This key holds none of the permissions offered here.")
                } else {
                    return self.approve(handle, &pending, info.id.clone(), scopes, now);
                }
            }
            (Code::InsufficientPermissions, _) => {
                Some("This key does not hold every permission the client asks for. Use another key, or deny.")
            }
            _ => Some("This key is not accepted here: check that it is complete, current and not revoked."),
        };
        if let Some(info) = verdict.key {
            st.log.refused(info, verdict.code);
        }
        self.counters.consent(2);
        let why = refused.unwrap_or_default();
        match self.grants.failed_attempt(handle, now) {
            Ok(true) => {}
            Ok(false) => {
                return page_error(
                    StatusCode::BAD_REQUEST,
                    "Too many keys were refused. Start again from the client.",
                )
            }
            Err(_) => return unavailable_page(),
        }
        // The same page again, with the same request and token (the cookie is unchanged).
        let csrf = field("csrf");
        self.consent_page(&pending, handle, csrf, Some(why), StatusCode::BAD_REQUEST)
    }

    fn approve(
        &self,
        handle: &str,
        p: &Pending,
        key_id: String,
        scopes: Vec<String>,
        now: i64,
    ) -> Response<Body> {
        match self.grants.take_pending(handle, now) {
            Ok(Some(_)) => {}
            Ok(None) => {
                return page_error(
                    StatusCode::BAD_REQUEST,
                    "This page has expired or was already used. Start again from the client.",
                )
            }
            Err(_) => return unavailable_page(),
        }
        let grant = store::Grant {
            client_id: p.client_id.clone(),
            redirect_uri: p.redirect_uri.clone(),
            challenge: p.challenge.clone(),
            scopes,
            key_id: key_id.clone(),
        };
        let Ok(code) = self.grants.issue_code(grant, now) else {
            return self.redirect(
                &p.redirect_uri,
                &[("error", "temporarily_unavailable")],
                p.state.as_deref(),
            );
        };
        self.clients.used(&p.client_id, now);
        self.counters.consent(0);
        log(format_args!(
            "bridge: key_id={} allowed client {}",
            sanitize(&key_id),
            sanitize(&p.client_id)
        ));
        self.redirect(
            &p.redirect_uri,
            &[("code", code.as_str())],
            p.state.as_deref(),
        )
    }

    /// A 302 to the client's (verified) redirect URI with `params`, `state` and `iss`.
    fn redirect(&self, uri: &str, params: &[(&str, &str)], state: Option<&str>) -> Response<Body> {
        let mut q = form_urlencoded::Serializer::new(String::new());
        for (k, v) in params {
            q.append_pair(k, v);
        }
        if let Some(s) = state {
            q.append_pair("state", s);
        }
        q.append_pair("iss", &self.issuer);
        let sep = if uri.contains('?') { '&' } else { '?' };
        let location = format!("{uri}{sep}{}", q.finish());
        let mut r = Response::new(Full::new(Bytes::new()));
        *r.status_mut() = StatusCode::FOUND;
        let h = r.headers_mut();
        if let Ok(v) = HeaderValue::from_str(&location) {
            h.insert(header::LOCATION, v);
        }
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
        r
    }

    /// POST `/token`.
    fn token(&self, body: &[u8], st: &Served, now: i64) -> Response<Body> {
        let Ok(p) = params(body) else {
            return token_error("invalid_request", "a parameter is repeated");
        };
        let field = |k: &str| p.get(k).map(String::as_str);
        if field("resource").is_some_and(|r| r != self.resource) {
            return token_error("invalid_target", "resource is not this server's");
        }
        let keys = Arc::clone(&st.keys);
        match field("grant_type") {
            Some("authorization_code") => {
                let (Some(code), Some(client_id), Some(redirect_uri), Some(verifier)) = (
                    field("code"),
                    field("client_id"),
                    field("redirect_uri"),
                    field("code_verifier"),
                ) else {
                    return token_error(
                        "invalid_request",
                        "code, client_id, redirect_uri and code_verifier are required",
                    );
                };
                if !well_formed(code) {
                    return self.grant_error(GrantError::Invalid, "code");
                }
                let r = self.grants.redeem_code(code, now, |g| {
                    if g.client_id != client_id {
                        return Err("the code was issued to another client");
                    }
                    if g.redirect_uri != redirect_uri {
                        return Err("redirect_uri is not the one of the authorization request");
                    }
                    if !pkce_ok(verifier, &g.challenge) {
                        return Err("code_verifier does not match the code_challenge");
                    }
                    let perms = key_permissions(&keys, &g.key_id, now)
                        .ok_or("the key behind this code is no longer valid")?;
                    let scopes = cut(&g.scopes, &perms);
                    if scopes.is_empty() {
                        return Err("the key behind this code no longer holds its scopes");
                    }
                    Ok(scopes)
                });
                self.counters.grant(0, &r);
                match r {
                    Ok(Ok(r)) => self.tokens(
                        &r.grant.key_id,
                        &r.grant.client_id,
                        &r.scopes,
                        r.family,
                        &r.refresh,
                        now,
                    ),
                    Ok(Err(why)) => token_error("invalid_grant", why),
                    Err(e) => self.grant_error(e, "code"),
                }
            }
            Some("refresh_token") => {
                let (Some(refresh), Some(client_id)) = (field("refresh_token"), field("client_id"))
                else {
                    return token_error(
                        "invalid_request",
                        "refresh_token and client_id are required",
                    );
                };
                if !well_formed(refresh) {
                    return self.grant_error(GrantError::Invalid, "refresh token");
                }
                let asked: Option<Vec<String>> =
                    field("scope").map(|s| dedup(s.split_ascii_whitespace()));
                // A scope beyond the grant is refused before anything rotates: the client
                // keeps a refresh token that still works (RFC 6749 §6).
                if let (Some(asked), Some(granted)) =
                    (&asked, self.grants.family_scopes(refresh, now))
                {
                    if asked.is_empty() || asked.iter().any(|a| !granted.contains(a)) {
                        return token_error(
                            "invalid_scope",
                            "scope must name some of the scopes granted, and no others",
                        );
                    }
                }
                let r = self.grants.rotate(refresh, now, |f| {
                    if f.client_id != client_id {
                        return Err("the refresh token was issued to another client");
                    }
                    let Some(perms) = key_permissions(&keys, &f.key_id, now) else {
                        return Err("the key behind this refresh token is no longer valid");
                    };
                    let mut left = cut(&f.scopes, &perms);
                    if let Some(asked) = &asked {
                        left.retain(|s| asked.contains(s));
                    }
                    if left.is_empty() {
                        return Err("the key behind this refresh token no longer holds its scopes");
                    }
                    Ok(())
                });
                self.counters.grant(1, &r);
                match r {
                    Ok(Ok(store::Rotated {
                        family: f,
                        id: family,
                        refresh: next,
                    })) => {
                        let perms = key_permissions(&keys, &f.key_id, now).unwrap_or_default();
                        let mut scopes = cut(&f.scopes, &perms);
                        if let Some(asked) = &asked {
                            scopes.retain(|s| asked.contains(s));
                        }
                        self.tokens(&f.key_id, &f.client_id, &scopes, family, &next, now)
                    }
                    Ok(Err(why)) => {
                        log(format_args!(
                            "bridge: a refresh was refused ({why}); its tokens are revoked"
                        ));
                        token_error("invalid_grant", why)
                    }
                    Err(e) => self.grant_error(e, "refresh token"),
                }
            }
            Some(_) => token_error(
                "unsupported_grant_type",
                "grant_type must be authorization_code or refresh_token",
            ),
            None => token_error("invalid_request", "grant_type is required"),
        }
    }

    fn grant_error(&self, e: GrantError, what: &str) -> Response<Body> {
        match e {
            GrantError::Invalid => token_error(
                "invalid_grant",
                &format!("the {what} is unknown, expired or revoked"),
            ),
            GrantError::Reused => {
                log(format_args!(
                    "bridge: a {what} was used twice; the tokens issued from it are revoked"
                ));
                token_error(
                    "invalid_grant",
                    &format!("the {what} was used before; the tokens issued from it are revoked"),
                )
            }
            GrantError::Full => oauth_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "too many grants are held; try again later",
            ),
            GrantError::Unavailable => oauth_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "the authorization state cannot be reached; try again later",
            ),
        }
    }

    /// The token response: a new access token, and the refresh token of `family`.
    fn tokens(
        &self,
        key_id: &str,
        client_id: &str,
        scopes: &[String],
        family: u64,
        refresh: &str,
        now: i64,
    ) -> Response<Body> {
        let access = self.mint(key_id, client_id, scopes, family, now);
        let mut r = json_response(
            StatusCode::OK,
            &json!({
                "access_token": access,
                "token_type": "Bearer",
                "expires_in": self.lifetime,
                "refresh_token": refresh,
                "scope": scopes.join(" "),
            }),
        );
        r.headers_mut()
            .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        r
    }

    /// An access token (RFC 9068 claims, and `sid`: its refresh family, whose revocation
    /// denies it).
    fn mint(
        &self,
        key_id: &str,
        client_id: &str,
        scopes: &[String],
        family: u64,
        now: i64,
    ) -> String {
        let mut jti = [0u8; 16];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut jti);
        let jti = B64URL.encode(jti);
        let exp = now + self.lifetime;
        self.signer.sign(&json!({
            "iss": self.issuer,
            "aud": self.resource,
            "sub": key_id,
            "client_id": client_id,
            "scope": scopes.join(" "),
            "iat": now,
            "exp": exp,
            "jti": jti,
            "sid": family.to_string(),
        }))
    }

    /// POST `/register` (RFC 7591).
    fn register(&self, body: &[u8], now: i64) -> Response<Body> {
        match self.clients.register(body, now) {
            Ok(c) => {
                let mut doc = json!({
                    "client_id": c.id,
                    "client_id_issued_at": now,
                    "redirect_uris": c.redirect_uris,
                    "token_endpoint_auth_method": "none",
                    "grant_types": ["authorization_code", "refresh_token"],
                    "response_types": ["code"],
                });
                if let Some(n) = &c.name {
                    doc["client_name"] = json!(n);
                }
                json_response(StatusCode::CREATED, &doc)
            }
            Err(("temporarily_unavailable", why)) if why == clients::Refused::STORE_DOWN => {
                oauth_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "temporarily_unavailable",
                    &why,
                )
            }
            Err(("temporarily_unavailable", why)) => {
                let mut r = oauth_error(
                    StatusCode::TOO_MANY_REQUESTS,
                    "temporarily_unavailable",
                    &why,
                );
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
                r
            }
            Err((error, why)) => oauth_error(StatusCode::BAD_REQUEST, error, &why),
        }
    }

    /// POST `/revoke` (RFC 7009): 200 whether or not the token was known.
    fn revoke(&self, body: &[u8], now: i64) -> Response<Body> {
        let Ok(p) = params(body) else {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "a parameter is repeated",
            );
        };
        let Some(token) = p.get("token") else {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "token is required",
            );
        };
        let client_id = p.get("client_id").map(String::as_str);
        let mut done = Ok(());
        if TokenVerifier::looks_like_token(token) {
            // An access token: its family goes with it (§2.1 lets the grant go too), one
            // denylist entry however many of its tokens are revoked.
            if self.verifier.verify(token, now).is_ok() {
                let claims = claims_of(token).unwrap_or_default();
                let theirs = client_id
                    .is_none_or(|c| claims.get("client_id").and_then(Value::as_str) == Some(c));
                let family = claims
                    .get("sid")
                    .and_then(Value::as_str)
                    .and_then(|s| s.parse().ok());
                if let (Some(family), true) = (family, theirs) {
                    done = self.grants.revoke_family(family, now);
                }
            }
        } else if well_formed(token) {
            done = self.grants.revoke_refresh(token, client_id, now);
        }
        if done.is_err() {
            // RFC 7009 §2.2.1: the client retries later.
            return oauth_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "the authorization state cannot be reached; try again later",
            );
        }
        let mut r = Response::new(Full::new(Bytes::new()));
        r.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        r
    }
}

/// Key `id` if it is valid (not revoked, not expired) in `keys` at `now`; `None`
/// otherwise (unknown included).
fn valid_key<'a>(keys: &'a Verifier, id: &str, now: i64) -> Option<&'a KeyInfo> {
    let k = keys.key(id)?;
    let expired = k.expires_at.is_some_and(|e| e.timestamp() <= now);
    (!k.is_revoked() && !expired).then_some(k)
}

/// The permissions of key `id` if it is valid at `now`.
fn key_permissions(keys: &Verifier, id: &str, now: i64) -> Option<Vec<String>> {
    valid_key(keys, id, now).map(|k| k.permissions.clone())
}

/// The scopes among `scopes` that `perms` grant.
fn cut(scopes: &[String], perms: &[String]) -> Vec<String> {
    scopes
        .iter()
        .filter(|s| mcp_key_verifier::permits(perms, s))
        .cloned()
        .collect()
}

fn dedup<'a>(items: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for i in items {
        if !out.iter().any(|o| o == i) {
            out.push(i.to_owned());
        }
    }
    out
}

/// Whether `s` has the shape of a code, refresh token or consent handle this bridge hands
/// out (256 random bits, base64url: 43 characters): anything else is refused before it is
/// hashed or looked up.
fn well_formed(s: &str) -> bool {
    s.len() == 43 && s.bytes().all(is_b64url)
}

fn is_b64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// RFC 7636 §4.1 and §4.6: a verifier of 43–128 unreserved characters whose SHA-256 is
/// the challenge (compared in constant time).
pub fn pkce_ok(verifier: &str, challenge: &str) -> bool {
    let shape = (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
    let computed = B64URL.encode(Sha256::digest(verifier.as_bytes()));
    shape
        && bool::from(subtle::ConstantTimeEq::ct_eq(
            computed.as_bytes(),
            challenge.as_bytes(),
        ))
}

/// Form or query parameters; `Err` when one is repeated (RFC 6749 §3.1).
fn params(bytes: &[u8]) -> std::result::Result<HashMap<String, String>, ()> {
    let mut out = HashMap::new();
    for (k, v) in form_urlencoded::parse(bytes) {
        if out.insert(k.into_owned(), v.into_owned()).is_some() {
            return Err(());
        }
    }
    Ok(out)
}

/// The consent cookie's value, if the request carries it once.
fn cookie(h: &HeaderMap) -> Option<&str> {
    let mut found = None;
    for v in h.get_all(header::COOKIE) {
        for part in v.to_str().ok()?.split(';') {
            if let Some(val) = part
                .trim()
                .strip_prefix(COOKIE)
                .and_then(|r| r.strip_prefix('='))
            {
                if found.is_some() {
                    return None;
                }
                found = Some(val);
            }
        }
    }
    found
}

/// The claims of a JWS, unverified (for routing and reading after verification).
fn claims_of(token: &str) -> Option<serde_json::Map<String, Value>> {
    let payload = token.split('.').nth(1)?;
    let bytes = B64URL.decode(payload).ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        Value::Object(m) => Some(m),
        _ => None,
    }
}

/// Reads a small body (a form or registration JSON), bounded in size and time.
async fn read_form(
    body: Incoming,
    headers: &HeaderMap,
    st: &Served,
) -> std::result::Result<Bytes, Response<Body>> {
    let too_large = || {
        oauth_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request",
            "the body is larger than 16 KiB",
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_FORM_BYTES as u64) {
        return Err(too_large());
    }
    let limited = Limited::new(body, MAX_FORM_BYTES);
    match tokio::time::timeout(st.read_timeout, limited.collect()).await {
        Ok(Ok(c)) => Ok(c.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Ok(Err(_)) => Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the body could not be read",
        )),
        Err(_) => Err(oauth_error(
            StatusCode::REQUEST_TIMEOUT,
            "invalid_request",
            "the body did not arrive in time",
        )),
    }
}

fn json_response(status: StatusCode, body: &Value) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// Metadata and keys: public, cacheable, readable from a browser-based client.
pub fn public_json(body: String) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    let h = r.headers_mut();
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
    r
}

/// An RFC 6749 §5.2 error.
fn oauth_error(status: StatusCode, error: &str, why: &str) -> Response<Body> {
    json_response(status, &json!({"error": error, "error_description": why}))
}

fn token_error(error: &str, why: &str) -> Response<Body> {
    oauth_error(StatusCode::BAD_REQUEST, error, why)
}

fn html_response(status: StatusCode, html: String) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(html)));
    *r.status_mut() = status;
    let h = r.headers_mut();
    for (k, v) in page::HEADERS {
        h.insert(
            header::HeaderName::from_static(k),
            HeaderValue::from_static(v),
        );
    }
    r
}

/// The page shown when the shared state cannot be reached.
fn unavailable_page() -> Response<Body> {
    page_error(
        StatusCode::SERVICE_UNAVAILABLE,
        "The authorization service cannot reach its state just now; try again in a moment.",
    )
}

fn page_error(status: StatusCode, message: &str) -> Response<Body> {
    html_response(status, page::error(message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_this_bridge_hands_out_is_looked_up() {
        let t = store::random_token();
        assert!(well_formed(&t));
        assert!(!well_formed(&t[1..]) && !well_formed(&format!("{}=", &t[1..])));
        assert!(!well_formed(&format!("{}\0", &t[1..])));
        assert!(!well_formed(&"é".repeat(21)));
    }

    #[test]
    fn pkce_is_s256_only() {
        // The challenge computed independently (Python's hashlib and base64).
        let verifier = "dBjftJeZ4CVP-mJ92K1qUdjYUj6Mte7aaMYxa7xBLjk";
        let challenge = "WsjRriMoWzkMiDUQDgcfJaGC5jBGx-jygPtg0xtk9eY";
        assert!(pkce_ok(verifier, challenge));
        assert!(!pkce_ok(verifier, verifier), "plain is not S256");
        assert!(!pkce_ok(&verifier[..42], challenge), "too short a verifier");
        assert!(!pkce_ok(&format!("{verifier} "), challenge));
    }

    #[test]
    fn the_issuer_is_the_resource_origin_by_default() {
        assert_eq!(
            default_issuer("https://mcp.example.com/mcp"),
            "https://mcp.example.com"
        );
        assert_eq!(
            default_issuer("http://127.0.0.1:8080/x?y"),
            "http://127.0.0.1:8080"
        );
    }

    #[test]
    fn repeated_parameters_are_refused() {
        assert!(params(b"a=1&b=2").is_ok());
        assert!(params(b"a=1&a=2").is_err());
        assert_eq!(params(b"scope=a%20b").unwrap()["scope"], "a b");
    }

    #[test]
    fn one_consent_cookie_is_read() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("x=1; __Host-mcp-consent=abc"),
        );
        assert_eq!(cookie(&h), Some("abc"));
        h.append(
            header::COOKIE,
            HeaderValue::from_static("__Host-mcp-consent=def"),
        );
        assert_eq!(cookie(&h), None);
    }
}
