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

/// Another process holding the vault's lock `lock` for 2 s (from 0.3 s after this returns);
/// `None` when flock(1) is missing (a failure under CI=true).
fn hold_lock(lock: &std::path::Path) -> Option<std::process::Child> {
    let flock = std::process::Command::new("flock")
        .arg(lock)
        .args(["sleep", "2"])
        .spawn();
    let Ok(holder) = flock else {
        assert!(!tool_or_skip("the lock-wait test", false, "no flock(1)"));
        return None;
    };
    std::thread::sleep(std::time::Duration::from_millis(300));
    Some(holder)
}

/// Event times are taken when the change is made, not when the command started: a first
/// `create` that waited for another process's lock lists `init` before the key, in time
/// order.
#[test]
fn a_change_made_after_a_wait_takes_its_time_after_the_wait() {
    use std::os::unix::fs::DirBuilderExt;
    let e = Env::new();
    let dir = e.path().join("mcp_key_manager");
    std::fs::DirBuilder::new().mode(0o700).create(&dir).unwrap();
    let Some(mut holder) = hold_lock(&dir.join("keys.json.lock")) else {
        return;
    };
    let out = e.cmd().args(["create", "first"]).output().unwrap();
    assert!(out.status.success(), "{}", all_output(&out));
    holder.wait().unwrap();
    let events = e.json(&["history", "--json"]);
    let events = events.as_array().unwrap();
    let at =
        |i: usize| chrono::DateTime::parse_from_rfc3339(events[i]["at"].as_str().unwrap()).unwrap();
    assert_eq!(events[0]["action"], "init", "{events:?}");
    assert_eq!(events[1]["action"], "create", "{events:?}");
    assert!(
        at(0) <= at(1),
        "create at {} before init at {}",
        at(1),
        at(0)
    );
}

/// The same for every other change: a `revoke`, `grant` and `rotate` that waited about 1.7
/// s for another process's lock record a time after the wait (at least 0.7 s after the
/// start, times being whole seconds), not when the command started.
#[test]
fn every_change_takes_its_time_after_a_wait_for_the_lock() {
    let e = Env::with_vault();
    let (id, _) = e.create("k", &[]);
    let (other, _) = e.create("other", &[]);
    let lock = e.vault().with_file_name("keys.json.lock");
    for args in [
        vec!["grant", &id, "extra"],
        vec!["revoke", &other],
        vec!["rotate", &id],
    ] {
        let Some(mut holder) = hold_lock(&lock) else {
            return;
        };
        let started = chrono::Utc::now();
        let out = e.cmd().args(&args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", all_output(&out));
        holder.wait().unwrap();
        let events = e.json(&["history", "--json"]);
        let last = events.as_array().unwrap().last().unwrap().clone();
        assert_eq!(last["action"], args[0], "{last}");
        let at = chrono::DateTime::parse_from_rfc3339(last["at"].as_str().unwrap()).unwrap();
        let waited = at.with_timezone(&chrono::Utc) - started;
        assert!(
            waited >= chrono::Duration::milliseconds(500),
            "{args:?} recorded {at}, {waited} after the command started: before the wait"
        );
    }
}
