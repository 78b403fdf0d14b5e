//! The fleet on a real Redis Cluster (three masters on 127.0.0.1, started and stopped by
//! each test) and on a real TLS `redis-server` (a throwaway CA made with `openssl`): the
//! same `publish`, `serve --verifier`, `--usage` and `check` as tests/serve/fleet.rs, through
//! `redis://…?key=NAME&cluster=1` and `rediss://…`.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{tool_or_skip, Env};
use crate::fleet::{fingerprint, wait_until};
use crate::harness::Server;

/// A port nothing listens on (the kernel's choice).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn have(tool: &str, what: &str) -> bool {
    // OpenSSL 3.0 (Debian 12) knows `version`, not `--version`.
    let ask = if tool == "openssl" {
        "version"
    } else {
        "--version"
    };
    let ok = Command::new(tool)
        .arg(ask)
        .output()
        .is_ok_and(|o| o.status.success());
    tool_or_skip(what, ok, format!("{tool} is not installed"))
}

/// `redis-server ARGS…` in `dir`, quiet, no persistence.
fn redis_server(dir: &Path, args: &[String]) -> Child {
    Command::new("redis-server")
        .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .args(args)
        .arg("--dir")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start redis-server")
}

/// One command to one node through a plain connection (TLS when `ca` is given); `None`
/// when it cannot be reached or refuses (a Cluster node answers MOVED for a key it does not
/// hold).
fn query(port: u16, ca: Option<&[u8]>, args: &[&str]) -> Option<redis::Value> {
    let client = match ca {
        None => redis::Client::open(format!("redis://127.0.0.1:{port}/0")).ok()?,
        Some(ca) => redis::Client::build_with_tls(
            format!("rediss://127.0.0.1:{port}/0"),
            redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(ca.to_vec()),
            },
        )
        .ok()?,
    };
    let mut con = client
        .get_connection_with_timeout(Duration::from_millis(500))
        .ok()?;
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query(&mut con).ok()
}

fn int(v: Option<redis::Value>) -> i64 {
    match v {
        Some(redis::Value::Int(n)) => n,
        Some(redis::Value::BulkString(b)) => String::from_utf8(b).unwrap().parse().unwrap(),
        _ => 0,
    }
}

/// Three masters, no replicas, each with its own port and bus port; a node that is
/// stopped leaves the others serving their slots (`cluster-require-full-coverage no`).
struct Cluster {
    nodes: Vec<(u16, Option<Child>)>,
    /// The CA of a Cluster over TLS.
    ca: Option<Vec<u8>>,
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// Plain, or over TLS only (clients and the Cluster bus) with `pki`'s certificates.
    fn start(pki: Option<&Pki>) -> Option<Cluster> {
        if !have("redis-server", "a Cluster test") || !have("redis-cli", "a Cluster test") {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let mut nodes = Vec::new();
        for _ in 0..3 {
            let (port, bus) = (free_port(), free_port());
            let mut args: Vec<String> = [
                "--port",
                &port.to_string(),
                "--cluster-enabled",
                "yes",
                "--cluster-port",
                &bus.to_string(),
                "--cluster-config-file",
                &format!("nodes-{port}.conf"),
                "--cluster-require-full-coverage",
                "no",
            ]
            .map(String::from)
            .into();
            if let Some(pki) = pki {
                args[0] = "--tls-port".into();
                args.extend(pki.server_args("no"));
                args.extend(["--port", "0", "--tls-cluster", "yes"].map(String::from));
            }
            nodes.push((port, Some(redis_server(dir.path(), &args))));
        }
        let ca = pki.map(|p| std::fs::read(p.path("ca.crt")).unwrap());
        let c = Cluster {
            nodes,
            ca,
            _dir: dir,
        };
        for i in 0..3 {
            wait_until("a node to start", Duration::from_secs(10), || {
                c.query(i, &["PING"]).is_some()
            });
        }
        let tls = pki.map(|p| vec!["--tls".into(), "--cacert".into(), p.arg("ca.crt")]);
        let out = Command::new("redis-cli")
            .args(tls.unwrap_or_default())
            .arg("--cluster")
            .arg("create")
            .args(c.ports().iter().map(|p| format!("127.0.0.1:{p}")))
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        for i in 0..3 {
            wait_until("cluster_state:ok", Duration::from_secs(20), || {
                matches!(c.query(i, &["CLUSTER", "INFO"]),
                    Some(redis::Value::BulkString(b)) if String::from_utf8_lossy(&b).contains("cluster_state:ok"))
            });
        }
        Some(c)
    }

    /// One command to node `i`.
    fn query(&self, i: usize, args: &[&str]) -> Option<redis::Value> {
        query(self.nodes[i].0, self.ca.as_deref(), args)
    }

    fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(|(p, _)| *p).collect()
    }

