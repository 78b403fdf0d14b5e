"""APIKeyMiddleware at the ASGI level: answers, headers, body limits and replay, scope kinds."""

import asyncio
import json

import pytest

from mcp_key_verifier import APIKeyMiddleware, Verifier, needed_permissions

from conftest import make_key


class Recorder:
    """An ASGI app that records what reached it."""

    def __init__(self):
        self.calls = []

    async def __call__(self, scope, receive, send):
        body = b""
        if scope["type"] == "http":
            while True:
                m = await receive()
                body += m.get("body", b"")
                if not m.get("more_body"):
                    break
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})
        self.calls.append((scope, body))


@pytest.fixture
def setup(writer):
    keys = {p: make_key() for p in ("all", "add", "none")}
    writer.write([writer.entry(*keys["all"], permissions=["tools:call", "resources:read",
                                                          "prompts:get", "info"]),
                  writer.entry(*keys["add"], permissions=["tools:call:add", "info"]),
                  writer.entry(*keys["none"])], revision=1)
    return Verifier.from_file(writer.path), keys


def call(app, headers=(), body=b"", chunks=None, kind="http", state=None):
    """Runs one request through `app`; returns (status, headers dict, body)."""
    sent = []
    incoming = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
                for i, c in enumerate(chunks)] if chunks else \
        [{"type": "http.request", "body": body, "more_body": False}]
    if kind == "websocket":
        incoming = [{"type": "websocket.connect"}]

    async def receive():
        if incoming:
            return incoming.pop(0)
        await asyncio.sleep(3600)

    async def send(message):
        sent.append(message)

    scope = {"type": kind, "method": "POST", "path": "/mcp",
             "headers": [(k.lower().encode(), v.encode()) for k, v in headers]}
    if state is not None:
        scope["state"] = state
    asyncio.run(asyncio.wait_for(app(scope, receive, send), 10))
    if kind == "websocket":
        return sent
    start = next(m for m in sent if m["type"] == "http.response.start")
    out = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], {k.decode(): v.decode() for k, v in start["headers"]}, out


def rpc(method, **params):
    return json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()


def test_401_shape(setup):
    v, keys = setup
    app = APIKeyMiddleware(Recorder(), v)
    status, headers, body = call(app, [("Authorization", "Bearer " + keys["all"][1][:-1] + "x")])
    assert status == 401
    assert headers["www-authenticate"].startswith('Bearer error="invalid_token", error_description="')
    doc = json.loads(body)
    assert doc == {"jsonrpc": "2.0", "id": None,
                   "error": {"code": -32001, "message": "the API key is malformed",
                             "data": {"code": "MALFORMED"}}}
    assert headers["content-type"] == "application/json"
    assert int(headers["content-length"]) == len(body)
    assert app.app.calls == []


def test_403_names_the_missing_required_permissions(setup):
    v, keys = setup
    app = APIKeyMiddleware(Recorder(), v, require=["info", "admin", "audit"])
    status, headers, body = call(app, [("X-API-Key", keys["all"][1])])
    assert status == 403
    assert headers["www-authenticate"] == 'Bearer error="insufficient_scope", scope="admin audit"'
    doc = json.loads(body)
    assert doc["error"]["code"] == -32003
    assert doc["error"]["data"] == {"code": "INSUFFICIENT_PERMISSIONS"}
    assert app.app.calls == []


def test_admitted_request_gets_the_verdict_in_a_fresh_state(setup):
    v, keys = setup
    rec = Recorder()
    shared = {"lifespan_thing": 1}
    status, _, _ = call(APIKeyMiddleware(rec, v), [("X-API-Key", keys["all"][1])], state=shared)
    assert status == 200
    scope, _ = rec.calls[0]
    verdict = scope["state"]["mcp_key"]
    assert verdict.valid and verdict.key_id == keys["all"][0]
    assert scope["state"]["lifespan_thing"] == 1
    assert "mcp_key" not in shared  # the server's dict is not written into
    assert keys["all"][1] not in repr(verdict)


@pytest.mark.parametrize("label,body,status", [
    ("all", rpc("tools/call", name="anything"), 200),
    ("add", rpc("tools/call", name="add"), 200),
    ("add", rpc("tools/call", name="delete"), 403),
    ("none", rpc("tools/call", name="add"), 403),
    ("none", rpc("tools/list"), 200),
    ("none", rpc("initialize"), 200),
    ("all", rpc("resources/read", uri="file:///x"), 200),
    ("add", rpc("resources/read", uri="file:///x"), 403),
    ("all", rpc("prompts/get", name="p"), 200),
    ("add", rpc("prompts/get", name="p"), 403),
    ("add", b"[" + rpc("tools/call", name="add") + b"," + rpc("tools/call", name="rm") + b"]", 403),
    ("add", b"[" + rpc("tools/call", name="add") + b"," + rpc("tools/list") + b"]", 200),
    ("add", b"", 200),
    ("add", b"{not json", 400),
])
def test_tool_permissions(setup, label, body, status):
    v, keys = setup
    rec = Recorder()
    got, headers, answer = call(APIKeyMiddleware(rec, v, tool_permissions=True),
                                [("X-API-Key", keys[label][1])], body=body)
    assert got == status
    if status == 200:
        assert rec.calls[0][1] == body  # replayed byte for byte
    else:
        assert rec.calls == []
    if status == 403:
        assert headers["www-authenticate"].startswith('Bearer error="insufficient_scope", scope="')
        assert json.loads(answer)["error"]["code"] == -32003


