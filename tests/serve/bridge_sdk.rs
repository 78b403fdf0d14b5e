//! The bridge (`serve --authorization-server`) end to end with the official Python SDK's
//! OAuth client, through the documented nginx configuration to the SDK's MCP server, all on
//! 127.0.0.1: the client identifies itself by a client ID metadata document this test serves
//! over HTTPS, the test plays the person at the consent page, and once the key is revoked in
//! the vault its access token and its refresh token stop working. The same again with two
//! bridges sharing their state in Redis behind nginx's round robin.
//!
//! Needs what tests/serve/nginx.rs needs (nginx with auth_request, a Python with `mcp` and
//! `uvicorn`), `openssl` for the document's throwaway CA, and for the fleet `redis-server`.
//! With `CI=true` a missing prerequisite fails the test; otherwise it is skipped with the
//! reason printed.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{json, Value};

use crate::cluster::Pki;
use crate::fleet::{wait_until, Redis};
use crate::harness::{assert_no_secret, Server};
use crate::nginx::{cli, free_port, logs, prerequisites, vault_with_key, Extra, Kill, Stack};

/// The client's redirect URI: never contacted (the person's browser reads the Location).
const REDIRECT: &str = "http://127.0.0.1:9/callback";
/// The name the client metadata document gives (the SDK sends no name of its own: the
/// consent page can only have it from the document).
const DOCUMENT_NAME: &str = "Bridge e2e (a document on 127.0.0.1)";