    /// The URL naming every node as a seed, the first one first.
    fn url(&self, key: &str) -> String {
        let seeds: Vec<String> = self
            .ports()
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        let scheme = if self.ca.is_some() { "rediss" } else { "redis" };
        format!("{scheme}://{}/0?key={key}&cluster=1", seeds.join(","))
    }

    /// A store name whose keys live on node `i`.
    fn name_on(&self, i: usize) -> String {
        (0..)
            .map(|n| format!("c{n}"))
            .find(|name| {
                let slot = format!("mkm:{{{name}}}:verifier");
                self.query(i, &["EXISTS", &slot]).is_some()
            })
            .unwrap()
    }

    fn stop(&mut self, i: usize) {
        if let Some(mut c) = self.nodes[i].1.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Subscribers to `channel` on node `i` (a node counts its own clients only).
    fn subscribers(&self, i: usize, channel: &str) -> i64 {
        match self.query(i, &["PUBSUB", "NUMSUB", channel]) {
            Some(redis::Value::Array(v)) => int(v.get(1).cloned()),
            _ => 0,
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.stop(i);
        }
    }
}

/// Revokes `id`, and returns how long until every server refuses `key`.
fn revoke_and_time(e: &Env, servers: &[Server], id: &str, key: &str) -> Duration {
    e.cmd().args(["revoke", id]).assert().success();
    let t0 = Instant::now();
    for s in servers {
        wait_until("the revocation", Duration::from_secs(10), || {
            s.auth_x(key).status == 401
        });
    }
    t0.elapsed()
}

/// A Cluster of three: the verifier's slot on the second node, two instances subscribed on
/// the first seed. A revocation reaches both by notice (the script's PUBLISH crosses the
/// Cluster bus), well under the 1 s poll; the first node stopped, they subscribe on the next
/// seed and the next revocation still arrives by notice.
#[test]
fn revocations_cross_a_cluster_by_notice_and_survive_a_node() {
    let Some(mut cluster) = Cluster::start(None) else {
        return;
    };
    let name = cluster.name_on(1);
    let url = cluster.url(&name);
    let e = Env::with_vault();
    let (ids, keys): (Vec<String>, Vec<String>) =
        (0..8).map(|i| e.create(&format!("k{i}"), &[])).unzip();
    e.cmd().args(["publish", &url]).assert().success();
    let hash = format!("mkm:{{{name}}}:verifier");
    assert!(cluster.query(1, &["HGET", &hash, "revision"]).is_some());
    assert!(
        cluster.query(0, &["HGET", &hash, "revision"]).is_none(),
        "MOVED"
    );
    let fpr = fingerprint(&e);
    let servers: Vec<Server> = (0..2)
        .map(|i| {
            let usage = e.path().join(format!("usage.{i}.json"));
            Server::start(
                Path::new(&url),
                &["--trust", &fpr, "--usage", usage.to_str().unwrap()],
            )
        })
        .collect();
    let channel = format!("mkm:{{{name}}}:changed");
    wait_until(
        "both subscribed on the first seed",
        Duration::from_secs(5),
        || cluster.subscribers(0, &channel) == 2,
    );
    let mut times: Vec<Duration> = (0..5)
        .map(|i| revoke_and_time(&e, &servers, &ids[i], &keys[i]))
        .collect();
    times.sort();
    eprintln!("revoke -> refused by both, through the Cluster: {times:?}");
    assert!(
        times[2] < Duration::from_millis(400),
        "a notice, not the poll: {times:?}"
    );

    cluster.stop(0);
    revoke_and_time(&e, &servers, &ids[5], &keys[5]);
    wait_until(
        "both subscribed on another seed",
        Duration::from_secs(10),
        || cluster.subscribers(1, &channel) + cluster.subscribers(2, &channel) == 2,
    );
    let mut times: Vec<Duration> = (6..8)
        .map(|i| revoke_and_time(&e, &servers, &ids[i], &keys[i]))
        .collect();
    times.sort();
    eprintln!("with the first seed stopped: {times:?}");
    assert!(
        times[0] < Duration::from_millis(400),
        "a notice, not the poll: {times:?}"
    );
    for s in &servers {
        assert!(s.log().contains("store unreachable"), "{}", s.log());
        assert_eq!(s.get("/healthz", &[]).json()["status"], "ok");
    }
}

/// Usage from two instances on a Cluster, its hash on another node than the verifier's:
/// the sum is the requests sent; `view --usage` and `check --verifier` read the Cluster.
#[test]
fn usage_and_check_work_on_a_cluster() {
    let Some(cluster) = Cluster::start(None) else {
        return;
    };
    let (vname, uname) = (cluster.name_on(1), cluster.name_on(2));
    let (url, usage) = (cluster.url(&vname), cluster.url(&uname));
    let e = Env::with_vault();
    let (id, key) = e.create("k", &["--rate-limit", "11/hour"]);
    e.cmd().args(["publish", &url]).assert().success();
    let fpr = fingerprint(&e);
    // Usage and rate limits in the Cluster (the limit's state on the usage name's node).
    let mut servers: Vec<Server> = (0..2)
        .map(|_| {
            Server::start(
                Path::new(&url),
                &["--trust", &fpr, "--usage", &usage, "--limits", &usage],
            )
        })
        .collect();
    for (i, s) in servers.iter().enumerate() {
        for _ in 0..(5 + i) {
            assert_eq!(s.auth_x(&key).status, 200);
        }
    }
    assert_eq!(servers[0].auth_x(&key).status, 429, "11/hour across both");
    for s in &servers {
        assert_eq!(
            s.metric("mcp_key_serve_limit_fallbacks_total"),
            0,
            "{}",
            s.log()
        );
    }
    let state = cluster.query(2, &["GET", &format!("mkm:{{{uname}}}:limit:{id}")]);
    assert!(
        matches!(state, Some(redis::Value::BulkString(_))),
        "{state:?}"
    );
    for s in &mut servers {
        s.signal("TERM");
        assert!(s.wait(Duration::from_secs(10)).success(), "{}", s.log());
    }
    let field = format!("{id} VALID");
    let held = cluster.query(2, &["HGET", &format!("mkm:{{{uname}}}:usage"), &field]);
    assert_eq!(int(held), 11);
    let view = e.json(&["view", &id, "--json", "--usage", &usage]);
    assert!(view["last_used_at"].is_string(), "{view}");

    let out = e
        .cmd()
        .args(["check", "--json", "--verifier", &url])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(!crate::common::has_finding(&v, "VERIFIER_STALE"), "{v}");
    assert!(!crate::common::has_finding(&v, "VERIFIER_MISSING"), "{v}");
    let other = cluster.url(&cluster.name_on(0));
    let out = e
        .cmd()
        .args(["check", "--json", "--verifier", &other])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(crate::common::has_finding(&v, "VERIFIER_MISSING"), "{v}");
}

/// A Cluster over TLS (clients and bus), reached with `rediss://…&cluster=1` and the CA
/// file: publish, serve, a revocation, check.
#[test]
fn a_cluster_over_tls() {
    let Some(pki) = Pki::make() else { return };
    let Some(cluster) = Cluster::start(Some(&pki)) else {
        return;
    };
    let url = cluster.url(&cluster.name_on(2));
    assert!(url.starts_with("rediss://"), "{url}");
    let e = Env::with_vault();
    let (id, key) = e.create("k", &[]);
    let ca = pki.arg("ca.crt");
    let with_ca = [("MCP_REDIS_CA_FILE", ca.as_str())];
    let out = e.cmd().args(["publish", &url]).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(5),
        "the system's roots do not have the CA"
    );
    e.cmd()
        .args(["publish", &url])
        .envs(with_ca)
        .assert()
        .success();
    let fpr = fingerprint(&e);
    let usage = e.path().join("usage.json");
    let srv = Server::start_with_env(
        Path::new(&url),
        &["--trust", &fpr, "--usage", usage.to_str().unwrap()],
        &with_ca,
    );
    assert_eq!(srv.auth_x(&key).status, 200);
    e.cmd()
        .args(["revoke", &id])
        .envs(with_ca)
        .assert()
        .success();
    wait_until("the revocation", Duration::from_secs(5), || {
        srv.auth_x(&key).status == 401
    });
    let out = e
        .cmd()
        .args(["check", "--json", "--verifier", &url])
        .envs(with_ca)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(!crate::common::has_finding(&v, "VERIFIER_STALE"), "{v}");
    assert!(!crate::common::has_finding(&v, "VERIFIER_MISSING"), "{v}");
}

