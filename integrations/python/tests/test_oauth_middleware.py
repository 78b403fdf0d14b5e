"""APIKeyMiddleware with access tokens beside keys, at the ASGI level: the answers of
docs/oauth.md word for word, the metadata route, the verdict handed to the app."""

import json

import pytest

from mcp_key_verifier import APIKeyMiddleware, Verifier

from conftest import asgi_request, make_key
from jwtutil import METADATA_URL, RESOURCE, Keys

ISSUER = "https://id.example.test/realms/mcp"
RM = 'resource_metadata="%s"' % METADATA_URL


class Recorder:
    """An ASGI app that records the scopes that reached it."""

    def __init__(self):
        self.scopes = []

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            while (await receive()).get("more_body"):
                pass
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})
        self.scopes.append(scope)


def call(app, headers=(), body=b"", method="POST", path="/mcp"):
    """(status, headers as a dict, body) of one HTTP request through `app`."""
    raw = [(k.lower().encode(), v.encode()) for k, v in headers]
    return asgi_request(app, raw, body, method, path)

def tools_call(name):
    return json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                       "params": {"name": name, "arguments": {}}}).encode()


@pytest.fixture(scope="module")
def keys():
    return Keys()


@pytest.fixture
def world(keys, writer):
    api = {"all": make_key(), "add": make_key(), "limited": make_key()}
    writer.write([writer.entry(*api["all"], permissions=["tools:call", "info"]),
                  writer.entry(*api["add"], permissions=["tools:call:add"]),
                  writer.entry(*api["limited"], permissions=["tools:call"],
                               rate_limit=(1, 3600))], revision=1)
    verifier = Verifier.from_file(writer.path)
    app = Recorder()

    def make(**options):
        options = dict(dict(resource=RESOURCE, issuers=[ISSUER], jwks=keys.jwks(),
                            scopes_supported=["tools:call"]), **options)
        return APIKeyMiddleware(app, verifier, **options)

    return {"app": app, "make": make, "keys": api}


def bearer(value):
    return [("Authorization", "Bearer " + value)]


def rpc(body):
    return json.loads(body)["error"]


def test_a_valid_token_reaches_the_app_with_its_subject_and_scopes(keys, world):
    mw = world["make"]()
    status, headers, _ = call(mw, bearer(keys.mint(ISSUER, "ES256", scope="tools:call info")))
    assert status == 200
    verdict = world["app"].scopes[-1]["state"]["mcp_key"]
    assert verdict.subject == "user-42" and verdict.issuer == ISSUER
    assert verdict.permissions == ("tools:call", "info") and verdict.key_id is None
    assert not any(h.lower().startswith("ratelimit") for h in headers)


def test_a_refused_token_is_401_invalid_token_with_the_reason_and_resource_metadata(keys, world):
    mw = world["make"]()
    token = keys.mint(ISSUER, aud="https://other.example.test/mcp")
    status, headers, body = call(mw, bearer(token))
    assert status == 401
    assert headers["www-authenticate"] == (
        'Bearer error="invalid_token", error_description="the token is not for this resource '
        '(aud)", ' + RM)
    assert rpc(body) == {"code": -32001, "message": "the token is not for this resource (aud)",
                         "data": {"code": "INVALID_TOKEN"}}
    assert token not in body.decode() and token not in headers["www-authenticate"]
    assert world["app"].scopes == []


def test_an_expired_token_is_401_expired(keys, world):
    status, headers, body = call(world["make"](), bearer(keys.mint(ISSUER, exp=1000)))
    assert status == 401 and rpc(body)["data"] == {"code": "EXPIRED"}
    assert headers["www-authenticate"] == ('Bearer error="invalid_token", error_description='
                                           '"the access token has expired", ' + RM)


def test_no_credentials_is_401_with_the_rfc9728_challenge(world):
    status, headers, body = call(world["make"]())
    assert status == 401 and headers["www-authenticate"] == "Bearer " + RM
    assert rpc(body)["code"] == -32001 and rpc(body)["data"] == {"code": "MALFORMED"}
    # The scope every request needs is named.
    status, headers, _ = call(world["make"](require=["info"]))
    assert headers["www-authenticate"] == 'Bearer %s, scope="info"' % RM
    # Another scheme is no credentials either.
    status, headers, _ = call(world["make"](), [("Authorization", "Basic dXNlcjpwYXNz")])
    assert status == 401 and headers["www-authenticate"] == "Bearer " + RM


