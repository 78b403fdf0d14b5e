"""What an upstream MCP server behind nginx + `serve` was told, for the tests to check.

`record_key_id(app, seen_file)` wraps an ASGI app: each HTTP request's `X-MCP-Key-Id` header
(set by nginx from `serve`'s answer) is appended to SEEN_FILE, so a test can check that the
upstream learns which key was used; every `X-MCP-*` header of each request goes to
SEEN_FILE.headers (`name=value` lines, `--` after each request), so a test can check what
identity the upstream was told. Used by server.py here and tests/conformance/server.py.
"""


def record_key_id(inner, seen_file):
    async def wrapped(scope, receive, send):
        if scope.get("type") == "http":
            lines = []
            for name, value in scope.get("headers") or ():
                if name.lower() == b"x-mcp-key-id":
                    with open(seen_file, "a", encoding="ascii") as f:
                        f.write(value.decode("ascii", "replace") + "\n")
                if name.lower().startswith(b"x-mcp-"):
                    lines.append("%s=%s\n" % (name.decode("ascii", "replace").lower(),
                                               value.decode("ascii", "replace")))
            with open(seen_file + ".headers", "a", encoding="ascii") as f:
                f.write("".join(lines) + "--\n")
        await inner(scope, receive, send)

    return wrapped
