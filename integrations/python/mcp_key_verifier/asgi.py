"""`APIKeyMiddleware`: plain ASGI middleware that lets through only requests carrying a good key
or, when configured, a good OAuth access token (docs/oauth.md).

Owns the HTTP face of verification: which header holds the key or token, the 401/403 answers
(with `WWW-Authenticate` and a JSON-RPC error body an MCP client can show), the protected
resource metadata route (RFC 9728), MCP-shaped tool permissions, per-process rate limits (429,
`RateLimit` headers), and handing the verdict to the application.

Invariants:
- The application sees no HTTP request or websocket whose key or token did not verify.
- No answer, log line or scope entry contains the presented key or token; the verdict the
  application receives names a key by id, a token by its `sub`.
- A body read for tool permissions is bounded (1 MiB) and replayed to the application
  unchanged, byte for byte.
- Only a request that would be admitted counts against its key's rate limit: a refusal (401,
  403, 413, 400, 429) uses nothing. Tokens have no rate limit (limits are per vault key).
- A token whose check may fetch keys is checked in a worker thread, never on the event loop.
"""

from __future__ import annotations

import json
import logging
import os
import re
import urllib.parse
from typing import Any, Awaitable, Callable, Dict, Iterable, List, Mapping, Optional, Tuple, Union

from ._core import (INSUFFICIENT_PERMISSIONS, MALFORMED, Verdict, Verifier, key_from_headers,
                    permits)
from .limit import Decision, Limiter, RateLimit
from .oauth import configured, in_thread, looks_like_token, metadata_document
from .routing import (HEADER_MISMATCH, MISMATCH_MESSAGE, BadRouting, blank, body_matches,
                      needed_for, needed_from_headers, read_routing)

__all__ = ["APIKeyMiddleware", "STATE_KEY", "MAX_BODY_BYTES", "RATE_LIMITED",
           "needed_permissions"]

logger = logging.getLogger("mcp_key_verifier")

#: The verdict of an admitted request is at `scope["state"][STATE_KEY]`
#: (in Starlette: `request.state.mcp_key`).
STATE_KEY = "mcp_key"
#: Largest body read when tool permissions are on.
MAX_BODY_BYTES = 1024 * 1024

_REASONS = {
    MALFORMED: "the API key is malformed",
    "NOT_FOUND": "unknown API key",
    "REVOKED": "the API key was revoked",
    "EXPIRED": "the API key has expired",
}
_NO_KEY = "no API key presented (send X-API-Key or Authorization: Bearer)"
_NO_CREDENTIALS = ("no access token or API key presented (send Authorization: Bearer or "
                   "X-API-Key)")
_WELL_KNOWN = "/.well-known/oauth-protected-resource"
# A permission shown in a header must not break its quoting.
_HEADER_SAFE = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+", re.ASCII)

Scope = Dict[str, Any]
Message = Dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def needed_permissions(message: Any) -> List[Tuple[str, ...]]:
    """What a JSON-RPC message (or batch) needs: a list of alternatives, each satisfied by
    any one of its permissions. `tools/call` of X needs `tools:call` or `tools:call:X`;
    `resources/read` needs `resources:read`; `prompts/get` of P needs `prompts:get` or
    `prompts:get:P`; everything else needs nothing extra."""
    needs: List[Tuple[str, ...]] = []
    for msg in message if isinstance(message, list) else [message]:
        if not isinstance(msg, dict) or not isinstance(msg.get("method"), str):
            continue
        params = msg.get("params")
        name = params.get("name") if isinstance(params, dict) else None
        need = needed_for(msg["method"], name if isinstance(name, str) else None)
        if need is not None:
            needs.append(need)
    return needs


#: JSON-RPC error code of the 429 answer (a key over its rate limit).
RATE_LIMITED = -32029


def _error_body(code: int, message: str, data_code: str, **data: Any) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": None,
                       "error": {"code": code, "message": message,
                                 "data": dict({"code": data_code}, **data)}}).encode()