def test_a_missing_scope_is_403_naming_only_the_needed_scope(keys, world):
    mw = world["make"](tool_permissions=True)
    token = keys.mint(ISSUER, scope="tools:call:add info")
    assert call(mw, bearer(token), tools_call("add"))[0] == 200
    status, headers, body = call(mw, bearer(token), tools_call("whoami"))
    assert status == 403
    assert headers["www-authenticate"] == (
        'Bearer error="insufficient_scope", scope="tools:call:whoami", ' + RM)
    assert rpc(body) == {"code": -32003, "message": "the access token lacks the scope: "
                         "tools:call:whoami", "data": {"code": "INSUFFICIENT_PERMISSIONS"}}
    # `require` too: only what is missing is named.
    mw = world["make"](require=["info", "resources:read"])
    status, headers, _ = call(mw, bearer(token))
    assert status == 403 and 'scope="resources:read"' in headers["www-authenticate"]


def test_keys_keep_working_beside_tokens_and_their_challenges_gain_resource_metadata(world):
    mw = world["make"](tool_permissions=True)
    key_id, key = world["keys"]["all"]
    assert call(mw, [("X-API-Key", key)], tools_call("add"))[0] == 200
    verdict = world["app"].scopes[-1]["state"]["mcp_key"]
    assert verdict.key_id == key_id and verdict.subject == key_id and verdict.issuer is None
    assert call(mw, bearer(key), tools_call("add"))[0] == 200
    status, headers, body = call(mw, bearer(key[:-4] + "0000"))
    assert status == 401 and rpc(body)["data"] == {"code": "NOT_FOUND"}
    assert headers["www-authenticate"] == ('Bearer error="invalid_token", error_description='
                                           '"unknown API key", ' + RM)
    status, headers, _ = call(mw, bearer(world["keys"]["add"][1]), tools_call("whoami"))
    assert status == 403 and headers["www-authenticate"] == (
        'Bearer error="insufficient_scope", scope="tools:call:whoami", ' + RM)


def test_x_api_key_carries_keys_only(keys, world):
    status, _, body = call(world["make"](), [("X-API-Key", keys.mint(ISSUER))])
    assert status == 401 and rpc(body)["data"]["code"] in ("MALFORMED", "NOT_FOUND")


def test_rate_limits_apply_to_keys_not_tokens(keys, world):
    mw = world["make"]()
    token = keys.mint(ISSUER)
    assert [call(mw, bearer(token))[0] for _ in range(4)] == [200] * 4
    limited = world["keys"]["limited"][1]
    assert [call(mw, bearer(limited))[0] for _ in range(2)] == [200, 429]


def test_the_metadata_is_served_at_both_paths_without_credentials(world):
    mw = world["make"]()
    expected = {"resource": RESOURCE, "authorization_servers": [ISSUER],
                "scopes_supported": ["tools:call"], "bearer_methods_supported": ["header"]}
    for path in ("/.well-known/oauth-protected-resource",
                 "/.well-known/oauth-protected-resource/mcp"):
        status, headers, body = call(mw, method="GET", path=path)
        assert status == 200 and json.loads(body) == expected
        assert headers["content-type"] == "application/json"
        assert headers["access-control-allow-origin"] == "*"
    assert call(mw, method="HEAD", path="/.well-known/oauth-protected-resource")[2] == b""
    assert call(mw, method="POST", path="/.well-known/oauth-protected-resource")[0] == 405
    # Another suffix is not this resource's metadata: it goes through authentication.
    assert call(mw, method="GET", path="/.well-known/oauth-protected-resource/x")[0] == 401
    assert world["app"].scopes == []


def test_without_a_resource_tokens_are_off_and_nothing_changes(keys, world):
    mw = world["make"](resource=None, issuers=(), jwks=None, scopes_supported=())
    assert mw.tokens is None
    status, headers, body = call(mw, bearer(keys.mint(ISSUER)))
    assert status == 401 and "resource_metadata" not in headers["www-authenticate"]
    assert rpc(body)["data"]["code"] in ("MALFORMED", "NOT_FOUND")
    assert call(mw, method="GET", path="/.well-known/oauth-protected-resource")[0] == 401
    status, headers, body = call(mw)
    assert headers["www-authenticate"].startswith('Bearer error="invalid_token"')
    assert "no API key" in rpc(body)["message"]


def test_tokens_need_both_a_resource_and_an_issuer(world):
    with pytest.raises(ValueError, match="resource"):
        world["make"](resource=None)
    with pytest.raises(ValueError, match="issuer"):
        world["make"](issuers=[])
