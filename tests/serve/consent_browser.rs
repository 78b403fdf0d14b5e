//! The consent page of `serve --authorization-server` in a real browser: Debian's Chromium,
//! headless, driven by tests/serve/browser/consent.mjs (puppeteer-core, pinned there) with
//! JavaScript off for the page. A person opens the authorization URL, sees the client and the
//! scopes, pastes a key and presses Allow; the client's redirect URI (a listener on 127.0.0.1
//! started here) receives the code, which this test exchanges (PKCE) for a token that works at
//! `/auth`. A revoked key leaves the person on the page with an error and sends nothing to the
//! client. axe-core checks the page (WCAG 2 A/AA, no violation allowed), and a screenshot of
//! the filled page is kept in target/test-artifacts/consent-page.png.
//!
//! Needs Chromium (`$MCP_TEST_CHROMIUM`, else /usr/bin/chromium: `apt-get install chromium`),
//! Node >= 20 (`$MCP_TEST_NODE`, else `node`) and `npm ci` in tests/serve/browser; .ci/run
//! installs them before `cargo test`. With `CI=true` a missing one fails the test; otherwise
//! it is skipped with the reason printed.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::authz::{bearer, pkce, post_form, query, register, setup, ISSUER, RESOURCE};
use crate::common::tool_or_skip;
use crate::harness::{assert_no_secret, Server};

/// What the browser needs: Chromium, Node and the script's node_modules.
struct Browser {
    chromium: PathBuf,
    node: String,
    dir: PathBuf,
}

fn browser() -> Option<Browser> {
    let missing = |why: String| -> Option<Browser> {
        tool_or_skip("the consent page in Chromium", false, why);
        None
    };
    let chromium = PathBuf::from(
        std::env::var("MCP_TEST_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()),
    );
    match Command::new(&chromium).arg("--version").output() {
        Ok(o) if o.status.success() => {}
        Ok(o) => {
            return missing(format!(
                "{} --version failed ({}): {} (apt-get install chromium)",
                chromium.display(),
                o.status,
                String::from_utf8_lossy(&o.stderr).trim()
            ))
        }
        Err(e) => {
            return missing(format!(
                "no Chromium at {} ({e}): apt-get install chromium",
                chromium.display()
            ))
        }
    }
    let node = match crate::harness::node_at_least(20, "puppeteer-core") {
        Ok(node) => node,
        Err(why) => return missing(why),
    };
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/serve/browser");
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("package.json")).unwrap()).unwrap();
    for package in ["puppeteer-core", "axe-core"] {
        let pinned = manifest["dependencies"][package]
            .as_str()
            .unwrap_or_else(|| panic!("package.json pins {package}"));
        let installed =
            std::fs::read_to_string(dir.join("node_modules").join(package).join("package.json"))
                .ok()
                .and_then(|t| serde_json::from_str::<Value>(&t).ok())
                .and_then(|v| v["version"].as_str().map(str::to_string));
        if installed.as_deref() != Some(pinned) {
            return missing(format!(
                "{package} in {}/node_modules is {installed:?}, package.json pins {pinned} (run \
                 `npm ci` in tests/serve/browser)",
                dir.display()
            ));
        }
    }
    Some(Browser {
        chromium,
        node,
        dir,
    })
}

/// The client's redirect URI: a listener on 127.0.0.1 that answers every request with a
/// small page and keeps each request's target; stopped when dropped.
struct Callback {
    port: u16,
    seen: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
}

