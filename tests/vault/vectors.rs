//! Known-answer vaults (in the style of rage's testkit): each committed vault
//! must open with its committed passphrase and decrypt to exactly the committed records,
//! and must refuse any other passphrase. A release that changes how format 1 is read
//! fails here, whatever it writes.

use mcp_key_vault::records::fmt_time;
use mcp_key_vault::{OpenError, SecretString, Vault};

fn vector(name: &str) -> Vec<u8> {
    std::fs::read(format!("tests/vectors/vault/{name}")).expect("vector file")
}

#[test]
fn format_1_vault_decrypts_to_the_expected_records() {
    let pass = String::from_utf8(vector("v1.passphrase")).unwrap();
    let pass = SecretString::new(pass.trim_end_matches('\n').to_string());
    let vault = Vault::open(&vector("v1.vault.json"), &pass).expect("the vector opens");
    let expected: serde_json::Value = serde_json::from_slice(&vector("v1.expected.json")).unwrap();
    let expected = expected["records"].as_array().expect("records");
    assert_eq!(vault.keys().len(), expected.len());
    for (k, want) in vault.keys().iter().zip(expected) {
        let id = k.id.as_str();
        assert_eq!(id, want["id"], "{id}");
        assert_eq!(k.name, want["name"], "{id}");
        assert_eq!(k.description, want["description"], "{id}");
        assert_eq!(fmt_time(&k.created_at), want["created_at"], "{id}");
        assert_eq!(
            k.expires_at.as_ref().map(fmt_time),
            want["expires_at"].as_str().map(String::from),
            "{id}"
        );
        assert_eq!(
            k.revoked_at.is_some(),
            !want["revoked_at"].is_null(),
            "{id}"
        );
        let perms: Vec<&str> = k.permissions.iter().map(|p| p.as_str()).collect();
        assert_eq!(serde_json::json!(perms), want["permissions"], "{id}");
        assert_eq!(k.hash.to_hex(), want["hash"], "{id}");
        assert_eq!(k.is_legacy(), want["legacy"], "{id}");
        if let Some(key) = want["key"].as_str() {
            assert_eq!(k.secret.expose(), key, "{id}");
            assert!(vault.keyed_hash(key).ct_eq(&k.hash), "{id}");
        }
    }
    let wrong = SecretString::new("vector passphrase for format 2".into());
    assert!(matches!(
        Vault::open(&vector("v1.vault.json"), &wrong),
        Err(OpenError::WrongPassphrase)
    ));
}
