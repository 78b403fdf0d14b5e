//! `check`: each finding triggered on its own, severities, exit codes, JSON.

use crate::common::*;
use chrono::{Duration, Utc};
use std::os::unix::fs::PermissionsExt;

fn codes(e: &Env, extra: &[&str]) -> (i32, Vec<(String, String)>) {
    let out = e
        .cmd()
        .args(["check", "--json"])
        .args(extra)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let f = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["severity"].as_str().unwrap().to_string(),
                f["code"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let code = out.status.code().unwrap();
    assert_eq!(v["ok"], code == 0);
    (code, f)
}

fn healthy() -> (Env, String) {
    let e = Env::with_vault();
    let (id, _) = e.create("served", &["-u"]);
    (e, id)
}

fn has(f: &[(String, String)], sev: &str, code: &str) -> bool {
    f.iter().any(|(s, c)| s == sev && c == code)
}

#[test]
fn healthy_setup_passes() {
    let (e, _) = healthy();
    let (code, f) = codes(&e, &[]);
    assert_eq!((code, f.len()), (0, 0), "{f:?}");
    e.cmd().arg("check").assert().success();
}

#[test]
fn env_key_missing() {
    let (e, _) = healthy();
    std::fs::write(e.env_file(), "API_KEY_REQUIRED=true\n").unwrap();
    let (code, f) = codes(&e, &[]);
    assert_eq!(code, 1);
    assert!(has(&f, "error", "ENV_KEY_MISSING"), "{f:?}");
}

#[test]
fn env_key_unknown() {
    let (e, _) = healthy();
    std::fs::write(
        e.env_file(),
        format!(
            "MCP_API_KEY=mcp_{}_{}\nAPI_KEY_REQUIRED=true\n",
            "0".repeat(16),
            "2".repeat(64)
        ),
    )
    .unwrap();
    let (code, f) = codes(&e, &[]);
    assert_eq!(code, 1);
    assert!(has(&f, "error", "ENV_KEY_UNKNOWN"), "{f:?}");
}

#[test]
fn env_key_revoked() {
    let (e, id) = healthy();
    e.cmd().args(["revoke", &id]).assert().success();
    let (code, f) = codes(&e, &[]);
    assert_eq!(code, 1);
    assert!(has(&f, "error", "ENV_KEY_REVOKED"), "{f:?}");
}

#[test]
fn env_key_expired_and_expiring() {
    let (e, id) = healthy();
    e.edit_vault(|v| {
        v.payload_mut_unchecked().keys[0].expires_at = Some(Utc::now() - Duration::days(1))
    });
    let (_, f) = codes(&e, &[]);
    assert!(has(&f, "error", "ENV_KEY_EXPIRED"), "{f:?}");
    e.edit_vault(|v| {
        v.payload_mut_unchecked().keys[0].expires_at = Some(Utc::now() + Duration::days(5))
    });
    let (code, f) = codes(&e, &[]);
    assert_eq!(code, 1);
    assert!(has(&f, "error", "ENV_KEY_EXPIRING"), "{f:?}");
    let (code, f) = codes(&e, &["--warn-days", "3"]);
    assert_eq!((code, f.len()), (0, 0), "{f:?}");
    let _ = id;
}

#[test]
fn requirement_disabled() {
    let (e, _) = healthy();
    let env = e
        .read_env()
        .replace("API_KEY_REQUIRED=true", "API_KEY_REQUIRED=false");
    std::fs::write(e.env_file(), env).unwrap();
    let (code, f) = codes(&e, &[]);
    assert_eq!(code, 1);
    assert!(has(&f, "error", "REQUIREMENT_DISABLED"), "{f:?}");
}

#[test]
fn other_key_expiring_is_a_warning_and_strict_fails_on_it() {
    let (e, _) = healthy();
    e.create("other", &["-e", "7"]);
    let (code, f) = codes(&e, &[]);
    assert_eq!(code, 0, "warnings alone pass");
    assert!(has(&f, "warning", "KEY_EXPIRING"), "{f:?}");
    let (code, _) = codes(&e, &["--strict"]);
    assert_eq!(code, 1);
}

#[test]
fn exposed_files_are_warnings() {
    let (e, _) = healthy();
    std::fs::set_permissions(e.vault(), std::fs::Permissions::from_mode(0o640)).unwrap();
    std::fs::set_permissions(e.env_file(), std::fs::Permissions::from_mode(0o604)).unwrap();
    let (code, f) = codes(&e, &[]);
    assert_eq!(code, 0);
    assert!(has(&f, "warning", "VAULT_PERMISSIONS"), "{f:?}");
    assert!(has(&f, "warning", "ENV_PERMISSIONS"), "{f:?}");
}

#[test]
fn human_output_lists_findings_with_severity() {
    let (e, id) = healthy();
    e.cmd().args(["revoke", &id]).assert().success();
    let out = e.cmd().arg("check").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let s = String::from_utf8(out.stdout).unwrap();
    assert!(
        s.lines()
            .any(|l| l.starts_with("error") && l.contains("ENV_KEY_REVOKED")),
        "{s}"
    );
    assert!(s.contains("1 error"), "{s}");
}
