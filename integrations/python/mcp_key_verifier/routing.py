"""The MCP routing headers under tool permissions: `Mcp-Method` and `Mcp-Name` (MCP 2026-07-28,
SEP-2243), read from raw header values and checked against the JSON-RPC body.

The rules of the Rust crate's `mcp_key_verifier::routing` and of its tower layer, word for word
in the answers (tests/vectors/verifier/routing.json holds all three to them):

- `Mcp-Method` sent more than once, or with a byte other than visible ASCII, SP or HTAB: 400;
  likewise `Mcp-Name` and `MCP-Protocol-Version` when `Mcp-Method` is present (without it
  neither is read). Values are trimmed of SP and HTAB.
- `Mcp-Name` is required with `tools/call`, `prompts/get` and `resources/read`, and may come in
  the Base64 sentinel form `=?base64?<canonical base64 of UTF-8>?=`; a malformed sentinel: 400.
- A POST claiming `MCP-Protocol-Version: 2026-07-28` (one value) without `Mcp-Method`: 400.
- A body, when one comes, must say what the headers say (the method; the name, or the `uri` of
  `resources/read`): else 400 `HEADER_MISMATCH`. A batch never matches them. Without a body,
  the headers decide what the request needs.

Invariant: fail closed. A header/body disagreement is refused, so a client cannot name one tool
in the headers (where an edge proxy may have authorized it) and call another in the body.
Standard library only; no function here raises on any input but `BadRouting`.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

__all__ = ["CHECKED_VERSIONS", "HEADER_MISMATCH", "MISMATCH_MESSAGE", "BadRouting", "Routing",
           "blank", "body_matches", "decode_name", "method_missing", "needed_for",
           "needed_from_headers", "read_routing", "routing"]

#: The protocol versions whose clients must send `Mcp-Method` on every POST (an allowlist).
CHECKED_VERSIONS = ("2026-07-28",)
#: JSON-RPC error code of a refusal for the routing headers (SEP-2243).
HEADER_MISMATCH = -32020
#: The message of a `HEADER_MISMATCH` refusal.
MISMATCH_MESSAGE = "the Mcp-Method/Mcp-Name headers do not match the request body"

_METHOD_REPEATED = "the Mcp-Method header is repeated or not ASCII"
_NAME_REPEATED = "the Mcp-Name header is repeated or not ASCII"
_VERSION_REPEATED = "the MCP-Protocol-Version header is repeated or not ASCII"
_BAD_SENTINEL = "the Mcp-Name header carries a malformed base64 sentinel"
_NAME_MISSING = "the Mcp-Name header is required with this Mcp-Method"
_METHOD_MISSING = ("the Mcp-Method header is required on every POST with MCP-Protocol-Version "
                   "2026-07-28")

# Visible ASCII, SP and HTAB: a readable header value.
_READABLE = re.compile(rb"[\t\x20-\x7e]*")
_PREFIX, _SUFFIX = "=?base64?", "?="
# The body's member that Mcp-Name mirrors, per name-bearing method.
_NAME_KEY = {"tools/call": "name", "prompts/get": "name", "resources/read": "uri"}
# What Rust's `trim_ascii` removes: a body of these bytes only is no body.
_ASCII_WHITESPACE = b" \t\n\r\x0c"


class BadRouting(ValueError):
    """The routing headers cannot be used: answered 400, JSON-RPC `-32020`, `data.code`
    `BAD_ROUTING`, with `reason` as the message."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class Routing:
    """The routing headers of one request: `method` (`Mcp-Method`) and `name` (`Mcp-Name`,
    decoded from the sentinel form; None when not sent)."""

    __slots__ = ("method", "name")

    def __init__(self, method: str, name: Optional[str]):
        self.method = method
        self.name = name

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Routing)
                and (self.method, self.name) == (other.method, other.name))

    def __repr__(self) -> str:
        return "Routing(method=%r, name=%r)" % (self.method, self.name)


def _one(values: Sequence[bytes], why: str) -> Optional[str]:
    """The one value of a header, trimmed of SP and HTAB; None when absent."""
    if not values:
        return None
    if len(values) > 1 or not _READABLE.fullmatch(values[0]):
        raise BadRouting(why)
    return values[0].decode("ascii").strip(" \t")


