//! Every example command of the Python tool's guide, with its exact flags, and its effect
//! on the vault and the env file. The guide's id `fd5c5b5177095c73` comes from an imported
//! store of the old tool.

use crate::common::*;
use predicates::prelude::*;

fn imported() -> Env {
    let e = Env::new();
    std::fs::create_dir_all(e.path().join("mcp_key_manager")).unwrap();
    std::fs::copy("tests/data/ok_legacy_store.json", e.vault()).unwrap();
    let mut args = vec!["import-legacy"];
    args.extend(WEAK);
    e.cmd().args(&args).assert().success();
    e
}

#[test]
fn create_with_every_long_flag() {
    let e = Env::with_vault();
    let out = e
        .cmd()
        .args([
            "create",
            "Production Key",
            "--description",
            "Key for production MCP server",
            "--expires-in-days",
            "90",
            "--use-in-env",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    let env = e.read_env();
    let key = env
        .lines()
        .find_map(|l| l.strip_prefix("MCP_API_KEY="))
        .expect("MCP_API_KEY written");
    assert!(env.contains("API_KEY_REQUIRED=true"));
    assert!(stdout.contains(key), "create prints the key once");
    assert!(stdout.contains("Store this key now"));
    let v = e.open_vault();
    let k = &v.keys()[0];
    assert_eq!(k.name, "Production Key");
    assert_eq!(k.description, "Key for production MCP server");
    let days = (k.expires_at.unwrap() - k.created_at).num_days();
    assert_eq!(days, 90);
    assert_eq!(k.secret.expose(), key);
}

#[test]
fn list_active_only() {
    let e = Env::with_vault();
    let (a, _) = e.create("alive", &[]);
    let (b, _) = e.create("dead", &[]);
    e.cmd().args(["revoke", &b]).assert().success();
    e.cmd()
        .args(["list", "--active-only"])
        .assert()
        .success()
        .stdout(predicate::str::contains(&a).and(predicate::str::contains(&b).not()));
    e.cmd()
        .args(["list", "-a"])
        .assert()
        .success()
        .stdout(predicate::str::contains(&b).not());
    e.cmd()
        .args(["list"])
        .assert()
        .success()
        .stdout(predicate::str::contains(&b).and(predicate::str::contains("revoked")));
}

#[test]
fn view_revoke_use_delete_the_guides_id() {
    let e = imported();
    let id = "fd5c5b5177095c73";
    e.cmd()
        .args(["view", id])
        .assert()
        .success()
        .stdout(predicate::str::contains("Production Key").and(predicate::str::contains("active")));
    e.cmd().args(["use", id]).assert().success();
    assert!(e
        .read_env()
        .contains(&format!("MCP_API_KEY={}", "a3".repeat(32))));
    e.cmd().args(["revoke", id]).assert().success();
    let v = e.open_vault();
    assert!(v.keys()[v.find(id).unwrap()].revoked_at.is_some());
    e.cmd().args(["delete", id]).assert().success();
    assert!(e.open_vault().find(id).is_err());
}

#[test]
fn enable_requirement_needs_no_vault_and_no_passphrase() {
    let e = Env::new();
    std::fs::write(e.env_file(), "PORT=8000\nAPI_KEY_REQUIRED=false\n").unwrap();
    e.bare().arg("enable-requirement").assert().success();
    assert_eq!(e.read_env(), "PORT=8000\nAPI_KEY_REQUIRED=true\n");
    assert!(!e.vault().exists());
}

#[test]
fn short_flags_work_as_in_the_old_tool() {
    let e = Env::with_vault();
    e.cmd()
        .args(["create", "short", "-d", "desc", "-e", "0", "-u"])
        .assert()
        .success();
    let v = e.open_vault();
    assert_eq!(v.keys()[0].expires_at, None, "-e 0 means never");
    assert_eq!(v.keys()[0].description, "desc");
    assert!(e.read_env().contains("MCP_API_KEY=mkm_"));
    e.cmd().args(["list", "-a", "-k"]).assert().success();
}
