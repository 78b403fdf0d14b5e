//! OAuth 2.1 access tokens beside keys (feature `oauth`; docs/oauth.md): a
//! [`TokenVerifier`] checks a JWT access token of a configured issuer — header, issuer,
//! key, signature, expiry, audience — and gives its subject and permissions; the JWS
//! verification itself is the `jsonwebtoken` crate's (with `ring`).
//!
//! The verifier holds keys, never fetches them: whoever runs it fetches an issuer's JWKS
//! (`serve` does, with discovery) and hands it over with [`TokenVerifier::set_jwks`];
//! [`TokenError::UnknownKey`] says when a fresh copy is worth fetching (key rotation).
//!
//! Invariants: `none` and HMAC algorithms are refused whatever the key (a public key is
//! never an HMAC secret); a token is only ever checked with a key of its own issuer; no
//! error or `Debug` output carries the token.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine as _;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Clock skew allowed on `exp` and `nbf`, in seconds.
pub const LEEWAY_SECONDS: u64 = 60;
/// Most verified tokens remembered.
pub const CACHE_ENTRIES: usize = 10_000;
/// The largest token looked at (a JWT of a few kilobytes is large already).
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// What an accepted token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    /// `sub` (empty when the token has none).
    pub subject: String,
    /// `iss`.
    pub issuer: String,
    /// The scope claim's values: permissions with the meaning keys' have.
    pub permissions: Vec<String>,
    /// `exp`, Unix seconds.
    pub expires_at: i64,
}

/// Why a token is refused. The text never holds the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenError {
    /// Not a JWS of an accepted algorithm, or a claim of the wrong type: `invalid_token`.
    Invalid(String),
    /// Past its `exp` (with the leeway).
    Expired,
    /// Its issuer's key set has no key with its `kid`: fetch the set again (at most so
    /// often) and retry once; the index is the issuer's in [`TokenVerifier::issuers`].
    UnknownKey(usize),
}

impl TokenError {
    /// The JSON-RPC `data.code`: `EXPIRED` or `INVALID_TOKEN`.
    pub fn code(&self) -> &'static str {
        match self {
            TokenError::Expired => "EXPIRED",
            _ => "INVALID_TOKEN",
        }
    }

    /// Why, for `error_description` (no token in it; quotes and backslashes left out).
    pub fn description(&self) -> String {
        let why = match self {
            TokenError::Invalid(why) => why.clone(),
            TokenError::Expired => "the access token has expired".into(),
            TokenError::UnknownKey(_) => "the access token's key is not one of its issuer's".into(),
        };
        why.replace(['"', '\\'], "'")
    }
}

/// One issuer and its keys.
#[derive(Debug)]
struct Issuer {
    id: String,
    keys: RwLock<Vec<Key>>,
}

struct Key {
    kid: Option<String>,
    /// The JWK's own `alg`, when it has one.
    alg: Option<Algorithm>,
    kind: Kind,
    key: DecodingKey,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

/// The key types tokens may be signed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Rsa,
    P256,
    Ed25519,
}

impl Kind {
    fn fits(self, alg: Algorithm) -> bool {
        matches!(
            (self, alg),
            (Kind::Rsa, Algorithm::RS256 | Algorithm::PS256)
                | (Kind::P256, Algorithm::ES256)
                | (Kind::Ed25519, Algorithm::EdDSA)
        )
    }
}

/// Checks access tokens for one resource (docs/oauth.md).
#[derive(Debug)]
pub struct TokenVerifier {
    resource: String,
    issuers: Vec<Issuer>,
    scope_claim: String,
    cache: Mutex<HashMap<[u8; 32], Arc<TokenInfo>>>,
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    crit: Option<Value>,
}