def _rate_limited_body(limit: RateLimit, decision: Decision) -> bytes:
    secs = decision.retry_after
    return _error_body(RATE_LIMITED, "rate limit exceeded for this API key (%s); retry after "
                       "%d s" % (limit, secs), "RATE_LIMITED", retry_after=secs)


def _log_safe(text: str) -> str:
    """A request path as it may appear in a log line: control characters (a newline would
    forge a second line) escaped, and cut to 200 characters."""
    text = text[:200]
    return "".join(c if c.isprintable() else "\\x%02x" % ord(c) if ord(c) < 256
                   else "\\u%04x" % ord(c) for c in text)


class APIKeyMiddleware:
    """Wraps an ASGI app so that only requests with a good API key reach it.

    - HTTP: the key comes from `X-API-Key` or `Authorization: Bearer` (`key_from_headers`).
      A missing, malformed, unknown, revoked or expired key gets 401 with
      `WWW-Authenticate: Bearer error="invalid_token"`; a key lacking a permission of
      `require` (or, with `tool_permissions=True`, of the JSON-RPC body) gets 403 with
      `WWW-Authenticate: Bearer error="insufficient_scope", scope="..."`. Both carry a JSON-RPC
      error body (`-32001` / `-32003`, `data.code` = the verdict code).
    - Admitted requests carry their `Verdict` at `scope["state"]["mcp_key"]`
      (Starlette/FastAPI: `request.state.mcp_key`; `.key_id`, `.name`, `.permissions`).
    - `tool_permissions=True` reads the body (at most 1 MiB, else 413; not JSON: 400) to apply
      MCP-shaped permissions, then replays it to the app unchanged. It also reads the
      `Mcp-Method`/`Mcp-Name` routing headers (MCP 2026-07-28, SEP-2243; `routing`): unusable
      ones (repeated, not ASCII, a malformed Base64 sentinel, a name-bearing method without
      `Mcp-Name`, a 2026-07-28 POST without `Mcp-Method`) get 400 with JSON-RPC `-32020` and
      `data.code` `BAD_ROUTING`; headers the body disagrees with, 400 `-32020`
      `HEADER_MISMATCH` (an edge may have authorized on them); a request without a body is
      judged from them.
    - Rate limits: a key whose entry has a `rate_limit` is limited in this process (GCRA per
      key id, docs/verifier.md "Rate limits"), counting only requests that pass every other
      check. Admitted answers carry `RateLimit-Policy` and `RateLimit`; over the limit, 429
      with `Retry-After`, the same two headers and a JSON-RPC error body (`-32029`,
      `data.code` `RATE_LIMITED`, `data.retry_after` in seconds). `limiter`: a `Limiter` to
      share between middlewares (default: one of its own); `rate_limits=False`: not enforced.
    - Websocket: the handshake is verified the same way (`require` and rate limits apply; tool
      permissions do not, as messages are not inspected); a refused handshake is closed with
      code 1008 before it is accepted, which the server turns into HTTP 403.
    - Lifespan and any other scope type pass through untouched.
    - OAuth access tokens (docs/oauth.md), with `resource` (this server's canonical URI, the
      audience tokens must carry) and `issuers` (accepted `iss` values; keys by discovery, or
      from `jwks`: a JWK Set dict or file): an `Authorization: Bearer` value shaped as a JWT
      is checked as a token (`AccessTokenVerifier`), anything else as a key. A refused token
      gets 401 `error="invalid_token"` (`data.code` `INVALID_TOKEN` or `EXPIRED`); no
      credentials at all, 401 `Bearer resource_metadata="..."` (with `scope` when `require`
      names one); every challenge names `resource_metadata`. `scope_claim` holds a token's
      permissions (default `scope`); `scopes_supported` is advertised at
      `/.well-known/oauth-protected-resource` (and that path followed by the resource's),
      served here without authentication. An admitted token's verdict has `subject` = `sub`,
      `issuer`, `permissions` = its scopes, `claims`, and `key_id` None.

    Put CORS middleware outside this one: a browser's preflight carries no key.
    """

    def __init__(self, app: Callable[..., Awaitable[None]], verifier: Verifier,
                 require: Iterable[str] = (), tool_permissions: bool = False,
                 max_body_bytes: int = MAX_BODY_BYTES, rate_limits: bool = True,
                 limiter: Optional[Limiter] = None, *, resource: Optional[str] = None,
                 issuers: Iterable[str] = (),
                 jwks: Union[None, Mapping[str, Any], str, "os.PathLike[str]"] = None,
                 scope_claim: str = "scope", scopes_supported: Iterable[str] = ()):
        if not isinstance(verifier, Verifier):
            raise TypeError("verifier must be a mcp_key_verifier.Verifier")
        if isinstance(require, str):
            require = (require,)
        self.tokens = configured(resource, issuers, jwks, scope_claim)
        self._metadata: Optional[Tuple[Tuple[str, ...], bytes]] = None
        self._resource_metadata = ""
        if self.tokens is not None:
            if isinstance(scopes_supported, str):
                scopes_supported = (scopes_supported,)
            doc = metadata_document(self.tokens.resource, self.tokens.issuers, scopes_supported)
            suffix = urllib.parse.urlsplit(self.tokens.resource).path.rstrip("/")
            paths = (_WELL_KNOWN,) + ((_WELL_KNOWN + suffix,) if suffix else ())
            self._metadata = (paths, json.dumps(doc).encode())
            self._resource_metadata = ', resource_metadata="%s"' % self.tokens.metadata_url
        self.app = app
        self.verifier = verifier
        self.require = tuple(require)
        self.tool_permissions = tool_permissions
        self.max_body_bytes = max_body_bytes
        if limiter is not None and not isinstance(limiter, Limiter):
            raise TypeError("limiter must be a mcp_key_verifier.Limiter")
        self.limiter = (Limiter() if limiter is None else limiter) if rate_limits else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope.get("type")
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        if self._metadata is not None and kind == "http" and path in self._metadata[0]:
            await self._serve_metadata(scope, send)
            return
        # Every value of each header: one sent twice gives no key (key_from_headers).
        x_api_key, authorization = [], []
        for name, value in scope.get("headers") or ():
            lname = name.lower()
            if lname == b"x-api-key":
                x_api_key.append(value.decode("latin-1"))
            elif lname == b"authorization":
                authorization.append(value.decode("latin-1"))
        key = key_from_headers(x_api_key, authorization)
        # A token comes as `Authorization: Bearer` only; X-API-Key carries keys.
        token = (key is not None and not x_api_key and self.tokens is not None
                 and looks_like_token(key))
        if token:
            verdict = self.tokens.cached(key, self.require)
            if verdict is None:
                verdict = await in_thread(self.tokens.verify, key, self.require)
        else:
            verdict = self.verifier.verify(key, self.require)
        presented = key is not None
        del key, x_api_key, authorization

        if kind == "websocket":
            decision = self._decide(verdict) if verdict.valid else None
            if not verdict.valid or (decision is not None and not decision.allowed):
                logger.info("websocket %s refused: %s (%s)", _log_safe(path),
                            "RATE_LIMITED" if verdict.valid else verdict.code, _who(verdict))
                await receive()  # websocket.connect
                await send({"type": "websocket.close", "code": 1008})
                return
            if decision is not None:
                send = _with_headers(send, decision.headers(verdict.rate_limit))
            await self.app(_with_verdict(scope, verdict), receive, send)
            return

        if not verdict.valid:
            if verdict.code == INSUFFICIENT_PERMISSIONS:
                missing = [p for p in self.require if not permits(verdict.permissions, p)]
                await self._forbidden(send, verdict, missing, path)
            elif token:
                await self._token_refused(send, verdict)
            else:
                await self._unauthorized(send, verdict, path, no_key=not presented)
            return

        if self.tool_permissions:
            # The routing headers first (SEP-2243), before the body is read: as the Rust layer.
            try:
                route = read_routing(scope.get("method"), scope.get("headers") or ())
            except BadRouting as exc:
                await _respond(send, 400, _error_body(HEADER_MISMATCH, exc.reason, "BAD_ROUTING"))
                return
            body = await self._read_body(scope, receive, send)
            if body is None:
                return
            if blank(body):
                # No body: the headers, when sent, say what the request needs.
                needs = needed_from_headers(route)
            else:
                try:
                    # Strict UTF-8, as the Rust layer reads it (json.loads of bytes would take
                    # a BOM, UTF-16 and encoded surrogates).
                    message = json.loads(body.decode("utf-8"))
                except (ValueError, UnicodeDecodeError, RecursionError):
                    await _respond(send, 400, _error_body(-32700, "the body is not JSON",
                                                          "PARSE_ERROR"))
                    return
                # An edge may have authorized on the headers: the body must say the same.
                if route is not None and not body_matches(route, message):
                    await _respond(send, 400, _error_body(HEADER_MISMATCH, MISMATCH_MESSAGE,
                                                          "HEADER_MISMATCH"))
                    return
                needs = needed_permissions(message)
            missing = []
            for alternatives in needs:
                if not any(permits(verdict.permissions, p) for p in alternatives):
                    narrow = alternatives[-1]
                    if not _HEADER_SAFE.fullmatch(narrow):
                        narrow = alternatives[0]
                    if narrow not in missing:
                        missing.append(narrow)
            if missing:
                await self._forbidden(send, verdict, missing, path)
                return
            receive = _replay(body, receive)

        # Last: only a request that passed every other check uses its key's quota.
        decision = self._decide(verdict)
        if decision is not None:
            headers = decision.headers(verdict.rate_limit)
            if not decision.allowed:
                logger.info("%s refused: RATE_LIMITED for key id %s (%s)", _log_safe(path),
                            verdict.key_id, verdict.rate_limit)
                await _respond(send, 429, _rate_limited_body(verdict.rate_limit, decision),
                               [(n.encode(), v.encode()) for n, v in headers])
                return
            send = _with_headers(send, headers)

        await self.app(_with_verdict(scope, verdict), receive, send)

    def _decide(self, verdict: Verdict) -> Optional[Decision]:
        """The rate-limit decision for a valid key, or None when it is not limited (a token
        never is: its verdict has no key id nor rate limit)."""
        if self.limiter is None or verdict.rate_limit is None or verdict.key_id is None:
            return None
        return self.limiter.check(verdict.key_id, verdict.rate_limit)

    async def _serve_metadata(self, scope: Scope, send: Send) -> None:
        """The protected resource metadata (RFC 9728), public: a client reads it to learn
        where to get a token. Browsers' clients read it too, hence the CORS header."""
        assert self._metadata is not None
        cors = [(b"access-control-allow-origin", b"*")]
        if scope.get("method") not in ("GET", "HEAD"):
            await _respond(send, 405, _error_body(-32600, "only GET reads the resource metadata",
                                                  "METHOD_NOT_ALLOWED"),
                           [(b"allow", b"GET, HEAD")] + cors)
            return
        body = self._metadata[1]
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode()),
                                (b"cache-control", b"public, max-age=300")] + cors})
        await send({"type": "http.response.body",
                    "body": b"" if scope.get("method") == "HEAD" else body})

    async def _read_body(self, scope: Scope, receive: Receive, send: Send) -> Optional[bytes]:
        """The whole body, or None after answering 413 (too large) or on disconnect."""
        for name, value in scope.get("headers") or ():
            if name.lower() == b"content-length":
                try:
                    too_big = int(value) > self.max_body_bytes
                except ValueError:
                    too_big = False
                if too_big:
                    await self._too_large(send)
                    return None
        chunks = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            if message["type"] != "http.request":
                continue
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                await self._too_large(send)
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _too_large(self, send: Send) -> None:
        await _respond(send, 413, _error_body(
            -32600, "the request body is larger than %d bytes" % self.max_body_bytes,
            "BODY_TOO_LARGE"))

    async def _unauthorized(self, send: Send, verdict: Verdict, path: str, no_key: bool) -> None:
        if no_key and self.tokens is not None:
            # No credentials at all: RFC 9728 §5.1, naming where to get a token (and what
            # scope, when every request needs one) rather than an error.
            scope = [p for p in self.require if _HEADER_SAFE.fullmatch(p)]
            challenge = 'Bearer resource_metadata="%s"' % self.tokens.metadata_url
            if scope:
                challenge += ', scope="%s"' % " ".join(scope)
            await _respond(send, 401, _error_body(-32001, _NO_CREDENTIALS, verdict.code),
                           [(b"www-authenticate", challenge.encode())])
            return
        reason = _NO_KEY if no_key else _REASONS.get(verdict.code, "the API key was refused")
        # Only refusals of an identified key are logged (as `serve` does): anyone can send
        # unknown or malformed keys, and must not be able to flood the log with them.
        if verdict.key_id is not None:
            logger.info("%s refused: %s (key id %s)", _log_safe(path), verdict.code,
                        verdict.key_id)
        await _respond(send, 401, _error_body(-32001, reason, verdict.code), [
            (b"www-authenticate",
             ('Bearer error="invalid_token", error_description="%s"%s'
              % (reason, self._resource_metadata)).encode()),
        ])

    async def _token_refused(self, send: Send, verdict: Verdict) -> None:
        # Not logged: anyone can send tokens that fail, and must not flood the log with them.
        reason = (verdict.reason or "the access token was refused").replace('"', "'")
        reason = reason.replace("\\", "'")
        await _respond(send, 401, _error_body(-32001, reason, verdict.code), [
            (b"www-authenticate",
             ('Bearer error="invalid_token", error_description="%s"%s'
              % (reason, self._resource_metadata)).encode()),
        ])

    async def _forbidden(self, send: Send, verdict: Verdict, missing: List[str], path: str) -> None:
        what = ("the access token lacks the scope" if verdict.issuer is not None
                else "the API key lacks the permission")
        reason = "%s%s: %s" % (what, "s" if len(missing) > 1 else "", " ".join(missing))
        logger.info("%s refused: %s for %s (needs %s)", _log_safe(path),
                    INSUFFICIENT_PERMISSIONS, _who(verdict), " ".join(missing))
        await _respond(send, 403, _error_body(-32003, reason, INSUFFICIENT_PERMISSIONS), [
            (b"www-authenticate",
             ('Bearer error="insufficient_scope", scope="%s"%s'
              % (" ".join(missing), self._resource_metadata)).encode()),
        ])


