//! `history`: every action recorded, deleted keys kept, no secret.

use crate::common::*;

#[test]
fn history_records_each_action_and_survives_deletion() {
    let e = Env::with_vault();
    let (a, key_a) = e.create("alpha", &[]);
    let (b, key_b) = e.create("beta", &[]);
    e.cmd().args(["use", &a]).assert().success();
    e.cmd().args(["grant", &a, "x"]).assert().success();
    e.cmd().args(["deny", &a, "x"]).assert().success();
    let rotated = e.json(&["rotate", &a, "--json"]);
    e.cmd().args(["revoke", &b]).assert().success();
    e.cmd().args(["delete", &b]).assert().success();
    e.cmd()
        .env("MCP_KEY_VAULT_NEW_PASSPHRASE", PASS)
        .arg("rekey")
        .assert()
        .success();
    let all = e.json(&["history", "--json"]);
    let actions: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|ev| ev["action"].as_str().unwrap())
        .collect();
    for want in [
        "init", "create", "use", "grant", "deny", "rotate", "revoke", "delete", "rekey",
    ] {
        assert!(actions.contains(&want), "{want} missing from {actions:?}");
    }
    for ev in all.as_array().unwrap() {
        assert!(ev["at"].as_str().unwrap().ends_with('Z'), "UTC times");
    }
    let of_b = e.json(&["history", &b, "--json"]);
    let acts: Vec<&str> = of_b
        .as_array()
        .unwrap()
        .iter()
        .map(|ev| ev["action"].as_str().unwrap())
        .collect();
    assert_eq!(acts, ["create", "revoke", "delete"]);
    assert_eq!(of_b[2]["name"], "beta");
    let text = String::from_utf8(e.cmd().arg("history").output().unwrap().stdout).unwrap();
    let json = all.to_string();
    for key in [
        &key_a,
        &key_b,
        &rotated["key"].as_str().unwrap().to_string(),
    ] {
        assert!(!text.contains(&key[21..]) && !json.contains(&key[21..]));
    }
    assert!(text.contains("UTC"));
}
