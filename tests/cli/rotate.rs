//! `rotate`, with and without grace, env-file following, and `grant`/`deny`.

use crate::common::*;
use chrono::{Duration, Utc};
use predicates::prelude::*;

#[test]
fn rotate_revokes_and_links_both_ways() {
    let e = Env::with_vault();
    let (old, _) = e.create("svc", &["-d", "desc", "-p", "info", "-e", "30"]);
    let v = e.json(&["rotate", &old, "--json"]);
    let new = v["id"].as_str().unwrap().to_string();
    let key = v["key"].as_str().unwrap();
    assert!(
        key.starts_with(&format!("mkm_{new}_")),
        "successors are of format 2"
    );
    let vault = e.open_vault();
    let o = &vault.keys()[vault.find(&old).unwrap()];
    let n = &vault.keys()[vault.find(&new).unwrap()];
    assert!(o.revoked_at.is_some());
    assert_eq!(o.rotated_to.as_deref(), Some(new.as_str()));
    assert_eq!(n.rotated_from.as_deref(), Some(old.as_str()));
    assert_eq!((n.name.as_str(), n.description.as_str()), ("svc", "desc"));
    assert_eq!(n.permissions, ["info"]);
    assert_eq!((n.expires_at.unwrap() - n.created_at).num_days(), 30);
    assert_eq!(n.secret.expose(), key);
    e.cmd()
        .args(["view", &new])
        .assert()
        .stdout(predicate::str::contains(format!("Rotated from: {old}")));
}

#[test]
fn never_expiring_keys_rotate_to_never_expiring_keys() {
    let e = Env::with_vault();
    let (old, _) = e.create("forever", &["-e", "0"]);
    let v = e.json(&["rotate", &old, "--json"]);
    let vault = e.open_vault();
    let n = &vault.keys()[vault.find(v["id"].as_str().unwrap()).unwrap()];
    assert_eq!(n.expires_at, None);
}

#[test]
fn grace_days_shorten_but_never_extend() {
    let e = Env::with_vault();
    let (a, _) = e.create("a", &["-e", "90"]);
    let (b, _) = e.create("b", &["-e", "2"]);
    e.json(&["rotate", &a, "--grace-days", "7", "--json"]);
    e.json(&["rotate", &b, "--grace-days", "7", "--json"]);
    let v = e.open_vault();
    let ka = &v.keys()[v.find(&a).unwrap()];
    let kb = &v.keys()[v.find(&b).unwrap()];
    assert!(ka.revoked_at.is_none() && kb.revoked_at.is_none());
    let left = (ka.expires_at.unwrap() - Utc::now()).num_hours();
    assert!((7 * 24 - 2..=7 * 24).contains(&left), "{left}");
    let left = (kb.expires_at.unwrap() - Utc::now()).num_hours();
    assert!(left <= 48, "grace never extends: {left}");
}

#[test]
fn the_env_file_follows_the_rotation() {
    let e = Env::with_vault();
    let (old, old_key) = e.create("served", &["-u"]);
    std::fs::write(
        e.env_file(),
        format!("# app\nexport MCP_API_KEY={old_key}\nAPI_KEY_REQUIRED=true\n"),
    )
    .unwrap();
    let v = e.json(&["rotate", &old, "--json"]);
    assert_eq!(v["env_file_updated"], true);
    let key = v["key"].as_str().unwrap();
    assert_eq!(
        e.read_env(),
        format!("# app\nexport MCP_API_KEY={key}\nAPI_KEY_REQUIRED=true\n")
    );
    // A key not in the env file leaves it alone unless --use-in-env.
    let (other, _) = e.create("other", &[]);
    let before = e.read_env();
    let v = e.json(&["rotate", &other, "--json"]);
    assert_eq!(v["env_file_updated"], false);
    assert_eq!(e.read_env(), before);
    let (third, _) = e.create("third", &[]);
    let v = e.json(&["rotate", &third, "-u", "--json"]);
    assert!(e.read_env().contains(v["key"].as_str().unwrap()));
}

