//! The hostile-input catalogue: each input an attacker, a broken disk or
//! an old store can present, with the exit code and the words of the error it must get.

use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use super::util::{code, init_args, names, set_mode, stderr, unprivileged, write_sealed_payload};
use crate::common::{Env, WEAK};

/// Generous: these commands take well under a second; a hang must fail, not stall CI.
const TIMEOUT: Duration = Duration::from_secs(20);

fn run(c: &mut assert_cmd::Command) -> Output {
    c.timeout(TIMEOUT).output().expect("run the binary")
}

/// Asserts a documented failure: the exit code, an `error:` line with every one of
/// `words`, no panic or backtrace, no raw escape byte.
#[track_caller]
fn assert_fails(o: &Output, exit: i32, words: &[&str]) {
    let err = stderr(o);
    assert_eq!(code(o), exit, "exit code; stderr: {err}");
    assert!(
        err.starts_with("error: ") || err.contains("\nerror: "),
        "{err}"
    );
    for w in words {
        assert!(err.contains(w), "stderr lacks {w:?}: {err}");
    }
    assert!(
        !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
        "{err}"
    );
    assert!(!o.stderr.contains(&0x1b), "raw ESC in stderr: {err}");
}

// ---- control characters and terminal escapes ----

#[test]
fn control_characters_and_escapes_are_refused_at_input_with_exit_2() {
    let e = Env::with_vault();
    let before = fs::read(e.vault()).unwrap();
    let names = [
        "evil\x1b[31mred",
        "bell\x07",
        "two\nlines",
        "tab\there",
        "cr\rover",
        "del\x7f",
        "nul\0",
        "c1 csi\u{9b}2J",
        "bidi\u{202e}gnp.exe",
        "isolate\u{2066}x",
    ];
    for name in names {
        if name.contains('\0') {
            // The OS cannot pass a NUL in an argument; std refuses to spawn.
            assert!(e.cmd().args(["create", name]).output().is_err());
            continue;
        }
        let o = run(e.cmd().args(["create", name]));
        assert_fails(
            &o,
            2,
            &["the name contains control characters or terminal escape sequences; use plain text"],
        );
    }
    for desc in ["title \x1b]0;owned\x07", "crlf\r\n", "\u{9b}6n"] {
        let o = run(e.cmd().args(["create", "fine", "-d", desc]));
        assert_fails(
            &o,
            2,
            &["the description contains control characters or terminal escape sequences"],
        );
    }
    // Not UTF-8 at all: clap refuses before the tool runs.
    let o = run(e.cmd().arg("create").arg(OsStr::from_bytes(b"bad\xff")));
    assert_fails(&o, 2, &["invalid UTF-8"]);
    // Permissions are checked too.
    let (id, _) = e.create("ok", &[]);
    let after_create = fs::read(e.vault()).unwrap();
    let o = run(e.cmd().args(["grant", &id, "adm\x1bin"]));
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(!o.stderr.contains(&0x1b));
    assert_eq!(
        fs::read(e.vault()).unwrap(),
        after_create,
        "a refused grant wrote"
    );
    assert_ne!(before, after_create);

    // On a fresh directory a refused name creates no vault.
    let f = Env::new();
    let o = run(f.cmd().args(["create", "x\x1b[2J"]));
    assert_fails(&o, 2, &["control characters"]);
    assert!(!f.vault().exists() && !f.vault().parent().unwrap().exists());
}

/// What a store of the Python tool (or a hand-edited vault) may already hold.
const EVIL_NAME: &str = "\x1b]0;owned\x07\x1b[2J\u{9b}31mname\u{202e}txt";
const EVIL_DESC: &str = "line1\nline2\x1b[1A\r\x7f";

