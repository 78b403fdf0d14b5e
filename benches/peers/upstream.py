"""The upstream MCP server of the peer benchmarks: a FastMCP server with one tool (`echo`),
optionally guarded in-process.

Usage: upstream.py stdio                         the bare server on stdio (what mcp-guard's
                                                 free tier can front: it has no HTTP upstream)
       upstream.py http PORT bare                the bare server, streamable HTTP
       upstream.py http PORT ours VERIFIER       wrapped in mcp_key_verifier's APIKeyMiddleware,
                                                 following VERIFIER (a published verifier file)
       upstream.py http PORT guard DB            with fastmcp-guard's Guard, keys in SQLite DB

HTTP is stateless with JSON answers, so one POST of a JSON-RPC `ping` is a complete exchange.
"""

import sys

from fastmcp import FastMCP

mode = sys.argv[1]
server = FastMCP("peers-upstream")


@server.tool()
def echo(text: str) -> str:
    """Echo the text back."""
    return "echo: " + text


if mode == "stdio":
    server.run("stdio", show_banner=False)
    sys.exit(0)

port, guard = int(sys.argv[2]), sys.argv[3]
if guard == "guard":
    from fastmcp_guard import Guard, KeyStore

    Guard(server, keys=KeyStore(backend="sqlite", path=sys.argv[4]))
app = server.http_app(path="/mcp", stateless_http=True, json_response=True)
if guard == "ours":
    from mcp_key_verifier import APIKeyMiddleware, Verifier

    app = APIKeyMiddleware(app, Verifier.from_file(sys.argv[4]))

import uvicorn  # noqa: E402

uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False,
            lifespan="on")
