//! Regressions from the second independent security review (issue 11): each test pins one
//! finding and failed before its fix. Item 1 (env files read as the loaders read them) and
//! item 13 (timing) have their own suites.

use crate::common::*;
use predicates::prelude::*;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::process::{Command, Stdio};

/// A vault imported from a plaintext store holding these (id, key_value, name) records.
fn imported(records: &[(&str, &str, &str)]) -> Env {
    let e = Env::new();
    let mut store = serde_json::Map::new();
    for (id, key, name) in records {
        store.insert(
            id.to_string(),
            serde_json::json!({"key_id": id, "key_value": key, "name": name,
                "created_at": "2026-01-01T00:00:00", "is_active": true,
                "permissions": ["generate"], "metadata": {}}),
        );
    }
    std::fs::create_dir_all(e.vault().parent().unwrap()).unwrap();
    std::fs::write(e.vault(), serde_json::to_vec(&store).unwrap()).unwrap();
    e.cmd().arg("import-legacy").args(WEAK).assert().success();
    e
}

/// Item 2: an export that unlocked an older state cannot replace a newer verifier. The
/// exporter is held at its passphrase prompt (a pseudo-terminal) while another process
/// revokes the key and publishes; once it gets the passphrase it must not write the key
/// back as active.
#[test]
fn a_slow_export_never_resurrects_a_revoked_key() {
    let e = Env::with_vault();
    let (id, key) = e.create("k", &[]);
    e.cmd()
        .args(["publish", "verifier.json"])
        .assert()
        .success();
    // The exporter reads the passphrase from the terminal that `script` gives it, whose
    // input is our pipe: it waits at the prompt until we write.
    let cmd = format!("{} export-verifier --out verifier.json", bin().display());
    let mut exporter = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .current_dir(e.path())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    e.cmd().args(["revoke", &id]).assert().success();
    use std::io::Write;
    let mut answer = exporter.stdin.take().unwrap();
    writeln!(answer, "{PASS}").unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let status = loop {
        if let Some(s) = exporter.try_wait().unwrap() {
            break s;
        }
        if std::time::Instant::now() > deadline {
            let _ = exporter.kill();
            panic!("the exporter did not finish in 30 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    drop(answer);
    assert!(status.success() || status.code() == Some(1), "{status:?}");
    let out = e
        .cmd()
        .args(["verify", "--verifier", "verifier.json"])
        .write_stdin(format!("{key}\n"))
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("REVOKED"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// Item 3: a planted lock-file symlink is not followed (root would create its target).
#[test]
fn a_planted_lock_symlink_is_refused_and_not_followed() {
    let e = Env::with_vault();
    let target = e.path().join("created-by-root");
    symlink(&target, e.path().join("mcp_key_manager/keys.json.lock")).unwrap();
    e.cmd()
        .args(["create", "k"])
        .assert()
        .code(5)
        .stderr(predicate::str::contains("symbolic link"));
    assert!(!target.exists(), "the lock symlink was followed");
}

/// Item 3: a key is never written into a file another user owns in a directory others
/// can write (they may have planted it to read the key).
#[test]
fn a_foreign_env_file_in_a_shared_directory_gets_no_key() {
    if !is_root() {
        // Only root can make a file owned by another user; as any user, a file we own
        // in a shared directory is written normally.
        return;
    }
    let e = Env::with_vault();
    let shared = e.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let planted = shared.join(".env");
    std::fs::write(&planted, "").unwrap();
    std::os::unix::fs::chown(&planted, Some(65534), Some(65534)).unwrap();
    e.cmd()
        .args(["create", "prod", "-u", "--env-file", "shared/.env"])
        .assert()
        .code(5)
        .stderr(predicate::str::contains("belongs to user 65534"));
    assert_eq!(std::fs::read(&planted).unwrap(), b"");
    assert!(
        e.open_vault().keys().is_empty(),
        "refused before the key was made"
    );
}

/// Item 4: a pasted key is never echoed, whatever the command, legacy keys included.
#[test]
fn a_pasted_key_is_never_echoed() {
    let e = imported(&[("legacy01", "changeme-api-key", "old")]);
    let (_, modern) = e.create("new", &[]);
    for key in [modern.as_str(), "changeme-api-key"] {
        for cmd in ["history", "view", "revoke", "delete", "use", "rotate"] {
            let out = e.cmd().args([cmd, key]).output().unwrap();
            let all = all_output(&out);
            assert!(!out.status.success(), "{cmd}");
            assert!(!all.contains(key), "{cmd} echoed the key: {all}");
        }
    }
}

/// Item 5: an imported id that starts with `mcp_` stays reachable by every command.
#[test]
fn an_imported_mcp_prefixed_id_is_reachable() {
    let key = "Zq7vL2pX9mK4wR8tY1nB6cD3fG5hJ0sA";
    let e = imported(&[("mcp_prod_server_key_01", key, "prod")]);
    let id = "mcp_prod_server_key_01";
    e.cmd().args(["view", id]).assert().success();
    e.cmd().args(["use", id]).assert().success();
    e.cmd().args(["check"]).assert().code(predicate::ne(2));
    e.cmd()
        .args(["rotate", id, "--grace-days", "1"])
        .assert()
        .success();
    e.cmd().args(["revoke", id]).assert().success();
    e.cmd().args(["history", id]).assert().success();
    e.cmd().args(["delete", id, "--yes"]).assert().success();
}

/// Item 6: writable by others is an error for `check`, and `use` does not keep a mode
/// that lets others write the env file.
#[test]
fn files_writable_by_others_fail_the_check_and_lose_the_write_bits() {
    let e = Env::with_vault();
    let (id, _) = e.create("k", &["-u"]);
    e.cmd().arg("check").assert().success();
    let mode = |p: &std::path::Path, m: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap()
    };
    mode(&e.vault(), 0o620);
    let v = e.cmd().args(["check", "--json"]).output().unwrap();
    assert_eq!(v.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&v.stdout).unwrap();
    assert!(v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["code"] == "VAULT_PERMISSIONS" && f["severity"] == "error"));
    mode(&e.vault(), 0o600);
    mode(e.vault().parent().unwrap(), 0o777);
    e.cmd().arg("check").assert().code(1);
    mode(e.vault().parent().unwrap(), 0o700);
    mode(&e.env_file(), 0o622);
    e.cmd().arg("check").assert().code(1);
    e.cmd().args(["use", &id]).assert().success();
    let m = std::fs::metadata(e.env_file())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(m, 0o600);
}

/// Item 7: with stdout closed, `create -u` still writes the env file (first), and the lost
/// key is reported, never turned into success.
#[test]
fn create_with_a_closed_stdout_writes_the_env_file_and_fails() {
    let e = Env::with_vault();
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = Command::new(bin())
        .current_dir(e.path())
        .env_clear()
        .env("MCP_KEY_VAULT_PASSPHRASE", PASS)
        .args(["create", "k", "-u"])
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("use") && err.contains("--print"), "{err}");
    let v = e.open_vault();
    let k = &v.keys()[0];
    assert!(e.read_env().contains(k.secret.expose()));
    assert!(v.events().iter().any(|ev| ev.action == "use"));
}

/// Item 8: `use` racing `revoke` never leaves a revoked key in the env file unannounced:
/// either `use` refused, or `revoke` saw the key in the env file and said so.
#[test]
fn use_racing_revoke_never_leaves_a_silent_revoked_key() {
    let e = Env::with_vault();
    for _ in 0..6 {
        let (id, key) = e.create("k", &[]);
        let use_ = Command::new(bin())
            .current_dir(e.path())
            .env_clear()
            .env("MCP_KEY_VAULT_PASSPHRASE", PASS)
            .args(["use", &id])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let revoke = e.cmd().args(["revoke", &id, "--json"]).output().unwrap();
        let used = use_.wait_with_output().unwrap();
        assert!(revoke.status.success());
        let r: serde_json::Value = serde_json::from_slice(&revoke.stdout).unwrap();
        if e.read_env().contains(&key) {
            assert!(used.status.success());
            assert_eq!(
                r["in_env_file"], true,
                "a revoked key is served and nobody said so"
            );
        }
    }
}

/// Item 9: paths in messages are escaped like names: a planted env-file symlink whose
/// target holds OSC 52 / OSC 0 sequences reaches no terminal raw.
#[test]
fn paths_in_messages_are_escaped() {
    let e = Env::with_vault();
    let (id, _) = e.create("k", &[]);
    let evil = "x\x1b]52;c;SGVsbG8=\x07\x1b]0;owned\x07";
    symlink(e.path().join(evil), e.env_file()).unwrap();
    for args in [
        vec!["use", &id],
        vec!["create", "j", "-u"],
        vec!["enable-requirement"],
        vec!["verify", "--from-env"],
        vec!["check"],
    ] {
        let out = e.cmd().args(&args).output().unwrap();
        let all = all_output(&out);
        assert!(
            !all.contains('\x1b') && !all.contains('\x07'),
            "{args:?}: {all:?}"
        );
    }
}

/// Item 10: guessable imported keys are named at import and by `check`.
#[test]
fn guessable_legacy_keys_are_reported() {
    let e = Env::new();
    std::fs::create_dir_all(e.vault().parent().unwrap()).unwrap();
    let store = serde_json::json!({"legacy01": {"key_id": "legacy01", "key_value": "changeme-api-key",
        "name": "old", "created_at": "2026-01-01T00:00:00", "is_active": true}});
    std::fs::write(e.vault(), store.to_string()).unwrap();
    e.cmd()
        .arg("import-legacy")
        .args(WEAK)
        .assert()
        .success()
        .stderr(predicate::str::contains("legacy01 is guessable"));
    let out = e.cmd().args(["check", "--json"]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["code"] == "WEAK_KEY" && f["key_id"] == "legacy01"));
}

/// Item 11: JSON output escapes C1 controls and bidi overrides, as human output does.
#[test]
fn json_output_escapes_c1_and_bidi() {
    let e = Env::with_vault();
    e.create("k", &[]);
    e.edit_vault(|v| v.payload_mut_unchecked().keys[0].name = "a\u{9b}2J\u{202e}b".into());
    for args in [vec!["list", "--json"], vec!["history", "--json"]] {
        let out = e.cmd().args(&args).output().unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(
            !text.contains('\u{9b}') && !text.contains('\u{202e}'),
            "{text}"
        );
        assert!(args[0] != "list" || text.contains("\\u009b"), "{text}");
    }
}

/// Item 12: the variable and the file give the same passphrase for the same bytes.
#[test]
fn passphrase_sources_agree_on_a_trailing_newline() {
    let e = Env::new();
    e.bare()
        .env("MCP_KEY_VAULT_PASSPHRASE", "hunter2 is long enough\n")
        .args(["init"])
        .args(WEAK)
        .assert()
        .success();
    std::fs::write(e.path().join("pw"), "hunter2 is long enough\n").unwrap();
    std::fs::set_permissions(e.path().join("pw"), std::fs::Permissions::from_mode(0o644)).unwrap();
    e.bare()
        .args(["--passphrase-file", "pw", "list"])
        .assert()
        .success()
        .stderr(predicate::str::contains("readable by group or others"));
    e.bare()
        .env("MCP_KEY_VAULT_PASSPHRASE", "hunter2 is long enough")
        .arg("list")
        .assert()
        .success();
}

/// Item 1, end to end: every attack file of the corpus fails `check` with ENV_AMBIGUOUS
/// and `use` leaves it untouched (or cures it); wherever `use` and then `check` pass, python-dotenv
/// itself loads exactly the key `check` vouched for, and API_KEY_REQUIRED=true.
#[test]
fn check_passes_only_where_python_dotenv_loads_the_checked_key() {
    let python = std::env::var("MCP_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let has_dotenv = Command::new(&python)
        .args(["-c", "import dotenv"])
        .status()
        .is_ok_and(|s| s.success());
    let why = format_args!("python-dotenv is not installed for {python} (MCP_TEST_PYTHON)");
    if !tool_or_skip("the python-dotenv check", has_dotenv, why) {
        return;
    }
    let e = Env::with_vault();
    let (id, key) = e.create("served", &["-e", "0"]);
    let mut passed = 0;
    for entry in std::fs::read_dir("tests/data/envfiles").unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.ends_with(".env") {
            continue;
        }
        let original = std::fs::read(&path).unwrap();
        std::fs::write(e.env_file(), &original).unwrap();
        if name.starts_with("attack-") {
            let out = e.cmd().args(["check", "--json"]).output().unwrap();
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            let codes: Vec<&str> = v["findings"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|f| f["code"].as_str())
                .collect();
            assert!(codes.contains(&"ENV_AMBIGUOUS"), "{name}: {codes:?}");
        }
        let used = e.cmd().args(["use", &id]).output().unwrap();
        if name.starts_with("attack-") && !used.status.success() {
            // Refused, untouched; a file whose only fault is the value `use` replaces
            // may instead be cured, and is then held to the same standard below.
            assert_eq!(used.status.code(), Some(1), "{name}");
            assert_eq!(std::fs::read(e.env_file()).unwrap(), original, "{name}");
            continue;
        }
        assert!(used.status.success(), "{name}: {}", all_output(&used));
        if !e
            .cmd()
            .args(["check", "--warn-days", "0"])
            .output()
            .unwrap()
            .status
            .success()
        {
            continue;
        }
        passed += 1;
        let loaded = Command::new(&python)
            .args([
                "-c",
                "import dotenv,json,sys; print(json.dumps(dotenv.dotenv_values(sys.argv[1])))",
            ])
            .arg(e.env_file())
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&loaded.stdout).unwrap();
        assert_eq!(v["MCP_API_KEY"], key.as_str(), "{name}");
        assert_eq!(v["API_KEY_REQUIRED"], "true", "{name}");
    }
    assert!(passed >= 4, "only {passed} plain files passed check");
}

