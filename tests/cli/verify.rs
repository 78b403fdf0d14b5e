//! `verify` and `export-verifier` through the binary, and the documented Python snippet.

use crate::common::*;
use chrono::{Duration, Utc};
use predicates::prelude::*;

fn fixture() -> (Env, [(String, String); 4]) {
    let e = Env::with_vault();
    let good = e.create("good", &["-p", "generate", "-p", "info"]);
    let revoked = e.create("revoked", &[]);
    let expired = e.create("expired", &[]);
    let never = e.create("never", &["-e", "0"]);
    e.cmd().args(["revoke", &revoked.0]).assert().success();
    e.edit_vault(|v| {
        let i = v.find(&expired.0).unwrap();
        v.payload_mut_unchecked().keys[i].expires_at = Some(Utc::now() - Duration::days(1));
    });
    (e, [good, revoked, expired, never])
}

fn verify_stdin(e: &Env, input: String, extra: &[&str]) -> std::process::Output {
    e.cmd()
        .arg("verify")
        .args(extra)
        .write_stdin(input)
        .output()
        .unwrap()
}

#[test]
fn every_code_through_the_cli() {
    let (e, [good, revoked, expired, never]) = fixture();
    let wrong_secret = key2(&good.0, &"0".repeat(43));
    let unknown = format!("mcp_{}_{}", "0".repeat(16), "1".repeat(64));
    let cases = [
        (good.1.clone(), "VALID"),
        (never.1.clone(), "VALID"),
        (revoked.1.clone(), "REVOKED"),
        (expired.1.clone(), "EXPIRED"),
        (wrong_secret, "NOT_FOUND"),
        (unknown, "NOT_FOUND"),
        ("mcp_nonsense".into(), "MALFORMED"),
        ("has spaces in it".into(), "MALFORMED"),
    ];
    for (key, code) in &cases {
        let out = verify_stdin(&e, format!("{key}\n"), &["--json"]);
        let all: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        // `verify --json` always prints an array, one verdict per key.
        assert_eq!(all.as_array().map(Vec::len), Some(1), "{all}");
        let v = &all[0];
        assert_eq!(v["code"], *code, "{key}");
        assert_eq!(v["valid"], *code == "VALID");
        assert_eq!(
            out.status.code(),
            Some(if *code == "VALID" { 0 } else { 1 })
        );
        if *code == "NOT_FOUND" || *code == "MALFORMED" {
            assert_eq!(v["id"], serde_json::Value::Null, "no id leaks for {code}");
            assert_eq!(v["name"], serde_json::Value::Null);
        }
    }
    let out = verify_stdin(
        &e,
        format!("{}\n", good.1),
        &["--require", "generate", "--require", "health"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("INSUFFICIENT_PERMISSIONS"));
    let out = verify_stdin(
        &e,
        format!("{}\n", good.1),
        &["--require", "generate", "--json"],
    );
    assert_eq!(out.status.code(), Some(0));
    let all: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let v = &all[0];
    assert_eq!(v["id"], good.0.as_str());
    assert_eq!(v["name"], "good");
    assert_eq!(v["permissions"], serde_json::json!(["generate", "info"]));
}

#[test]
fn batch_output_and_exit_codes() {
    let (e, [good, revoked, _, never]) = fixture();
    let out = verify_stdin(&e, format!("\n{}\n\n{}\n", good.1, never.1), &[]);
    assert_eq!(out.status.code(), Some(0));
    let s = String::from_utf8(out.stdout).unwrap();
    assert_eq!(s.lines().count(), 2, "blank lines are skipped: {s}");
    assert!(s.contains(&good.0) && s.contains(&never.0));
    assert!(!s.contains(&good.1[21..]), "verify never prints a key");
    let out = verify_stdin(&e, format!("{}\n{}\n", good.1, revoked.1), &["--json"]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 2);
    assert_eq!(v[1]["code"], "REVOKED");
    e.cmd()
        .arg("verify")
        .write_stdin("\n\n")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no key to verify"));
}

#[test]
fn from_env_checks_the_env_files_key() {
    let (e, [good, revoked, ..]) = fixture();
    e.cmd().args(["use", &good.0]).assert().success();
    e.cmd()
        .args(["verify", "--from-env"])
        .assert()
        .success()
        .stdout(predicate::str::contains("VALID"));
    std::fs::write(e.env_file(), format!("MCP_API_KEY={}\n", revoked.1)).unwrap();
    e.cmd()
        .args(["verify", "--from-env"])
        .assert()
        .code(1)
        .stdout(predicate::str::contains("REVOKED"));
    std::fs::write(e.env_file(), "OTHER=1\n").unwrap();
    e.cmd()
        .args(["verify", "--from-env"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("has no MCP_API_KEY"));
}

#[test]
fn keys_are_never_taken_from_argv() {
    let (e, [good, ..]) = fixture();
    e.cmd().args(["verify", &good.1]).assert().code(2);
}

#[test]
fn export_verifier_holds_no_secret_and_verifies_without_a_passphrase() {
    let (e, [good, revoked, expired, never]) = fixture();
    e.cmd()
        .args(["export-verifier", "--out", "verifier.json"])
        .assert()
        .success();
    let path = e.path().join("verifier.json");
    let raw = std::fs::read_to_string(&path).unwrap();
    for (_, key) in [&good, &revoked, &expired, &never] {
        assert!(!raw.contains(key.as_str()) && !raw.contains(&key[21..]));
    }
    assert!(!raw.contains(PASS));
    let v: serde_json::Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(v["format"], "mcp-key-verifier");
    assert_eq!(v["version"], 1);
    assert_eq!(v["algorithm"], "hmac-sha256");
    assert_eq!(v["keys"].as_array().unwrap().len(), 4);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    for (key, code) in [
        (&good.1, "VALID"),
        (&revoked.1, "REVOKED"),
        (&expired.1, "EXPIRED"),
        (&never.1, "VALID"),
    ] {
        let out = e
            .bare()
            .args(["verify", "--verifier", "verifier.json", "--json"])
            .write_stdin(format!("{key}\n"))
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v[0]["code"], code);
    }
}

/// Extracts the Python snippet of README.md's "Verifying keys in your server" section.
fn readme_python_snippet() -> String {
    let readme = std::fs::read_to_string("README.md").unwrap();
    let section = readme
        .split("## Verifying keys in your server")
        .nth(1)
        .expect("README has the section");
    let start = section.find("```python\n").expect("python block") + "```python\n".len();
    let end = section[start..].find("```").unwrap();
    section[start..start + end].to_string()
}

#[test]
fn the_readme_python_snippet_verifies_keys() {
    let (e, [good, revoked, expired, _]) = fixture();
    e.cmd()
        .args(["export-verifier", "--out", "verifier.json"])
        .assert()
        .success();
    let snippet = readme_python_snippet();
    let unknown = format!("mcp_{}_{}", "0".repeat(16), "1".repeat(64));
    let driver = format!(
        "{snippet}\nimport sys\nv = load_verifier('verifier.json')\nfor header in sys.argv[1:]:\n    print(is_valid(v, key_from_headers(None, header)))\n"
    );
    std::fs::write(e.path().join("snippet.py"), driver).unwrap();
    let out = std::process::Command::new("python3")
        .current_dir(e.path())
        .arg("snippet.py")
        .arg(format!("Bearer {}", good.1))
        .arg(format!("bearer {}", revoked.1))
        .arg(format!("Bearer {}", expired.1))
        .arg(format!("Bearer {unknown}"))
        .arg(format!("Basic {}", good.1))
        .output()
        .expect("python3 is available");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = s.lines().collect();
    assert_eq!(lines, ["True", "False", "False", "False", "False"], "{s}");
}

/// A typo in a format-2 key is told from an unknown key before any lookup: `MALFORMED`
/// with reason `CHECKSUM`, by the vault and by a verifier file without a single entry.
#[test]
fn a_mistyped_key_is_malformed_by_its_checksum() {
    let e = Env::with_vault();
    e.cmd()
        .args(["export-verifier", "--out", "empty.json"])
        .assert()
        .success();
    let (_, key) = e.create("k", &[]);
    let typo = typo(&key, 30);
    let unknown = key2(&"0".repeat(16), &"1".repeat(43));
    let out = verify_stdin(&e, format!("{typo}\n{unknown}\n{key}\n"), &["--json"]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (&v[0]["code"], &v[0]["reason"]),
        (&"MALFORMED".into(), &"CHECKSUM".into())
    );
    assert_eq!(v[1]["code"], "NOT_FOUND");
    assert_eq!(v[1].get("reason"), None, "reason is only for MALFORMED");
    assert_eq!(v[2]["code"], "VALID");
    let out = verify_stdin(&e, "mkm_short\n".into(), &["--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (&v[0]["code"], &v[0]["reason"]),
        (&"MALFORMED".into(), &"SHAPE".into())
    );

    let out = verify_stdin(&e, format!("{typo}\n"), &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("1\tMALFORMED\t-\tchecksum does not match"),
        "{text}"
    );
    assert!(
        !all_output(&out).contains(&typo[21..]),
        "verify never prints a key"
    );

    let out = verify_stdin(
        &e,
        format!("{typo}\n"),
        &["--verifier", "empty.json", "--json"],
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (&v[0]["code"], &v[0]["reason"]),
        (&"MALFORMED".into(), &"CHECKSUM".into())
    );
}