#[test]
fn stored_escapes_are_escaped_on_every_output() {
    let e = Env::with_vault();
    // Expiring soon, so `check` names them in a warning.
    e.create("one", &["-e", "3"]);
    e.create("two", &["-e", "3"]);
    e.edit_vault(|v| {
        for (n, k) in v.payload_mut_unchecked().keys.iter_mut().enumerate() {
            k.id = format!("abcd00000000000{n}").into();
            k.name = EVIL_NAME.into();
            k.description = EVIL_DESC.into();
            k.metadata
                .insert("note\x1b[7m".into(), serde_json::json!("\x1b[5mblink"));
        }
        for ev in v.payload_mut_unchecked().events.all_mut().iter_mut() {
            if ev.key_id.is_some() {
                ev.key_id = Some("abcd000000000000".into());
                ev.name = Some(EVIL_NAME.into());
                ev.detail = Some("\x1b[31mdetail".into());
            }
        }
    });
    let human: &[&[&str]] = &[
        &["list"],
        &["list", "-k"],
        &["list", "-a"],
        &["list", "--expiring", "10"],
        &["view", "abcd000000000000"],
        &["history"],
        &["history", "abcd000000000000"],
        &["check"],
        &["view", "abcd"], // ambiguous: the error lists the names
        &["delete", "abcd000000000001", "--yes"],
    ];
    for args in human {
        let o = run(e.cmd().args(*args));
        assert!(code(&o) <= 1, "{args:?}: {}", stderr(&o));
        let all = [&o.stdout[..], &o.stderr[..]].concat();
        let text = String::from_utf8(all.clone()).expect("UTF-8 output");
        assert!(!all.contains(&0x1b), "{args:?}: raw ESC in {text:?}");
        assert!(!text.contains('\r') && !text.contains('\x07') && !text.contains('\x7f'));
        assert!(
            !text.chars().any(|c| ('\u{80}'..='\u{9f}').contains(&c)
                || ('\u{202a}'..='\u{202e}').contains(&c)
                || ('\u{2066}'..='\u{2069}').contains(&c)),
            "{args:?}: C1 or bidi control in {text:?}"
        );
        assert!(
            text.contains("\\u{1b}"),
            "{args:?} shows the name escaped: {text}"
        );
    }
    // JSON escapes ESC itself (as \u001b) and gives the exact stored text back.
    for args in [
        &["list", "--json"][..],
        &["list", "-k", "--json"],
        &["view", "abcd000000000000", "--json"],
        &["history", "--json"],
        &["check", "--json"],
    ] {
        let o = run(e.cmd().args(args));
        assert!(code(&o) <= 1, "{args:?}: {}", stderr(&o));
        assert!(
            !o.stdout.contains(&0x1b) && !o.stderr.contains(&0x1b),
            "{args:?}"
        );
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
        let text = v.to_string();
        if args[0] != "check" {
            assert!(
                text.contains(&serde_json::to_string(EVIL_NAME).unwrap()),
                "{args:?} keeps the stored name exactly: {text}"
            );
        }
    }
}

// ---- size ----

