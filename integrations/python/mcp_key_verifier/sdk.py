"""`McpTokenVerifier`: the official MCP SDK's `TokenVerifier`, backed by a verifier file and,
when configured, by the OAuth issuers whose access tokens are accepted beside keys.

Owns the mapping from a verdict to the SDK's `AccessToken`: for a key, `client_id` = key id,
`scopes` = the key's permissions, `expires_at` = the key's expiry in whole Unix seconds (or
None); for an access token, `client_id` = its `client_id` claim (else `azp`, else `sub`),
`subject` = `sub`, `scopes` = the scope claim's values, `expires_at` = `exp`, `resource` =
the configured resource (the `aud` entry it matched), `claims` = its claims.

Invariant: the presented key or token never lands in the `AccessToken`. Its required `token`
field holds `mcp-key-id:<key id>` (a key) or `mcp-token-sha256:<SHA-256 of the token>` (a
token) instead, because the SDK hands that object to tool code (`get_access_token()`) and
pydantic prints every field in its repr.

The SDK is imported only when a token is verified, so the package keeps no runtime dependency.
"""

from __future__ import annotations

import hashlib
import math
import os
from typing import Any, Iterable, Mapping, Optional, Union

from ._core import Verdict, Verifier
from .oauth import configured, in_thread, looks_like_token

__all__ = ["McpTokenVerifier", "TOKEN_PREFIX", "JWT_PREFIX"]

#: `AccessToken.token` is this prefix and the key id, never the key.
TOKEN_PREFIX = "mcp-key-id:"
#: For an access token, `AccessToken.token` is this prefix and the token's SHA-256 (hex).
JWT_PREFIX = "mcp-token-sha256:"


class McpTokenVerifier:
    """For `MCPServer(token_verifier=McpTokenVerifier(verifier), auth=AuthSettings(...))`
    (`FastMCP` in SDK 1.x): the SDK reads `Authorization: Bearer <key>` and calls
    `verify_token`; a key that does not verify (or lacks a permission of `require`) gives None,
    which the SDK answers with 401. For a 403 on a missing permission, list it in
    `AuthSettings(required_scopes=[...])` instead: the SDK checks scopes itself.

    Rate limits are not enforced here: a token verifier can only admit or refuse (401), and a
    key over its limit is not an invalid token. Put `APIKeyMiddleware` around the app for an
    entry's `rate_limit` (429 with `Retry-After` and `RateLimit` headers).

    Access tokens (docs/oauth.md): with `resource` and `issuers` (and optionally `jwks`,
    `scope_claim`, as `APIKeyMiddleware` takes them) a presented value shaped as a JWT is
    checked as an access token, anything else as a key. Give the SDK the same resource
    (`AuthSettings(resource_server_url=..., validate_token_resource=True)`): it then serves
    the metadata, names it in its challenges, and compares `AccessToken.resource` with it
    (a key's is the configured resource too: the verifier file is this server's).
    """

    def __init__(self, verifier: Verifier, require: Iterable[str] = (), *,
                 resource: Optional[str] = None, issuers: Iterable[str] = (),
                 jwks: Union[None, Mapping[str, Any], str, "os.PathLike[str]"] = None,
                 scope_claim: str = "scope"):
        if not isinstance(verifier, Verifier):
            raise TypeError("verifier must be a mcp_key_verifier.Verifier")
        self.verifier = verifier
        self.require = (require,) if isinstance(require, str) else tuple(require)
        self.tokens = configured(resource, issuers, jwks, scope_claim)

    async def verify_token(self, token: str) -> Optional[Any]:
        if self.tokens is not None and looks_like_token(token):
            verdict = self.tokens.cached(token, self.require)
            if verdict is None:
                verdict = await in_thread(self.tokens.verify, token, self.require)
            if not verdict.valid:
                return None
            digest = hashlib.sha256(token.encode("ascii")).hexdigest()
            return _access_token(verdict, JWT_PREFIX + digest, self.tokens.resource)
        verdict = self.verifier.verify(token, self.require)
        if not verdict.valid:
            return None
        # A key of this server's own verifier file is for this resource: with
        # `AuthSettings(validate_token_resource=True)` the SDK would refuse it otherwise.
        resource = None if self.tokens is None else self.tokens.resource
        return _access_token(verdict, TOKEN_PREFIX + (verdict.key_id or ""), resource)


def _access_token(verdict: Verdict, reference: str, resource: Optional[str]) -> Any:
    from mcp.server.auth.provider import AccessToken  # the SDK, only when used

    expires = verdict.expires_at
    fields = dict(
        token=reference,
        client_id=verdict.key_id or "",
        scopes=list(verdict.permissions),
        expires_at=None if expires is None else math.floor(expires.timestamp()),
    )
    # SDK 2.x has `subject`, `resource` and `claims`; older ones only the four above.
    known = getattr(AccessToken, "model_fields", {})
    extra: dict = {"resource": resource}
    if verdict.issuer is not None:
        claims = dict(verdict.claims or {})
        fields["client_id"] = next((c for c in (claims.get("client_id"), claims.get("azp"),
                                                verdict.subject) if isinstance(c, str) and c), "")
        extra.update(subject=verdict.subject, claims=claims)
    fields.update((k, v) for k, v in extra.items() if k in known and v is not None)
    return AccessToken(**fields)
