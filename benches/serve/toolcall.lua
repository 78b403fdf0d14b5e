-- POST /auth with the benchmark key and a 300-byte JSON-RPC tools/call body.
wrk.method = "POST"
wrk.headers["X-API-Key"] = os.getenv("BENCH_KEY")
wrk.headers["Content-Type"] = "application/json"
local args = '{"text":"' .. string.rep("x", 300) .. '"}'
local body = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":' .. args .. '}}'
-- Trim the argument so that the whole body is exactly 300 bytes.
local excess = #body - 300
args = '{"text":"' .. string.rep("x", 300 - excess) .. '"}'
wrk.body = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":' .. args .. '}}'
assert(#wrk.body == 300, "body is " .. #wrk.body .. " bytes")
