"""AccessTokenVerifier: docs/oauth.md's checks, in order, on tokens minted here with an
offline JWK Set (dict or file)."""

import datetime
import json
import os

import pytest

from mcp_key_verifier import (EXPIRED, INSUFFICIENT_PERMISSIONS, INVALID_TOKEN, VALID,
                              AccessTokenVerifier)

from jwtutil import RESOURCE, Keys, hs256_with, unsigned

ISSUER = "https://id.example.test/realms/mcp"


@pytest.fixture(scope="module")
def keys():
    return Keys()


@pytest.fixture
def tv(keys):
    return AccessTokenVerifier(RESOURCE, [ISSUER], jwks=keys.jwks())


def test_each_accepted_algorithm_verifies_and_gives_sub_scopes_and_exp(keys, tv):
    for alg in ("RS256", "PS256", "ES256", "EdDSA"):
        token = keys.mint(ISSUER, alg, scope="tools:call resources:read", exp=4102444800)
        v = tv.verify(token)
        assert (v.valid, v.code) == (True, VALID), (alg, v.reason)
        assert v.subject == "user-42" and v.issuer == ISSUER and v.key_id is None
        assert v.permissions == ("tools:call", "resources:read")
        assert v.expires_at == datetime.datetime(2100, 1, 1, tzinfo=datetime.timezone.utc)
        assert v.claims["client_id"] == "client-7"
        assert token not in repr(v)


def refused(tv, token, code=INVALID_TOKEN):
    v = tv.verify(token)
    assert not v.valid and v.code == code, (v.code, v.reason)
    return v.reason


def test_expired_beyond_the_60_s_skew_is_expired_within_it_valid(keys, tv):
    now = int(datetime.datetime.now(datetime.timezone.utc).timestamp())
    assert refused(tv, keys.mint(ISSUER, exp=now - 61), EXPIRED) == "the access token has expired"
    assert tv.verify(keys.mint(ISSUER, exp=now - 30)).valid


def test_nbf_in_the_future_beyond_the_skew_is_refused(keys, tv):
    now = int(datetime.datetime.now(datetime.timezone.utc).timestamp())
    assert refused(tv, keys.mint(ISSUER, nbf=now + 120)) == "the token is not valid yet (nbf)"
    assert tv.verify(keys.mint(ISSUER, nbf=now + 30)).valid


def test_a_token_without_exp_is_refused(keys, tv):
    assert refused(tv, keys.mint(ISSUER, exp=None)) == "the token has no exp"


def test_aud_must_contain_the_resource_exactly(keys, tv):
    for aud in ("https://other.example.test/mcp", RESOURCE + "/", [], None,
                ["https://other.example.test/mcp"]):
        assert refused(tv, keys.mint(ISSUER, aud=aud)) == "the token is not for this resource (aud)"
    assert tv.verify(keys.mint(ISSUER, aud=["https://other.example.test/mcp", RESOURCE])).valid


def test_an_issuer_not_configured_is_refused_before_any_key_is_looked_at(keys, tv):
    for iss in ("https://evil.example.test/realms/mcp", ISSUER + "/", None, 7):
        assert refused(tv, keys.mint(iss)) == "the token's issuer is not accepted"


def test_alg_none_is_refused(tv):
    claims = {"iss": ISSUER, "aud": RESOURCE, "exp": 4102444800, "sub": "x"}
    for header in ({"alg": "none"}, {"alg": "None"}, {"alg": "none", "kid": "rsa1"}):
        reason = refused(tv, unsigned(header, claims))
        assert reason.startswith("the token's algorithm is not accepted")


def test_hs256_signed_with_the_issuers_rsa_public_key_is_refused(keys, tv):
    """Algorithm confusion: the public key, as a PEM, used as an HMAC secret."""
    claims = {"iss": ISSUER, "aud": RESOURCE, "exp": 4102444800, "sub": "x", "scope": "tools:call"}
    for header in ({"alg": "HS256", "kid": "rsa1"}, {"alg": "HS256"}):
        token = hs256_with(keys.public_pem(), header, claims)
        assert refused(tv, token).startswith("the token's algorithm is not accepted")