#[test]
fn overlong_names_are_refused_with_exit_2() {
    let e = Env::with_vault();
    let ok = "n".repeat(256);
    e.create(&ok, &[]);
    let o = run(e.cmd().args(["create", &"n".repeat(257)]));
    assert_fails(&o, 2, &["the name is longer than 256 characters"]);
    let o = run(e.cmd().args(["create", "x", "-d", &"d".repeat(4097)]));
    assert_fails(&o, 2, &["the description is longer than 4096 characters"]);
    // The longest argument Linux passes (MAX_ARG_STRLEN is 128 KiB with the NUL).
    let start = Instant::now();
    let o = run(e.cmd().args(["create", &"n".repeat(128 * 1024 - 1)]));
    assert_fails(&o, 2, &["the name is longer than 256 characters"]);
    assert!(o.stderr.len() < 1024, "the error echoes the name");
    assert!(start.elapsed() < Duration::from_secs(5));
    // A 1 MB name cannot even reach the tool on Linux: execve refuses it (E2BIG).
    let mb = "n".repeat(1 << 20);
    match e.cmd().args(["create", &mb]).output() {
        Err(err) => assert_eq!(err.raw_os_error(), Some(libc::E2BIG), "{err}"),
        Ok(o) => assert_fails(&o, 2, &["the name is longer than 256 characters"]),
    }
    // So the 1 MB name arrives through an old store: the import refuses it, writes
    // nothing, and does not echo it.
    let f = Env::new();
    fs::create_dir_all(f.vault().parent().unwrap()).unwrap();
    let store = serde_json::json!({
        "0123456789abcdef": {
            "key_id": "0123456789abcdef",
            "key_value": "ab".repeat(32),
            "name": mb,
            "description": "",
            "created_at": "2025-01-01T00:00:00",
            "expires_at": null,
            "is_active": true,
            "permissions": ["info"],
            "metadata": {}
        }
    });
    let bytes = serde_json::to_vec(&store).unwrap();
    fs::write(f.vault(), &bytes).unwrap();
    let mut args = vec!["import-legacy"];
    args.extend(WEAK);
    let o = run(f.cmd().args(&args));
    assert_fails(
        &o,
        4,
        &[
            "record 0123456789abcdef",
            "longer than 256 characters",
            "nothing was written",
        ],
    );
    assert!(o.stderr.len() < 1024, "the error echoes the name");
    assert_eq!(fs::read(f.vault()).unwrap(), bytes, "the store was touched");
}

// ---- the env file ----

#[test]
fn invalid_utf8_in_the_env_file_is_kept_byte_for_byte() {
    let e = Env::with_vault();
    let (id, key) = e.create("k", &[]);
    fs::write(
        e.env_file(),
        // The last line is a comment: a bare line without `=` would be glued onto the
        // appended API_KEY_REQUIRED by Node's loader, which `use` now refuses as ambiguous.
        b"# caf\xe9 (latin-1)\nA=\xff\xfe\nMCP_API_KEY=\xc3\x28old\r\nB='\xc3\x28'\n#\xf0\x28\x8c\x28",
    )
    .unwrap();
    let o = run(e.cmd().args(["use", &id]));
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let want = [
        &b"# caf\xe9 (latin-1)\nA=\xff\xfe\nMCP_API_KEY="[..],
        key.as_bytes(),
        b"\r\nB='\xc3\x28'\n#\xf0\x28\x8c\x28\nAPI_KEY_REQUIRED=true\n",
    ]
    .concat();
    assert_eq!(
        fs::read(e.env_file()).unwrap(),
        want,
        "every other byte must survive"
    );
    let o = run(e.cmd().args(["verify", "--from-env"]));
    assert_eq!(code(&o), 0, "{}", stderr(&o));
}

#[test]
fn env_file_that_is_a_directory_is_refused_with_exit_5() {
    let e = Env::with_vault();
    let (id, _) = e.create("k", &[]);
    fs::create_dir(e.env_file()).unwrap();
    fs::write(e.env_file().join("inside"), "x").unwrap();
    for args in [
        &["use", &id][..],
        &["enable-requirement"],
        &["verify", "--from-env"],
    ] {
        let o = run(e.cmd().args(args));
        assert_fails(&o, 5, &[".env", "env file is not a regular file"]);
    }
    assert!(e.env_file().is_dir());
    assert_eq!(names(&e.env_file()), ["inside"]);
}

