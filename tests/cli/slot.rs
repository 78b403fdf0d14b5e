//! Format 2 through the binary: `slot list|add|remove`, unlocking with
//! `--identity` / `MCP_KEY_VAULT_IDENTITY` / `--slot`, the format-1 upgrade, exit codes.

use std::process::Command as StdCommand;

use crate::common::{tool_or_skip, Env, PASS};
use mcp_key_vault::{KdfParams, SecretString, Vault};

fn code(o: &std::process::Output) -> i32 {
    o.status.code().expect("exited")
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// An identity made by Debian's `age-keygen`: (identity file, recipient), or `None` when
/// it is not installed (a failure under CI=true).
pub(crate) fn age_keygen(e: &Env) -> Option<(std::path::PathBuf, String)> {
    let idf = e.path().join("ci-identity.txt");
    match StdCommand::new("age-keygen").arg("-o").arg(&idf).output() {
        Ok(o) if o.status.success() => {}
        _ => {
            let why = "age-keygen is not installed (apt-get install age)";
            tool_or_skip("a test with an age identity", false, why);
            return None;
        }
    }
    let out = StdCommand::new("age-keygen")
        .arg("-y")
        .arg(&idf)
        .output()
        .expect("age-keygen -y");
    let r = String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_string();
    Some((idf, r))
}

#[test]
fn a_new_vault_has_one_passphrase_slot() {
    let e = Env::with_vault();
    let v = e.json(&["slot", "list", "--json"]);
    let slots = v.as_array().expect("a list");
    assert_eq!(slots.len(), 1, "{v}");
    assert_eq!(slots[0]["kind"], "passphrase");
    assert_eq!(slots[0]["unlocked"], true);
    assert!(slots[0].get("recipient").is_none(), "{v}");
    let text = std::fs::read_to_string(e.vault()).expect("read");
    assert!(text.contains("\"version\": 2"), "{text}");
}

#[test]
fn a_second_passphrase_unlocks_until_its_slot_is_removed() {
    let e = Env::with_vault();
    let (id, _) = e.create("k", &[]);
    let out = e
        .cmd()
        .args(["slot", "add", "--passphrase", "--label", "bob", "--json"])
        .args(["--kdf-preset", "minimum"])
        .env("MCP_KEY_VAULT_NEW_PASSPHRASE", "bob's own passphrase")
        .output()
        .expect("run");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let added: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(added["added"]["label"], "bob");
    assert_eq!(added["slots"], 2);
    // Bob's passphrase opens the vault.
    let bob = |args: &[&str]| {
        e.bare()
            .args(args)
            .env("MCP_KEY_VAULT_PASSPHRASE", "bob's own passphrase")
            .output()
            .expect("run")
    };
    let out = bob(&["view", &id, "--json"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    // --slot naming another slot: bob's passphrase is not tried on bob's slot.
    let first = e.json(&["slot", "list", "--json"])[0]["id"]
        .as_str()
        .expect("id")
        .to_string();
    assert_eq!(code(&bob(&["--slot", &first, "list"])), 3);
    assert_eq!(code(&bob(&["--slot", "bob", "list"])), 0);
    // The administrator removes bob; nobody types anything new.
    let removed = e.json(&["slot", "remove", "bob", "--json"]);
    assert_eq!(removed["data_key_rotated"], true);
    let out = bob(&["list"]);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert_eq!(code(&e.cmd().arg("list").output().expect("run")), 0);
    // The history says so.
    let h = e.json(&["history", "--json"]);
    let actions: Vec<&str> = h
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|ev| ev["action"].as_str())
        .collect();
    assert!(
        actions.contains(&"slot-add") && actions.contains(&"slot-remove"),
        "{actions:?}"
    );
    // The last slot stays.
    let out = e
        .cmd()
        .args(["slot", "remove", &first])
        .output()
        .expect("run");
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(stderr(&out).contains("last slot"), "{}", stderr(&out));
}

#[test]
fn an_age_keygen_identity_unlocks_without_any_passphrase() {
    let e = Env::with_vault();
    let Some((idf, recipient)) = age_keygen(&e) else {
        return;
    };
    let (id, _) = e.create("k", &[]);
    let out = e
        .cmd()
        .args([
            "slot",
            "add",
            "--age-recipient",
            &recipient,
            "--label",
            "ci",
        ])
        .output()
        .expect("run");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    // No passphrase anywhere: the identity alone, by variable or by flag.
    let out = e
        .bare()
        .args(["view", &id, "--json"])
        .env("MCP_KEY_VAULT_IDENTITY", &idf)
        .output()
        .expect("run");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let out = e
        .bare()
        .arg("--identity")
        .arg(&idf)
        .args(["slot", "list", "--json"])
        .output()
        .expect("run");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let ci = v
        .as_array()
        .expect("list")
        .iter()
        .find(|s| s["label"] == "ci")
        .expect("the ci slot");
    assert_eq!(ci["recipient"], recipient.as_str());
    assert_eq!(ci["unlocked"], true, "{v}");
    // Identity first: a wrong passphrase beside a good identity still unlocks.
    let out = e
        .bare()
        .args(["list"])
        .env("MCP_KEY_VAULT_IDENTITY", &idf)
        .env("MCP_KEY_VAULT_PASSPHRASE", "wrong")
        .output()
        .expect("run");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    // A write through the identity keeps the passphrase slot working.
    let out = e
        .bare()
        .args(["create", "from-ci"])
        .env("MCP_KEY_VAULT_IDENTITY", &idf)
        .output()
        .expect("run");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(e.open_vault().keys().len(), 2);
    // Removing CI's slot locks CI out (exit 3).
    assert_eq!(
        code(
            &e.cmd()
                .args(["slot", "remove", "ci"])
                .output()
                .expect("run")
        ),
        0
    );
    let out = e
        .bare()
        .arg("list")
        .env("MCP_KEY_VAULT_IDENTITY", &idf)
        .output()
        .expect("run");
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    // A file that is not an identity: a usage error that never echoes it.
    std::fs::write(e.path().join("bad.txt"), "AGE-SECRET-KEY-1NOPE\n").expect("write");
    let out = e
        .bare()
        .args(["--identity", "bad.txt", "list"])
        .output()
        .expect("run");
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(!stderr(&out).contains("AGE-SECRET-KEY-1NOPE"));
}

#[test]
fn a_format_1_vault_opens_as_before_and_its_next_write_upgrades_it_once() {
    let e = Env::new();
    let mut v1 = Vault::create_format1(&SecretString::new(PASS.into()), KdfParams::MINIMUM)
        .expect("format 1");
    v1.record(
        chrono::Utc::now(),
        mcp_key_vault::EventAction::Init,
        None,
        None,
    );
    std::fs::create_dir_all(e.vault().parent().expect("parent")).expect("mkdir");
    std::fs::write(e.vault(), v1.to_bytes()).expect("write");
    // Reading does not rewrite.
    let out = e.cmd().arg("list").output().expect("run");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(std::fs::read_to_string(e.vault())
        .expect("read")
        .contains("\"version\": 1"));
    // The first write upgrades, says so once, and records it.
    let out = e.cmd().args(["create", "a"]).output().expect("run");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(err.matches("format 1 to format 2").count(), 1, "{err}");
    let text = std::fs::read_to_string(e.vault()).expect("read");
    assert!(text.contains("\"version\": 2"), "{text}");
    let out = e.cmd().args(["create", "b"]).output().expect("run");
    assert!(!stderr(&out).contains("format 1 to format 2"));
    let v = e.open_vault();
    assert_eq!(v.format_version(), 2);
    assert_eq!(v.keys().len(), 2);
    assert_eq!(
        v.kdf(),
        KdfParams::MINIMUM,
        "same KDF settings, same passphrase"
    );
    assert!(v
        .events()
        .iter()
        .any(|ev| ev.action == mcp_key_vault::EventAction::Upgrade));
}

#[test]
fn version_names_both_formats() {
    let e = Env::new();
    let out = e.bare().arg("--version").output().expect("run");
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(s.contains("1 and 2") && s.contains("writes 2"), "{s}");
}

#[test]
fn a_hostile_header_is_refused_with_exit_4_before_any_kdf() {
    let e = Env::with_vault();
    let mut j: serde_json::Value =
        serde_json::from_slice(&std::fs::read(e.vault()).expect("read")).expect("json");
    let slot = j["slots"][0].clone();
    let mut many = Vec::new();
    for i in 0..33 {
        let mut s = slot.clone();
        s["id"] = format!("{i:08x}").into();
        many.push(s);
    }
    j["slots"] = many.into();
    std::fs::write(e.vault(), serde_json::to_vec(&j).expect("json")).expect("write");
    let t = std::time::Instant::now();
    let out = e.cmd().arg("list").output().expect("run");
    assert_eq!(code(&out), 4, "{}", stderr(&out));
    assert!(stderr(&out).contains("32 slots"), "{}", stderr(&out));
    assert!(t.elapsed() < std::time::Duration::from_secs(5));
}

#[test]
fn the_committed_format_1_vector_upgrades_with_every_record_intact() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/vault");
    let pass = std::fs::read_to_string(root.join("v1.passphrase")).expect("passphrase");
    let pass = pass.trim_end_matches('\n').to_string();
    let expected: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("v1.expected.json")).expect("read"))
            .expect("json");
    let e = Env::new();
    std::fs::create_dir_all(e.vault().parent().expect("parent")).expect("mkdir");
    std::fs::copy(root.join("v1.vault.json"), e.vault()).expect("copy");
    let run = |args: &[&str]| {
        e.bare()
            .args(args)
            .env("MCP_KEY_VAULT_PASSPHRASE", &pass)
            .output()
            .expect("run")
    };
    let out = run(&["create", "after-upgrade"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("format 1 to format 2"),
        "{}",
        stderr(&out)
    );
    let v = Vault::open(
        &std::fs::read(e.vault()).expect("read"),
        &SecretString::new(pass.clone()),
    )
    .expect("the same passphrase opens the upgraded vault");
    assert_eq!(v.format_version(), 2);
    let records = expected["records"].as_array().expect("records");
    assert_eq!(v.keys().len(), records.len() + 1);
    for (k, r) in v.keys().iter().zip(records) {
        assert_eq!(k.id.as_str(), r["id"].as_str().expect("id"));
        assert_eq!(k.name, r["name"].as_str().expect("name"));
        if let Some(key) = r["key"].as_str() {
            assert_eq!(k.secret.expose(), key);
        }
        if let Some(hash) = r["hash"].as_str() {
            assert_eq!(k.hash.to_hex(), hash);
        }
        assert_eq!(
            k.hash,
            v.keyed_hash(k.secret.expose()),
            "hashes still verify"
        );
        assert_eq!(
            mcp_key_vault::records::fmt_time(&k.created_at),
            r["created_at"].as_str().expect("created_at"),
            "sub-second times survive the binary payload"
        );
    }
}
