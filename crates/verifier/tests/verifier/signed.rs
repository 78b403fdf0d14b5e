//! The signed-verifier vectors (`tests/vectors/verifier/signed/`, made by its
//! `generate.py` with another Ed25519 implementation): fingerprints, trust pins, the
//! save-digest rule on reload, and invalid `save_digest`s. The Python and TypeScript
//! readers run the same cases.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use mcp_key_verifier::{fingerprint, ReloadEvent, Verifier, Watched};
use serde_json::Value;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/vectors/verifier/signed")
}

fn cases() -> Value {
    let text = std::fs::read_to_string(dir().join("cases.json")).expect("cases.json");
    serde_json::from_str(&text).expect("cases.json is JSON")
}

fn load(name: &str, trust: Option<&str>) -> Result<Verifier, mcp_key_verifier::Error> {
    match trust {
        Some(pin) => Verifier::from_file_trusted(dir().join(name), pin),
        None => Verifier::from_file(dir().join(name)),
    }
}

fn now(all: &Value) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(all["now"].as_str().unwrap())
        .unwrap()
        .with_timezone(&chrono::Utc)
}

#[test]
fn fingerprints_match_the_other_implementation() {
    use base64::Engine as _;
    let all = cases();
    for f in all["fingerprints"].as_array().unwrap() {
        let key = base64::engine::general_purpose::STANDARD
            .decode(f["public_key"].as_str().unwrap())
            .unwrap();
        let key: [u8; 32] = key.try_into().unwrap();
        assert_eq!(fingerprint(&key), f["fingerprint"].as_str().unwrap(), "{f}");
    }
}

#[test]
fn every_trust_case_is_accepted_or_refused_as_written() {
    let all = cases();
    let list = all["trust"].as_array().unwrap();
    assert!(list.len() >= 8, "{} cases", list.len());
    let mut failures = Vec::new();
    for c in list {
        let got = load(c["verifier"].as_str().unwrap(), c["trust"].as_str()).is_ok();
        if got != c["ok"].as_bool().unwrap() {
            failures.push(format!("{}: got ok={got}", c["why"]));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn a_trusted_load_verifies_keys_as_usual() {
    let all = cases();
    let at = now(&all);
    for c in all["verify"].as_array().unwrap() {
        let v = load(c["verifier"].as_str().unwrap(), c["trust"].as_str()).expect("trusted");
        let require: Vec<&str> = c["require"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_str().unwrap())
            .collect();
        let verdict = v.verify_at(c["key"].as_str().unwrap(), &require, at);
        assert_eq!(
            verdict.code.as_str(),
            c["code"].as_str().unwrap(),
            "{}",
            c["why"]
        );
        assert_eq!(
            verdict.key.map(|k| k.id.as_str()),
            c["key_id"].as_str(),
            "{}",
            c["why"]
        );
    }
}

#[test]
fn invalid_save_digests_are_refused() {
    let all = cases();
    for c in all["invalid"].as_array().unwrap() {
        assert!(
            load(c["verifier"].as_str().unwrap(), None).is_err(),
            "{}",
            c["why"]
        );
    }
}

/// A watcher loads `first`, the file is replaced by `then`: replaced or kept as written.
#[test]
fn every_reload_case_replaces_or_keeps_as_written() {
    let all = cases();
    let at = now(&all);
    for c in all["reload"].as_array().unwrap() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("verifier.json");
        std::fs::copy(dir().join(c["first"].as_str().unwrap()), &path).unwrap();
        let events: Arc<Mutex<Vec<String>>> = Arc::default();
        let seen = Arc::clone(&events);
        let on_event = move |e: ReloadEvent| seen.lock().unwrap().push(e.to_string());
        let long = std::time::Duration::from_secs(3600);
        let w = match c["trust"].as_str() {
            Some(pin) => Watched::open_trusted(&path, pin, long, on_event),
            None => Watched::open_with_interval(&path, long, on_event),
        }
        .expect("the first file loads");
        // A new inode, as publishers replace the file.
        let next = tmp.path().join("next.json");
        std::fs::copy(dir().join(c["then"].as_str().unwrap()), &next).unwrap();
        std::fs::rename(&next, &path).unwrap();
        w.check_now();
        let replaced = events
            .lock()
            .unwrap()
            .iter()
            .any(|e| e.contains("reloaded"));
        assert_eq!(
            replaced,
            c["replaced"].as_bool().unwrap(),
            "{}: {:?}",
            c["why"],
            events
        );
        let v = w.current();
        assert_eq!(
            v.revision(),
            c["revision"].as_u64().unwrap(),
            "{}",
            c["why"]
        );
        let code = v.verify_at(c["key"].as_str().unwrap(), &[], at).code;
        assert_eq!(code.as_str(), c["code"].as_str().unwrap(), "{}", c["why"]);
    }
}
