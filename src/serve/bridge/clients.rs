//! The clients the bridge knows: those whose `client_id` is the HTTPS URL of a Client ID
//! Metadata Document (fetched, bounded, cached), and those registered at `/register`
//! (RFC 7591, public clients only, rate-limited).
//!
//! Invariants: a metadata document is fetched only from a public address (checked on the
//! addresses the connection uses, so DNS rebinding gains nothing) unless
//! `--allow-private-clients`; at most [`MAX_DOCUMENT_BYTES`] in [`FETCH_TIMEOUT`], no
//! redirects; a redirect URI is HTTPS, or HTTP on loopback, without a fragment.

use std::collections::HashMap;
use std::io::Read as _;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs as _};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use rand::RngCore as _;
use serde_json::Value;

use super::shared::Shared;

/// The largest client metadata document read.
pub const MAX_DOCUMENT_BYTES: u64 = 5 * 1024;
/// How long one fetch may take.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a fetched document is used, in seconds (a failure: [`FAILURE_TTL`]).
const DOCUMENT_TTL: i64 = 300;
const FAILURE_TTL: i64 = 30;
const MAX_CACHED: usize = 1000;
/// Clients registered at `/register` kept at once (each at most a 16 KiB body).
pub const MAX_REGISTERED: usize = 2_000;
/// A registered client never used for an authorization is dropped after this long.
const UNUSED_CLIENT_TTL: i64 = 3600;
/// A registered client not used for this long is dropped.
const IDLE_CLIENT_TTL: i64 = 30 * 24 * 3600;
/// Most redirect URIs of one client.
const MAX_REDIRECT_URIS: usize = 10;
/// Registrations accepted per minute (all clients together).
pub const REGISTRATIONS_PER_MINUTE: u32 = 10;
/// Metadata documents fetched per minute (all clients together).
const FETCHES_PER_MINUTE: u32 = 60;
/// Metadata documents fetched per minute from one host: a client that floods the bridge
/// with document URLs of its own host uses up its own share, not everyone's.
const FETCHES_PER_HOST_PER_MINUTE: u32 = 10;
/// Hosts whose fetches are counted at once.
const MAX_HOSTS_COUNTED: usize = 1000;

/// A client: its id, the redirect URIs it may use, and the name it gives itself.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Client {
    pub id: String,
    pub name: Option<String>,
    pub redirect_uris: Vec<String>,
}

/// Whether `uri` may be a redirect URI: absolute HTTPS, or HTTP on a loopback host (a
/// native client, RFC 8252 §7.3); no fragment, no user-info.
pub fn redirect_uri_ok(uri: &str) -> bool {
    if uri.len() > 2000
        || uri.contains(['#', ' ', '"', '<', '>', '\\'])
        || uri.chars().any(char::is_control)
    {
        return false;
    }
    let Some((scheme, rest)) = uri.split_once("://") else {
        return false;
    };
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    if authority.is_empty() || authority.contains('@') {
        return false;
    }
    match scheme {
        "https" => true,
        "http" => matches!(host_of(authority), "127.0.0.1" | "localhost" | "[::1]"),
        _ => false,
    }
}

/// The host of an authority, brackets kept for IPv6.
fn host_of(authority: &str) -> &str {
    if authority.starts_with('[') {
        return authority.split_inclusive(']').next().unwrap_or("");
    }
    authority.rsplit_once(':').map_or(authority, |(h, _)| h)
}

