"""A real MCP server from the official Python SDK: two tools (`echo`, `add`), streamable HTTP,
served by uvicorn on 127.0.0.1. It has no key check of its own: nginx + `serve` guard it.

Usage: server.py PORT SEEN_FILE
Each request's `X-MCP-Key-Id` header (set by nginx from `serve`'s answer) is appended to
SEEN_FILE, so the test can check that the upstream learns which key was used; every
`X-MCP-*` header of each request goes to SEEN_FILE.headers (`name=value` lines, `--` after
each request), so a test can check what identity the upstream was told (seen.py); the name of each
tool that runs goes to SEEN_FILE.calls (one a line), so a test can check which tools ran.
Works with the SDK's v1 (`FastMCP`) and v2 (`MCPServer`) APIs.
"""

import sys

import uvicorn

from seen import record_key_id  # beside this file

try:  # mcp >= 2
    from mcp.server.mcpserver import MCPServer as Server
except ImportError:  # mcp 1.x
    from mcp.server.fastmcp import FastMCP as Server

port = int(sys.argv[1])
seen_file = sys.argv[2]

server = Server("echo-server")


def ran(tool: str) -> None:
    with open(seen_file + ".calls", "a", encoding="ascii") as f:
        f.write(tool + "\n")


@server.tool()
def echo(text: str) -> str:
    """Echo the text back."""
    ran("echo")
    return "echo: " + text


@server.tool()
def add(a: int, b: int) -> str:
    """Add two integers (a second tool, for per-tool permissions)."""
    ran("add")
    return "sum: %d" % (a + b)


app = server.streamable_http_app()


uvicorn.run(record_key_id(app, seen_file), host="127.0.0.1", port=port, log_level="warning")
