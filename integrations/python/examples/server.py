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
app = APIKeyMiddleware(mcp.streamable_http_app(), verifier, tool_permissions=True)

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(os.environ.get("PORT", "8000")))
