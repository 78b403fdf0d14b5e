//! Format 2 through the library: the committed vectors open with their unlock
//! material to their expected content; `age-keygen`'s identities and the `age` CLI agree
//! with our slots; hostile headers are refused.
//!
//! `MCP_REGEN_VECTORS=1 cargo test --test vault regenerate -- --ignored` rewrites the
//! vectors and the format-2 fuzz seeds (then commit them; the other tests check them).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::tool_or_skip;

use chrono::{DateTime, Utc};
use mcp_key_vault::error::Category;
use mcp_key_vault::v2::{codec, Header, Identities, Unlock};
use mcp_key_vault::{KdfParams, OpenError, SecretString, Vault};
use mcp_key_vault::{NewKey, Payload, Published};

const WEAK: KdfParams = KdfParams {
    memory_kib: 8,
    iterations: 1,
    parallelism: 1,
};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

fn vectors() -> PathBuf {
    root().join("tests/vectors/vault/v2")
}

fn t(s: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(s, 0).expect("in range")
}

/// Fills `v` with the content every vector holds: keys of every shape the payload
/// distinguishes (modern and imported, revoked, with metadata, rotation links), a
/// published verifier and a revision.
fn fill(v: &mut Vault) {
    let now = t(1_780_000_000);
    for (i, name) in ["ci-bot", "dashboard ✓", "imported"].iter().enumerate() {
        v.create_key(
            NewKey {
                name: name.to_string(),
                description: format!("vector key {i}"),
                expires_at: (i == 0).then(|| t(1_790_000_000)),
                permissions: vec!["info".parse().unwrap(), "tools:call".parse().unwrap()],
            },
            now,
        );
    }
    v.revoke(1, t(1_780_000_100));
    let p = v.payload_mut_unchecked();
    p.keys[2].id = "legacy_42".into();
    p.keys[2].secret = SecretString::new("legacy-key-0123456789abcdef".into());
    p.keys[2].hash = p.keyed_hash(p.keys[2].secret.expose());
    p.keys[2]
        .metadata
        .insert("team".into(), serde_json::json!({"name": "ops", "size": 3}));
    let (a, b) = (p.keys[0].id.clone(), p.keys[1].id.clone());
    p.keys[0].rotated_from = Some(b);
    p.keys[1].rotated_to = Some(a);
    p.revision = 5;
    p.published.push(Published {
        path: "/srv/mcp/verifier.json".into(),
        names: true,
        then: Some("systemctl reload mcp".into()),
    });
}

fn sample_payload() -> Payload {
    let mut v = Vault::create(&SecretString::new("unused".into()), WEAK).expect("weak KDF");
    fill(&mut v);
    std::mem::take(v.payload_mut_unchecked())
}

/// What a vector's `expected.json` holds: the payload in format 1's JSON form (the
/// readable spelling of the same content), the revision, the published list and slots.
fn expected_of(v: &Vault) -> serde_json::Value {
    let payload: serde_json::Value =
        serde_json::from_slice(&v.payload().to_json()).expect("payload JSON");
    let slots: Vec<serde_json::Value> = v
        .slots()
        .iter()
        .map(|s| {
            serde_json::json!({
                "id": s.id, "kind": s.kind.as_str(), "label": s.label, "recipient": s.recipient
            })
        })
        .collect();
    serde_json::json!({"payload": payload, "slots": slots})
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().expect("has a parent")).expect("mkdir");
    std::fs::write(path, bytes).expect("write");
}

