"""`McpTokenVerifier`: the official MCP SDK's `TokenVerifier`, backed by a verifier file.

Owns the mapping from a verdict to the SDK's `AccessToken`: `client_id` = key id, `scopes` =
the key's permissions, `expires_at` = the key's expiry in whole Unix seconds (or None).

Invariant: the presented key never lands in the `AccessToken`. Its required `token` field holds
`mcp-key-id:<key id>` instead, because the SDK hands that object to tool code
(`get_access_token()`) and pydantic prints every field in its repr.

The SDK is imported only when a token is verified, so the package keeps no runtime dependency.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Optional

from ._core import Verifier

__all__ = ["McpTokenVerifier", "TOKEN_PREFIX"]

#: `AccessToken.token` is this prefix and the key id, never the key.
TOKEN_PREFIX = "mcp-key-id:"


class McpTokenVerifier:
    """For `MCPServer(token_verifier=McpTokenVerifier(verifier), auth=AuthSettings(...))`
    (`FastMCP` in SDK 1.x): the SDK reads `Authorization: Bearer <key>` and calls
    `verify_token`; a key that does not verify (or lacks a permission of `require`) gives None,
    which the SDK answers with 401. For a 403 on a missing permission, list it in
    `AuthSettings(required_scopes=[...])` instead: the SDK checks scopes itself.

    Rate limits are not enforced here: a token verifier can only admit or refuse (401), and a
    key over its limit is not an invalid token. Put `APIKeyMiddleware` around the app for an
    entry's `rate_limit` (429 with `Retry-After` and `RateLimit` headers).
    """

    def __init__(self, verifier: Verifier, require: Iterable[str] = ()):
        if not isinstance(verifier, Verifier):
            raise TypeError("verifier must be a mcp_key_verifier.Verifier")
        self.verifier = verifier
        self.require = (require,) if isinstance(require, str) else tuple(require)

    async def verify_token(self, token: str) -> Optional[Any]:
        verdict = self.verifier.verify(token, self.require)
        if not verdict.valid:
            return None
        from mcp.server.auth.provider import AccessToken  # the SDK, only when used

        expires = verdict.expires_at
        return AccessToken(
            token=TOKEN_PREFIX + (verdict.key_id or ""),
            client_id=verdict.key_id or "",
            scopes=list(verdict.permissions),
            expires_at=None if expires is None else math.floor(expires.timestamp()),
        )
