//! `publish --then`: the command is kept in the user's own configuration (`hooks.json`),
//! never in the shared vault; it runs only for the user who added it; one an older release
//! kept in the vault is never run, is reported once, and leaves the vault with the next
//! change; `publish --list` says where each command is kept; `unpublish` removes it.

use crate::common::*;
use mcp_key_vault::Published;
use serde_json::Value;
use std::path::{Path, PathBuf};

const FILE: &str = "srv/verifier.json";

/// The configuration directory of the tests' user "A" (what `Env::cmd` sets).
fn config_a(e: &Env) -> PathBuf {
    e.config.path().to_path_buf()
}

/// The binary as another user "B" of the same vault: another configuration directory.
fn as_b(e: &Env) -> assert_cmd::Command {
    let mut c = e.cmd();
    c.env("MCP_KEY_MANAGER_CONFIG_DIR", e.path().join(".config-b"));
    c
}

/// A command appending a line to `marker`.
fn mark(marker: &Path) -> String {
    format!("echo ran >> '{}'", marker.display())
}

fn runs(marker: &Path) -> usize {
    std::fs::read_to_string(marker).map_or(0, |s| s.lines().count())
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Where the vault records `FILE` (absolute, its directory resolved).
fn published_path(e: &Env) -> PathBuf {
    std::fs::canonicalize(e.path()).unwrap().join(FILE)
}

/// A hook runs as whoever changes the vault next only if that user added it: a former
/// member's command cannot ride along in a shared vault.
#[test]
fn a_hook_runs_only_for_the_user_who_added_it() {
    let e = Env::with_vault();
    let marker = e.path().join("marker");
    e.cmd()
        .args(["publish", FILE, "--then", &mark(&marker)])
        .assert()
        .success();
    assert_eq!(runs(&marker), 1, "A's publish runs A's command");
    assert_eq!(e.open_vault().published()[0].then, None, "not in the vault");

    let out = as_b(&e).args(["create", "b", "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(runs(&marker), 1, "B's change ran A's command");
    let verifier: Value =
        serde_json::from_slice(&std::fs::read(e.path().join(FILE)).unwrap()).unwrap();
    assert_eq!(
        verifier["revision"].as_u64(),
        Some(e.open_vault().revision()),
        "B's change still republishes"
    );

    e.create("a", &[]);
    assert_eq!(runs(&marker), 2, "A's next change runs it");
}

/// A vault written by an older release, with a command in its publish record: read, the
/// command never run, said once, and gone from the vault after the next save.
#[test]
fn a_hook_kept_in_the_vault_is_never_run_and_leaves_with_the_next_change() {
    let e = Env::with_vault();
    let marker = e.path().join("marker");
    let cmd = format!("touch '{}'", marker.display());
    e.edit_vault(|v| {
        v.publish(
            Published {
                path: published_path(&e),
                names: false,
                then: Some(cmd.clone()),
            },
            chrono::Utc::now(),
        );
    });

    let list = e.json(&["publish", "--list", "--json"]);
    let p = &list["published"][0];
    assert_eq!(p["then"], Value::Null, "{list}");
    assert_eq!(p["hooks"][0]["command"], cmd.as_str(), "{list}");
    assert_eq!(p["hooks"][0]["runs"], false, "{list}");
    let vault = std::fs::canonicalize(e.vault()).unwrap();
    assert_eq!(
        p["hooks"][0]["source"],
        vault.display().to_string(),
        "{list}"
    );

    let out = e.cmd().args(["create", "k"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(err.matches("carries a --then command").count(), 1, "{err}");
    assert!(
        err.contains(&cmd) && err.contains("publish PATH --then CMD"),
        "{err}"
    );
    assert!(!marker.exists(), "the vault's command ran");
    assert!(e.path().join(FILE).exists(), "the file is still published");

    let published = e.open_vault().published().to_vec();
    assert_eq!(published.len(), 1);
    assert_eq!(published[0].then, None, "the save kept the command");

    let out = e.cmd().args(["create", "j"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("carries"), "said twice");
    assert!(!marker.exists());
}

/// `publish --list` shows each command with the file it is kept in; another user sees none.
#[test]
fn publish_list_shows_each_hook_and_where_it_is_kept() {
    let e = Env::with_vault();
    e.cmd()
        .args(["publish", FILE, "--then", "true"])
        .assert()
        .success();
    let hooks_file = config_a(&e).join("hooks.json");
    let list = e.json(&["publish", "--list", "--json"]);
    let p = &list["published"][0];
    assert_eq!(p["then"], "true", "{list}");
    assert_eq!(
        p["hooks"],
        serde_json::json!([{
            "command": "true",
            "source": hooks_file.display().to_string(),
            "runs": true
        }]),
        "{list}"
    );
    let human = e.cmd().args(["publish", "--list"]).output().unwrap();
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(
        text.contains("then: true") && text.contains(&hooks_file.display().to_string()),
        "{text}"
    );

    let file: Value = serde_json::from_slice(&std::fs::read(&hooks_file).unwrap()).unwrap();
    let vault = std::fs::canonicalize(e.vault()).unwrap();
    let target = published_path(&e);
    assert_eq!(
        file["vaults"][vault.to_str().unwrap()][target.to_str().unwrap()],
        "true",
        "{file}"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&hooks_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o077, 0, "hooks.json is {mode:o}");

    let out = as_b(&e)
        .args(["publish", "--list", "--json"])
        .output()
        .unwrap();
    let theirs: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(theirs["published"][0]["then"], Value::Null, "{theirs}");
    assert_eq!(theirs["published"][0]["hooks"], serde_json::json!([]));
}

/// `unpublish` removes the user's command; publishing the file again runs nothing.
#[test]
fn unpublish_removes_the_users_hook() {
    let e = Env::with_vault();
    let marker = e.path().join("marker");
    e.cmd()
        .args(["publish", FILE, "--then", &mark(&marker)])
        .assert()
        .success();
    assert_eq!(runs(&marker), 1);
    let out = e.json(&["unpublish", FILE, "--json"]);
    assert_eq!(out["then_removed"], true, "{out}");
    let file: Value =
        serde_json::from_slice(&std::fs::read(config_a(&e).join("hooks.json")).unwrap()).unwrap();
    assert_eq!(file["vaults"], serde_json::json!({}), "{file}");

    e.cmd().args(["publish", FILE]).assert().success();
    e.create("k", &[]);
    assert_eq!(runs(&marker), 1, "the removed command ran");
}

/// A publish refused before it is saved leaves the user's hooks as they were.
#[test]
fn a_refused_publish_leaves_the_hooks_as_they_were() {
    let e = Env::with_vault();
    let path = e.path().join(FILE);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(
        &path,
        r#"{"format": "mcp-key-verifier", "version": 1, "revision": 999, "keys": []}"#,
    )
    .unwrap();
    let out = e
        .cmd()
        .args(["publish", FILE, "--then", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let kept = std::fs::read(config_a(&e).join("hooks.json"))
        .ok()
        .map(|b| serde_json::from_slice::<Value>(&b).unwrap());
    assert!(
        kept.as_ref()
            .is_none_or(|f| f["vaults"] == serde_json::json!({})),
        "{kept:?}"
    );
}

/// `--then ''` is refused: there is no empty command to run.
#[test]
fn an_empty_then_is_refused() {
    let e = Env::with_vault();
    let out = e
        .cmd()
        .args(["publish", FILE, "--then", " "])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--then needs a command"));
    assert!(!e.path().join(FILE).exists());
}
