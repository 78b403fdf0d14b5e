//! `serve` over HTTP: every status code and header, both key headers,
//! `--require` and `X-MCP-Require`, tool permissions, reloads, the usage flush on SIGTERM,
//! the limits against hostile clients, and a sweep for keys in any output.

use std::io::Write;
use std::time::{Duration, Instant};

use crate::fixture::{publish_bytes, Spec, TestKey};
use crate::harness::{assert_no_secret, read_response, Server};

struct Setup {
    dir: tempfile::TempDir,
    good: TestKey,
    reader: TestKey,
    revoked: TestKey,
    expired: TestKey,
    spec: Spec,
}

fn setup(names: bool) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let mut good = TestKey::new(&["info", "generate", "tools:call:echo", "prompts:get"]);
    let mut reader = TestKey::new(&["resources:read", "tools:call"]);
    if names {
        good = good.named("ci-bot");
        reader = reader.named("read\r\nX-Injected: 1 é");
    }
    let revoked = TestKey::new(&["info"]).revoked();
    let expired = TestKey::new(&["info"]).expires("2020-01-01T00:00:00Z");
    let spec = Spec::new(
        7,
        vec![
            good.clone(),
            reader.clone(),
            revoked.clone(),
            expired.clone(),
        ],
    );
    spec.publish(&dir.path().join("verifier.json"));
    Setup {
        dir,
        good,
        reader,
        revoked,
        expired,
        spec,
    }
}

impl Setup {
    fn verifier(&self) -> std::path::PathBuf {
        self.dir.path().join("verifier.json")
    }
    fn keys(&self) -> Vec<&str> {
        vec![
            &self.good.key,
            &self.reader.key,
            &self.revoked.key,
            &self.expired.key,
        ]
    }
}

fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < limit, "timed out: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
    t0.elapsed()
}

#[test]
fn every_status_code_and_header() {
    let s = setup(true);
    let srv = Server::start(&s.verifier(), &[]);

    // 200 through either header, any method, any path below /auth.
    for (method, path, hdr, val) in [
        ("GET", "/auth", "X-API-Key", s.good.key.clone()),
        (
            "POST",
            "/auth/mcp/tools",
            "Authorization",
            format!("Bearer {}", s.good.key),
        ),
        (
            "DELETE",
            "/auth/",
            "authorization",
            format!("bEaReR \t{} ", s.good.key),
        ),
    ] {
        let r = srv.request(method, path, &[(hdr, &val)], b"");
        assert_eq!(r.status, 200, "{method} {path}: {}", r.raw);
        assert_eq!(r.header("X-MCP-Key-Id"), Some(s.good.id.as_str()));
        assert_eq!(
            r.header("X-MCP-Key-Permissions"),
            Some("info,generate,tools:call:echo,prompts:get")
        );
        assert_eq!(r.header("X-MCP-Key-Name"), Some("ci-bot"));
    }
    // A name from the file cannot inject a header.
    let r = srv.auth_x(&s.reader.key);
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("X-MCP-Key-Name"),
        Some("read%0D%0AX-Injected: 1 %C3%A9")
    );
    assert_eq!(r.header("X-Injected"), None);

    // 401 for every kind of bad key, with the challenge and the JSON-RPC body.
    let wrong_secret = format!("{}{}", &s.good.key[..21], "0".repeat(64));
    type Case<'a> = (Vec<(&'a str, &'a str)>, &'a str, &'a str);
    let cases: Vec<Case> = vec![
        (vec![], "MALFORMED", "no API key presented"),
        (
            vec![("Authorization", "Basic dXNlcjpwYXNz")],
            "MALFORMED",
            "no API key",
        ),
        (vec![("X-API-Key", "mcp_short")], "MALFORMED", "malformed"),
        (vec![("X-API-Key", "")], "MALFORMED", "no API key"),
        (
            vec![("X-API-Key", &wrong_secret)],
            "NOT_FOUND",
            "unknown API key",
        ),
        (
            vec![("X-API-Key", "legacy-looking-key-0123456789")],
            "NOT_FOUND",
            "unknown",
        ),
        (vec![("X-API-Key", &s.revoked.key)], "REVOKED", "revoked"),
        (vec![("X-API-Key", &s.expired.key)], "EXPIRED", "expired"),
    ];
    for (headers, code, reason) in &cases {
        let r = srv.get("/auth", headers);
        assert_eq!(r.status, 401, "{headers:?}: {}", r.raw);
        assert_eq!(r.code(), *code, "{headers:?}");
        let j = r.json();
        assert_eq!(j["jsonrpc"], "2.0");
        assert!(j["id"].is_null());
        assert_eq!(j["error"]["code"], -32001);
        let msg = j["error"]["message"].as_str().unwrap();
        assert!(msg.contains(reason), "{msg}");
        let challenge = r.header("WWW-Authenticate").unwrap();
        assert!(
            challenge.starts_with("Bearer error=\"invalid_token\", error_description=\""),
            "{challenge}"
        );
        assert!(challenge.contains(msg));
        assert_eq!(r.header("X-MCP-Key-Id"), None);
        assert_eq!(r.header("Content-Type"), Some("application/json"));
    }

    // 403: X-MCP-Require (comma-separated, repeated headers add up).
    let r = srv.get(
        "/auth",
        &[
            ("X-API-Key", &s.good.key),
            ("X-MCP-Require", "info, admin"),
            ("X-MCP-Require", "deploy"),
        ],
    );
    assert_eq!(r.status, 403, "{}", r.raw);
    assert_eq!(r.code(), "INSUFFICIENT_PERMISSIONS");
    assert_eq!(r.json()["error"]["code"], -32003);
    assert_eq!(
        r.header("WWW-Authenticate"),
        Some("Bearer error=\"insufficient_scope\", scope=\"admin deploy\"")
    );
    let ok = srv.get(
        "/auth",
        &[
            ("X-API-Key", &s.good.key),
            ("X-MCP-Require", "info,generate"),
        ],
    );
    assert_eq!(ok.status, 200);
    // A requirement list is bounded and checked before the key is judged: thousands of
    // tokens buy an unauthenticated client a 400, not CPU time (review of this turn).
    // (4,000 tokens fit the 32 KiB head; 7,000 do not and are refused 431 before parsing.)
    let many: Vec<String> = (0..4000).map(|i| format!("p{i}")).collect();
    let many = many.join(",");
    let more: Vec<String> = (0..7000).map(|i| format!("p{i}")).collect();
    let r = srv.get(
        "/auth",
        &[("X-API-Key", "junk"), ("X-MCP-Require", &more.join(","))],
    );
    assert_eq!(r.status, 431, "{}", r.raw);
    for (require, what) in [(many.as_str(), "too many"), ("bad perm!", "invalid")] {
        let r = srv.get(
            "/auth",
            &[("X-API-Key", "junk"), ("X-MCP-Require", require)],
        );
        assert_eq!(r.status, 400, "{what}: {}", r.raw);
        assert_eq!(r.code(), "BAD_REQUIRE");
    }
    // Revoked comes before permissions.
    let r = srv.get(
        "/auth",
        &[("X-API-Key", &s.revoked.key), ("X-MCP-Require", "admin")],
    );
    assert_eq!((r.status, r.code().as_str()), (401, "REVOKED"));

    // /healthz, /metrics, anything else.
    let h = srv.get("/healthz", &[]);
    assert_eq!(h.status, 200);
    assert_eq!(h.json()["revision"], 7);
    assert_eq!(h.json()["keys"], 4);
    assert_eq!(
        srv.metric("mcp_key_serve_verdicts_total{code=\"REVOKED\"}"),
        2
    );
    assert_eq!(
        srv.metric("mcp_key_serve_verdicts_total{code=\"MALFORMED\"}"),
        4
    );
    assert_eq!(srv.metric("mcp_key_serve_verifier_revision"), 7);
    assert!(srv.metric("mcp_key_serve_auth_duration_seconds_count") >= 15);
    assert_eq!(srv.get("/other", &[]).status, 404);
    assert_eq!(srv.get("/authx", &[("X-API-Key", &s.good.key)]).status, 404);

    let mut all = s.keys();
    all.push(&wrong_secret);
    assert_no_secret("the log", &srv.log(), &all);
}

