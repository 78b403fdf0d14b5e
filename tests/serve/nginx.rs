//! End to end (issue 13): real nginx (`auth_request`) → `serve` → a real MCP server built
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

use crate::harness::{assert_no_secret, bin, Server};

const PASS: &str = "nginx end-to-end passphrase";

/// Children killed on drop, whatever the test's outcome.
struct Kill(Vec<Child>);

impl Drop for Kill {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn prerequisites() -> Option<(PathBuf, String)> {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let missing = |why: String| -> Option<(PathBuf, String)> {
        assert!(
            !ci,
            "CI=true and the nginx end-to-end test cannot run: {why}"
        );
        eprintln!("SKIPPED nginx end-to-end test: {why}");
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

fn free_port() -> u16 {
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

/// The nginx configuration of docs/serve.md, with this test's ports and paths.
pub fn nginx_conf(dir: &Path, listen: u16, serve_addr: &str, mcp_port: u16) -> String {
    let d = dir.display();
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
        server {serve_addr};
        keepalive 16;
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
            auth_request_set $mcp_key_id $upstream_http_x_mcp_key_id;
            proxy_set_header X-MCP-Key-Id $mcp_key_id;
            # The MCP server needs no key: do not pass it on.
            proxy_set_header Authorization "";
            proxy_set_header X-API-Key "";
            proxy_pass http://127.0.0.1:{mcp_port};
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_read_timeout 1h;
        }}
    }}
}}
"#
    )
}

fn cli(dir: &Path, args: &[&str]) -> String {
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

#[test]
fn nginx_auth_request_serve_and_a_real_mcp_server() {
    let Some((nginx, python)) = prerequisites() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let scripts = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/serve/mcp");

    // A vault with one key, and its verifier, through the real CLI.
    cli(
        dir,
        &["init", "--kdf-memory-kib", "19456", "--kdf-iterations", "2"],
    );
    let created: serde_json::Value =
        serde_json::from_str(&cli(dir, &["create", "e2e-bot", "--json"])).unwrap();
    let key = created["key"].as_str().unwrap().to_string();
    let id = created["id"].as_str().unwrap().to_string();
    let verifier = dir.join("verifier.json");
    cli(dir, &["publish", verifier.to_str().unwrap()]);

    let mut serve = Server::start(&verifier, &[]);
    let mut kids = Kill(Vec::new());
    let mcp_port = free_port();
    let seen = dir.join("seen-key-ids.txt");
    kids.0.push(
        Command::new(&python)
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
    let port = free_port();
    let conf = dir.join("nginx.conf");
    std::fs::write(&conf, nginx_conf(dir, port, &serve.addr, mcp_port)).unwrap();
    kids.0.push(
        Command::new(&nginx)
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
    let url = format!("http://127.0.0.1:{port}/mcp");
    let client_py = scripts.join("client.py");

    // Valid key: the tool answers, and the MCP server learned the key id from nginx.
    let logs = || {
        ["nginx-access.log", "nginx-error.log", "mcp-server.log"]
            .iter()
            .map(|f| std::fs::read_to_string(dir.join(f)).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n")
    };
    let (ok, out) = client(&python, &client_py, &url, Some(&key));
    assert!(
        ok && out.contains("RESULT echo: hello"),
        "{out}\n{}\n{}",
        logs(),
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
    let usage = mcp_key_manager::serve::usage::load_and_merge(
        &mcp_key_manager::serve::usage::files_beside(&verifier),
    )
    .unwrap();
    let u = &usage[&id];
    assert!(u.counts["VALID"] >= 1, "{u:?}");
    assert!(u.counts["REVOKED"] >= 2, "{u:?}");
    let last = u.last_used_at.expect("last_used_at");
    assert!(chrono::Utc::now() - last < chrono::Duration::seconds(60));
    let log = serve.log();
    assert!(log.contains("verifier reloaded"), "{log}");
    assert_no_secret("serve's log", &log, &[&key, &wrong]);
    let nginx_log = std::fs::read_to_string(dir.join("nginx-access.log")).unwrap_or_default();
    assert_no_secret("nginx's access log", &nginx_log, &[&key, &wrong]);
}