#[test]
#[ignore = "writes the committed vectors; run with MCP_REGEN_VECTORS=1"]
fn regenerate() {
    assert_eq!(
        std::env::var("MCP_REGEN_VECTORS").as_deref(),
        Ok("1"),
        "set MCP_REGEN_VECTORS=1"
    );
    // Passphrase slot.
    let pass = "correct horse battery staple (test vector, not a secret)";
    let mut v = Vault::create(&SecretString::new(pass.into()), KdfParams::MINIMUM).expect("create");
    fill(&mut v);
    let dir = vectors().join("passphrase");
    write(&dir.join("keys.json"), &v.to_bytes());
    write(&dir.join("passphrase.txt"), format!("{pass}\n").as_bytes());
    write(
        &dir.join("expected.json"),
        &serde_json::to_vec_pretty(&expected_of(&v)).expect("json"),
    );
    // Age X25519 slot (and no passphrase slot at all).
    let id = age::x25519::Identity::generate();
    use age::secrecy::ExposeSecret;
    let mut v = Vault::create_with_recipient(&id.to_public().to_string(), "ci").expect("create");
    fill(&mut v);
    let dir = vectors().join("age-x25519");
    write(&dir.join("keys.json"), &v.to_bytes());
    write(
        &dir.join("identity.txt"),
        format!(
            "# TEST IDENTITY for tests/vectors only: committed on purpose, protects nothing.\n\
             # public key: {}\n{}\n",
            id.to_public(),
            id.to_string().expose_secret()
        )
        .as_bytes(),
    );
    write(
        &dir.join("expected.json"),
        &serde_json::to_vec_pretty(&expected_of(&v)).expect("json"),
    );
    // Fuzz seeds.
    let fuzz = root().join("fuzz/corpus");
    write(
        &fuzz.join("vault2_header/passphrase.json"),
        &std::fs::read(vectors().join("passphrase/keys.json")).expect("read"),
    );
    write(
        &fuzz.join("vault2_header/age.json"),
        &std::fs::read(vectors().join("age-x25519/keys.json")).expect("read"),
    );
    write(
        &fuzz.join("vault2_payload/sample"),
        &codec::encode(&sample_payload()),
    );
    write(
        &fuzz.join("vault2_payload/empty"),
        &codec::encode(&Payload::default()),
    );
}

fn open_vector(name: &str, unlock: &Unlock<'_>) -> Vault {
    let bytes = std::fs::read(vectors().join(name).join("keys.json")).expect("vector present");
    Vault::open_with(&bytes, unlock).unwrap_or_else(|e| panic!("{name} opens: {e}"))
}

fn expected(name: &str) -> serde_json::Value {
    serde_json::from_slice(
        &std::fs::read(vectors().join(name).join("expected.json")).expect("expected.json"),
    )
    .expect("valid JSON")
}

#[test]
fn passphrase_vector_opens_to_its_expected_content() {
    let pass = std::fs::read_to_string(vectors().join("passphrase/passphrase.txt")).expect("read");
    let pass = SecretString::new(pass.trim_end_matches('\n').to_string());
    let v = open_vector(
        "passphrase",
        &Unlock {
            passphrase: Some(&pass),
            ..Unlock::default()
        },
    );
    assert_eq!(expected_of(&v), expected("passphrase"));
    // Every secret still verifies against its stored keyed hash.
    for k in v.keys() {
        assert_eq!(k.hash, v.keyed_hash(k.secret.expose()));
    }
    let wrong = SecretString::new("wrong".into());
    let bytes = std::fs::read(vectors().join("passphrase/keys.json")).expect("read");
    let e = Vault::open(&bytes, &wrong).unwrap_err();
    assert_eq!(e.category(), Category::Passphrase, "{e}");
}

#[test]
fn age_vector_opens_with_its_committed_identity() {
    let ids = Identities::from_file(&vectors().join("age-x25519/identity.txt")).expect("parses");
    let v = open_vector(
        "age-x25519",
        &Unlock {
            identities: Some(&ids),
            ..Unlock::default()
        },
    );
    assert_eq!(expected_of(&v), expected("age-x25519"));
    assert_eq!(v.slots()[0].kind.as_str(), "age");
}

/// Whether a tool is on PATH; under CI=true a missing tool fails the test.
fn have(tool: &str) -> bool {
    let found = Command::new(tool)
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    tool_or_skip(
        "the age CLI test",
        found,
        format_args!("{tool} is not installed (apt-get install age)"),
    )
}