def test_other_algorithms_and_crit_are_refused(keys, tv):
    claims = {"iss": ISSUER, "aud": RESOURCE, "exp": 4102444800}
    for alg in ("HS512", "RS512", "ES384", "Ed25519"):
        assert refused(tv, unsigned({"alg": alg}, claims, b"x" * 64)).startswith(
            "the token's algorithm is not accepted")
    token = keys.mint(ISSUER, header={"crit": ["exp"], "exp": 1})
    assert refused(tv, token) == "the token names critical header parameters"


def test_a_forged_signature_is_refused(keys, tv):
    """The claims changed after signing (a scope added), the signature kept."""
    head, _, sig = keys.mint(ISSUER, scope="info").split(".")
    _, body, _ = unsigned({}, {"iss": ISSUER, "aud": RESOURCE, "exp": 4102444800,
                               "sub": "user-42", "scope": "tools:call"}).split(".")
    assert refused(tv, "%s.%s.%s" % (head, body, sig)) == "the token's signature does not verify"
    # Signed by a key of the right type and kid, but not the issuer's.
    other = Keys()
    forged = other.mint(ISSUER, "ES256")
    assert refused(tv, forged) == "the token's signature does not verify"


def test_an_unknown_kid_is_refused(keys, tv):
    assert refused(tv, keys.mint(ISSUER, kid="nobody")) == \
        "the access token's key is not one of its issuer's"


def test_without_kid_the_only_key_fitting_alg_is_used(keys, tv):
    assert tv.verify(keys.mint(ISSUER, "ES256", kid=False)).valid
    # Two RSA keys and no kid: which one is ambiguous, so none.
    keys.add("rsa2", "RSA", 2048)
    two = AccessTokenVerifier(RESOURCE, [ISSUER], jwks=keys.jwks("rsa1", "rsa2"))
    assert refused(two, keys.mint(ISSUER, "RS256", kid=False)) == \
        "the access token's key is not one of its issuer's"


def test_a_jwk_alg_other_than_the_tokens_is_refused(keys):
    tv = AccessTokenVerifier(RESOURCE, [ISSUER],
                             jwks=keys.jwks(extra={"rsa1": {"alg": "PS256"}}))
    assert refused(tv, keys.mint(ISSUER, "RS256")) == "the token's algorithm does not fit its key"
    assert tv.verify(keys.mint(ISSUER, "PS256")).valid


def test_a_key_whose_type_does_not_fit_alg_is_refused(keys, tv):
    """A kid naming the EC key in an RS256 token."""
    token = keys.mint(ISSUER, "RS256", kid="ec1", sign_with="rsa1")
    assert refused(tv, token) == "the token's algorithm does not fit its key"


def test_not_a_jwt_and_unreadable_segments(tv):
    assert refused(tv, "mcp_0123") == "not a JWT"
    assert refused(tv, "a.b.c.d") == "not a JWT"
    assert refused(tv, "x" * 20000 + ".a.b") == "not a JWT"
    assert refused(tv, "!!.a.b") == "not a JWT"
    assert refused(tv, "eyJhbGciOiJSUzI1NiJ9.bm90IGpzb24.x") == "unreadable JWT claims"
    assert refused(tv, "bm90IGpzb24.e30.x") == "unreadable JWT header"


def test_scopes_from_a_string_an_array_or_another_claim(keys):
    tv = AccessTokenVerifier(RESOURCE, [ISSUER], jwks=keys.jwks())
    v = tv.verify(keys.mint(ISSUER, scope=["tools:call:add", 7, "prompts:get"]))
    assert v.permissions == ("tools:call:add", "prompts:get")
    assert tv.verify(keys.mint(ISSUER, scope=None)).permissions == ()
    entra = AccessTokenVerifier(RESOURCE, [ISSUER], jwks=keys.jwks(), scope_claim="scp")
    assert entra.verify(keys.mint(ISSUER, scp=["tools:call"], scope=None)).permissions == \
        ("tools:call",)


def test_require_is_judged_with_the_permission_rule(keys, tv):
    token = keys.mint(ISSUER, scope="tools:call")
    assert tv.verify(token, ["tools:call:add"]).valid
    v = tv.verify(token, ["resources:read"])
    assert v.code == INSUFFICIENT_PERMISSIONS and v.subject == "user-42"
    narrow = keys.mint(ISSUER, scope="tools:call:add")
    assert tv.verify(narrow, ["tools:call"]).code == INSUFFICIENT_PERMISSIONS


