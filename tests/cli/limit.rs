//! `create --rate-limit` and `limit`: a key's rate limit set, shown, recorded, carried into
//! verifier files, kept by `rotate`, dropped with the key, and bad input refused (exit 2).

use crate::common::Env;

fn verifier_entry(e: &Env, id: &str) -> serde_json::Value {
    let file = e.path().join("v.json");
    e.cmd()
        .args(["export-verifier", "--out", file.to_str().unwrap()])
        .assert()
        .success();
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    v["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == id)
        .cloned()
        .unwrap_or(serde_json::Value::Null)
}

#[test]
fn a_limit_is_set_shown_published_and_recorded() {
    let e = Env::with_vault();
    let (id, _) = e.create("bot", &["--rate-limit", "100/min"]);
    let v = e.json(&["view", &id, "--json"]);
    assert_eq!(v["rate_limit"], "100/min");
    let out = e.cmd().args(["view", &id]).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("Rate limit:   100/min"), "{text}");
    assert_eq!(
        verifier_entry(&e, &id)["rate_limit"],
        serde_json::json!({"requests": 100, "window_seconds": 60})
    );

    // Changed by id prefix, then by name; the same limit again changes nothing.
    let r = e.json(&["limit", &id[..8], "5/sec", "--json"]);
    assert_eq!(
        (r["rate_limit"].as_str(), r["changed"].as_bool()),
        (Some("5/sec"), Some(true))
    );
    let r = e.json(&["limit", "--name", "bot", "5/s", "--json"]);
    assert_eq!(r["changed"], false, "{r}");
    assert_eq!(
        verifier_entry(&e, &id)["rate_limit"],
        serde_json::json!({"requests": 5, "window_seconds": 1})
    );
    let out = e.cmd().args(["limit", &id, "none"]).output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("has no rate limit"));
    assert!(verifier_entry(&e, &id).get("rate_limit").is_none());

    let h = e.json(&["history", &id, "--json"]);
    let limits: Vec<&str> = h
        .as_array()
        .unwrap()
        .iter()
        .filter(|ev| ev["action"] == "limit")
        .map(|ev| ev["detail"].as_str().unwrap())
        .collect();
    assert_eq!(limits, ["100/min", "5/sec", "none"], "{h}");
}

#[test]
fn rotate_keeps_the_limit_and_delete_drops_it() {
    let e = Env::with_vault();
    let (id, _) = e.create("bot", &["--rate-limit", "10/30s"]);
    let r = e.json(&["rotate", &id, "--json"]);
    let next = r["id"].as_str().unwrap().to_string();
    assert_eq!(e.json(&["view", &next, "--json"])["rate_limit"], "10/30s");
    e.cmd().args(["delete", &next, "--yes"]).assert().success();
    e.cmd().args(["delete", &id, "--yes"]).assert().success();
    // The vault still opens and saves: no limit is left for a key that is gone.
    let (other, _) = e.create("other", &[]);
    assert!(e.json(&["view", &other, "--json"])["rate_limit"].is_null());
    assert_eq!(e.open_vault().payload().limits.len(), 0);
}

#[test]
fn bad_limits_are_refused_with_exit_2_and_change_nothing() {
    let e = Env::with_vault();
    let (id, _) = e.create("bot", &[]);
    let before = std::fs::read(e.vault()).unwrap();
    for args in [
        vec!["limit", &id, "0/min"],
        vec!["limit", &id, "100/week"],
        vec!["limit", &id, "lots"],
        vec!["limit", &id],
        vec!["limit", "--name", "bot", &id, "1/s"],
        vec!["create", "x", "--rate-limit", "1.5/s"],
    ] {
        let out = e.cmd().args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("limit"), "{args:?}: {err}");
    }
    let out = e
        .cmd()
        .args(["limit", "feedfacefeedface", "1/s"])
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    assert_eq!(std::fs::read(e.vault()).unwrap(), before, "nothing saved");
}