#[test]
fn require_option_and_no_names() {
    let s = setup(false);
    let srv = Server::start(
        &s.verifier(),
        &["--require", "info", "--require", "generate"],
    );
    let r = srv.auth_x(&s.good.key);
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("X-MCP-Key-Name"),
        Some(""),
        "the file has no names: sent empty, so a proxy copying it drops a forged one"
    );
    let r = srv.auth_x(&s.reader.key);
    assert_eq!(r.status, 403);
    assert_eq!(
        r.header("WWW-Authenticate"),
        Some("Bearer error=\"insufficient_scope\", scope=\"info generate\"")
    );
    let r = srv.get(
        "/auth",
        &[("X-API-Key", &s.good.key), ("X-MCP-Require", "admin")],
    );
    assert_eq!(r.status, 403, "the header adds to --require");
}

fn rpc(method: &str, name: Option<&str>) -> serde_json::Value {
    let mut m = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": {}});
    if let Some(n) = name {
        m["params"]["name"] = n.into();
    }
    m
}

/// A key limited to one tool must not reach another through the routing headers: they are
/// trusted alone only where the protocol makes the server check them against the body.
#[test]
fn tool_permissions_from_mcp_method_headers_fail_closed() {
    let s = setup(false);
    let srv = Server::start(
        &s.verifier(),
        &["--tool-permissions", "--trust-routing-headers"],
    );
    assert!(
        srv.log().contains("else from those headers with protocol"),
        "start-up says what it decides from: {}",
        srv.log()
    );
    let auth = |headers: &[(&str, &str)], body: &[u8]| srv.request("POST", "/auth", headers, body);
    let key = s.good.key.as_str();
    let v = ("MCP-Protocol-Version", "2026-07-28");
    // Headers of protocol 2026-07-28: decided without a body (nginx auth_request).
    let r = auth(
        &[
            ("X-API-Key", key),
            v,
            ("Mcp-Method", "tools/call"),
            ("Mcp-Name", "echo"),
        ],
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.raw);
    let r = auth(
        &[
            ("X-API-Key", key),
            v,
            ("Mcp-Method", "tools/call"),
            ("Mcp-Name", "rm"),
        ],
        b"",
    );
    assert_eq!(r.status, 403);
    assert_eq!(
        r.header("WWW-Authenticate"),
        Some("Bearer error=\"insufficient_scope\", scope=\"tools:call:rm\"")
    );
    // The name in the SEP-2243 Base64 form ("rm").
    let r = auth(
        &[
            ("X-API-Key", key),
            v,
            ("Mcp-Method", "tools/call"),
            ("Mcp-Name", "=?base64?cm0=?="),
        ],
        b"",
    );
    assert_eq!(r.status, 403);
    assert_eq!(
        auth(&[("X-API-Key", key), v, ("Mcp-Method", "tools/list")], b"").status,
        200
    );
    // A name-bearing method without Mcp-Name, a repeated header: 400.
    let r = auth(&[("X-API-Key", key), v, ("Mcp-Method", "tools/call")], b"");
    assert_eq!((r.status, r.code()), (400, "BAD_ROUTING".into()));
    assert_eq!(r.json()["error"]["code"], -32020);
    let r = auth(
        &[
            ("X-API-Key", key),
            v,
            ("Mcp-Method", "tools/list"),
            ("Mcp-Method", "tools/call"),
            ("Mcp-Name", "rm"),
        ],
        b"",
    );
    assert_eq!(r.status, 400);
    // Protocol 2026-07-28 without Mcp-Method (SEP-2243 requires it on every POST): 400
    // -32020 as its servers answer, not 403, with a body or without.
    for body in [
        &b""[..],
        rpc("tools/call", Some("echo")).to_string().as_bytes(),
    ] {
        let r = auth(&[("X-API-Key", key), v], body);
        assert_eq!(
            (r.status, r.code()),
            (400, "BAD_ROUTING".into()),
            "{}",
            r.raw
        );
        assert_eq!(r.json()["error"]["code"], -32020);
        assert!(r.raw.contains("Mcp-Method header is required"), "{}", r.raw);
    }

    // A body, when there is one, is read and decides, even with a trusted version.
    let rm = rpc("tools/call", Some("rm")).to_string();
    let r = auth(
        &[
            ("X-API-Key", key),
            v,
            ("Mcp-Method", "tools/call"),
            ("Mcp-Name", "echo"),
        ],
        rm.as_bytes(),
    );
    assert_eq!((r.status, r.code()), (400, "HEADER_MISMATCH".into()));

    // Versions not known to check the headers (older, or later than the allowlist): the
    // headers alone decide nothing.
    for old in [
        vec![
            ("X-API-Key", key),
            ("MCP-Protocol-Version", "2027-01-01"),
            ("Mcp-Method", "tools/call"),
            ("Mcp-Name", "echo"),
        ],
        vec![
            ("X-API-Key", key),
            ("Mcp-Method", "tools/call"),
            ("Mcp-Name", "echo"),
        ],
        vec![
            ("X-API-Key", key),
            ("MCP-Protocol-Version", "2025-11-25"),
            ("Mcp-Method", "tools/call"),
            ("Mcp-Name", "echo"),
        ],
    ] {
        let r = auth(&old, b"");
        assert_eq!(
            (r.status, r.code()),
            (403, "METHOD_UNSEEN".into()),
            "{}",
            r.raw
        );
        // With a body that disagrees with them: 400 -32020, not the header's verdict.
        let r = auth(&old, rpc("tools/call", Some("rm")).to_string().as_bytes());
        assert_eq!((r.status, r.code()), (400, "HEADER_MISMATCH".into()));
        assert_eq!(r.json()["error"]["code"], -32020);
        let r = auth(&old, rpc("tools/call", Some("echo")).to_string().as_bytes());
        assert_eq!(r.status, 200);
    }
    // No routing header, no body: refused whatever the method.
    for method in ["GET", "POST", "DELETE"] {
        let r = srv.request(method, "/auth", &[("X-API-Key", key)], b"");
        assert_eq!(
            (r.status, r.code()),
            (403, "METHOD_UNSEEN".into()),
            "{method}"
        );
    }
    // The key is still judged first.
    let r = auth(
        &[
            ("X-API-Key", &s.revoked.key),
            v,
            ("Mcp-Method", "tools/list"),
        ],
        b"",
    );
    assert_eq!(r.status, 401);
}

