//! Usage data from `serve` in `list`, `view` and `check`: merged over the files
//! beside each published verifier and any `--usage FILE`, latest time and summed counts.

use crate::common::*;
use chrono::{Duration, Utc};

fn usage_file(keys: serde_json::Value) -> String {
    serde_json::json!({"format": "mcp-key-usage", "version": 1,
        "updated_at": "2026-06-01T00:00:00Z", "keys": keys})
    .to_string()
}

/// Makes every key 90 days old (old enough to be judged unused) and publishes
/// `verifier.json`, beside which `serve` writes its usage files.
fn age_and_publish(e: &Env) {
    e.edit_vault(|v| {
        for k in &mut v.payload_mut_unchecked().keys {
            k.created_at = Utc::now() - Duration::days(90);
        }
    });
    e.cmd()
        .args(["publish", "verifier.json"])
        .assert()
        .success();
}

#[test]
fn last_use_is_merged_into_list_and_view_and_unused_keys_are_warned() {
    let e = Env::with_vault();
    let (used, _) = e.create("used", &["-e", "0"]);
    let (idle, _) = e.create("idle", &["-e", "0"]);
    // Both keys are old enough to be judged.
    age_and_publish(&e);
    let recent = (Utc::now() - Duration::days(2)).to_rfc3339();
    // Two serve processes: the latest time wins; an older one elsewhere given by --usage.
    std::fs::write(
        e.path().join("verifier.json.usage.json"),
        usage_file(serde_json::json!({&used: {"last_used_at": "2026-01-01T00:00:00Z", "counts": {"VALID": 2}}})),
    )
    .unwrap();
    std::fs::write(
        e.path().join("verifier.json.usage.pod-b.json"),
        usage_file(serde_json::json!({&used: {"last_used_at": recent, "counts": {"VALID": 5}}})),
    )
    .unwrap();
    let list = e.json(&["list", "--json"]);
    let row = |id: &str| {
        list.as_array()
            .unwrap()
            .iter()
            .find(|k| k["id"] == id)
            .unwrap()
            .clone()
    };
    let shown = row(&used)["last_used_at"].as_str().unwrap().to_string();
    assert_eq!(
        chrono::DateTime::parse_from_rfc3339(&shown).unwrap(),
        chrono::DateTime::parse_from_rfc3339(&recent).unwrap()
    );
    assert!(row(&idle)["last_used_at"].is_null());
    let view = e.json(&["view", &used, "--json"]);
    assert_eq!(view["last_used_at"], list[0]["last_used_at"]);

    let out = e.cmd().args(["check", "--json"]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let unused: Vec<&str> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["code"] == "KEY_UNUSED")
        .map(|f| f["key_id"].as_str().unwrap())
        .collect();
    assert_eq!(unused, vec![idle.as_str()], "{v}");
    // With a short window the recently used key is still used; with --unused-days 1 it
    // is not.
    let out = e
        .cmd()
        .args(["check", "--json", "--unused-days", "1"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let n = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["code"] == "KEY_UNUSED")
        .count();
    assert_eq!(n, 2, "{v}");
}

#[test]
fn without_usage_data_no_key_is_called_unused() {
    let e = Env::with_vault();
    e.create("k", &["-u"]);
    e.edit_vault(|v| {
        v.payload_mut_unchecked().keys[0].created_at = Utc::now() - Duration::days(400)
    });
    let out = e.cmd().args(["check", "--json"]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(!has_finding(&v, "KEY_UNUSED"), "{v}");
    // An explicit usage file that never saw the key makes it unused.
    std::fs::write(e.path().join("u.json"), usage_file(serde_json::json!({}))).unwrap();
    let out = e
        .cmd()
        .args(["check", "--json", "--usage", "u.json"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(has_finding(&v, "KEY_UNUSED"), "{v}");
}

/// A last use in the future (a forged usage file beside the verifier) does not hide a
/// key's disuse: it is ignored, and the file is named in a warning.
#[test]
fn a_last_use_in_the_future_is_ignored_and_reported() {
    let e = Env::with_vault();
    let (idle, _) = e.create("idle", &["-e", "0"]);
    age_and_publish(&e);
    let far = (Utc::now() + Duration::days(355_041)).to_rfc3339();
    std::fs::write(
        e.path().join("verifier.json.usage.json"),
        usage_file(serde_json::json!({&idle: {"last_used_at": far, "counts": {"VALID": 1}}})),
    )
    .unwrap();
    let out = e.cmd().args(["check", "--json"]).output().unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(has_finding(&report, "KEY_UNUSED"), "{report}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("records a last use in the future for 1 key"),
        "{err}"
    );
    let view = e.json(&["view", &idle, "--json"]);
    assert!(view["last_used_at"].is_null(), "{view}");
}