/// Whether an address is one a client document must not be fetched from without
/// `--allow-private-clients`: loopback, private, link-local, unspecified, shared, multicast.
pub fn forbidden_address(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || o[0] == 0
                || (o[0] == 100 && (64..128).contains(&o[1]))
                || o[0] >= 240
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return forbidden_address(IpAddr::V4(v4));
            }
            let s = v6.segments();
            let o = v6.octets();
            let embedded =
                |at: usize| std::net::Ipv4Addr::new(o[at], o[at + 1], o[at + 2], o[at + 3]);
            // Addresses that carry an IPv4 one a gateway reaches: NAT64's well-known prefix
            // (64:ff9b::/96, RFC 6052) and 6to4 (2002::/16, RFC 3056) are judged by it.
            if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                return forbidden_address(IpAddr::V4(embedded(12)));
            }
            if s[0] == 0x2002 {
                return forbidden_address(IpAddr::V4(embedded(2)));
            }
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                // Site-local (deprecated), local-use NAT64 (64:ff9b:1::/48, RFC 8215),
                // Teredo (2001::/32), documentation (2001:db8::/32), IPv4-compatible (::/96).
                || (s[0] & 0xffc0) == 0xfec0
                || s[..3] == [0x64, 0xff9b, 1]
                || s[..2] == [0x2001, 0]
                || s[..2] == [0x2001, 0xdb8]
                || s[..6] == [0, 0, 0, 0, 0, 0]
        }
    }
}

/// The authority (host and port) of `url`: what stands between `://` and the path, query
/// or fragment; empty without a scheme.
pub fn authority(url: &str) -> &str {
    url.split_once("://")
        .map_or("", |(_, r)| r.split(['/', '?', '#']).next().unwrap_or(""))
}

/// Whether `id` is a client id to fetch (a URL) rather than one registered here.
pub fn is_document_id(id: &str) -> bool {
    id.starts_with("https://") || id.starts_with("http://")
}

/// A client id URL as the specification allows it: HTTPS (HTTP only when private clients
/// are allowed, for tests), with a path, no fragment, no user-info, no dot segments.
fn document_url_ok(url: &str, allow_private: bool) -> bool {
    let Some((scheme, rest)) = url.split_once("://") else {
        return false;
    };
    let Some(slash) = rest.find('/') else {
        return false;
    };
    let (authority, path) = rest.split_at(slash);
    (scheme == "https" || (scheme == "http" && allow_private))
        && !authority.is_empty()
        && !authority.contains('@')
        && path.len() > 1
        && !url.contains(['#', ' ', '"', '<', '>', '\\'])
        && !url.chars().any(char::is_control)
        && !path.split('/').any(|s| s == "." || s == "..")
        && url.len() <= 2000
}

/// A window that lets `limit` events through per minute.
struct Window {
    start: i64,
    count: u32,
}

impl Window {
    fn allow(&mut self, limit: u32, now: i64) -> bool {
        if now - self.start >= 60 {
            self.start = now;
            self.count = 0;
        }
        self.count += 1;
        self.count <= limit
    }
}

/// A fetched document (or why it was refused), and when it was fetched.
type Cached = (Result<Client, Refused>, i64);

struct Registered {
    client: Client,
    registered: i64,
    /// When it last completed an authorization.
    used: Option<i64>,
}

/// Why a client id is not accepted; the text is shown on the error page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused(pub String);

impl Refused {
    /// Why, when the shared store holding registrations cannot be reached (a 503).
    pub const STORE_DOWN: &'static str = "the clients' store cannot be reached; try again";
}

/// The clients: fetched documents (cached) and registrations.
pub struct Clients {
    allow_private: bool,
    /// Where registrations are kept for a fleet (in `registered` otherwise).
    shared: Option<std::sync::Arc<Shared>>,
    agent: ureq::Agent,
    cache: Mutex<HashMap<String, Cached>>,
    registered: Mutex<HashMap<String, Registered>>,
    registrations: Mutex<Window>,
    fetches: Mutex<Window>,
    per_host: Mutex<HashMap<String, Window>>,
}

