//! The real binary running `serve` on 127.0.0.1 (port chosen by the kernel, read back from
//! its first log line), a minimal HTTP/1.1 client, and a sweep of everything it printed.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use crate::common::bin;

pub struct Server {
    child: Child,
    pub addr: String,
    pub log: Arc<Mutex<String>>,
}

impl Server {
    /// Starts `serve --verifier PATH --listen 127.0.0.1:0 EXTRA…` and waits (bounded) for
    /// its "listening" line.
    pub fn start(verifier: &Path, extra: &[&str]) -> Server {
        Server::start_with_env(verifier, extra, &[])
    }

    /// As [`Server::start`], with these environment variables (the rest cleared).
    pub fn start_with_env(verifier: &Path, extra: &[&str], env: &[(&str, &str)]) -> Server {
        let mut child = Command::new(bin())
            .arg("serve")
            .arg("--verifier")
            .arg(verifier)
            .args(["--listen", "127.0.0.1:0"])
            .args(extra)
            .env_clear()
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn serve");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = Arc::clone(&log);
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.split("listening on http://").nth(1) {
                    let _ = tx.send(rest.split_whitespace().next().unwrap().to_string());
                }
                let mut l = sink.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(a) => a,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("serve did not start: {}", log.lock().unwrap());
            }
        };
        Server { child, addr, log }
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal by name (`TERM`, `INT`) with kill(1).
    pub fn signal(&self, name: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap()
            .success();
        assert!(ok);
    }

    /// Waits (bounded) for the process to exit.
    pub fn wait(&mut self, limit: Duration) -> ExitStatus {
        let end = Instant::now() + limit;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                // Let the stderr reader drain the last lines.
                std::thread::sleep(Duration::from_millis(50));
                return s;
            }
            assert!(Instant::now() < end, "serve did not exit: {}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(&self.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        s.set_write_timeout(Some(Duration::from_secs(15))).unwrap();
        s
    }

    /// One request on a new connection (`Connection: close`).
    pub fn request(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
        let mut s = self.connect();
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
            self.addr
        );
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        if !body.is_empty() || method == "POST" {
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        s.write_all(head.as_bytes()).unwrap();
        s.write_all(body).unwrap();
        read_response(&mut s)
    }

    pub fn get(&self, path: &str, headers: &[(&str, &str)]) -> Resp {
        self.request("GET", path, headers, b"")
    }

    /// `/auth` with `X-API-Key: key`.
    pub fn auth_x(&self, key: &str) -> Resp {
        self.get("/auth", &[("X-API-Key", key)])
    }

    /// `/auth` as nginx's `auth_request` sends a 2026-07-28 client's `tools/list`: headers
    /// only, the method in `Mcp-Method`.
    pub fn auth_routed(&self, key: &str) -> Resp {
        self.get(
            "/auth",
            &[
                ("X-API-Key", key),
                ("MCP-Protocol-Version", "2026-07-28"),
                ("Mcp-Method", "tools/list"),
            ],
        )
    }

    pub fn metric(&self, line_start: &str) -> u64 {
        let m = self.get("/metrics", &[]);
        m.text()
            .lines()
            .find(|l| l.starts_with(line_start))
            .unwrap_or_else(|| panic!("no {line_start} in {}", m.text()))
            .rsplit(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub raw: String,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.raw))
    }

    /// The JSON-RPC error's `data.code`.
    pub fn code(&self) -> String {
        self.json()["error"]["data"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("no data.code: {}", self.raw))
            .to_string()
    }
}

/// Reads one response until the server closes the connection (or its Content-Length).
pub fn read_response(s: &mut TcpStream) -> Resp {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let n = match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("read: {e} after {:?}", String::from_utf8_lossy(&buf)),
        };
        buf.extend_from_slice(&chunk[..n]);
        if let Some(r) = parse(&buf) {
            return r;
        }
    }
    parse(&buf)
        .unwrap_or_else(|| panic!("incomplete response: {:?}", String::from_utf8_lossy(&buf)))
}

fn parse(buf: &[u8]) -> Option<Resp> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let body = buf.get(end + 4..end + 4 + len)?.to_vec();
    Some(Resp {
        status,
        headers,
        raw: String::from_utf8_lossy(buf).into_owned(),
        body,
    })
}

/// Node (`$MCP_TEST_NODE`, else `node`) when it runs and is at least version `major`;
/// otherwise why not (`needs` names what needs it).
pub fn node_at_least(major: u32, needs: &str) -> Result<String, String> {
    let node = std::env::var("MCP_TEST_NODE").unwrap_or_else(|_| "node".into());
    match Command::new(&node).arg("--version").output() {
        Ok(o) if o.status.success() => {
            let v = String::from_utf8_lossy(&o.stdout).trim().to_string();
            let has: u32 = v
                .trim_start_matches('v')
                .split('.')
                .next()
                .and_then(|m| m.parse().ok())
                .unwrap_or(0);
            if has < major {
                return Err(format!("{node} is {v}; {needs} needs Node >= {major}"));
            }
            Ok(node)
        }
        Ok(o) => Err(format!("{node} --version failed: {}", o.status)),
        Err(e) => Err(format!("cannot run {node}: {e}")),
    }
}

/// Fails if any of `secrets` (or its 64-hex secret part) appears in `text`.
pub fn assert_no_secret(what: &str, text: &str, secrets: &[&str]) {
    for s in secrets {
        assert!(!text.contains(s), "{what} contains a presented key: {text}");
        if let Some(tail) = s.get(21..).filter(|t| t.len() >= 32) {
            assert!(
                !text.contains(tail),
                "{what} contains a key's secret: {text}"
            );
        }
    }
}