impl TokenVerifier {
    /// A verifier of tokens whose audience includes `resource`, from `issuers` (exact
    /// `iss` values), with permissions in the claim `scope_claim` (`scope`). No issuer has
    /// keys yet: see [`TokenVerifier::set_jwks`].
    pub fn new(resource: &str, issuers: &[String], scope_claim: &str) -> TokenVerifier {
        TokenVerifier {
            resource: resource.to_owned(),
            issuers: issuers
                .iter()
                .map(|id| Issuer {
                    id: id.clone(),
                    keys: RwLock::new(Vec::new()),
                })
                .collect(),
            scope_claim: scope_claim.to_owned(),
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The resource (audience).
    pub fn resource(&self) -> &str {
        &self.resource
    }

    /// The issuers, in the order given.
    pub fn issuers(&self) -> impl Iterator<Item = &str> {
        self.issuers.iter().map(|i| i.id.as_str())
    }

    /// Replaces issuer `index`'s keys with the signing keys of a JWK Set (JSON). Keys of
    /// other types (or for encryption) are skipped. Returns how many were taken.
    ///
    /// # Errors
    /// When the bytes are not a JWK Set; the keys held stay.
    pub fn set_jwks(&self, index: usize, jwks: &[u8]) -> Result<usize, String> {
        let set: JwkSet =
            serde_json::from_slice(jwks).map_err(|e| format!("not a JWK Set: {e}"))?;
        let keys: Vec<Key> = set.keys.iter().filter_map(key_of).collect();
        let n = keys.len();
        if let Some(i) = self.issuers.get(index) {
            *i.keys.write().unwrap_or_else(PoisonError::into_inner) = keys;
        }
        Ok(n)
    }

    /// Whether `value` (an `Authorization: Bearer` value) has the shape of a JWS.
    pub fn looks_like_token(value: &str) -> bool {
        // One pass (this runs on every Bearer value): base64url bytes and exactly two dots.
        let mut dots = 0usize;
        value.len() <= MAX_TOKEN_BYTES
            && value.bytes().all(|b| {
                dots += usize::from(b == b'.');
                b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')
            })
            && dots == 2
    }

    /// Checks `token` at `now` (Unix seconds).
    ///
    /// # Errors
    /// [`TokenError`]: the first check that failed, in docs/oauth.md's order.
    pub fn verify(&self, token: &str, now: i64) -> Result<Arc<TokenInfo>, TokenError> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(hit) = self.cached(&digest, now) {
            return Ok(hit);
        }
        let info = Arc::new(self.check(token)?);
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if cache.len() >= CACHE_ENTRIES {
            cache.retain(|_, t| t.expires_at > now);
            if cache.len() >= CACHE_ENTRIES {
                // Still full of live tokens: start again rather than grow.
                cache.clear();
            }
        }
        cache.insert(digest, Arc::clone(&info));
        Ok(info)
    }

    fn cached(&self, digest: &[u8; 32], now: i64) -> Option<Arc<TokenInfo>> {
        let cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        cache
            .get(digest)
            .filter(|t| t.expires_at + LEEWAY_SECONDS as i64 > now)
            .cloned()
    }

    /// The checks (the clock is the system's: `jsonwebtoken` reads it for `exp`/`nbf`).
    fn check(&self, token: &str) -> Result<TokenInfo, TokenError> {
        let invalid = |why: &str| TokenError::Invalid(why.to_owned());
        if !TokenVerifier::looks_like_token(token) {
            return Err(invalid("not a JWT"));
        }
        let mut parts = token.split('.');
        let (h, p) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let header: Header = decode_segment(h).ok_or_else(|| invalid("unreadable JWT header"))?;
        let alg = match header.alg.as_str() {
            "RS256" => Algorithm::RS256,
            "PS256" => Algorithm::PS256,
            "ES256" => Algorithm::ES256,
            "EdDSA" => Algorithm::EdDSA,
            _ => {
                return Err(invalid(
                    "the token's algorithm is not accepted (RS256, PS256, ES256, EdDSA)",
                ))
            }
        };
        if header.crit.is_some() {
            return Err(invalid("the token names critical header parameters"));
        }
        let claims: Value = decode_segment(p).ok_or_else(|| invalid("unreadable JWT claims"))?;
        // A member written twice is read as its last value by some readers and its first
        // by others; times that are not integers would be skipped by the JWS library.
        if !distinct_members(h) || !distinct_members(p) {
            return Err(invalid("the token has a header or claim member twice"));
        }
        for time in ["exp", "nbf", "iat"] {
            if claims
                .get(time)
                .is_some_and(|t| !(t.is_i64() || t.is_u64()))
            {
                return Err(invalid("the token's exp, nbf or iat is not an integer"));
            }
        }
        let iss = claims.get("iss").and_then(Value::as_str).unwrap_or("");
        let index = self
            .issuers
            .iter()
            .position(|i| i.id == iss)
            .ok_or_else(|| invalid("the token's issuer is not accepted"))?;
        let keys = self.issuers[index]
            .keys
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let key = pick(&keys, header.kid.as_deref(), alg).ok_or(TokenError::UnknownKey(index))?;
        if key.alg.is_some_and(|a| a != alg) || !key.kind.fits(alg) {
            return Err(invalid("the token's algorithm does not fit its key"));
        }
        let mut v = Validation::new(alg);
        v.leeway = LEEWAY_SECONDS;
        v.validate_nbf = true;
        v.set_issuer(&[iss]);
        v.set_audience(&[&self.resource]);
        v.set_required_spec_claims(&["exp", "iss", "aud"]);
        let data = jsonwebtoken::decode::<Value>(token, &key.key, &v).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind as K;
            match e.kind() {
                K::ExpiredSignature => TokenError::Expired,
                K::ImmatureSignature => invalid("the token is not valid yet (nbf)"),
                K::InvalidAudience => invalid("the token is not for this resource (aud)"),
                K::InvalidSignature => invalid("the token's signature does not verify"),
                K::MissingRequiredClaim(_) => invalid("the token lacks exp, iss or aud"),
                _ => invalid("the token does not verify"),
            }
        })?;
        Ok(TokenInfo {
            subject: data
                .claims
                .get("sub")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
            issuer: iss.to_owned(),
            permissions: scopes(data.claims.get(&self.scope_claim)),
            expires_at: data.claims.get("exp").and_then(Value::as_i64).unwrap_or(0),
        })
    }
}

