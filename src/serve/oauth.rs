//! Access tokens at `/auth` (docs/oauth.md): the issuers' keys, found by discovery (RFC 8414,
//! then OpenID) or read from `--jwks FILE`, kept current by one thread, and fetched again on
//! an unknown `kid` at most every [`REFETCH_EVERY`] per issuer; the checks themselves are
//! `mcp_key_verifier::oauth`'s.
//!
//! Invariants: an issuer's metadata must name that issuer (RFC 8414 §3.3) and its `jwks_uri`
//! must be HTTPS (plain HTTP only on loopback), so a network attacker cannot hand `serve`
//! keys; nothing fetched is ever logged beyond its URL and size.

use std::io::Read as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use mcp_key_verifier::oauth::{TokenError, TokenInfo, TokenVerifier};

use super::log::log;
use crate::error::{Error, Result};

/// The least time between two fetches of one issuer's keys asked for by unknown `kid`s.
pub const REFETCH_EVERY: Duration = Duration::from_secs(30);
/// How often every issuer's keys are fetched again anyway (and a `--jwks` file looked at).
const REFRESH_EVERY: Duration = Duration::from_secs(600);
/// The largest metadata document or key set read.
const MAX_DOCUMENT_BYTES: u64 = 1024 * 1024;
/// How long one fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// `serve`'s OAuth settings.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// `--resource`.
    pub resource: String,
    /// `--issuer`, in order.
    pub issuers: Vec<String>,
    /// `--jwks`.
    pub jwks: Option<PathBuf>,
    /// `--scope-claim`.
    pub scope_claim: String,
    /// `--scope`.
    pub scopes: Vec<String>,
    /// `--authorization-server`: this serve issues tokens too.
    pub bridge: Option<BridgeSettings>,
}

/// What `--authorization-server` is told.
#[derive(Debug, Clone)]
pub struct BridgeSettings {
    /// The issuer: `--issuer-url`, or the origin of `--resource`.
    pub issuer: String,
    /// `--signing-key`.
    pub signing_key: PathBuf,
    /// `--token-lifetime`, in seconds.
    pub token_lifetime: u64,
    /// `--allow-private-clients`.
    pub allow_private_clients: bool,
    /// Not `--no-dynamic-registration`.
    pub dynamic_registration: bool,
    /// `--authorization-state`: the Redis store a fleet keeps its state in (this process
    /// when `None`).
    pub state: Option<String>,
}

/// The issuer for a resource when `--issuer-url` is not given: its origin.
pub fn default_issuer(resource: &str) -> String {
    let (scheme, rest) = resource.split_once("://").unwrap_or(("https", resource));
    let host = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    format!("{scheme}://{host}")
}

/// Tokens, ready for `/auth`.
pub struct Tokens {
    verifier: TokenVerifier,
    settings: Settings,
    /// Per issuer: its `jwks_uri` once discovered, and when its keys were last fetched.
    sources: Vec<Mutex<Source>>,
    agent: ureq::Agent,
    /// The Protected Resource Metadata document.
    pub metadata: String,
    /// Where it is served (`resource_metadata` of the challenges).
    pub metadata_url: String,
}

#[derive(Default)]
struct Source {
    jwks_uri: Option<String>,
    /// The last fetch of any kind (the periodic refresh looks at it).
    fetched: Option<Instant>,
    /// The last fetch an unknown `kid` asked for (bounded by [`REFETCH_EVERY`]).
    asked: Option<Instant>,
    file_mtime: Option<SystemTime>,
}

impl Tokens {
    /// Checks the settings, fetches every issuer's keys once (a failure is logged and
    /// retried by the refresher), and starts the refresher.
    ///
    /// # Errors
    /// [`Error::Usage`] for a resource or issuer that is not an absolute HTTPS URL (HTTP
    /// only on loopback), or an unreadable `--jwks` file.
    pub fn start(settings: Settings) -> Result<Arc<Tokens>> {
        check_url("--resource", &settings.resource)?;
        for i in &settings.issuers {
            check_url("--issuer", i)?;
        }
        let t = Arc::new(Tokens {
            verifier: TokenVerifier::new(
                &settings.resource,
                &settings.issuers,
                &settings.scope_claim,
            ),
            metadata: mcp_key_verifier::oauth::metadata_json(
                &settings.resource,
                &all_issuers(&settings),
                &settings.scopes,
            ),
            metadata_url: mcp_key_verifier::oauth::metadata_url(&settings.resource),
            sources: settings.issuers.iter().map(|_| Mutex::default()).collect(),
            agent: ureq::AgentBuilder::new()
                .timeout(FETCH_TIMEOUT)
                .redirects(0)
                .build(),
            settings,
        });
        if let Some(file) = &t.settings.jwks {
            t.read_jwks_file(file).map_err(Error::usage)?;
        } else {
            for i in 0..t.sources.len() {
                if let Err(e) = t.fetch(i) {
                    log(format_args!(
                        "oauth: {e}; tokens of this issuer are refused until its keys are fetched"
                    ));
                }
            }
        }
        let refresher = Arc::clone(&t);
        std::thread::Builder::new()
            .name("oauth-keys".into())
            .spawn(move || refresher.refresh_forever())
            .map_err(|e| Error::Io {
                context: "start the OAuth key refresher".into(),
                source: e,
            })?;
        Ok(t)
    }

