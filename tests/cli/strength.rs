//! Strength of new passphrases: zxcvbn score 0–1 refused (exit 2), 2 warned, weak ones
//! accepted only with --allow-weak-passphrase; existing vaults are never judged.

use crate::common::*;
use predicates::prelude::*;

/// Scores 0 ("a very common password").
const WEAK_PASS: &str = "password1";
/// Scores 2.
const MODERATE_PASS: &str = "orange cat";

#[test]
fn a_weak_new_passphrase_is_refused_with_feedback_and_never_echoed() {
    let e = Env::new();
    let out = e
        .bare()
        .env("MCP_KEY_VAULT_PASSPHRASE", WEAK_PASS)
        .arg("init")
        .args(WEAK)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("too easy to guess (strength 0 of 4)"), "{err}");
    assert!(err.contains("common password"), "feedback: {err}");
    assert!(err.contains("--allow-weak-passphrase"), "{err}");
    assert!(!all_output(&out).contains(WEAK_PASS), "echoed: {err}");
    assert!(!e.vault().exists());
    // `create` on a missing vault makes one: the same rule.
    e.bare()
        .env("MCP_KEY_VAULT_PASSPHRASE", WEAK_PASS)
        .args(["create", "k"])
        .assert()
        .code(2);
    assert!(!e.vault().exists());
}

#[test]
fn allow_weak_passphrase_accepts_it_with_a_warning_and_the_vault_opens_quietly() {
    let e = Env::new();
    e.bare()
        .env("MCP_KEY_VAULT_PASSPHRASE", WEAK_PASS)
        .args(["init", "--allow-weak-passphrase"])
        .args(WEAK)
        .assert()
        .success()
        .stderr(predicate::str::contains("accepting a weak passphrase"));
    // An existing vault is never refused for its passphrase, nor warned about.
    e.bare()
        .env("MCP_KEY_VAULT_PASSPHRASE", WEAK_PASS)
        .arg("list")
        .assert()
        .success()
        .stderr(predicate::str::contains("strength").not());
    e.bare()
        .env("MCP_KEY_VAULT_PASSPHRASE", WEAK_PASS)
        .args(["create", "k"])
        .assert()
        .success();
}

#[test]
fn a_moderate_passphrase_draws_a_warning() {
    let e = Env::new();
    e.bare()
        .env("MCP_KEY_VAULT_PASSPHRASE", MODERATE_PASS)
        .arg("init")
        .args(WEAK)
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "only moderately strong (strength 2 of 4)",
        ));
    assert!(e.vault().exists());
}

#[test]
fn rekey_refuses_a_weak_new_passphrase_and_keeps_the_old_one() {
    let e = Env::with_vault();
    e.cmd()
        .env("MCP_KEY_VAULT_NEW_PASSPHRASE", WEAK_PASS)
        .arg("rekey")
        .args(WEAK)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("too easy to guess"));
    e.cmd().arg("list").assert().success();
    e.cmd()
        .env("MCP_KEY_VAULT_NEW_PASSPHRASE", WEAK_PASS)
        .args(["rekey", "--allow-weak-passphrase"])
        .args(WEAK)
        .assert()
        .success();
    e.bare()
        .env("MCP_KEY_VAULT_PASSPHRASE", WEAK_PASS)
        .arg("list")
        .assert()
        .success();
}

#[test]
fn the_fixture_passphrase_is_strong() {
    let e = Env::new();
    e.cmd()
        .arg("init")
        .args(WEAK)
        .assert()
        .success()
        .stderr(predicate::str::contains("strength").not());
}
