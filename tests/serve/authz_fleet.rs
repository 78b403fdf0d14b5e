//! `serve --authorization-server` as a fleet: two instances with one signing key and
//! `--authorization-state redis://…` (a real `redis-server` on 127.0.0.1, started and
//! stopped by each test), each request sent to either one, as a load balancer would.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::authz::{
    authorize, bearer, consent, exchange, form, pkce, post_form, redirected, refresh, register,
    setup, tokens_for, Setup, REDIRECT,
};
use crate::fleet::{wait_until, Redis};
use crate::harness::{assert_no_secret, Server};

/// Instance `name` of a fleet whose state is in `url` (each with its own usage file).
pub(crate) fn instance(s: &Setup, name: &str, url: &str, extra: &[&str]) -> Server {
    instance_with_env(s, name, url, extra, &[])
}

fn instance_with_env(
    s: &Setup,
    name: &str,
    url: &str,
    extra: &[&str],
    env: &[(&str, &str)],
) -> Server {
    let usage = s.verifier().with_file_name(format!("usage.{name}.json"));
    let mut args = vec![
        "--authorization-state",
        url,
        "--usage",
        usage.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    s.serve_with_env(&args, env)
}

/// Two instances sharing the state in `url`.
fn pair(s: &Setup, url: &str, extra: &[&str]) -> (Server, Server) {
    (instance(s, "a", url, extra), instance(s, "b", url, extra))
}

/// A code for `key`: the consent page shown by `page`, answered at `answer`; the code,
/// its PKCE verifier, and the page's form.
pub(crate) fn code_across(
    page: &Server,
    answer: &Server,
    client: &str,
    key: &str,
) -> (String, String, crate::authz::Form) {
    let (verifier, challenge) = pkce();
    let f = form(&authorize(page, client, &challenge, &[]));
    let code = redirected(&consent(answer, &f, key))["code"].clone();
    (code, verifier, f)
}

fn token(t: &Value, which: &str) -> String {
    t[which].as_str().unwrap().to_string()
}

/// Every value the store holds under the bridge's keys, as text.
fn stored(redis: &Redis, name: &str) -> String {
    let pattern = format!("mkm:{{{name}}}:bridge:*");
    let Some(redis::Value::Array(keys)) = redis.query(&["KEYS", &pattern]) else {
        panic!("no keys")
    };
    let mut out = String::new();
    for k in keys {
        let redis::Value::BulkString(k) = k else {
            continue;
        };
        let k = String::from_utf8(k).unwrap();
        out.push_str(&k);
        out.push('\n');
        let kind = redis.query(&["TYPE", &k]);
        let cmd: &[&str] = match kind {
            Some(redis::Value::SimpleString(t)) if t == "hash" => &["HGETALL"],
            Some(redis::Value::SimpleString(t)) if t == "zset" => &["ZRANGE", "0", "-1"],
            _ => &["GET"],
        };
        let mut args = vec![cmd[0], &k];
        args.extend_from_slice(&cmd[1..]);
        out.push_str(&format!("{:?}\n", redis.query(&args)));
    }
    out
}

/// Register at one instance, authorize at the other, consent at the first, exchange at
/// the second; refresh at one and replay the old refresh token at the other: every step
/// finds what the previous one left, and a replay anywhere revokes everywhere.
#[test]
fn every_step_of_a_flow_may_land_on_another_instance() {
    let Some(redis) = Redis::start() else {
        return;
    };
    let s = setup();
    let (a, b) = pair(&s, &redis.url("oauth"), &[]);
    let client = register(&a, REDIRECT);
    let (code, verifier, f) = code_across(&b, &a, &client, &s.good.key);
    // The page was answered: posting it again, anywhere, finds nothing.
    let again = consent(&b, &f, &s.good.key);
    assert_eq!(again.status, 400, "{}", again.raw);
    let r = exchange(&b, &client, &code, &verifier);
    assert_eq!(r.status, 200, "{}", r.raw);
    let first = r.json();
    let access = token(&first, "access_token");
    assert_eq!(bearer(&a, &access).status, 200);
    assert_eq!(bearer(&b, &access).status, 200);

    let r = refresh(&a, &client, &token(&first, "refresh_token"));
    assert_eq!(r.status, 200, "{}", r.raw);
    let second = r.json();
    assert_eq!(bearer(&b, &token(&second, "access_token")).status, 200);
    // The rotated-out token comes back at the other instance: the family is revoked, and
    // both of its access tokens are refused by both instances.
    let t0 = Instant::now();
    let r = refresh(&b, &client, &token(&first, "refresh_token"));
    assert_eq!(r.json()["error"], "invalid_grant", "{}", r.raw);
    for srv in [&a, &b] {
        for t in [&first, &second] {
            let access = token(t, "access_token");
            wait_until("the family's revocation", Duration::from_secs(5), || {
                bearer(srv, &access).status == 401
            });
        }
    }
    eprintln!("family revoked on both instances in {:?}", t0.elapsed());
    let r = refresh(&a, &client, &token(&second, "refresh_token"));
    assert_eq!(r.json()["error"], "invalid_grant", "{}", r.raw);

    // The store holds hashes: no key, code, refresh or access token, in a key or a value.
    let (_, t) = tokens_for(&a, &client, &s.good.key, &[]);
    let dump = stored(&redis, "oauth");
    assert!(dump.contains(":bridge:family:"), "{dump}");
    assert!(dump.contains(":bridge:refresh:"), "{dump}");
    let secrets = [
        s.good.key.as_str(),
        &code,
        &token(&first, "refresh_token"),
        &token(&second, "refresh_token"),
        &token(&t, "refresh_token"),
        &token(&t, "access_token"),
        &f.csrf,
    ];
    assert_no_secret("the store", &dump, &secrets);
    for srv in [&a, &b] {
        assert_no_secret("the log", &srv.log(), &secrets);
    }
}

/// The same code, or the same refresh token, sent to both instances at once: one request
/// wins, and (a second use being indistinguishable from a theft) its tokens are revoked.
#[test]
fn a_code_or_refresh_token_raced_across_instances_is_spent_once() {
    let Some(redis) = Redis::start() else {
        return;
    };
    let s = setup();
    let (a, b) = pair(&s, &redis.url("race"), &[]);
    let client = register(&a, REDIRECT);
    for round in 0..3 {
        let (code, verifier, _) = code_across(&a, &b, &client, &s.good.key);
        let answers: Vec<(u16, String)> = std::thread::scope(|sc| {
            let hs: Vec<_> = (0..8)
                .map(|i| {
                    let srv = if i % 2 == 0 { &a } else { &b };
                    let (client, code, verifier) = (&client, &code, &verifier);
                    sc.spawn(move || {
                        let r = exchange(srv, client, code, verifier);
                        (r.status, r.raw)
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let won: Vec<&String> = answers
            .iter()
            .filter(|(st, _)| *st == 200)
            .map(|(_, raw)| raw)
            .collect();
        assert_eq!(won.len(), 1, "round {round}: {answers:?}");
        let body = won[0].split("\r\n\r\n").nth(1).unwrap();
        let t: Value = serde_json::from_str(body).unwrap();
        for srv in [&a, &b] {
            let access = token(&t, "access_token");
            wait_until(
                "the raced code's tokens refused",
                Duration::from_secs(5),
                || bearer(srv, &access).status == 401,
            );
        }
    }
    // A refresh token raced: one rotation at most.
    let (_, t) = tokens_for(&a, &client, &s.good.key, &[]);
    let rt = token(&t, "refresh_token");
    let ok = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..8)
            .map(|i| {
                let srv = if i % 2 == 0 { &a } else { &b };
                let (client, rt) = (&client, &rt);
                sc.spawn(move || refresh(srv, client, rt).status)
            })
            .collect();
        hs.into_iter()
            .map(|h| h.join().unwrap())
            .filter(|st| *st == 200)
            .count()
    });
    assert_eq!(ok, 1);
}

/// `/revoke` at one instance reaches the other by the channel; a restarted instance loads
/// the denylist and keeps the fleet's valid tokens (one process alone refuses tokens from
/// before its start); consent requests and registered clients live in the store too.
#[test]
fn revocations_reach_every_instance_and_outlive_a_restart() {
    let Some(redis) = Redis::start() else {
        return;
    };
    let s = setup();
    let url = redis.url("revoke");
    let (a, b) = pair(&s, &url, &[]);
    let client = register(&a, REDIRECT);
    let (_, kept) = tokens_for(&b, &client, &s.good.key, &[]);
    let (_, gone) = tokens_for(&a, &client, &s.good.key, &[]);
    let gone_access = token(&gone, "access_token");
    assert_eq!(
        bearer(&b, &gone_access).status,
        200,
        "verified and kept by b"
    );
    let t0 = Instant::now();
    let r = post_form(
        &a,
        "/revoke",
        &[("token", &gone_access), ("client_id", &client)],
        &[],
    );
    assert_eq!(r.status, 200);
    wait_until("b hears the revocation", Duration::from_secs(5), || {
        bearer(&b, &gone_access).status == 401
    });
    eprintln!("/revoke at a refused at b after {:?}", t0.elapsed());
    // A refresh token revoked at b: its family's tokens refused at a.
    let r = post_form(
        &b,
        "/revoke",
        &[("token", &token(&kept, "refresh_token"))],
        &[],
    );
    assert_eq!(r.status, 200);
    let kept_access = token(&kept, "access_token");
    wait_until(
        "a hears the family's revocation",
        Duration::from_secs(5),
        || bearer(&a, &kept_access).status == 401,
    );

    // A consent page shown before b restarts is answered after, at the new b.
    let (verifier, challenge) = pkce();
    let f = form(&authorize(&a, &client, &challenge, &[]));
    let (_, live) = tokens_for(&a, &client, &s.good.key, &[]);
    drop(b);
    let b = instance(&s, "b", &url, &[]);
    assert_eq!(bearer(&b, &token(&live, "access_token")).status, 200);
    assert_eq!(
        bearer(&b, &gone_access).status,
        401,
        "the denylist was loaded"
    );
    assert_eq!(bearer(&b, &kept_access).status, 401);
    let code = redirected(&consent(&b, &f, &s.good.key))["code"].clone();
    assert_eq!(exchange(&b, &client, &code, &verifier).status, 200);
    let r = refresh(&b, &client, &token(&live, "refresh_token"));
    assert_eq!(r.status, 200, "{}", r.raw);
}

/// While the store is away: the authorization endpoints answer 503 (nothing decided),
/// tokens keep working until `--max-stale`, then 503 `STALE`. A store that comes back
/// empty has lost its denylist: every token from before is refused, and new flows work.
#[test]
fn while_the_store_is_away_and_when_it_comes_back_empty() {
    let Some(mut redis) = Redis::start() else {
        return;
    };
    let s = setup();
    let (a, b) = pair(&s, &redis.url("away"), &["--max-stale", "2"]);
    let client = register(&a, REDIRECT);
    let (_, challenge) = pkce();
    let f = form(&authorize(&a, &client, &challenge, &[]));
    let (_, t) = tokens_for(&b, &client, &s.good.key, &[]);
    let access = token(&t, "access_token");
    assert_eq!(bearer(&a, &access).status, 200);

    redis.stop();
    let r = refresh(&a, &client, &token(&t, "refresh_token"));
    assert_eq!(r.status, 503, "{}", r.raw);
    assert_eq!(r.json()["error"], "temporarily_unavailable");
    let r = consent(&b, &f, &s.good.key);
    assert_eq!(r.status, 503, "{}", r.raw);
    let r = authorize(&a, &client, &challenge, &[]);
    assert_eq!(
        r.status, 503,
        "the registered client cannot be looked up: {}",
        r.raw
    );
    assert_eq!(bearer(&a, &access).status, 200, "within --max-stale");
    wait_until("STALE", Duration::from_secs(10), || {
        let r = bearer(&a, &access);
        r.status == 503 && r.code() == "STALE"
    });
    // A key still works: only this issuer's tokens depend on the store.
    assert_eq!(a.auth_x(&s.good.key).status, 200);
    let health = a.get("/healthz", &[]);
    assert_eq!(health.status, 200, "keys still pass: {}", health.raw);
    assert_eq!(health.json()["authorization_state"], "stale");
    assert!(a.metric("mcp_key_serve_tokens_total{result=\"STALE\"}") >= 1);
    let text = a.get("/metrics", &[]).text();
    let age: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("mcp_key_serve_authorization_state_age_seconds "))
        .unwrap_or_else(|| panic!("no age in {text}"))
        .parse()
        .unwrap();
    assert!(age > 2.0, "{age}");

    redis.run();
    for srv in [&a, &b] {
        wait_until(
            "the token refused by the new epoch",
            Duration::from_secs(15),
            || bearer(srv, &access).status == 401,
        );
    }
    // The consent request was lost with the store: the page must be started again.
    assert_eq!(consent(&b, &f, &s.good.key).status, 400);
    let client = register(&b, REDIRECT);
    let (_, t) = tokens_for(&a, &client, &s.good.key, &[]);
    assert_eq!(bearer(&b, &token(&t, "access_token")).status, 200);
    let log = a.log();
    assert!(log.contains("authorization state"), "{log}");
    assert_no_secret("the log", &log, &[s.good.key.as_str(), &access]);
}

/// The ACL of docs/fleet.md ("Least privilege"): a user with the bridge's keys and channel
/// only runs a fleet of two (a flow across both, a family revoked on both), and cannot
/// read the verifier's key.
#[test]
fn the_bridge_runs_as_a_user_limited_to_its_keys() {
    let Some(redis) = Redis::start() else {
        return;
    };
    let mut acl = vec!["ACL", "SETUSER", "mkm-bridge", "on", ">bridge password"];
    acl.extend([
        "~mkm:{acl}:bridge:*",
        "&mkm:{acl}:bridge:revoked",
        "+eval",
        "+evalsha",
        "+script|load",
        "+get",
        "+set",
        "+exists",
        "+expire",
        "+del",
        "+incr",
        "+hget",
        "+hmget",
        "+hset",
        "+hincrby",
        "+zadd",
        "+zrem",
        "+zcard",
        "+zrange",
        "+zrangebyscore",
        "+zremrangebyscore",
        "+publish",
        "+subscribe",
        "+ping",
        "+time",
        "+info",
    ]);
    redis.query(&acl).expect("ACL SETUSER");
    redis
        .query(&["SET", "mkm:{acl}:verifier", "x"])
        .expect("a key the user must not read");
    let url = format!("redis://mkm-bridge@127.0.0.1:{}/0?key=acl", redis.port);
    let env = [("MCP_REDIS_PASSWORD", "bridge password")];
    let s = setup();
    let a = instance_with_env(&s, "a", &url, &[], &env);
    let b = instance_with_env(&s, "b", &url, &[], &env);
    let client = register(&a, REDIRECT);
    let (code, verifier, _) = code_across(&b, &a, &client, &s.good.key);
    let r = exchange(&b, &client, &code, &verifier);
    assert_eq!(r.status, 200, "{}", r.raw);
    let t = r.json();
    let r = refresh(&a, &client, &token(&t, "refresh_token"));
    assert_eq!(r.status, 200, "{}", r.raw);
    let r = refresh(&b, &client, &token(&t, "refresh_token"));
    assert_eq!(r.json()["error"], "invalid_grant");
    for srv in [&a, &b] {
        let access = token(&t, "access_token");
        wait_until("the family's revocation", Duration::from_secs(5), || {
            bearer(srv, &access).status == 401
        });
    }
    let client = redis::Client::open(format!("redis://127.0.0.1:{}/0", redis.port)).unwrap();
    let mut con = client.get_connection().unwrap();
    redis::cmd("AUTH")
        .arg("mkm-bridge")
        .arg("bridge password")
        .query::<()>(&mut con)
        .unwrap();
    let e = redis::cmd("GET")
        .arg("mkm:{acl}:verifier")
        .query::<Option<String>>(&mut con)
        .unwrap_err();
    assert!(e.to_string().to_uppercase().contains("NOPERM"), "{e}");
}

/// A TCP proxy in front of Redis that can silently stop passing published messages to
/// subscribers while every connection stays open: a subscription gone half-open (an idle
/// flow dropped by a NAT or load balancer), or a node cut off from the Cluster bus.
struct Proxy {
    port: u16,
    mute: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Proxy {
    fn start(to: u16) -> Proxy {
        use std::io::{Read, Write};
        use std::sync::atomic::{AtomicBool, Ordering};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mute = std::sync::Arc::new(AtomicBool::new(false));
        let m = std::sync::Arc::clone(&mute);
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let Ok(server) = std::net::TcpStream::connect(("127.0.0.1", to)) else {
                    continue;
                };
                let (mut c_in, mut s_out) =
                    (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || {
                    let mut buf = [0u8; 16384];
                    while let Ok(n) = c_in.read(&mut buf) {
                        if n == 0 || s_out.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                });
                let (mut s_in, mut c_out, m) = (server, client, std::sync::Arc::clone(&m));
                std::thread::spawn(move || {
                    let mut buf = [0u8; 16384];
                    while let Ok(n) = s_in.read(&mut buf) {
                        let chunk = &buf[..n];
                        let message = chunk.windows(13).any(|w| w == b"$7\r\nmessage\r\n");
                        if n == 0 {
                            break;
                        }
                        if message && m.load(Ordering::Relaxed) {
                            continue;
                        }
                        if c_out.write_all(chunk).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        Proxy { port, mute }
    }

    fn url(&self, key: &str) -> String {
        format!("redis://127.0.0.1:{}/0?key={key}", self.port)
    }

    fn mute(&self, on: bool) {
        self.mute.store(on, std::sync::atomic::Ordering::Relaxed);
    }
}

/// A subscription that stays open but stops delivering is found out by the instance's
/// own heartbeat (it does not come back through it): the instance subscribes again and
/// reloads the denylist, so a revocation it could not hear is applied within seconds,
/// never left admitted.
#[test]
fn a_subscription_that_stops_delivering_is_found_out() {
    let Some(redis) = Redis::start() else {
        return;
    };
    let proxy = Proxy::start(redis.port);
    let s = setup();
    let (a, b) = pair(&s, &proxy.url("mute"), &[]);
    let client = register(&a, REDIRECT);
    let (_, t) = tokens_for(&a, &client, &s.good.key, &[]);
    let access = token(&t, "access_token");
    assert_eq!(bearer(&a, &access).status, 200);
    proxy.mute(true);
    let r = post_form(&b, "/revoke", &[("token", &access)], &[]);
    assert_eq!(r.status, 200);
    assert_eq!(
        bearer(&b, &access).status,
        401,
        "the revoking instance at once"
    );
    let t0 = Instant::now();
    wait_until(
        "a refuses the token it did not hear revoked",
        Duration::from_secs(12),
        || bearer(&a, &access).status == 401,
    );
    eprintln!("refused by the muted instance after {:?}", t0.elapsed());
    assert!(a.log().contains("stopped delivering"), "{}", a.log());
    proxy.mute(false);
}

/// A store restarted from its disk (nothing lost here, every write synced) is a new
/// server: the bridge cannot tell what a restart or failover lost (a spent code, a
/// rotated refresh token, a revocation), so everything issued before it is refused —
/// access tokens, codes, refresh tokens — although their records are still there; new
/// flows work.
#[test]
fn a_restarted_or_failed_over_store_refuses_what_came_before() {
    let Some(mut redis) = Redis::start_persistent() else {
        return;
    };
    let s = setup();
    let (a, b) = pair(&s, &redis.url("restart"), &[]);
    let client = register(&a, REDIRECT);
    let (_, t) = tokens_for(&a, &client, &s.good.key, &[]);
    let access = token(&t, "access_token");
    let (code, verifier, _) = code_across(&b, &b, &client, &s.good.key);
    assert_eq!(bearer(&b, &access).status, 200);
    std::thread::sleep(Duration::from_millis(1100));
    redis.stop();
    redis.run();
    // Right after the restart, before or while the instances notice: the restored refresh
    // token is never rotated (503 until the epoch has moved, then invalid_grant).
    let rt = token(&t, "refresh_token");
    wait_until("the epoch moved", Duration::from_secs(15), || {
        let r = refresh(&a, &client, &rt);
        assert_ne!(
            r.status, 200,
            "a restored refresh token was rotated: {}",
            r.raw
        );
        r.status == 400
    });
    for srv in [&a, &b] {
        wait_until("the new epoch", Duration::from_secs(15), || {
            bearer(srv, &access).status == 401
        });
    }
    let families = stored(&redis, "restart");
    assert!(
        families.contains(":bridge:family:"),
        "the records survived: {families}"
    );
    let r = refresh(&b, &client, &token(&t, "refresh_token"));
    assert_eq!(r.json()["error"], "invalid_grant", "{}", r.raw);
    let r = exchange(&a, &client, &code, &verifier);
    assert_eq!(r.json()["error"], "invalid_grant", "{}", r.raw);
    let (_, t) = tokens_for(&b, &client, &s.good.key, &[]);
    assert_eq!(bearer(&a, &token(&t, "access_token")).status, 200);
}

/// Whoever can write the store but lacks the signing key cannot turn a refresh token into
/// another key's, widen its scopes, or send a registered client's codes elsewhere: every
/// record carries a seal, and a record without this bridge's seal is refused.
#[test]
fn a_store_writer_without_the_signing_key_cannot_forge_a_grant() {
    let Some(redis) = Redis::start() else {
        return;
    };
    let s = setup();
    let (a, b) = pair(&s, &redis.url("forge"), &[]);
    let client = register(&a, REDIRECT);
    let (_, mine) = tokens_for(&a, &client, &s.good.key, &[]);
    let (_, theirs) = tokens_for(&a, &client, &s.good.key, &[("scope", "tools:list")]);
    let sid = |t: &Value| {
        crate::authz::claims(&token(t, "access_token"))["sid"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (my_family, their_family) = (sid(&mine), sid(&theirs));
    let family = |f: &str| format!("mkm:{{forge}}:bridge:family:{f}");
    let get = |args: &[&str]| match redis.query(args) {
        Some(redis::Value::BulkString(b)) => String::from_utf8(b).unwrap(),
        other => panic!("{args:?}: {other:?}"),
    };
    // The family's scopes widened: refused.
    let scopes = get(&["HGET", &family(&my_family), "s"]);
    redis
        .query(&[
            "HSET",
            &family(&my_family),
            "s",
            r#"["tools:call","tools:list"]"#,
        ])
        .unwrap();
    let r = refresh(&b, &client, &token(&mine, "refresh_token"));
    assert_eq!(r.json()["error"], "invalid_grant", "{}", r.raw);
    // Put back: the refresh token works again (the seal, not the write, refused it).
    redis
        .query(&["HSET", &family(&my_family), "s", &scopes])
        .unwrap();
    let r = refresh(&b, &client, &token(&mine, "refresh_token"));
    assert_eq!(r.status, 200, "{}", r.raw);
    let mine = r.json();
    // The refresh token pointed at another family: refused.
    let pattern = "mkm:{forge}:bridge:refresh:*";
    let Some(redis::Value::Array(keys)) = redis.query(&["KEYS", pattern]) else {
        panic!()
    };
    let current: Vec<String> = keys
        .into_iter()
        .filter_map(|k| match k {
            redis::Value::BulkString(k) => Some(String::from_utf8(k).unwrap()),
            _ => None,
        })
        .filter(|k| get(&["GET", k]).starts_with(&format!("{my_family} 1 ")))
        .collect();
    assert_eq!(current.len(), 1);
    let value = get(&["GET", &current[0]]);
    let forged = value.replacen(&my_family, &their_family, 1);
    redis.query(&["SET", &current[0], &forged]).unwrap();
    let r = refresh(&a, &client, &token(&mine, "refresh_token"));
    assert_eq!(r.json()["error"], "invalid_grant", "{}", r.raw);
    // A registered client's redirect URI changed: the client is unknown.
    let key = format!("mkm:{{forge}}:bridge:client:{client}");
    let doc = get(&["GET", &key]);
    redis
        .query(&[
            "SET",
            &key,
            &doc.replace(REDIRECT, "https://attacker.example/cb"),
        ])
        .unwrap();
    let (_, challenge) = pkce();
    let r = authorize(
        &b,
        &client,
        &challenge,
        &[("redirect_uri", "https://attacker.example/cb")],
    );
    assert_eq!(r.status, 400, "{}", r.raw);
    assert!(r.text().contains("not registered"), "{}", r.text());
    let logs = a.log() + &b.log();
    assert!(logs.contains("refused for their seal"), "{logs}");
}

/// Registrations are counted for the fleet: ten a minute in all, whichever instance
/// takes them.
#[test]
fn registrations_are_limited_across_the_fleet() {
    let Some(redis) = Redis::start() else {
        return;
    };
    // Not across a minute's end: the count is per minute of the store's clock.
    wait_until("early in a minute", Duration::from_secs(15), || {
        chrono::Utc::now().timestamp() % 60 < 45
    });
    let s = setup();
    let (a, b) = pair(&s, &redis.url("dcr"), &[]);
    let body = serde_json::json!({"redirect_uris": [REDIRECT]}).to_string();
    let statuses: Vec<u16> = (0..12)
        .map(|i| {
            let srv = if i % 2 == 0 { &a } else { &b };
            srv.request(
                "POST",
                "/register",
                &[("Content-Type", "application/json")],
                body.as_bytes(),
            )
            .status
        })
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        10,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        2,
        "{statuses:?}"
    );
}

/// libfaketime, for a process whose clock is off.
fn faketime() -> Option<std::path::PathBuf> {
    let found = std::fs::read_dir("/usr/lib")
        .ok()?
        .filter_map(|d| d.ok())
        .map(|d| d.path().join("faketime/libfaketime.so.1"))
        .find(|p| p.exists());
    crate::common::tool_or_skip(
        "a clock-skew test",
        found.is_some(),
        "libfaketime is not installed (apt-get install faketime)",
    )
    .then_some(found)
    .flatten()
}

/// An instance whose clock is two minutes off the store's refuses to start (exit 2,
/// saying why): instances would judge tokens by different clocks.
#[test]
fn an_instance_whose_clock_is_off_refuses_to_start() {
    let Some(redis) = Redis::start() else {
        return;
    };
    let Some(lib) = faketime() else {
        return;
    };
    let s = setup();
    let url = redis.url("clock");
    let key = s.signing_key();
    let out = std::process::Command::new(crate::common::bin())
        .args(["serve", "--verifier"])
        .arg(s.verifier())
        .args([
            "--listen",
            "127.0.0.1:0",
            "--resource",
            crate::authz::RESOURCE,
        ])
        .args(["--authorization-server", "--signing-key"])
        .arg(&key)
        .args(["--authorization-state", &url])
        .env_clear()
        .env("LD_PRELOAD", &lib)
        .env("FAKETIME", "+120s")
        .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("clock is 12") && err.contains("s away from the store"),
        "{err}"
    );
    // The same without the skew starts.
    let srv = instance(&s, "a", &url, &[]);
    assert_eq!(srv.get("/healthz", &[]).status, 200);
}