/// A throwaway CA, a server certificate for 127.0.0.1 and a client certificate, made with
/// the `openssl` CLI; `None` when it is not installed (a failure under CI=true).
pub(crate) struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    pub(crate) fn make() -> Option<Pki> {
        if !have("openssl", "a TLS test") {
            return None;
        }
        let pki = Pki {
            dir: tempfile::tempdir().unwrap(),
        };
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        pki.openssl(
            &["req", "-x509"],
            &ec,
            &["-keyout", "ca.key", "-out", "ca.crt"],
            "/CN=mkm test CA",
        );
        std::fs::write(pki.path("srv.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
        std::fs::write(pki.path("cli.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
        for who in ["srv", "cli"] {
            let (key, csr) = (format!("{who}.key"), format!("{who}.csr"));
            pki.openssl(
                &["req"],
                &ec,
                &["-keyout", &key, "-out", &csr],
                "/CN=127.0.0.1",
            );
            let (crt, ext) = (format!("{who}.crt"), format!("{who}.ext"));
            let sign = [
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-extfile",
                &ext,
            ];
            pki.openssl(&["x509", "-req", "-in", &csr], &sign, &["-out", &crt], "");
        }
        Some(pki)
    }

    fn openssl(&self, a: &[&str], b: &[&str], c: &[&str], subject: &str) {
        let mut cmd = Command::new("openssl");
        cmd.args(a).args(b).args(c).args(["-days", "2"]);
        if !subject.is_empty() {
            cmd.args(["-subj", subject]);
        }
        let out = cmd.current_dir(self.dir.path()).output().unwrap();
        assert!(
            out.status.success(),
            "openssl: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A `redis-server`'s TLS arguments; `clients`: `no`, or `yes` for mutual TLS.
    fn server_args(&self, clients: &str) -> Vec<String> {
        let files = [
            ("--tls-cert-file", "srv.crt"),
            ("--tls-key-file", "srv.key"),
            ("--tls-ca-cert-file", "ca.crt"),
        ];
        let mut args: Vec<String> = files
            .iter()
            .flat_map(|(flag, file)| [flag.to_string(), self.arg(file)])
            .collect();
        args.extend(["--tls-auth-clients", clients].map(String::from));
        args
    }

    pub(crate) fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }

    fn arg(&self, file: &str) -> String {
        self.path(file).to_str().unwrap().to_string()
    }
}

/// A TLS-only `redis-server` with a password; `clients`: `no`, or `yes` for mutual TLS.
fn tls_redis(pki: &Pki, clients: &str) -> (Child, u16) {
    let port = free_port();
    let mut args: Vec<String> = ["--port", "0", "--tls-port", &port.to_string()]
        .map(String::from)
        .into();
    args.extend(pki.server_args(clients));
    args.extend(["--requirepass", PASSWORD].map(String::from));
    let child = redis_server(pki.dir.path(), &args);
    let (cert, key) = (pki.arg("cli.crt"), pki.arg("cli.key"));
    wait_until("redis-server with TLS", Duration::from_secs(10), || {
        Command::new("redis-cli")
            .args([
                "--tls",
                "--cacert",
                &pki.arg("ca.crt"),
                "--cert",
                &cert,
                "--key",
                &key,
            ])
            .args([
                "-p",
                &port.to_string(),
                "--no-auth-warning",
                "-a",
                PASSWORD,
                "PING",
            ])
            .output()
            .is_ok_and(|o| o.stdout.starts_with(b"PONG"))
    });
    (child, port)
}

const PASSWORD: &str = "tls redis password";

/// `rediss://` with a private CA: refused without the CA (exit 5 for `publish`, exit 2 for
/// `serve`, saying what to set and never the password); with `MCP_REDIS_CA_FILE`, publish
/// and serve work and a revocation arrives.
#[test]
fn rediss_with_a_private_ca() {
    let Some(pki) = Pki::make() else { return };
    if !have("redis-cli", "a TLS test") {
        return;
    }
    let (mut child, port) = tls_redis(&pki, "no");
    let url = format!("rediss://127.0.0.1:{port}/0?key=tls");
    let e = Env::with_vault();
    let (id, key) = e.create("k", &[]);
    let ca = pki.arg("ca.crt");
    let out = e
        .cmd()
        .args(["publish", &url])
        .env("MCP_REDIS_PASSWORD", PASSWORD)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{err}");
    assert!(
        err.contains("certificate") && err.contains("MCP_REDIS_CA_FILE"),
        "{err}"
    );
    assert!(!err.contains(PASSWORD), "{err}");
    let with_ca = [
        ("MCP_REDIS_PASSWORD", PASSWORD),
        ("MCP_REDIS_CA_FILE", ca.as_str()),
    ];
    e.cmd()
        .args(["publish", &url])
        .envs(with_ca)
        .assert()
        .success();
    let fpr = fingerprint(&e);

    let out = Command::new(crate::common::bin())
        .args([
            "serve",
            "--verifier",
            &url,
            "--trust",
            &fpr,
            "--listen",
            "127.0.0.1:0",
        ])
        .env_clear()
        .env("MCP_REDIS_PASSWORD", PASSWORD)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("certificate") && !err.contains(PASSWORD),
        "{err}"
    );

    let usage = e.path().join("usage.json");
    let srv = Server::start_with_env(
        Path::new(&url),
        &["--trust", &fpr, "--usage", usage.to_str().unwrap()],
        &with_ca,
    );
    assert_eq!(srv.auth_x(&key).status, 200);
    e.cmd()
        .args(["revoke", &id])
        .envs(with_ca)
        .assert()
        .success();
    wait_until("the revocation over TLS", Duration::from_secs(5), || {
        srv.auth_x(&key).status == 401
    });
    assert!(!srv.log().contains(PASSWORD));

    let _ = child.kill();
    let _ = child.wait();
}

/// Mutual TLS: a server that asks for a client certificate refuses a client without one,
/// and takes the one `MCP_REDIS_CLIENT_CERT`/`MCP_REDIS_CLIENT_KEY` name. TLS variables
/// beside a `redis://` URL are refused: whoever set them expects TLS.
#[test]
fn rediss_with_a_client_certificate() {
    let Some(pki) = Pki::make() else { return };
    if !have("redis-cli", "a TLS test") {
        return;
    }
    let (mut child, port) = tls_redis(&pki, "yes");
    let url = format!("rediss://127.0.0.1:{port}/0?key=mtls");
    let e = Env::with_vault();
    e.create("k", &[]);
    let (ca, cert, key) = (pki.arg("ca.crt"), pki.arg("cli.crt"), pki.arg("cli.key"));
    let env = [
        ("MCP_REDIS_PASSWORD", PASSWORD),
        ("MCP_REDIS_CA_FILE", ca.as_str()),
    ];
    let out = e.cmd().args(["publish", &url]).envs(env).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    e.cmd()
        .args(["publish", &url])
        .envs(env)
        .env("MCP_REDIS_CLIENT_CERT", &cert)
        .env("MCP_REDIS_CLIENT_KEY", &key)
        .assert()
        .success();
    let out = e
        .cmd()
        .args(["publish", &url])
        .envs(env)
        .env("MCP_REDIS_CLIENT_CERT", &cert)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "a certificate without its key");
    let plain = format!("redis://127.0.0.1:{port}/0?key=mtls");
    let out = e
        .cmd()
        .args(["check", "--verifier", &plain])
        .envs(env)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("use rediss://"));
    let _ = child.kill();
    let _ = child.wait();
}

/// `serve --authorization-server` with its state on a Cluster (the store's slot on the
/// second node): a flow whose steps land on either of two instances, a code used twice
/// revoking on both by notice across the Cluster bus, and with the first node (where both
/// subscribe) stopped, a `/revoke` at one instance still reaching the other.
#[test]
fn the_authorization_servers_state_on_a_cluster() {
    use crate::authz::{bearer, exchange, post_form, register, tokens_for, REDIRECT};
    let Some(mut cluster) = Cluster::start(None) else {
        return;
    };
    let name = cluster.name_on(1);
    let url = cluster.url(&name);
    let s = crate::authz::setup();
    let a = crate::authz_fleet::instance(&s, "a", &url, &[]);
    let b = crate::authz_fleet::instance(&s, "b", &url, &[]);
    let client = register(&a, REDIRECT);
    let (code, verifier, _) = crate::authz_fleet::code_across(&b, &a, &client, &s.good.key);
    let r = exchange(&b, &client, &code, &verifier);
    assert_eq!(r.status, 200, "{}", r.raw);
    let access = r.json()["access_token"].as_str().unwrap().to_string();
    assert_eq!(bearer(&a, &access).status, 200);
    let epoch = format!("mkm:{{{name}}}:bridge:epoch");
    assert!(matches!(
        cluster.query(1, &["GET", &epoch]),
        Some(redis::Value::BulkString(_))
    ));
    assert!(cluster.query(0, &["GET", &epoch]).is_none(), "MOVED");

    let channel = format!("mkm:{{{name}}}:bridge:revoked");
    wait_until(
        "both subscribed on the first seed",
        Duration::from_secs(5),
        || cluster.subscribers(0, &channel) == 2,
    );
    let r = exchange(&a, &client, &code, &verifier);
    assert_eq!(r.json()["error"], "invalid_grant");
    for srv in [&a, &b] {
        wait_until(
            "the reused code's token refused",
            Duration::from_secs(5),
            || bearer(srv, &access).status == 401,
        );
    }

    cluster.stop(0);
    wait_until(
        "both subscribed again elsewhere",
        Duration::from_secs(15),
        || {
            (1..3)
                .map(|i| cluster.subscribers(i, &channel))
                .sum::<i64>()
                == 2
        },
    );
    let (_, t) = tokens_for(&b, &client, &s.good.key, &[]);
    let access = t["access_token"].as_str().unwrap().to_string();
    assert_eq!(bearer(&a, &access).status, 200);
    let r = post_form(&b, "/revoke", &[("token", &access)], &[]);
    assert_eq!(r.status, 200);
    wait_until("a hears the revocation", Duration::from_secs(5), || {
        bearer(&a, &access).status == 401
    });
}
