"""An issuer's keys by discovery: RFC 8414 then OpenID metadata, `jwks_uri` fetched over HTTP
on 127.0.0.1, key rotation picked up on an unknown kid, and the refetch bounded."""

import time

import pytest

from mcp_key_verifier import INVALID_TOKEN, AccessTokenVerifier, oauth

from jwtutil import RESOURCE, IssuerServer, Keys

UNKNOWN = "the access token's key is not one of its issuer's"


@pytest.fixture(scope="module")
def keys():
    keys = Keys()
    keys.add("rsa2", "RSA", 2048)
    return keys


@pytest.fixture
def idp():
    with IssuerServer().running() as server:
        yield server


def test_metadata_locations_insert_then_append_the_issuers_path():
    assert oauth.metadata_locations("https://id.example.test/realms/mcp/") == [
        "https://id.example.test/.well-known/oauth-authorization-server/realms/mcp",
        "https://id.example.test/realms/mcp/.well-known/openid-configuration"]
    assert oauth.metadata_locations("https://id.example.test") == [
        "https://id.example.test/.well-known/oauth-authorization-server",
        "https://id.example.test/.well-known/openid-configuration"]


def test_keys_by_rfc8414_discovery_fetched_on_the_first_token_only(keys, idp):
    idp.publish(keys.jwks("rsa1", "ec1", "ed1"))
    tv = AccessTokenVerifier(RESOURCE, [idp.issuer])
    assert idp.count("/jwks") == 0  # nothing fetched before a token comes
    for alg in ("RS256", "PS256", "ES256", "EdDSA"):
        assert tv.verify(keys.mint(idp.issuer, alg)).valid, alg
    assert idp.count("/.well-known/oauth-authorization-server/realms/mcp") == 1
    assert idp.count("/jwks") == 1


def test_openid_discovery_when_there_is_no_rfc8414_metadata(keys, idp):
    idp.publish(keys.jwks("rsa1"), where="oidc")
    tv = AccessTokenVerifier(RESOURCE, [idp.issuer])
    assert tv.verify(keys.mint(idp.issuer)).valid
    assert idp.count("/.well-known/oauth-authorization-server/realms/mcp") == 1  # 404 first
    assert idp.count("/realms/mcp/.well-known/openid-configuration") == 1


def test_rotation_a_new_kid_is_refused_until_a_refetch_and_refetches_are_bounded(
        keys, idp, monkeypatch):
    monkeypatch.setattr(oauth, "REFETCH_SECONDS", 0.5)
    idp.publish(keys.jwks("rsa1"))
    tv = AccessTokenVerifier(RESOURCE, [idp.issuer])
    assert tv.verify(keys.mint(idp.issuer, kid="rsa1")).valid
    assert idp.count("/jwks") == 1
    idp.rotate(keys.jwks("rsa1", "rsa2"))
    # Within the refetch interval: the new kid is unknown, and five tries fetch nothing.
    for i in range(5):
        v = tv.verify(keys.mint(idp.issuer, kid="rsa2", jti=str(i)))
        assert (v.code, v.reason) == (INVALID_TOKEN, UNKNOWN)
    assert idp.count("/jwks") == 1
    time.sleep(0.6)
    # After it: one refetch, and the rotated key verifies.
    assert tv.verify(keys.mint(idp.issuer, kid="rsa2")).valid
    assert idp.count("/jwks") == 2
    # A kid the issuer never had, right after: refused without another fetch.
    for i in range(3):
        assert tv.verify(keys.mint(idp.issuer, kid="nobody", jti=str(i))).reason == UNKNOWN
    assert idp.count("/jwks") == 2
    # Discovery happened once; the jwks_uri is remembered.
    assert idp.count("/.well-known/oauth-authorization-server/realms/mcp") == 1


def test_the_default_refetch_interval_is_30_s():
    assert oauth.REFETCH_SECONDS == 30


def test_metadata_naming_another_issuer_gives_no_keys(keys, idp):
    idp.publish(keys.jwks("rsa1"))
    idp.documents["/.well-known/oauth-authorization-server/realms/mcp"]["issuer"] = \
        "https://evil.example.test/"
    tv = AccessTokenVerifier(RESOURCE, [idp.issuer])
    assert tv.verify(keys.mint(idp.issuer)).reason == UNKNOWN
    assert idp.count("/jwks") == 0


def test_a_jwks_uri_over_plain_http_off_loopback_is_not_fetched(keys, idp):
    idp.publish(keys.jwks("rsa1"))
    idp.documents["/.well-known/oauth-authorization-server/realms/mcp"]["jwks_uri"] = \
        "http://keys.example.test/jwks"
    tv = AccessTokenVerifier(RESOURCE, [idp.issuer])
    assert tv.verify(keys.mint(idp.issuer)).reason == UNKNOWN


def test_a_document_larger_than_1_mib_is_refused(keys, idp):
    idp.publish(keys.jwks("rsa1"))
    idp.documents["/jwks"] = b'{"keys": [], "pad": "' + b"x" * (1024 * 1024) + b'"}'
    tv = AccessTokenVerifier(RESOURCE, [idp.issuer])
    assert tv.verify(keys.mint(idp.issuer)).reason == UNKNOWN
    assert idp.count("/jwks") == 1


def test_an_issuer_without_metadata_refuses_its_tokens_and_is_not_hammered(keys, idp):
    tv = AccessTokenVerifier(RESOURCE, [idp.issuer])
    for i in range(5):
        assert tv.verify(keys.mint(idp.issuer, jti=str(i))).reason == UNKNOWN
    assert idp.count("/.well-known/oauth-authorization-server/realms/mcp") == 1
    assert idp.count("/realms/mcp/.well-known/openid-configuration") == 1
