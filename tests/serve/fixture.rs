//! Verifier files built by hand (not by the library's writer, so the reader is tested
//! against the format, not against itself), written the way `publish` writes them:
//! complete to a temporary file, then renamed over the path.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use base64::Engine as _;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

/// One key: the presented string and what the file says about it.
#[derive(Clone, Debug)]
pub struct TestKey {
    pub id: String,
    pub key: String,
    pub name: Option<String>,
    pub permissions: Vec<String>,
    pub revoked: bool,
    pub expires_at: Option<String>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl TestKey {
    /// A fresh modern key with these permissions.
    pub fn new(perms: &[&str]) -> TestKey {
        let mut id = [0u8; 8];
        let mut secret = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut id);
        rand::rngs::OsRng.fill_bytes(&mut secret);
        let id = hex(&id);
        TestKey {
            key: format!("mcp_{id}_{}", hex(&secret)),
            id,
            name: None,
            permissions: perms.iter().map(|p| p.to_string()).collect(),
            revoked: false,
            expires_at: None,
        }
    }

    /// A fresh key of format 2 behind `head` (`mkm_`, `acme_mkm_`): random id and base62
    /// secret, and its checksum.
    pub fn format2(head: &str, perms: &[&str]) -> TestKey {
        const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
        let mut k = TestKey::new(perms);
        let mut secret = [0u8; 43];
        rand::rngs::OsRng.fill_bytes(&mut secret);
        let secret: String = secret
            .iter()
            .map(|b| char::from(BASE62[usize::from(b % 62)]))
            .collect();
        let body = format!("{head}{}_{secret}", k.id);
        let sum = mcp_key_verifier::keys::checksum(&body);
        k.key = format!("{body}{}", String::from_utf8_lossy(&sum));
        k
    }

    pub fn named(mut self, name: &str) -> TestKey {
        self.name = Some(name.into());
        self
    }

    pub fn revoked(mut self) -> TestKey {
        self.revoked = true;
        self
    }

    pub fn expires(mut self, at: &str) -> TestKey {
        self.expires_at = Some(at.into());
        self
    }
}

/// The content of one verifier file.
#[derive(Clone)]
pub struct Spec {
    pub hash_key: [u8; 32],
    pub revision: u64,
    pub keys: Vec<TestKey>,
}

impl Spec {
    pub fn new(revision: u64, keys: Vec<TestKey>) -> Spec {
        let mut hash_key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut hash_key);
        Spec {
            hash_key,
            revision,
            keys,
        }
    }

    pub fn json(&self) -> String {
        let keys: Vec<serde_json::Value> = self
            .keys
            .iter()
            .map(|k| {
                let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.hash_key).unwrap();
                mac.update(k.key.as_bytes());
                let mut e = serde_json::json!({
                    "id": k.id,
                    "hash": hex(&mac.finalize().into_bytes()),
                    "status": if k.revoked { "revoked" } else { "active" },
                    "expires_at": k.expires_at,
                    "permissions": k.permissions,
                });
                if let Some(n) = &k.name {
                    e["name"] = n.clone().into();
                }
                e
            })
            .collect();
        serde_json::to_string_pretty(&serde_json::json!({
            "format": "mcp-key-verifier",
            "version": 1,
            "algorithm": "hmac-sha256",
            "hash_key": base64::engine::general_purpose::STANDARD.encode(self.hash_key),
            "generated_at": "2026-06-01T00:00:00Z",
            "revision": self.revision,
            "keys": keys,
        }))
        .unwrap()
    }

    /// Publishes this content at `path` by rename.
    pub fn publish(&self, path: &Path) {
        publish_bytes(path, self.json().as_bytes());
    }
}

/// Writes `bytes` to a temporary file beside `path` and renames it over `path`.
pub fn publish_bytes(path: &Path, bytes: &[u8]) {
    let tmp: PathBuf = path.with_extension(format!("tmp-{}", rand::rngs::OsRng.next_u32()));
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}