#[test]
fn tool_permissions_from_json_rpc_bodies() {
    let s = setup(false);
    let srv = Server::start(&s.verifier(), &["--tool-permissions"]);
    let post = |key: &str, body: &serde_json::Value| {
        srv.request(
            "POST",
            "/auth",
            &[("X-API-Key", key), ("Content-Type", "application/json")],
            body.to_string().as_bytes(),
        )
    };
    // good: tools:call:echo only, prompts:get; reader: tools:call, resources:read.
    assert_eq!(
        post(&s.good.key, &rpc("tools/call", Some("echo"))).status,
        200
    );
    let r = post(&s.good.key, &rpc("tools/call", Some("rm")));
    assert_eq!(r.status, 403);
    assert_eq!(
        r.header("WWW-Authenticate"),
        Some("Bearer error=\"insufficient_scope\", scope=\"tools:call:rm\"")
    );
    assert_eq!(
        post(&s.reader.key, &rpc("tools/call", Some("rm"))).status,
        200
    );
    assert_eq!(post(&s.good.key, &rpc("resources/read", None)).status, 403);
    assert_eq!(
        post(&s.reader.key, &rpc("resources/read", None)).status,
        200
    );
    assert_eq!(
        post(&s.good.key, &rpc("prompts/get", Some("p"))).status,
        200
    );
    assert_eq!(
        post(&s.reader.key, &rpc("prompts/get", Some("p"))).status,
        403
    );
    assert_eq!(post(&s.good.key, &rpc("tools/list", None)).status, 200);
    assert_eq!(post(&s.good.key, &rpc("initialize", None)).status, 200);

    // Batches: every element must pass.
    let ok = serde_json::json!([rpc("tools/list", None), rpc("tools/call", Some("echo"))]);
    assert_eq!(post(&s.good.key, &ok).status, 200);
    let bad = serde_json::json!([
        rpc("tools/call", Some("echo")),
        rpc("tools/call", Some("rm")),
        rpc("resources/read", None)
    ]);
    let r = post(&s.good.key, &bad);
    assert_eq!(r.status, 403);
    assert_eq!(
        r.header("WWW-Authenticate"),
        Some("Bearer error=\"insufficient_scope\", scope=\"tools:call:rm resources:read\"")
    );

    // Fail closed: a request showing no method (no body, no Mcp-Method: what nginx's
    // auth_request sends) is refused, never allowed.
    let r = srv.auth_x(&s.good.key);
    assert_eq!(r.status, 403, "{}", r.raw);
    assert_eq!(r.code(), "METHOD_UNSEEN");
    assert_eq!(r.json()["error"]["code"], -32003);
    assert!(r.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("Mcp-Method"));
    let r = srv.request("POST", "/auth", &[("X-API-Key", &s.good.key)], b" \r\n");
    assert_eq!(r.code(), "METHOD_UNSEEN");
    // Not JSON is 400.
    let r = srv.request(
        "POST",
        "/auth",
        &[("X-API-Key", &s.good.key)],
        b"{\"method\":",
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["code"], -32700);
    assert_eq!(r.code(), "PARSE_ERROR");
    // The key is judged before the body: a bad key with a bad body is 401.
    let r = srv.request("POST", "/auth", &[("X-API-Key", &s.revoked.key)], b"{x");
    assert_eq!(r.status, 401);

    // Oversized: declared (answered before the body is sent) and streamed (chunked).
    let r = srv.get(
        "/auth",
        &[("X-API-Key", &s.good.key), ("Content-Length", "2000000")],
    );
    assert_eq!(r.status, 413, "{}", r.raw);
    assert_eq!(r.code(), "BODY_TOO_LARGE");
    let mut c = srv.connect();
    write!(
        c,
        "POST /auth HTTP/1.1\r\nHost: x\r\nX-API-Key: {}\r\nTransfer-Encoding: chunked\r\n\r\n",
        s.good.key
    )
    .unwrap();
    let chunk = vec![b' '; 64 * 1024];
    let mut status = None;
    for _ in 0..20 {
        if write!(c, "{:x}\r\n", chunk.len()).is_err()
            || c.write_all(&chunk).is_err()
            || c.write_all(b"\r\n").is_err()
        {
            break;
        }
    }
    if status.is_none() {
        status = Some(read_response(&mut c).status);
    }
    assert_eq!(status, Some(413));
    assert_eq!(
        srv.metric("mcp_key_serve_bad_requests_total{status=\"413\"}"),
        2
    );

    // Without --tool-permissions the body is ignored.
    let other = s.dir.path().join("plain.usage.json");
    let plain = Server::start(&s.verifier(), &["--usage", other.to_str().unwrap()]);
    let r = plain.request(
        "POST",
        "/auth",
        &[("X-API-Key", &s.good.key)],
        rpc("tools/call", Some("rm")).to_string().as_bytes(),
    );
    assert_eq!(r.status, 200);
    let r = plain.request("POST", "/auth", &[("X-API-Key", &s.good.key)], b"{x");
    assert_eq!(r.status, 200);
    assert_no_secret("the log", &srv.log(), &s.keys());
}

