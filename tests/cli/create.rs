//! `create`: key format, defaults, validation, output contracts.

use crate::common::*;
use predicates::prelude::*;

/// Format 2 (docs/commands.md, "Key formats"), checked here without the library.
fn is_key(k: &str) -> bool {
    k.len() == 70
        && k.starts_with("mkm_")
        && k.as_bytes()[20] == b'_'
        && k[4..20]
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        && k[21..].bytes().all(|b| b.is_ascii_alphanumeric())
        && k[64..] == checksum(&k[..64])
}

/// CRC-32 (zlib's) of `body` in six base62 digits, written out as docs/verifier.md says.
fn checksum(body: &str) -> String {
    let mut crc = !0u32;
    for b in body.bytes() {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    let digits = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut v = !crc;
    let mut out = [0u8; 6];
    for d in out.iter_mut().rev() {
        *d = digits[(v % 62) as usize];
        v /= 62;
    }
    String::from_utf8(out.to_vec()).unwrap()
}

#[test]
fn key_has_the_documented_format_and_defaults() {
    let e = Env::with_vault();
    let (id, key) = e.create("fmt", &[]);
    assert!(is_key(&key), "{key}");
    assert_eq!(&key[4..20], id);
    let v = e.open_vault();
    let k = &v.keys()[0];
    assert_eq!(k.permissions, ["generate", "info", "health"]);
    assert_eq!((k.expires_at.unwrap() - k.created_at).num_days(), 90);
    assert_eq!(k.hash, v.keyed_hash(&key));
}

#[test]
fn quiet_prints_only_the_key() {
    let e = Env::with_vault();
    let out = e.cmd().args(["create", "ci", "--quiet"]).output().unwrap();
    assert!(out.status.success());
    let s = String::from_utf8(out.stdout).unwrap();
    assert_eq!(s.lines().count(), 1);
    assert!(is_key(s.trim_end()), "{s}");
    assert!(s.ends_with('\n'));
}

#[test]
fn json_has_id_and_key() {
    let e = Env::with_vault();
    let v = e.json(&["create", "j2", "-p", "info", "-e", "0", "--json"]);
    assert!(is_key(v["key"].as_str().unwrap()));
    assert_eq!(
        v["id"].as_str().unwrap(),
        &v["key"].as_str().unwrap()[4..20]
    );
    assert_eq!(v["expires_at"], serde_json::Value::Null);
    assert_eq!(v["permissions"], serde_json::json!(["info"]));
}

#[test]
fn negative_expiry_is_a_usage_error() {
    let e = Env::with_vault();
    e.cmd()
        .args(["create", "neg", "-e", "-5"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("error:"));
    e.cmd()
        .args(["create", "neg", "--expires-in-days=-1"])
        .assert()
        .code(2);
    assert!(e.open_vault().keys().is_empty());
}

#[test]
fn permissions_are_validated() {
    let e = Env::with_vault();
    for bad in ["UPPER", "has space", "", &"x".repeat(65), "semi;colon"] {
        e.cmd()
            .args(["create", "p", "-p", bad])
            .assert()
            .code(2)
            .stderr(predicate::str::contains("permission"));
    }
    e.cmd()
        .args(["create", "p", "-p", "tools:call", "--permission", "a.b-c_d"])
        .assert()
        .success();
    assert_eq!(
        e.open_vault().keys()[0].permissions,
        ["tools:call", "a.b-c_d"]
    );
}

#[test]
fn names_with_terminal_escapes_are_refused() {
    let e = Env::with_vault();
    e.cmd()
        .args(["create", "evil\x1b[2Jname"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("control characters"));
    e.cmd().args(["create", "   "]).assert().code(2);
    e.cmd()
        .args(["create", "ok", "-d", "line\nbreak"])
        .assert()
        .code(2);
    assert!(e.open_vault().keys().is_empty());
}

#[test]
fn create_then_use_hint_is_printed() {
    let e = Env::with_vault();
    let out = e.cmd().args(["create", "hinted"]).output().unwrap();
    let s = String::from_utf8(out.stdout).unwrap();
    let id = &e.open_vault().keys()[0].id.clone();
    assert!(s.contains(&format!("mcp-key-manager use {id}")), "{s}");
}
