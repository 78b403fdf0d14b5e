//! `use`, `use --print`, `create -u`, and the env file's treatment.

use crate::common::*;
use chrono::{Duration, Utc};
use predicates::prelude::*;
use std::os::unix::fs::PermissionsExt;

#[test]
fn use_writes_the_key_and_the_requirement() {
    let e = Env::with_vault();
    let (id, key) = e.create("u", &[]);
    std::fs::write(e.env_file(), "# settings\nPORT=8000\n").unwrap();
    e.cmd().args(["use", &id[..6]]).assert().success();
    assert_eq!(
        e.read_env(),
        format!("# settings\nPORT=8000\nMCP_API_KEY={key}\nAPI_KEY_REQUIRED=true\n")
    );
}

#[test]
fn use_print_writes_stdout_only() {
    let e = Env::with_vault();
    let (id, key) = e.create("p", &[]);
    e.cmd()
        .args(["use", &id, "--print"])
        .assert()
        .success()
        .stdout(format!("{key}\n"));
    assert!(!e.env_file().exists());
}

#[test]
fn use_refuses_revoked_and_expired_keys() {
    let e = Env::with_vault();
    let (r, _) = e.create("revoked", &[]);
    let (x, _) = e.create("expired", &[]);
    e.cmd().args(["revoke", &r]).assert().success();
    e.edit_vault(|v| {
        let i = v.find(&x).unwrap();
        v.payload_mut_unchecked().keys[i].expires_at = Some(Utc::now() - Duration::hours(1));
    });
    e.cmd()
        .args(["use", &r])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("is revoked"));
    e.cmd()
        .args(["use", &x, "--print"])
        .assert()
        .code(1)
        .stdout("")
        .stderr(predicate::str::contains("is expired"));
    assert!(!e.env_file().exists());
}

#[test]
fn new_env_file_is_0600_and_an_exposed_one_draws_a_warning() {
    let e = Env::with_vault();
    let (id, _) = e.create("m", &[]);
    e.cmd().args(["use", &id]).assert().success();
    let mode = std::fs::metadata(e.env_file())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    std::fs::set_permissions(e.env_file(), std::fs::Permissions::from_mode(0o644)).unwrap();
    e.cmd().args(["use", &id]).assert().success().stderr(
        predicate::str::contains("warning:")
            .and(predicate::str::contains("readable by group or others")),
    );
    // The file keeps its mode: a server running as another user may need to read it.
    let mode = std::fs::metadata(e.env_file())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o644);
}

#[test]
fn exposed_vault_draws_a_warning() {
    let e = Env::with_vault();
    std::fs::set_permissions(e.vault(), std::fs::Permissions::from_mode(0o644)).unwrap();
    e.cmd()
        .arg("list")
        .assert()
        .success()
        .stderr(predicate::str::contains("warning:").and(predicate::str::contains("chmod 600")));
}

#[test]
fn env_file_and_vault_paths_from_flags_and_variables() {
    let e = Env::new();
    std::fs::create_dir(e.path().join("conf")).unwrap();
    let out = e
        .cmd()
        .env("MCP_KEY_VAULT", "store/v.json")
        .env("MCP_ENV_FILE", "conf/app.env")
        .args(["create", "paths", "-u", "--quiet"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(e.path().join("store/v.json").exists());
    let env = std::fs::read_to_string(e.path().join("conf/app.env")).unwrap();
    assert!(env.contains(String::from_utf8_lossy(&out.stdout).trim()));
    e.cmd()
        .args(["--vault", "store/v.json", "list", "--json"])
        .assert()
        .success()
        .stdout(predicate::str::contains("paths"));
    e.cmd()
        .args(["enable-requirement", "--env-file", "other.env"])
        .assert()
        .success();
    assert_eq!(
        std::fs::read_to_string(e.path().join("other.env")).unwrap(),
        "API_KEY_REQUIRED=true\n"
    );
}

#[test]
fn use_and_enable_requirement_speak_json_without_the_key() {
    let e = Env::with_vault();
    let (id, key) = e.create("j", &[]);
    let v = e.json(&["use", &id, "--json"]);
    assert_eq!(v["id"], id.as_str());
    assert!(!v.to_string().contains(&key[21..]));
    let v = e.json(&["enable-requirement", "--json"]);
    assert_eq!(v["api_key_required"], true);
    e.cmd()
        .args(["use", &id, "--print", "--json"])
        .assert()
        .code(2);
}

#[test]
fn a_symlinked_vault_is_replaced_at_its_target() {
    let e = Env::new();
    std::fs::create_dir(e.path().join("secure")).unwrap();
    std::fs::create_dir(e.path().join("mcp_key_manager")).unwrap();
    std::os::unix::fs::symlink("../secure/keys.json", e.vault()).unwrap();
    e.create("linked", &[]);
    e.create("linked again", &["-p", "info", "-p", "info"]);
    assert!(std::fs::symlink_metadata(e.vault())
        .unwrap()
        .file_type()
        .is_symlink());
    let v = e.open_vault();
    assert_eq!(v.keys().len(), 2);
    assert_eq!(
        v.keys()[1].permissions,
        ["info"],
        "repeated -p is kept once"
    );
    assert!(e.path().join("secure/keys.json").is_file());
}

/// A key written into an env file that git would commit (inside a work tree, not ignored)
/// draws a warning that says how to ignore it; an ignored one draws none.
#[test]
fn an_env_file_git_would_commit_is_warned_about() {
    let git = |e: &Env, args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .current_dir(e.path())
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    };
    let e = Env::with_vault();
    if !tool_or_skip(
        "the git warning test",
        git(&e, &["--version"]),
        "no git on PATH",
    ) {
        return;
    }
    assert!(git(&e, &["init", "-q"]));
    let out = e.cmd().args(["create", "bot", "-u"]).output().unwrap();
    assert!(out.status.success(), "{}", all_output(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("is in a git work tree and not ignored")
            && err.contains("add `.env` to .gitignore"),
        "{err}"
    );
    std::fs::write(e.path().join(".gitignore"), ".env\n").unwrap();
    let (id, _) = e.create("other", &[]);
    let out = e.cmd().args(["use", &id]).output().unwrap();
    assert!(out.status.success(), "{}", all_output(&out));
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("git work tree"),
        "{}",
        all_output(&out)
    );
}
