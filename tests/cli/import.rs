//! `import-legacy`: the Python tool's plaintext store becomes an encrypted vault.

use crate::common::*;
use predicates::prelude::*;

fn legacy_env() -> Env {
    let e = Env::new();
    std::fs::create_dir_all(e.path().join("mcp_key_manager")).unwrap();
    std::fs::copy("tests/data/ok_legacy_store.json", e.vault()).unwrap();
    e
}

#[test]
fn import_in_place_keeps_everything() {
    let e = legacy_env();
    let out = e.cmd().arg("import-legacy").args(WEAK).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let raw = std::fs::read_to_string(e.vault()).unwrap();
    assert!(raw.contains("mcp-key-vault") && !raw.contains("key_value"));
    let list = e.json(&["list", "--json"]);
    let by_id = |id: &str| {
        list.as_array()
            .unwrap()
            .iter()
            .find(|k| k["id"] == id)
            .cloned()
            .unwrap()
    };
    let p = by_id("fd5c5b5177095c73");
    assert_eq!(p["status"], "active");
    assert_eq!(p["name"], "Production Key");
    assert_eq!(p["description"], "Key for production MCP server");
    assert_eq!(p["created_at"], "2026-10-01T09:15:00.123456Z");
    assert_eq!(p["expires_at"], "2030-01-01T00:00:00Z");
    assert_eq!(
        p["permissions"],
        serde_json::json!(["generate", "info", "health"])
    );
    assert_eq!(by_id("0a1b2c3d4e5f6a7b")["status"], "revoked");
    assert_eq!(
        by_id("0a1b2c3d4e5f6a7b")["expires_at"],
        "2030-06-01T12:00:00.500Z"
    );
    assert_eq!(by_id("1111222233334444")["status"], "expired");
    assert_eq!(
        by_id("5555666677778888")["expires_at"],
        serde_json::Value::Null
    );
    assert_eq!(
        by_id("5555666677778888")["created_at"],
        "2025-05-05T05:05:05.000001Z"
    );
    let view = e.json(&["view", "fd5c5b5177095c73", "--json"]);
    assert_eq!(
        view["metadata"],
        serde_json::json!({"owner": "ops", "ticket": 42})
    );
    // Imported keys verify by keyed hash and can be used.
    e.cmd()
        .arg("verify")
        .write_stdin(format!("{}\n", "a3".repeat(32)))
        .assert()
        .success()
        .stdout(predicate::str::contains("fd5c5b5177095c73"));
    e.cmd()
        .arg("verify")
        .write_stdin(format!("{}\n", "5b".repeat(32)))
        .assert()
        .code(1)
        .stdout(predicate::str::contains("REVOKED"));
    e.cmd().args(["use", "5555"]).assert().success();
    assert!(e
        .read_env()
        .contains(&format!("MCP_API_KEY={}", "0e".repeat(32))));
    let hist = e.json(&["history", "--json"]);
    assert_eq!(
        hist.as_array()
            .unwrap()
            .iter()
            .filter(|h| h["action"] == "import")
            .count(),
        4
    );
}

#[test]
fn keep_plaintext_moves_the_store_aside() {
    let e = legacy_env();
    e.cmd()
        .args(["import-legacy", "--keep-plaintext", "old-keys.json"])
        .args(WEAK)
        .assert()
        .success();
    assert_eq!(
        std::fs::read(e.path().join("old-keys.json")).unwrap(),
        std::fs::read("tests/data/ok_legacy_store.json").unwrap()
    );
    assert_eq!(e.json(&["list", "--json"]).as_array().unwrap().len(), 4);
}

#[test]
fn import_from_another_path_into_a_new_vault() {
    let e = Env::new();
    std::fs::copy("tests/data/ok_legacy_store.json", e.path().join("old.json")).unwrap();
    e.cmd()
        .args(["import-legacy", "old.json"])
        .args(WEAK)
        .assert()
        .success()
        .stdout(predicate::str::contains("left in place"));
    assert_eq!(e.json(&["list", "--json"]).as_array().unwrap().len(), 4);
    // A vault that already exists is never replaced by an import from elsewhere.
    e.cmd()
        .args(["import-legacy", "old.json"])
        .args(WEAK)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("already exists"));
    // And an encrypted vault is not imported again.
    e.cmd()
        .arg("import-legacy")
        .args(WEAK)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("already an encrypted vault"));
}

#[test]
fn malformed_stores_are_reported_and_left_untouched() {
    let k = "ab".repeat(32);
    let rec = |extra: &str| {
        format!(
            r#"{{"key_id": "a1", "key_value": "{k}", "name": "n", "created_at": "2025-01-01T00:00:00"{extra}}}"#
        )
    };
    let corpus = [
        (
            format!(r#"{{"a1": {}}}"#, rec(r#", "is_active": "yes""#)),
            "is_active",
        ),
        (
            format!(r#"{{"a1": {}}}"#, rec(r#", "permissions": "all""#)),
            "permissions",
        ),
        (
            format!(r#"{{"a1": {}}}"#, rec(r#", "permissions": [1]"#)),
            "permission",
        ),
        (
            format!(r#"{{"a1": {}}}"#, rec(r#", "expires_at": "tomorrow""#)),
            "expires_at",
        ),
        (
            format!(r#"{{"a1": {}}}"#, rec(r#", "metadata": []"#)),
            "metadata",
        ),
        (
            format!(r#"{{"a1": {}, "a1": {}}}"#, rec(""), rec("")),
            "more than once",
        ),
        (
            r#"{"a1": {"key_id": "a1", "name": "n", "created_at": "2025-01-01T00:00:00", "key_value": 5}}"#
                .to_string(),
            "key_value",
        ),
        (
            format!(
                r#"{{"a1": {{"key_id": "a1", "key_value": "{k}", "created_at": "2025-01-01T00:00:00"}}}}"#
            ),
            "name is missing",
        ),
        (
            format!(
                r#"{{"b2": {{"key_id": "a1", "key_value": "{k}", "name": "n", "created_at": "2025-01-01T00:00:00"}}}}"#
            ),
            "differs",
        ),
    ];
    for (store, why) in corpus {
        let e = Env::new();
        std::fs::create_dir_all(e.path().join("mcp_key_manager")).unwrap();
        std::fs::write(e.vault(), &store).unwrap();
        let out = e.cmd().arg("import-legacy").args(WEAK).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(4), "{why}: {err}");
        assert!(err.contains(why), "{why}: {err}");
        assert!(err.contains("nothing was written"), "{err}");
        assert!(!err.contains(&k), "a key value reached stderr");
        assert_eq!(std::fs::read_to_string(e.vault()).unwrap(), store, "{why}");
        let dir: Vec<_> = std::fs::read_dir(e.path().join("mcp_key_manager"))
            .unwrap()
            .collect();
        assert!(dir.len() <= 2, "no stray files: {dir:?}");
    }
}
