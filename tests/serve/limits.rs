//! Rate limits set in the vault, carried in the signed verifier and enforced by `serve`:
//! per instance by default, across instances with `--limits redis://…` (a real
//! `redis-server`); the 429 answer, its headers and its counters.

use std::path::Path;
use std::time::Duration;

use crate::common::Env;
use crate::fleet::{fingerprint, wait_until, Redis};
use crate::harness::{Resp, Server};

/// Sends `n` requests with `key`, spread over `servers` in turn; the answers.
fn send(servers: &[Server], key: &str, n: usize) -> Vec<Resp> {
    (0..n)
        .map(|i| servers[i % servers.len()].auth_x(key))
        .collect()
}

fn admitted(answers: &[Resp]) -> usize {
    answers.iter().filter(|r| r.status == 200).count()
}

/// A key limited to 60/min in the vault: one instance admits 60 of 200 requests sent at
/// once (±1: a request may land a whole interval later), says so in the IETF headers,
/// refuses the rest 429 with `Retry-After` and a JSON-RPC body, counts them per key id,
/// and leaves an unlimited key alone. A second instance holds its own quota (per
/// instance), and `limit ID none` lifts the limit at the next reload.
#[test]
fn a_limit_set_in_the_vault_holds_per_instance() {
    let e = Env::with_vault();
    let (id, key) = e.create("limited", &["--rate-limit", "60/min"]);
    let (_, free) = e.create("free", &[]);
    let view = e.json(&["view", &id, "--json"]);
    assert_eq!(view["rate_limit"], "60/min", "{view}");
    let file = e.path().join("verifier.json");
    e.cmd()
        .args(["publish", file.to_str().unwrap()])
        .assert()
        .success();
    let fpr = fingerprint(&e);
    let a = Server::start(&file, &["--trust", &fpr]);

    let answers = send(std::slice::from_ref(&a), &key, 200);
    let n = admitted(&answers);
    assert!((60..=61).contains(&n), "{n} admitted");
    let first = &answers[0];
    assert_eq!(first.header("ratelimit-policy"), Some("\"key\";q=60;w=60"));
    assert_eq!(first.header("ratelimit"), Some("\"key\";r=59;t=1"));
    let refused = answers.iter().find(|r| r.status != 200).unwrap();
    assert_eq!(refused.status, 429, "{}", refused.raw);
    assert_eq!(refused.header("retry-after"), Some("1"));
    assert_eq!(
        refused.header("ratelimit-policy"),
        Some("\"key\";q=60;w=60")
    );
    assert!(refused
        .header("ratelimit")
        .unwrap()
        .starts_with("\"key\";r=0;t="));
    let body = refused.json();
    assert_eq!(body["error"]["code"], -32029, "{body}");
    assert_eq!(body["error"]["data"]["code"], "RATE_LIMITED");
    assert_eq!(body["error"]["data"]["retry_after"], 1);
    assert!(!refused.raw.contains(&key));
    let limited = a.metric(&format!(
        "mcp_key_serve_rate_limited_total{{key_id=\"{id}\"}}"
    ));
    assert_eq!(limited as usize, 200 - n);
    let free_answers = send(std::slice::from_ref(&a), &free, 100);
    assert_eq!(admitted(&free_answers), 100);
    assert!(free_answers[0].header("ratelimit").is_none());
    assert!(
        a.log()
            .contains(&format!("refused RATE_LIMITED key_id={id}")),
        "{}",
        a.log()
    );

    // Another instance: its own quota.
    let usage_b = e.path().join("usage.b.json");
    let b = Server::start(
        &file,
        &["--trust", &fpr, "--usage", usage_b.to_str().unwrap()],
    );
    assert!((60..=61).contains(&admitted(&send(std::slice::from_ref(&b), &key, 100))));

    // Lifted in the vault: the next reload admits everything, without the headers.
    let out = e.json(&["limit", &id, "none", "--json"]);
    assert_eq!(out["changed"], true, "{out}");
    wait_until("the limit lifted", Duration::from_secs(10), || {
        a.auth_x(&key).status == 200
    });
    let after = send(std::slice::from_ref(&a), &key, 100);
    assert_eq!(admitted(&after), 100);
    assert!(after[0].header("ratelimit").is_none());
    assert!(e.json(&["view", &id, "--json"])["rate_limit"].is_null());
}

/// Across the fleet: three instances deciding in one Redis admit 60 of 200 requests to a
/// 60/min key between them (±1), where three instances deciding alone admit 60 each.
#[test]
fn a_limit_holds_across_instances_through_redis() {
    let Some(redis) = Redis::start() else { return };
    let e = Env::with_vault();
    let (id, key) = e.create("limited", &["--rate-limit", "60/min"]);
    let url = redis.url("fleet");
    e.cmd().args(["publish", &url]).assert().success();
    let fpr = fingerprint(&e);
    let fleet: Vec<Server> = (0..3)
        .map(|i| {
            let usage = e.path().join(format!("usage.{i}.json"));
            let usage = usage.to_str().unwrap();
            Server::start(
                Path::new(&url),
                &["--trust", &fpr, "--usage", usage, "--limits", &url],
            )
        })
        .collect();
    assert!(
        fleet[0].log().contains("limits=across the fleet"),
        "{}",
        fleet[0].log()
    );
    let n = admitted(&send(&fleet, &key, 200));
    assert!(
        (60..=61).contains(&n),
        "{n} admitted across three instances"
    );
    let held = redis.query(&["GET", &format!("mkm:{{fleet}}:limit:{id}")]);
    assert!(
        matches!(held, Some(redis::Value::BulkString(_))),
        "{held:?}"
    );
    // A store that forgot the script (a restart, SCRIPT FLUSH) still decides: loaded again.
    redis.query(&["SCRIPT", "FLUSH"]).unwrap();
    assert_eq!(fleet[1].auth_x(&key).status, 429);
    // A state that is not a number (written by hand) counts as a whole quota, in the store.
    let state_key = format!("mkm:{{fleet}}:limit:{id}");
    redis.query(&["SET", &state_key, "abc"]).unwrap();
    assert_eq!(fleet[2].auth_x(&key).status, 200);
    for s in &fleet {
        assert_eq!(
            s.metric("mcp_key_serve_limit_fallbacks_total"),
            0,
            "{}",
            s.log()
        );
    }
    let alone: Vec<Server> = (0..3)
        .map(|i| {
            let usage = e.path().join(format!("usage.alone.{i}.json"));
            Server::start(
                Path::new(&url),
                &["--trust", &fpr, "--usage", usage.to_str().unwrap()],
            )
        })
        .collect();
    let n = admitted(&send(&alone, &key, 200));
    assert!(
        (180..=183).contains(&n),
        "{n} admitted by three instances alone"
    );
    // The store away: each instance decides alone at once (its own quota), says so once,
    // and counts it; nothing waits on the store.
    drop(alone);
    let mut redis = redis;
    redis.stop();
    let t0 = std::time::Instant::now();
    assert_eq!(fleet[0].auth_x(&key).status, 200, "{}", fleet[0].log());
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    assert!(fleet[0].metric("mcp_key_serve_limit_fallbacks_total") >= 1);
    assert!(
        fleet[0].log().contains("decides alone"),
        "{}",
        fleet[0].log()
    );
}
