//! End to end: a real rmcp streamable-HTTP server on axum behind `RequireApiKey`, called
//! by rmcp's own client and by raw HTTP requests.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use mcp_key_verifier::tower::RequireApiKey;
use mcp_key_verifier::{KeyInfo, Verifier, Watched};
use rmcp::handler::server::{router::tool::ToolRouter, wrapper::Parameters};
use rmcp::model::{CallToolRequestParams, ClientConfig, ServerCapabilities, ServerConfig};
use rmcp::service::RunningService;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::streamable_http_server::{
    session::local::LocalSessionManager, StreamableHttpServerConfig, StreamableHttpService,
};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::{tool, tool_handler, tool_router, RoleClient, ServerHandler, ServiceExt};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
struct EchoArgs {
    text: String,
}

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
struct AddArgs {
    a: i64,
    b: i64,
}

#[derive(Debug, Clone)]
struct Tools {
    tool_router: ToolRouter<Self>,
}

#[tool_router]
impl Tools {
    #[tool(description = "Echo the text")]
    fn echo(&self, Parameters(EchoArgs { text }): Parameters<EchoArgs>) -> String {
        text
    }

    #[tool(description = "Add two numbers")]
    fn add(&self, Parameters(AddArgs { a, b }): Parameters<AddArgs>) -> String {
        (a + b).to_string()
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Tools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }
}

const HASH_KEY: [u8; 32] = [7; 32];
const FULL: &str =
    "mcp_00000000000000a1_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const ECHO_ONLY: &str =
    "mcp_00000000000000b2_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const DOOMED: &str =
    "mcp_00000000000000c3_cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc";
const UNKNOWN: &str =
    "mcp_00000000000000d4_dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd";

/// Writes the verifier file as `publish` does: a new file renamed over the old one.
fn publish(path: &Path, revision: u64, doomed_revoked: bool) {
    let hasher = Verifier::new(&HASH_KEY, 0, Vec::new());
    let key = |k: &str, revoked: bool, perms: &[&str]| {
        KeyInfo::new(
            k[4..20].to_string(),
            None,
            hasher.keyed_hash(k),
            revoked,
            None,
            perms.iter().map(|p| p.to_string()).collect(),
        )
    };
    let verifier = Verifier::new(
        &HASH_KEY,
        revision,
        vec![
            key(FULL, false, &["tools:call"]),
            key(ECHO_ONLY, false, &["tools:call:echo"]),
            key(DOOMED, doomed_revoked, &["tools:call"]),
        ],
    );
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, verifier.to_json(chrono::Utc::now())).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

struct Server {
    addr: std::net::SocketAddr,
    watched: Arc<Watched>,
    _dir: tempfile::TempDir,
}

async fn start() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("verifier.json");
    publish(&path, 1, false);
    let watched = Arc::new(Watched::open(&path, |_| {}).unwrap());
    let mcp: StreamableHttpService<Tools, LocalSessionManager> = StreamableHttpService::new(
        || {
            Ok(Tools {
                tool_router: Tools::tool_router(),
            })
        },
        Default::default(),
        StreamableHttpServerConfig::default().with_sse_keep_alive(None),
    );
    let app = axum::Router::new()
        .nest_service("/mcp", mcp)
        .layer(RequireApiKey::new(Arc::clone(&watched)).tool_permissions(true));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    Server {
        addr,
        watched,
        _dir: dir,
    }
}

async fn client(
    addr: std::net::SocketAddr,
    key: Option<&str>,
) -> Result<RunningService<RoleClient, ClientConfig>, String> {
    let mut config = StreamableHttpClientTransportConfig::with_uri(format!("http://{addr}/mcp"));
    if let Some(k) = key {
        config = config.auth_header(k);
    }
    let transport = StreamableHttpClientTransport::from_config(config);
    timeout(
        Duration::from_secs(10),
        ClientConfig::default().serve(transport),
    )
    .await
    .map_err(|_| "timed out".to_string())?
    .map_err(|e| e.to_string())
}

