//! `rekey`: new salt, new passphrase, same records.

use crate::common::*;
use predicates::prelude::*;

#[test]
fn rekey_changes_the_passphrase_and_salt_and_keeps_records() {
    let e = Env::with_vault();
    let (id, key) = e.create("kept", &[]);
    let before: serde_json::Value =
        serde_json::from_slice(&std::fs::read(e.vault()).unwrap()).unwrap();
    e.cmd()
        .env("MCP_KEY_VAULT_NEW_PASSPHRASE", "a brand new passphrase")
        .args([
            "rekey",
            "--kdf-memory-kib",
            "19456",
            "--kdf-iterations",
            "3",
        ])
        .assert()
        .success();
    let after: serde_json::Value =
        serde_json::from_slice(&std::fs::read(e.vault()).unwrap()).unwrap();
    assert_ne!(
        before["slots"][0]["kdf"]["salt"],
        after["slots"][0]["kdf"]["salt"]
    );
    assert_eq!(after["slots"][0]["kdf"]["iterations"], 3);
    e.cmd()
        .arg("list")
        .assert()
        .code(3)
        .stderr(predicate::str::contains("wrong passphrase"));
    let listed = e
        .bare()
        .env("MCP_KEY_VAULT_PASSPHRASE", "a brand new passphrase")
        .args(["list", "--json"])
        .output()
        .unwrap();
    assert!(listed.status.success());
    let v: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(v[0]["id"], id.as_str());
    e.bare()
        .env("MCP_KEY_VAULT_PASSPHRASE", "a brand new passphrase")
        .arg("verify")
        .write_stdin(format!("{key}\n"))
        .assert()
        .success();
}

#[test]
fn rekey_reads_a_new_passphrase_file_and_needs_a_source() {
    let e = Env::with_vault();
    e.create("k", &[]);
    std::fs::write(e.path().join("new"), "from a file\n").unwrap();
    e.cmd()
        .args(["rekey", "--new-passphrase-file", "new"])
        .assert()
        .success();
    e.bare()
        .env("MCP_KEY_VAULT_PASSPHRASE", "from a file")
        .arg("list")
        .assert()
        .success();
    // No new passphrase and no terminal: exit 3 naming the variables, vault untouched.
    let before = std::fs::read(e.vault()).unwrap();
    let out = std::process::Command::new("setsid")
        .arg("-w")
        .arg(bin())
        .arg("rekey")
        .current_dir(e.path())
        .env_clear()
        .env("MCP_KEY_VAULT_PASSPHRASE", "from a file")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("MCP_KEY_VAULT_NEW_PASSPHRASE"));
    assert_eq!(std::fs::read(e.vault()).unwrap(), before);
}

#[test]
fn rekey_with_a_wrong_current_passphrase_changes_nothing() {
    let e = Env::with_vault();
    let before = std::fs::read(e.vault()).unwrap();
    e.bare()
        .env("MCP_KEY_VAULT_PASSPHRASE", "wrong")
        .env("MCP_KEY_VAULT_NEW_PASSPHRASE", "new")
        .arg("rekey")
        .assert()
        .code(3);
    assert_eq!(std::fs::read(e.vault()).unwrap(), before);
}
