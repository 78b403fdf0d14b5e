//! An rmcp server on axum whose requests need a key from `verifier.json` (followed as
//! `mcp-key-manager publish` replaces it). Call http://127.0.0.1:8000/mcp with
//! `Authorization: Bearer <key>`; `echo` needs `tools:call` or `tools:call:echo`.

use std::sync::Arc;

use mcp_key_verifier::{tower::RequireApiKey, Watched};
use rmcp::handler::server::{router::tool::ToolRouter, wrapper::Parameters};
use rmcp::model::{ServerCapabilities, ServerConfig};
use rmcp::transport::streamable_http_server::{
    session::local::LocalSessionManager, StreamableHttpService,
};
use rmcp::{tool, tool_handler, tool_router, ServerHandler};

#[derive(serde::Deserialize, schemars::JsonSchema)]
struct Echo {
    text: String,
}

#[derive(Clone)]
struct Server {
    tool_router: ToolRouter<Self>,
}

#[tool_router]
impl Server {
    #[tool(description = "Echo the text")]
    fn echo(&self, Parameters(Echo { text }): Parameters<Echo>) -> String {
        text
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Server {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let watched = Arc::new(Watched::open("verifier.json", |e| eprintln!("{e}"))?);
    let mcp = StreamableHttpService::new(
        || {
            Ok(Server {
                tool_router: Server::tool_router(),
            })
        },
        Arc::new(LocalSessionManager::default()),
        Default::default(),
    );
    let app = axum::Router::new()
        .nest_service("/mcp", mcp)
        .layer(RequireApiKey::new(watched).tool_permissions(true));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:8000").await?;
    axum::serve(listener, app).await?;
    Ok(())
}