#[test]
fn an_identity_made_by_age_keygen_unlocks_and_the_age_cli_reads_our_slot() {
    // Not while the plugin test has PATH pointing elsewhere.
    let _path_lock = crate::PATH_LOCK.read().unwrap_or_else(|e| e.into_inner());
    if !have("age-keygen") || !have("age") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let idf = dir.path().join("id.txt");
    let st = Command::new("age-keygen")
        .arg("-o")
        .arg(&idf)
        .output()
        .expect("age-keygen runs");
    assert!(st.status.success(), "{st:?}");
    let out = Command::new("age-keygen")
        .arg("-y")
        .arg(&idf)
        .output()
        .expect("age-keygen -y runs");
    let recipient = String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_string();
    assert!(recipient.starts_with("age1"), "{recipient}");
    let pass = SecretString::new("p".into());
    let mut v = Vault::create(&pass, WEAK).expect("create");
    fill(&mut v);
    v.add_age_slot(&recipient, "ci", t(0)).expect("add");
    let bytes = v.to_bytes();
    let ids = Identities::from_file(&idf).expect("age-keygen's file parses");
    let w = Vault::open_with(
        &bytes,
        &Unlock {
            identities: Some(&ids),
            ..Unlock::default()
        },
    )
    .expect("opens with the age-keygen identity");
    assert_eq!(w.unlocked_by(), Some(v.slots()[1].id.as_str()));
    // The reference CLI decrypts the slot's wrapped key to the same data key.
    let wrapped = dir.path().join("wrapped.age");
    std::fs::write(
        &wrapped,
        &Header::parse(&bytes).expect("parses").slots[1].wrapped_key,
    )
    .expect("write");
    let out = Command::new("age")
        .arg("-d")
        .arg("-i")
        .arg(&idf)
        .arg(&wrapped)
        .output()
        .expect("age -d runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = v.data_key_for_tests().expect("format 2");
    assert_eq!(out.stdout, key.expose().to_vec());
    // And a key the age CLI wraps opens a vault whose slot we hand-build from it.
    let h = Header::parse(&bytes).expect("parses");
    let key_file = dir.path().join("key.bin");
    std::fs::write(&key_file, key.expose()).expect("write");
    let out = Command::new("age")
        .arg("-r")
        .arg(&recipient)
        .arg(&key_file)
        .output()
        .expect("age -r runs");
    assert!(out.status.success());
    let mut h2 = h.clone();
    h2.slots[1].wrapped_key = out.stdout;
    // The header changed, so the payload no longer authenticates (AD binds wrapped keys)…
    let e = Vault::unlock_v2(
        &h2,
        &Unlock {
            identities: Some(&ids),
            ..Unlock::default()
        },
    )
    .unwrap_err();
    assert_eq!(e.category(), Category::Passphrase);
}

#[test]
fn the_format_1_reader_refuses_format_2_with_exit_4() {
    let bytes = std::fs::read(vectors().join("passphrase/keys.json")).expect("read");
    let e = mcp_key_vault::Envelope::detect(&bytes).unwrap_err();
    assert_eq!(e.category(), Category::Corrupt);
    // Its parser refuses the unknown `slots` field before it looks at the version, so it
    // cannot say "upgrade"; it says the header is malformed, at the `slots` line.
    assert!(e.to_string().contains("header is malformed"), "{e}");
}

#[test]
fn a_removed_passphrase_gets_exit_3_and_its_old_key_reads_nothing_new() {
    let (a, b) = (
        SecretString::new("alice".into()),
        SecretString::new("bob".into()),
    );
    let mut v = Vault::create(&a, WEAK).expect("create");
    fill(&mut v);
    v.add_passphrase_slot(&b, WEAK, "bob", t(0)).expect("add");
    let before = v.to_bytes();
    let bob = Vault::open(&before, &b).expect("bob opens");
    let bobs_key = bob.data_key_for_tests().expect("format 2");
    v.remove_slot("bob", t(1)).expect("remove");
    let after = v.to_bytes();
    let e = Vault::open(&after, &b).unwrap_err();
    assert_eq!(e.category(), Category::Passphrase, "{e}");
    let e = Vault::with_data_key(&Header::parse(&after).expect("p"), bobs_key, None).unwrap_err();
    assert!(matches!(e, OpenError::WrongPassphrase), "{e:?}");
}
