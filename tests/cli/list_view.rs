//! `list` and `view`: never a key, statuses, relative expiry, JSON shapes.

use crate::common::*;
use chrono::{Duration, Utc};
use predicates::prelude::*;

#[test]
fn list_never_prints_a_key_and_k_shows_a_hint() {
    let e = Env::with_vault();
    let (id, key) = e.create("hidden", &[]);
    let secret = &key[21..];
    for args in [
        vec!["list"],
        vec!["list", "-k"],
        vec!["list", "--show-keys", "--json"],
        vec!["view", &id],
        vec!["view", &id, "--json"],
    ] {
        let out = e.cmd().args(&args).output().unwrap();
        assert!(out.status.success());
        let all = all_output(&out);
        assert!(!all.contains(secret), "{args:?} leaked the secret");
    }
    e.cmd()
        .args(["list", "-k"])
        .assert()
        .stdout(predicate::str::contains(format!(
            "mkm_{id}_…{}",
            &key[key.len() - 4..]
        )));
}

#[test]
fn json_shapes() {
    let e = Env::with_vault();
    let (id, _) = e.create("shape", &["-d", "desc"]);
    let list = e.json(&["list", "--json"]);
    let arr = list.as_array().unwrap();
    assert_eq!(arr.len(), 1);
    for field in [
        "id",
        "name",
        "description",
        "status",
        "created_at",
        "expires_at",
        "revoked_at",
        "permissions",
    ] {
        assert!(arr[0].get(field).is_some(), "list --json lacks {field}");
    }
    assert_eq!(arr[0]["status"], "active");
    let view = e.json(&["view", &id, "--json"]);
    assert_eq!(view["id"], id.as_str());
    assert_eq!(view["description"], "desc");
    assert_eq!(view["days_left"], 90);
    assert!(view.get("secret").is_none() && view.get("key").is_none());
}

#[test]
fn statuses_and_relative_expiry() {
    let e = Env::with_vault();
    let (a, _) = e.create("soon", &[]);
    let (b, _) = e.create("gone", &[]);
    let (c, _) = e.create("later", &[]);
    let (d, _) = e.create("never", &["-e", "0"]);
    let now = Utc::now();
    e.edit_vault(|v| {
        let i = v.find(&a).unwrap();
        v.payload_mut_unchecked().keys[i].expires_at =
            Some(now + Duration::days(12) + Duration::hours(1));
        let i = v.find(&b).unwrap();
        v.payload_mut_unchecked().keys[i].expires_at = Some(now - Duration::days(3));
    });
    let out = e.cmd().arg("list").output().unwrap();
    let s = String::from_utf8(out.stdout).unwrap();
    let line = |id: &str| s.lines().find(|l| l.starts_with(id)).unwrap().to_string();
    assert!(
        line(&a).contains("in 12 days") && line(&a).contains("soon!"),
        "{s}"
    );
    assert!(
        line(&b).contains("expired") && line(&b).contains("3 days ago"),
        "{s}"
    );
    assert!(
        line(&c).contains("in 90 days") && !line(&c).contains("soon!"),
        "{s}"
    );
    assert!(line(&d).contains("never"), "{s}");
    assert!(s.lines().next().unwrap().contains("UTC"));
    // --expiring keeps only active keys expiring within the window.
    let ex = e.json(&["list", "--expiring", "14", "--json"]);
    let ids: Vec<&str> = ex
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [a.as_str()]);
    let ex = e.json(&["list", "--expiring", "100", "--json"]);
    assert_eq!(ex.as_array().unwrap().len(), 2);
    e.cmd()
        .args(["view", &b])
        .assert()
        .stdout(predicate::str::contains("expired").and(predicate::str::contains("3 days ago")));
    e.cmd()
        .args(["view", &a])
        .assert()
        .stdout(predicate::str::contains("12 days left"));
}

#[test]
fn unique_prefix_and_ambiguity() {
    let e = Env::with_vault();
    let (a, _) = e.create("one", &[]);
    e.create("two", &[]);
    e.edit_vault(|v| {
        v.payload_mut_unchecked().keys[0].id = "abcd000000000001".into();
        v.payload_mut_unchecked().keys[1].id = "abcd000000000002".into();
    });
    let _ = a;
    e.cmd().args(["view", "abcd"]).assert().code(1).stderr(
        predicate::str::contains("ambiguous")
            .and(predicate::str::contains("abcd000000000001"))
            .and(predicate::str::contains("abcd000000000002")),
    );
    e.cmd()
        .args(["view", "abcd0000000000012"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("no key with id"));
    e.cmd()
        .args(["view", "abcd000000000002"])
        .assert()
        .success()
        .stdout(predicate::str::contains("two"));
}

#[test]
fn stored_control_characters_are_escaped_on_output() {
    let e = Env::with_vault();
    let (id, _) = e.create("plain", &[]);
    e.edit_vault(|v| v.payload_mut_unchecked().keys[0].name = "bad\x1b[31mname".into());
    for args in [vec!["list"], vec!["view", &id], vec!["history"]] {
        let out = e.cmd().args(&args).output().unwrap();
        assert!(!out.stdout.contains(&0x1b), "{args:?} printed a raw ESC");
    }
}

#[test]
fn empty_list_says_how_to_start() {
    let e = Env::with_vault();
    e.cmd()
        .arg("list")
        .assert()
        .success()
        .stdout(predicate::str::contains("No keys"));
    assert_eq!(e.json(&["list", "--json"]), serde_json::json!([]));
}

#[test]
fn missing_vault_is_exit_1_with_next_step() {
    let e = Env::new();
    e.cmd().arg("list").assert().code(1).stderr(
        predicate::str::starts_with("error: no vault at").and(predicate::str::contains("init")),
    );
}
