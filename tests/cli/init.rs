//! `init`, and vault creation on first `create`.

use crate::common::*;
use predicates::prelude::*;
use std::os::unix::fs::PermissionsExt;

#[test]
fn init_never_overwrites() {
    let e = Env::with_vault();
    let before = std::fs::read(e.vault()).unwrap();
    let mut args = vec!["init"];
    args.extend(WEAK);
    e.cmd().args(&args).assert().code(1).stderr(
        predicate::str::starts_with("error:").and(predicate::str::contains("never overwrites")),
    );
    assert_eq!(std::fs::read(e.vault()).unwrap(), before);
}

#[test]
fn init_refuses_settings_below_the_minimum() {
    let e = Env::new();
    for args in [
        ["--kdf-memory-kib", "19455", "--kdf-iterations", "2"],
        ["--kdf-memory-kib", "19456", "--kdf-iterations", "1"],
        ["--kdf-memory-kib", "4194304", "--kdf-iterations", "2"],
    ] {
        e.cmd()
            .arg("init")
            .args(args)
            .assert()
            .code(2)
            .stderr(predicate::str::starts_with("error:"));
    }
    assert!(!e.vault().exists());
}

#[test]
fn init_records_the_settings_in_the_header_and_modes() {
    let e = Env::new();
    e.cmd()
        .args([
            "init",
            "--kdf-memory-kib",
            "20000",
            "--kdf-iterations",
            "3",
            "--kdf-parallelism",
            "2",
        ])
        .assert()
        .success();
    let header: serde_json::Value =
        serde_json::from_slice(&std::fs::read(e.vault()).unwrap()).unwrap();
    assert_eq!(header["slots"][0]["kdf"]["memory_kib"], 20000);
    assert_eq!(header["slots"][0]["kdf"]["iterations"], 3);
    assert_eq!(header["slots"][0]["kdf"]["parallelism"], 2);
    assert_eq!(header["format"], "mcp-key-vault");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&e.vault()), 0o600);
    assert_eq!(mode(e.vault().parent().unwrap()), 0o700);
}

#[test]
fn presets_set_the_documented_parameters() {
    let e = Env::new();
    e.cmd()
        .args(["init", "--kdf-preset", "minimum", "--json"])
        .assert()
        .success()
        .stdout(predicate::str::contains("19456"));
    let header: serde_json::Value =
        serde_json::from_slice(&std::fs::read(e.vault()).unwrap()).unwrap();
    assert_eq!(header["slots"][0]["kdf"]["iterations"], 2);
}

#[test]
fn create_on_a_missing_vault_uses_the_default_settings() {
    let e = Env::new();
    e.create("first", &[]);
    let header: serde_json::Value =
        serde_json::from_slice(&std::fs::read(e.vault()).unwrap()).unwrap();
    assert_eq!(header["slots"][0]["kdf"]["memory_kib"], 65536);
    assert_eq!(header["slots"][0]["kdf"]["iterations"], 3);
    assert_eq!(header["slots"][0]["kdf"]["parallelism"], 1);
    assert_eq!(e.open_vault().keys().len(), 1);
}

#[test]
fn the_vault_holds_nothing_in_plaintext() {
    let e = Env::with_vault();
    let (id, key) = e.create("Plaintext Probe Name", &["-d", "Secret Description Words"]);
    let raw = String::from_utf8(std::fs::read(e.vault()).unwrap()).unwrap();
    let secret = &key[key.len() - 64..];
    for needle in [
        key.as_str(),
        secret,
        &id,
        "Plaintext Probe",
        "Secret Description",
        PASS,
    ] {
        assert!(!raw.contains(needle), "vault file contains {needle:?}");
    }
}

/// Starts `n` `create --json` processes at once and returns the ids they report, asserting
/// that every one succeeded.
fn creates_at_once(e: &Env, prefix: &str, n: usize) -> Vec<String> {
    let children: Vec<_> = (0..n)
        .map(|i| {
            std::process::Command::new(bin())
                .current_dir(e.path())
                .env_clear()
                .env("MCP_KEY_VAULT_PASSPHRASE", PASS)
                .args(["create", &format!("{prefix}-{i}"), "--json"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    children
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            v["id"].as_str().unwrap().to_string()
        })
        .collect()
}

#[test]
fn twenty_concurrent_creates_all_land() {
    let e = Env::with_vault();
    let ids = creates_at_once(&e, "parallel", 20);
    let v = e.open_vault();
    assert_eq!(v.keys().len(), 20);
    for id in ids {
        assert!(v.find(&id).is_ok(), "{id} missing");
    }
}

#[test]
fn concurrent_creates_on_a_missing_vault() {
    // Every process finds no vault and makes one; all but the first must then join the
    // vault that won the race instead of replacing it. A new vault gets the default
    // (slow) KDF, so fewer processes than above keep the test quick.
    let e = Env::new();
    let ids = creates_at_once(&e, "first", 6);
    let v = e.open_vault();
    assert_eq!(v.keys().len(), 6);
    for id in ids {
        assert!(v.find(&id).is_ok(), "{id} missing");
    }
}

/// `init --key-prefix acme`: every key the vault makes is `acme_mkm_…`, and verifies; the
/// prefix is in the header, bound to the payload (changed, the vault does not open); a
/// prefix that is not one is a usage error.
#[test]
fn a_key_prefix_is_kept_in_the_vault_and_put_on_every_key() {
    let e = Env::new();
    let v = e.json(&[
        "init",
        "--kdf-preset",
        "minimum",
        "--key-prefix",
        "acme",
        "--json",
    ]);
    assert_eq!(v["key_prefix"], "acme", "{v}");
    let (id, key) = e.create("k", &[]);
    assert!(
        key.starts_with(&format!("acme_mkm_{id}_")),
        "a prefixed key"
    );
    let out = e
        .cmd()
        .args(["verify", "--json"])
        .write_stdin(format!("{key}\n"))
        .output()
        .unwrap();
    let verdicts: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(verdicts[0]["code"], "VALID", "{verdicts}");
    let text = std::fs::read_to_string(e.vault()).unwrap();
    assert!(text.contains("\"key_prefix\": \"acme\""));
    std::fs::write(e.vault(), text.replace("\"acme\"", "\"evil\"")).unwrap();
    let out = e.cmd().arg("list").output().unwrap();
    assert_eq!(out.status.code(), Some(3), "the prefix is authenticated");

    let other = Env::new();
    let out = other
        .cmd()
        .args(["init", "--kdf-preset", "minimum", "--key-prefix", "Acme"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
