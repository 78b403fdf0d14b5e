//! Access tokens at `/auth` from an independent issuer (`tests/serve/oauth/issuer.py`, built
//! with joserfc, on 127.0.0.1): discovery, the four accepted algorithms, every way a token
//! must fail and the answer it gets (docs/oauth.md), key rotation with bounded refetches,
//! `--jwks FILE`, the metadata route, and keys still working beside tokens.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use crate::common::{tool_or_skip, Env};
use crate::harness::{Resp, Server};

const RESOURCE: &str = "https://mcp.example.com/mcp";
const METADATA: &str = "https://mcp.example.com/.well-known/oauth-protected-resource/mcp";

/// The issuer script, killed on drop (its stdin closes too).
pub struct Issuer {
    child: Child,
    port: u16,
    pub url: String,
}

impl Issuer {
    pub fn start(path: Option<&str>) -> Option<Issuer> {
        Issuer::start_with(path, &[])
    }

    /// As [`Issuer::start`], with more arguments for the script (`--grant-scope S`).
    pub fn start_with(path: Option<&str>, args: &[&str]) -> Option<Issuer> {
        let python = std::env::var("MCP_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
        let ok = Command::new(&python)
            .args(["-c", "import joserfc"])
            .output()
            .is_ok_and(|o| o.status.success());
        if !tool_or_skip(
            "an OAuth test",
            ok,
            format!("{python} cannot import joserfc"),
        ) {
            return None;
        }
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/serve/oauth/issuer.py");
        let mut cmd = Command::new(&python);
        cmd.arg(script);
        if let Some(p) = path {
            cmd.args(["--path", p]);
        }
        cmd.args(args);
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the issuer");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port: u16 = line
            .strip_prefix("LISTENING ")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("the issuer said {line:?}"));
        let url = format!("http://127.0.0.1:{port}{}", path.unwrap_or(""));
        Some(Issuer { child, port, url })
    }

    /// One request to the issuer; the JSON answer.
    fn call(&self, method: &str, path: &str, body: &Value) -> Value {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let body = body.to_string();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        let body = &out[out.find("\r\n\r\n").expect("a response") + 4..];
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {out}"))
    }

    fn path(&self) -> &str {
        self.url.split_once(&format!("{}", self.port)).unwrap().1
    }

