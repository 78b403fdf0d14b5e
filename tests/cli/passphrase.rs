//! Passphrase sources: file, variable, none; wrong passphrase.

use crate::common::*;
use predicates::prelude::*;
use std::time::{Duration, Instant};

#[test]
fn wrong_passphrase_is_exit_3_with_the_single_message() {
    let e = Env::with_vault();
    e.create("k", &[]);
    e.bare()
        .env("MCP_KEY_VAULT_PASSPHRASE", "not it")
        .arg("list")
        .assert()
        .code(3)
        .stderr(predicate::str::contains(
            "wrong passphrase, or the vault was modified",
        ));
}

#[test]
fn passphrase_file_wins_and_ignores_one_newline() {
    let e = Env::with_vault();
    std::fs::write(e.path().join("pw"), format!("{PASS}\n")).unwrap();
    e.bare()
        .env("MCP_KEY_VAULT_PASSPHRASE", "wrong")
        .args(["list", "--passphrase-file", "pw"])
        .assert()
        .success();
    e.bare()
        .env("MCP_KEY_VAULT_PASSPHRASE_FILE", "pw")
        .arg("list")
        .assert()
        .success();
    std::fs::write(e.path().join("pw2"), format!("{PASS}\n\n")).unwrap();
    e.bare()
        .args(["list", "--passphrase-file", "pw2"])
        .assert()
        .code(3);
    e.bare()
        .args(["list", "--passphrase-file", "missing"])
        .assert()
        .code(3)
        .stderr(predicate::str::contains("does not exist"));
}

#[test]
fn empty_passphrase_is_refused() {
    let e = Env::new();
    e.bare()
        .env("MCP_KEY_VAULT_PASSPHRASE", "")
        .args(["init"])
        .args(WEAK)
        .assert()
        .code(3)
        .stderr(predicate::str::contains("empty"));
    assert!(!e.vault().exists());
}

#[test]
fn no_terminal_and_no_source_fails_fast_naming_both_variables() {
    let e = Env::with_vault();
    // setsid(1) starts the binary in a new session: no controlling terminal, stdin closed.
    let start = Instant::now();
    let out = std::process::Command::new("setsid")
        .arg("-w")
        .arg(bin())
        .arg("list")
        .current_dir(e.path())
        .env_clear()
        .stdin(std::process::Stdio::null())
        .output()
        .expect("setsid is part of util-linux");
    let took = start.elapsed();
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("MCP_KEY_VAULT_PASSPHRASE") && err.contains("MCP_KEY_VAULT_PASSPHRASE_FILE"),
        "{err}"
    );
    assert!(took < Duration::from_secs(1), "took {took:?}");
}

#[test]
fn no_passphrase_is_ever_taken_from_argv() {
    let e = Env::with_vault();
    e.bare()
        .args(["list", "--passphrase", PASS])
        .assert()
        .code(2);
}
