//! End to end: real nginx (`auth_request`) → `serve` → a real MCP server built
//! with the official Python SDK; the SDK's own client calls a tool with a valid key
//! (works), with none and with a wrong one (refused); the key is revoked and the verifier
//! republished by `revoke` itself, and the same client is refused within 2 s with nothing
//! restarted; the usage file then shows the key's last use.
//!
//! Needs `/usr/sbin/nginx` (or `$NGINX`) with the auth_request module, and a Python
//! (`$MCP_TEST_PYTHON`, else `python3`) with `mcp` and `uvicorn`. With `CI=true` a missing
//! prerequisite fails the test; otherwise it is skipped with the reason printed.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::tool_or_skip;
use crate::harness::{assert_no_secret, bin, Server};

const PASS: &str = "nginx end-to-end passphrase";

/// Children killed on drop, whatever the test's outcome.
pub(crate) struct Kill(pub(crate) Vec<Child>);

impl Drop for Kill {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub(crate) fn prerequisites() -> Option<(PathBuf, String)> {
    let missing = |why: String| -> Option<(PathBuf, String)> {
        tool_or_skip("the nginx end-to-end test", false, why);
        None
    };
    let nginx = PathBuf::from(std::env::var("NGINX").unwrap_or_else(|_| "/usr/sbin/nginx".into()));
    match Command::new(&nginx).arg("-V").output() {
        Ok(o) if String::from_utf8_lossy(&o.stderr).contains("http_auth_request_module") => {}
        Ok(_) => return missing(format!("{} has no auth_request module", nginx.display())),
        Err(e) => return missing(format!("no nginx at {} ({e})", nginx.display())),
    }
    let python = std::env::var("MCP_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    match Command::new(&python)
        .args(["-c", "import mcp, uvicorn"])
        .output()
    {
        Ok(o) if o.status.success() => {}
        Ok(o) => {
            return missing(format!(
                "{python} cannot import mcp and uvicorn: {}",
                String::from_utf8_lossy(&o.stderr)
                    .trim()
                    .lines()
                    .last()
                    .unwrap_or("")
            ))
        }
        Err(e) => return missing(format!("cannot run {python}: {e}")),
    }
    Some((nginx, python))
}

pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_for_port(port: u16, what: &str, children: &mut Kill) {
    let end = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        for c in &mut children.0 {
            if let Ok(Some(s)) = c.try_wait() {
                panic!("{what} exited early: {s}");
            }
        }
        assert!(Instant::now() < end, "{what} did not listen on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The nginx configuration of docs/serve.md, with this test's ports and paths, `serve_addrs`
/// in the upstream (round robin), and `locations` added to the server block.
pub fn nginx_conf(
    dir: &Path,
    listen: u16,
    serve_addrs: &[&str],
    mcp_port: u16,
    locations: &str,
) -> String {
    let d = dir.display();
    let servers: String = serve_addrs
        .iter()
        .map(|a| format!("        server {a};\n"))
        .collect();
    format!(
        r#"daemon off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/nginx-error.log notice;
events {{ worker_connections 256; }}
http {{
    access_log {d}/nginx-access.log;
    client_body_temp_path {d}/nginx-body;
    proxy_temp_path {d}/nginx-proxy;
    fastcgi_temp_path {d}/nginx-fastcgi;
    uwsgi_temp_path {d}/nginx-uwsgi;
    scgi_temp_path {d}/nginx-scgi;

    upstream mcp_key_serve {{
{servers}        keepalive 16;
    }}

    server {{
        listen 127.0.0.1:{listen};

        # The auth subrequest: headers only, to serve's /auth.
        location = /_mcp_auth {{
            internal;
            proxy_pass http://mcp_key_serve/auth;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            # Per-route permissions, if any: proxy_set_header X-MCP-Require "tools:call";
        }}

        location /mcp {{
            auth_request /_mcp_auth;
            # Who is calling, from serve's answer only: each header is set (or, empty, removed)
            # whatever the client sent.
            auth_request_set $mcp_key_id $upstream_http_x_mcp_key_id;
            auth_request_set $mcp_subject $upstream_http_x_mcp_subject;
            auth_request_set $mcp_key_permissions $upstream_http_x_mcp_key_permissions;
            auth_request_set $mcp_key_name $upstream_http_x_mcp_key_name;
            proxy_set_header X-MCP-Key-Id $mcp_key_id;
            proxy_set_header X-MCP-Subject $mcp_subject;
            proxy_set_header X-MCP-Key-Permissions $mcp_key_permissions;
            proxy_set_header X-MCP-Key-Name $mcp_key_name;
            # Rate limits: serve's RateLimit headers go to the client, and its 429 (which
            # auth_request would turn into a 500) is given back as a 429.
            auth_request_set $mcp_auth_status $upstream_status;
            auth_request_set $mcp_ratelimit $upstream_http_ratelimit;
            auth_request_set $mcp_ratelimit_policy $upstream_http_ratelimit_policy;
            auth_request_set $mcp_retry_after $upstream_http_retry_after;
            add_header RateLimit $mcp_ratelimit always;
            add_header RateLimit-Policy $mcp_ratelimit_policy always;
            proxy_hide_header RateLimit;          # only serve's limit reaches the client
            proxy_hide_header RateLimit-Policy;
            error_page 500 = @mcp_auth_error;
            # A 403 (a missing permission or scope) keeps serve's challenge and code.
            auth_request_set $mcp_www_authenticate $upstream_http_www_authenticate;
            auth_request_set $mcp_error $upstream_http_x_mcp_error;
            error_page 403 = @mcp_auth_forbidden;
            # The MCP server needs no key: do not pass it on.
            proxy_set_header Authorization "";
            proxy_set_header X-API-Key "";
            proxy_pass http://127.0.0.1:{mcp_port};
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_read_timeout 1h;
        }}

        # OAuth: the protected resource metadata (RFC 9728), public, from serve.
        location /.well-known/oauth-protected-resource {{
            proxy_pass http://mcp_key_serve;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
{locations}
        location @mcp_auth_forbidden {{
            default_type application/json;
            add_header WWW-Authenticate $mcp_www_authenticate always;
            add_header Cache-Control no-store always;
            return 403 '{{"jsonrpc":"2.0","id":null,"error":{{"code":-32003,"message":"forbidden ($mcp_error)","data":{{"code":"$mcp_error"}}}}}}';
        }}

        location @mcp_auth_error {{
            default_type application/json;
            if ($mcp_auth_status = 400) {{
                add_header Cache-Control no-store always;
                return 400 '{{"jsonrpc":"2.0","id":null,"error":{{"code":-32020,"message":"bad request ($mcp_error)","data":{{"code":"$mcp_error"}}}}}}';
            }}
            if ($mcp_auth_status = 429) {{
                add_header Retry-After $mcp_retry_after always;
                add_header RateLimit $mcp_ratelimit always;
                add_header RateLimit-Policy $mcp_ratelimit_policy always;
                add_header Cache-Control no-store always;
                return 429 '{{"jsonrpc":"2.0","id":null,"error":{{"code":-32029,"message":"rate limit exceeded for this API key; retry after $mcp_retry_after s","data":{{"code":"RATE_LIMITED","retry_after":$mcp_retry_after}}}}}}';
            }}
            return 500;
        }}
    }}
}}
"#
    )
}

pub(crate) fn cli(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(bin())
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("MCP_KEY_VAULT", dir.join("keys.json"))
        .env("MCP_KEY_VAULT_PASSPHRASE", PASS)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs the SDK client against `url`; the key goes through the environment.
fn client(python: &str, script: &Path, url: &str, key: Option<&str>) -> (bool, String) {
    let mut c = Command::new(python);
    c.arg(script).arg(url);
    if let Some(k) = key {
        c.arg("-").env("MCP_TEST_KEY", k);
    }
    let out = c.stdin(Stdio::null()).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// A raw GET through nginx: the status and the WWW-Authenticate header.
fn probe(port: u16, key: &str) -> (u16, Option<String>) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\
         Authorization: Bearer {key}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut buf = vec![0u8; 4096];
    let mut got = 0;
    while got < buf.len() {
        match s.read(&mut buf[got..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
        if buf[..got].windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    let head = String::from_utf8_lossy(&buf[..got]).into_owned();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let www = head
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("www-authenticate:"))
        .map(|l| l.split_once(':').unwrap().1.trim().to_string());
    (status, www)
}

/// nginx (the configuration of docs/serve.md) → `serve` → the SDK's MCP server, all on
/// loopback, stopped on drop.
pub(crate) struct Stack {
    pub(crate) serve: Server,
    /// The other `serve` instances in nginx's upstream, if any ([`Extra::serve_own`]).
    pub(crate) others: Vec<Server>,
    pub(crate) _kids: Kill,
    pub(crate) port: u16,
    pub(crate) seen: PathBuf,
}

/// What a test adds to the [`Stack`]: environment variables for `serve` (the rest is
/// cleared), locations for nginx's server block, and the arguments of each `serve` instance
/// of its own, after the shared ones (its `--usage`, say): one instance per element, all in
/// nginx's upstream; none, one instance.
#[derive(Default)]
pub(crate) struct Extra<'a> {
    pub(crate) serve_env: &'a [(&'a str, &'a str)],
    pub(crate) nginx_locations: &'a str,
    pub(crate) serve_own: &'a [&'a [&'a str]],
}

impl Stack {
    fn start(
        nginx: &Path,
        python: &str,
        dir: &Path,
        verifier: &Path,
        serve_args: &[&str],
    ) -> Stack {
        Stack::start_at(free_port(), nginx, python, dir, verifier, serve_args)
    }

    /// As [`Stack::start`], nginx listening on `port` (known before `serve` starts, for a
    /// `--resource` that names it).
    fn start_at(
        port: u16,
        nginx: &Path,
        python: &str,
        dir: &Path,
        verifier: &Path,
        serve_args: &[&str],
    ) -> Stack {
        let extra = Extra::default();
        Stack::start_with(port, nginx, python, dir, verifier, serve_args, &extra)
    }

    /// As [`Stack::start_at`], with `extra`.
    pub(crate) fn start_with(
        port: u16,
        nginx: &Path,
        python: &str,
        dir: &Path,
        verifier: &Path,
        serve_args: &[&str],
        extra: &Extra<'_>,
    ) -> Stack {
        let scripts = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/serve/mcp");
        let mut others: Vec<Server> = extra
            .serve_own
            .iter()
            .map(|own| {
                let args: Vec<&str> = serve_args.iter().chain(own.iter()).copied().collect();
                Server::start_with_env(verifier, &args, extra.serve_env)
            })
            .collect();
        let serve = if others.is_empty() {
            Server::start_with_env(verifier, serve_args, extra.serve_env)
        } else {
            others.remove(0)
        };
        let mut kids = Kill(Vec::new());
        let mcp_port = free_port();
        let seen = dir.join("seen-key-ids.txt");
        kids.0.push(
            Command::new(python)
                .arg(scripts.join("server.py"))
                .arg(mcp_port.to_string())
                .arg(&seen)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(dir.join("mcp-server.log")).unwrap())
                .spawn()
                .unwrap(),
        );
        wait_for_port(mcp_port, "the MCP server", &mut kids);
        let conf = dir.join("nginx.conf");
        let addrs: Vec<&str> = std::iter::once(&serve)
            .chain(&others)
            .map(|s| s.addr.as_str())
            .collect();
        let text = nginx_conf(dir, port, &addrs, mcp_port, extra.nginx_locations);
        std::fs::write(&conf, text).unwrap();
        kids.0.push(
            Command::new(nginx)
                .arg("-p")
                .arg(dir)
                .arg("-c")
                .arg(&conf)
                .arg("-e")
                .arg(dir.join("nginx-error.log"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        wait_for_port(port, "nginx", &mut kids);
        Stack {
            serve,
            others,
            _kids: kids,
            port,
            seen,
        }
    }

    /// Every `serve` instance, the first one first.
    pub(crate) fn serves(&self) -> impl Iterator<Item = &Server> {
        std::iter::once(&self.serve).chain(&self.others)
    }

    /// What every `serve` instance logged, one after the other.
    pub(crate) fn serve_logs(&self) -> String {
        self.serves()
            .map(Server::log)
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// A vault in `dir` with one key (`create` with `extra` arguments) and its published
/// verifier: (key, id, verifier path).
pub(crate) fn vault_with_key(dir: &Path, extra: &[&str]) -> (String, String, PathBuf) {
    cli(
        dir,
        &["init", "--kdf-memory-kib", "19456", "--kdf-iterations", "2"],
    );
    let mut args = vec!["create", "e2e-bot", "--json"];
    args.extend_from_slice(extra);
    let created: serde_json::Value = serde_json::from_str(&cli(dir, &args)).unwrap();
    let key = created["key"].as_str().unwrap().to_string();
    let id = created["id"].as_str().unwrap().to_string();
    let verifier = dir.join("verifier.json");
    cli(dir, &["publish", verifier.to_str().unwrap()]);
    (key, id, verifier)
}

pub(crate) fn logs(dir: &Path) -> String {
    ["nginx-access.log", "nginx-error.log", "mcp-server.log"]
        .iter()
        .map(|f| std::fs::read_to_string(dir.join(f)).unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn nginx_auth_request_serve_and_a_real_mcp_server() {
    let Some((nginx, python)) = prerequisites() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let scripts = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/serve/mcp");
    let (key, id, verifier) = vault_with_key(dir, &[]);
    let stack = Stack::start(&nginx, &python, dir, &verifier, &[]);
    let mut serve = stack.serve;
    let (port, seen) = (stack.port, stack.seen);
    let _kids = stack._kids;
    let url = format!("http://127.0.0.1:{port}/mcp");
    let client_py = scripts.join("client.py");

    // Valid key: the tool answers, and the MCP server learned the key id from nginx.
    let (ok, out) = client(&python, &client_py, &url, Some(&key));
    assert!(
        ok && out.contains("RESULT echo: hello"),
        "{out}\n{}\n{}",
        logs(dir),
        serve.log()
    );
    let ids = std::fs::read_to_string(&seen).unwrap_or_default();
    assert!(
        ids.lines().any(|l| l == id),
        "X-MCP-Key-Id upstream: {ids:?}"
    );
    // No key, a wrong key: refused by nginx on serve's word.
    let (ok, out) = client(&python, &client_py, &url, None);
    assert!(
        !ok && out.contains("REFUSED") && out.contains("statuses=[401"),
        "{out}"
    );
    let wrong = format!("{}{}", &key[..21], "0".repeat(64));
    let (ok, out) = client(&python, &client_py, &url, Some(&wrong));
    assert!(
        !ok && out.contains("REFUSED") && out.contains("statuses=[401"),
        "{out}"
    );
    let (status, www) = probe(port, &wrong);
    assert_eq!(status, 401);
    assert!(www.unwrap_or_default().contains("invalid_token"));

    // Revoke: the published verifier is rewritten before `revoke` returns; nothing is
    // restarted.
    cli(dir, &["revoke", &id]);
    let t0 = Instant::now();
    while probe(port, &key).0 != 401 {
        assert!(
            t0.elapsed() < Duration::from_secs(2),
            "still accepted after 2 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let refused_after = t0.elapsed();
    let (ok, out) = client(&python, &client_py, &url, Some(&key));
    assert!(
        !ok && out.contains("statuses=[401"),
        "the revoked key: {out}"
    );
    eprintln!("nginx e2e: revoked key refused {refused_after:?} after the verifier was rewritten");

    // serve stops cleanly and its usage file shows the key's use.
    serve.signal("TERM");
    assert_eq!(serve.wait(Duration::from_secs(15)).code(), Some(0));
    // The usage file (docs/usage.md) beside the verifier.
    let usage_file = dir.join("verifier.json.usage.json");
    let usage: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&usage_file).unwrap()).unwrap();
    let u = &usage["keys"][&id];
    assert!(u["counts"]["VALID"].as_u64().unwrap_or(0) >= 1, "{u}");
    assert!(u["counts"]["REVOKED"].as_u64().unwrap_or(0) >= 2, "{u}");
    let last = chrono::DateTime::parse_from_rfc3339(u["last_used_at"].as_str().unwrap()).unwrap();
    assert!(chrono::Utc::now() - last.with_timezone(&chrono::Utc) < chrono::Duration::seconds(60));
    let log = serve.log();
    assert!(log.contains("verifier reloaded"), "{log}");
    assert_no_secret("serve's log", &log, &[&key, &wrong]);
    let nginx_log = std::fs::read_to_string(dir.join("nginx-access.log")).unwrap_or_default();
    assert_no_secret("nginx's access log", &nginx_log, &[&key, &wrong]);
}

/// The SDK's 2026-07-28 client (`modern_client.py`) calling `tool` at `url` with
/// `credential` (a key or an access token): whether it worked, and what it printed.
fn modern_call(python: &str, url: &str, tool: &str, credential: &str) -> (bool, String) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/serve/mcp/modern_client.py");
    let out = Command::new(python)
        .arg(script)
        .arg(url)
        .arg(tool)
        .env("MCP_TEST_KEY", credential)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// A raw POST through nginx: the status and the whole answer (the SDK server answers in
/// JSON or as an event stream; either is read to the end, bounded).
fn post_raw(port: u16, headers: &[(&str, &str)], body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = format!(
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\nConnection: close\r\n\
         Content-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = s.take(1 << 20).read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

/// Per-tool permissions behind the documented nginx configuration (auth_request sends no
/// body): a key limited to `echo` must not call `add`, whatever the client sends.
#[test]
fn nginx_per_tool_permissions_fail_closed() {
    let Some((nginx, python)) = prerequisites() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let scripts = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/serve/mcp");
    let (key, _id, verifier) = vault_with_key(dir, &["-p", "tools:call:echo"]);
    let stack = Stack::start(
        &nginx,
        &python,
        dir,
        &verifier,
        &["--tool-permissions", "--trust-routing-headers"],
    );
    let url = format!("http://127.0.0.1:{}/mcp", stack.port);
    let call = |tool: &str| modern_call(&python, &url, tool, &key);

    // The SDK's 2026-07-28 client sends Mcp-Method/Mcp-Name: its tool works, the other is
    // refused by serve (403) before the MCP server sees it.
    let (ok, out) = call("echo");
    assert!(
        ok && out.contains("RESULT echo: hello"),
        "{out}\n{}\n{}",
        logs(dir),
        stack.serve.log()
    );
    let (ok, out) = call("add");
    assert!(
        !ok && out.contains("403") && !out.contains("sum: 5"),
        "{out}"
    );

    // The handshake-era client sends no routing header: nginx shows serve no method, and
    // the request is refused instead of allowed.
    let (ok, out) = client(&python, &scripts.join("client.py"), &url, Some(&key));
    assert!(!ok && out.contains("statuses=[403"), "{out}");

    // A hostile client naming `echo` in the headers and calling `add` in the body.
    let bearer = format!("Bearer {key}");
    let add = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"add","arguments":{"a":2,"b":3},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}"#;
    // (a) with the 2026-07-28 version serve (--trust-routing-headers) decides from the
    //     headers, and the SDK server refuses the mismatch (SEP-2243): the tool never runs.
    let (status, text) = post_raw(
        stack.port,
        &[
            ("Authorization", &bearer),
            ("MCP-Protocol-Version", "2026-07-28"),
            ("Mcp-Method", "tools/call"),
            ("Mcp-Name", "echo"),
        ],
        add,
    );
    assert!(
        !text.contains("sum: 5"),
        "the mismatch reached the tool: {text}"
    );
    assert!(text.contains("-32020") || status == 400, "{status} {text}");
    // (b) with an older version (whose servers do not check the headers) serve decides
    //     nothing from them and, seeing no body, refuses.
    let (status, text) = post_raw(
        stack.port,
        &[
            ("Authorization", &bearer),
            ("MCP-Protocol-Version", "2025-11-25"),
            ("Mcp-Method", "tools/call"),
            ("Mcp-Name", "echo"),
        ],
        add,
    );
    assert_eq!(status, 403, "{text}");
    assert!(!text.contains("sum: 5"));
    assert!(
        stack
            .serve
            .log()
            .contains("else from those headers with protocol"),
        "{}",
        stack.serve.log()
    );
    let nginx_log = std::fs::read_to_string(dir.join("nginx-access.log")).unwrap_or_default();
    assert_no_secret("nginx's access log", &nginx_log, &[&key]);
    assert_no_secret("serve's log", &stack.serve.log(), &[&key]);
}

/// A key limited to 3/min behind the documented nginx configuration: three requests reach
/// the MCP server with serve's `RateLimit` headers, the fourth is answered 429 with
/// `Retry-After` and a JSON-RPC body (auth_request alone would have made it a 500), and
/// the MCP server never sees it; the SDK's client gets an error for a call over the limit.
#[test]
fn nginx_passes_a_rate_limit_refusal_as_429() {
    let Some((nginx, python)) = prerequisites() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (key, _id, verifier) = vault_with_key(dir, &["--rate-limit", "3/min"]);
    let stack = Stack::start(&nginx, &python, dir, &verifier, &[]);
    let bearer = format!("Bearer {key}");
    let list = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
    let headers = [
        ("Authorization", bearer.as_str()),
        ("MCP-Protocol-Version", "2026-07-28"),
        ("Mcp-Method", "tools/list"),
    ];
    for i in 0..3 {
        let (status, text) = post_raw(stack.port, &headers, list);
        assert_ne!(status, 429, "request {i}: {text}");
        assert_ne!(status, 500, "request {i}: {text}");
        let want = format!("RateLimit: \"key\";r={};t=", 2 - i);
        assert!(text.contains(&want), "request {i}: {text}");
        assert!(
            text.contains("RateLimit-Policy: \"key\";q=3;w=60"),
            "{text}"
        );
    }
    let (status, text) = post_raw(stack.port, &headers, list);
    assert_eq!(status, 429, "{text}\n{}", logs(dir));
    assert!(text.contains("Retry-After: 20"), "{text}");
    assert!(text.contains("RateLimit: \"key\";r=0;t="), "{text}");
    let body = &text[text.find("\r\n\r\n").unwrap() + 4..];
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert_eq!(v["error"]["code"], -32029);
    assert_eq!(v["error"]["data"]["code"], "RATE_LIMITED");
    assert_eq!(v["error"]["data"]["retry_after"], 20);
    // The SDK's own client, over the limit: refused, and says so.
    let scripts = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/serve/mcp");
    let url = format!("http://127.0.0.1:{}/mcp", stack.port);
    let (ok, out) = client(&python, &scripts.join("client.py"), &url, Some(&key));
    assert!(!ok, "{out}");
    assert!(out.contains("429"), "{out}");
    assert!(
        !logs(dir).contains(&key),
        "no key in nginx's or the server's logs"
    );
}

/// OAuth through the documented nginx configuration: a client without credentials is told
/// where the resource metadata is (401 `resource_metadata`, passed on by nginx), reads it
/// through nginx, finds the issuer and its keys there, and with a token from that issuer
/// the SDK's 2026-07-28 client calls the tool its scope allows and is refused (403
/// `insufficient_scope`) the other.
#[test]
fn nginx_serve_and_an_oauth_token() {
    let Some((nginx, python)) = prerequisites() else {
        return;
    };
    let Some(issuer) = crate::oauth::Issuer::start(None) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (_key, _id, verifier) = vault_with_key(dir, &[]);
    let port = free_port();
    let resource = format!("http://127.0.0.1:{port}/mcp");
    let stack = Stack::start_at(
        port,
        &nginx,
        &python,
        dir,
        &verifier,
        &[
            "--tool-permissions",
            "--trust-routing-headers",
            "--resource",
            &resource,
            "--issuer",
            &issuer.url,
        ],
    );
    let (status, text) = post_raw(port, &[], r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#);
    assert_eq!(status, 401, "{text}");
    let metadata = format!("http://127.0.0.1:{port}/.well-known/oauth-protected-resource/mcp");
    assert!(
        text.to_lowercase().contains(&format!(
            "www-authenticate: bearer resource_metadata=\"{metadata}\""
        )),
        "{text}"
    );
    let doc = crate::oauth::get_json(port, "/.well-known/oauth-protected-resource/mcp");
    assert_eq!(doc["resource"], resource.as_str());
    assert_eq!(doc["authorization_servers"][0], issuer.url.as_str());
    let token = issuer.mint_for(&resource, "ES256", "tools:call:echo");
    let call = |tool: &str| modern_call(&python, &resource, tool, &token);
    let (ok, out) = call("echo");
    assert!(
        ok && out.contains("RESULT echo: hello"),
        "{out}\n{}",
        stack.serve.log()
    );
    let (ok, out) = call("add");
    assert!(
        !ok && out.contains("403") && !out.contains("sum: 5"),
        "{out}"
    );
    let (status, text) = post_raw(
        port,
        &[
            ("Authorization", &format!("Bearer {token}")),
            ("MCP-Protocol-Version", "2026-07-28"),
            ("Mcp-Method", "tools/call"),
            ("Mcp-Name", "add"),
        ],
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"add","arguments":{"a":2,"b":3}}}"#,
    );
    assert_eq!(status, 403, "{text}");
    assert!(
        text.contains("error=\"insufficient_scope\", scope=\"tools:call tools:call:add\"")
            || text.contains("error=\"insufficient_scope\", scope=\"tools:call:add\""),
        "{text}"
    );
    assert!(text.contains("resource_metadata="), "{text}");
    assert!(
        text.contains(r#""data":{"code":"INSUFFICIENT_PERMISSIONS"}"#),
        "{text}"
    );
    assert!(
        !logs(dir).contains(&token),
        "no token in nginx's or the server's logs"
    );

    // Identity headers a client sends never reach the upstream: serve's (the token's
    // subject and scope, no key id or name) replace them.
    let headers_file = dir.join("seen-key-ids.txt.headers");
    let (status, text) = post_raw(
        port,
        &[
            ("Authorization", &format!("Bearer {token}")),
            ("MCP-Protocol-Version", "2026-07-28"),
            ("Mcp-Method", "ping"),
            ("X-MCP-Subject", "admin"),
            ("X-MCP-Key-Permissions", "admin,tools:call"),
            ("X-MCP-Key-Name", "root"),
            ("X-MCP-Key-Id", "forged"),
        ],
        r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#,
    );
    assert_ne!(status, 401, "{text}");
    let seen = std::fs::read_to_string(&headers_file).unwrap();
    let last = seen
        .trim_end()
        .trim_end_matches("--")
        .rsplit("--")
        .next()
        .unwrap_or("");
    assert!(last.contains("x-mcp-subject=user-1"), "{seen}");
    assert!(
        last.contains("x-mcp-key-permissions=tools:call:echo"),
        "{seen}"
    );
    for forged in ["admin", "root", "forged"] {
        assert!(
            !last.contains(forged),
            "{forged} reached the upstream: {seen}"
        );
    }
}

/// The whole OAuth flow, driven by the official Python SDK's OAuth client
/// (`OAuthClientProvider`, `oauth_client.py`) from no credentials at all: the 401's
/// `resource_metadata` leads it (through nginx) to `serve`'s metadata, that to the issuer's;
/// it registers, is authorized (code, PKCE S256, resource indicator; approved by the script's
/// redirect handler), exchanges the code, and with the token calls `echo`. The issuer grants
/// only `tools:call:echo` of the `tools:call:echo tools:call:add` asked for, so `add` is
/// refused 403 `insufficient_scope` (the SDK re-authorizes once, step-up, and is refused again).
#[test]
fn nginx_serve_and_the_sdk_oauth_flow() {
    let Some((nginx, python)) = prerequisites() else {
        return;
    };
    let Some(issuer) =
        crate::oauth::Issuer::start_with(None, &["--grant-scope", "tools:call:echo"])
    else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (_key, _id, verifier) = vault_with_key(dir, &[]);
    let port = free_port();
    let resource = format!("http://127.0.0.1:{port}/mcp");
    let stack = Stack::start_at(
        port,
        &nginx,
        &python,
        dir,
        &verifier,
        &[
            "--tool-permissions",
            "--trust-routing-headers",
            "--resource",
            &resource,
            "--issuer",
            &issuer.url,
            "--scope",
            "tools:call:echo",
            "--scope",
            "tools:call:add",
        ],
    );
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/serve/mcp/oauth_client.py");
    let out = Command::new(&python)
        .arg(script)
        .arg(&resource)
        .args(["echo", "add"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let context = || format!("{text}\n{}", stack.serve.log());
    assert_eq!(out.status.code(), Some(3), "{}", context());
    let lines: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("STEP "))
        .collect();
    // Without the challenges: `METHOD URL STATUS`.
    let steps: Vec<String> = lines
        .iter()
        .map(|l| l.splitn(4, ' ').take(3).collect::<Vec<_>>().join(" "))
        .collect();
    let at = |want: &str| {
        steps
            .iter()
            .position(|s| s == want)
            .unwrap_or_else(|| panic!("no {want:?} in\n{}", context()))
    };
    let challenged = steps
        .iter()
        .position(|s| s.ends_with(&format!(" {resource} 401")))
        .unwrap_or_else(|| panic!("no 401 in\n{}", context()));
    assert!(
        lines[challenged].contains(&format!(
            "resource_metadata=\"http://127.0.0.1:{port}/.well-known/oauth-protected-resource/mcp\""
        )),
        "{}",
        context()
    );
    let order = [
        challenged,
        at(&format!(
            "GET http://127.0.0.1:{port}/.well-known/oauth-protected-resource/mcp 200"
        )),
        at(&format!(
            "GET {}/.well-known/oauth-authorization-server 200",
            issuer.url
        )),
        at(&format!("POST {}/register 201", issuer.url)),
        at(&format!("GET {}/authorize 302", issuer.url)),
        at(&format!("POST {}/token 200", issuer.url)),
    ];
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{}", context());
    assert!(
        steps[order[5]..]
            .iter()
            .any(|s| *s == format!("POST {resource} 200")),
        "{}",
        context()
    );
    assert!(text.contains("RESULT echo: hello"), "{}", context());
    assert!(
        text.contains("REFUSED add statuses=") && !text.contains("sum: 5"),
        "{}",
        context()
    );
    // The refusal of `add` names the missing scope; the SDK steps up (authorizes again,
    // asking for it too), gets no more, and is refused again.
    let refused = at(&format!("POST {resource} 403"));
    assert!(
        lines[refused].contains("error=\"insufficient_scope\"")
            && lines[refused].contains("tools:call:add"),
        "{}",
        context()
    );
    assert_eq!(
        steps[refused..refused + 4],
        [
            format!("POST {resource} 403"),
            format!("GET {}/authorize 302", issuer.url),
            format!("POST {}/token 200", issuer.url),
            format!("POST {resource} 403"),
        ],
        "{}",
        context()
    );
    assert!(
        text.contains("GRANTED scope='tools:call:echo'"),
        "{}",
        context()
    );
    let stats = issuer.stats();
    assert_eq!(
        (stats["authorizations"].as_u64(), stats["tokens"].as_u64()),
        (Some(2), Some(2)),
        "{stats}"
    );
    assert!(
        !logs(dir).contains("eyJ"),
        "no token in nginx's or the server's logs"
    );
}

/// Node (`$MCP_TEST_NODE`, else `node`, ≥ 20), the node_modules holding the official
/// TypeScript SDK v2's client (`$MCP_TEST_TS_CLIENT_MODULES`, else
/// tests/serve/mcp/ts-client/node_modules, which `npm ci` there installs; .ci/run does so
/// before `cargo test`) and the client's version, the one that package's package.json pins.
fn node_and_ts_client() -> Option<(String, PathBuf, String)> {
    let missing = |why: String| -> Option<(String, PathBuf, String)> {
        tool_or_skip("the TypeScript SDK OAuth end-to-end test", false, why);
        None
    };
    let node = match crate::harness::node_at_least(20, "the SDK v2 client") {
        Ok(node) => node,
        Err(why) => return missing(why),
    };
    let package = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/serve/mcp/ts-client");
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(package.join("package.json")).unwrap())
            .unwrap();
    let pinned = manifest["dependencies"]["@modelcontextprotocol/client"]
        .as_str()
        .expect("package.json pins @modelcontextprotocol/client")
        .to_string();
    let modules = std::env::var_os("MCP_TEST_TS_CLIENT_MODULES")
        .map(PathBuf::from)
        .unwrap_or_else(|| package.join("node_modules"));
    let installed =
        std::fs::read_to_string(modules.join("@modelcontextprotocol/client/package.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v["version"].as_str().map(str::to_string));
    match installed {
        Some(v) if v == pinned => Some((node, modules, pinned)),
        Some(v) => missing(format!(
            "@modelcontextprotocol/client in {} is {v}, package.json pins {pinned} (run `npm ci` \
             in tests/serve/mcp/ts-client)",
            modules.display()
        )),
        None => missing(format!(
            "no @modelcontextprotocol/client in {} (run `npm ci` in tests/serve/mcp/ts-client)",
            modules.display()
        )),
    }
}

/// Runs `cmd` with its output to files in `dir` (`name`.out, `name`.err), killed after
/// `limit` (and if the test panics meanwhile): its exit code (`None` when killed) and what it
/// printed, stdout then stderr.
fn run_bounded(mut cmd: Command, dir: &Path, name: &str, limit: Duration) -> (Option<i32>, String) {
    let out = dir.join(format!("{name}.out"));
    let err = dir.join(format!("{name}.err"));
    let child = cmd
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let mut kids = Kill(vec![child]);
    let end = Instant::now() + limit;
    let code = loop {
        if let Some(status) = kids.0[0].try_wait().unwrap() {
            break status.code();
        }
        if Instant::now() >= end {
            break None; // killed by `kids`' drop
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    drop(kids);
    let text = format!(
        "{}{}",
        std::fs::read_to_string(&out).unwrap_or_default(),
        std::fs::read_to_string(&err).unwrap_or_default()
    );
    (code, text)
}

/// The whole OAuth flow again, driven by the official TypeScript SDK v2's OAuth client
/// (`@modelcontextprotocol/client`, pinned in tests/serve/mcp/ts-client: an
/// `OAuthClientProvider` given to `StreamableHTTPClientTransport`; `oauth_client.mjs` there
/// approves the authorization itself, hands the redirect to `finishAuth` and connects again)
/// on the 2026-07-28 protocol, so each request names its method and tool in `Mcp-Method` and
/// `Mcp-Name`, through nginx to `serve --tool-permissions --trust-routing-headers` (the Python
/// flow test's arguments): the 401's `resource_metadata` leads it (through nginx) to `serve`'s
/// metadata, that to the issuer's; it registers, is authorized (code, PKCE S256, resource
/// indicator), exchanges the code and calls `echo`, which runs upstream. The issuer grants only
/// `tools:call:echo`, so `add` is refused 403 `insufficient_scope` naming `tools:call:add`; the
/// SDK steps up (authorizes again, asking for it too), gets no more, is refused again, and
/// `add` never runs.
#[test]
fn nginx_serve_and_the_ts_sdk_oauth_flow() {
    let Some((nginx, python)) = prerequisites() else {
        return;
    };
    let Some((node, modules, pinned)) = node_and_ts_client() else {
        return;
    };
    let Some(issuer) =
        crate::oauth::Issuer::start_with(None, &["--grant-scope", "tools:call:echo"])
    else {
        return;
    };
    let iss = issuer.url.as_str();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (_key, _id, verifier) = vault_with_key(dir, &[]);
    let port = free_port();
    let resource = format!("http://127.0.0.1:{port}/mcp");
    let stack = Stack::start_at(
        port,
        &nginx,
        &python,
        dir,
        &verifier,
        &[
            "--tool-permissions",
            "--trust-routing-headers",
            "--resource",
            &resource,
            "--issuer",
            iss,
            "--scope",
            "tools:call:echo",
            "--scope",
            "tools:call:add",
        ],
    );
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/serve/mcp/ts-client/oauth_client.mjs");
    let mut cmd = Command::new(&node);
    cmd.arg(script)
        .arg(&resource)
        .args(["echo", "add"])
        .env("MCP_TEST_TS_CLIENT_MODULES", &modules);
    let (code, text) = run_bounded(cmd, dir, "ts-client", Duration::from_secs(90));
    assert!(!text.contains("eyJ"), "the client printed a token");
    let context = || {
        format!(
            "{text}\n--- serve:\n{}\n--- logs:\n{}",
            stack.serve.log(),
            logs(dir)
        )
    };
    assert_eq!(code, Some(3), "(None: killed after 90 s)\n{}", context());
    assert!(
        text.contains(&format!("CLIENT @modelcontextprotocol/client {pinned} ")),
        "{}",
        context()
    );
    let lines: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("STEP "))
        .collect();
    // Without what follows the status: `METHOD URL STATUS`.
    let steps: Vec<String> = lines
        .iter()
        .map(|l| l.splitn(4, ' ').take(3).collect::<Vec<_>>().join(" "))
        .collect();
    let at = |want: &str| {
        steps
            .iter()
            .position(|s| s == want)
            .unwrap_or_else(|| panic!("no {want:?} in\n{}", context()))
    };
    let challenged = at(&format!("POST {resource} 401"));
    assert!(
        lines[challenged].contains(&format!(
            "resource_metadata=\"http://127.0.0.1:{port}/.well-known/oauth-protected-resource/mcp\""
        )),
        "{}",
        context()
    );
    let order = [
        challenged,
        at(&format!(
            "GET http://127.0.0.1:{port}/.well-known/oauth-protected-resource/mcp 200"
        )),
        at(&format!(
            "GET {iss}/.well-known/oauth-authorization-server 200"
        )),
        at(&format!("POST {iss}/register 201")),
        at(&format!("GET {iss}/authorize 302")),
        at(&format!("POST {iss}/token 200")),
    ];
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{}", context());

    // The authorization requests: PKCE S256 and the resource indicator; the step-up asks for
    // `tools:call:add` beside `tools:call:echo`.
    let authorize: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("AUTHORIZE "))
        .collect();
    assert!(authorize.len() >= 2, "{}", context());
    for a in &authorize[..2] {
        for want in [
            format!("resource={resource} "),
            "response_type=code ".to_string(),
            "code_challenge_method=S256 ".to_string(),
            "code_challenge=present".to_string(),
        ] {
            assert!(a.contains(&want), "{want:?} not in {a:?}\n{}", context());
        }
    }
    assert!(
        authorize[1].contains("tools:call:add") && authorize[1].contains("tools:call:echo"),
        "{}",
        context()
    );

    // `echo`, with the token: its POST names the method and the tool in the routing headers,
    // serve lets it through, and it runs upstream (the upstream told the token's subject and
    // scope).
    let echo = (order[5]..steps.len())
        .find(|&i| {
            steps[i] == format!("POST {resource} 200")
                && lines[i].contains("mcp-method=tools/call")
                && lines[i].contains("mcp-name=echo")
        })
        .unwrap_or_else(|| panic!("no tools/call of echo answered 200 in\n{}", context()));
    assert!(
        lines[echo].contains("mcp-protocol-version=2026-07-28"),
        "{}",
        context()
    );
    assert!(text.contains("RESULT echo: hello"), "{}", context());
    let upstream =
        std::fs::read_to_string(dir.join("seen-key-ids.txt.headers")).unwrap_or_default();
    assert!(
        upstream
            .split("--\n")
            .any(|r| r.contains("x-mcp-subject=user-1\n")
                && r.contains("x-mcp-key-permissions=tools:call:echo\n")),
        "{upstream}\n{}",
        context()
    );

    // `add`: refused for want of `tools:call:add` (decided from its routing headers), the
    // SDK's step-up (authorize, token), refused again.
    let refused = at(&format!("POST {resource} 403"));
    assert!(refused > echo, "{}", context());
    for i in [refused, refused + 3] {
        let line = lines.get(i).copied().unwrap_or("");
        for want in [
            "mcp-method=tools/call",
            "mcp-name=add",
            "error=\"insufficient_scope\"",
            "tools:call:add",
        ] {
            assert!(
                line.contains(want),
                "{want:?} not in {line:?}\n{}",
                context()
            );
        }
    }
    assert_eq!(
        steps[refused..(refused + 4).min(steps.len())],
        [
            format!("POST {resource} 403"),
            format!("GET {iss}/authorize 302"),
            format!("POST {iss}/token 200"),
            format!("POST {resource} 403"),
        ],
        "{}",
        context()
    );
    assert!(
        text.contains("REFUSED add statuses=") && !text.contains("sum: 5"),
        "{}",
        context()
    );
    assert!(
        text.contains(r#"GRANTED scope="tools:call:echo""#),
        "{}",
        context()
    );
    let stats = issuer.stats();
    assert_eq!(
        (stats["authorizations"].as_u64(), stats["tokens"].as_u64()),
        (Some(2), Some(2)),
        "{stats}"
    );
    // What ran upstream: `echo`, once; `add` never.
    let calls = std::fs::read_to_string(dir.join("seen-key-ids.txt.calls")).unwrap_or_default();
    assert_eq!(calls, "echo\n", "{}", context());
    assert!(
        !logs(dir).contains("eyJ"),
        "no token in nginx's or the server's logs"
    );
}