/// The bridge's routes, public, from serve (its issuer is the origin of `--resource`, so
/// they are under this server's root).
const BRIDGE_LOCATIONS: &str = r#"
        # The authorization server (serve --authorization-server): its metadata, keys,
        # consent page, token, registration and revocation endpoints.
        location ~ ^/(\.well-known/oauth-authorization-server|jwks\.json|authorize|token|register|revoke)$ {
            proxy_pass http://mcp_key_serve;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
"#;

/// A client ID metadata document served over HTTPS on 127.0.0.1 (a certificate of the
/// throwaway CA of `pki` for IP 127.0.0.1) at `/client.json`; the path of every request
/// read over TLS is recorded.
struct Document {
    url: String,
    requests: Arc<Mutex<Vec<String>>>,
}

impl Document {
    fn start(pki: &Pki) -> Document {
        let certs: Vec<CertificateDer<'static>> =
            CertificateDer::pem_file_iter(pki.path("srv.crt"))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
        let key = PrivateKeyDer::from_pem_file(pki.path("srv.key")).unwrap();
        let config = Arc::new(
            rustls::ServerConfig::builder()
                .with_no_client_auth()
                .with_single_cert(certs, key)
                .unwrap(),
        );
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!(
            "https://127.0.0.1:{}/client.json",
            listener.local_addr().unwrap().port()
        );
        let body = json!({
            "client_id": url,
            "client_name": DOCUMENT_NAME,
            "redirect_uris": [REDIRECT],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
        })
        .to_string();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&requests);
        std::thread::spawn(move || {
            for tcp in listener.incoming() {
                let Ok(tcp) = tcp else { continue };
                let (config, body, seen) = (Arc::clone(&config), body.clone(), Arc::clone(&seen));
                std::thread::spawn(move || {
                    let _ = answer(tcp, config, &body, &seen);
                });
            }
        });
        Document { url, requests }
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

/// One HTTPS request: its path recorded, the document (or a 404) sent back.
fn answer(
    tcp: TcpStream,
    config: Arc<rustls::ServerConfig>,
    body: &str,
    seen: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    tcp.set_read_timeout(Some(Duration::from_secs(5)))?;
    tcp.set_write_timeout(Some(Duration::from_secs(5)))?;
    let conn = rustls::ServerConnection::new(config).map_err(std::io::Error::other)?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 8192 {
        if tls.read(&mut byte)? == 0 {
            break;
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let path = head.split(' ').nth(1).unwrap_or("").to_string();
    seen.lock().unwrap().push(path.clone());
    let (status, body) = if path == "/client.json" {
        ("200 OK", body)
    } else {
        ("404 Not Found", "{}")
    };
    write!(
        tls,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    )?;
    tls.conn.send_close_notify();
    tls.flush()
}

/// The script's stdout, line by line, each with the time it arrived.
struct Lines {
    rx: Receiver<(Instant, String)>,
    got: Vec<(Instant, String)>,
}

impl Lines {
    /// Reads until a line satisfies `done` (its index), the script closes its output, or
    /// `limit` passes (`None` for both).
    fn until(&mut self, limit: Duration, done: impl Fn(&str) -> bool) -> Option<usize> {
        let end = Instant::now() + limit;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(line) => {
                    let hit = done(&line.1);
                    self.got.push(line);
                    if hit {
                        return Some(self.got.len() - 1);
                    }
                }
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return None,
            }
        }
    }

    fn text(&self) -> String {
        self.got
            .iter()
            .map(|(_, l)| l.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn line(&self, i: usize) -> &str {
        &self.got[i].1
    }

    /// The index of the first line at or after `from` satisfying `f`.
    fn find(&self, from: usize, f: impl Fn(&str) -> bool) -> Option<usize> {
        (from..self.got.len()).find(|&i| f(&self.got[i].1))
    }
}

/// `METHOD URL STATUS` of a `STEP` line.
fn step(line: &str) -> Option<String> {
    let rest = line.strip_prefix("STEP ")?;
    Some(rest.splitn(4, ' ').take(3).collect::<Vec<_>>().join(" "))
}

/// Whether `line` is the `STEP` of a `tools/call` POST to `resource` answered `status`.
fn tool_call(line: &str, resource: &str, status: u16) -> bool {
    step(line).as_deref() == Some(&format!("POST {resource} {status}"))
        && line.contains(" rpc=tools/call")
}

/// The value of `name=` in a line of `name=value` words.
fn word<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    line.split(' ')
        .find_map(|w| w.strip_prefix(name)?.strip_prefix('='))
}

/// The official Python SDK's OAuthClientProvider, given a `client_metadata_url`, against the
/// bridge behind nginx (`bridge_client.py`). The authorization server's metadata (read
/// through nginx) offers both dynamic registration and client ID metadata documents; the SDK
/// takes the document: its client id is the document's HTTPS URL on 127.0.0.1, which serve
/// (`--allow-private-clients`, trusting the test's CA through `SSL_CERT_FILE`) fetches once,
/// and `/register` is never called. Phase 1, from no credentials: 401 with
/// `resource_metadata`, the resource metadata, the authorization server's metadata, the
/// authorization request (PKCE S256, the resource, the scope), the consent page (the
/// document's client name; the test's person posts the key, given to the script through its
/// environment), the 302 with code, state and iss, the code exchange, the tool call (which
/// runs upstream, told the key's id). Phase 2: the key is revoked with the CLI (which
/// republishes the verifier serve follows); the same access token is refused 401
/// `invalid_token` within 5 s, the SDK's re-authorization meets a consent page that refuses
/// the revoked key, and once the SDK takes the access token for expired, its refresh with the
/// refresh token is refused `invalid_grant`. No tool runs upstream once the token is refused,
/// and no key or token reaches the client's output or a log.
#[test]
fn the_sdk_oauth_client_with_a_client_id_metadata_document_and_the_bridge() {
    sdk_flow(None);
}

/// What [`sdk_flow`] leaves for a test to look at further: the stack, still running, the
/// client's output, and the issuer.
struct Flow {
    stack: Stack,
    lines: Lines,
    issuer: String,
    _tmp: tempfile::TempDir,
}

/// The flow of the test above, with every one of its assertions, against one bridge, or
/// (`state`: the URL of the authorization state in Redis) a fleet of two behind nginx's
/// round robin, each with the same arguments, the same signing key and its own usage file.
/// `None` when a prerequisite is missing (the test skipped).
fn sdk_flow(state: Option<&str>) -> Option<Flow> {
    let started = Instant::now();
    let (nginx, python) = prerequisites()?;
    let pki = Pki::make()?;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (key, id, verifier) = vault_with_key(dir, &["-p", "tools:call"]);
    let document = Document::start(&pki);
    let cimd = document.url.clone();
    let port = free_port();
    let issuer = format!("http://127.0.0.1:{port}");
    let resource = format!("{issuer}/mcp");
    let signing_key = dir.join("signing.jwk");
    let ca = pki.path("ca.crt");
    let mut serve_args = vec![
        "--resource",
        resource.as_str(),
        "--authorization-server",
        "--signing-key",
        signing_key.to_str().unwrap(),
        "--allow-private-clients",
        "--scope",
        "tools:call",
    ];
    // A fleet: the state in Redis, and each instance its own usage file.
    let usage: Vec<String> = ["a", "b"]
        .iter()
        .map(|n| dir.join(format!("usage.{n}.json")).display().to_string())
        .collect();
    let own: Vec<[&str; 2]> = usage.iter().map(|u| ["--usage", u.as_str()]).collect();
    let mut serve_own: Vec<&[&str]> = Vec::new();
    if let Some(url) = state {
        serve_args.extend(["--authorization-state", url]);
        serve_own = own.iter().map(|a| &a[..]).collect();
    }
    let stack = Stack::start_with(
        port,
        &nginx,
        &python,
        dir,
        &verifier,
        &serve_args,
        &Extra {
            serve_env: &[("SSL_CERT_FILE", ca.to_str().unwrap())],
            nginx_locations: BRIDGE_LOCATIONS,
            serve_own: &serve_own,
        },
    );
    let instances = stack.serves().count();
    // serve fetches the document over TLS (the only way the page knows its name), once per
    // instance at most: each caches it.
    let fetched_once_each = || {
        let fetched = document.requests();
        assert!(
            !fetched.is_empty()
                && fetched.len() <= instances
                && fetched.iter().all(|p| p == "/client.json"),
            "{fetched:?} by {instances} instance(s)"
        );
    };
    // What the SDK will read: both ways for a client to have an id are offered.
    let m = crate::oauth::get_json(port, "/.well-known/oauth-authorization-server");
    assert_eq!(m["issuer"], issuer.as_str());
    assert_eq!(m["client_id_metadata_document_supported"], true, "{m}");
    assert_eq!(
        m["registration_endpoint"],
        format!("{issuer}/register"),
        "{m}"
    );

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/serve/mcp/bridge_client.py");
    let err_file = dir.join("bridge-client.err");
    let mut child = Command::new(&python)
        .arg(&script)
        .arg(&resource)
        .arg(&cimd)
        .env("MCP_TEST_KEY", &key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&err_file).unwrap())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut kids = Kill(vec![child]);
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send((Instant::now(), line)).is_err() {
                break;
            }
        }
    });
    let mut lines = Lines {
        rx,
        got: Vec::new(),
    };
    let context = |lines: &Lines| {
        format!(
            "--- client:\n{}\n--- client stderr:\n{}\n--- serve:\n{}\n--- logs:\n{}",
            lines.text(),
            std::fs::read_to_string(&err_file).unwrap_or_default(),
            stack.serve_logs(),
            logs(dir)
        )
    };

    // Phase 1.
    let ready = lines.until(Duration::from_secs(90), |l| {
        l == "READY" || l.starts_with("FAILED") || l.starts_with("NO-GO")
    });
    assert!(
        ready.is_some_and(|i| lines.line(i) == "READY"),
        "phase 1 did not finish (90 s)\n{}",
        context(&lines)
    );
    let at = |lines: &Lines, from: usize, want: &str| -> usize {
        lines
            .find(from, |l| step(l).as_deref() == Some(want))
            .unwrap_or_else(|| panic!("no {want:?} after line {from} in\n{}", context(lines)))
    };
    let challenged = lines
        .find(0, |l| {
            step(l).is_some_and(|s| s.ends_with(&format!(" {resource} 401")))
        })
        .unwrap_or_else(|| panic!("no 401 in\n{}", context(&lines)));
    assert!(
        lines.line(challenged).contains(&format!(
            "resource_metadata=\"{issuer}/.well-known/oauth-protected-resource/mcp\""
        )),
        "{}",
        context(&lines)
    );
    let prm = at(
        &lines,
        challenged,
        &format!("GET {issuer}/.well-known/oauth-protected-resource/mcp 200"),
    );
    let asm = at(
        &lines,
        prm,
        &format!("GET {issuer}/.well-known/oauth-authorization-server 200"),
    );
    let authorize = lines
        .find(asm, |l| l.starts_with("AUTHORIZE "))
        .unwrap_or_else(|| panic!("no authorization request in\n{}", context(&lines)));
    assert_eq!(
        lines.line(authorize),
        format!(
            "AUTHORIZE client_id={cimd} redirect_uri={REDIRECT} resource={resource} \
             scope=tools:call response_type=code code_challenge_method=S256 \
             code_challenge=present"
        ),
        "{}",
        context(&lines)
    );
    let page = at(&lines, authorize, &format!("GET {issuer}/authorize 200"));
    assert_eq!(
        lines.line(page + 1),
        format!(
            "CONSENT-PAGE client='{DOCUMENT_NAME}' fields=csrf,decision,key,request \
             action=/authorize cookie=__Host-mcp-consent"
        ),
        "{}",
        context(&lines)
    );
    let consented = at(&lines, page, &format!("POST {issuer}/authorize 302"));
    assert_eq!(
        lines.line(consented + 1),
        "REDIRECTED code iss state",
        "{}",
        context(&lines)
    );
    let exchanged = at(&lines, consented, &format!("POST {issuer}/token 200"));
    assert!(
        lines
            .line(exchanged)
            .contains(&format!("grant_type=authorization_code client_id={cimd}")),
        "{}",
        context(&lines)
    );
    let text = lines.text();
    assert!(
        !text.contains("/register"),
        "the SDK registered instead of using its document\n{}",
        context(&lines)
    );
    let tokens = lines
        .find(0, |l| l.starts_with("TOKENS "))
        .map(|i| lines.line(i).to_string())
        .unwrap_or_else(|| panic!("{}", context(&lines)));
    let (access_fp, refresh_fp) = (
        word(&tokens, "tok").unwrap().to_string(),
        word(&tokens, "rt").unwrap().to_string(),
    );
    assert_eq!(word(&tokens, "scope"), Some("tools:call"), "{tokens}");
    assert_eq!(word(&tokens, "expires_in"), Some("900"), "{tokens}");
    assert_eq!(word(&tokens, "client_id"), Some(cimd.as_str()), "{tokens}");
    let called = lines
        .find(exchanged, |l| tool_call(l, &resource, 200))
        .unwrap_or_else(|| panic!("no tools/call answered 200 in\n{}", context(&lines)));
    assert!(
        lines.line(called).contains(&format!("tok={access_fp}")),
        "{}",
        context(&lines)
    );
    assert!(
        text.contains("\nRESULT echo: hello\n"),
        "{}",
        context(&lines)
    );
    let claims: Value = lines
        .find(0, |l| l.starts_with("CLAIMS "))
        .and_then(|i| serde_json::from_str(&lines.line(i)["CLAIMS ".len()..]).ok())
        .unwrap_or_else(|| panic!("{}", context(&lines)));
    assert_eq!(claims["iss"], issuer.as_str(), "{claims}");
    assert_eq!(claims["aud"], resource.as_str(), "{claims}");
    assert_eq!(claims["sub"], id.as_str(), "{claims}");
    assert_eq!(claims["client_id"], cimd.as_str(), "{claims}");
    assert_eq!(claims["scope"], "tools:call", "{claims}");
    fetched_once_each();
    assert!(
        stack
            .serve_logs()
            .contains(&format!("bridge: key_id={id} allowed client {cimd}")),
        "{}",
        context(&lines)
    );
    // The upstream was told which key the token stands for.
    let ids = std::fs::read_to_string(&stack.seen).unwrap_or_default();
    assert!(
        ids.lines().any(|l| l == id),
        "X-MCP-Key-Id upstream: {ids:?}"
    );

    // Phase 2: the key revoked in the vault; `revoke` republishes the verifier.
    cli(dir, &["revoke", &id]);
    let revoked = Instant::now();
    if instances > 1 {
        // Each instance reads the verifier on its own clock (every 200 ms): all have the
        // revocation before the client goes on, so that whichever the consent page's answer
        // lands on after the refusal refuses the key.
        wait_until(
            "every instance refuses the key",
            Duration::from_secs(5),
            || stack.serves().all(|s| s.auth_x(&key).status == 401),
        );
    }
    stdin.write_all(b"go\n").unwrap();
    stdin.flush().unwrap();
    let phase2 = lines.got.len();
    let end = lines.until(Duration::from_secs(90), |l| {
        l.starts_with("AFTER-REFRESH") || l.starts_with("FAILED") || l == "NEVER-REFUSED"
    });
    assert!(
        end.is_some_and(|i| lines.line(i).starts_with("AFTER-REFRESH refused")),
        "phase 2 did not finish as expected (90 s)\n{}",
        context(&lines)
    );
    let exit_by = Instant::now() + Duration::from_secs(30);
    let code = loop {
        if let Some(s) = kids.0[0].try_wait().unwrap() {
            break s.code();
        }
        assert!(
            Instant::now() < exit_by,
            "the client did not exit\n{}",
            context(&lines)
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    lines.until(Duration::from_secs(5), |_| false);
    assert_eq!(code, Some(0), "{}", context(&lines));

    // The same access token, refused at the first reload after the revocation: a tool call
    // with it is answered 401 (the SDK lists the tools after each call: if the reload fell
    // between the two, the list was refused first, and the next attempt's call).
    let refused = lines
        .find(phase2, |l| {
            tool_call(l, &resource, 401) && l.contains(&format!("tok={access_fp}"))
        })
        .unwrap_or_else(|| panic!("the token was never refused\n{}", context(&lines)));
    let after = lines.got[refused].0.duration_since(revoked);
    assert!(
        after < Duration::from_secs(5),
        "the revoked key's token was accepted for {after:?}\n{}",
        context(&lines)
    );
    assert!(
        lines.line(refused).contains("error=\"invalid_token\""),
        "{}",
        context(&lines)
    );
    for i in phase2..refused {
        let l = lines.line(i);
        if step(l).is_some_and(|s| s.starts_with(&format!("POST {resource} "))) {
            assert!(
                l.contains(&format!("tok={access_fp}")),
                "{l}\n{}",
                context(&lines)
            );
        }
    }
    // The SDK authorizes again; the page refuses the revoked key, and the call fails.
    let again = at(&lines, refused, &format!("GET {issuer}/authorize 200"));
    let no = at(&lines, again, &format!("POST {issuer}/authorize 400"));
    assert!(
        lines
            .line(no + 1)
            .starts_with("CONSENT-REFUSED 400 This key is not accepted here"),
        "{}",
        context(&lines)
    );
    let failed = lines
        .find(no, |l| l.starts_with("REFUSED "))
        .unwrap_or_else(|| panic!("{}", context(&lines)));
    // The refresh: invalid_grant; the SDK drops its tokens, the next request carries none.
    let expire = lines
        .find(failed, |l| l == "EXPIRE")
        .unwrap_or_else(|| panic!("{}", context(&lines)));
    let refresh = at(&lines, expire, &format!("POST {issuer}/token 400"));
    assert!(
        lines.line(refresh).contains(&format!(
            "grant_type=refresh_token rt={refresh_fp} client_id={cimd} error=invalid_grant"
        )),
        "{}",
        context(&lines)
    );
    let bare = at(&lines, refresh, &format!("POST {resource} 401"));
    assert!(!lines.line(bare).contains("tok="), "{}", context(&lines));
    let no = at(&lines, bare, &format!("POST {issuer}/authorize 400"));
    assert!(
        lines.line(no + 1).starts_with("CONSENT-REFUSED 400"),
        "{}",
        context(&lines)
    );
    let text = lines.text();
    assert!(
        lines
            .find(phase2, |l| step(l).is_some_and(
                |s| s.starts_with(&format!("POST {issuer}/token 200"))
            ))
            .is_none(),
        "a token was issued after the revocation\n{}",
        context(&lines)
    );
    assert!(
        !text.contains("/register") && !logs(dir).contains("/register"),
        "{}",
        context(&lines)
    );
    assert!(
        stack.serve_logs().contains(
            "bridge: a refresh was refused (the key behind this refresh token is no longer valid)"
        ),
        "{}",
        context(&lines)
    );
    fetched_once_each();

    // Upstream: `echo` ran once per tool call let through, none after the refusal.
    let through: Vec<usize> = (0..lines.got.len())
        .filter(|&i| tool_call(lines.line(i), &resource, 200))
        .collect();
    assert!(through.iter().all(|&i| i < refused), "{}", context(&lines));
    let calls = std::fs::read_to_string(dir.join("seen-key-ids.txt.calls")).unwrap_or_default();
    assert_eq!(calls, "echo\n".repeat(through.len()), "{}", context(&lines));

    // No key and no token anywhere they could leak.
    let client_err = std::fs::read_to_string(&err_file).unwrap_or_default();
    let all = format!(
        "{text}\n{client_err}\n{}\n{}",
        logs(dir),
        stack.serve_logs()
    );
    assert_no_secret(
        "the client's output, serve's and nginx's logs",
        &all,
        &[&key],
    );
    assert!(!all.contains("eyJ"), "a token in\n{all}");
    eprintln!(
        "bridge ({instances} instance(s)) + SDK: the revoked key's token refused {after:?} \
         after `revoke` returned; the whole test took {:?}",
        started.elapsed()
    );
    Some(Flow {
        stack,
        lines,
        issuer,
        _tmp: tmp,
    })
}

/// The same flow against a fleet: nginx's upstream lists two bridges (`--authorization-state`
/// in a Redis on 127.0.0.1 started by the test, one signing key, a usage file each) in round
/// robin, so the SDK's requests, the person's and the tool calls' `/auth` subrequests land on
/// both. Every assertion of the test of one bridge holds (the document fetched once per
/// instance at most); each instance let some of the access tokens through `/auth`, whichever
/// issued them; the answers on the consent page and at `/token` that the two instances count
/// add up to the ones the client saw, each instance having given some; the state is in the
/// test's Redis.
#[test]
fn the_sdk_oauth_client_and_a_fleet_of_two_bridges_behind_nginx() {
    let Some(redis) = Redis::start() else {
        return;
    };
    let Some(flow) = sdk_flow(Some(&redis.url("sdk"))) else {
        return;
    };
    let (lines, issuer) = (&flow.lines, &flow.issuer);
    let serves: Vec<&Server> = flow.stack.serves().collect();
    assert_eq!(serves.len(), 2);
    let valid: Vec<u64> = serves
        .iter()
        .map(|s| s.metric("mcp_key_serve_tokens_total{result=\"VALID\"}"))
        .collect();
    assert!(
        valid.iter().all(|&n| n > 0),
        "tokens let through per instance: {valid:?}\n{}",
        flow.stack.serve_logs()
    );
    // What both instances counted, against the client's steps; each answered some (the
    // person's answer and the code's exchange follow each other, so round robin splits them).
    let mut answered = vec![0; serves.len()];
    let mut counted = |line: &str| {
        let each: Vec<u64> = serves.iter().map(|s| s.metric(line)).collect();
        answered.iter_mut().zip(&each).for_each(|(a, n)| *a += n);
        each.iter().sum::<u64>()
    };
    let seen = |want: String| {
        (0..lines.got.len())
            .filter(|&i| step(lines.line(i)).as_deref() == Some(want.as_str()))
            .count() as u64
    };
    let approved = seen(format!("POST {issuer}/authorize 302"));
    let exchanged = seen(format!("POST {issuer}/token 200"));
    assert_eq!((approved, exchanged), (1, 1), "{}", lines.text());
    for (line, want) in [
        (
            "mcp_key_serve_bridge_consents_total{result=\"approved\"}",
            approved,
        ),
        (
            "mcp_key_serve_bridge_consents_total{result=\"key_refused\"}",
            seen(format!("POST {issuer}/authorize 400")),
        ),
        (
            "mcp_key_serve_bridge_grants_total{grant=\"authorization_code\",result=\"issued\"}",
            exchanged,
        ),
        (
            "mcp_key_serve_bridge_grants_total{grant=\"refresh_token\",result=\"refused\"}",
            seen(format!("POST {issuer}/token 400")),
        ),
    ] {
        assert_eq!(counted(line), want, "{line}\n{}", lines.text());
    }
    assert!(
        answered.iter().all(|&n| n > 0),
        "consent and /token answers per instance: {answered:?}\n{}",
        lines.text()
    );
    let Some(redis::Value::Array(keys)) = redis.query(&["KEYS", "mkm:{sdk}:bridge:*"]) else {
        panic!("the store cannot be read")
    };
    assert!(!keys.is_empty(), "no bridge state in the store");
    eprintln!(
        "fleet of two bridges, per instance: tokens let through /auth {valid:?}, consent \
         and /token answers {answered:?}"
    );
}
