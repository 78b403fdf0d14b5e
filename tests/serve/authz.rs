//! `serve --authorization-server` driven with plain HTTP, as a client and a person at a
//! browser would: metadata, registration (DCR and client metadata documents served here on
//! 127.0.0.1), the consent page and its refusals, code exchange with PKCE, refresh rotation,
//! revocation, and a token that stops working with its key (docs/oauth.md).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine as _;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::fixture::{Spec, TestKey};
use crate::harness::{assert_no_secret, Resp, Server};

pub(crate) const RESOURCE: &str = "https://mcp.example.com/mcp";
pub(crate) const ISSUER: &str = "https://mcp.example.com";
pub(crate) const REDIRECT: &str = "http://127.0.0.1:9/callback";

pub(crate) struct Setup {
    dir: tempfile::TempDir,
    pub(crate) good: TestKey,
    reader: TestKey,
    pub(crate) revoked: TestKey,
    spec: Spec,
}

pub(crate) fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let good = TestKey::new(&["tools:call", "tools:list"]).named("agent");
    let reader = TestKey::new(&["tools:list"]);
    let revoked = TestKey::new(&["tools:call", "tools:list"]).revoked();
    let spec = Spec::new(1, vec![good.clone(), reader.clone(), revoked.clone()]);
    spec.publish(&dir.path().join("verifier.json"));
    Setup {
        dir,
        good,
        reader,
        revoked,
        spec,
    }
}

impl Setup {
    pub(crate) fn verifier(&self) -> PathBuf {
        self.dir.path().join("verifier.json")
    }

    pub(crate) fn signing_key(&self) -> PathBuf {
        self.dir.path().join("signing.jwk")
    }

    /// `serve --authorization-server` with `extra` arguments.
    pub(crate) fn serve(&self, extra: &[&str]) -> Server {
        self.serve_with_env(extra, &[])
    }

    /// As [`Setup::serve`], with these environment variables.
    pub(crate) fn serve_with_env(&self, extra: &[&str], env: &[(&str, &str)]) -> Server {
        let key = self.signing_key();
        let mut args = vec![
            "--resource",
            RESOURCE,
            "--authorization-server",
            "--signing-key",
            key.to_str().unwrap(),
            "--scope",
            "tools:call",
            "--scope",
            "tools:list",
        ];
        args.extend_from_slice(extra);
        Server::start_with_env(&self.verifier(), &args, env)
    }

    /// Publishes the next revision of the verifier with its keys changed by `edit`, and
    /// waits until `serve` has it.
    fn republish(&mut self, srv: &Server, edit: impl FnOnce(&mut Vec<TestKey>)) {
        self.spec.revision += 1;
        edit(&mut self.spec.keys);
        self.spec.publish(&self.verifier());
        let want = self.spec.revision;
        wait_until("the reload", Duration::from_secs(10), || {
            srv.get("/healthz", &[]).json()["revision"] == want
        });
    }

    /// Publishes the verifier with `good` changed by `edit`, and waits until `serve` has it.
    fn change_good(&mut self, srv: &Server, edit: impl Fn(&mut TestKey)) {
        let id = self.good.id.clone();
        self.republish(srv, |keys| {
            keys.iter_mut().filter(|k| k.id == id).for_each(edit)
        });
    }

    /// Publishes the verifier with `good` revoked, and waits until `serve` has it.
    fn revoke_good(&mut self, srv: &Server) {
        self.change_good(srv, |k| k.revoked = true);
    }
}

fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < limit, "timed out: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A PKCE verifier and its S256 challenge.
pub(crate) fn pkce() -> (String, String) {
    let mut b = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut b);
    let verifier = B64URL.encode(b);
    let challenge = B64URL.encode(Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

pub(crate) fn query(pairs: &[(&str, &str)]) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        q.append_pair(k, v);
    }
    q.finish()
}

pub(crate) fn post_form(
    srv: &Server,
    path: &str,
    pairs: &[(&str, &str)],
    headers: &[(&str, &str)],
) -> Resp {
    let mut h = vec![("Content-Type", "application/x-www-form-urlencoded")];
    h.extend_from_slice(headers);
    srv.request("POST", path, &h, query(pairs).as_bytes())
}

pub(crate) fn register(srv: &Server, redirect: &str) -> String {
    let body = json!({"redirect_uris": [redirect], "client_name": "Test Client <b>"}).to_string();
    let r = srv.request(
        "POST",
        "/register",
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    );
    assert_eq!(r.status, 201, "{}", r.raw);
    assert_eq!(r.json()["token_endpoint_auth_method"], "none");
    r.json()["client_id"].as_str().unwrap().to_string()
}

/// The setup, `serve` with the bridge on, and a client registered there.
fn registered() -> (Setup, Server, String) {
    let s = setup();
    let srv = s.serve(&[]);
    let client = register(&srv, REDIRECT);
    (s, srv, client)
}

