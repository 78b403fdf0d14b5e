//! The fleet through a real `redis-server` on 127.0.0.1 (random port, its own directory, no
//! persistence), started and stopped by each test: `publish redis://…` after every change,
//! several `serve --verifier redis://…` instances, `follow` into a file the Python package
//! reads, and what happens while the store is away.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{tool_or_skip, Env};
use crate::harness::Server;

/// A `redis-server` of this test's own.
pub struct Redis {
    child: Option<Child>,
    pub port: u16,
    dir: tempfile::TempDir,
    /// Whether it keeps its data across a restart (an append-only file, every write
    /// synced).
    persist: bool,
}

impl Redis {
    /// Starts one, or `None` when redis-server is not installed (a failure under CI=true).
    pub fn start() -> Option<Redis> {
        let ok = Command::new("redis-server")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        if !tool_or_skip(
            "a fleet test",
            ok,
            "redis-server is not installed (apt-get install redis-server)",
        ) {
            return None;
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut r = Redis {
            child: None,
            port,
            dir: tempfile::tempdir().unwrap(),
            persist: false,
        };
        r.run();
        Some(r)
    }

    /// As [`Redis::start`], keeping its data across [`Redis::stop`] and [`Redis::run`].
    pub fn start_persistent() -> Option<Redis> {
        let mut r = Redis::start()?;
        r.stop();
        r.persist = true;
        r.run();
        Some(r)
    }

    /// (Re)starts the server on its port; empty (no persistence).
    pub fn run(&mut self) {
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--save", "", "--protected-mode", "yes"])
            .args(if self.persist {
                ["--appendonly", "yes", "--appendfsync", "always"]
            } else {
                ["--appendonly", "no", "--appendfsync", "everysec"]
            })
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        self.child = Some(child);
        let t0 = Instant::now();
        while self.query(&["PING"]).is_none() {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn url(&self, key: &str) -> String {
        format!("redis://127.0.0.1:{}/0?key={key}", self.port)
    }

    /// One command through the redis crate; `None` when the server cannot be reached.
    pub fn query(&self, args: &[&str]) -> Option<redis::Value> {
        let client = redis::Client::open(format!("redis://127.0.0.1:{}/0", self.port)).ok()?;
        let mut con = client
            .get_connection_with_timeout(Duration::from_millis(500))
            .ok()?;
        let mut cmd = redis::cmd(args[0]);
        for a in &args[1..] {
            cmd.arg(*a);
        }
        cmd.query(&mut con).ok()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

pub(crate) fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < limit, "timed out: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub(crate) fn fingerprint(e: &Env) -> String {
    let out = e.cmd().args(["slot", "list"]).output().unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Vault fingerprint: ").map(str::to_string))
        .expect("a fingerprint")
}

/// A vault with `n` keys published to the store; (env, ids, keys, fingerprint, url).
fn published(redis: &Redis, n: usize) -> (Env, Vec<String>, Vec<String>, String, String) {
    let e = Env::with_vault();
    let (ids, keys): (Vec<String>, Vec<String>) =
        (0..n).map(|i| e.create(&format!("k{i}"), &[])).unzip();
    let url = redis.url("fleet");
    e.cmd().args(["publish", &url]).assert().success();
    let fpr = fingerprint(&e);
    (e, ids, keys, fpr, url)
}

/// Five instances follow one store; fifty revocations, each made by the CLI: every
/// instance refuses every revoked key, nothing restarted, and still accepts the others.
#[test]
fn fifty_revocations_reach_five_instances() {
    let Some(redis) = Redis::start() else { return };
    let (e, ids, keys, fpr, url) = published(&redis, 52);
    let servers: Vec<Server> = (0..5)
        .map(|i| {
            let usage = e.path().join(format!("usage.{i}.json"));
            let usage = usage.to_str().unwrap();
            Server::start(Path::new(&url), &["--trust", &fpr, "--usage", usage])
        })
        .collect();
    for s in &servers {
        assert_eq!(s.auth_x(&keys[0]).status, 200, "{}", s.log());
        assert!(s.log().contains("must be signed by"), "{}", s.log());
    }
    for id in &ids[..50] {
        e.cmd().args(["revoke", id]).assert().success();
    }
    for s in &servers {
        wait_until("the last revocation", Duration::from_secs(10), || {
            s.auth_x(&keys[49]).status == 401
        });
        for k in &keys[..50] {
            assert_eq!(s.auth_x(k).code(), "REVOKED");
        }
        assert_eq!(s.auth_x(&keys[51]).status, 200);
        let h = s.get("/healthz", &[]).json();
        assert_eq!(h["status"], "ok", "{h}");
        assert!(h["store_age_seconds"].as_f64().unwrap() < 5.0, "{h}");
    }
}

/// Someone with write access to the store but not the vault's key writes a value that
/// lets their key in: every instance refuses it and keeps the vault's. `serve` will not
/// start from a store without a trust pin.
#[test]
fn a_value_the_vault_did_not_sign_is_refused() {
    let Some(redis) = Redis::start() else { return };
    let (e, _, keys, fpr, url) = published(&redis, 1);
    let usage = e.path().join("usage.json");
    let srv = Server::start(
        Path::new(&url),
        &["--trust", &fpr, "--usage", usage.to_str().unwrap()],
    );
    assert_eq!(srv.auth_x(&keys[0]).status, 200);

    let intruder = crate::fixture::TestKey::new(&["info"]);
    let forged = crate::fixture::Spec::new(1_000_000, vec![intruder.clone()]).json();
    let held = redis.query(&["HGET", "mkm:{fleet}:verifier", "digest"]);
    assert!(held.is_some());
    redis
        .query(&[
            "HSET",
            "mkm:{fleet}:verifier",
            "bytes",
            &forged,
            "revision",
            "1000000",
        ])
        .expect("the forger writes");
    redis.query(&["PUBLISH", "mkm:{fleet}:changed", "1000000"]);
    wait_until("the refusal", Duration::from_secs(5), || {
        srv.log().contains("refused")
    });
    assert_eq!(srv.auth_x(&intruder.key).status, 401);
    assert_eq!(srv.auth_x(&keys[0]).status, 200);

    let out = Command::new(crate::common::bin())
        .args(["serve", "--verifier", &url, "--listen", "127.0.0.1:0"])
        .env_clear()
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--trust"));
    drop(e);
}

/// The store goes away: instances keep answering from the last good data and say how old
/// it is; past --max-stale they answer 503; a change made meanwhile exits 5 (and stands);
/// the store comes back (empty: no persistence) and the next change repairs it; the
/// instances catch up without a restart.
#[test]
fn an_outage_is_bounded_by_max_stale_and_repaired_by_the_next_change() {
    let Some(mut redis) = Redis::start() else {
        return;
    };
    let (e, ids, keys, fpr, url) = published(&redis, 3);
    let usage = e.path().join("usage.json");
    let usage = usage.to_str().unwrap();
    let srv = Server::start(
        Path::new(&url),
        &["--trust", &fpr, "--max-stale", "2", "--usage", usage],
    );
    assert_eq!(srv.auth_x(&keys[0]).status, 200);

    redis.stop();
    assert_eq!(
        srv.auth_x(&keys[0]).status,
        200,
        "the last good data answers"
    );
    let out = e.cmd().args(["revoke", &ids[0]]).output().unwrap();
    assert_eq!(out.status.code(), Some(5), "the store is away");
    assert!(String::from_utf8_lossy(&out.stderr).contains(&url));
    wait_until("503 past --max-stale", Duration::from_secs(8), || {
        srv.auth_x(&keys[1]).status == 503
    });
    assert_eq!(srv.auth_x(&keys[1]).code(), "STALE");
    let h = srv.get("/healthz", &[]);
    assert_eq!(h.status, 503);
    assert!(h.json()["store_age_seconds"].as_f64().unwrap() > 2.0);

    redis.run();
    e.cmd().args(["revoke", &ids[1]]).assert().success();
    wait_until("the catch-up", Duration::from_secs(10), || {
        srv.auth_x(&keys[1]).status == 401
    });
    assert_eq!(
        srv.auth_x(&keys[0]).code(),
        "REVOKED",
        "the change made while away"
    );
    assert_eq!(srv.auth_x(&keys[2]).status, 200);
    assert!(srv.log().contains("store unreachable"), "{}", srv.log());
}

/// `follow` keeps a local file current from the store; the Python package, pinned to the
/// vault, reads it and sees a revocation.
#[test]
fn follow_keeps_a_file_current_that_the_python_package_reads() {
    let Some(redis) = Redis::start() else { return };
    let (e, ids, keys, fpr, url) = published(&redis, 2);
    let out = e.path().join("replica/verifier.json");
    let mut follow = Command::new(crate::common::bin())
        .args(["follow", &url, "--trust", &fpr, "--out"])
        .arg(&out)
        .current_dir(e.path())
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until("the first write", Duration::from_secs(10), || out.exists());
    e.cmd().args(["revoke", &ids[0]]).assert().success();
    let revoked_in_file = || {
        let v = mcp_key_verifier::Verifier::from_file_trusted(&out, &fpr);
        v.is_ok_and(|v| v.verify(&keys[0], &[]).code.as_str() == "REVOKED")
    };
    wait_until(
        "the revocation in the file",
        Duration::from_secs(10),
        revoked_in_file,
    );

    if let Ok(python) = std::env::var("MCP_TEST_PYTHON") {
        let script = "import sys\nfrom mcp_key_verifier import Verifier\n\
                      v = Verifier.from_file(sys.argv[1], trust=sys.argv[2])\n\
                      print(v.verify(sys.stdin.readline().strip()).code)\n";
        let py = Command::new(python)
            .args(["-c", script])
            .arg(&out)
            .arg(&fpr)
            .stdin(Stdio::piped())
            .output_with_stdin(format!("{}\n", keys[0]));
        let text = String::from_utf8_lossy(&py.stdout).to_string();
        assert_eq!(
            text.trim(),
            "REVOKED",
            "{}",
            String::from_utf8_lossy(&py.stderr)
        );
    } else {
        assert!(!tool_or_skip(
            "the Python reader",
            false,
            "MCP_TEST_PYTHON is not set"
        ));
    }
    let _ = follow.kill();
    let _ = follow.wait();
}

trait OutputWithStdin {
    fn output_with_stdin(&mut self, input: String) -> std::process::Output;
}

impl OutputWithStdin for Command {
    fn output_with_stdin(&mut self, input: String) -> std::process::Output {
        use std::io::Write;
        let mut child = self
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }
}

/// Least privilege, as docs/fleet.md gives it: the publisher may write its verifier and
/// announce; `serve` runs as a user that may only read and subscribe. Both work with their
/// passwords from the environment (never the URL), and the serving user cannot change the
/// verifier.
#[test]
fn serve_runs_as_a_user_that_cannot_change_the_verifier() {
    let Some(redis) = Redis::start() else { return };
    let acl = |args: &[&str]| {
        let mut full = vec!["ACL", "SETUSER"];
        full.extend_from_slice(args);
        redis.query(&full).expect("ACL SETUSER")
    };
    acl(&[
        "mkm-publisher",
        "on",
        ">publisher password",
        "~mkm:{fleet}:verifier",
        "&mkm:{fleet}:changed",
        "+hmget",
        "+hset",
        "+publish",
        "+eval",
        "+evalsha",
        "+script|load",
    ]);
    acl(&[
        "mkm-serve",
        "on",
        ">serve password",
        "%R~mkm:{fleet}:verifier",
        "~mkm:{fleet}:usage",
        "~mkm:{fleet}:usage:*",
        "~mkm:{fleet}:limit:*",
        "&mkm:{fleet}:changed",
        "+hmget",
        "+hget",
        "+hstrlen",
        "+subscribe",
        "+ping",
        "+eval",
        "+evalsha",
        "+script|load",
        "+time",
        "+get",
        "+set",
        "+hset",
        "+hincrby",
        "+expire",
    ]);
    let e = Env::with_vault();
    let (id, key) = e.create("k", &["--rate-limit", "3/min"]);
    let publisher = format!("redis://mkm-publisher@127.0.0.1:{}/0?key=fleet", redis.port);
    e.cmd()
        .args(["publish", &publisher])
        .env("MCP_REDIS_PASSWORD", "publisher password")
        .assert()
        .success();
    let fpr = fingerprint(&e);
    let reader = format!("redis://mkm-serve@127.0.0.1:{}/0?key=fleet", redis.port);
    let mut srv = Server::start_with_env(
        Path::new(&reader),
        &["--trust", &fpr, "--usage", &reader, "--limits", &reader],
        &[("MCP_REDIS_PASSWORD", "serve password")],
    );
    // Usage and limits are written as this user: the limit is decided in the store.
    let statuses: Vec<u16> = (0..4).map(|_| srv.auth_x(&key).status).collect();
    assert_eq!(statuses, [200, 200, 200, 429], "{}", srv.log());
    assert_eq!(
        srv.metric("mcp_key_serve_limit_fallbacks_total"),
        0,
        "{}",
        srv.log()
    );
    assert!(redis
        .query(&["GET", &format!("mkm:{{fleet}}:limit:{id}")])
        .is_some_and(|v| matches!(v, redis::Value::BulkString(_))));
    assert!(!srv.log().contains("serve password"));

    // What the serving user may not do.
    let client = redis::Client::open(format!(
        "redis://mkm-serve:serve%20password@127.0.0.1:{}/0",
        redis.port
    ))
    .unwrap();
    let mut con = client
        .get_connection_with_timeout(Duration::from_secs(2))
        .unwrap();
    let denied: redis::RedisResult<()> = redis::cmd("HSET")
        .arg("mkm:{fleet}:verifier")
        .arg("revision")
        .arg("99")
        .query(&mut con);
    let err = denied.expect_err("the serving user cannot write the verifier");
    assert!(
        err.to_string().to_lowercase().contains("no permissions"),
        "{err}"
    );

    // The publisher's next change reaches the serving user's instance.
    e.cmd()
        .args(["revoke", &id])
        .env("MCP_REDIS_PASSWORD", "publisher password")
        .assert()
        .success();
    wait_until("the revocation", Duration::from_secs(10), || {
        srv.auth_x(&key).status == 401
    });
    srv.signal("TERM");
    assert!(srv.wait(Duration::from_secs(10)).success(), "{}", srv.log());
    let valid = redis.query(&["HGET", "mkm:{fleet}:usage", &format!("{id} VALID")]);
    assert_eq!(
        valid,
        Some(redis::Value::BulkString(b"3".to_vec())),
        "usage written as mkm-serve"
    );
}

/// Usage across instances: five instances add their counts to one hash in the store; after
/// SIGTERM (each flushes on its way out) the sum of every key's counts is the number of
/// requests sent, by verdict, and `view --usage redis://…` shows the last use.
#[test]
fn usage_from_five_instances_adds_up_to_the_requests_sent() {
    let Some(redis) = Redis::start() else { return };
    let (e, ids, keys, fpr, url) = published(&redis, 2);
    e.cmd().args(["revoke", &ids[1]]).assert().success();
    let mut servers: Vec<Server> = (0..5)
        .map(|_| Server::start(Path::new(&url), &["--trust", &fpr, "--usage", &url]))
        .collect();
    wait_until("the revocation", Duration::from_secs(10), || {
        servers.iter().all(|s| s.auth_x(&keys[1]).status == 401)
    });
    let mut sent = [0u64; 2];
    for (i, s) in servers.iter().enumerate() {
        for _ in 0..(10 + i) {
            assert_eq!(s.auth_x(&keys[0]).status, 200);
            sent[0] += 1;
        }
        for _ in 0..3 {
            assert_eq!(s.auth_x(&keys[1]).status, 401);
            sent[1] += 1;
        }
    }
    // Each instance had asked for keys[1] until it was refused: count those too.
    for s in &mut servers {
        s.signal("TERM");
        assert!(s.wait(Duration::from_secs(10)).success(), "{}", s.log());
    }
    let counts = |id: &str, code: &str| -> u64 {
        match redis.query(&["HGET", "mkm:{fleet}:usage", &format!("{id} {code}")]) {
            Some(redis::Value::BulkString(b)) => String::from_utf8(b).unwrap().parse().unwrap(),
            _ => 0,
        }
    };
    assert_eq!(counts(&ids[0], "VALID"), sent[0]);
    let revoked = counts(&ids[1], "REVOKED");
    assert!(
        revoked >= sent[1] && revoked <= sent[1] + 5 * 200,
        "{revoked} REVOKED for {} sent after the revocation arrived",
        sent[1]
    );
    let view = e.json(&["view", &ids[0], "--json", "--usage", &url]);
    assert!(view["last_used_at"].is_string(), "{view}");
}

/// Found by an independent review: whoever can write the store but has not the vault's key
/// must not roll instances back (the hash's own `revision`/`digest` fields are not signed:
/// only the signed bytes count), and a store holding a value instances refuse cannot tell
/// them about revocations, so past `--max-stale` they answer 503 instead of "ok".
#[test]
fn a_store_writer_can_neither_roll_back_nor_hide_a_refused_value() {
    let Some(redis) = Redis::start() else { return };
    let (e, ids, keys, fpr, url) = published(&redis, 2);
    let hash = "mkm:{fleet}:verifier";
    let bulk = |field: &str| match redis.query(&["HGET", hash, field]) {
        Some(redis::Value::BulkString(b)) => String::from_utf8(b).unwrap(),
        other => panic!("{field}: {other:?}"),
    };
    let (old_bytes, old_rev, old_digest) = (bulk("bytes"), bulk("revision"), bulk("digest"));
    e.cmd().args(["revoke", &ids[0]]).assert().success();
    let usage = e.path().join("usage.json");
    let srv = Server::start(
        Path::new(&url),
        &[
            "--trust",
            &fpr,
            "--max-stale",
            "2",
            "--usage",
            usage.to_str().unwrap(),
        ],
    );
    assert_eq!(srv.auth_x(&keys[0]).code(), "REVOKED");

    // The older signed value, its fields claiming anything: refused, the key stays revoked.
    for claimed in ["0", old_rev.as_str(), "999"] {
        redis
            .query(&[
                "HSET",
                hash,
                "bytes",
                &old_bytes,
                "revision",
                claimed,
                "digest",
                &old_digest,
            ])
            .expect("the store writer writes");
        redis.query(&["PUBLISH", "mkm:{fleet}:changed", claimed]);
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(srv.auth_x(&keys[0]).code(), "REVOKED", "claimed {claimed}");
    }
    // And with the store holding only what instances refuse, they go stale.
    wait_until("503 past --max-stale", Duration::from_secs(8), || {
        srv.auth_x(&keys[1]).status == 503
    });
    let h = srv.get("/healthz", &[]).json();
    assert_eq!(h["status"], "stale", "{h}");
    assert!(
        h["reload_error"].as_str().unwrap().contains("refused"),
        "{h}"
    );
}

/// `check --verifier redis://…` and `publish --list` read a store as they read a file: the
/// current one has no finding, one from another lineage is `VERIFIER_CONFLICT`, an empty
/// one `VERIFIER_MISSING`.
#[test]
fn check_reads_a_store_like_a_file() {
    let Some(redis) = Redis::start() else { return };
    let (e, ids, _, _, url) = published(&redis, 2);
    let check = |args: &[&str]| -> serde_json::Value {
        let out = e
            .cmd()
            .args(["check", "--json", "--verifier"])
            .args(args)
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let v = check(&[&url]);
    assert!(!crate::common::has_finding(&v, "VERIFIER_STALE"), "{v}");
    let list = e.json(&["publish", "--list", "--json"]);
    assert_eq!(list["published"][0]["stale"], false, "{list}");

    // Another lineage: an older value, its digest not one of the vault's saves.
    let held = match redis.query(&["HGET", "mkm:{fleet}:verifier", "bytes"]) {
        Some(redis::Value::BulkString(b)) => b,
        other => panic!("{other:?}"),
    };
    e.cmd().args(["revoke", &ids[0]]).assert().success();
    let now = redis.query(&["HGET", "mkm:{fleet}:verifier", "revision"]);
    let old = String::from_utf8(held).unwrap();
    let behind = e.open_vault().revision() - 1;
    let digest = redis.query(&["HGET", "mkm:{fleet}:verifier", "digest"]);
    assert!(now.is_some() && digest.is_some());
    redis.query(&[
        "HSET",
        "mkm:{fleet}:verifier",
        "bytes",
        &old,
        "revision",
        &behind.to_string(),
        "digest",
        &"0".repeat(64),
    ]);
    let v = check(&[&url]);
    assert!(crate::common::has_finding(&v, "VERIFIER_CONFLICT"), "{v}");

    // Empty.
    redis.query(&["DEL", "mkm:{fleet}:verifier"]);
    let v = check(&[&url]);
    assert!(crate::common::has_finding(&v, "VERIFIER_MISSING"), "{v}");
}
