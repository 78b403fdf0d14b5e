//! Damaged and hostile vault files through the binary: never exit 0, never a panic.

use crate::common::*;
use predicates::prelude::*;
use std::time::{Duration, Instant};

fn assert_rejected(e: &Env, bytes: &[u8], allowed: &[i32]) {
    std::fs::write(e.vault(), bytes).unwrap();
    let out = e.cmd().args(["list", "--json"]).output().unwrap();
    let code = out.status.code().expect("exited, not killed");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(allowed.contains(&code), "exit {code}: {err}");
    assert!(err.starts_with("error:"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn bit_flips_in_the_ciphertext_fail_authentication() {
    let e = Env::with_vault();
    e.create("k", &[]);
    let good = std::fs::read(e.vault()).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&good).unwrap();
    let ct = v["ciphertext"].as_str().unwrap();
    let start = String::from_utf8_lossy(&good).find(ct).unwrap();
    // Flip a bit in a handful of positions across the ciphertext's base64 text, choosing
    // characters that stay valid base64 so the flip reaches the AEAD.
    for pos in [
        start,
        start + ct.len() / 3,
        start + ct.len() / 2,
        start + ct.len() - 8,
    ] {
        let mut bad = good.clone();
        bad[pos] = if bad[pos] == b'A' { b'B' } else { b'A' };
        assert_rejected(&e, &bad, &[3]);
    }
}

#[test]
fn header_changes_fail() {
    let e = Env::with_vault();
    e.create("k", &[]);
    let good = String::from_utf8(std::fs::read(e.vault()).unwrap()).unwrap();
    // A changed KDF parameter is still in bounds but breaks the associated data: exit 3.
    assert_rejected(
        &e,
        good.replace("\"iterations\": 2", "\"iterations\": 3")
            .as_bytes(),
        &[3],
    );
    assert_rejected(
        &e,
        good.replace("\"parallelism\": 1", "\"parallelism\": 2")
            .as_bytes(),
        &[3],
    );
    // Unknown versions and fields: exit 4.
    assert_rejected(
        &e,
        good.replacen("\"version\": 1", "\"version\": 2", 1)
            .as_bytes(),
        &[4],
    );
    assert_rejected(
        &e,
        good.replacen("\"format\"", "\"extra\": true, \"format\"", 1)
            .as_bytes(),
        &[4],
    );
}

#[test]
fn truncated_empty_and_garbage_files_are_corrupt() {
    let e = Env::with_vault();
    e.create("k", &[]);
    let good = std::fs::read(e.vault()).unwrap();
    for cut in [1, 10, good.len() / 2, good.len() - 3] {
        assert_rejected(&e, &good[..cut], &[3, 4]);
    }
    assert_rejected(&e, b"", &[4]);
    assert_rejected(&e, b"\x00\x01\x02garbage", &[4]);
    assert_rejected(&e, b"[1,2,3]", &[4]);
    std::fs::write(e.vault(), b"").unwrap();
    e.cmd()
        .arg("list")
        .assert()
        .code(4)
        .stderr(predicate::str::contains("empty"));
}

#[test]
fn out_of_bounds_headers_are_refused_at_once() {
    let e = Env::with_vault();
    e.create("k", &[]);
    let good = String::from_utf8(std::fs::read(e.vault()).unwrap()).unwrap();
    for (from, to) in [
        ("\"memory_kib\": 19456", "\"memory_kib\": 4194304"),
        ("\"iterations\": 2", "\"iterations\": 4000000000"),
        ("\"parallelism\": 1", "\"parallelism\": 255"),
        ("\"memory_kib\": 19456", "\"memory_kib\": 99999999999"),
    ] {
        let bad = good.replace(from, to);
        assert_ne!(bad, good);
        std::fs::write(e.vault(), &bad).unwrap();
        let start = Instant::now();
        e.cmd()
            .arg("list")
            .assert()
            .code(4)
            .stderr(predicate::str::contains("error:"));
        assert!(
            start.elapsed() < Duration::from_millis(500),
            "{to}: {:?}",
            start.elapsed()
        );
    }
}

#[test]
fn a_legacy_store_is_refused_by_every_command_naming_import_legacy() {
    let e = Env::new();
    std::fs::create_dir_all(e.path().join("mcp_key_manager")).unwrap();
    std::fs::copy("tests/data/ok_legacy_store.json", e.vault()).unwrap();
    let before = std::fs::read(e.vault()).unwrap();
    for args in [
        vec!["list"],
        vec!["view", "fd5c5b5177095c73"],
        vec!["create", "x"],
        vec!["revoke", "fd5c5b5177095c73"],
        vec!["delete", "fd5c5b5177095c73"],
        vec!["use", "fd5c5b5177095c73"],
        vec!["check"],
        vec!["history"],
        vec!["rekey"],
        vec!["export-verifier", "--out", "v.json"],
    ] {
        e.cmd()
            .args(&args)
            .assert()
            .code(4)
            .stderr(predicate::str::contains("import-legacy"));
    }
    assert_eq!(std::fs::read(e.vault()).unwrap(), before);
}
