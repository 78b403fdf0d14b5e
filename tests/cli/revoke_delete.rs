//! `revoke` and `delete`.

use crate::common::*;
use predicates::prelude::*;

#[test]
fn revoke_keeps_the_record_and_is_idempotent() {
    let e = Env::with_vault();
    let (id, _) = e.create("r", &[]);
    e.cmd()
        .args(["revoke", &id])
        .assert()
        .success()
        .stdout(predicate::str::contains("Revoked"));
    let first = e.open_vault().keys()[0].revoked_at;
    assert!(first.is_some());
    e.cmd()
        .args(["revoke", &id])
        .assert()
        .success()
        .stdout(predicate::str::contains("already revoked"));
    assert_eq!(e.open_vault().keys()[0].revoked_at, first);
    let v = e.json(&["view", &id, "--json"]);
    assert_eq!(v["status"], "revoked");
}

#[test]
fn revoking_the_env_key_says_the_server_still_holds_it() {
    let e = Env::with_vault();
    let (id, _) = e.create("served", &["-u"]);
    e.cmd()
        .args(["revoke", &id])
        .assert()
        .success()
        .stdout(predicate::str::contains("still holds this key"));
    let v = e.json(&["revoke", &id, "--json"]);
    assert_eq!(v["in_env_file"], true);
}

#[test]
fn unknown_ids_fail_with_exit_1() {
    let e = Env::with_vault();
    for cmd in ["revoke", "delete", "view", "use"] {
        e.cmd()
            .args([cmd, "ffffffffffffffff"])
            .assert()
            .code(1)
            .stderr(predicate::str::contains("no key with id ffffffffffffffff"));
    }
}

#[test]
fn delete_removes_the_record_without_a_terminal() {
    let e = Env::with_vault();
    let (a, _) = e.create("a", &[]);
    let (b, _) = e.create("b", &[]);
    // No terminal (as in scripts and as the Python tool did): no confirmation asked.
    e.cmd()
        .args(["delete", &a])
        .assert()
        .success()
        .stdout(predicate::str::contains("Deleted"));
    let v = e.open_vault();
    assert!(v.find(&a).is_err());
    assert!(v.find(&b).is_ok());
    e.cmd().args(["delete", &b, "--yes"]).assert().success();
    assert!(e.open_vault().keys().is_empty());
}
