//! Usage per key, per tool and per day in Redis (`serve --usage redis://…`), and `view
//! --usage redis://…` reading it.

use std::path::Path;
use std::time::Duration;

use crate::common::Env;
use crate::fleet::{fingerprint, Redis};
use crate::harness::Server;

/// The 2026-07-28 routing headers of a `tools/call` of `tool`.
fn call(s: &Server, key: &str, tool: &str) -> u16 {
    s.get(
        "/auth",
        &[
            ("X-API-Key", key),
            ("MCP-Protocol-Version", "2026-07-28"),
            ("Mcp-Method", "tools/call"),
            ("Mcp-Name", tool),
        ],
    )
    .status
}

/// Two instances count calls per tool (from the headers, without reading a body) and per
/// day, next to the totals; after SIGTERM the day's hash holds every request and every
/// call, and `view --usage redis://…` shows them. A flood of made-up tool names costs at
/// most 64 fields a key.
#[test]
fn usage_is_counted_per_tool_and_per_day() {
    let Some(redis) = Redis::start() else { return };
    let e = Env::with_vault();
    let (id, key) = e.create("agent", &[]);
    let url = redis.url("fleet");
    e.cmd().args(["publish", &url]).assert().success();
    let fpr = fingerprint(&e);
    let mut servers: Vec<Server> = (0..2)
        .map(|_| Server::start(Path::new(&url), &["--trust", &fpr, "--usage", &url]))
        .collect();
    let before = chrono::Utc::now();
    for s in &servers {
        for _ in 0..3 {
            assert_eq!(call(s, &key, "echo"), 200);
        }
        assert_eq!(call(s, &key, "add"), 200);
        assert_eq!(s.auth_x(&key).status, 200);
    }
    for i in 0..100 {
        assert_eq!(call(&servers[0], &key, &format!("made-up-{i}")), 200);
    }
    for s in &mut servers {
        s.signal("TERM");
        assert!(s.wait(Duration::from_secs(10)).success(), "{}", s.log());
    }
    let after = chrono::Utc::now();
    let days: Vec<String> = [before, after]
        .iter()
        .map(|t| t.format("%Y-%m-%d").to_string())
        .collect();
    let field = |what: &str| -> u64 {
        let mut n = 0;
        for d in days.iter().collect::<std::collections::BTreeSet<_>>() {
            let key = format!("mkm:{{fleet}}:usage:{d}");
            if let Some(redis::Value::BulkString(b)) =
                redis.query(&["HGET", &key, &format!("{id} {what}")])
            {
                n += String::from_utf8(b).unwrap().parse::<u64>().unwrap();
            }
        }
        n
    };
    assert_eq!(field("VALID"), 110, "every request of the day");
    assert_eq!(field("tool:echo"), 6);
    assert_eq!(field("tool:add"), 2);
    let named = (0..100)
        .filter(|i| field(&format!("tool:made-up-{i}")) == 1)
        .count();
    assert_eq!(
        named, 62,
        "64 names counted per key: echo, add and 62 made-up ones"
    );
    assert_eq!(field("tool:(other)"), 38);
    let ttl = redis.query(&["TTL", &format!("mkm:{{fleet}}:usage:{}", days[1])]);
    assert!(
        matches!(ttl, Some(redis::Value::Int(t)) if t > 399 * 86_400),
        "{ttl:?}"
    );

    let view = e.json(&["view", &id, "--json", "--usage", &url]);
    let daily = view["daily"].as_array().expect("daily usage");
    let total: u64 = daily
        .iter()
        .map(|d| d["counts"]["VALID"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(total, 110, "{view}");
    assert_eq!(daily[0]["tools"]["echo"], 6, "{view}");
    let out = e
        .cmd()
        .args(["view", &id, "--usage", &url])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("tools: ") && text.contains("echo 6"),
        "{text}"
    );
}
