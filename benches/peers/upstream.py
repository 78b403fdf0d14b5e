"""The upstream MCP servers of the peer benchmarks.

Usage: upstream.py stdio                         FastMCP (one tool, `echo`) on stdio: what
                                                 mcp-guard's free tier can front (its HTTP
                                                 upstream needs a Pro licence)
       upstream.py stdio-min                     a minimal JSON-RPC responder on stdio (no
                                                 FastMCP): answers every request with
                                                 {"result": {}} and its id, so mcp-guard's own
                                                 cost shows
       upstream.py http PORT bare                FastMCP, streamable HTTP
       upstream.py http PORT ours VERIFIER FPR   wrapped in mcp_key_verifier's APIKeyMiddleware,
                                                 following VERIFIER (a published verifier file,
                                                 signed by the vault of fingerprint FPR)
       upstream.py http PORT guard DB            with fastmcp-guard's Guard, keys in SQLite DB

HTTP is stateless with JSON answers, so one POST of a JSON-RPC `ping` is a complete exchange.
"""

import sys

mode = sys.argv[1]

if mode == "stdio-min":
    import json

    out = sys.stdout
    for line in sys.stdin:
        try:
            msg = json.loads(line)
        except ValueError:
            continue
        if "id" in msg and "method" in msg:
            out.write('{"jsonrpc":"2.0","id":%s,"result":{}}\n' % json.dumps(msg["id"]))
            out.flush()
    sys.exit(0)

from fastmcp import FastMCP  # noqa: E402

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

    app = APIKeyMiddleware(app, Verifier.from_file(sys.argv[4], trust=sys.argv[5]))

import uvicorn  # noqa: E402

uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False,
            lifespan="on")