#[test]
fn reload_on_rename_with_broken_and_older_files_kept_out() {
    let s = setup(false);
    let path = s.verifier();
    let srv = Server::start(&path, &[]);
    assert_eq!(srv.auth_x(&s.good.key).status, 200);

    // Broken file: the last good one keeps answering; healthz and metrics say so.
    publish_bytes(&path, b"{\"format\": \"mcp-key-verifier\", ");
    wait_until("the failed reload", Duration::from_secs(5), || {
        srv.metric("mcp_key_serve_reloads_total{result=\"failed\"}") == 1
    });
    assert_eq!(srv.auth_x(&s.good.key).status, 200);
    let h = srv.get("/healthz", &[]).json();
    assert_eq!(h["revision"], 7);
    assert!(h["reload_error"]
        .as_str()
        .unwrap()
        .contains("verifier.json"));

    // Older revision with the key revoked: ignored.
    let mut older = s.spec.clone();
    older.revision = 6;
    older.keys[0].revoked = true;
    older.publish(&path);
    wait_until("the older file", Duration::from_secs(5), || {
        srv.metric("mcp_key_serve_reloads_total{result=\"older\"}") == 1
    });
    assert_eq!(srv.auth_x(&s.good.key).status, 200);

    // Newer revision revoking the key: refused within a second.
    let mut newer = s.spec.clone();
    newer.revision = 8;
    newer.keys[0].revoked = true;
    let t0 = Instant::now();
    newer.publish(&path);
    wait_until("the revocation", Duration::from_secs(2), || {
        srv.auth_x(&s.good.key).status == 401
    });
    assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
    assert_eq!(srv.auth_x(&s.good.key).code(), "REVOKED");
    assert_eq!(srv.metric("mcp_key_serve_verifier_revision"), 8);
    assert_eq!(
        srv.get("/healthz", &[]).json()["reload_error"],
        serde_json::Value::Null
    );
    let log = srv.log();
    assert!(log.contains("verifier reload refused"), "{log}");
    assert!(
        log.contains("revision 7->8") || log.contains("revision=7->8"),
        "{log}"
    );
}