/// How many signing keys of an accepted type a JWK Set (JSON) holds.
///
/// # Errors
/// When the bytes are not a JWK Set.
pub fn usable_keys(jwks: &[u8]) -> Result<usize, String> {
    let set: JwkSet = serde_json::from_slice(jwks).map_err(|e| format!("not a JWK Set: {e}"))?;
    Ok(set.keys.iter().filter_map(key_of).count())
}

/// Whether a base64url JSON segment has no object with a member twice.
fn distinct_members(segment: &str) -> bool {
    B64URL
        .decode(segment)
        .is_ok_and(|b| crate::verifier::has_distinct_members(&b))
}

/// A base64url segment of a JWS, parsed as JSON.
fn decode_segment<T: serde::de::DeserializeOwned>(segment: &str) -> Option<T> {
    let bytes = B64URL.decode(segment).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The key a token names: by `kid`; without one, the only key that fits `alg`.
fn pick<'a>(keys: &'a [Key], kid: Option<&str>, alg: Algorithm) -> Option<&'a Key> {
    match kid {
        Some(kid) => keys.iter().find(|k| k.kid.as_deref() == Some(kid)),
        None => {
            let mut fitting = keys.iter().filter(|k| k.kind.fits(alg));
            let first = fitting.next()?;
            fitting.next().is_none().then_some(first)
        }
    }
}

/// A signing key of an accepted type, from a JWK.
fn key_of(jwk: &Jwk) -> Option<Key> {
    use jsonwebtoken::jwk::PublicKeyUse;
    if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
        return None;
    }
    let kind = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Kind::Rsa,
        AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => Kind::P256,
        AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => Kind::Ed25519,
        _ => return None,
    };
    let alg = match jwk.common.key_algorithm {
        None => None,
        Some(a) => Some(a.to_string().parse::<Algorithm>().ok()?),
    };
    Some(Key {
        kid: jwk.common.key_id.clone(),
        alg,
        kind,
        key: DecodingKey::from_jwk(jwk).ok()?,
    })
}