    /// The issuers.
    pub fn issuers(&self) -> &[String] {
        &self.settings.issuers
    }

    /// Checks a token; an unknown key makes its issuer's keys be fetched again (at most
    /// every [`REFETCH_EVERY`]) and the token checked once more.
    pub async fn verify(self: &Arc<Self>, token: &str) -> Result<Arc<TokenInfo>, TokenError> {
        let now = chrono::Utc::now().timestamp();
        match self.verifier.verify(token, now) {
            Err(TokenError::UnknownKey(i)) if self.settings.jwks.is_none() && self.due(i) => {
                let me = Arc::clone(self);
                let fetched = tokio::task::spawn_blocking(move || me.fetch(i)).await;
                if let Ok(Err(e)) = fetched {
                    log(format_args!("oauth: {e}"));
                }
                self.verifier.verify(token, now)
            }
            other => other,
        }
    }

    /// Whether an unknown `kid` may make issuer `i`'s keys be fetched now (and counts it):
    /// at most once every [`REFETCH_EVERY`], so tokens with made-up kids cannot make
    /// `serve` hammer the issuer.
    fn due(&self, i: usize) -> bool {
        let mut s = self.sources[i]
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if s.asked.is_some_and(|t| t.elapsed() < REFETCH_EVERY) {
            return false;
        }
        s.asked = Some(Instant::now());
        true
    }

    fn refresh_forever(&self) {
        loop {
            std::thread::sleep(REFETCH_EVERY);
            if let Some(file) = &self.settings.jwks {
                if let Err(e) = self.read_jwks_file(file) {
                    log(format_args!("oauth: {e}; the keys read before stay"));
                }
                continue;
            }
            for i in 0..self.sources.len() {
                let stale = {
                    let s = self.sources[i]
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner);
                    s.jwks_uri.is_none() || s.fetched.is_none_or(|t| t.elapsed() >= REFRESH_EVERY)
                };
                if stale {
                    if let Err(e) = self.fetch(i) {
                        log(format_args!("oauth: {e}"));
                    }
                }
            }
        }
    }

    /// Reads the `--jwks` file into every issuer when it changed.
    fn read_jwks_file(&self, file: &std::path::Path) -> std::result::Result<(), String> {
        let shown = mcp_key_vault::display::path(file);
        let mtime = std::fs::metadata(file)
            .and_then(|m| m.modified())
            .map_err(|e| format!("cannot read the JWK Set {shown}: {e}"))?;
        let first = &self.sources[0];
        if first
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .file_mtime
            == Some(mtime)
        {
            return Ok(());
        }
        let bytes = mcp_key_vault::fsio::read_bounded(file, MAX_DOCUMENT_BYTES, "JWK Set")
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("the JWK Set {shown} does not exist"))?;
        // Checked whole before anything is replaced: a file without a usable key changes
        // nothing (the keys read before stay). One issuer only (checked at start).
        let n =
            mcp_key_verifier::oauth::usable_keys(&bytes).map_err(|e| format!("{shown}: {e}"))?;
        if n == 0 {
            return Err(format!(
                "{shown} holds no RSA, P-256 or Ed25519 signing key"
            ));
        }
        self.verifier
            .set_jwks(0, &bytes)
            .map_err(|e| format!("{shown}: {e}"))?;
        first
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .file_mtime = Some(mtime);
        log(format_args!("oauth: keys read from {shown}"));
        Ok(())
    }

    /// Discovers issuer `i` (once) and fetches its keys.
    fn fetch(&self, i: usize) -> std::result::Result<(), String> {
        let issuer = &self.settings.issuers[i];
        let known = self.sources[i]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .jwks_uri
            .clone();
        let jwks_uri = match known {
            Some(u) => u,
            None => self.discover(issuer)?,
        };
        let bytes = self.get(&jwks_uri)?;
        let n = self
            .verifier
            .set_jwks(i, &bytes)
            .map_err(|e| format!("{jwks_uri}: {e}"))?;
        let mut s = self.sources[i]
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        s.jwks_uri = Some(jwks_uri.clone());
        s.fetched = Some(Instant::now());
        drop(s);
        log(format_args!(
            "oauth: {n} key(s) of {issuer} from {jwks_uri}"
        ));
        Ok(())
    }

    /// The `jwks_uri` of `issuer`'s metadata: RFC 8414 first, then OpenID discovery. The
    /// metadata must name the issuer itself.
    fn discover(&self, issuer: &str) -> std::result::Result<String, String> {
        let mut why = Vec::new();
        for url in metadata_locations(issuer) {
            let doc = match self.get(&url) {
                Ok(b) => b,
                Err(e) => {
                    why.push(e);
                    continue;
                }
            };
            let v: serde_json::Value =
                serde_json::from_slice(&doc).map_err(|_| format!("{url} is not JSON"))?;
            if v.get("issuer").and_then(|x| x.as_str()) != Some(issuer) {
                return Err(format!("{url} names another issuer than {issuer}"));
            }
            let jwks = v
                .get("jwks_uri")
                .and_then(|x| x.as_str())
                .ok_or_else(|| format!("{url} has no jwks_uri"))?;
            check_url("jwks_uri", jwks).map_err(|e| e.to_string())?;
            return Ok(jwks.to_owned());
        }
        Err(format!(
            "no metadata for the issuer {issuer} ({})",
            why.join("; ")
        ))
    }

    fn get(&self, url: &str) -> std::result::Result<Vec<u8>, String> {
        let resp = self
            .agent
            .get(url)
            .set("Accept", "application/json")
            .call()
            .map_err(|e| format!("cannot fetch {url}: {}", short(&e.to_string())))?;
        let mut buf = Vec::new();
        resp.into_reader()
            .take(MAX_DOCUMENT_BYTES + 1)
            .read_to_end(&mut buf)
            .map_err(|e| format!("cannot read {url}: {e}"))?;
        if buf.len() as u64 > MAX_DOCUMENT_BYTES {
            return Err(format!("{url} is larger than 1 MiB"));
        }
        Ok(buf)
    }
}

