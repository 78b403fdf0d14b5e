"""APIKeyMiddleware in front of a real MCP SDK server, driven by the SDK's real client."""

import asyncio
import time

import pytest

from mcp_key_verifier import APIKeyMiddleware, Verifier

from conftest import VerifierWriter, make_key
from sdkutil import mcp_client, need, serve, unwrap

TIMEOUT = 60
# The limited key's quota per hour: enough to connect and call a tool, spent soon after.
LIMIT = 6


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, TIMEOUT))


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    need("mcp")
    from mcp.server.mcpserver import Context, MCPServer

    mcp = MCPServer("protected")

    @mcp.tool()
    def add(a: int, b: int) -> int:
        """Adds two numbers."""
        return a + b

    @mcp.tool()
    def whoami(ctx: Context) -> str:
        """The id of the key that called (from the middleware's verdict)."""
        return ctx.request_context.request.state.mcp_key.key_id

    keys = {label: make_key() for label in ("full", "narrow", "none", "victim", "limited")}
    writer = VerifierWriter(tmp_path_factory.mktemp("mw") / "verifier.json")
    entries = lambda victim_status: [  # noqa: E731
        writer.entry(*keys["full"], permissions=["tools:call"], name="full"),
        writer.entry(*keys["narrow"], permissions=["tools:call:add"]),
        writer.entry(*keys["none"], permissions=[]),
        writer.entry(*keys["victim"], status=victim_status, permissions=["tools:call"]),
        writer.entry(*keys["limited"], permissions=["tools:call"], rate_limit=(LIMIT, 3600)),
    ]
    writer.write(entries("active"), revision=1)
    verifier = Verifier.from_file(writer.path)
    app = APIKeyMiddleware(mcp.streamable_http_app(), verifier, tool_permissions=True)
    with serve(app) as base:
        yield {"url": base + "/mcp", "keys": keys, "writer": writer, "entries": entries,
               "verifier": verifier}


def bearer(key):
    return {"Authorization": "Bearer " + key}


def text(result):
    return result.content[0].text


def test_valid_key_calls_the_tool_and_the_tool_sees_the_key_id(world):
    key_id, key = world["keys"]["full"]

    async def go():
        statuses = []
        async with mcp_client(world["url"], {"X-API-Key": key}, statuses) as s:
            await s.initialize()
            tools = {t.name for t in (await s.list_tools()).tools}
            assert tools == {"add", "whoami"}
            assert text(await s.call_tool("add", {"a": 2, "b": 3})) == "5"
            assert text(await s.call_tool("whoami", {})) == key_id
        assert statuses and all(200 <= c < 300 for c in statuses)

    run(go())


def refused(url, headers):
    """(MCPError from initialize, HTTP statuses seen)."""
    from mcp.shared.exceptions import MCPError

    async def go():
        statuses = []
        try:
            async with mcp_client(url, headers, statuses) as s:
                await s.initialize()
        except BaseException as exc:  # anyio wraps it in exception groups
            err = unwrap(exc, MCPError)
            if err is None:
                raise
            return err, statuses
        raise AssertionError("the server accepted the connection")

    return run(go())


def test_missing_key_is_401(world):
    err, statuses = refused(world["url"], {})
    assert statuses[0] == 401
    assert err.code == -32001 and err.data == {"code": "MALFORMED"}
    assert "no API key" in err.message


def test_wrong_key_is_401(world):
    key_id, key = world["keys"]["full"]
    wrong = key[:-8] + ("0" * 8 if not key.endswith("0" * 8) else "1" * 8)
    err, statuses = refused(world["url"], bearer(wrong))
    assert statuses[0] == 401
    assert err.code == -32001 and err.data == {"code": "NOT_FOUND"}
    assert wrong not in err.message and key not in err.message


def test_other_scheme_is_401(world):
    err, statuses = refused(world["url"], {"Authorization": "Basic " + world["keys"]["full"][1]})
    assert statuses[0] == 401 and err.data == {"code": "MALFORMED"}
    assert "no API key" in err.message


def test_insufficient_permission_is_403(world):
    from mcp.shared.exceptions import MCPError

    async def go():
        statuses = []
        async with mcp_client(world["url"], bearer(world["keys"]["narrow"][1]), statuses) as s:
            await s.initialize()
            await s.list_tools()  # needs nothing extra
            assert text(await s.call_tool("add", {"a": 1, "b": 1})) == "2"
            with pytest.raises(MCPError) as err:
                await s.call_tool("whoami", {})
            assert err.value.code == -32003
            assert err.value.data == {"code": "INSUFFICIENT_PERMISSIONS"}
            assert "tools:call:whoami" in err.value.message
        assert 403 in statuses

    run(go())


def test_no_permissions_can_connect_but_not_call(world):
    from mcp.shared.exceptions import MCPError

    async def go():
        statuses = []
        async with mcp_client(world["url"], bearer(world["keys"]["none"][1]), statuses) as s:
            await s.initialize()
            with pytest.raises(MCPError) as err:
                await s.call_tool("add", {"a": 1, "b": 1})
            assert err.value.code == -32003
        assert statuses[-1] == 403 or 403 in statuses

    run(go())


