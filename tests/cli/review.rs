//! Regressions from the independent security review of issue 5's work: each test pins one
//! finding that was fixed.

use crate::common::*;
use predicates::prelude::*;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

/// Runs the binary with stdout connected to a pipe whose reader is already gone.
fn exit_with_closed_stdout(e: &Env, args: &[&str], stdin: &str) -> i32 {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let mut child = Command::new(bin())
        .current_dir(e.path())
        .env_clear()
        .env("MCP_KEY_VAULT_PASSPHRASE", PASS)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(writer)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    use std::io::Write;
    let mut input = child.stdin.take().unwrap();
    let _ = input.write_all(stdin.as_bytes());
    drop(input);
    child.wait().unwrap().code().unwrap()
}

#[test]
fn a_no_answer_stays_no_when_the_reader_has_gone() {
    let e = Env::with_vault();
    let (_, key) = e.create("k", &[]);
    let unknown = format!("mcp_{}_{}", "0".repeat(16), "1".repeat(64));
    assert_eq!(
        exit_with_closed_stdout(&e, &["verify"], &format!("{unknown}\n")),
        1
    );
    assert_eq!(exit_with_closed_stdout(&e, &["check", "--json"], ""), 1);
    // A "yes" with a closed pipe is still a success (the reader chose to stop).
    assert_eq!(
        exit_with_closed_stdout(&e, &["verify"], &format!("{key}\n")),
        0
    );
}

#[test]
fn huge_day_counts_are_usage_errors_not_panics() {
    let e = Env::with_vault();
    let (id, _) = e.create("k", &[]);
    for args in [
        vec!["check", "--warn-days", "4000000000"],
        vec!["list", "--expiring", "4000000000"],
        vec!["rotate", &id, "--grace-days", "4000000000"],
    ] {
        e.cmd().args(&args).assert().code(2);
    }
    e.cmd()
        .args(["list", "--expiring", "36500", "--json"])
        .assert()
        .success();
}

#[test]
fn a_whole_key_given_as_an_id_is_never_echoed() {
    let e = Env::with_vault();
    let (_, key) = e.create("k", &[]);
    let secret = &key[21..];
    for cmd in ["view", "revoke", "use", "delete"] {
        let out = e.cmd().args([cmd, &key]).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{cmd}");
        assert!(!all_output(&out).contains(secret), "{cmd} echoed the key");
    }
    let legacy = "ab".repeat(32);
    let out = e.cmd().args(["view", &legacy]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(!all_output(&out).contains(&legacy));
}

#[test]
fn the_env_file_or_verifier_cannot_be_the_vault() {
    let e = Env::with_vault();
    let (id, _) = e.create("k", &[]);
    let vault = "mcp_key_manager/keys.json";
    let before = std::fs::read(e.vault()).unwrap();
    for args in [
        vec!["create", "x", "-u", "--env-file", vault],
        vec!["use", &id, "--env-file", vault],
        vec!["rotate", &id, "--env-file", vault],
        vec!["enable-requirement", "--env-file", vault],
        vec!["export-verifier", "--out", vault],
    ] {
        e.cmd()
            .args(&args)
            .assert()
            .code(2)
            .stderr(predicate::str::contains("is the vault itself"));
    }
    assert_eq!(std::fs::read(e.vault()).unwrap(), before);
}

#[test]
fn a_kept_plaintext_store_is_private() {
    let e = Env::new();
    std::fs::create_dir_all(e.path().join("mcp_key_manager")).unwrap();
    std::fs::copy("tests/data/ok_legacy_store.json", e.vault()).unwrap();
    std::fs::set_permissions(e.vault(), std::fs::Permissions::from_mode(0o644)).unwrap();
    e.cmd()
        .args(["import-legacy", "--keep-plaintext", "old.json"])
        .args(WEAK)
        .assert()
        .success();
    let mode = std::fs::metadata(e.path().join("old.json"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(
        std::fs::metadata(e.vault()).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[test]
fn a_verifier_with_a_huge_permission_list_loads_in_linear_time() {
    // 200,000 distinct permissions on one key: the old build loop was quadratic (minutes).
    let e = Env::new();
    let perms: Vec<String> = (0..200_000).map(|i| format!("\"p{i}\"")).collect();
    let file = format!(
        r#"{{"format":"mcp-key-verifier","version":1,"algorithm":"hmac-sha256",
        "hash_key":"{}","generated_at":"2026-01-01T00:00:00Z",
        "keys":[{{"id":"0123456789abcdef","hash":"{}","status":"active","expires_at":null,
        "permissions":[{}]}}]}}"#,
        "A".repeat(43) + "=",
        "0".repeat(64),
        perms.join(",")
    );
    std::fs::write(e.path().join("v.json"), file).unwrap();
    e.bare()
        .args(["verify", "--verifier", "v.json", "--json"])
        .write_stdin(format!("mcp_0123456789abcdef_{}\n", "1".repeat(64)))
        .timeout(std::time::Duration::from_secs(60))
        .assert()
        .code(1)
        .stdout(predicate::str::contains("NOT_FOUND"));
}