#[test]
fn env_file_that_is_a_dangling_symlink_is_refused_and_left_alone() {
    let e = Env::with_vault();
    let (id, _) = e.create("k", &[]);
    // A link into a directory that does not exist, and one to a missing file.
    for target in ["missing-dir/app.env", "missing.env"] {
        let _ = fs::remove_file(e.env_file());
        std::os::unix::fs::symlink(target, e.env_file()).unwrap();
        for args in [&["use", &id][..], &["enable-requirement"]] {
            let o = run(e.cmd().args(args));
            assert_fails(
                &o,
                5,
                &["cannot follow the link .env", "which does not exist"],
            );
            let meta = fs::symlink_metadata(e.env_file()).unwrap();
            assert!(meta.file_type().is_symlink(), "the link was replaced");
            assert_eq!(fs::read_link(e.env_file()).unwrap(), Path::new(target));
            assert!(
                !e.path().join(target).exists(),
                "the link's target was created"
            );
        }
    }
}

#[test]
fn unwritable_env_file_is_refused_with_exit_5() {
    let e = Env::with_vault();
    let (id, _) = e.create("k", &[]);
    let dir = e.path().join("conf");
    fs::create_dir(&dir).unwrap();
    fs::write(dir.join(".env"), "A=1\n").unwrap();
    let mut c = unprivileged(&e).expect("root needs setpriv (util-linux) to test file modes");
    set_mode(&dir.join(".env"), 0o400);
    set_mode(&dir, 0o500);
    let o = run(c.args(["--env-file", "conf/.env", "use", &id]));
    set_mode(&dir, 0o700);
    assert_fails(
        &o,
        5,
        &[
            "conf/.env",
            "Permission denied",
            "check the file's owner and permissions",
        ],
    );
    assert_eq!(fs::read(dir.join(".env")).unwrap(), b"A=1\n");
}

// ---- the vault file and its directory ----

#[test]
fn a_vault_reached_through_a_symlink_is_written_at_its_target() {
    let e = Env::with_vault();
    let link = e.path().join("link.json");
    std::os::unix::fs::symlink("mcp_key_manager/keys.json", &link).unwrap();
    let o = run(e
        .cmd()
        .args(["--vault", "link.json", "create", "via link", "--json"]));
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let id = v["id"].as_str().unwrap();
    assert!(
        fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink(),
        "the link was replaced by a regular file"
    );
    assert!(
        e.open_vault().find(id).is_ok(),
        "the key did not reach the vault"
    );
    // One vault, one lock: two spellings of its path must exclude each other.
    assert!(
        !e.path().join("link.json.lock").exists(),
        "locked beside the link"
    );
}

#[test]
fn a_use_that_cannot_write_the_env_file_records_nothing() {
    let e = Env::with_vault();
    let (id, _) = e.create("k", &[]);
    fs::create_dir(e.env_file()).unwrap();
    let before = e.open_vault().events().len();
    let o = run(e.cmd().args(["use", &id]));
    assert_fails(&o, 5, &["env file is not a regular file"]);
    assert_eq!(
        e.open_vault().events().len(),
        before,
        "the history records a use that did not happen"
    );
}

#[test]
fn unwritable_vault_directory_is_refused_with_exit_5_and_the_vault_intact() {
    let e = Env::with_vault();
    let (id, _) = e.create("k", &[]);
    let mut c = unprivileged(&e).expect("root needs setpriv (util-linux) to test directory modes");
    let dir = e.vault().parent().unwrap().to_path_buf();
    let before = fs::read(e.vault()).unwrap();
    set_mode(&dir, 0o500);
    let o = run(c.args(["revoke", &id]));
    set_mode(&dir, 0o700);
    assert_fails(
        &o,
        5,
        &[
            "cannot write",
            "keys.json",
            "Permission denied",
            "check the file's owner and permissions",
        ],
    );
    assert_eq!(fs::read(e.vault()).unwrap(), before);
    assert_eq!(names(&dir), ["keys.json", "keys.json.lock"]);
}

fn mkfifo(p: &Path) {
    let ok = std::process::Command::new("mkfifo")
        .arg(p)
        .status()
        .expect("run mkfifo");
    assert!(ok.success());
}

