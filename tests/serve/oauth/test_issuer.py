"""The test issuer (issuer.py) checked with joserfc itself: its good tokens verify against the
JWK Set it serves and its attack tokens do not, so a Rust verifier that disagrees is wrong,
not the fixture."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import selectors
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest
from joserfc import jws, jwt
from joserfc.errors import BadSignatureError, ExpiredTokenError, JoseError
from joserfc.jwk import KeySet, RSAKey

ISSUER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "issuer.py")
# What a resource server accepts: the asymmetric algorithms the issuer publishes, nothing else.
ACCEPTED = ["RS256", "PS256", "ES256", "EdDSA"]

# joserfc warns on every EdDSA verification that RFC 9864 deprecates the name; see issuer.py.
pytestmark = pytest.mark.filterwarnings("ignore::joserfc.errors.SecurityWarning")


class Issuer:
    def __init__(self, *args: str):
        self.proc = subprocess.Popen(
            [sys.executable, ISSUER, *args],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        # A fixture that never says LISTENING fails the test instead of hanging it.
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            if not sel.select(timeout=30):
                self.stop()
                raise AssertionError("issuer.py did not print LISTENING within 30 s")
        word, port = self.proc.stdout.readline().split()
        assert word == "LISTENING"
        self.origin = f"http://127.0.0.1:{port}"
        self.issuer = self.origin + (args[1] if args[:1] == ("--path",) else "")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)

    def call(self, path: str, body: dict | None = None, raw: bytes | None = None) -> tuple:
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        method = "GET" if data is None else "POST"
        req = urllib.request.Request(self.origin + path, data=data, method=method)
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, json.load(resp)
        except urllib.error.HTTPError as error:
            return error.code, json.load(error)

    def get(self, path: str) -> dict:
        status, doc = self.call(path)
        assert status == 200, doc
        return doc

    def keyset(self) -> KeySet:
        return KeySet.import_key_set(self.get(self.issuer[len(self.origin):] + "/jwks"))

    def mint(self, **request) -> str:
        status, doc = self.call(self.issuer[len(self.origin):] + "/mint", request)
        assert status == 200, doc
        return doc["token"]


@pytest.fixture(scope="module")
def issuer():
    server = Issuer()
    yield server
    server.stop()


def parts(token: str) -> tuple:
    def decode(part: str) -> dict:
        return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))

    header, payload, signature = token.split(".")
    return decode(header), decode(payload), signature


def verify(token: str, keys: KeySet) -> dict:
    return jwt.decode(token, keys, algorithms=ACCEPTED).claims


def test_metadata_at_both_locations(issuer):
    oauth = issuer.get("/.well-known/oauth-authorization-server")
    assert oauth == issuer.get("/.well-known/openid-configuration")
    assert oauth["issuer"] == issuer.issuer
    assert oauth["jwks_uri"] == issuer.issuer + "/jwks"
    assert oauth["token_endpoint"].startswith(issuer.issuer + "/")
    assert oauth["id_token_signing_alg_values_supported"] == ACCEPTED
    assert oauth["response_types_supported"] and oauth["scopes_supported"]


def test_jwks_one_public_key_per_alg(issuer):
    keys = issuer.get("/jwks")["keys"]
    assert sorted(k["alg"] for k in keys) == sorted(ACCEPTED)
    assert len({k["kid"] for k in keys}) == 4
    assert all(k["use"] == "sig" and "d" not in k for k in keys)
    by_alg = {k["alg"]: k for k in keys}
    assert by_alg["RS256"]["kty"] == by_alg["PS256"]["kty"] == "RSA"
    assert by_alg["RS256"]["n"] == by_alg["PS256"]["n"]  # one RSA key under two kids
    assert len(base64.urlsafe_b64decode(by_alg["RS256"]["n"] + "==")) == 256
    assert (by_alg["ES256"]["kty"], by_alg["ES256"]["crv"]) == ("EC", "P-256")
    assert (by_alg["EdDSA"]["kty"], by_alg["EdDSA"]["crv"]) == ("OKP", "Ed25519")


@pytest.mark.parametrize("alg", ACCEPTED)
def test_signed_tokens_verify_with_default_claims(issuer, alg):
    token = issuer.mint(alg=alg)
    claims = verify(token, issuer.keyset())
    header, _, _ = parts(token)
    assert header["alg"] == alg and header["typ"] == "JWT"
    assert claims["iss"] == issuer.issuer and claims["sub"] == "user-1" and claims["jti"]
    assert claims["iat"] == claims["nbf"] and claims["exp"] == claims["iat"] + 300
    jwt.JWTClaimsRegistry(iss={"essential": True, "value": issuer.issuer}).validate(claims)


def test_claims_and_header_overrides(issuer):
    past = int(time.time()) - 60
    token = issuer.mint(
        alg="ES256",
        claims={"exp": past, "aud": "http://mcp", "scope": "tools:call:echo", "sub": None},
        header={"typ": "at+jwt", "x-test": [1]},
    )
    # The signature is good (an unknown header member is allowed for once); the claims are the test.
    loose = jws.JWSRegistry(algorithms=["ES256"], strict_check_header=False)
    claims = jwt.decode(token, issuer.keyset(), registry=loose).claims
    assert claims["exp"] == past and claims["aud"] == "http://mcp" and "sub" not in claims
    assert claims["scope"] == "tools:call:echo"
    with pytest.raises(ExpiredTokenError):
        jwt.JWTClaimsRegistry(leeway=0).validate(claims)
    header, _, _ = parts(token)
    assert header["typ"] == "at+jwt" and header["x-test"] == [1]


def test_kid_override_and_removal(issuer):
    assert parts(issuer.mint(alg="RS256", kid="other"))[0]["kid"] == "other"
    assert "kid" not in parts(issuer.mint(alg="RS256", kid=None))[0]


def test_ps256_under_the_rs256_kid_is_refused(issuer):
    rs256 = {k["alg"]: k["kid"] for k in issuer.get("/jwks")["keys"]}["RS256"]
    with pytest.raises(JoseError):
        verify(issuer.mint(alg="PS256", kid=rs256), issuer.keyset())


def test_alg_none_is_unsigned_and_refused(issuer):
    token = issuer.mint(alg="none")
    header, claims, signature = parts(token)
    assert header["alg"] == "none" and signature == "" and token.endswith(".")
    assert claims["iss"] == issuer.issuer
    for algorithms in (ACCEPTED, None):  # None: joserfc's own recommended set
        with pytest.raises(JoseError):
            jwt.decode(token, issuer.keyset(), algorithms=algorithms)


def test_hs256_keyed_with_the_rsa_public_pem_is_refused(issuer):
    token = issuer.mint(alg="HS256")
    header, _, signature = parts(token)
    rsa = [k for k in issuer.get("/jwks")["keys"] if k["kid"] == header["kid"]]
    assert header["alg"] == "HS256" and rsa and rsa[0]["alg"] == "RS256"
    # The token really is the key-confusion attack: an HMAC over the PEM of the published key.
    pem = RSAKey.import_key(rsa[0]).as_pem(private=False)
    signing_input = token.rsplit(".", 1)[0].encode()
    expected = hmac.new(pem, signing_input, hashlib.sha256).digest()
    assert base64.urlsafe_b64encode(expected).rstrip(b"=").decode() == signature
    for algorithms in (ACCEPTED, None, ["HS256", "RS256"]):
        with pytest.raises(JoseError):
            jwt.decode(token, issuer.keyset(), algorithms=algorithms)


@pytest.mark.parametrize("alg", ACCEPTED)
def test_foreign_key_under_a_published_kid_is_refused(issuer, alg):
    token = issuer.mint(alg=alg, key="foreign")
    keys = issuer.keyset()
    assert parts(token)[0]["kid"] in {k.kid for k in keys}
    with pytest.raises(BadSignatureError):
        verify(token, keys)


def test_rotation_retires_the_keys(issuer):
    before = issuer.keyset()
    status, rotated = issuer.call("/rotate", {})
    assert status == 200
    after = issuer.keyset()
    assert {k.kid for k in after} == set(rotated["kids"].values())
    assert not {k.kid for k in after} & {k.kid for k in before}
    for alg in ACCEPTED:
        retired = issuer.mint(alg=alg, key="retired")
        verify(retired, before)  # really signed by a key that was published
        with pytest.raises(JoseError):
            verify(retired, after)
        verify(issuer.mint(alg=alg), after)


def test_retired_before_any_rotation_was_never_published():
    fresh = Issuer()
    try:
        token = fresh.mint(alg="ES256", key="retired")
        assert parts(token)[0]["kid"] not in {k.kid for k in fresh.keyset()}
        with pytest.raises(JoseError):
            verify(token, fresh.keyset())
    finally:
        fresh.stop()


def test_stats_count_fetches(issuer):
    start = issuer.get("/stats")
    issuer.get("/jwks")
    issuer.get("/jwks")
    issuer.get("/.well-known/openid-configuration")
    issuer.mint(alg="RS256")
    assert issuer.get("/stats") == dict(
        start,
        jwks_fetches=start["jwks_fetches"] + 2,
        metadata_fetches=start["metadata_fetches"] + 1,
    )


def test_path_issuer_serves_metadata_at_both_locations():
    server = Issuer("--path", "/realms/x")
    try:
        assert server.issuer.endswith("/realms/x")
        oauth = server.get("/.well-known/oauth-authorization-server/realms/x")
        assert oauth == server.get("/realms/x/.well-known/openid-configuration")
        assert oauth["issuer"] == server.issuer and oauth["jwks_uri"] == server.issuer + "/jwks"
        for path in ("/.well-known/oauth-authorization-server", "/.well-known/openid-configuration",
                     "/jwks", "/realms/x/.well-known/oauth-authorization-server"):
            assert server.call(path)[0] == 404
        assert verify(server.mint(alg="EdDSA"), server.keyset())["iss"] == server.issuer
    finally:
        server.stop()


def test_requests_are_bounded_and_checked(issuer):
    assert issuer.call("/mint", raw=b"{" + b" " * (64 * 1024) + b"}")[0] == 413
    assert issuer.call("/mint", raw=b"not json")[0] == 400
    assert issuer.call("/mint", {"alg": "HS512"})[0] == 400
    assert issuer.call("/mint", {"alg": "RS256", "key": "other"})[0] == 400
    assert issuer.call("/mint", {"alg": "RS256", "header": {"alg": "none"}})[0] == 400
    assert issuer.call("/mint")[0] == 405
    assert issuer.call("/token", {})[0] == 400  # JSON, not a form
    assert issuer.call("/nowhere", {})[0] == 404


def test_exits_when_stdin_closes():
    server = Issuer()
    server.proc.stdin.close()
    assert server.proc.wait(timeout=10) == 0


# The authorization code flow (registration, /authorize, /token), as an MCP client drives it.

REDIRECT = "http://127.0.0.1:9/callback"
RESOURCE = "http://127.0.0.1:8000/mcp"


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # a 3xx comes back as an HTTPError, Location and all


def pkce() -> tuple:
    verifier = base64.urlsafe_b64encode(os.urandom(40)).rstrip(b"=").decode()
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    return verifier, challenge.rstrip(b"=").decode()


def register(server: Issuer, uris=(REDIRECT,)) -> str:
    status, client = server.call("/register", {"redirect_uris": list(uris), "client_name": "t"})
    assert status == 201 and client["redirect_uris"] == list(uris), client
    assert client["token_endpoint_auth_method"] == "none" and "client_secret" not in client
    return client["client_id"]


def authorize(server: Issuer, **params) -> tuple:
    """GET /authorize: (status, the redirect's query parameters or the JSON error)."""
    url = server.origin + "/authorize?" + urllib.parse.urlencode(params)
    try:
        with urllib.request.build_opener(NoRedirect).open(url, timeout=10) as resp:
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as error:
        if error.code != 302:
            return error.code, json.load(error)
        location = urllib.parse.urlsplit(error.headers["Location"])
        assert location._replace(query="").geturl() == params["redirect_uri"]
        return 302, dict(urllib.parse.parse_qsl(location.query))


def token(server: Issuer, **form) -> tuple:
    req = urllib.request.Request(server.origin + "/token",
                                 data=urllib.parse.urlencode(form).encode(), method="POST")
    req.add_header("Content-Type", "application/x-www-form-urlencoded")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def start_flow(server: Issuer, scope: str = "tools:call:echo tools:call:add") -> tuple:
    """A registered client's approved authorization: (client_id, verifier, code)."""
    client_id, (verifier, challenge) = register(server), pkce()
    status, answer = authorize(server, response_type="code", client_id=client_id,
                               redirect_uri=REDIRECT, code_challenge=challenge,
                               code_challenge_method="S256", resource=RESOURCE,
                               state="st-1", scope=scope)
    assert status == 302, answer
    assert answer["state"] == "st-1" and answer["iss"] == server.issuer
    return client_id, verifier, answer["code"]


@pytest.fixture(scope="module")
def granting():
    server = Issuer("--grant-scope", "tools:call:echo")
    yield server
    server.stop()


def test_metadata_names_the_flow_endpoints(granting):
    meta = granting.get("/.well-known/oauth-authorization-server")
    assert meta["registration_endpoint"] == granting.issuer + "/register"
    assert meta["authorization_endpoint"] == granting.issuer + "/authorize"
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert meta["authorization_response_iss_parameter_supported"] is True


def test_code_flow_issues_a_token_for_the_resource(granting):
    client_id, verifier, code = start_flow(granting)
    form = dict(grant_type="authorization_code", code=code, client_id=client_id,
                redirect_uri=REDIRECT, code_verifier=verifier, resource=RESOURCE)
    status, answer = token(granting, **form)
    assert status == 200, answer
    assert answer["token_type"] == "Bearer" and answer["expires_in"] == 300
    assert answer["scope"] == "tools:call:echo"  # asked for echo and add; granted echo
    claims = verify(answer["access_token"], granting.keyset())
    assert parts(answer["access_token"])[0]["alg"] == "RS256"
    assert claims["iss"] == granting.issuer and claims["aud"] == RESOURCE
    assert claims["scope"] == "tools:call:echo" and claims["client_id"] == client_id
    assert claims["exp"] == claims["iat"] + 300
    # The code is good once.
    assert token(granting, **form) == (400, {"error": "invalid_grant",
                                             "error_description": "unknown, used or expired code"})


def test_pkce_mismatch_is_refused(granting):
    client_id, verifier, code = start_flow(granting)
    other, _ = pkce()
    status, answer = token(granting, grant_type="authorization_code", code=code,
                           client_id=client_id, redirect_uri=REDIRECT, code_verifier=other)
    assert (status, answer["error"]) == (400, "invalid_grant"), answer
    assert "code_verifier" in answer["error_description"]


def test_token_checks_client_and_redirect(granting):
    for change in ({"client_id": register(granting)}, {"redirect_uri": REDIRECT + "x"},
                   {"resource": "http://127.0.0.1:8000/other"}):
        client_id, verifier, code = start_flow(granting)
        form = dict(grant_type="authorization_code", code=code, client_id=client_id,
                    redirect_uri=REDIRECT, code_verifier=verifier, resource=RESOURCE)
        status, answer = token(granting, **dict(form, **change))
        assert status == 400 and answer["error"] in ("invalid_grant", "invalid_target"), answer


def test_authorize_refuses_bad_requests(granting):
    client_id, (_, challenge) = register(granting), pkce()
    good = dict(response_type="code", client_id=client_id, redirect_uri=REDIRECT,
                code_challenge=challenge, code_challenge_method="S256", resource=RESOURCE,
                state="s")
    assert authorize(granting, **good)[0] == 302
    for change, error in (
        ({"redirect_uri": "http://127.0.0.1:9/elsewhere"}, "invalid_request"),  # not registered
        ({"code_challenge_method": "plain"}, "invalid_request"),  # plain PKCE
        ({"code_challenge_method": None}, "invalid_request"),
        ({"code_challenge": None}, "invalid_request"),
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"resource": None}, "invalid_target"),
        ({"client_id": "nobody"}, "invalid_client"),
    ):
        params = {k: v for k, v in dict(good, **change).items() if v is not None}
        status, answer = authorize(granting, **params)
        assert (status, answer["error"]) == (400, error), (change, answer)