/// GET /authorize with the usual parameters, `over` replacing or adding some (an empty
/// value removes one).
pub(crate) fn authorize(
    srv: &Server,
    client: &str,
    challenge: &str,
    over: &[(&str, &str)],
) -> Resp {
    let mut pairs: Vec<(&str, &str)> = vec![
        ("response_type", "code"),
        ("client_id", client),
        ("redirect_uri", REDIRECT),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
        ("scope", "tools:call"),
        ("state", "st-123"),
        ("resource", RESOURCE),
    ];
    for (k, v) in over {
        pairs.retain(|(x, _)| x != k);
        if !v.is_empty() {
            pairs.push((k, v));
        }
    }
    srv.get(&format!("/authorize?{}", query(&pairs)), &[])
}

/// What the consent page hands back: its request handle, CSRF token and cookie.
pub(crate) struct Form {
    pub(crate) request: String,
    pub(crate) csrf: String,
    pub(crate) cookie: String,
}

fn hidden(html: &str, name: &str) -> String {
    let at = html
        .find(&format!("name=\"{name}\" value=\""))
        .unwrap_or_else(|| panic!("no {name}: {html}"));
    let rest = &html[at + name.len() + 15..];
    rest[..rest.find('"').unwrap()].to_string()
}

pub(crate) fn form(page: &Resp) -> Form {
    assert_eq!(page.status, 200, "{}", page.raw);
    let html = page.text();
    let cookie = page
        .header("set-cookie")
        .and_then(|c| c.split(';').next())
        .expect("a consent cookie")
        .to_string();
    Form {
        request: hidden(&html, "request"),
        csrf: hidden(&html, "csrf"),
        cookie,
    }
}

pub(crate) fn consent(srv: &Server, f: &Form, key: &str) -> Resp {
    post_form(
        srv,
        "/authorize",
        &[
            ("request", &f.request),
            ("csrf", &f.csrf),
            ("key", key),
            ("decision", "allow"),
        ],
        &[("Cookie", &f.cookie)],
    )
}

/// The query parameters of a redirect's Location.
pub(crate) fn redirected(r: &Resp) -> std::collections::HashMap<String, String> {
    assert_eq!(r.status, 302, "{}", r.raw);
    let loc = r.header("location").unwrap();
    assert!(loc.starts_with(REDIRECT), "{loc}");
    let q = loc.split_once('?').unwrap().1;
    form_urlencoded::parse(q.as_bytes()).into_owned().collect()
}

pub(crate) fn exchange(srv: &Server, client: &str, code: &str, verifier: &str) -> Resp {
    post_form(
        srv,
        "/token",
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("client_id", client),
            ("redirect_uri", REDIRECT),
            ("code_verifier", verifier),
            ("resource", RESOURCE),
        ],
        &[],
    )
}

pub(crate) fn refresh(srv: &Server, client: &str, token: &str) -> Resp {
    post_form(
        srv,
        "/token",
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", token),
            ("client_id", client),
        ],
        &[],
    )
}

pub(crate) fn bearer(srv: &Server, token: &str) -> Resp {
    srv.get("/auth", &[("Authorization", &format!("Bearer {token}"))])
}

/// The whole flow for `key` (the authorization request changed by `over`, as in
/// [`authorize`]): the code and the token response.
pub(crate) fn tokens_for(
    srv: &Server,
    client: &str,
    key: &str,
    over: &[(&str, &str)],
) -> (String, Value) {
    let (verifier, challenge) = pkce();
    let f = form(&authorize(srv, client, &challenge, over));
    let code = redirected(&consent(srv, &f, key))["code"].clone();
    let r = exchange(srv, client, &code, &verifier);
    assert_eq!(r.status, 200, "{}", r.raw);
    (code, r.json())
}

