"""McpTokenVerifier wired into the SDK's own bearer auth (MCPServer(token_verifier=, auth=))."""

import asyncio
import datetime

import pytest

from mcp_key_verifier import McpTokenVerifier, Verifier
from mcp_key_verifier.sdk import TOKEN_PREFIX

from conftest import VerifierWriter, make_key
from sdkutil import mcp_client, need, serve, unwrap


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    need("mcp")
    from mcp.server.auth.middleware.auth_context import get_access_token
    from mcp.server.auth.settings import AuthSettings
    from mcp.server.mcpserver import MCPServer

    keys = {label: make_key() for label in ("good", "readonly", "revoked")}
    writer = VerifierWriter(tmp_path_factory.mktemp("tv") / "verifier.json")
    writer.write([
        writer.entry(*keys["good"], permissions=["mcp", "tools:call"],
                     expires_at="2999-01-01T00:00:00Z"),
        writer.entry(*keys["readonly"], permissions=["info"]),
        writer.entry(*keys["revoked"], status="revoked", permissions=["mcp"]),
    ], revision=1)
    verifier = Verifier.from_file(writer.path)

    mcp = MCPServer(
        "sdk-auth",
        token_verifier=McpTokenVerifier(verifier),
        auth=AuthSettings(issuer_url="http://127.0.0.1:9/", resource_server_url=None,
                          required_scopes=["mcp"]),
    )
    seen = {}

    @mcp.tool()
    def whoami() -> str:
        """Reports what the SDK knows about the caller."""
        token = get_access_token()
        seen["token"] = token
        return "%s %s %s" % (token.client_id, ",".join(token.scopes), token.expires_at)

    with serve(mcp.streamable_http_app()) as base:
        yield {"url": base + "/mcp", "keys": keys, "seen": seen, "path": writer.path}


def test_valid_key_through_the_sdk_auth(world):
    key_id, key = world["keys"]["good"]

    async def go():
        statuses = []
        async with mcp_client(world["url"], {"Authorization": "Bearer " + key}, statuses) as s:
            await s.initialize()
            result = await s.call_tool("whoami", {})
            return result.content[0].text

    expires = int(datetime.datetime(2999, 1, 1, tzinfo=datetime.timezone.utc).timestamp())
    assert run(go()) == "%s mcp,tools:call %d" % (key_id, expires)
    token = world["seen"]["token"]
    assert token.token == TOKEN_PREFIX + key_id
    assert key not in repr(token)


@pytest.mark.parametrize("label,status", [("wrong", 401), ("revoked", 401), ("readonly", 403),
                                          ("none", 401)])
def test_refused_through_the_sdk_auth(world, label, status):
    from mcp.shared.exceptions import MCPError

    if label == "wrong":
        key = world["keys"]["good"][1][:-4] + "abcd"
        headers = {"Authorization": "Bearer " + key}
    elif label == "none":
        headers = {}
    else:
        headers = {"Authorization": "Bearer " + world["keys"][label][1]}

    async def go():
        statuses = []
        try:
            async with mcp_client(world["url"], headers, statuses) as s:
                await s.initialize()
        except BaseException as exc:
            if unwrap(exc, MCPError) is None:
                raise
            return statuses
        raise AssertionError("accepted")

    assert run(go())[0] == status


def test_verify_token_directly(world):
    v = McpTokenVerifier(Verifier.from_file(world["path"]), require=["tools:call"])
    good_id, good = world["keys"]["good"]
    token = run(v.verify_token(good))
    assert token.client_id == good_id and token.scopes == ["mcp", "tools:call"]
    assert run(v.verify_token(world["keys"]["readonly"][1])) is None  # lacks tools:call
    assert run(v.verify_token("mcp_short")) is None



def test_the_token_verifier_leaves_rate_limits_to_the_middleware(tmp_path):
    """A token verifier cannot answer 429: a limited key keeps verifying (it is not an invalid
    token); APIKeyMiddleware is what enforces its rate_limit."""
    need("mcp")
    key_id, key = make_key()
    writer = VerifierWriter(tmp_path / "verifier.json")
    writer.write([writer.entry(key_id, key, rate_limit=(1, 3600))], revision=1)
    tv = McpTokenVerifier(Verifier.from_file(writer.path))
    for _ in range(3):
        assert run(tv.verify_token(key)).client_id == key_id