def test_revoked_after_republish_is_refused_within_2s_without_restart(world):
    """The vault revokes the key and republishes: the connected client is refused, nothing
    restarts."""
    from mcp.shared.exceptions import MCPError

    key_id, key = world["keys"]["victim"]

    async def go():
        statuses = []
        async with mcp_client(world["url"], bearer(key), statuses) as s:
            await s.initialize()
            assert text(await s.call_tool("add", {"a": 20, "b": 22})) == "42"
            world["writer"].write(world["entries"]("revoked"), revision=2)
            start = time.monotonic()
            while True:
                try:
                    await s.call_tool("add", {"a": 1, "b": 2})
                except MCPError as exc:
                    elapsed = time.monotonic() - start
                    assert exc.code == -32001 and exc.data == {"code": "REVOKED"}
                    break
                assert time.monotonic() - start < 2.0, "still accepted 2 s after the rewrite"
                await asyncio.sleep(0.05)
            assert elapsed < 2.0
            assert statuses[-1] == 401
        assert world["verifier"].revision == 2

    run(go())
    # The others are untouched by the republish.
    async def others():
        async with mcp_client(world["url"], bearer(world["keys"]["full"][1]), []) as s:
            await s.initialize()
            assert text(await s.call_tool("add", {"a": 1, "b": 2})) == "3"

    run(others())


def test_a_key_over_its_rate_limit_gets_the_429_error_in_the_sdk_client(world):
    """Every HTTP request of the session counts (initialize, the initialized notification,
    the calls); once the quota is spent the SDK client raises the 429's JSON-RPC error, and
    another key is still served."""
    from mcp.shared.exceptions import MCPError

    async def go():
        statuses = []
        async with mcp_client(world["url"], bearer(world["keys"]["limited"][1]), statuses) as s:
            await s.initialize()
            assert text(await s.call_tool("add", {"a": 1, "b": 2})) == "3"
            for _ in range(LIMIT):
                try:
                    await s.call_tool("add", {"a": 1, "b": 2})
                except MCPError as exc:
                    return exc, statuses
        raise AssertionError("never limited: %r" % statuses)

    err, statuses = run(go())
    assert err.code == -32029
    assert err.data["code"] == "RATE_LIMITED" and err.data["retry_after"] >= 1
    assert err.message == ("rate limit exceeded for this API key (%d/hour); retry after %d s"
                           % (LIMIT, err.data["retry_after"]))
    # Exactly the quota was served, then 429 (and 429 for the session's DELETE at close).
    assert all(200 <= c < 300 for c in statuses[:LIMIT]), statuses
    assert set(statuses[LIMIT:]) == {429}, statuses

    async def other():
        async with mcp_client(world["url"], bearer(world["keys"]["full"][1]), []) as s:
            await s.initialize()
            assert text(await s.call_tool("add", {"a": 1, "b": 2})) == "3"

    run(other())


def test_the_sdk_client_on_2026_07_28_and_a_body_that_disagrees_with_its_headers(world):
    """The SDK's `Client` on protocol 2026-07-28 sends `Mcp-Method`/`Mcp-Name` (SEP-2243): the
    narrow key calls its tool and is refused the other. A raw request whose headers name the
    permitted tool while its body calls the other (what an edge that authorized on the headers
    would let through) is refused 400 `-32020` by the middleware; the same request with honest
    headers reaches the SDK server."""
    need("mcp")
    httpx2 = need("httpx2")
    import mcp.client.streamable_http as sh
    from mcp.client.client import Client
    from mcp.shared.exceptions import MCPError

    key = world["keys"]["narrow"][1]
    sent = []

    async def record(request):
        sent.append(dict(request.headers))

    async def sdk():
        http = httpx2.AsyncClient(headers=bearer(key), timeout=httpx2.Timeout(20, read=60),
                                  event_hooks={"request": [record]})
        async with http:
            async with Client(sh.streamable_http_client(world["url"], http_client=http),
                              mode="2026-07-28") as c:
                assert text(await c.call_tool("add", {"a": 2, "b": 3})) == "5"
                with pytest.raises(MCPError) as err:
                    await c.call_tool("whoami", {})
                assert err.value.code == -32003
                assert "tools:call:whoami" in err.value.message

    run(sdk())
    calls = [h for h in sent if h.get("mcp-method") == "tools/call"]
    assert [h.get("mcp-name") for h in calls] == ["add", "whoami"], sent
    assert all(h.get("mcp-protocol-version") == "2026-07-28" for h in sent)

    def body(tool):
        meta = {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientCapabilities": {}}
        return {"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                "params": {"name": tool, "arguments": {"a": 4, "b": 5}, "_meta": meta}}

    async def raw(headers, message):
        async with httpx2.AsyncClient(timeout=20) as http:
            return await http.post(world["url"], json=message, headers=dict(
                bearer(key), **{"Accept": "application/json, text/event-stream",
                                "MCP-Protocol-Version": "2026-07-28"}, **headers))

    forged = run(raw({"Mcp-Method": "tools/call", "Mcp-Name": "add"}, body("whoami")))
    assert forged.status_code == 400
    assert forged.json()["error"] == {
        "code": -32020, "message": "the Mcp-Method/Mcp-Name headers do not match the request body",
        "data": {"code": "HEADER_MISMATCH"}}
    missing = run(raw({}, body("add")))
    assert (missing.status_code, missing.json()["error"]["data"]) == (400, {"code": "BAD_ROUTING"})
    honest = run(raw({"Mcp-Method": "tools/call", "Mcp-Name": "=?base64?YWRk?="}, body("add")))
    assert honest.status_code == 200, honest.text
    assert honest.json()["result"]["content"][0]["text"] == "9"