/// A scope claim's values: a space-separated string, or an array of strings.
fn scopes(claim: Option<&Value>) -> Vec<String> {
    match claim {
        Some(Value::String(s)) => s.split_ascii_whitespace().map(str::to_owned).collect(),
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

/// The URL of `resource`'s Protected Resource Metadata (RFC 9728 §3.1): the well-known
/// path inserted between the host and the resource's path.
pub fn metadata_url(resource: &str) -> String {
    let (scheme, rest) = resource.split_once("://").unwrap_or(("https", resource));
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
        None => (rest, ""),
    };
    format!("{scheme}://{host}/.well-known/oauth-protected-resource{path}")
}

/// The Protected Resource Metadata document (RFC 9728 §2).
pub fn metadata_json(resource: &str, issuers: &[String], scopes: &[String]) -> String {
    let mut doc = serde_json::json!({
        "resource": resource,
        "authorization_servers": issuers,
        "bearer_methods_supported": ["header"],
    });
    if !scopes.is_empty() {
        doc["scopes_supported"] = serde_json::json!(scopes);
    }
    doc.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(v: &Value) -> String {
        B64URL.encode(v.to_string())
    }

    fn json_str(s: &str) -> Value {
        Value::String(s.to_owned())
    }

    fn verifier() -> TokenVerifier {
        let v = TokenVerifier::new(
            "https://mcp.example.com/mcp",
            &["https://id.example.com".into()],
            "scope",
        );
        // An Ed25519 public key (RFC 8037's example), kid "k1".
        let jwks = r#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k1","alg":"EdDSA",
            "x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#;
        assert_eq!(v.set_jwks(0, jwks.as_bytes()), Ok(1));
        v
    }

    /// `none`, HMAC and unknown algorithms, `crit`, other issuers and unknown keys are
    /// refused before any signature is looked at.
    #[test]
    fn headers_and_issuers_are_checked_first() {
        let v = verifier();
        let claims = serde_json::json!({"iss": "https://id.example.com", "exp": 4_000_000_000u64,
            "aud": "https://mcp.example.com/mcp", "scope": "tools:call"});
        let token = |h: Value, c: &Value| format!("{}.{}.c2ln", seg(&h), seg(c));
        for alg in ["none", "HS256", "HS512", "RS512", "ES384"] {
            let e = v
                .verify(&token(serde_json::json!({"alg": alg}), &claims), 0)
                .unwrap_err();
            assert!(
                matches!(&e, TokenError::Invalid(w) if w.contains("algorithm")),
                "{alg}: {e:?}"
            );
        }
        let crit = serde_json::json!({"alg": "EdDSA", "kid": "k1", "crit": ["exp"]});
        assert!(matches!(
            v.verify(&token(crit, &claims), 0),
            Err(TokenError::Invalid(_))
        ));
        let mut other = claims.clone();
        other["iss"] = "https://evil.example.com".into();
        let e = v.verify(
            &token(serde_json::json!({"alg": "EdDSA", "kid": "k1"}), &other),
            0,
        );
        assert!(matches!(e, Err(TokenError::Invalid(w)) if w.contains("issuer")));
        let e = v.verify(
            &token(serde_json::json!({"alg": "EdDSA", "kid": "k9"}), &claims),
            0,
        );
        assert_eq!(e, Err(TokenError::UnknownKey(0)));
        // The key says EdDSA: an ES256 header naming it does not fit.
        let e = v.verify(
            &token(serde_json::json!({"alg": "ES256", "kid": "k1"}), &claims),
            0,
        );
        assert!(matches!(e, Err(TokenError::Invalid(w)) if w.contains("fit")));
        // A forged signature with the right kid.
        let e = v.verify(
            &token(serde_json::json!({"alg": "EdDSA", "kid": "k1"}), &claims),
            0,
        );
        assert!(matches!(e, Err(TokenError::Invalid(w)) if w.contains("signature")));
        // A claim twice, and times that are not integers (a JWS library skips them).
        let h = seg(&serde_json::json!({"alg": "EdDSA", "kid": "k1"}));
        let twice = B64URL.encode(
            r#"{"iss":"https://id.example.com","exp":4000000000,"aud":"https://mcp.example.com/mcp","scope":"a","scope":"tools:call"}"#,
        );
        let e = v.verify(&format!("{h}.{twice}.c2ln"), 0);
        assert!(
            matches!(&e, Err(TokenError::Invalid(w)) if w.contains("twice")),
            "{e:?}"
        );
        for (k, bad) in [
            ("nbf", json_str("9999999999")),
            ("exp", serde_json::json!(4e9)),
        ] {
            let mut c = claims.clone();
            c[k] = bad;
            let e = v.verify(
                &token(serde_json::json!({"alg": "EdDSA", "kid": "k1"}), &c),
                0,
            );
            assert!(
                matches!(&e, Err(TokenError::Invalid(w)) if w.contains("integer")),
                "{k}: {e:?}"
            );
        }
        assert!(!TokenVerifier::looks_like_token("mkm_0123456789abcdef_abc"));
        assert!(!TokenVerifier::looks_like_token("a.b.c.d"));
        assert!(TokenVerifier::looks_like_token("a.b.c"));
    }

    #[test]
    fn scopes_and_metadata() {
        assert_eq!(scopes(Some(&"a  b\tc".into())), ["a", "b", "c"]);
        assert_eq!(scopes(Some(&serde_json::json!(["a", 1, "b"]))), ["a", "b"]);
        assert!(scopes(None).is_empty());
        assert_eq!(
            metadata_url("https://mcp.example.com/mcp/"),
            "https://mcp.example.com/.well-known/oauth-protected-resource/mcp"
        );
        assert_eq!(
            metadata_url("https://mcp.example.com"),
            "https://mcp.example.com/.well-known/oauth-protected-resource"
        );
        let doc: Value = serde_json::from_str(&metadata_json(
            "https://mcp.example.com/mcp",
            &["https://id.example.com".into()],
            &[],
        ))
        .unwrap();
        assert_eq!(doc["authorization_servers"][0], "https://id.example.com");
        assert!(doc.get("scopes_supported").is_none());
    }
}