#[test]
fn rotating_a_dead_key_is_allowed_and_says_so() {
    let e = Env::with_vault();
    let (r, _) = e.create("revoked", &[]);
    e.cmd().args(["revoke", &r]).assert().success();
    e.cmd()
        .args(["rotate", &r])
        .assert()
        .success()
        .stdout(predicate::str::contains("was already revoked"));
    let (x, _) = e.create("expired", &[]);
    e.edit_vault(|v| {
        let i = v.find(&x).unwrap();
        v.payload_mut_unchecked().keys[i].expires_at = Some(Utc::now() - Duration::days(1));
    });
    e.cmd()
        .args(["rotate", &x])
        .assert()
        .success()
        .stdout(predicate::str::contains("was already expired"));
    // A rotated key points at its successor: rotating it again is refused.
    e.cmd()
        .args(["rotate", &r])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("already rotated"));
}

#[test]
fn grant_and_deny_round_trip() {
    let e = Env::with_vault();
    let (id, key) = e.create("perm", &["-p", "info"]);
    e.cmd()
        .args(["grant", &id, "tools:call", "generate"])
        .assert()
        .success()
        .stdout(predicate::str::contains("info, tools:call, generate"));
    e.cmd()
        .args(["verify", "--require", "tools:call"])
        .write_stdin(format!("{key}\n"))
        .assert()
        .success();
    e.cmd().args(["deny", &id, "tools:call"]).assert().success();
    assert_eq!(e.open_vault().keys()[0].permissions, ["info", "generate"]);
    e.cmd()
        .args(["verify", "--require", "tools:call"])
        .write_stdin(format!("{key}\n"))
        .assert()
        .code(1)
        .stdout(predicate::str::contains("INSUFFICIENT_PERMISSIONS"));
    e.cmd().args(["grant", &id, "BAD PERM"]).assert().code(2);
    e.cmd().args(["grant", &id]).assert().code(2);
    let list = e.json(&["list", "--json"]);
    assert_eq!(
        list[0]["permissions"],
        serde_json::json!(["info", "generate"])
    );
}

/// During a rotation's grace period the old key keeps its name: `--name` means the current
/// key, and says so, instead of failing as ambiguous.
#[test]
fn a_name_shared_during_a_grace_period_selects_the_current_key() {
    let e = Env::with_vault();
    let (old, _) = e.create("svc", &[]);
    let rotated = e.json(&["rotate", &old, "--grace-days", "7", "--json"]);
    let new = rotated["new"]["id"]
        .as_str()
        .or_else(|| rotated["id"].as_str())
        .unwrap_or_else(|| panic!("{rotated}"))
        .to_string();
    assert_ne!(new, old);
    let out = e
        .cmd()
        .args(["view", "--name", "svc", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", all_output(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["id"], new.as_str(), "{v}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("2 keys are named \"svc\"") && err.contains(&new),
        "{err}"
    );
    // Two current keys of one name stay ambiguous.
    e.create("twin", &[]);
    e.create("twin", &[]);
    let out = e.cmd().args(["view", "--name", "twin"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", all_output(&out));
}

/// A key of format 1 keeps verifying and listing as before; rotating it makes a successor
/// of format 2.
#[test]
fn a_format_1_key_keeps_working_and_rotates_to_format_2() {
    let e = Env::with_vault();
    let (id, _) = e.create("old", &["-p", "info"]);
    let old_key = format!("mcp_{id}_{}", "3c".repeat(32));
    e.edit_vault(|v| {
        let i = v.find(&id).unwrap();
        let hash = v.keyed_hash(&old_key);
        let k = &mut v.payload_mut_unchecked().keys[i];
        k.secret = mcp_key_vault::SecretString::new(old_key.clone());
        k.hash = hash;
    });
    let verify = |key: &str| {
        let out = e
            .cmd()
            .args(["verify", "--json"])
            .write_stdin(format!("{key}\n"))
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v[0]["code"].as_str().unwrap().to_string()
    };
    assert_eq!(verify(&old_key), "VALID");
    e.cmd()
        .args(["list", "-k"])
        .assert()
        .stdout(predicate::str::contains(format!("mcp_{id}_…3c3c")));
    assert_eq!(e.json(&["list", "--json"])[0]["legacy"], false);

    let v = e.json(&["rotate", &id, "--json"]);
    let new_key = v["key"].as_str().unwrap();
    assert!(new_key.starts_with(&format!("mkm_{}_", v["id"].as_str().unwrap())));
    assert_eq!(verify(&old_key), "REVOKED");
    assert_eq!(verify(new_key), "VALID");
    assert_eq!(e.json(&["list", "--json"])[1]["legacy"], false);
}
