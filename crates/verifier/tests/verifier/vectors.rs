//! The shared verifier conformance vectors (`tests/vectors/verifier/` at the repository root): every
//! case gets its verdict (and a `MALFORMED` one its reason), key id and name at the fixed
//! `now`; every invalid file is
//! rejected; every header case gives its key; every key of `limits.json` carries its
//! `rate_limit`, and every request of `ratelimit.json` gets its rate-limit decision. The
//! Python and TypeScript readers run the same files.

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

#[test]
fn every_key_of_limits_json_carries_its_rate_limit() {
    let all = cases();
    let now = chrono::DateTime::parse_from_rfc3339(all["now"].as_str().unwrap())
        .unwrap()
        .with_timezone(&chrono::Utc);
    let list = all["rate_limits"].as_array().unwrap();
    assert!(list.len() >= 5, "{} rate_limits cases", list.len());
    let mut failures = Vec::new();
    for c in list {
        let v = load(c["verifier"].as_str().unwrap()).unwrap_or_else(|e| panic!("{c}: {e}"));
        let id = c["key_id"].as_str().unwrap();
        let info = v
            .keys()
            .iter()
            .find(|k| k.id == id)
            .expect("the key is in the file");
        let want = match &c["rate_limit"] {
            Value::Null => None,
            l => Some((
                l["requests"].as_u64().unwrap(),
                l["window_seconds"].as_u64().unwrap(),
            )),
        };
        let got = info
            .rate_limit
            .map(|l| (u64::from(l.requests()), u64::from(l.window_seconds())));
        let shown = info.rate_limit.map(|l| l.to_string());
        let verdict = v.verify_at(c["key"].as_str().unwrap(), &[], now);
        let from_verdict = verdict
            .key
            .and_then(|k| k.rate_limit)
            .map(|l| l.to_string());
        if got != want
            || shown.as_deref() != c["display"].as_str()
            || from_verdict != shown
            || verdict.code.as_str() != c["code"].as_str().unwrap()
        {
            failures.push(format!(
                "{}: got {got:?} {shown:?} {:?}, want {want:?} {}",
                c["why"], verdict.code, c["display"]
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// Every request of every sequence of `ratelimit.json`: the GCRA step ([`decide`]), the
/// per-process [`Limiter`] (a fresh key each sequence) and the header values agree with it.
#[test]
fn every_rate_limit_sequence_gets_its_decisions() {
    use mcp_key_verifier::limit::{decide, Limiter};
    use mcp_key_verifier::{rpc, RateLimit};

    let text = std::fs::read_to_string(dir().join("ratelimit.json")).expect("ratelimit.json");
    let all: Value = serde_json::from_str(&text).expect("ratelimit.json is JSON");
    let sequences = all["sequences"].as_array().unwrap();
    assert!(sequences.len() >= 6);
    let limiter = Limiter::new();
    let mut failures = Vec::new();
    for (n, s) in sequences.iter().enumerate() {
        let why = s["why"].as_str().unwrap();
        let q = u32::try_from(s["limit"]["requests"].as_u64().unwrap()).unwrap();
        let w = u32::try_from(s["limit"]["window_seconds"].as_u64().unwrap()).unwrap();
        let limit = RateLimit::new(q, w).unwrap();
        assert_eq!(
            limit.interval_us(),
            s["interval_us"].as_u64().unwrap(),
            "{why}"
        );
        assert_eq!(
            limit.policy_header(),
            s["policy"].as_str().unwrap(),
            "{why}"
        );
        assert_eq!(limit.to_string(), s["display"].as_str().unwrap(), "{why}");
        let id = format!("sequence-{n}");
        let mut tat = 0;
        for (i, r) in s["requests"].as_array().unwrap().iter().enumerate() {
            let now = r["at_us"].as_u64().unwrap();
            let (d, next) = decide(limit, tat, now);
            let got = (
                d.allowed,
                u64::from(d.remaining),
                d.reset_us,
                d.retry_after_us,
                d.header(),
                (!d.allowed).then(|| d.retry_after_secs()),
            );
            let want = (
                r["allowed"].as_bool().unwrap(),
                r["remaining"].as_u64().unwrap(),
                r["reset_us"].as_u64().unwrap(),
                r["retry_after_us"].as_u64().unwrap(),
                r["ratelimit"].as_str().unwrap().to_owned(),
                r["retry_after"].as_u64(),
            );
            if got != want {
                failures.push(format!("{why}, request {i}: got {got:?}, want {want:?}"));
            }
            if limiter.check(&id, limit, now) != d {
                failures.push(format!("{why}, request {i}: the Limiter decided otherwise"));
            }
            if !d.allowed {
                // The 429 answer: its body names the limit and the Retry-After seconds.
                let body: Value = serde_json::from_str(&rpc::rate_limited(limit, &d).body).unwrap();
                let secs = d.retry_after_secs();
                let message =
                    format!("rate limit exceeded for this API key ({limit}); retry after {secs} s");
                let expected = serde_json::json!({"jsonrpc": "2.0", "id": null, "error": {
                    "code": -32029, "message": message,
                    "data": {"code": "RATE_LIMITED", "retry_after": secs}}});
                if body != expected {
                    failures.push(format!("{why}, request {i}: 429 body {body}"));
                }
            }
            tat = next;
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