def _who(verdict: Verdict) -> str:
    """A log line's name for whoever was judged: a key id, or a token's subject and issuer."""
    if verdict.issuer is not None:
        return "token sub %s of %s" % (_log_safe(verdict.subject or "-"),
                                       _log_safe(verdict.issuer))
    return "key id %s" % (verdict.key_id or "-")


def _with_verdict(scope: Scope, verdict: Verdict) -> Scope:
    # A new scope and a new state dict: the server may share its state dict between requests.
    scope = dict(scope)
    state = dict(scope.get("state") or {})
    state[STATE_KEY] = verdict
    scope["state"] = state
    return scope


def _with_headers(send: Send, headers: List[Tuple[str, str]]) -> Send:
    """`send` adding `headers` to the response's start (or a websocket's accept)."""
    raw = [(n.encode(), v.encode()) for n, v in headers]

    async def sending(message: Message) -> None:
        if message.get("type") in ("http.response.start", "websocket.accept"):
            message = dict(message)
            message["headers"] = list(message.get("headers") or ()) + raw
        await send(message)

    return sending


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _respond(send: Send, status: int, body: bytes,
                   headers: Optional[List[Tuple[bytes, bytes]]] = None) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                            (b"cache-control", b"no-store")] + (headers or [])})
    await send({"type": "http.response.body", "body": body})