#[test]
fn sigterm_finishes_the_request_in_flight_and_flushes_usage() {
    let s = setup(false);
    let usage = s.dir.path().join("usage.json");
    let mut srv = Server::start(
        &s.verifier(),
        &[
            "--tool-permissions",
            "--trust-routing-headers",
            "--usage",
            usage.to_str().unwrap(),
        ],
    );
    for _ in 0..3 {
        assert_eq!(srv.auth_routed(&s.good.key).status, 200);
    }
    assert_eq!(srv.auth_x(&s.revoked.key).status, 401);
    assert_eq!(
        srv.get(
            "/auth",
            &[("X-API-Key", &s.good.key), ("X-MCP-Require", "admin")]
        )
        .status,
        403
    );
    assert_eq!(srv.auth_x("mcp_nothing").status, 401);
    // A request in flight: headers sent, half the body still to come.
    let body = rpc("tools/call", Some("echo")).to_string();
    let mut c = srv.connect();
    write!(
        c,
        "POST /auth HTTP/1.1\r\nHost: x\r\nX-API-Key: {}\r\nContent-Length: {}\r\n\r\n{}",
        s.good.key,
        body.len(),
        &body[..10]
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let before = chrono::Utc::now();
    srv.signal("TERM");
    std::thread::sleep(Duration::from_millis(300));
    c.write_all(&body.as_bytes()[10..]).unwrap();
    let r = read_response(&mut c);
    assert_eq!(
        r.status, 200,
        "the request in flight is answered: {}",
        r.raw
    );
    let status = srv.wait(Duration::from_secs(15));
    assert_eq!(status.code(), Some(0), "{}", srv.log());
    assert!(srv.log().contains("SIGTERM"), "{}", srv.log());

    let f: serde_json::Value = serde_json::from_slice(&std::fs::read(&usage).unwrap()).unwrap();
    assert_eq!(f["format"], "mcp-key-usage");
    assert_eq!(f["version"], 1);
    let good = &f["keys"][&s.good.id];
    assert_eq!(good["counts"]["VALID"], 4);
    assert_eq!(good["counts"]["INSUFFICIENT_PERMISSIONS"], 1);
    let last =
        chrono::DateTime::parse_from_rfc3339(good["last_used_at"].as_str().unwrap()).unwrap();
    assert!(last <= chrono::Utc::now() && last > before - chrono::Duration::seconds(30));
    assert_eq!(f["keys"][&s.revoked.id]["counts"]["REVOKED"], 1);
    assert_eq!(
        f["keys"].as_object().unwrap().len(),
        2,
        "unknown keys have no entry"
    );
    let text = std::fs::read_to_string(&usage).unwrap();
    assert_no_secret("the usage file", &text, &s.keys());

    // SIGINT works the same; a restart continues the counts.
    let mut again = Server::start(&s.verifier(), &["--usage", usage.to_str().unwrap()]);
    assert_eq!(again.auth_x(&s.good.key).status, 200);
    again.signal("INT");
    assert_eq!(again.wait(Duration::from_secs(15)).code(), Some(0));
    let f: serde_json::Value = serde_json::from_slice(&std::fs::read(&usage).unwrap()).unwrap();
    assert_eq!(f["keys"][&s.good.id]["counts"]["VALID"], 5);
}

#[test]
fn hostile_clients_do_not_stop_well_behaved_ones() {
    let s = setup(false);
    let srv = Server::start(&s.verifier(), &["--read-timeout", "2"]);
    // The head limit is 32 KiB however the bytes arrive: 40 KiB in one segment was let
    // through by hyper's buffering; just under the limit is answered.
    for n in [40_000, 45_000] {
        let pad = "a".repeat(n);
        let r = srv.get("/auth", &[("X-API-Key", &s.good.key), ("X-Padding", &pad)]);
        assert_eq!(r.status, 431, "{n} bytes of header");
    }
    let pad = "a".repeat(30_000);
    let r = srv.get("/auth", &[("X-API-Key", &s.good.key), ("X-Padding", &pad)]);
    assert_eq!(r.status, 200);
    // A 70 kB header: 431 (or 400), and the service goes on.
    let big = "a".repeat(70_000);
    let r = srv.get("/auth", &[("X-API-Key", &s.good.key), ("X-Padding", &big)]);
    assert!(r.status == 431 || r.status == 400, "{}", r.status);

    // 300 half-open connections do not block a real request.
    let mut idle = Vec::new();
    for i in 0..300 {
        let mut c = srv.connect();
        let _ = write!(c, "GET /auth HTTP/1.1\r\nHost: x\r\nX-Slow-{i}: ");
        idle.push(c);
    }
    let t0 = Instant::now();
    let r = srv.auth_x(&s.good.key);
    assert_eq!(r.status, 200);
    assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
    // They are closed once the read timeout passes.
    let mut first = idle.remove(0);
    let t0 = Instant::now();
    let mut buf = [0u8; 256];
    let n = std::io::Read::read(&mut first, &mut buf).unwrap_or(0);
    let waited = t0.elapsed();
    assert!(waited < Duration::from_secs(6), "{waited:?}");
    let answer = String::from_utf8_lossy(&buf[..n]);
    assert!(n == 0 || answer.starts_with("HTTP/1.1 408"), "{answer}");
    drop(idle);

    // A slow body (with --tool-permissions) gets 408 after the timeout.
    let other = s.dir.path().join("tp.usage.json");
    let tp = Server::start(
        &s.verifier(),
        &[
            "--tool-permissions",
            "--trust-routing-headers",
            "--read-timeout",
            "1",
            "--usage",
            other.to_str().unwrap(),
        ],
    );
    let mut c = tp.connect();
    write!(
        c,
        "POST /auth HTTP/1.1\r\nHost: x\r\nX-API-Key: {}\r\nContent-Length: 100\r\n\r\n{{",
        s.good.key
    )
    .unwrap();
    let t0 = Instant::now();
    let r = read_response(&mut c);
    assert_eq!(r.status, 408, "{}", r.raw);
    assert!(t0.elapsed() < Duration::from_secs(5));
    assert_eq!(tp.auth_routed(&s.good.key).status, 200);

    // Bodies in memory are bounded across connections, not only per connection (review of
    // this turn): with 64 bodies half-sent, the next body waits for a place and is told
    // 503 at the read timeout, while a request without a body is answered at once.
    let mut held = Vec::new();
    for _ in 0..64 {
        let mut c = tp.connect();
        write!(
            c,
            "POST /auth HTTP/1.1\r\nHost: x\r\nX-API-Key: {}\r\nContent-Length: 1000\r\n\r\n{{",
            s.good.key
        )
        .unwrap();
        held.push(c);
    }
    std::thread::sleep(Duration::from_millis(200));
    let mut c = tp.connect();
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
    write!(
        c,
        "POST /auth HTTP/1.1\r\nHost: x\r\nX-API-Key: {}\r\nContent-Length: {}\r\n\r\n{body}",
        s.good.key,
        body.len()
    )
    .unwrap();
    let t0 = Instant::now();
    assert_eq!(
        tp.auth_routed(&s.good.key).status,
        200,
        "a request decided from its headers is not held up"
    );
    assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
    let r = read_response(&mut c);
    // Its body was complete, yet it was answered only once the held bodies timed out and
    // made room (200), or at its own timeout (503): it waited for a place.
    assert!(r.status == 503 || r.status == 200, "{}", r.raw);
    assert!(
        t0.elapsed() >= Duration::from_millis(500),
        "not gated: {:?}",
        t0.elapsed()
    );
    drop(held);
}

#[test]
fn the_connection_cap_queues_rather_than_refuses() {
    let s = setup(false);
    let srv = Server::start(
        &s.verifier(),
        &["--max-connections", "4", "--read-timeout", "1"],
    );
    // Four idle clients hold every slot; a fifth request waits for the read timeout to
    // free one, and is then answered.
    let idle: Vec<_> = (0..4).map(|_| srv.connect()).collect();
    std::thread::sleep(Duration::from_millis(100));
    let t0 = Instant::now();
    let r = srv.auth_x(&s.good.key);
    assert_eq!(r.status, 200);
    let waited = t0.elapsed();
    assert!(waited < Duration::from_secs(5), "{waited:?}");
    drop(idle);
    assert_eq!(srv.metric("mcp_key_serve_connections_total"), 6);
}

#[test]
fn startup_refusals_exit_2() {
    let s = setup(false);
    let run = |args: &[&str]| {
        std::process::Command::new(crate::harness::bin())
            .arg("serve")
            .args(args)
            .args(["--listen", "127.0.0.1:0"])
            .env_clear()
            .output()
            .unwrap()
    };
    let missing = s.dir.path().join("nope.json");
    let o = run(&["--verifier", missing.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("cannot start") && err.contains("nope.json"),
        "{err}"
    );
    let broken = s.dir.path().join("broken.json");
    std::fs::write(&broken, "{}").unwrap();
    assert_eq!(
        run(&["--verifier", broken.to_str().unwrap()]).status.code(),
        Some(2)
    );
    let v = s.verifier();
    let o = run(&["--verifier", v.to_str().unwrap(), "--require", "Bad Perm"]);
    assert_eq!(o.status.code(), Some(2));
    // A second serve on the same usage file.
    let _first = Server::start(&v, &[]);
    let o = run(&["--verifier", v.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("another serve is writing it"));
}

#[test]
fn no_key_in_any_response_or_log_line() {
    let s = setup(true);
    let srv = Server::start(&s.verifier(), &["--tool-permissions", "--require", "info"]);
    let wrong = format!("{}{}", &s.good.key[..21], "f".repeat(64));
    let legacy = "Zm9vYmFyLWxlZ2FjeS1rZXktdGhhdC1pcy1sb25n";
    let mut presented: Vec<&str> = s.keys();
    presented.push(&wrong);
    presented.push(legacy);
    let mut seen = String::new();
    for k in &presented {
        for headers in [
            vec![("X-API-Key", k.to_string())],
            vec![("Authorization", format!("Bearer {k}"))],
            vec![("Authorization", format!("Basic {k}"))],
            vec![("X-API-Key", format!("{k} {k}"))],
            vec![
                ("X-API-Key", k.to_string()),
                ("X-MCP-Require", format!("a,{}", &k[..20])),
            ],
        ] {
            let h: Vec<(&str, &str)> = headers.iter().map(|(a, b)| (*a, b.as_str())).collect();
            for body in [
                String::new(),
                rpc("tools/call", Some("rm")).to_string(),
                format!("{{{k}"),
            ] {
                let r = srv.request("POST", "/auth/x", &h, body.as_bytes());
                seen.push_str(&r.raw);
            }
        }
    }
    seen.push_str(&srv.get("/metrics", &[]).raw);
    seen.push_str(&srv.get("/healthz", &[]).raw);
    assert!(seen.contains("HTTP/1.1 200") && seen.contains("HTTP/1.1 403"));
    assert_no_secret("the responses", &seen, &presented);
    assert_no_secret("the log", &srv.log(), &presented);
    assert!(
        srv.log().contains("refused"),
        "refusals of identified keys are logged"
    );
}

#[test]
fn refusals_of_identified_keys_are_logged_at_a_bounded_rate() {
    let s = setup(false);
    let srv = Server::start(&s.verifier(), &[]);
    for _ in 0..70 {
        assert_eq!(srv.auth_x(&s.revoked.key).status, 401);
    }
    for _ in 0..10 {
        assert_eq!(srv.auth_x("mcp_unknown").status, 401);
    }
    std::thread::sleep(Duration::from_millis(100));
    let log = srv.log();
    let refused: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("refused REVOKED"))
        .collect();
    // One line per refusal up to the burst of 20; the ten-second window may turn once
    // during the test, allowing a second burst, but never 70 lines.
    assert!(
        (20..=40).contains(&refused.len()),
        "{} lines: {log}",
        refused.len()
    );
    assert!(refused
        .iter()
        .all(|l| l.contains(&format!("key_id={}", s.revoked.id))));
    assert!(!log.contains("mcp_unknown"), "unknown keys are not logged");
    assert_eq!(
        srv.metric("mcp_key_serve_verdicts_total{code=\"REVOKED\"}"),
        70
    );
}

/// One header rule with the packages: a repeated key header gives no key, whichever value
/// is good; and one permission rule: `tools:call` grants `tools:call:NAME` to an
/// `X-MCP-Require` as it does to a tool call.
#[test]
fn repeated_key_headers_refused_and_tools_call_grants_a_named_tool() {
    let s = setup(false);
    let srv = Server::start(&s.verifier(), &[]);
    let good = s.good.key.as_str();
    let r = srv.get("/auth", &[("X-API-Key", good), ("X-API-Key", good)]);
    assert_eq!(r.status, 401, "{}", r.raw);
    let bearer = format!("Bearer {good}");
    let r = srv.get(
        "/auth",
        &[("Authorization", &bearer), ("Authorization", "Bearer x")],
    );
    assert_eq!(r.status, 401, "{}", r.raw);
    assert_eq!(srv.get("/auth", &[("Authorization", &bearer)]).status, 200);
    // reader holds tools:call; good holds only tools:call:echo.
    let need = |key: &str, p: &str| {
        srv.get("/auth", &[("X-API-Key", key), ("X-MCP-Require", p)])
            .status
    };
    assert_eq!(need(&s.reader.key, "tools:call:add"), 200);
    assert_eq!(need(good, "tools:call:echo"), 200);
    let r = srv.get(
        "/auth",
        &[("X-API-Key", good), ("X-MCP-Require", "tools:call:add")],
    );
    assert_eq!(r.status, 403);
    assert_eq!(
        r.header("WWW-Authenticate"),
        Some("Bearer error=\"insufficient_scope\", scope=\"tools:call:add\"")
    );
}

/// `serve` says at start-up that a verifier or usage file others can write is trusted.
#[test]
fn a_verifier_others_can_write_is_warned_about_at_start() {
    use std::os::unix::fs::PermissionsExt;
    let s = setup(false);
    let v = s.verifier();
    let quiet = Server::start(&v, &[]);
    assert!(
        !quiet.log().contains("writable by other users"),
        "{}",
        quiet.log()
    );
    drop(quiet);
    std::fs::set_permissions(&v, std::fs::Permissions::from_mode(0o666)).unwrap();
    let other = s.dir.path().join("other.usage.json");
    let loud = Server::start(&v, &["--usage", other.to_str().unwrap()]);
    let log = loud.log();
    assert!(
        log.contains("the verifier") && log.contains("is writable by other users"),
        "{log}"
    );
}

/// `serve --trust FPR` takes only files signed by the pinned vault: a file the CLI
/// publishes (signed) answers; an unsigned file put in its place, even of a higher
/// revision, is refused and the signed one keeps answering; the CLI's next signed change
/// is taken. Without `--trust`, `serve` says at start that its file is unauthenticated.
#[test]
fn trust_takes_only_files_the_pinned_vault_signed() {
    let e = crate::common::Env::with_vault();
    let (id, key) = e.create("k", &[]);
    e.cmd()
        .args(["publish", "verifier.json"])
        .assert()
        .success();
    let path = e.path().join("verifier.json");
    let listed = e.cmd().args(["slot", "list"]).output().unwrap();
    let fpr = String::from_utf8(listed.stdout)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Vault fingerprint: ").map(str::to_string))
        .expect("a fingerprint");

    let plain = Server::start(&path, &[]);
    assert!(plain.log().contains("not authenticated"), "{}", plain.log());
    drop(plain);

    let srv = Server::start(&path, &["--trust", &fpr]);
    assert!(srv.log().contains(&fpr), "{}", srv.log());
    assert_eq!(srv.auth_x(&key).status, 200);

    // A forged, unsigned file of a higher revision that lets another key in.
    let intruder = TestKey::new(&["info"]);
    Spec::new(1_000, vec![intruder.clone()]).publish(&path);
    wait_until("the refused reload", Duration::from_secs(5), || {
        srv.metric("mcp_key_serve_reloads_total{result=\"failed\"}") == 1
    });
    assert_eq!(srv.auth_x(&intruder.key).status, 401);
    assert_eq!(srv.auth_x(&key).status, 200);
    assert!(srv.log().contains("not signed"), "{}", srv.log());

    // The vault's own next change (signed) is taken.
    std::fs::remove_file(&path).unwrap();
    e.cmd().args(["revoke", &id]).assert().success();
    e.cmd()
        .args(["publish", "verifier.json"])
        .assert()
        .success();
    wait_until("the signed revocation", Duration::from_secs(5), || {
        srv.auth_x(&key).status == 401
    });
    assert_eq!(srv.auth_x(&key).code(), "REVOKED");

    // A pin that is not a fingerprint, or a file not signed by it: serve does not start.
    let out = std::process::Command::new(crate::common::bin())
        .args(["serve", "--verifier"])
        .arg(&path)
        .args(["--listen", "127.0.0.1:0", "--trust", "mkv1:aaaa"])
        .env_clear()
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// `serve` judges through the verifier crate: keys of format 2 (with and without an
/// organisation prefix) pass, and one with a typo is refused as malformed, not unknown.
#[test]
fn format_2_keys_pass_and_a_typo_is_malformed() {
    let dir = tempfile::tempdir().unwrap();
    let plain = TestKey::format2("mkm_", &["info"]);
    let org = TestKey::format2("acme_mkm_", &["info"]);
    let old = TestKey::new(&["info"]);
    let path = dir.path().join("verifier.json");
    Spec::new(1, vec![plain.clone(), org.clone(), old.clone()]).publish(&path);
    let srv = Server::start(&path, &[]);
    for k in [&plain, &org, &old] {
        let r = srv.auth_x(&k.key);
        assert_eq!(r.status, 200, "{}", r.raw);
        assert_eq!(r.header("X-MCP-Key-Id"), Some(k.id.as_str()));
    }
    let mut typo = plain.key.clone().into_bytes();
    typo[30] = if typo[30] == b'Q' { b'R' } else { b'Q' };
    let typo = String::from_utf8(typo).unwrap();
    let r = srv.auth_x(&typo);
    assert_eq!(r.status, 401, "{}", r.raw);
    assert_eq!(r.code(), "MALFORMED");
    assert_no_secret("a refused typo", &r.raw, &[&typo]);
}
