//! Process hardening: core dumps are off while the binary holds secrets.

use crate::common::*;

#[test]
fn core_dumps_are_disabled_at_start_up() {
    let e = Env::with_vault();
    // Hold the vault lock so the child waits, alive, where we can inspect it.
    let lock_path = e.path().join("mcp_key_manager/keys.json.lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .unwrap();
    lock.lock().unwrap();
    // Start it with core dumps allowed (as a developer's shell might), so the test fails
    // unless the binary itself turns them off.
    let mut child = std::process::Command::new("sh")
        .arg("-c")
        .arg("ulimit -c unlimited 2>/dev/null || ulimit -c 1024; exec \"$0\" \"$@\"")
        .arg(bin())
        .current_dir(e.path())
        .env_clear()
        .env("MCP_KEY_VAULT_PASSPHRASE", PASS)
        .env("MCP_KEY_LOCK_TIMEOUT", "10")
        .args(["create", "waiting"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let limits_path = format!("/proc/{}/limits", child.id());
    let mut row = String::new();
    for _ in 0..100 {
        std::thread::sleep(std::time::Duration::from_millis(20));
        let limits = std::fs::read_to_string(&limits_path).unwrap_or_default();
        row = limits
            .lines()
            .find(|l| l.starts_with("Max core file size"))
            .unwrap_or_default()
            .to_string();
        let fields: Vec<&str> = row.split_whitespace().collect();
        if fields.len() >= 6 && fields[4] == "0" && fields[5] == "0" {
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    drop(lock);
    let fields: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(&fields[4..6], ["0", "0"], "{row}");
}