#[test]
fn fifos_fail_fast_with_exit_5_instead_of_hanging() {
    // The vault path is a FIFO with no writer: a blocking open would hang for ever.
    let e = Env::new();
    fs::create_dir(e.vault().parent().unwrap()).unwrap();
    mkfifo(&e.vault());
    for args in [
        &["list"][..],
        &["create", "x"],
        &["view", "abc"],
        &["revoke", "abc"],
        &["use", "abc"],
        &["check"],
        &["import-legacy"],
    ] {
        let start = Instant::now();
        let o = run(e.cmd().args(args));
        assert_fails(&o, 5, &["keys.json", "is not a regular file"]);
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{args:?} was slow"
        );
    }
    let o = run(e.cmd().args(init_args(&[])));
    assert_fails(&o, 1, &["already exists"]);

    // The env file is a FIFO.
    let e = Env::with_vault();
    let (id, _) = e.create("k", &[]);
    mkfifo(&e.env_file());
    for args in [
        &["use", &id][..],
        &["enable-requirement"],
        &["verify", "--from-env"],
    ] {
        let o = run(e.cmd().args(args));
        assert_fails(&o, 5, &["env file is not a regular file"]);
    }
    // The passphrase file is a FIFO (as `--passphrase-file <(cmd)` gives).
    let pw = e.path().join("pw.fifo");
    mkfifo(&pw);
    let o = run(e.bare().arg("--passphrase-file").arg(&pw).arg("list"));
    assert_fails(&o, 5, &["passphrase file is not a regular file"]);
}

#[test]
fn two_gigabyte_vault_is_refused_by_size_before_reading() {
    let e = Env::with_vault();
    OpenOptions::new()
        .write(true)
        .open(e.vault())
        .unwrap()
        .set_len(2 << 30)
        .unwrap();
    for args in [
        &["list"][..],
        &["create", "x"],
        &["view", "abc"],
        &["import-legacy"],
    ] {
        let start = Instant::now();
        let o = run(e.cmd().args(args));
        assert_fails(&o, 4, &["2147483648 bytes, more than the 268435456 bytes"]);
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{args:?} was slow"
        );
    }
    assert_eq!(fs::metadata(e.vault()).unwrap().len(), 2 << 30);
    // Refused before reading: no child of this test process (the largest is an Argon2id
    // run of 19 MiB) ever held anything near the file's 2 GiB in memory.
    let peak = super::util::children_peak_rss_kib();
    assert!(peak < 512 * 1024, "a child reached {peak} KiB");
}

#[test]
fn an_unauthenticated_file_cannot_make_the_tool_build_a_large_tree() {
    // Regression (security review): any file that was not a well-formed envelope was parsed
    // into a full JSON tree before the passphrase was asked for, about 16 times its size in
    // memory. 48 MiB of `[0,0,…]` and of `{"k0":{},…}` must be refused cheaply.
    let e = Env::with_vault();
    let n = 24 * 1024 * 1024;
    let mut arr = String::with_capacity(2 * n + 2);
    arr.push('[');
    for i in 0..n {
        if i > 0 {
            arr.push(',');
        }
        arr.push('0');
    }
    arr.push(']');
    let mut obj = String::from("{");
    let mut i = 0;
    while obj.len() < 2 * n {
        if i > 0 {
            obj.push(',');
        }
        obj.push_str(&format!("\"k{i}\":{{\"x\":[1,2,3]}}"));
        i += 1;
    }
    obj.push('}');
    for (bytes, words) in [
        (arr.into_bytes(), "not a JSON object"),
        (obj.into_bytes(), "neither an mcp-key-vault"),
    ] {
        fs::write(e.vault(), &bytes).unwrap();
        let start = Instant::now();
        let o = run(e.cmd().arg("list"));
        assert_fails(&o, 4, &[words]);
        assert!(start.elapsed() < Duration::from_secs(20), "slow");
    }
    // The file is read once (48 MiB); a tree of it would take several hundred MiB.
    let peak = super::util::children_peak_rss_kib();
    assert!(peak < 400 * 1024, "a child reached {peak} KiB");
}