impl Callback {
    fn start() -> Callback {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (kept, stopped) = (Arc::clone(&seen), Arc::clone(&stop));
        std::thread::spawn(move || {
            while !stopped.load(Ordering::SeqCst) {
                let Ok((mut conn, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                };
                let kept = Arc::clone(&kept);
                std::thread::spawn(move || {
                    let _ = conn.set_nonblocking(false);
                    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
                    let mut reader = BufReader::new(conn.try_clone().unwrap());
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return; // a preconnect that sent nothing
                    }
                    loop {
                        let mut h = String::new();
                        if reader.read_line(&mut h).unwrap_or(0) <= 2 {
                            break;
                        }
                    }
                    let target = line.split(' ').nth(1).unwrap_or("").to_string();
                    kept.lock().unwrap().push(target);
                    let body = "<!DOCTYPE html><html lang=\"en\"><title>Client</title>\
                                <main><p>The client got its answer.</p></main></html>";
                    let _ = write!(
                        conn,
                        "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n\
                         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                });
            }
        });
        Callback { port, seen, stop }
    }

    fn uri(&self) -> String {
        format!("http://127.0.0.1:{}/callback", self.port)
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for Callback {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// The script's process group, killed (Chromium with it) when dropped.
struct Group(Child);

impl Drop for Group {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the process group this test created.
        unsafe {
            libc::kill(-(self.0.id() as i32), libc::SIGKILL);
        }
        let _ = self.0.wait();
    }
}

/// What consent.mjs reported, its exit code (`None`: killed after the limit) and everything
/// it printed.
struct Run {
    code: Option<i32>,
    result: Value,
    output: String,
}

/// Runs consent.mjs with these variables (the key among them: never in argv), in its own
/// process group, bounded in time.
fn run_consent(b: &Browser, work: &Path, vars: &[(&str, &str)]) -> Run {
    let out = work.join("consent.out");
    let err = work.join("consent.err");
    let mut cmd = Command::new(&b.node);
    cmd.arg(b.dir.join("consent.mjs"))
        .current_dir(&b.dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", work)
        .env("XDG_CONFIG_HOME", work)
        .env("XDG_CACHE_HOME", work)
        .env("TMPDIR", work)
        .env("CHROMIUM", &b.chromium)
        .envs(vars.iter().copied())
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .process_group(0);
    let mut group = Group(cmd.spawn().expect("spawn node"));
    let end = Instant::now() + Duration::from_secs(120);
    let code = loop {
        if let Some(status) = group.0.try_wait().unwrap() {
            break status.code();
        }
        if Instant::now() >= end {
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    drop(group);
    let stdout = std::fs::read_to_string(&out).unwrap_or_default();
    let output = format!(
        "{stdout}{}",
        std::fs::read_to_string(&err).unwrap_or_default()
    );
    let result = stdout
        .lines()
        .find_map(|l| l.strip_prefix("CONSENT_RESULT "))
        .and_then(|j| serde_json::from_str(j).ok())
        .unwrap_or(Value::Null);
    Run {
        code,
        result,
        output,
    }
}

/// target/test-artifacts (beside the target directory's tmp/).
fn artifacts() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A real PNG of a rendered page: the signature, an IHDR of at least 320x240, the closing
/// IEND, and more bytes than a blank page compresses to. Its width and height.
fn assert_png(path: &Path) -> (u32, u32) {
    let b = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        b.starts_with(b"\x89PNG\r\n\x1a\n"),
        "{}: not a PNG",
        path.display()
    );
    assert_eq!(&b[12..16], b"IHDR", "{}", path.display());
    let w = u32::from_be_bytes(b[16..20].try_into().unwrap());
    let h = u32::from_be_bytes(b[20..24].try_into().unwrap());
    assert!(w >= 320 && h >= 240, "{}: {w}x{h}", path.display());
    assert!(
        b.ends_with(&[0, 0, 0, 0, b'I', b'E', b'N', b'D', 0xae, 0x42, 0x60, 0x82]),
        "{}: no IEND",
        path.display()
    );
    assert!(
        b.len() > 10_000,
        "{}: only {} bytes",
        path.display(),
        b.len()
    );
    (w, h)
}

fn authorization_url(
    srv: &Server,
    client: &str,
    redirect: &str,
    challenge: &str,
    state: &str,
) -> String {
    let q = query(&[
        ("response_type", "code"),
        ("client_id", client),
        ("redirect_uri", redirect),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
        ("scope", "tools:call tools:list"),
        ("state", state),
        ("resource", RESOURCE),
    ]);
    format!("http://{}/authorize?{q}", srv.addr)
}

/// The axe-core report: prints it, and fails on any violation.
fn assert_accessible(result: &Value, context: &dyn Fn() -> String) {
    let axe = &result["axe"];
    let violations = axe["violations"].as_array().cloned().unwrap_or_default();
    eprintln!(
        "axe-core {} ({}; the page {}): {} violations, {} rules passed, {} to review by hand, {} not applicable",
        axe["version"],
        axe["tags"],
        axe["state"].as_str().unwrap_or("?"),
        violations.len(),
        axe["passes"].as_array().map_or(0, Vec::len),
        axe["incomplete"].as_array().map_or(0, Vec::len),
        axe["inapplicable"]
    );
    for v in &violations {
        eprintln!("axe violation: {v:#}");
    }
    assert!(
        axe["passes"].as_array().is_some_and(|p| !p.is_empty()),
        "axe-core did not run\n{}",
        context()
    );
    assert!(violations.is_empty(), "{}", context());
}

#[test]
fn chromium_without_script_approves_with_a_key_and_the_code_becomes_a_working_token() {
    let Some(b) = browser() else {
        return;
    };
    let t0 = Instant::now();
    let s = setup();
    let srv = s.serve(&[]);
    let cb = Callback::start();
    let redirect = cb.uri();
    let client = register(&srv, &redirect);
    let (verifier, challenge) = pkce();
    let state = format!("st-browser-{}", &challenge[..8]);
    let url = authorization_url(&srv, &client, &redirect, &challenge, &state);
    let shot = artifacts().join("consent-page.png");
    let _ = std::fs::remove_file(&shot);
    let work = tempfile::tempdir().unwrap();
    let shows = format!("Test Client <b>\n{client}");
    let run = run_consent(
        &b,
        work.path(),
        &[
            ("CONSENT_URL", &url),
            ("CONSENT_KEY", &s.good.key),
            ("CONSENT_EXPECT", "redirect"),
            ("CONSENT_REDIRECT", &redirect),
            ("CONSENT_CLIENT", &shows),
            ("CONSENT_SCOPES", "tools:call tools:list"),
            ("CONSENT_SCREENSHOT", shot.to_str().unwrap()),
        ],
    );
    let context = || format!("{}\n--- serve:\n{}", run.output, srv.log());
    assert_no_secret("the browser script's output", &run.output, &[&s.good.key]);
    assert_eq!(
        run.code,
        Some(0),
        "(None: killed after 120 s)\n{}",
        context()
    );
    let r = &run.result;
    assert_eq!(r["ok"], true, "{}", context());

    // No script: off for the page, and none in it.
    assert_eq!(r["javascript_enabled"], false);
    assert_eq!(r["scripts"], 0);
    assert!(
        r["csp"]
            .as_str()
            .is_some_and(|c| c.contains("default-src 'none'")),
        "{}",
        context()
    );
    // The client (its name escaped by the server, shown as text) and the scopes.
    let text = r["text"].as_str().unwrap_or("");
    assert!(
        text.contains("Test Client <b>") && text.contains(&client),
        "{text}"
    );
    assert!(
        text.contains("tools:call") && text.contains("tools:list"),
        "{text}"
    );
    // Chromium kept the __Host- cookie on http://127.0.0.1 (a secure context), and sent it
    // back with the form: the POST was answered 302, not 403.
    let cookie = r["cookies"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == "__Host-mcp-consent"))
        .unwrap_or_else(|| panic!("Chromium kept no consent cookie\n{}", context()));
    assert_eq!(
        (
            &cookie["secure"],
            &cookie["httpOnly"],
            &cookie["sameSite"],
            &cookie["path"]
        ),
        (
            &Value::Bool(true),
            &Value::Bool(true),
            &Value::from("Strict"),
            &Value::from("/")
        ),
        "{cookie}"
    );
    assert_eq!(cookie["domain"], "127.0.0.1", "{cookie}");
    assert_eq!(r["post"]["status"], 302, "{}", context());

    // The redirect reached the client: once, with the code, the state and the issuer.
    let code = r["code"]
        .as_str()
        .unwrap_or_else(|| panic!("{}", context()));
    assert_eq!(r["state"], state.as_str());
    assert_eq!(r["iss"], ISSUER);
    let seen = cb.seen();
    let back: Vec<_> = seen
        .iter()
        .filter(|t| t.starts_with("/callback?"))
        .collect();
    assert_eq!(back.len(), 1, "{seen:?}");
    let q: std::collections::HashMap<String, String> =
        form_urlencoded::parse(back[0].split_once('?').unwrap().1.as_bytes())
            .into_owned()
            .collect();
    assert_eq!(
        (q["code"].as_str(), q["state"].as_str(), q["iss"].as_str()),
        (code, state.as_str(), ISSUER)
    );

    // The client's part: the code and the PKCE verifier make a token that works at /auth.
    let t = post_form(
        &srv,
        "/token",
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("client_id", &client),
            ("redirect_uri", &redirect),
            ("code_verifier", &verifier),
            ("resource", RESOURCE),
        ],
        &[],
    );
    assert_eq!(t.status, 200, "{}", t.raw);
    assert_eq!(t.json()["scope"], "tools:call tools:list");
    let access = t.json()["access_token"].as_str().unwrap().to_string();
    let a = bearer(&srv, &access);
    assert_eq!(a.status, 200, "{}", a.raw);
    assert_eq!(a.header("x-mcp-key-id"), Some(s.good.id.as_str()));
    assert_eq!(
        a.header("x-mcp-key-permissions"),
        Some("tools:call,tools:list")
    );

    assert_accessible(r, &context);
    let (w, h) = assert_png(&shot);
    eprintln!(
        "screenshot of the filled consent page ({w}x{h}): {}",
        shot.display()
    );
    assert_no_secret("serve's log", &srv.log(), &[&s.good.key]);
    eprintln!(
        "the consent page in {}: {:?} (the browser script {} ms)",
        r["browser"].as_str().unwrap_or("?"),
        t0.elapsed(),
        r["ms"]
    );
}

#[test]
fn chromium_with_a_revoked_key_stays_on_the_page_with_an_error_and_sends_nothing() {
    let Some(b) = browser() else {
        return;
    };
    let t0 = Instant::now();
    let s = setup();
    let srv = s.serve(&[]);
    let cb = Callback::start();
    let redirect = cb.uri();
    let client = register(&srv, &redirect);
    let (_, challenge) = pkce();
    let url = authorization_url(&srv, &client, &redirect, &challenge, "st-refused");
    let after = artifacts().join("consent-page-refused.png");
    let _ = std::fs::remove_file(&after);
    let work = tempfile::tempdir().unwrap();
    let run = run_consent(
        &b,
        work.path(),
        &[
            ("CONSENT_URL", &url),
            ("CONSENT_KEY", &s.revoked.key),
            ("CONSENT_EXPECT", "refused"),
            ("CONSENT_REDIRECT", &redirect),
            ("CONSENT_SCOPES", "tools:call tools:list"),
            ("CONSENT_SCREENSHOT_AFTER", after.to_str().unwrap()),
        ],
    );
    let context = || format!("{}\n--- serve:\n{}", run.output, srv.log());
    assert_no_secret(
        "the browser script's output",
        &run.output,
        &[&s.revoked.key],
    );
    assert_eq!(
        run.code,
        Some(0),
        "(None: killed after 120 s)\n{}",
        context()
    );
    let r = &run.result;
    assert_eq!(r["ok"], true, "{}", context());
    assert_eq!(r["javascript_enabled"], false);
    assert_eq!(r["final_status"], 400, "{}", context());
    assert!(
        r["error"]
            .as_str()
            .is_some_and(|e| e.contains("This key is not accepted here")),
        "{}",
        context()
    );
    assert_eq!(r["alert_in_tree"], true);
    // Nothing reached the client: no code, no error, not even a request.
    assert_eq!(cb.seen(), Vec::<String>::new());
    assert!(r.get("code").is_none());
    assert_accessible(r, &context);
    let (w, h) = assert_png(&after);
    eprintln!(
        "screenshot of the page after the revoked key ({w}x{h}): {}",
        after.display()
    );
    assert_no_secret("serve's log", &srv.log(), &[&s.revoked.key]);
    eprintln!("a revoked key in Chromium: {:?}", t0.elapsed());
}