def method_missing(method: Sequence[bytes], version: Sequence[bytes]) -> bool:
    """Whether a request claiming a `CHECKED_VERSIONS` protocol version (exactly one
    `MCP-Protocol-Version` value) sent no `Mcp-Method`: on a POST, answered 400."""
    return (not method and len(version) == 1
            and version[0].strip(_ASCII_WHITESPACE) in (v.encode() for v in CHECKED_VERSIONS))


def decode_name(raw: str) -> Optional[str]:
    """`=?base64?...?=` decoded (canonical Base64 of UTF-8 only); any other value as it is;
    None for a malformed sentinel."""
    if not raw.startswith(_PREFIX) or not raw[len(_PREFIX):].endswith(_SUFFIX):
        return raw
    payload = raw[len(_PREFIX):-len(_SUFFIX)]
    try:
        data = base64.b64decode(payload.encode("ascii"), validate=True)
    except (binascii.Error, ValueError):
        return None
    # The encoder writes only the canonical form; another spelling of the same bytes could
    # match a body value by accident.
    if base64.b64encode(data).decode("ascii") != payload:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def routing(method: Sequence[bytes], name: Sequence[bytes],
            version: Sequence[bytes]) -> Optional[Routing]:
    """The routing headers from every value of `Mcp-Method`, `Mcp-Name` and
    `MCP-Protocol-Version` (raw bytes, in order); None when no `Mcp-Method` was sent.
    Raises `BadRouting` for a header that is repeated or unreadable, a malformed sentinel, or a
    name-bearing method without `Mcp-Name`."""
    m = _one(method, _METHOD_REPEATED)
    if m is None:
        return None
    raw = _one(name, _NAME_REPEATED)
    n = None
    if raw is not None:
        n = decode_name(raw)
        if n is None:
            raise BadRouting(_BAD_SENTINEL)
    if n is None and m in _NAME_KEY:
        raise BadRouting(_NAME_MISSING)
    _one(version, _VERSION_REPEATED)
    return Routing(m, n)


def read_routing(http_method: Optional[str],
                 headers: Iterable[Tuple[bytes, bytes]]) -> Optional[Routing]:
    """The routing headers of a request (its HTTP method and ASGI header pairs), or None when it
    sent no `Mcp-Method`. Raises `BadRouting` as `routing` does, and for a POST that claims
    protocol 2026-07-28 without `Mcp-Method`."""
    found: Dict[bytes, List[bytes]] = {b"mcp-method": [], b"mcp-name": [],
                                       b"mcp-protocol-version": []}
    for key, value in headers:
        values = found.get(bytes(key).lower())
        if values is not None:
            values.append(bytes(value))
    method, name, version = (found[k] for k in (b"mcp-method", b"mcp-name",
                                                b"mcp-protocol-version"))
    if http_method == "POST" and method_missing(method, version):
        raise BadRouting(_METHOD_MISSING)
    return routing(method, name, version)


def needed_for(method: str, name: Optional[str]) -> Optional[Tuple[str, ...]]:
    """What one message needs beyond the always-required permissions (alternatives, any one of
    which satisfies it), or None when the method needs nothing more."""
    if method == "tools/call":
        return ("tools:call", "tools:call:" + name) if name is not None else ("tools:call",)
    if method == "resources/read":
        return ("resources:read",)
    if method == "prompts/get":
        return ("prompts:get", "prompts:get:" + name) if name is not None else ("prompts:get",)
    return None


def needed_from_headers(r: Optional[Routing]) -> List[Tuple[str, ...]]:
    """What a request without a body needs, from its routing headers (nothing without them)."""
    need = needed_for(r.method, r.name) if r is not None else None
    return [need] if need is not None else []


def body_matches(r: Routing, message: Any) -> bool:
    """Whether the body's message says what the headers say: the same method and, for a
    name-bearing method, the same name (`uri` for `resources/read`). A batch never matches."""
    if not isinstance(message, dict):
        return False
    method = message.get("method")
    if not isinstance(method, str) or method != r.method:
        return False
    key = _NAME_KEY.get(method)
    if key is None:
        return True
    params = message.get("params")
    body_name = params.get(key) if isinstance(params, dict) else None
    return isinstance(body_name, str) and body_name == r.name


def blank(body: bytes) -> bool:
    """Whether a body is no body: empty, or ASCII whitespace only."""
    return not body.strip(_ASCII_WHITESPACE)
