//! The routing-header vectors (`tests/vectors/verifier/routing.json`) through the tower layer
//! with tool permissions: every case, with a key holding every MCP permission and with a key
//! holding none, gets the answer written there. The Python and TypeScript middlewares run the
//! same file.

use std::convert::Infallible;
use std::future::{ready, Ready};
use std::path::Path;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request, Response};
use http_body::Body as _;
use http_body_util::Full;
use mcp_key_verifier::tower::RequireApiKey;
use mcp_key_verifier::{KeyInfo, Verifier};
use serde_json::Value;
use tower_layer::Layer;
use tower_service::Service;

const FULL: &str =
    "mcp_00000000000000a1_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const NONE: &str =
    "mcp_00000000000000b2_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

/// Answers 200 with the body it was handed (the layer hands on what it read).
#[derive(Clone)]
struct Echo;

impl Service<Request<Full<Bytes>>> for Echo {
    type Response = Response<String>;
    type Error = Infallible;
    type Future = Ready<Result<Response<String>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Full<Bytes>>) -> Self::Future {
        let mut body = req.into_body();
        let bytes = match std::pin::Pin::new(&mut body)
            .poll_frame(&mut Context::from_waker(std::task::Waker::noop()))
        {
            Poll::Ready(Some(Ok(f))) => f.into_data().unwrap_or_default(),
            _ => Bytes::new(),
        };
        ready(Ok(Response::new(
            String::from_utf8_lossy(&bytes).into_owned(),
        )))
    }
}

fn layer(keys: &Value) -> RequireApiKey {
    let hasher = Verifier::new(&[3; 32], 0, Vec::new());
    let entry = |key: &str, label: &str| {
        let perms = keys[label].as_array().expect("keys.<label> is a list");
        KeyInfo::new(
            key[4..20].to_string(),
            None,
            hasher.keyed_hash(key),
            false,
            None,
            perms
                .iter()
                .map(|p| p.as_str().unwrap().to_owned())
                .collect(),
        )
    };
    let entries = vec![entry(FULL, "full"), entry(NONE, "none")];
    RequireApiKey::from_verifier(Verifier::new(&[3; 32], 1, entries)).tool_permissions(true)
}

/// One request of case `c` with `key`: (status, body, `WWW-Authenticate`).
async fn send(layer: &RequireApiKey, c: &Value, key: &str) -> (u16, String, String) {
    let mut req = Request::builder()
        .method(c["http_method"].as_str().unwrap())
        .uri("/mcp")
        .header("x-api-key", key);
    for (name, values) in c["headers"].as_object().unwrap() {
        for v in values.as_array().unwrap() {
            // Each character is one byte (U+0000-U+00FF).
            let bytes: Vec<u8> = v
                .as_str()
                .unwrap()
                .chars()
                .map(|ch| u8::try_from(u32::from(ch)).expect("a header character is a byte"))
                .collect();
            req = req.header(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_bytes(&bytes).unwrap(),
            );
        }
    }
    let body = c["body"].as_str().unwrap().to_owned();
    let req = req.body(Full::new(Bytes::from(body))).unwrap();
    let res = layer.layer(Echo).call(req).await.unwrap();
    let status = res.status().as_u16();
    let challenge = res
        .headers()
        .get("www-authenticate")
        .map_or(String::new(), |v| v.to_str().unwrap().to_owned());
    (status, res.into_body(), challenge)
}

/// Every case of `routing.json`, with both keys: the admission (the body handed on unchanged;
/// the key without permissions refused with the case's `scope`) or the refusal (status,
/// JSON-RPC code, message and `data.code`).
#[tokio::test]
async fn every_routing_case_gets_its_answer() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/vectors/verifier/routing.json");
    let text = std::fs::read_to_string(&path).expect("routing.json");
    let all: Value = serde_json::from_str(&text).expect("routing.json is JSON");
    let l = layer(&all["keys"]);
    let cases = all["cases"].as_array().unwrap();
    assert!(cases.len() >= 50, "{} cases", cases.len());
    let mut failures = Vec::new();
    for c in cases {
        let why = c["why"].as_str().unwrap();
        let e = &c["expect"];
        let full = send(&l, c, FULL).await;
        let none = send(&l, c, NONE).await;
        if e["allow"] == true {
            let sent = c["body"].as_str().unwrap();
            if full.0 != 200 || full.1 != sent {
                failures.push(format!("{why}: full key got {} {}", full.0, full.1));
            }
            let want = match e["scope"].as_str() {
                None => (200, String::new()),
                Some(scope) => (
                    403,
                    format!("Bearer error=\"insufficient_scope\", scope=\"{scope}\""),
                ),
            };
            if (none.0, none.2.clone()) != want {
                failures.push(format!(
                    "{why}: key none got {} {:?} {}",
                    none.0, none.2, none.1
                ));
            }
        } else {
            for (label, got) in [("full", &full), ("none", &none)] {
                let body: Value = serde_json::from_str(&got.1).unwrap_or(Value::Null);
                let ok = u64::from(got.0) == e["status"].as_u64().unwrap()
                    && body["error"]["code"] == e["code"]
                    && body["error"]["message"] == e["message"]
                    && body["error"]["data"]["code"] == e["data_code"]
                    && body["jsonrpc"] == "2.0"
                    && body["id"].is_null();
                if !ok {
                    failures.push(format!("{why}: key {label} got {} {}", got.0, got.1));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