    /// A token: `alg`, claims over the issuer's defaults (audience: the resource).
    fn mint(&self, alg: &str, claims: Value, extra: Value) -> String {
        let mut c = json!({"aud": RESOURCE, "scope": "tools:call"});
        for (k, v) in claims.as_object().unwrap() {
            c[k] = v.clone();
        }
        let mut req = json!({"alg": alg, "claims": c});
        for (k, v) in extra.as_object().unwrap() {
            req[k] = v.clone();
        }
        let path = format!("{}/mint", self.path());
        self.call("POST", &path, &req)["token"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// A token for `audience` with `scope`.
    pub fn mint_for(&self, audience: &str, alg: &str, scope: &str) -> String {
        self.mint(alg, json!({"aud": audience, "scope": scope}), json!({}))
    }

    /// The issuer's `/stats` counters.
    pub fn stats(&self) -> Value {
        let path = format!("{}/stats", self.path());
        self.call("GET", &path, &json!({}))
    }

    fn jwks_fetches(&self) -> u64 {
        let path = format!("{}/stats", self.path());
        self.call("GET", &path, &json!({}))["jwks_fetches"]
            .as_u64()
            .unwrap()
    }
}

impl Drop for Issuer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `GET path` on 127.0.0.1:`port`, the body as JSON (asserting 200).
pub fn get_json(port: u16, path: &str) -> Value {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    let body = &out[out.find("\r\n\r\n").unwrap() + 4..];
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {out}"))
}

fn bearer(s: &Server, token: &str, require: Option<&str>) -> Resp {
    let auth = format!("Bearer {token}");
    let mut h = vec![("Authorization", auth.as_str())];
    if let Some(r) = require {
        h.push(("X-MCP-Require", r));
    }
    s.get("/auth", &h)
}

fn serve_for(e: &Env, issuer: &Issuer, extra: &[&str]) -> Server {
    let file = e.path().join("verifier.json");
    e.cmd()
        .args(["publish", file.to_str().unwrap()])
        .assert()
        .success();
    let mut args = vec!["--resource", RESOURCE, "--issuer", &issuer.url];
    args.extend_from_slice(extra);
    Server::start(&file, &args)
}

/// Every accepted algorithm passes; every token that must fail fails with the status, code
/// and challenge of docs/oauth.md; a key still works beside tokens.
#[test]
fn tokens_are_accepted_and_refused_as_the_specification_says() {
    let Some(issuer) = Issuer::start(None) else {
        return;
    };
    let e = Env::with_vault();
    let (id, key) = e.create("ci", &[]);
    let s = serve_for(&e, &issuer, &[]);
    for alg in ["RS256", "PS256", "ES256", "EdDSA"] {
        let r = bearer(
            &s,
            &issuer.mint(alg, json!({"sub": "alice"}), json!({})),
            None,
        );
        assert_eq!(r.status, 200, "{alg}: {}", r.raw);
        assert_eq!(r.header("x-mcp-subject"), Some("alice"));
        assert_eq!(r.header("x-mcp-key-permissions"), Some("tools:call"));
    }
    let now = chrono::Utc::now().timestamp();
    let refused = [
        (
            "expired",
            issuer.mint("ES256", json!({"exp": now - 120}), json!({})),
            "EXPIRED",
        ),
        (
            "not yet valid",
            issuer.mint("ES256", json!({"nbf": now + 600}), json!({})),
            "INVALID_TOKEN",
        ),
        (
            "another audience",
            issuer.mint(
                "ES256",
                json!({"aud": "https://other.example.com"}),
                json!({}),
            ),
            "INVALID_TOKEN",
        ),
        (
            "no audience",
            issuer.mint("ES256", json!({"aud": null}), json!({})),
            "INVALID_TOKEN",
        ),
        (
            "another issuer",
            issuer.mint("ES256", json!({"iss": "http://127.0.0.1:9"}), json!({})),
            "INVALID_TOKEN",
        ),
        (
            "no exp",
            issuer.mint("ES256", json!({"exp": null}), json!({})),
            "INVALID_TOKEN",
        ),
        (
            "alg none",
            issuer.mint("none", json!({}), json!({})),
            "INVALID_TOKEN",
        ),
        (
            "HS256 with the public key",
            issuer.mint("HS256", json!({}), json!({})),
            "INVALID_TOKEN",
        ),
        (
            "a forged signature",
            issuer.mint("RS256", json!({}), json!({"key": "foreign"})),
            "INVALID_TOKEN",
        ),
    ];
    for (what, token, code) in &refused {
        let r = bearer(&s, token, None);
        assert_eq!(r.status, 401, "{what}: {}", r.raw);
        assert_eq!(&r.code(), code, "{what}");
        let c = r.header("www-authenticate").unwrap();
        assert!(
            c.starts_with("Bearer error=\"invalid_token\""),
            "{what}: {c}"
        );
        assert!(
            c.contains(&format!("resource_metadata=\"{METADATA}\"")),
            "{what}: {c}"
        );
        assert!(!r.raw.contains(token.as_str()), "{what}: the token echoed");
    }
    // An audience list holding the resource is fine.
    let aud = issuer.mint(
        "EdDSA",
        json!({"aud": ["https://x.example.com", RESOURCE]}),
        json!({}),
    );
    assert_eq!(bearer(&s, &aud, None).status, 200);
    // A scope the request needs and the token lacks: 403 naming only that scope.
    let narrow = issuer.mint(
        "ES256",
        json!({"scope": "tools:call:add prompts:get"}),
        json!({}),
    );
    let r = bearer(&s, &narrow, Some("tools:call:echo"));
    assert_eq!(r.status, 403, "{}", r.raw);
    let c = r.header("www-authenticate").unwrap();
    assert!(
        c.contains("error=\"insufficient_scope\", scope=\"tools:call:echo\""),
        "{c}"
    );
    assert!(c.contains("resource_metadata="), "{c}");
    assert_eq!(bearer(&s, &narrow, Some("tools:call:add")).status, 200);
    // No credentials: where to get a token.
    let r = s.get("/auth", &[("X-MCP-Require", "tools:call")]);
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("www-authenticate"),
        Some(format!("Bearer resource_metadata=\"{METADATA}\", scope=\"tools:call\"").as_str())
    );
    // Keys as before, with their subject.
    let r = s.auth_x(&key);
    assert_eq!(
        (r.status, r.header("x-mcp-subject")),
        (200, Some(id.as_str()))
    );
    let r = s.get("/auth", &[("Authorization", &format!("Bearer {key}"))]);
    assert_eq!(r.status, 200, "a key as a Bearer value is still a key");
    assert_eq!(s.metric("mcp_key_serve_tokens_total{result=\"VALID\"}"), 6);
    assert_eq!(
        s.metric("mcp_key_serve_tokens_total{result=\"EXPIRED\"}"),
        1
    );
    assert_eq!(
        s.metric("mcp_key_serve_tokens_total{result=\"INSUFFICIENT_SCOPE\"}"),
        1
    );
    for (_, token, _) in &refused {
        assert!(!s.log().contains(token.as_str()), "no token in the log");
    }
}

/// After the issuer rotates its keys, the first token with a new kid makes `serve` fetch
/// the keys again and pass; made-up kids after that cost no fetch (at most one per 30 s);
/// a token of a key rotated out is refused.
#[test]
fn key_rotation_is_followed_with_bounded_refetches() {
    let Some(issuer) = Issuer::start(Some("/realms/mcp")) else {
        return;
    };
    let e = Env::with_vault();
    let s = serve_for(&e, &issuer, &[]);
    let before = issuer.mint("RS256", json!({}), json!({}));
    assert_eq!(bearer(&s, &before, None).status, 200);
    assert_eq!(issuer.jwks_fetches(), 1, "one fetch at start");
    issuer.call("POST", "/realms/mcp/rotate", &json!({}));
    let after = issuer.mint("RS256", json!({}), json!({}));
    let r = bearer(&s, &after, None);
    assert_eq!(r.status, 200, "{}\n{}", r.raw, s.log());
    assert_eq!(
        issuer.jwks_fetches(),
        2,
        "the new kid fetched the keys once"
    );
    for i in 0..20 {
        let made_up = issuer.mint("RS256", json!({}), json!({"kid": format!("nope-{i}")}));
        assert_eq!(bearer(&s, &made_up, None).status, 401);
    }
    assert_eq!(
        issuer.jwks_fetches(),
        2,
        "unknown kids within 30 s fetch nothing"
    );
    let retired = issuer.mint("ES256", json!({}), json!({"key": "retired"}));
    assert_eq!(bearer(&s, &retired, None).status, 401);
    // The token verified before the rotation is remembered until it expires.
    assert_eq!(bearer(&s, &before, None).status, 200);
}

/// `--jwks FILE`: no discovery, the keys from the file; the metadata route at both paths.
#[test]
fn offline_keys_and_the_metadata_route() {
    let Some(issuer) = Issuer::start(None) else {
        return;
    };
    let e = Env::with_vault();
    let jwks = issuer.call("GET", "/jwks", &json!({}));
    let file = e.path().join("jwks.json");
    std::fs::write(&file, jwks.to_string()).unwrap();
    let s = serve_for(
        &e,
        &issuer,
        &["--jwks", file.to_str().unwrap(), "--scope", "tools:call"],
    );
    let r = bearer(&s, &issuer.mint("EdDSA", json!({}), json!({})), None);
    assert_eq!(r.status, 200, "{}", r.raw);
    assert_eq!(
        issuer.jwks_fetches(),
        1,
        "nothing fetched but this test's own copy"
    );
    for path in [
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-protected-resource/mcp",
    ] {
        let r = s.get(path, &[]);
        assert_eq!(r.status, 200, "{path}");
        let doc = r.json();
        assert_eq!(doc["resource"], RESOURCE);
        assert_eq!(doc["authorization_servers"], json!([issuer.url]));
        assert_eq!(doc["scopes_supported"], json!(["tools:call"]));
        assert_eq!(doc["bearer_methods_supported"], json!(["header"]));
    }
    // Half the settings is a usage error, not a silent key-only server.
    let out = e
        .cmd()
        .args(["serve", "--verifier", "v.json", "--issuer", &issuer.url])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--resource"));
    let out = e
        .cmd()
        .args([
            "serve",
            "--verifier",
            "v.json",
            "--resource",
            RESOURCE,
            "--issuer",
            "http://id.example.com",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "plain HTTP off loopback");
}
