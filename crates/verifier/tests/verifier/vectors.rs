//! The shared verifier conformance vectors (`tests/vectors/verifier/` at the repository root): every
//! case gets its verdict (and a `MALFORMED` one its reason), key id and name at the fixed
//! `now`; every invalid file is
//! rejected; every header case gives its key. The Python and TypeScript readers run the
//! same files.

use std::path::{Path, PathBuf};

use mcp_key_verifier::{api_key_from_header_values, api_key_from_headers, Error, Verifier};
use serde_json::Value;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/vectors/verifier")
}

fn cases() -> Value {
    let text = std::fs::read_to_string(dir().join("cases.json")).expect("cases.json");
    serde_json::from_str(&text).expect("cases.json is JSON")
}

fn load(name: &str) -> Result<Verifier, Error> {
    Verifier::from_file(dir().join(name))
}

#[test]
fn every_case_gets_its_verdict_key_id_and_name() {
    let all = cases();
    let now = chrono::DateTime::parse_from_rfc3339(all["now"].as_str().unwrap())
        .unwrap()
        .with_timezone(&chrono::Utc);
    let list = all["cases"].as_array().unwrap();
    assert!(list.len() >= 40, "{} cases", list.len());
    let mut failures = Vec::new();
    for c in list {
        let v = load(c["verifier"].as_str().unwrap()).unwrap_or_else(|e| panic!("{c}: {e}"));
        let require: Vec<&str> = c["require"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_str().unwrap())
            .collect();
        let verdict = v.verify_at(c["key"].as_str().unwrap(), &require, now);
        let got = (
            verdict.code.as_str(),
            verdict.reason.map(|r| r.as_str()),
            verdict.key.map(|k| k.id.as_str()),
            verdict.key.and_then(|k| k.name.as_deref()),
        );
        let want = (
            c["code"].as_str().unwrap(),
            c["reason"].as_str(),
            c["key_id"].as_str(),
            c["name"].as_str(),
        );
        if got != want {
            failures.push(format!("{}: got {got:?}, want {want:?}", c["why"]));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn the_vectors_cover_both_formats_and_every_reason() {
    let all = cases();
    let list = all["cases"].as_array().unwrap();
    let has = |f: &dyn Fn(&Value) -> bool| list.iter().any(f);
    assert!(has(
        &|c| c["code"] == "VALID" && c["key"].as_str().unwrap().starts_with("mcp_")
    ));
    assert!(has(
        &|c| c["code"] == "VALID" && c["key"].as_str().unwrap().starts_with("mkm_")
    ));
    assert!(has(
        &|c| c["code"] == "VALID" && c["key"].as_str().unwrap().contains("_mkm_")
    ));
    assert!(has(&|c| c["reason"] == "SHAPE"));
    // The typo case the format exists for: no entry is needed to refuse it.
    assert!(has(
        &|c| c["verifier"] == "empty.json" && c["reason"] == "CHECKSUM"
    ));
}

#[test]
fn every_invalid_file_is_rejected() {
    let all = cases();
    let list = all["invalid"].as_array().unwrap();
    assert!(list.len() >= 15);
    let mut failures = Vec::new();
    for c in list {
        let name = c["verifier"].as_str().unwrap();
        match load(name) {
            Ok(v) => failures.push(format!("{name} ({}) was accepted: {v:?}", c["why"])),
            Err(Error::Invalid(_)) => {}
            Err(e) => failures.push(format!("{name}: {e}")),
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// A header of a header case: null (absent), a string (sent once) or a list (every value
/// of a header sent that often).
fn header_values(v: &Value) -> Vec<&str> {
    match v {
        Value::Null => Vec::new(),
        Value::String(s) => vec![s.as_str()],
        Value::Array(a) => a.iter().map(|s| s.as_str().unwrap()).collect(),
        other => panic!("a header is null, a string or a list: {other}"),
    }
}

#[test]
fn every_header_case_gives_its_key() {
    let all = cases();
    let mut failures = Vec::new();
    for c in all["headers"].as_array().unwrap() {
        let (x, a) = (
            header_values(&c["x_api_key"]),
            header_values(&c["authorization"]),
        );
        let want = c["key"].as_str();
        let got = api_key_from_header_values(&x, &a);
        if got != want {
            failures.push(format!("{}: got {got:?}, want {want:?}", c["why"]));
        }
        // The one-value form agrees wherever no header is repeated.
        if x.len() <= 1 && a.len() <= 1 {
            let got = api_key_from_headers(x.first().copied(), a.first().copied());
            if got != want {
                failures.push(format!(
                    "{} (one value): got {got:?}, want {want:?}",
                    c["why"]
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
