//! `scan`: keys of this tool found in files and in git history, judged against the vault
//! or a verifier file, never printed beyond what `list -k` shows; exit 1 when one is live.

use std::process::Command as StdCommand;

use crate::common::*;
use serde_json::Value;

fn scan(e: &Env, args: &[&str]) -> (i32, Value, String) {
    let out = e
        .cmd()
        .arg("scan")
        .args(args)
        .arg("--json")
        .output()
        .unwrap();
    let all = all_output(&out);
    let v = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.code().unwrap(), v, all)
}

fn git(dir: &std::path::Path, args: &[&str]) {
    let ok = StdCommand::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@example.invalid"])
        .args(args)
        .output()
        .expect("git")
        .status
        .success();
    assert!(ok, "git {args:?}");
}

#[test]
fn a_live_key_in_a_file_is_found_judged_and_never_printed() {
    let e = Env::with_vault();
    let (_, live) = e.create("live", &[]);
    let (revoked_id, revoked) = e.create("gone", &[]);
    e.cmd().args(["revoke", &revoked_id]).assert().success();
    let dir = e.path().join("configs");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(
        dir.join("app.env"),
        format!("# config\nMCP_API_KEY={live}\nOLD={revoked}\nNOT_A_KEY=mkm_0123\n"),
    )
    .unwrap();
    std::fs::write(
        dir.join("blob.bin"),
        [b"\0\0".as_slice(), live.as_bytes()].concat(),
    )
    .unwrap();
    let (code, v, all) = scan(&e, &["configs"]);
    assert_eq!(code, 1, "{all}");
    assert!(
        !all.contains(&live) && !all.contains(&revoked),
        "a key was printed"
    );
    let finds = v["finds"].as_array().unwrap();
    assert_eq!(finds.len(), 2, "{v}");
    assert_eq!(finds[0]["code"], "VALID");
    assert_eq!(finds[0]["live"], true);
    assert_eq!(finds[0]["line"], 2);
    assert!(finds[0]["path"].as_str().unwrap().ends_with("app.env"));
    assert_eq!(finds[1]["code"], "REVOKED");
    assert_eq!(finds[1]["live"], false);
    assert_eq!(v["files"], 1, "the binary file is not read: {v}");

    // Only the revoked key left: nothing live, exit 0.
    std::fs::write(dir.join("app.env"), format!("OLD={revoked}\n")).unwrap();
    let (code, _, all) = scan(&e, &["configs"]);
    assert_eq!(code, 0, "{all}");
}

#[test]
fn a_key_in_an_old_commit_is_found_with_its_commit() {
    let e = Env::with_vault();
    let (id, live) = e.create("live", &[]);
    let repo = e.path().join("repo");
    std::fs::create_dir(&repo).unwrap();
    git(&repo, &["init", "-q"]);
    std::fs::write(repo.join("README"), "nothing here\n").unwrap();
    std::fs::write(
        repo.join("deploy.sh"),
        format!("#!/bin/sh\n\ncurl -H 'X-API-Key: {live}' x\n"),
    )
    .unwrap();
    git(&repo, &["add", "."]);
    git(&repo, &["commit", "-q", "-m", "deploy"]);
    std::fs::remove_file(repo.join("deploy.sh")).unwrap();
    git(&repo, &["commit", "-q", "-am", "oops"]);

    let (code, v, all) = scan(&e, &["repo"]);
    assert_eq!(code, 0, "the work tree holds no key: {all}");
    assert_eq!(v["finds"].as_array().unwrap().len(), 0);

    let (code, v, all) = scan(&e, &["repo", "--git"]);
    assert_eq!(code, 1, "{all}");
    assert!(!all.contains(&live));
    let f = &v["finds"][0];
    assert_eq!(f["path"], "deploy.sh", "{v}");
    assert_eq!(f["line"], 3);
    assert_eq!(f["key_id"], id.as_str());
    assert_eq!(f["commit"].as_str().unwrap().len(), 12);
    assert_eq!(v["commits"], 2);
}

#[test]
fn ignored_files_are_skipped_unless_asked() {
    let e = Env::with_vault();
    let (_, live) = e.create("live", &[]);
    let repo = e.path().join("repo");
    std::fs::create_dir(&repo).unwrap();
    git(&repo, &["init", "-q"]);
    std::fs::write(repo.join(".gitignore"), ".env\n").unwrap();
    std::fs::write(repo.join(".env"), format!("MCP_API_KEY={live}\n")).unwrap();
    let (code, _, all) = scan(&e, &["repo"]);
    assert_eq!(code, 0, "{all}");
    let (code, v, all) = scan(&e, &["repo", "--no-ignore"]);
    assert_eq!(code, 1, "{all}");
    assert_eq!(v["finds"][0]["code"], "VALID");
}

/// Without a vault or a verifier a well-formed key cannot be judged: it counts as live.
/// A format-2 key with a typo is malformed by its checksum alone.
#[test]
fn without_a_vault_keys_are_unchecked_and_typos_are_malformed() {
    let maker = Env::with_vault();
    let (_, key) = maker.create("k", &[]);
    let e = Env::new();
    let mut typo = key.clone().into_bytes();
    let last = typo.len() - 10;
    typo[last] = if typo[last] == b'a' { b'b' } else { b'a' };
    let typo = String::from_utf8(typo).unwrap();
    std::fs::write(e.path().join("typo.txt"), format!("{typo}\n")).unwrap();
    let (code, v, all) = scan(&e, &["typo.txt"]);
    assert_eq!(code, 0, "{all}");
    assert_eq!(v["finds"][0]["code"], "MALFORMED", "{v}");
    std::fs::write(e.path().join("key.txt"), format!("{key}\n")).unwrap();
    let (code, v, all) = scan(&e, &["key.txt"]);
    assert_eq!(code, 1, "{all}");
    assert_eq!(v["finds"][0]["code"], "UNCHECKED", "{v}");
}
