//! Format 2 with an age plugin slot, against a stub plugin (`tests/data/age_plugin_stub.py`)
//! that speaks the age plugin protocol in a subprocess: adding a plugin slot runs the
//! plugin's recipient-v1 phase, unlocking with an `AGE-PLUGIN-STUB-1…` identity runs its
//! identity-v1 phase, and removing another slot re-wraps through the plugin.
//!
//! It puts the stub on PATH for this process (the age crate looks plugins up on PATH), so
//! it holds `PATH_LOCK` for writing: no other test of this binary runs a program meanwhile.
//! Needs Python: `MCP_TEST_PYTHON` (else `python3`); under CI=true a missing interpreter
//! fails the test.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use crate::common::tool_or_skip;
use chrono::DateTime;
use mcp_key_vault::error::Category;
use mcp_key_vault::v2::{Identities, Unlock};
use mcp_key_vault::{KdfParams, SecretString, Vault};

fn python() -> Option<String> {
    let py = std::env::var("MCP_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    // A relative path would be looked up from wherever age starts the plugin: make it whole.
    // (Joined to the current directory, not canonicalized: a venv's python is a symlink
    // whose target would lose the venv.)
    let py = if py.contains('/') && !py.starts_with('/') {
        let here = std::env::current_dir().expect("current directory");
        here.join(&py).to_string_lossy().into_owned()
    } else {
        py
    };
    let ok = Command::new(&py)
        .arg("-c")
        .arg("import base64")
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    let why = format_args!("no Python interpreter ({py}) for the stub age plugin");
    tool_or_skip("the age plugin test", ok, why).then_some(py)
}

/// Puts `PATH` back when dropped.
struct RestorePath(Option<std::ffi::OsString>);

impl Drop for RestorePath {
    fn drop(&mut self) {
        match self.0.take() {
            Some(path) => std::env::set_var("PATH", path),
            None => std::env::remove_var("PATH"),
        }
    }
}

#[test]
fn a_plugin_slot_wraps_and_unwraps_through_the_plugin_protocol() {
    let Some(py) = python() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let stub = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/age_plugin_stub.py");
    let bin = dir.path().join("age-plugin-stub");
    std::fs::write(
        &bin,
        format!("#!/bin/sh\nexec '{py}' '{}' \"$@\"\n", stub.display()),
    )
    .expect("write the wrapper");
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let log = dir.path().join("runs.log");
    let out = |arg: &str| {
        let o = Command::new(&bin).arg(arg).output().expect("stub runs");
        assert!(o.status.success());
        String::from_utf8(o.stdout)
            .expect("utf-8")
            .trim()
            .to_string()
    };
    let recipient = out("--recipient");
    let identity = out("--identity");
    assert!(recipient.starts_with("age1stub1"), "{recipient}");
    // The environment change: the tests that run programs from PATH wait for this one
    // (`PATH_LOCK`), and PATH is put back when it ends, however it ends.
    let _path_lock = crate::PATH_LOCK.write().unwrap_or_else(|e| e.into_inner());
    let _restore = RestorePath(std::env::var_os("PATH"));
    let path = format!(
        "{}:{}",
        dir.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    std::env::set_var("PATH", path);
    std::env::set_var("STUB_PLUGIN_LOG", &log);
    let runs = || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };

    let t = DateTime::from_timestamp(1_780_000_000, 0).expect("in range");
    let pass = SecretString::new("admin".into());
    let weak = KdfParams {
        memory_kib: 8,
        iterations: 1,
        parallelism: 1,
    };
    let mut v = Vault::create(&pass, weak).expect("create");
    v.add_age_slot(&recipient, "token", t)
        .expect("the plugin wraps");
    assert_eq!(runs(), ["recipient-v1"]);
    let bytes = v.to_bytes();
    assert_eq!(runs().len(), 1, "a save does not run the plugin");

    let ids = Identities::parse(&format!("{identity}\n")).expect("a plugin identity parses");
    let w = Vault::open_with(
        &bytes,
        &Unlock {
            identities: Some(&ids),
            ..Unlock::default()
        },
    )
    .expect("the plugin unwraps");
    assert_eq!(w.unlocked_by(), Some(v.slots()[1].id.as_str()));
    assert_eq!(runs(), ["recipient-v1", "identity-v1"]);
    let k = |v: &Vault| v.data_key_for_tests().expect("format 2").expose().to_vec();
    assert_eq!(k(&w), k(&v));

    // Removing the passphrase slot re-wraps a new data key through the plugin.
    let mut w = w;
    let admin = w.slots()[0].id.clone();
    w.add_passphrase_slot(&SecretString::new("b".into()), weak, "b", t)
        .expect("add");
    w.remove_slot(&admin, t).expect("remove");
    assert_eq!(runs().last().map(String::as_str), Some("recipient-v1"));
    let after = w.to_bytes();
    let again = Vault::open_with(
        &after,
        &Unlock {
            identities: Some(&ids),
            ..Unlock::default()
        },
    )
    .expect("the plugin unwraps the new key");
    assert_ne!(k(&again), k(&v));

    // Without the plugin on PATH: exit 3, naming the plugin.
    std::env::set_var("PATH", "/nonexistent");
    let e = Vault::open_with(
        &after,
        &Unlock {
            identities: Some(&ids),
            ..Unlock::default()
        },
    )
    .unwrap_err();
    assert_eq!(e.category(), Category::Passphrase);
    assert!(e.to_string().contains("age-plugin-stub"), "{e}");
}