def test_a_second_presentation_is_a_cache_hit_without_a_signature_check(keys, tv, monkeypatch):
    from joserfc import jws

    calls = []
    real = jws.deserialize_compact
    monkeypatch.setattr(jws, "deserialize_compact",
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    token = keys.mint(ISSUER, "ES256")
    assert tv.cached(token) is None
    assert tv.verify(token).valid and len(calls) == 1
    for _ in range(5):
        assert tv.verify(token).valid
        assert tv.cached(token).valid
    assert len(calls) == 1
    # The cached verdict is still judged against what each request needs.
    assert tv.verify(token, ["resources:read"]).code == INSUFFICIENT_PERMISSIONS
    # Past exp (and the skew), the cache no longer answers, and the check says EXPIRED.
    later = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=400)
    assert tv.cached(token, now=later) is None
    assert tv.verify(token, now=later).code == EXPIRED
    # Refusals are not cached: each costs a check.
    bad = keys.mint(ISSUER, aud="https://other.example.test/")
    tv.verify(bad), tv.verify(bad)
    assert len(calls) == 4


def test_the_cache_is_bounded(keys, monkeypatch):
    from mcp_key_verifier import oauth

    monkeypatch.setattr(oauth, "CACHE_ENTRIES", 3)
    tv = AccessTokenVerifier(RESOURCE, [ISSUER], jwks=keys.jwks())
    tokens = [keys.mint(ISSUER, "ES256", jti=str(i)) for i in range(5)]
    for t in tokens:
        assert tv.verify(t).valid
    assert [tv.cached(t) is not None for t in tokens] == [False, False, True, True, True]


def test_a_jwks_file_is_read_again_when_it_changes(keys, tmp_path, monkeypatch):
    from mcp_key_verifier import oauth

    monkeypatch.setattr(oauth, "_FILE_CHECK_SECONDS", 0)
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(keys.jwks("rsa1")))
    tv = AccessTokenVerifier(RESOURCE, [ISSUER], jwks=str(path))
    assert tv.verify(keys.mint(ISSUER, "RS256")).valid
    assert not tv.verify(keys.mint(ISSUER, "ES256")).valid
    tmp = tmp_path / "jwks.tmp"
    tmp.write_text(json.dumps(keys.jwks("rsa1", "ec1")))
    os.replace(tmp, path)
    assert tv.verify(keys.mint(ISSUER, "ES256")).valid
    # A broken replacement keeps the last good keys.
    tmp.write_text("{not json")
    os.replace(tmp, path)
    assert tv.verify(keys.mint(ISSUER, "EdDSA")).code == INVALID_TOKEN
    assert tv.verify(keys.mint(ISSUER, "ES256", jti="again")).valid


def test_configuration_errors(keys, tmp_path):
    with pytest.raises(ValueError, match="issuer"):
        AccessTokenVerifier(RESOURCE, [], jwks=keys.jwks())
    with pytest.raises(ValueError, match="https"):
        AccessTokenVerifier(RESOURCE, ["http://id.example.test/"], jwks=keys.jwks())
    with pytest.raises(ValueError, match="https"):
        AccessTokenVerifier("mcp.example.test/mcp", [ISSUER], jwks=keys.jwks())
    with pytest.raises(ValueError, match="quotes"):
        AccessTokenVerifier(RESOURCE + '", x="y', [ISSUER], jwks=keys.jwks())
    with pytest.raises(ValueError, match="JWK Set"):
        AccessTokenVerifier(RESOURCE, [ISSUER], jwks={"kty": "RSA"})
    with pytest.raises(ValueError, match="cannot read"):
        AccessTokenVerifier(RESOURCE, [ISSUER], jwks=str(tmp_path / "missing.json"))
    # Loopback may be plain HTTP (a development issuer).
    AccessTokenVerifier("http://127.0.0.1:8000/mcp", ["http://localhost:8080/realms/x"],
                        jwks=keys.jwks())


def test_without_joserfc_tokens_say_which_extra_to_install(monkeypatch):
    """The core stays dependency-free: joserfc is imported when tokens are configured."""
    import sys

    from mcp_key_verifier import oauth

    monkeypatch.setattr(oauth, "_jose", None)
    monkeypatch.setitem(sys.modules, "joserfc", None)
    with pytest.raises(ImportError, match=r"mcp-key-verifier\[oauth\]"):
        AccessTokenVerifier(RESOURCE, [ISSUER], jwks={"keys": []})