// ---- hostile payloads behind a valid MAC ----

fn payload_with_metadata(metadata: &str) -> String {
    format!(
        r#"{{"hash_key":"{}","keys":[{{"id":"0123456789abcdef","name":"bomb","created_at":"2026-01-01T00:00:00Z","permissions":["info"],"metadata":{{"x":{metadata}}},"secret":"mcp_0123456789abcdef_{}","hash":"{}"}}],"events":[]}}"#,
        "00".repeat(32),
        "ab".repeat(32),
        "cd".repeat(32)
    )
}

#[test]
fn json_bomb_in_an_authenticated_payload_is_corrupt_not_a_crash() {
    let e = Env::new();
    // Control: shallow nesting opens, so the depth alone is what is refused below.
    write_sealed_payload(&e, payload_with_metadata("[[[[1]]]]").as_bytes());
    let o = run(e.cmd().arg("list"));
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("bomb"));

    let depth = 200_000;
    let deep_array = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    let deep_object = format!("{}1{}", r#"{"a":"#.repeat(depth), "}".repeat(depth));
    for (what, plain) in [
        ("nested arrays", payload_with_metadata(&deep_array)),
        ("nested objects", payload_with_metadata(&deep_object)),
        ("a bare bomb", "[".repeat(1 << 20)),
    ] {
        write_sealed_payload(&e, plain.as_bytes());
        for args in [&["list"][..], &["create", "x"]] {
            let start = Instant::now();
            let o = run(e.cmd().args(args));
            assert_fails(&o, 4, &["the vault decrypted but its content is malformed"]);
            assert!(start.elapsed() < Duration::from_secs(5), "{what}: slow");
            assert!(!stderr(&o).contains("overflow"), "{what}");
        }
    }
}

#[test]
fn duplicated_ids_in_an_authenticated_payload_are_corrupt() {
    let e = Env::with_vault();
    e.create("k", &[]);
    let v = e.open_vault();
    let mut payload: serde_json::Value =
        serde_json::from_slice(&v.payload().to_json()[..]).unwrap();
    let first = payload["keys"][0].clone();
    let id = first["id"].as_str().unwrap().to_string();
    payload["keys"].as_array_mut().unwrap().push(first);
    write_sealed_payload(&e, &serde_json::to_vec(&payload).unwrap());
    let before = fs::read(e.vault()).unwrap();
    for args in [
        &["list"][..],
        &["view", &id],
        &["revoke", &id],
        &["create", "x"],
    ] {
        let o = run(e.cmd().args(args));
        assert_fails(&o, 4, &[&format!("the vault holds two keys with id {id}")]);
    }
    assert_eq!(fs::read(e.vault()).unwrap(), before);
}

// ---- another process ----

#[test]
fn a_held_lock_makes_writers_wait_with_a_message_then_exit_5() {
    let e = Env::with_vault();
    let (id, _) = e.create("k", &[]);
    let before = fs::read(e.vault()).unwrap();
    let lock_path = e.path().join("mcp_key_manager/keys.json.lock");
    let held = File::options()
        .read(true)
        .write(true)
        .open(&lock_path)
        .unwrap();
    held.lock().unwrap();

    let start = Instant::now();
    let o = run(e
        .cmd()
        .env("MCP_KEY_LOCK_TIMEOUT", "1")
        .args(["create", "blocked"]));
    let took = start.elapsed();
    assert_fails(
        &o,
        5,
        &[
            "waiting for another mcp-key-manager to release",
            "cannot lock",
            "keys.json.lock",
            "raise MCP_KEY_LOCK_TIMEOUT",
        ],
    );
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(6),
        "gave up after {took:?}"
    );
    assert_eq!(
        fs::read(e.vault()).unwrap(),
        before,
        "wrote without the lock"
    );
    // Readers do not take the lock (writers replace the file atomically): with a zero
    // timeout, a reader that tried would fail at once.
    let o = run(e.cmd().env("MCP_KEY_LOCK_TIMEOUT", "0").arg("list"));
    assert_eq!(code(&o), 0, "{}", stderr(&o));

    // The env file's lock likewise.
    let env_lock = File::create(e.path().join(".env.lock")).unwrap();
    env_lock.lock().unwrap();
    let o = run(e
        .cmd()
        .env("MCP_KEY_LOCK_TIMEOUT", "1")
        .arg("enable-requirement"));
    assert_fails(
        &o,
        5,
        &[
            "waiting for another mcp-key-manager to release",
            ".env.lock",
        ],
    );
    assert!(!e.env_file().exists());

    // Released (as when the holder dies), writers proceed.
    drop(held);
    drop(env_lock);
    let o = run(e.cmd().env("MCP_KEY_LOCK_TIMEOUT", "1").args(["use", &id]));
    assert_eq!(code(&o), 0, "{}", stderr(&o));
}

