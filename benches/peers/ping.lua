-- POST of a JSON-RPC `ping` to /mcp with the key from $BENCH_KEY (never in wrk's argv) as a
-- Bearer token, which all three guards accept.
wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_KEY")
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"
wrk.body = '{"jsonrpc":"2.0","id":1,"method":"ping"}'