// ---- the independent review of this turn's own changes ----

/// A symlink another user planted in a shared directory is not followed: root's `use`
/// would otherwise write the key into a file of their choosing.
#[test]
fn a_link_planted_by_another_user_in_a_shared_directory_is_not_followed() {
    if !is_root() {
        return; // only root can make a link owned by another user
    }
    let e = Env::with_vault();
    let (id, key) = e.create("k", &[]);
    let shared = e.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let loot = e.path().join("loot.env");
    std::fs::write(&loot, "X=1\n").unwrap();
    let link = shared.join(".env");
    symlink(&loot, &link).unwrap();
    // lchown: the link itself belongs to the other user.
    let c = std::ffi::CString::new(link.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path; lchown does not follow the link.
    assert_eq!(unsafe { libc::lchown(c.as_ptr(), 65534, 65534) }, 0);
    e.cmd()
        .args(["use", &id, "--env-file", "shared/.env"])
        .assert()
        .code(5)
        .stderr(predicate::str::contains("planted"));
    assert_eq!(std::fs::read_to_string(&loot).unwrap(), "X=1\n");
    assert!(!std::fs::read_to_string(&loot).unwrap().contains(&key));
}

/// `API_KEY_REQUIRED=" True "` reaches the server with its blanks; `check` must not call
/// it true.
#[test]
fn a_requirement_with_blanks_is_not_true() {
    let e = Env::with_vault();
    let (_, key) = e.create("k", &[]);
    std::fs::write(
        e.env_file(),
        format!("MCP_API_KEY={key}\nAPI_KEY_REQUIRED=\" True \"\n"),
    )
    .unwrap();
    let out = e.cmd().args(["check", "--json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["code"] == "REQUIREMENT_DISABLED"),
        "{v}"
    );
}

/// A published path re-pointed at a file that is not a verifier leaves no lock file next
/// to that file.
#[test]
fn a_repointed_published_path_leaves_no_lock_beside_its_target() {
    let e = Env::with_vault();
    e.create("k", &[]);
    e.cmd()
        .args(["publish", "pub/verifier.json"])
        .assert()
        .success();
    let victim = e.path().join("victim");
    std::fs::write(&victim, "root:x:0:0::/root:/bin/sh\n").unwrap();
    std::fs::remove_file(e.path().join("pub/verifier.json")).unwrap();
    symlink(&victim, e.path().join("pub/verifier.json")).unwrap();
    e.cmd().args(["create", "j"]).assert().code(5);
    assert!(
        !e.path().join("victim.lock").exists(),
        "a lock was made beside the victim"
    );
    assert_eq!(
        std::fs::read_to_string(&victim).unwrap(),
        "root:x:0:0::/root:/bin/sh\n"
    );
}

/// A `--then` hook is shown where people look (`publish --list`, `history`), and one that
/// hangs is stopped instead of holding the vault's lock.
#[test]
fn then_hooks_are_shown_and_bounded() {
    let e = Env::with_vault();
    e.create("k", &[]);
    e.cmd()
        .args(["publish", "v.json", "--then", "sleep 30"])
        .env("MCP_THEN_TIMEOUT", "1")
        .assert()
        .code(5);
    let list = e.cmd().args(["publish", "--list"]).output().unwrap();
    assert!(String::from_utf8_lossy(&list.stdout).contains("then: sleep 30"));
    let history = e.cmd().arg("history").output().unwrap();
    assert!(String::from_utf8_lossy(&history.stdout).contains("then: sleep 30"));
    let t = std::time::Instant::now();
    let out = e
        .cmd()
        .args(["create", "j"])
        .env("MCP_THEN_TIMEOUT", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5));
    assert!(String::from_utf8_lossy(&out.stderr).contains("was stopped"));
    assert!(
        t.elapsed() < std::time::Duration::from_secs(20),
        "{:?}",
        t.elapsed()
    );
}

/// A new user's walk through the README: rotating the key the env file holds saves twice
/// (the successor first, then the use once the env file names it) but republishes once,
/// so a `--then` hook runs once per command, and the output names each file once.
#[test]
fn a_change_saved_in_two_steps_republishes_once() {
    let e = Env::with_vault();
    let (id, _) = e.create("served", &["-u"]);
    let count = e.path().join("count");
    let then = format!("echo x >> {}", count.display());
    e.cmd()
        .args(["publish", "a.json", "--then", &then])
        .assert()
        .success();
    e.cmd().args(["publish", "b.json"]).assert().success();
    std::fs::write(&count, "").unwrap();
    let out = e.json(&["rotate", &id, "--json"]);
    assert_eq!(out["env_file_updated"], true);
    assert_eq!(
        out["verifiers_updated"].as_array().unwrap().len(),
        2,
        "{out}"
    );
    assert_eq!(std::fs::read_to_string(&count).unwrap().lines().count(), 1);
    e.create("client", &["-u"]);
    assert_eq!(std::fs::read_to_string(&count).unwrap().lines().count(), 2);
}