impl Clients {
    pub fn new(allow_private: bool, shared: Option<std::sync::Arc<Shared>>) -> Clients {
        let resolver = move |netloc: &str| -> std::io::Result<Vec<SocketAddr>> {
            let addrs: Vec<SocketAddr> = netloc.to_socket_addrs()?.collect();
            let allowed: Vec<SocketAddr> = addrs
                .iter()
                .copied()
                .filter(|a| allow_private || !forbidden_address(a.ip()))
                .collect();
            if allowed.is_empty() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    "a private, loopback or link-local address",
                ));
            }
            Ok(allowed)
        };
        Clients {
            allow_private,
            shared,
            agent: ureq::AgentBuilder::new()
                .timeout(FETCH_TIMEOUT)
                .redirects(0)
                .resolver(resolver)
                .build(),
            cache: Mutex::default(),
            registered: Mutex::default(),
            registrations: Mutex::new(Window { start: 0, count: 0 }),
            fetches: Mutex::new(Window { start: 0, count: 0 }),
            per_host: Mutex::default(),
        }
    }

    /// The client `id`: a registered one, or the document at that URL (fetched now when
    /// not cached: blocking, up to [`FETCH_TIMEOUT`]).
    pub fn get(&self, id: &str, now: i64) -> Result<Client, Refused> {
        if !is_document_id(id) {
            if let Some(shared) = &self.shared {
                return registered_id(id)
                    .then(|| shared.client(id))
                    .transpose()
                    .map_err(|_| Refused(Refused::STORE_DOWN.into()))?
                    .flatten()
                    .and_then(|json| serde_json::from_str(&json).ok())
                    .ok_or_else(|| Refused("this client is not registered here".into()));
            }
            let r = self
                .registered
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            return r
                .get(id)
                .map(|c| c.client.clone())
                .ok_or_else(|| Refused("this client is not registered here".into()));
        }
        if !document_url_ok(id, self.allow_private) {
            return Err(Refused(
                "the client id is not an https:// URL with a path (no fragment, no user-info)"
                    .into(),
            ));
        }
        if let Some((r, at)) = self
            .cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
        {
            let ttl = if r.is_ok() { DOCUMENT_TTL } else { FAILURE_TTL };
            if now - at < ttl {
                return r.clone();
            }
        }
        if !self.host_allowed(id, now) {
            return Err(Refused(
                "too many client metadata documents fetched from this host; try again in a \
                 minute"
                    .into(),
            ));
        }
        let allowed = self
            .fetches
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .allow(FETCHES_PER_MINUTE, now);
        if !allowed {
            return Err(Refused(
                "too many client metadata documents fetched; try again in a minute".into(),
            ));
        }
        let r = self.fetch(id);
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if cache.len() >= MAX_CACHED {
            cache.retain(|_, (_, at)| now - *at < DOCUMENT_TTL);
            if cache.len() >= MAX_CACHED {
                cache.clear();
            }
        }
        cache.insert(id.to_owned(), (r.clone(), now));
        r
    }

    /// Counts a fetch from the host of document URL `url`; false past its share.
    fn host_allowed(&self, url: &str, now: i64) -> bool {
        let host = authority(url).to_ascii_lowercase();
        let mut hosts = self.per_host.lock().unwrap_or_else(PoisonError::into_inner);
        if hosts.len() >= MAX_HOSTS_COUNTED && !hosts.contains_key(&host) {
            hosts.retain(|_, w| now - w.start < 60);
            if hosts.len() >= MAX_HOSTS_COUNTED {
                hosts.clear();
            }
        }
        hosts
            .entry(host)
            .or_insert(Window {
                start: now,
                count: 0,
            })
            .allow(FETCHES_PER_HOST_PER_MINUTE, now)
    }

    fn fetch(&self, url: &str) -> Result<Client, Refused> {
        let resp = self
            .agent
            .get(url)
            .set("Accept", "application/json")
            .call()
            .map_err(|e| {
                Refused(match e {
                    ureq::Error::Status(code, _) => {
                        format!("the client metadata document answered {code}")
                    }
                    ureq::Error::Transport(t)
                        if t.kind() == ureq::ErrorKind::Dns
                            && t.to_string().contains("private, loopback") =>
                    {
                        "the client metadata document is on a private, loopback or link-local \
                         address"
                            .into()
                    }
                    ureq::Error::Transport(_) => {
                        "the client metadata document could not be fetched in time".into()
                    }
                })
            })?;
        let mut buf = Vec::new();
        resp.into_reader()
            .take(MAX_DOCUMENT_BYTES + 1)
            .read_to_end(&mut buf)
            .map_err(|_| {
                Refused("the client metadata document could not be read in time".into())
            })?;
        if buf.len() as u64 > MAX_DOCUMENT_BYTES {
            return Err(Refused(
                "the client metadata document is larger than 5 KiB".into(),
            ));
        }
        parse_document(url, &buf)
    }

    /// RFC 7591 registration of a public client from its JSON metadata: the client, or the
    /// `invalid_redirect_uri`/`invalid_client_metadata` error and its description.
    pub fn register(&self, body: &[u8], now: i64) -> Result<Client, (&'static str, String)> {
        let allowed = self
            .registrations
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .allow(REGISTRATIONS_PER_MINUTE, now);
        if !allowed {
            return Err((
                "temporarily_unavailable",
                "too many registrations; try again in a minute".into(),
            ));
        }
        let v: Value = serde_json::from_slice(body).map_err(|_| {
            (
                "invalid_client_metadata",
                "the body is not JSON".to_string(),
            )
        })?;
        let meta = |why: &str| ("invalid_client_metadata", why.to_string());
        if !v.is_object() {
            return Err(meta("the metadata is not a JSON object"));
        }
        if v.get("token_endpoint_auth_method")
            .is_some_and(|m| m != "none")
        {
            return Err(meta(
                "only public clients are registered: token_endpoint_auth_method must be none",
            ));
        }
        let only = |field: &str, allowed: &[&str]| {
            v.get(field).is_none_or(|a| {
                a.as_array().is_some_and(|a| {
                    a.iter()
                        .all(|x| x.as_str().is_some_and(|x| allowed.contains(&x)))
                })
            })
        };
        if !only("grant_types", &["authorization_code", "refresh_token"]) {
            return Err(meta(
                "grant_types may hold authorization_code and refresh_token only",
            ));
        }
        if !only("response_types", &["code"]) {
            return Err(meta("response_types may hold code only"));
        }
        let redirect_uris =
            redirect_uris(&v).map_err(|why| ("invalid_redirect_uri", why.to_string()))?;
        let mut id = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut id);
        let id: String = id.iter().map(|b| format!("{b:02x}")).collect();
        let client = Client {
            id: format!("dcr_{id}"),
            name: client_name(&v),
            redirect_uris,
        };
        if let Some(shared) = &self.shared {
            // The fleet's share of registrations a minute, counted in the store.
            let json = serde_json::to_string(&client).map_err(|_| meta("not representable"))?;
            return match shared.register_client(&client.id, &json, REGISTRATIONS_PER_MINUTE) {
                Ok(true) => Ok(client),
                Ok(false) => Err((
                    "temporarily_unavailable",
                    "too many registrations; try again in a minute".into(),
                )),
                Err(_) => Err(("temporarily_unavailable", Refused::STORE_DOWN.to_string())),
            };
        }
        let mut r = self
            .registered
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if r.len() >= MAX_REGISTERED {
            r.retain(|_, c| match c.used {
                Some(at) => now - at < IDLE_CLIENT_TTL,
                None => now - c.registered < UNUSED_CLIENT_TTL,
            });
            if r.len() >= MAX_REGISTERED {
                return Err((
                    "temporarily_unavailable",
                    "too many clients are registered".into(),
                ));
            }
        }
        r.insert(
            client.id.clone(),
            Registered {
                client: client.clone(),
                registered: now,
                used: None,
            },
        );
        Ok(client)
    }

    /// Marks a registered client as having completed an authorization (kept from then on,
    /// while it keeps being used).
    pub fn used(&self, id: &str, now: i64) {
        if let Some(shared) = &self.shared {
            if registered_id(id) {
                shared.client_used(id);
            }
            return;
        }
        if let Some(c) = self
            .registered
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_mut(id)
        {
            c.used = Some(now);
        }
    }
}