/// Unmounts on drop, so a failing assertion does not leave a mount behind.
struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

fn fill(dir: &Path) {
    let mut f = File::create(dir.join("filler")).unwrap();
    let block = [0u8; 1024];
    loop {
        match f.write_all(&block).and_then(|()| f.sync_all()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => return,
            Err(e) => panic!("filling the tmpfs: {e}"),
        }
    }
}

#[test]
#[ignore = "needs root (mounts a tmpfs); .ci/run runs it with --ignored"]
fn a_full_disk_fails_with_exit_5_and_leaves_the_old_files() {
    let e = Env::with_vault();
    let (id, _) = e.create("k", &[]);
    let small = e.path().join("small");
    fs::create_dir(&small).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs"])
        .arg(&small)
        .output();
    assert!(
        mounted.as_ref().is_ok_and(|o| o.status.success()),
        "cannot mount a tmpfs (needs root with CAP_SYS_ADMIN): {mounted:?}"
    );
    let _mount = Mount(small.clone());

    // A vault on the small disk, and an env file there for a vault elsewhere.
    let vault = small.join("keys.json");
    let vault_arg = vault.to_str().unwrap();
    let o = run(e.cmd().args(init_args(&["--vault", vault_arg])));
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let (small_id, _) = {
        let o = run(e
            .cmd()
            .args(["--vault", vault_arg, "create", "k", "--json"]));
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        (v["id"].as_str().unwrap().to_string(), ())
    };
    let env_path = small.join("app.env");
    fs::write(&env_path, "# keep\nMCP_API_KEY=old\n").unwrap();
    File::create(small.join("app.env.lock")).unwrap();
    let vault_before = fs::read(&vault).unwrap();
    fill(&small);

    let o = run(e.cmd().args(["--vault", vault_arg, "create", "more"]));
    assert_fails(&o, 5, &["cannot write", "No space left on device"]);
    let o = run(e.cmd().args(["--vault", vault_arg, "revoke", &small_id]));
    assert_fails(&o, 5, &["No space left on device"]);
    assert_eq!(
        fs::read(&vault).unwrap(),
        vault_before,
        "the old vault was damaged"
    );

    let o = run(e.cmd().arg("--env-file").arg(&env_path).args(["use", &id]));
    assert_fails(&o, 5, &["app.env", "No space left on device"]);
    assert_eq!(fs::read(&env_path).unwrap(), b"# keep\nMCP_API_KEY=old\n");
    // No half-written temporary file is left on the full disk.
    assert_eq!(
        names(&small),
        [
            "app.env",
            "app.env.lock",
            "filler",
            "keys.json",
            "keys.json.lock"
        ]
    );
    // And both vaults still open.
    e.open_vault();
    let o = run(e.cmd().args(["--vault", vault_arg, "list"]));
    assert_eq!(code(&o), 0, "{}", stderr(&o));
}
