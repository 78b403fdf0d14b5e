-- GET /auth as nginx's auth_request sends a 2026-07-28 client's tools/call: headers only,
-- the method and the tool in Mcp-Method / Mcp-Name (SEP-2243); the key from $BENCH_KEY.
wrk.headers["X-API-Key"] = os.getenv("BENCH_KEY")
wrk.headers["MCP-Protocol-Version"] = "2026-07-28"
wrk.headers["Mcp-Method"] = "tools/call"
wrk.headers["Mcp-Name"] = "echo"