/// Whether `id` has the shape of a client id `/register` hands out (`dcr_` and 32 hex).
fn registered_id(id: &str) -> bool {
    id.strip_prefix("dcr_")
        .is_some_and(|h| h.len() == 32 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// A client metadata document fetched from `url`: JSON, naming `url` as its `client_id`,
/// with valid redirect URIs, for a public client.
pub fn parse_document(url: &str, bytes: &[u8]) -> Result<Client, Refused> {
    let v: Value = serde_json::from_slice(bytes)
        .map_err(|_| Refused("the client metadata document is not JSON".into()))?;
    if v.get("client_id").and_then(Value::as_str) != Some(url) {
        return Err(Refused(
            "the client metadata document does not name its own URL as client_id".into(),
        ));
    }
    if v.get("token_endpoint_auth_method")
        .is_some_and(|m| m != "none")
    {
        return Err(Refused(
            "the client metadata document is for a confidential client; only public clients \
             (token_endpoint_auth_method none) are accepted"
                .into(),
        ));
    }
    let redirect_uris = redirect_uris(&v).map_err(|why| Refused(why.into()))?;
    Ok(Client {
        id: url.to_owned(),
        name: client_name(&v),
        redirect_uris,
    })
}

fn redirect_uris(v: &Value) -> Result<Vec<String>, &'static str> {
    let uris: Vec<String> = v
        .get("redirect_uris")
        .and_then(Value::as_array)
        .ok_or("redirect_uris is missing")?
        .iter()
        .map(|u| u.as_str().map(str::to_owned))
        .collect::<Option<_>>()
        .ok_or("redirect_uris holds something other than strings")?;
    if uris.is_empty() || uris.len() > MAX_REDIRECT_URIS {
        return Err("redirect_uris must hold 1 to 10 URIs");
    }
    if !uris.iter().all(|u| redirect_uri_ok(u)) {
        return Err("a redirect URI is not https:// (or http:// on loopback), or has a fragment");
    }
    Ok(uris)
}

/// `client_name`, shortened for display (the page escapes it).
fn client_name(v: &Value) -> Option<String> {
    let n = v.get("client_name")?.as_str()?.trim();
    // Controls and the invisible format characters (bidi overrides and isolates, zero
    // widths) go: they could make the page read otherwise than it says.
    (!n.is_empty()).then(|| {
        n.chars()
            .filter(|c| !c.is_control() && !is_format(*c))
            .take(100)
            .collect()
    })
}

/// Unicode's invisible format characters that reorder or hide text (general category Cf
/// in the ranges a name could use).
fn is_format(c: char) -> bool {
    matches!(c, '\u{00AD}' | '\u{061C}' | '\u{180E}' | '\u{200B}'..='\u{200F}'
        | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}' | '\u{FFF9}'..='\u{FFFB}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_host_cannot_use_up_every_document_fetch() {
        // Private addresses: refused at resolution, so nothing goes on the network.
        let c = Clients::new(false, None);
        let now = 1000;
        for i in 0..FETCHES_PER_HOST_PER_MINUTE {
            let e = c
                .get(&format!("https://10.0.0.1/c{i}.json"), now)
                .unwrap_err();
            assert!(e.0.contains("private"), "{}", e.0);
        }
        let e = c.get("https://10.0.0.1/more.json", now).unwrap_err();
        assert!(e.0.contains("from this host"), "{}", e.0);
        // Another host is not held back, and the first one is again a minute later.
        let e = c.get("https://10.0.0.2/c.json", now).unwrap_err();
        assert!(e.0.contains("private"), "{}", e.0);
        let e = c.get("https://10.0.0.1/later.json", now + 60).unwrap_err();
        assert!(e.0.contains("private"), "{}", e.0);
    }

    #[test]
    fn a_client_name_loses_what_could_reorder_or_hide_text() {
        let v = serde_json::json!({"client_name": "Good\u{202E}gnp.exe\u{2066}\u{200B} App\u{7}"});
        assert_eq!(client_name(&v).as_deref(), Some("Goodgnp.exe App"));
        let long = serde_json::json!({"client_name": "x".repeat(500)});
        assert_eq!(client_name(&long).unwrap().len(), 100);
    }

    #[test]
    fn redirect_uris_are_https_or_loopback_http() {
        for ok in [
            "https://client.example/cb",
            "http://127.0.0.1:3000/cb",
            "http://localhost/cb",
            "http://[::1]:9/cb",
        ] {
            assert!(redirect_uri_ok(ok), "{ok}");
        }
        for bad in [
            "http://client.example/cb",
            "https://client.example/cb#x",
            "javascript:alert(1)",
            "http://localhost@evil.example/",
            "http://127.0.0.1.evil.example/",
            "https://",
            "custom://cb",
        ] {
            assert!(!redirect_uri_ok(bad), "{bad}");
        }
    }

    #[test]
    fn private_addresses_are_forbidden() {
        for bad in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "224.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b::7f00:1",
            "64:ff9b:1::1",
            "2002:a9fe:a9fe::1",
            "2002:c0a8:101::1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "2001:db8::1",
            "fec0::1",
            "::127.0.0.1",
        ] {
            assert!(forbidden_address(bad.parse().unwrap()), "{bad}");
        }
        for ok in [
            "93.184.216.34",
            "2606:2800:220:1:248:1893:25c8:1946",
            "8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ] {
            assert!(!forbidden_address(ok.parse().unwrap()), "{ok}");
        }
    }

    #[test]
    fn client_id_urls() {
        assert!(document_url_ok(
            "https://app.example/oauth/client.json",
            false
        ));
        assert!(!document_url_ok("https://app.example", false));
        assert!(!document_url_ok("https://app.example/", false));
        assert!(!document_url_ok("http://app.example/c.json", false));
        assert!(document_url_ok("http://127.0.0.1:8/c.json", true));
        assert!(!document_url_ok("https://u@app.example/c.json", false));
        assert!(!document_url_ok("https://app.example/a/../c.json", false));
        assert!(!document_url_ok("https://app.example/c.json#f", false));
    }

    #[test]
    fn a_document_must_name_itself_and_list_good_redirects() {
        let url = "https://app.example/client.json";
        let doc = |v: Value| parse_document(url, v.to_string().as_bytes());
        let c = doc(serde_json::json!({
            "client_id": url, "client_name": "App\u{7}", "redirect_uris": ["https://app.example/cb"]
        }))
        .unwrap();
        assert_eq!(c.name.as_deref(), Some("App"));
        assert!(doc(
            serde_json::json!({"client_id": "https://other.example/c.json",
            "redirect_uris": ["https://app.example/cb"]})
        )
        .is_err());
        assert!(doc(
            serde_json::json!({"client_id": url, "redirect_uris": ["http://app.example/cb"]})
        )
        .is_err());
        assert!(doc(
            serde_json::json!({"client_id": url, "redirect_uris": ["https://a/cb"],
            "token_endpoint_auth_method": "private_key_jwt"})
        )
        .is_err());
    }

    #[test]
    fn registration_is_rate_limited_and_public_only() {
        let c = Clients::new(false, None);
        let body = br#"{"redirect_uris":["https://app.example/cb"],"client_name":"A"}"#;
        assert!(c
            .register(br#"{"redirect_uris":["https://a/cb"],"token_endpoint_auth_method":"client_secret_basic"}"#, 0)
            .is_err());
        for _ in 1..REGISTRATIONS_PER_MINUTE {
            let got = c.register(body, 0).unwrap();
            assert!(got.id.starts_with("dcr_"));
            assert_eq!(c.get(&got.id, 1).unwrap(), got);
        }
        assert_eq!(
            c.register(body, 30).unwrap_err().0,
            "temporarily_unavailable"
        );
        assert!(c.register(body, 61).is_ok());
    }
}