/// The issuers the resource metadata names: this serve's own (first) and `--issuer`s.
fn all_issuers(s: &Settings) -> Vec<String> {
    let mut all: Vec<String> = s
        .bridge
        .iter()
        .map(|b| b.issuer.trim_end_matches('/').to_owned())
        .collect();
    all.extend(s.issuers.iter().cloned());
    all
}

/// Where an issuer's metadata may be: RFC 8414 §3.1 (the well-known path inserted before
/// the issuer's path), then OpenID Connect Discovery (appended).
pub fn metadata_locations(issuer: &str) -> Vec<String> {
    let (scheme, rest) = issuer.split_once("://").unwrap_or(("https", issuer));
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
        None => (rest, ""),
    };
    vec![
        format!("{scheme}://{host}/.well-known/oauth-authorization-server{path}"),
        format!("{scheme}://{host}{path}/.well-known/openid-configuration"),
    ]
}

/// An absolute HTTPS URL, or HTTP on loopback (tests, a local issuer); no user-info (a
/// `user@` part could make `http://localhost:@elsewhere/` look like loopback).
fn check_url(what: &str, url: &str) -> Result<()> {
    let bad = || {
        Error::usage(format!(
            "{what} must be an https:// URL (http:// only on 127.0.0.1, localhost or [::1]), \
             without user-info or a fragment: {}",
            mcp_key_vault::display::sanitize(url)
        ))
    };
    let (scheme, rest) = url.split_once("://").ok_or_else(bad)?;
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    if authority.is_empty() || authority.contains('@') || url.contains(['#', ' ', '"', '\\']) {
        return Err(bad());
    }
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    match scheme {
        "https" => Ok(()),
        "http" if matches!(host, "127.0.0.1" | "localhost" | "::1") => Ok(()),
        _ => Err(bad()),
    }
}

fn short(s: &str) -> String {
    mcp_key_vault::display::sanitize(&s.chars().take(200).collect::<String>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_is_looked_for_where_the_rfcs_put_it() {
        assert_eq!(
            metadata_locations("https://id.example.com/realms/mcp"),
            [
                "https://id.example.com/.well-known/oauth-authorization-server/realms/mcp",
                "https://id.example.com/realms/mcp/.well-known/openid-configuration"
            ]
        );
        assert_eq!(
            metadata_locations("https://id.example.com"),
            [
                "https://id.example.com/.well-known/oauth-authorization-server",
                "https://id.example.com/.well-known/openid-configuration"
            ]
        );
    }

    #[test]
    fn only_https_or_loopback_urls() {
        for ok in [
            "https://id.example.com",
            "http://127.0.0.1:8080/x",
            "http://localhost",
            "http://[::1]:9/x",
        ] {
            assert!(check_url("x", ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://id.example.com",
            "http://127.0.0.1.evil.com",
            "https://",
            "ftp://x",
            "https://a#b",
            "id.example.com",
            "http://localhost:@evil.example/realm",
            "http://127.0.0.1@evil.example/",
            "https://user@id.example.com",
            "http://[::2]/",
        ] {
            assert!(check_url("x", bad).is_err(), "{bad}");
        }
    }
}