#[test]
fn metadata_names_the_endpoints_and_the_resource_names_the_issuer() {
    let s = setup();
    let srv = s.serve(&[]);
    let m = srv.get("/.well-known/oauth-authorization-server", &[]);
    assert_eq!(m.status, 200);
    let m = m.json();
    assert_eq!(m["issuer"], ISSUER);
    assert_eq!(m["authorization_endpoint"], format!("{ISSUER}/authorize"));
    assert_eq!(m["token_endpoint"], format!("{ISSUER}/token"));
    assert_eq!(m["registration_endpoint"], format!("{ISSUER}/register"));
    assert_eq!(m["revocation_endpoint"], format!("{ISSUER}/revoke"));
    assert_eq!(m["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(m["token_endpoint_auth_methods_supported"], json!(["none"]));
    assert_eq!(
        m["grant_types_supported"],
        json!(["authorization_code", "refresh_token"])
    );
    assert_eq!(m["response_types_supported"], json!(["code"]));
    assert_eq!(m["scopes_supported"], json!(["tools:call", "tools:list"]));
    assert_eq!(m["client_id_metadata_document_supported"], true);
    assert_eq!(m["authorization_response_iss_parameter_supported"], true);
    let prm = srv
        .get("/.well-known/oauth-protected-resource/mcp", &[])
        .json();
    assert_eq!(prm["authorization_servers"], json!([ISSUER]));
    let jwks = srv.get("/jwks.json", &[]).json();
    let k = &jwks["keys"][0];
    assert_eq!(
        (k["kty"].as_str(), k["crv"].as_str()),
        (Some("OKP"), Some("Ed25519"))
    );
    assert!(k["kid"].as_str().is_some_and(|k| k.len() == 43) && k.get("d").is_none());
    // The key file is private, and a restart keeps the key.
    let mode = std::fs::metadata(s.signing_key()).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
        0o600
    );
    drop(srv);
    let again = s.serve(&["--no-dynamic-registration"]);
    assert_eq!(again.get("/jwks.json", &[]).json(), jwks);
    let m = again
        .get("/.well-known/oauth-authorization-server", &[])
        .json();
    assert!(m.get("registration_endpoint").is_none());
    assert_eq!(again.request("POST", "/register", &[], b"{}").status, 404);
}

#[test]
fn a_key_becomes_a_token_that_lasts_only_as_long_as_the_key() {
    let mut s = setup();
    let srv = s.serve(&[]);
    let client = register(&srv, REDIRECT);
    let (verifier, challenge) = pkce();
    let page = authorize(
        &srv,
        &client,
        &challenge,
        &[("scope", "tools:call tools:list")],
    );
    assert_eq!(
        page.header("content-security-policy"),
        Some("default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'")
    );
    assert_eq!(page.header("x-frame-options"), Some("DENY"));
    assert_eq!(page.header("cache-control"), Some("no-store"));
    assert_eq!(page.header("referrer-policy"), Some("no-referrer"));
    let cookie = page.header("set-cookie").unwrap();
    assert!(
        cookie.starts_with("__Host-mcp-consent=")
            && cookie.contains("Secure")
            && cookie.contains("HttpOnly")
    );
    let html = page.text();
    assert!(!html.contains("<script"), "{html}");
    assert!(
        html.contains(&client) && html.contains("Test Client &lt;b&gt;"),
        "{html}"
    );
    assert!(html.contains("<code>tools:call</code>") && html.contains("<code>tools:list</code>"));
    assert!(html.contains("<label for=\"key\">") && html.contains("type=\"password\""));
    let f = form(&page);

    // CSRF: a wrong token, or the right one from another browser (no cookie), is refused.
    let mut wrong = Form {
        csrf: "x".repeat(43),
        ..form(&page)
    };
    assert_eq!(consent(&srv, &wrong, &s.good.key).status, 403);
    wrong.csrf = f.csrf.clone();
    wrong.cookie = "__Host-mcp-consent=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".into();
    assert_eq!(consent(&srv, &wrong, &s.good.key).status, 403);
    // A revoked key, and a valid one lacking a scope, are refused on the page.
    let r = consent(&srv, &f, &s.revoked.key);
    assert_eq!(r.status, 400);
    assert!(r.text().contains("This key is not accepted here") && r.header("location").is_none());
    let r = consent(&srv, &f, &s.reader.key);
    assert_eq!(r.status, 400);
    assert!(
        r.text().contains("does not hold every permission"),
        "{}",
        r.text()
    );
    // The good key: a code, the state and the issuer (RFC 9207).
    let back = redirected(&consent(&srv, &f, &s.good.key));
    assert_eq!(back["state"], "st-123");
    assert_eq!(back["iss"], ISSUER);
    let code = &back["code"];
    // The page cannot be used twice.
    assert_eq!(consent(&srv, &f, &s.good.key).status, 400);
    let counted = |result: &str| {
        srv.metric(&format!(
            "mcp_key_serve_bridge_consents_total{{result=\"{result}\"}}"
        ))
    };
    assert_eq!(
        [
            counted("approved"),
            counted("denied"),
            counted("key_refused"),
            counted("form_refused")
        ],
        [1, 0, 2, 2]
    );

    let r = exchange(&srv, &client, code, &verifier);
    assert_eq!(r.status, 200, "{}", r.raw);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let t = r.json();
    assert_eq!(t["token_type"], "Bearer");
    assert_eq!(t["expires_in"], 900);
    assert_eq!(t["scope"], "tools:call tools:list");
    let access = t["access_token"].as_str().unwrap().to_string();
    let refresh1 = t["refresh_token"].as_str().unwrap().to_string();
    let claims: Value =
        serde_json::from_slice(&B64URL.decode(access.split('.').nth(1).unwrap()).unwrap()).unwrap();
    assert_eq!(claims["aud"], RESOURCE);
    assert_eq!(claims["sub"], s.good.id.as_str());
    assert_eq!(claims["client_id"], client.as_str());
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        900
    );
    assert!(claims["jti"].as_str().is_some());

    let a = bearer(&srv, &access);
    assert_eq!(a.status, 200, "{}", a.raw);
    assert_eq!(a.header("x-mcp-subject"), Some(s.good.id.as_str()));
    assert_eq!(a.header("x-mcp-key-id"), Some(s.good.id.as_str()));
    assert_eq!(
        a.header("x-mcp-key-permissions"),
        Some("tools:call,tools:list")
    );

    // Rotation: a new refresh token, and a new access token.
    let r = refresh(&srv, &client, &refresh1);
    assert_eq!(r.status, 200, "{}", r.raw);
    let refresh2 = r.json()["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(refresh2, refresh1);

    // The key is revoked in the vault: at the next reload its token is refused, and so is
    // its refresh.
    s.revoke_good(&srv);
    let a = bearer(&srv, &access);
    assert_eq!(a.status, 401, "{}", a.raw);
    assert!(a
        .header("www-authenticate")
        .unwrap()
        .contains("invalid_token"));
    let r = refresh(&srv, &client, &refresh2);
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (400, Some("invalid_grant"))
    );

    let log = srv.log();
    assert_no_secret(
        "the log",
        &log,
        &[&s.good.key, &s.revoked.key, &s.reader.key],
    );
    for secret in [
        code.as_str(),
        &access,
        &refresh1,
        &refresh2,
        &f.csrf,
        &f.request,
    ] {
        assert!(!log.contains(secret), "the log holds a secret: {log}");
    }
    let d = serde_json::from_slice::<Value>(&std::fs::read(s.signing_key()).unwrap()).unwrap()["d"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(!log.contains(&d) && !srv.get("/metrics", &[]).text().contains(&d));
}

#[test]
fn authorization_requests_that_are_refused() {
    let (_s, srv, client) = registered();
    let (_, challenge) = pkce();
    let error_of = |over: &[(&str, &str)]| {
        let back = redirected(&authorize(&srv, &client, &challenge, over));
        assert_eq!(
            (back["state"].as_str(), back["iss"].as_str()),
            ("st-123", ISSUER)
        );
        assert!(!back.contains_key("code"));
        back["error"].clone()
    };
    // PKCE missing, or plain.
    assert_eq!(
        error_of(&[("code_challenge_method", "")]),
        "invalid_request"
    );
    assert_eq!(error_of(&[("code_challenge", "")]), "invalid_request");
    assert_eq!(
        error_of(&[("code_challenge_method", "plain")]),
        "invalid_request"
    );
    assert_eq!(
        error_of(&[("resource", "https://other.example/mcp")]),
        "invalid_target"
    );
    assert_eq!(error_of(&[("scope", "admin")]), "invalid_scope");
    assert_eq!(
        error_of(&[("response_type", "token")]),
        "unsupported_response_type"
    );
    // Before the redirect URI is trusted: a page, never a redirect.
    for over in [
        [("redirect_uri", "http://127.0.0.1:9/elsewhere")],
        [("redirect_uri", "")],
        [("client_id", "dcr_unknown")],
        [("client_id", "")],
    ] {
        let r = authorize(&srv, &client, &challenge, &over);
        assert_eq!(r.status, 400, "{over:?}: {}", r.raw);
        assert!(
            r.header("location").is_none()
                && r.header("content-type").unwrap().starts_with("text/html")
        );
        assert_eq!(r.header("x-frame-options"), Some("DENY"));
    }
    // The person denies: access_denied, with the state.
    let f = form(&authorize(&srv, &client, &challenge, &[]));
    let r = post_form(
        &srv,
        "/authorize",
        &[
            ("request", &f.request),
            ("csrf", &f.csrf),
            ("decision", "deny"),
        ],
        &[("Cookie", &f.cookie)],
    );
    assert_eq!(redirected(&r)["error"], "access_denied");
}

#[test]
fn code_exchanges_that_are_refused() {
    let (s, srv, client) = registered();
    let other = register(&srv, REDIRECT);
    let (verifier, challenge) = pkce();
    let f = form(&authorize(&srv, &client, &challenge, &[]));
    let code = redirected(&consent(&srv, &f, &s.good.key))["code"].clone();
    let refused = |pairs: &[(&str, &str)]| {
        let r = post_form(&srv, "/token", pairs, &[]);
        assert_eq!(r.status, 400, "{}", r.raw);
        assert_eq!(r.header("cache-control"), Some("no-store"));
        r.json()["error"].as_str().unwrap().to_string()
    };
    let base = |over: &[(&str, &str)]| -> Vec<(String, String)> {
        let mut p: Vec<(String, String)> = [
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("client_id", client.as_str()),
            ("redirect_uri", REDIRECT),
            ("code_verifier", verifier.as_str()),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for (k, v) in over {
            p.retain(|(x, _)| x != k);
            if !v.is_empty() {
                p.push((k.to_string(), v.to_string()));
            }
        }
        p
    };
    let with = |over: &[(&str, &str)]| {
        let p = base(over);
        let p: Vec<(&str, &str)> = p.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        refused(&p)
    };
    let (wrong_verifier, _) = pkce();
    assert_eq!(with(&[("code_verifier", &wrong_verifier)]), "invalid_grant");
    assert_eq!(with(&[("code_verifier", "")]), "invalid_request");
    assert_eq!(with(&[("code_verifier", &challenge)]), "invalid_grant");
    assert_eq!(with(&[("client_id", &other)]), "invalid_grant");
    assert_eq!(
        with(&[("redirect_uri", "http://127.0.0.1:9/elsewhere")]),
        "invalid_grant"
    );
    assert_eq!(
        with(&[("resource", "https://other.example/mcp")]),
        "invalid_target"
    );
    assert_eq!(
        with(&[("grant_type", "password")]),
        "unsupported_grant_type"
    );
    assert_eq!(with(&[("code", "made-up")]), "invalid_grant");
    // Not the shape of a code (43 base64url characters): refused before it is looked up.
    let odd = format!("{}\0x", &code[..41]);
    assert_eq!(with(&[("code", &odd)]), "invalid_grant");
    assert_eq!(with(&[("code", &format!("{code}="))]), "invalid_grant");
    // None of those used the code up: the right exchange works once.
    let t = exchange(&srv, &client, &code, &verifier);
    assert_eq!(t.status, 200, "{}", t.raw);
    let access = t.json()["access_token"].as_str().unwrap().to_string();
    let refresh1 = t.json()["refresh_token"].as_str().unwrap().to_string();
    assert_eq!(bearer(&srv, &access).status, 200);
    // A second use is refused and revokes what the first gave.
    let again = exchange(&srv, &client, &code, &verifier);
    assert_eq!(
        (again.status, again.json()["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    assert_eq!(bearer(&srv, &access).status, 401);
    assert_eq!(
        refresh(&srv, &client, &refresh1).json()["error"],
        "invalid_grant"
    );
}

#[test]
fn a_rotated_out_refresh_token_revokes_its_family() {
    let (s, srv, client) = registered();
    let (_, t) = tokens_for(&srv, &client, &s.good.key, &[]);
    let r1 = t["refresh_token"].as_str().unwrap();
    let n = refresh(&srv, &client, r1).json();
    let (a2, r2) = (
        n["access_token"].as_str().unwrap(),
        n["refresh_token"].as_str().unwrap(),
    );
    assert_eq!(bearer(&srv, a2).status, 200);
    // Another client cannot use it.
    let other = register(&srv, REDIRECT);
    let (_, t) = tokens_for(&srv, &client, &s.good.key, &[]);
    let stolen = t["refresh_token"].as_str().unwrap();
    assert_eq!(
        refresh(&srv, &other, stolen).json()["error"],
        "invalid_grant"
    );
    // r1 again: refused, and the family (a2, r2) with it.
    assert_eq!(refresh(&srv, &client, r1).json()["error"], "invalid_grant");
    assert_eq!(bearer(&srv, a2).status, 401);
    assert_eq!(refresh(&srv, &client, r2).json()["error"], "invalid_grant");
    // Counted: 1 refresh issued; refused by another client and after the family went;
    // 1 reuse. Two codes exchanged.
    let m = |grant: &str, result: &str| {
        srv.metric(&format!(
            "mcp_key_serve_bridge_grants_total{{grant=\"{grant}\",result=\"{result}\"}}"
        ))
    };
    assert_eq!(m("refresh_token", "issued"), 1);
    assert_eq!(m("refresh_token", "refused"), 2);
    assert_eq!(m("refresh_token", "reused"), 1);
    assert_eq!(m("authorization_code", "issued"), 2);
    assert_eq!(m("authorization_code", "reused"), 0);
}

#[test]
fn revocation_and_tokens_not_for_this_resource() {
    let (s, srv, client) = registered();
    let (_, t) = tokens_for(&srv, &client, &s.good.key, &[]);
    let access = t["access_token"].as_str().unwrap();
    // Used once (and so kept verified), then revoked: refused all the same.
    assert_eq!(bearer(&srv, access).status, 200);
    let r = post_form(
        &srv,
        "/revoke",
        &[("token", access), ("client_id", &client)],
        &[],
    );
    assert_eq!(r.status, 200);
    assert_eq!(bearer(&srv, access).status, 401);
    let (_, t) = tokens_for(&srv, &client, &s.good.key, &[]);
    let rt = t["refresh_token"].as_str().unwrap();
    assert_eq!(
        bearer(&srv, t["access_token"].as_str().unwrap()).status,
        200
    );
    assert_eq!(
        post_form(&srv, "/revoke", &[("token", rt)], &[]).status,
        200
    );
    assert_eq!(refresh(&srv, &client, rt).json()["error"], "invalid_grant");
    assert_eq!(
        bearer(&srv, t["access_token"].as_str().unwrap()).status,
        401
    );
    // Unknown tokens: 200 all the same (RFC 7009 §2.2).
    assert_eq!(
        post_form(&srv, "/revoke", &[("token", "nothing")], &[]).status,
        200
    );

    // Signed with this issuer's key, for another audience: refused.
    let jwk: Value = serde_json::from_slice(&std::fs::read(s.signing_key()).unwrap()).unwrap();
    let seed: [u8; 32] = B64URL
        .decode(jwk["d"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    let key = ed25519_dalek::SigningKey::from_bytes(&seed);
    let kid = srv.get("/jwks.json", &[]).json()["keys"][0]["kid"]
        .as_str()
        .unwrap()
        .to_string();
    let now = chrono::Utc::now().timestamp();
    let sign_at = |aud: &str, iat: i64, exp: i64| {
        let h = B64URL.encode(json!({"alg": "EdDSA", "typ": "at+jwt", "kid": kid}).to_string());
        let c = B64URL.encode(
            json!({"iss": ISSUER, "aud": aud, "sub": s.good.id, "scope": "tools:call",
                   "iat": iat, "exp": exp, "jti": format!("j-{aud}-{iat}-{exp}"), "sid": "999"})
            .to_string(),
        );
        let input = format!("{h}.{c}");
        let sig = ed25519_dalek::Signer::sign(&key, input.as_bytes());
        format!("{input}.{}", B64URL.encode(sig.to_bytes()))
    };
    let sign = |aud: &str| sign_at(aud, now, now + 300);
    assert_eq!(
        bearer(&srv, &sign(RESOURCE)).status,
        200,
        "the control token passes"
    );
    let r = bearer(&srv, &sign("https://other.example/mcp"));
    assert_eq!(r.status, 401);
    // With this issuer's key, but not as it mints: longer than an hour, or from the future.
    assert_eq!(
        bearer(&srv, &sign_at(RESOURCE, now, now + 7200)).status,
        401
    );
    assert_eq!(
        bearer(&srv, &sign_at(RESOURCE, now + 600, now + 900)).status,
        401
    );
    assert!(r
        .header("www-authenticate")
        .unwrap()
        .contains("invalid_token"));
}

#[test]
fn registration_is_rate_limited() {
    let s = setup();
    let srv = s.serve(&[]);
    let reg = |redirect: &str| {
        let body = json!({"redirect_uris": [redirect]}).to_string();
        srv.request(
            "POST",
            "/register",
            &[("Content-Type", "application/json")],
            body.as_bytes(),
        )
    };
    let r = reg("http://client.example/cb");
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (400, Some("invalid_redirect_uri"))
    );
    let confidential =
        json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "client_secret_basic"});
    let r = srv.request(
        "POST",
        "/register",
        &[],
        confidential.to_string().as_bytes(),
    );
    assert_eq!(r.json()["error"], "invalid_client_metadata");
    for _ in 2..10 {
        assert_eq!(reg(REDIRECT).status, 201);
    }
    let r = reg(REDIRECT);
    assert_eq!(r.status, 429, "{}", r.raw);
    assert_eq!(r.header("retry-after"), Some("60"));
}

/// Client metadata documents served on 127.0.0.1: `/good.json` (naming itself),
/// `/big.json` (6 KiB), `/slow.json` (answers after 5 s); every request counted.
struct Documents {
    port: u16,
    hits: Arc<AtomicUsize>,
}

impl Documents {
    fn start() -> Documents {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let hits = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&hits);
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let counted = Arc::clone(&counted);
                std::thread::spawn(move || {
                    let mut line = String::new();
                    let mut reader = BufReader::new(conn.try_clone().unwrap());
                    reader.read_line(&mut line).unwrap_or(0);
                    loop {
                        let mut h = String::new();
                        if reader.read_line(&mut h).unwrap_or(0) <= 2 {
                            break;
                        }
                    }
                    counted.fetch_add(1, Ordering::SeqCst);
                    let path = line.split(' ').nth(1).unwrap_or("").to_string();
                    let me = format!("http://127.0.0.1:{port}{path}");
                    let body = match path.as_str() {
                        "/good.json" => json!({"client_id": me, "client_name": "Doc Client",
                                               "redirect_uris": [REDIRECT]})
                        .to_string(),
                        "/big.json" => json!({"client_id": me, "redirect_uris": [REDIRECT],
                                              "padding": "x".repeat(6000)})
                        .to_string(),
                        _ => {
                            std::thread::sleep(Duration::from_secs(5));
                            json!({"client_id": me, "redirect_uris": [REDIRECT]}).to_string()
                        }
                    };
                    let _ = write!(
                        conn,
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
                         Connection: close\r\n\r\n{body}",
                        body.len()
                    );
                });
            }
        });
        Documents { port, hits }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

#[test]
fn client_metadata_documents_bounded_and_never_private_unless_allowed() {
    let s = setup();
    let docs = Documents::start();
    let (verifier, challenge) = pkce();

    // Without --allow-private-clients: no fetch of a loopback (or plain-HTTP) document.
    let srv = s.serve(&[]);
    for id in [
        docs.url("/good.json"),
        format!("https://localhost:{}/good.json", docs.port),
    ] {
        let r = authorize(&srv, &id, &challenge, &[]);
        assert_eq!(r.status, 400, "{id}: {}", r.raw);
        assert!(r.header("location").is_none());
    }
    let r = authorize(
        &srv,
        &format!("https://127.0.0.1:{}/good.json", docs.port),
        &challenge,
        &[],
    );
    assert!(
        r.text().contains("private, loopback or link-local"),
        "{}",
        r.text()
    );
    assert_eq!(docs.hits.load(Ordering::SeqCst), 0, "nothing was fetched");
    drop(srv);

    let srv = s.serve(&["--allow-private-clients"]);
    let good = docs.url("/good.json");
    let page = authorize(&srv, &good, &challenge, &[]);
    assert!(page.text().contains("Doc Client"), "{}", page.raw);
    let code = redirected(&consent(&srv, &form(&page), &s.good.key))["code"].clone();
    assert_eq!(exchange(&srv, &good, &code, &verifier).status, 200);
    // Cached: the second authorization fetches nothing.
    let before = docs.hits.load(Ordering::SeqCst);
    assert_eq!(authorize(&srv, &good, &challenge, &[]).status, 200);
    assert_eq!(docs.hits.load(Ordering::SeqCst), before);

    let r = authorize(&srv, &docs.url("/big.json"), &challenge, &[]);
    assert_eq!(r.status, 400);
    assert!(r.text().contains("larger than 5 KiB"), "{}", r.text());
    let t0 = Instant::now();
    let r = authorize(&srv, &docs.url("/slow.json"), &challenge, &[]);
    assert_eq!(r.status, 400);
    assert!(r.text().contains("in time"), "{}", r.text());
    assert!(
        t0.elapsed() < Duration::from_millis(4500),
        "{:?}",
        t0.elapsed()
    );
}

#[test]
fn startup_needs_a_private_signing_key() {
    let s = setup();
    let run = |args: &[&str]| {
        std::process::Command::new(crate::harness::bin())
            .arg("serve")
            .arg("--verifier")
            .arg(s.verifier())
            .args([
                "--listen",
                "127.0.0.1:0",
                "--resource",
                RESOURCE,
                "--authorization-server",
            ])
            .args(args)
            .env_clear()
            .output()
            .unwrap()
    };
    let o = run(&[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--signing-key"));
    let key = s.signing_key();
    std::fs::write(&key, "{}").unwrap();
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let o = run(&["--signing-key", key.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("readable by other users"));
}

#[test]
fn a_token_is_cut_to_its_key_and_dies_with_its_expiry() {
    let mut s = setup();
    let srv = s.serve(&[]);
    let client = register(&srv, REDIRECT);
    let over = [("scope", "tools:call tools:list")];
    let (_, t) = tokens_for(&srv, &client, &s.good.key, &over);
    let access = t["access_token"].as_str().unwrap();
    let perms = |s: &Server| {
        bearer(s, access)
            .header("x-mcp-key-permissions")
            .map(str::to_owned)
    };
    assert_eq!(perms(&srv).as_deref(), Some("tools:call,tools:list"));
    // tools:list is taken from the key: the token loses it at the next reload.
    s.change_good(&srv, |k| k.permissions = vec!["tools:call".into()]);
    assert_eq!(perms(&srv).as_deref(), Some("tools:call"));
    let r = srv.get(
        "/auth",
        &[
            ("Authorization", &format!("Bearer {access}")),
            ("X-MCP-Require", "tools:list"),
        ],
    );
    assert_eq!(r.status, 403, "{}", r.raw);
    // The key expires: the token is refused.
    s.change_good(&srv, |k| k.expires_at = Some("2020-01-01T00:00:00Z".into()));
    assert_eq!(bearer(&srv, access).status, 401);
}

#[test]
fn a_state_too_long_to_keep_is_refused_without_echo() {
    let (_s, srv, client) = registered();
    let (_, challenge) = pkce();
    let long = "s".repeat(513);
    let back = redirected(&authorize(&srv, &client, &challenge, &[("state", &long)]));
    assert_eq!(back["error"], "invalid_request");
    assert!(!back.contains_key("state"));
}

/// The claims of a JWS, unverified (the test reads what it was given).
pub(crate) fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&B64URL.decode(payload).unwrap()).unwrap()
}

fn refresh_scoped(srv: &Server, client: &str, token: &str, scope: &str) -> Resp {
    post_form(
        srv,
        "/token",
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", token),
            ("client_id", client),
            ("scope", scope),
        ],
        &[],
    )
}

#[test]
fn a_refresh_may_narrow_its_scope_but_not_widen_it() {
    let (s, srv, client) = registered();
    let (_, t) = tokens_for(&srv, &client, &s.good.key, &[("scope", "tools:call")]);
    let r1 = t["refresh_token"].as_str().unwrap().to_owned();
    // Wider than the grant (the key holds tools:list, the grant does not): refused, and
    // nothing rotated: the same refresh token still works.
    let wide = refresh_scoped(&srv, &client, &r1, "tools:call tools:list");
    assert_eq!(wide.status, 400, "{}", wide.raw);
    assert_eq!(wide.json()["error"], "invalid_scope");
    assert_eq!(
        refresh_scoped(&srv, &client, &r1, "").json()["error"],
        "invalid_scope"
    );
    let n = refresh_scoped(&srv, &client, &r1, "tools:call");
    assert_eq!(n.status, 200, "{}", n.raw);
    assert_eq!(n.json()["scope"], "tools:call");
    assert_eq!(
        claims(n.json()["access_token"].as_str().unwrap())["scope"],
        "tools:call"
    );
}

#[test]
fn without_a_scope_the_token_holds_what_the_key_holds_of_the_offered_scopes() {
    let (s, srv, client) = registered();
    // No scope asked: the offered scopes (tools:call, tools:list) cut to the key's.
    let (_, t) = tokens_for(&srv, &client, &s.reader.key, &[("scope", "")]);
    assert_eq!(t["scope"], "tools:list");
    let c = claims(t["access_token"].as_str().unwrap());
    assert_eq!(c["scope"], "tools:list");
    assert_eq!(c["sub"], s.reader.id.as_str());
    assert_eq!(c["aud"], RESOURCE);
    // The default lifetime is 15 minutes.
    assert_eq!(c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(), 900);
}

#[test]
fn a_token_lasts_an_hour_at_most() {
    let s = setup();
    let o = std::process::Command::new(crate::harness::bin())
        .args(["serve", "--verifier"])
        .arg(s.verifier())
        .args(["--listen", "127.0.0.1:0", "--resource", RESOURCE])
        .args(["--authorization-server", "--signing-key"])
        .arg(s.signing_key())
        .args(["--token-lifetime", "3601"])
        .env_clear()
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--token-lifetime"));
    let srv = s.serve(&["--token-lifetime", "3600"]);
    let client = register(&srv, REDIRECT);
    let (_, t) = tokens_for(&srv, &client, &s.good.key, &[]);
    assert_eq!(t["expires_in"], 3600);
    let c = claims(t["access_token"].as_str().unwrap());
    assert_eq!(
        c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(),
        3600
    );
}

#[test]
fn tokens_from_before_a_restart_are_refused() {
    let (s, srv, client) = registered();
    let (_, t) = tokens_for(&srv, &client, &s.good.key, &[]);
    let access = t["access_token"].as_str().unwrap().to_owned();
    let r = t["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(bearer(&srv, &access).status, 200);
    drop(srv);
    // The same signing key: the signature still holds, but what this instance revoked
    // died with it, so nothing from before is trusted.
    std::thread::sleep(Duration::from_millis(1100));
    let srv = s.serve(&[]);
    let again = bearer(&srv, &access);
    assert_eq!(again.status, 401, "{}", again.raw);
    assert_eq!(refresh(&srv, &client, &r).json()["error"], "invalid_grant");
}

#[test]
fn a_key_deleted_from_the_vault_takes_its_tokens_with_it() {
    let mut s = setup();
    let srv = s.serve(&[]);
    let client = register(&srv, REDIRECT);
    let (_, t) = tokens_for(&srv, &client, &s.good.key, &[]);
    let access = t["access_token"].as_str().unwrap().to_owned();
    let r = t["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(bearer(&srv, &access).status, 200);
    let gone = s.good.id.clone();
    s.republish(&srv, |keys| keys.retain(|k| k.id != gone));
    assert_eq!(bearer(&srv, &access).status, 401);
    assert_eq!(refresh(&srv, &client, &r).json()["error"], "invalid_grant");
}