async fn call(
    c: &RunningService<RoleClient, ClientConfig>,
    tool: &'static str,
    args: Value,
) -> Result<String, String> {
    let params = CallToolRequestParams::new(tool).with_arguments(args.as_object().unwrap().clone());
    let result = timeout(Duration::from_secs(10), c.call_tool(params))
        .await
        .map_err(|_| "timed out".to_string())?
        .map_err(|e| e.to_string())?;
    let v = serde_json::to_value(&result).unwrap();
    Ok(v["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_string())
}

/// One raw HTTP/1.1 request: (status, headers in lower case, body).
async fn raw(
    addr: std::net::SocketAddr,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String, Value) {
    let mut req = format!(
        "POST /mcp HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n\
         Content-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    let out = timeout(Duration::from_secs(10), async {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(req.as_bytes()).await.unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.unwrap();
        out
    })
    .await
    .expect("raw request timed out");
    let text = String::from_utf8(out).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head[9..12].parse().unwrap();
    (
        status,
        head.to_ascii_lowercase(),
        serde_json::from_str(body).unwrap_or(Value::Null),
    )
}

const INIT: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"0"}}}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_key_calls_tools_and_others_are_refused_as_serve_refuses_them() {
    let server = start().await;
    let addr = server.addr;

    let c = client(addr, Some(FULL))
        .await
        .expect("a valid key connects");
    assert_eq!(call(&c, "echo", json!({"text": "hi"})).await.unwrap(), "hi");
    assert_eq!(call(&c, "add", json!({"a": 2, "b": 3})).await.unwrap(), "5");

    // rmcp reports the 401 challenge (`error="invalid_token"`) as "Auth required".
    for key in [None, Some(UNKNOWN)] {
        let Err(err) = client(addr, key).await else {
            panic!("{key:?} was accepted");
        };
        assert!(err.contains("Auth required"), "{key:?}: {err}");
    }

    let (status, head, body) = raw(addr, &[], INIT).await;
    assert_eq!(status, 401);
    assert_eq!(
        body,
        json!({"jsonrpc":"2.0","id":null,"error":{"code":-32001,
               "message":"no API key presented (send X-API-Key or Authorization: Bearer)",
               "data":{"code":"MALFORMED"}}})
    );
    assert!(head.contains("content-type: application/json"));
    assert!(head.contains("cache-control: no-store"));
    assert!(head.contains(
        "www-authenticate: bearer error=\"invalid_token\", error_description=\"no api key presented"
    ));

    let bearer = format!("Bearer {UNKNOWN}");
    let (status, head, body) = raw(addr, &[("Authorization", &bearer)], INIT).await;
    assert_eq!(status, 401);
    assert_eq!(
        body,
        json!({"jsonrpc":"2.0","id":null,"error":{"code":-32001,
               "message":"unknown API key","data":{"code":"NOT_FOUND"}}})
    );
    assert!(
        !head.contains(&UNKNOWN.to_ascii_lowercase()),
        "the key is never echoed"
    );

    // Fail closed: a POST that shows no method.
    let (status, _, body) = raw(addr, &[("X-API-Key", FULL)], "").await;
    assert_eq!(status, 403);
    assert_eq!(body["error"]["data"]["code"], "METHOD_UNSEEN");
    drop(server.watched);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_key_is_refused_within_two_seconds_without_a_restart() {
    let server = start().await;
    let c = client(server.addr, Some(DOOMED)).await.expect("connects");
    assert_eq!(call(&c, "echo", json!({"text": "x"})).await.unwrap(), "x");

    publish(server.watched.path(), 2, true);
    let refused = timeout(Duration::from_secs(2), async {
        loop {
            if call(&c, "echo", json!({"text": "x"})).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(refused.is_ok(), "still accepted 2 s after the revocation");
    assert_eq!(server.watched.revision(), 2);
    let bearer = format!("Bearer {DOOMED}");
    let (status, _, body) = raw(server.addr, &[("Authorization", &bearer)], INIT).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["data"]["code"], "REVOKED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_for_one_tool_calls_that_tool_only() {
    let server = start().await;
    let addr = server.addr;
    let c = client(addr, Some(ECHO_ONLY)).await.expect("connects");
    assert_eq!(call(&c, "echo", json!({"text": "ok"})).await.unwrap(), "ok");
    let err = call(&c, "add", json!({"a": 1, "b": 1})).await.unwrap_err();
    // rmcp reports the 403 challenge (`error="insufficient_scope"`) as such.
    assert!(err.contains("Insufficient scope"), "{err}");

    let add = r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"add","arguments":{"a":1,"b":1}}}"#;
    let (status, head, body) = raw(addr, &[("X-API-Key", ECHO_ONLY)], add).await;
    assert_eq!(status, 403);
    assert_eq!(body["error"]["code"], -32003);
    assert_eq!(body["error"]["data"]["code"], "INSUFFICIENT_PERMISSIONS");
    assert!(head.contains(
        "www-authenticate: bearer error=\"insufficient_scope\", scope=\"tools:call:add\""
    ));

    // The headers name echo, the body calls add: refused before the key's rights matter.
    let (status, _, body) = raw(
        addr,
        &[
            ("X-API-Key", ECHO_ONLY),
            ("Mcp-Method", "tools/call"),
            ("Mcp-Name", "echo"),
        ],
        add,
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], -32020);
    assert_eq!(body["error"]["data"]["code"], "HEADER_MISMATCH");
}
