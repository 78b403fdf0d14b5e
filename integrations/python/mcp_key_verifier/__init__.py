"""Protect an MCP server with mcp-key-manager API keys.

    from mcp_key_verifier import APIKeyMiddleware, Verifier
    app = APIKeyMiddleware(mcp.streamable_http_app(), Verifier.from_file("verifier.json"))

The verifier file is written by `mcp-key-manager publish PATH` and rewritten on every change
of the vault; this package re-reads it within 250 ms, keeping the last good one. With
`Verifier.from_file(path, trust="mkv1:...")` only files signed by that vault are used. A key's
`rate_limit` is enforced per process by the middleware (429). OAuth access tokens (JWTs) of
configured issuers are accepted beside keys with `resource=` and `issuers=`
(`AccessTokenVerifier`, docs/oauth.md). Standard library only (a trust pin needs
`cryptography`, access tokens `joserfc`); the format is docs/verifier.md in the
mcp-key-manager repository.
"""

from ._core import (
    CHECKSUM,
    CODES,
    EXPIRED,
    INSUFFICIENT_PERMISSIONS,
    INVALID_TOKEN,
    KEY_PATTERN,
    MALFORMED,
    NOT_FOUND,
    REVOKED,
    SHAPE,
    VALID,
    Verdict,
    Verifier,
    VerifierError,
    fingerprint,
    key_from_headers,
    permits,
)
from .asgi import STATE_KEY, APIKeyMiddleware, needed_permissions
from .limit import Decision, Limiter, RateLimit, decide
from .oauth import AccessTokenVerifier
from .sdk import McpTokenVerifier

__version__ = "0.1.0"

__all__ = [
    "APIKeyMiddleware",
    "AccessTokenVerifier",
    "CHECKSUM",
    "CODES",
    "Decision",
    "EXPIRED",
    "INSUFFICIENT_PERMISSIONS",
    "INVALID_TOKEN",
    "KEY_PATTERN",
    "Limiter",
    "MALFORMED",
    "McpTokenVerifier",
    "NOT_FOUND",
    "RateLimit",
    "REVOKED",
    "SHAPE",
    "STATE_KEY",
    "VALID",
    "Verdict",
    "Verifier",
    "VerifierError",
    "decide",
    "fingerprint",
    "key_from_headers",
    "permits",
    "needed_permissions",
]
