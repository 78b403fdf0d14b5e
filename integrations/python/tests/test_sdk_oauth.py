"""Access tokens end to end: the real MCP SDK client sends a JWT as its Bearer header to a real
SDK server behind APIKeyMiddleware, and behind the SDK's own auth with McpTokenVerifier."""

import asyncio

import pytest

from mcp_key_verifier import APIKeyMiddleware, McpTokenVerifier, Verifier
from mcp_key_verifier.sdk import JWT_PREFIX

from conftest import VerifierWriter, make_key
from jwtutil import RESOURCE, Keys
from sdkutil import mcp_client, need, serve, unwrap

ISSUER = "https://id.example.test/realms/mcp"


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


def text(result):
    return result.content[0].text


@pytest.fixture(scope="module")
def keys():
    return Keys()


@pytest.fixture(scope="module")
def verifier(tmp_path_factory):
    key = make_key()
    writer = VerifierWriter(tmp_path_factory.mktemp("oauth") / "verifier.json")
    writer.write([writer.entry(*key, permissions=["tools:call"])], revision=1)
    return Verifier.from_file(writer.path), key


@pytest.fixture(scope="module")
def behind_middleware(keys, verifier):
    need("mcp")
    from mcp.server.mcpserver import Context, MCPServer

    mcp = MCPServer("oauth-protected")

    @mcp.tool()
    def add(a: int, b: int) -> int:
        """Adds two numbers."""
        return a + b

    @mcp.tool()
    def whoami(ctx: Context) -> str:
        """The subject the middleware admitted."""
        return ctx.request_context.request.state.mcp_key.subject

    app = APIKeyMiddleware(mcp.streamable_http_app(), verifier[0], tool_permissions=True,
                           resource=RESOURCE, issuers=[ISSUER], jwks=keys.jwks())
    with serve(app) as base:
        yield base + "/mcp"


def test_the_sdk_client_calls_a_tool_with_a_token_and_gets_403_for_another(keys, behind_middleware):
    from mcp.shared.exceptions import MCPError

    token = keys.mint(ISSUER, "ES256", scope="tools:call:add")

    async def go():
        statuses = []
        async with mcp_client(behind_middleware, {"Authorization": "Bearer " + token},
                              statuses) as s:
            await s.initialize()
            assert {t.name for t in (await s.list_tools()).tools} == {"add", "whoami"}
            assert text(await s.call_tool("add", {"a": 2, "b": 3})) == "5"
            with pytest.raises(MCPError) as err:
                await s.call_tool("whoami", {})
            assert err.value.code == -32003
            assert err.value.data == {"code": "INSUFFICIENT_PERMISSIONS"}
            assert err.value.message == "the access token lacks the scope: tools:call:whoami"
        return statuses

    statuses = run(go())
    assert 403 in statuses and statuses[0] == 200


def test_the_tool_sees_the_tokens_subject_and_a_key_still_works(keys, behind_middleware, verifier):
    token = keys.mint(ISSUER, "EdDSA", sub="alice@example.test")
    key_id, key = verifier[1]

    async def whoami(headers):
        async with mcp_client(behind_middleware, headers, []) as s:
            await s.initialize()
            return text(await s.call_tool("whoami", {}))

    assert run(whoami({"Authorization": "Bearer " + token})) == "alice@example.test"
    assert run(whoami({"X-API-Key": key})) == key_id


def test_an_expired_token_is_refused_in_the_sdk_client(keys, behind_middleware):
    from mcp.shared.exceptions import MCPError

    headers = {"Authorization": "Bearer " + keys.mint(ISSUER, exp=1000)}

    async def go():
        statuses = []
        try:
            async with mcp_client(behind_middleware, headers, statuses) as s:
                await s.initialize()
        except BaseException as exc:
            err = unwrap(exc, MCPError)
            if err is None:
                raise
            return err, statuses
        raise AssertionError("accepted")

    err, statuses = run(go())
    assert statuses[0] == 401 and err.code == -32001 and err.data == {"code": "EXPIRED"}


@pytest.fixture(scope="module")
def behind_sdk_auth(keys, verifier):
    need("mcp")
    from mcp.server.auth.middleware.auth_context import get_access_token
    from mcp.server.auth.settings import AuthSettings
    from mcp.server.mcpserver import MCPServer

    tv = McpTokenVerifier(verifier[0], resource=RESOURCE, issuers=[ISSUER], jwks=keys.jwks())
    mcp = MCPServer("sdk-oauth", token_verifier=tv,
                    auth=AuthSettings(issuer_url=ISSUER, resource_server_url=RESOURCE,
                                      validate_token_resource=True,
                                      required_scopes=["tools:call"]))
    seen = {}

    @mcp.tool()
    def whoami() -> str:
        """What the SDK knows about the caller."""
        seen["token"] = token = get_access_token()
        return "%s %s %s" % (token.client_id, token.subject, ",".join(token.scopes))

    with serve(mcp.streamable_http_app()) as base:
        yield {"url": base + "/mcp", "seen": seen, "tv": tv}


def test_mcp_token_verifier_admits_a_token_through_the_sdks_own_auth(keys, behind_sdk_auth):
    token = keys.mint(ISSUER, "RS256", scope="tools:call info")

    async def go():
        async with mcp_client(behind_sdk_auth["url"], {"Authorization": "Bearer " + token},
                              []) as s:
            await s.initialize()
            return text(await s.call_tool("whoami", {}))

    assert run(go()) == "client-7 user-42 tools:call,info"
    seen = behind_sdk_auth["seen"]["token"]
    assert seen.resource == RESOURCE and seen.claims["iss"] == ISSUER
    assert seen.token.startswith(JWT_PREFIX) and token not in repr(seen)


def test_mcp_token_verifier_one_object_for_keys_and_tokens(keys, behind_sdk_auth, verifier):
    tv = behind_sdk_auth["tv"]
    exp = 4102444800
    access = run(tv.verify_token(keys.mint(ISSUER, "PS256", exp=exp, client_id=None,
                                           azp="azp-client")))
    assert (access.client_id, access.subject, access.expires_at) == ("azp-client", "user-42", exp)
    key_id, key = verifier[1]
    assert run(tv.verify_token(key)).client_id == key_id
    assert run(tv.verify_token(keys.mint(ISSUER, aud="https://other.example.test/"))) is None
    assert run(tv.verify_token(keys.mint(ISSUER, kid="nobody"))) is None


def test_mcp_token_verifier_refusals_answer_401_and_missing_scope_403(keys, behind_sdk_auth):
    from mcp.shared.exceptions import MCPError

    async def status_of(token):
        statuses = []
        try:
            async with mcp_client(behind_sdk_auth["url"], {"Authorization": "Bearer " + token},
                                  statuses) as s:
                await s.initialize()
        except BaseException as exc:
            if unwrap(exc, MCPError) is None and not statuses:
                raise
        return statuses[0]

    assert run(status_of(keys.mint(ISSUER, exp=1000))) == 401
    assert run(status_of(keys.mint(ISSUER, scope="info"))) == 403


def test_a_key_passes_the_sdks_resource_check_too(behind_sdk_auth, verifier):
    key_id, key = verifier[1]

    async def go():
        async with mcp_client(behind_sdk_auth["url"], {"Authorization": "Bearer " + key},
                              []) as s:
            await s.initialize()
            return text(await s.call_tool("whoami", {}))

    assert run(go()) == "%s None tools:call" % key_id
