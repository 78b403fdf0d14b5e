//! The bridge's signing key: an Ed25519 key kept in a private JWK file (`--signing-key`),
//! created 0600 when missing so that a restart, or several instances given the same file,
//! sign and verify with one key; its public half is the JWKS served at `jwks_uri`.
//!
//! Invariants: the private key never leaves this module except as signatures and the
//! derived hashing secret; a file other users can read is refused, not used.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine as _;
use ed25519_dalek::{Signer as _, SigningKey};
use hmac::{Hmac, Mac};
use rand::RngCore as _;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// The largest key file read.
const MAX_KEY_FILE_BYTES: u64 = 4096;

/// The signing key; `Debug` shows only its `kid`.
pub struct Signer {
    key: SigningKey,
    /// RFC 7638 thumbprint of the public key.
    pub kid: String,
    /// The public JWK Set (JSON).
    pub jwks: String,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// Reads the key in `path`, or creates it (mode 0600, never over an existing file).
    ///
    /// # Errors
    /// [`Error::Usage`] when the file is readable by group or others, is not an Ed25519
    /// private JWK, or cannot be read or created.
    pub fn load_or_create(path: &Path) -> Result<Signer> {
        let shown = mcp_key_vault::display::path(path);
        if !path.exists() {
            let mut seed = Zeroizing::new([0u8; 32]);
            rand::rngs::OsRng.fill_bytes(&mut seed[..]);
            let key = SigningKey::from_bytes(&seed);
            let jwk = Zeroizing::new(
                json!({
                    "kty": "OKP",
                    "crv": "Ed25519",
                    "x": B64URL.encode(key.verifying_key().as_bytes()),
                    "d": B64URL.encode(&seed[..]),
                })
                .to_string(),
            );
            // Written whole beside it, then linked into place (a link never replaces): two
            // instances started together never overwrite each other's key nor read a half
            // written one, and a failed write leaves nothing behind.
            let mut tag = [0u8; 8];
            rand::rngs::OsRng.fill_bytes(&mut tag);
            let name = path.file_name().map_or_else(
                || "signing-key".into(),
                |n| n.to_string_lossy().into_owned(),
            );
            let tag: String = tag.iter().map(|b| format!("{b:02x}")).collect();
            let tmp = path.with_file_name(format!(".{name}.{tag}.tmp"));
            let written = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)
                .and_then(|mut f| f.write_all(jwk.as_bytes()).and_then(|()| f.sync_all()))
                .and_then(|()| match std::fs::hard_link(&tmp, path) {
                    Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => Err(e),
                    _ => Ok(()),
                });
            let _ = std::fs::remove_file(&tmp);
            written
                .map_err(|e| Error::usage(format!("cannot create the signing key {shown}: {e}")))?;
        }
        if mcp_key_vault::fsio::mode(path).is_some_and(|m| m & 0o077 != 0) {
            return Err(Error::usage(format!(
                "the signing key {shown} is readable by other users, who could then sign \
                 access tokens; run `chmod 600` on it (or remove it to make a new one)"
            )));
        }
        let bytes = mcp_key_vault::fsio::read_bounded(path, MAX_KEY_FILE_BYTES, "signing key")
            .map_err(|e| Error::usage(e.to_string()))?
            .ok_or_else(|| Error::usage(format!("the signing key {shown} does not exist")))?;
        let bytes = Zeroizing::new(bytes);
        Signer::from_jwk(&bytes).ok_or_else(|| {
            Error::usage(format!(
                "the signing key {shown} is not an Ed25519 private JWK \
                 ({{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"d\":…,\"x\":…}})"
            ))
        })
    }

    /// The key of a private JWK, when its `d` and `x` agree.
    fn from_jwk(bytes: &[u8]) -> Option<Signer> {
        let v: Value = serde_json::from_slice(bytes).ok()?;
        if v["kty"] != "OKP" || v["crv"] != "Ed25519" {
            return None;
        }
        let d = Zeroizing::new(B64URL.decode(v["d"].as_str()?).ok()?);
        let seed: &[u8; 32] = d.as_slice().try_into().ok()?;
        let key = SigningKey::from_bytes(seed);
        let x = B64URL.encode(key.verifying_key().as_bytes());
        if v["x"].as_str() != Some(x.as_str()) {
            return None;
        }
        Some(Signer::from_key(key))
    }

    fn from_key(key: SigningKey) -> Signer {
        let x = B64URL.encode(key.verifying_key().as_bytes());
        // RFC 7638 §3.2: the required members in lexicographic order, no spaces.
        let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
        let kid = B64URL.encode(Sha256::digest(canonical.as_bytes()));
        let jwks = json!({"keys": [{
            "kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid, "use": "sig", "alg": "EdDSA"
        }]})
        .to_string();
        Signer { key, kid, jwks }
    }

    /// A key for unit tests.
    #[cfg(test)]
    pub(crate) fn random() -> Signer {
        let mut seed = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut seed);
        Signer::from_key(SigningKey::from_bytes(&seed))
    }

    /// A JWS (compact, EdDSA) of `claims`, typed `at+jwt` (RFC 9068).
    pub fn sign(&self, claims: &Value) -> String {
        let header = json!({"alg": "EdDSA", "typ": "at+jwt", "kid": self.kid});
        let input = format!(
            "{}.{}",
            B64URL.encode(header.to_string()),
            B64URL.encode(claims.to_string())
        );
        let sig = self.key.sign(input.as_bytes());
        format!("{input}.{}", B64URL.encode(sig.to_bytes()))
    }

    /// The secret under which codes and refresh tokens are hashed: derived from the
    /// signing key, so instances sharing the key share it, and never stored.
    pub fn hashing_secret(&self) -> Zeroizing<[u8; 32]> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.key.as_bytes())
            .expect("HMAC takes a key of any length");
        mac.update(b"mcp-key-manager bridge: hashes of codes and refresh tokens v1");
        Zeroizing::new(mac.finalize().into_bytes().into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_file_is_created_private_and_read_back_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("signing.jwk");
        let a = Signer::load_or_create(&path).unwrap();
        assert_eq!(mcp_key_vault::fsio::mode(&path).unwrap() & 0o777, 0o600);
        let b = Signer::load_or_create(&path).unwrap();
        assert_eq!(a.kid, b.kid);
        assert_eq!(*a.hashing_secret(), *b.hashing_secret());
        assert!(!format!("{a:?}").contains(&B64URL.encode(a.key.as_bytes())));
    }

    #[test]
    fn a_key_file_others_can_read_is_refused() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("signing.jwk");
        Signer::load_or_create(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let e = Signer::load_or_create(&path).unwrap_err().to_string();
        assert!(e.contains("readable by other users"), "{e}");
    }

    #[test]
    fn tokens_verify_with_the_published_key() {
        let s = Signer::random();
        let v = mcp_key_verifier::oauth::TokenVerifier::new(
            "https://r.example/mcp",
            &["https://r.example".to_owned()],
            "scope",
        );
        assert_eq!(v.set_jwks(0, s.jwks.as_bytes()).unwrap(), 1);
        let now = chrono::Utc::now().timestamp();
        let t = s.sign(&json!({
            "iss": "https://r.example", "aud": "https://r.example/mcp", "sub": "0123456789abcdef",
            "scope": "tools:call", "iat": now, "exp": now + 60
        }));
        let info = v.verify(&t, now).unwrap();
        assert_eq!(info.subject, "0123456789abcdef");
        assert_eq!(info.permissions, ["tools:call"]);
    }
}
