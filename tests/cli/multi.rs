//! Several keys at once, and keys by name.

use crate::common::*;
use predicates::prelude::*;

#[test]
fn revoke_several_and_an_unknown_one_changes_nothing() {
    let e = Env::with_vault();
    let (a, _) = e.create("a", &[]);
    let (b, _) = e.create("b", &[]);
    let (c, _) = e.create("c", &[]);
    let before = std::fs::read(e.vault()).unwrap();
    e.cmd()
        .args(["revoke", &a, "ffffffffffffffff", &b])
        .assert()
        .code(1);
    assert_eq!(std::fs::read(e.vault()).unwrap(), before, "nothing changed");
    let out = e.json(&["revoke", &a, &b, "--json"]);
    let ids: Vec<&str> = out
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![a.as_str(), b.as_str()]);
    let list = e.json(&["list", "--json"]);
    let status = |id: &str| {
        list.as_array()
            .unwrap()
            .iter()
            .find(|k| k["id"] == id)
            .unwrap()["status"]
            .clone()
    };
    assert_eq!(
        (status(&a), status(&b), status(&c)),
        ("revoked".into(), "revoked".into(), "active".into())
    );
    // One key keeps the one-object shape these commands always had.
    assert!(e.json(&["revoke", &c, "--json"]).is_object());
}

#[test]
fn delete_and_grant_take_several_keys() {
    let e = Env::with_vault();
    let (a, _) = e.create("a", &[]);
    let (b, _) = e.create("b", &[]);
    let (c, _) = e.create("c", &[]);
    let out = e.json(&[
        "grant",
        "--key",
        &a,
        "--name",
        "b",
        "tools:call",
        "resources:read",
        "--json",
    ]);
    for k in out.as_array().unwrap() {
        assert!(
            k["permissions"]
                .as_array()
                .unwrap()
                .contains(&"tools:call".into()),
            "{k}"
        );
    }
    // The old spelling still works: the id, then the permissions.
    let one = e.json(&["deny", &a, "tools:call", "--json"]);
    assert!(!one["permissions"]
        .as_array()
        .unwrap()
        .contains(&"tools:call".into()));
    e.cmd().args(["delete", &a, &c, "--yes"]).assert().success();
    let left: Vec<String> = e
        .open_vault()
        .keys()
        .iter()
        .map(|k| k.id.to_string())
        .collect();
    assert_eq!(left, vec![b]);
}

#[test]
fn a_name_selects_a_key_and_an_ambiguous_name_lists_the_candidates() {
    let e = Env::with_vault();
    let (forever, _) = e.create("Forever", &["-e", "0"]);
    let v = e.json(&["view", "--name", "Forever", "--json"]);
    assert_eq!(v["id"], forever.as_str());
    // An id that is a name says how to select it by name.
    e.cmd()
        .args(["view", "Forever"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("--name"));
    let (twin, _) = e.create("Forever", &[]);
    e.cmd()
        .args(["revoke", "--name", "Forever"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(&forever).and(predicate::str::contains(&twin)));
    e.cmd().args(["view", "--name", "Nobody"]).assert().code(1);
}
