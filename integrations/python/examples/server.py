import os

import uvicorn
from mcp.server.mcpserver import MCPServer
from mcp_key_verifier import APIKeyMiddleware, Verifier

mcp = MCPServer("demo")


@mcp.tool()
def add(a: int, b: int) -> int:
    """Adds two numbers."""
    return a + b


verifier = Verifier.from_file(os.environ.get("MCP_VERIFIER", "verifier.json"))
# Any valid key may call every tool. For per-tool permissions pass tool_permissions=True
# and give keys `tools:call` or `tools:call:add` (`mcp-key-manager grant ID tools:call:add`).
app = APIKeyMiddleware(mcp.streamable_http_app(), verifier)

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(os.environ.get("PORT", "8000")))