def test_403_scope_names_the_narrowest_permission(setup):
    v, keys = setup
    _, headers, _ = call(APIKeyMiddleware(Recorder(), v, tool_permissions=True),
                         [("X-API-Key", keys["add"][1])], body=rpc("tools/call", name="rm"))
    assert headers["www-authenticate"] == 'Bearer error="insufficient_scope", scope="tools:call:rm"'


def test_body_is_reassembled_from_chunks_and_bounded(setup):
    v, keys = setup
    rec = Recorder()
    app = APIKeyMiddleware(rec, v, tool_permissions=True)
    body = rpc("tools/call", name="add")
    chunks = [body[i:i + 7] for i in range(0, len(body), 7)]
    assert call(app, [("X-API-Key", keys["add"][1])], chunks=chunks)[0] == 200
    assert rec.calls[0][1] == body
    big = b" " * (1024 * 1024) + body
    status, _, answer = call(app, [("X-API-Key", keys["add"][1])],
                             chunks=[big[i:i + 65536] for i in range(0, len(big), 65536)])
    assert status == 413 and json.loads(answer)["error"]["data"]["code"] == "BODY_TOO_LARGE"
    status, _, _ = call(app, [("X-API-Key", keys["add"][1]), ("Content-Length", "2000000")],
                        body=b"{}")
    assert status == 413
    assert len(rec.calls) == 1


def test_websocket_is_verified_and_refused_with_1008(setup):
    v, keys = setup
    rec = Recorder()
    app = APIKeyMiddleware(rec, v)
    sent = call(app, [], kind="websocket")
    assert sent == [{"type": "websocket.close", "code": 1008}]
    assert rec.calls == []
    call(app, [("X-API-Key", keys["none"][1])], kind="websocket")
    assert rec.calls[0][0]["state"]["mcp_key"].key_id == keys["none"][0]


def test_lifespan_passes_through(setup):
    v, _ = setup
    seen = []

    async def app(scope, receive, send):
        seen.append(scope["type"])

    asyncio.run(APIKeyMiddleware(app, v)({"type": "lifespan"}, None, None))
    assert seen == ["lifespan"]


def test_needed_permissions():
    assert needed_permissions({"method": "tools/call", "params": {"name": "x"}}) == \
        [("tools:call", "tools:call:x")]
    assert needed_permissions({"method": "tools/call"}) == [("tools:call",)]
    assert needed_permissions([{"method": "ping"}, 3, None]) == []


def test_a_body_deeper_than_the_stack_is_400_not_500(setup):
    """Review of this turn: a valid key and "[" * 100000 made the middleware raise."""
    verifier, keys = setup
    app = APIKeyMiddleware(Recorder(), verifier, tool_permissions=True)
    status, _, body = call(app, [("X-API-Key", keys["all"][1])], b"[" * 100000)
    assert status == 400
    assert json.loads(body)["error"]["data"]["code"] == "PARSE_ERROR"


def test_refusal_logs_escape_the_path_and_skip_unknown_keys(setup, caplog):
    """Review of this turn: a newline in the path forged a log line, and every unknown key
    was logged."""
    import logging
    verifier, keys = setup
    app = APIKeyMiddleware(Recorder(), verifier, require=("admin",))
    caplog.set_level(logging.INFO, logger="mcp_key_verifier")

    async def run(path, key):
        sent = []

        async def receive():
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(m):
            sent.append(m)

        scope = {"type": "http", "method": "POST", "path": path,
                 "headers": [(b"x-api-key", key.encode())]}
        await app(scope, receive, send)
        return sent

    asyncio.run(run("/mcp\nINFO forged line", "mcp_" + "0" * 16 + "_" + "1" * 64))
    assert caplog.records == []  # an unknown key is not logged
    asyncio.run(run("/mcp\nINFO forged line", keys["all"][1]))  # 403: lacks admin
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "\n" not in lines[0] and "\\x0a" in lines[0], lines


def test_a_repeated_key_header_is_refused_as_no_key(setup):
    """Every value of each header reaches key_from_headers: two X-API-Key (or two
    Authorization) headers are ambiguous and give no key, whichever comes first."""
    v, keys = setup
    app = APIKeyMiddleware(Recorder(), v)
    good, other = keys["all"][1], keys["none"][1]
    for headers in ([("X-API-Key", good), ("X-API-Key", other)],
                    [("X-API-Key", good), ("x-api-key", good)],
                    [("Authorization", "Bearer " + good), ("Authorization", "Bearer " + other)]):
        status, _, body = call(app, headers)
        assert status == 401, headers
        assert json.loads(body)["error"]["data"]["code"] == "MALFORMED"
    assert call(app, [("X-API-Key", good)])[0] == 200
    assert len(app.app.calls) == 1


def test_required_permissions_follow_the_name_form(setup):
    """`require` uses the one permission rule: `tools:call` grants `tools:call:mul`, and a 403
    names only what is really missing."""
    v, keys = setup
    ok = APIKeyMiddleware(Recorder(), v, require=["tools:call:mul"])
    assert call(ok, [("X-API-Key", keys["all"][1])])[0] == 200
    assert call(ok, [("X-API-Key", keys["add"][1])])[0] == 403
    strict = APIKeyMiddleware(Recorder(), v, require=["tools:call:mul", "admin"])
    status, headers, _ = call(strict, [("X-API-Key", keys["all"][1])])
    assert status == 403
    assert headers["www-authenticate"] == 'Bearer error="insufficient_scope", scope="admin"'
