"""Reads mcp-key-manager verifier files and verifies presented API keys against them.

Owns the verifier format (docs/verifier.md) on the Python side: parsing with every reject rule,
the verification order, header parsing, and reloading the file when it is replaced.

Invariants:
- A presented key is never stored, logged, or put in an exception: it is hashed with
  HMAC-SHA256 under the file's hash key and the digest compared in constant time
  (`hmac.compare_digest`). An unknown id costs the same HMAC as a wrong secret.
- A loaded state is immutable and replaced by one attribute assignment, so `verify` reads a
  consistent snapshot from any thread or task without taking a lock.
- A reload never installs a broken file, nor one whose `revision` is lower than the loaded one,
  nor one of the same revision and another `save_digest` (a conflict).
- With a trust pin, no byte of a file is parsed before its signature line has been checked:
  the first line after `{`, by a vault whose fingerprint is the pin, over the rest of the file.
- The core needs the standard library only; `cryptography` is imported the first time a trust
  pin is given (a signature check needs Ed25519).
"""

from __future__ import annotations

import base64
import binascii
import datetime as _dt
import hashlib
import hmac
import json
import logging
import os
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, Mapping, Optional, Sequence, Tuple, Union

from .limit import RateLimit

__all__ = [
    "VALID",
    "MALFORMED",
    "SHAPE",
    "CHECKSUM",
    "KEY_PATTERN",
    "NOT_FOUND",
    "REVOKED",
    "EXPIRED",
    "INVALID_TOKEN",
    "INSUFFICIENT_PERMISSIONS",
    "CODES",
    "Verdict",
    "Verifier",
    "VerifierError",
    "fingerprint",
    "key_from_headers",
    "permits",
]

logger = logging.getLogger("mcp_key_verifier")

MALFORMED = "MALFORMED"
NOT_FOUND = "NOT_FOUND"
REVOKED = "REVOKED"
EXPIRED = "EXPIRED"
#: An access token that fails a check of docs/oauth.md other than its expiry.
INVALID_TOKEN = "INVALID_TOKEN"
INSUFFICIENT_PERMISSIONS = "INSUFFICIENT_PERMISSIONS"
VALID = "VALID"
#: The verdict codes, in the order the checks are made (the CLI's order).
CODES = (MALFORMED, NOT_FOUND, REVOKED, EXPIRED, INSUFFICIENT_PERMISSIONS, VALID)
#: Why a key is MALFORMED: not of any key's shape, or a format-2 key whose checksum does not
#: match (a typo), told without looking anything up.
SHAPE = "SHAPE"
CHECKSUM = "CHECKSUM"
#: One regular expression for every key of format 1 and format 2, as a whole word (what a
#: secret scanner looks for; keys imported from the Python tool have no shape of their own).
KEY_PATTERN = (r"\b(?:mcp_[0-9a-f]{16}_[0-9a-f]{64}"
               r"|(?:[a-z][a-z0-9]{0,15}_)?mkm_[0-9a-f]{16}_[0-9A-Za-z]{49})\b")

FORMAT = "mcp-key-verifier"
#: Largest verifier file read (the Rust reader's bound: about 200 bytes per key).
MAX_FILE_BYTES = 256 * 1024 * 1024
#: How often a file-backed verifier looks at its file, at most.
RELOAD_INTERVAL = 0.25

_unhexlify = binascii.unhexlify
_LEGACY = re.compile(r"[A-Za-z0-9_\-.~+/=]{16,256}", re.ASCII)
# Format 2's layout: a head of 1 to 25 legacy characters (`mkm_` or `<org>_mkm_` in a good key),
# the 16-hex id, `_`, 43 base62 characters of secret and 6 of checksum (docs/verifier.md).
_LAYOUT2 = re.compile(r"([A-Za-z0-9_\-.~+/=]{1,25})([0-9a-f]{16})_[0-9A-Za-z]{49}", re.ASCII)
# `mkm_` or `<org>_mkm_` (`mcp` is no organisation prefix: a key starting with `mcp_` is judged
# as format 1 before this is consulted).
_HEAD2 = re.compile(r"(?:[a-z][a-z0-9]{0,15}_)?mkm_", re.ASCII)
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_crc32 = binascii.crc32
_HEX64 = re.compile(r"[0-9a-fA-F]{64}", re.ASCII)
_SAVE_DIGEST = re.compile(r"[0-9a-f]{64}", re.ASCII)
_B64 = re.compile(r"[A-Za-z0-9+/]*={0,2}", re.ASCII)
_TIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})",
    re.ASCII,
)
_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)

#: What a signature signs: these bytes, then the file without its signature line.
SIGNATURE_CONTEXT = b"mcp-key-verifier/signature/v1\n"
_SIGNED_PREFIX = b'{\n  "signature": "'
# The whole signature line, exactly: 32-byte public key and 64-byte signature in padded base64.
_SIGNATURE_LINE = re.compile(
    rb'\{\n  "signature": "ed25519:([A-Za-z0-9+/]{43}=):([A-Za-z0-9+/]{86}==)",\n')
_FINGERPRINT = re.compile(r"mkv1:[a-z2-7]{32}", re.ASCII)


#: The largest revision a verifier file may carry (2^53-1, what every reader holds
#: exactly; a writer pushed to a saturated revision would freeze its readers).
MAX_REVISION = 2**53 - 1


class VerifierError(ValueError):
    """A verifier file that cannot be used: unreadable, not JSON, or breaking a format rule.

    The message names the file and the problem (at most an entry's id), never a key.
    """


@dataclass(frozen=True)
class Verdict:
    """The outcome of one verification.

    `key_id`, `name`, `permissions`, `expires_at` and `rate_limit` describe the matched entry;
    they are empty for `MALFORMED` and `NOT_FOUND`. `name` is set only when the file carries
    names (`publish --names`). `expires_at` is a UTC `datetime` or None (never expires);
    `rate_limit` a `RateLimit` or None (no limit).
    """

    valid: bool
    code: str
    key_id: Optional[str] = None
    name: Optional[str] = None
    permissions: Tuple[str, ...] = ()
    expires_at: Optional[_dt.datetime] = None
    #: Why a MALFORMED key is malformed (`SHAPE` or `CHECKSUM`); for a refused access token
    #: (`INVALID_TOKEN`, `EXPIRED`), why it was refused; None otherwise.
    reason: Optional[str] = None
    #: The entry's `rate_limit` (`APIKeyMiddleware` enforces it); None: no limit.
    rate_limit: Optional[RateLimit] = None
    #: Who was admitted: a key's id, or an access token's `sub` (None when it has none).
    subject: Optional[str] = None
    #: An access token's `iss`; None for a key (docs/oauth.md).
    issuer: Optional[str] = None
    #: An accepted access token's claims (read-only); None for a key. Left out of `repr`,
    #: equality and hashing: claims may name a person.
    claims: Optional[Mapping[str, Any]] = field(default=None, repr=False, compare=False,
                                                hash=False)

    def __post_init__(self) -> None:
        if self.subject is None and self.issuer is None and self.key_id is not None:
            object.__setattr__(self, "subject", self.key_id)

    def __bool__(self) -> bool:
        return self.valid


_MALFORMED_VERDICT = Verdict(False, MALFORMED, reason=SHAPE)
_CHECKSUM_VERDICT = Verdict(False, MALFORMED, reason=CHECKSUM)
_NOT_FOUND_VERDICT = Verdict(False, NOT_FOUND)


def _checksum(body: bytes) -> str:
    """Six base62 digits of the CRC-32 of `body`, most significant first."""
    v = _crc32(body)
    out = ""
    for _ in range(6):
        v, d = divmod(v, 62)
        out = _BASE62[d] + out
    return out


class _Entry:
    """One key of a loaded file. Its verdicts are made once and shared: they are immutable."""

    __slots__ = ("id", "hash", "revoked", "expires_ns", "perms", "valid", "revoked_v",
                 "expired_v", "insufficient_v")

    def __init__(self, key_id, digest, revoked, expires_ns, expires_dt, permissions, name,
                 rate_limit=None):
        self.id = key_id
        self.hash = digest
        self.revoked = revoked
        self.expires_ns = expires_ns
        self.perms = frozenset(permissions)
        info = (key_id, name, tuple(permissions), expires_dt)
        self.valid = Verdict(True, VALID, *info, rate_limit=rate_limit)
        self.revoked_v = Verdict(False, REVOKED, *info, rate_limit=rate_limit)
        self.expired_v = Verdict(False, EXPIRED, *info, rate_limit=rate_limit)
        self.insufficient_v = Verdict(False, INSUFFICIENT_PERMISSIONS, *info,
                                      rate_limit=rate_limit)


class _State:
    """An immutable parsed file."""

    __slots__ = ("mac", "by_id", "by_hash", "revision", "save_digest", "count")

    def __init__(self, hash_key: bytes, entries: Sequence[_Entry], revision: int,
                 save_digest: Optional[str] = None):
        # Keyed once: each verification copies this state instead of re-deriving the pads
        # (copy() is safe to call from many threads at once).
        self.mac = hmac.new(hash_key, digestmod=hashlib.sha256)
        self.by_id: Dict[str, _Entry] = {}
        self.by_hash: Dict[bytes, _Entry] = {}
        for e in entries:
            self.by_id[e.id] = e
            # A legacy key is found by its keyed hash, whatever its entry's id looks like.
            self.by_hash.setdefault(e.hash, e)
        self.revision = revision
        self.save_digest = save_digest
        self.count = len(entries)


def _parse_time(value: Any, what: str) -> Tuple[int, _dt.datetime]:
    """An RFC 3339 time as (nanoseconds since the epoch, UTC datetime to the microsecond)."""
    m = _TIME.fullmatch(value) if isinstance(value, str) else None
    if m is None:
        raise VerifierError("%s is not an RFC 3339 time" % what)
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    frac, zone = m.group(7), m.group(8)
    leap = second == 60  # RFC 3339 allows a leap second; it is the next second's instant
    try:
        t = _dt.datetime(year, month, day, hour, minute, 59 if leap else second,
                         tzinfo=_dt.timezone.utc)
    except ValueError:
        raise VerifierError("%s is not a calendar date and time" % what) from None
    if zone not in ("Z", "z"):
        oh, om = int(zone[1:3]), int(zone[4:6])
        if oh > 23 or om > 59:
            raise VerifierError("%s has an impossible offset" % what)
        offset = _dt.timedelta(hours=oh, minutes=om)
        t = t - offset if zone[0] == "+" else t + offset
    if leap:
        t += _dt.timedelta(seconds=1)
    nanos = int(frac[1:].ljust(9, "0")) if frac else 0
    seconds = (t - _EPOCH) // _dt.timedelta(seconds=1)
    return seconds * 1_000_000_000 + nanos, t + _dt.timedelta(microseconds=nanos // 1000)


class _DuplicateMember(Exception):
    """A JSON object with the same member name twice (its args: the name, shown safely)."""


def _no_duplicate_members(pairs):
    """json's object_pairs_hook: the object as a dict, refusing a member written twice (json
    would keep the last, so `"status":"revoked","status":"active"` would read as active; the
    Rust and TypeScript readers refuse it too)."""
    doc = dict(pairs)
    if len(doc) != len(pairs):
        seen = set()
        for name, _ in pairs:
            if name in seen:
                shown = name if re.fullmatch(r"[A-Za-z0-9_-]{1,64}", name) else "(name not shown)"
                raise _DuplicateMember(shown)
            seen.add(name)
    return doc


def _parse_rate_limit(value: Any) -> Optional[RateLimit]:
    """An entry's `rate_limit`: exactly `{"requests": Q, "window_seconds": W}`, both JSON
    integers (not 60.0, 1e2 or true) in bounds; null or absent is no limit (as the Rust
    reader's `Option` reads it)."""
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) != {"requests", "window_seconds"}:
        raise ValueError
    return RateLimit(value["requests"], value["window_seconds"])  # checks types and bounds


def _parse(data: bytes, source: str) -> _State:
    """Parses and checks a whole file; raises VerifierError naming `source` and the problem."""

    def bad(problem: str) -> VerifierError:
        return VerifierError("%s: not a usable verifier file: %s" % (source, problem))

    try:
        doc = json.loads(data, object_pairs_hook=_no_duplicate_members)
    except _DuplicateMember as exc:
        raise bad("an object has the member %s twice" % exc) from None
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        # RecursionError: a file of "[[[[…" deeper than the interpreter's stack.
        raise bad("not JSON (%s)" % type(exc).__name__) from None
    if not isinstance(doc, dict):
        raise bad("the top level is not a JSON object")
    if doc.get("format") != FORMAT:
        raise bad("format is not %r" % FORMAT)
    version = doc.get("version")
    if type(version) is not int or version != 1:
        raise bad("version is not 1 (this reader knows version 1 only)")
    if doc.get("algorithm") != "hmac-sha256":
        raise bad("algorithm is not 'hmac-sha256'")
    hk = doc.get("hash_key")
    if not isinstance(hk, str) or len(hk) % 4 or not _B64.fullmatch(hk):
        raise bad("hash_key is not padded standard base64")
    try:
        hash_key = base64.b64decode(hk, validate=True)
    except (binascii.Error, ValueError):
        raise bad("hash_key is not padded standard base64") from None
    if len(hash_key) != 32:
        raise bad("hash_key is not 32 bytes")
    if base64.b64encode(hash_key).decode("ascii") != hk:
        raise bad("hash_key is not canonical base64 (non-zero trailing bits)")
    try:
        _parse_time(doc.get("generated_at"), "generated_at")
    except VerifierError as exc:
        raise bad(str(exc)) from None
    revision = doc.get("revision", 0)
    if type(revision) is not int or revision < 0 or revision > MAX_REVISION:
        raise bad("revision is not an integer from 0 to 2^53-1")
    save_digest = doc.get("save_digest")
    if save_digest is not None and not (isinstance(save_digest, str)
                                        and _SAVE_DIGEST.fullmatch(save_digest)):
        raise bad("save_digest is not 64 lowercase hex characters")
    keys = doc.get("keys")
    if not isinstance(keys, list):
        raise bad("keys is not a list")
    entries = []
    seen = set()
    for i, k in enumerate(keys):
        if not isinstance(k, dict):
            raise bad("entry %d is not an object" % i)
        key_id = k.get("id")
        if not isinstance(key_id, str):
            raise bad("entry %d has no id" % i)
        shown = key_id if re.fullmatch(r"[A-Za-z0-9_-]{1,64}", key_id) else "#%d" % i
        if key_id in seen:
            raise bad("the id %s appears more than once" % shown)
        seen.add(key_id)
        h = k.get("hash")
        if not isinstance(h, str) or not _HEX64.fullmatch(h):
            raise bad("entry %s: hash is not 64 hex characters" % shown)
        status = k.get("status")
        if not isinstance(status, str):
            raise bad("entry %s: status is not a string" % shown)
        expires = k.get("expires_at")
        if expires is None:
            expires_ns, expires_dt = None, None
        else:
            try:
                expires_ns, expires_dt = _parse_time(expires, "expires_at")
            except VerifierError as exc:
                raise bad("entry %s: %s" % (shown, exc)) from None
        perms = k.get("permissions", [])
        if not isinstance(perms, list) or not all(isinstance(p, str) for p in perms):
            raise bad("entry %s: permissions is not a list of strings" % shown)
        name = k.get("name")
        if name is not None and not isinstance(name, str):
            raise bad("entry %s: name is not a string" % shown)
        try:
            rate_limit = _parse_rate_limit(k.get("rate_limit"))
        except ValueError:
            raise bad('entry %s: rate_limit is not {"requests": 1 to 1,000,000,000, '
                      '"window_seconds": 1 to 86,400} with JSON integers' % shown) from None
        entries.append(_Entry(key_id, bytes.fromhex(h), status == "revoked", expires_ns,
                              expires_dt, perms, name, rate_limit))
    return _State(hash_key, entries, revision, save_digest)


def fingerprint(public_key: bytes) -> str:
    """The fingerprint of a vault's Ed25519 public key (32 raw bytes), as `init`, `slot list`
    and `check` print it and as `trust=` takes it: `mkv1:` and the lowercase, unpadded base32
    of the first 20 bytes of its SHA-256 (32 characters)."""
    public_key = bytes(public_key)
    if len(public_key) != 32:
        raise ValueError("an Ed25519 public key is 32 bytes, not %d" % len(public_key))
    b32 = base64.b32encode(hashlib.sha256(public_key).digest()[:20]).decode("ascii")
    return "mkv1:" + b32.lower()


_ed25519_public_key: Any = None


def _require_ed25519() -> None:
    """Imports Ed25519 from `cryptography` (once): only readers given a trust pin need it."""
    global _ed25519_public_key
    if _ed25519_public_key is not None:
        return
    try:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    except ImportError as exc:
        raise ImportError(
            "a trust pin needs the 'cryptography' package to check Ed25519 signatures: "
            "pip install 'mcp-key-verifier[trust]'") from exc
    _ed25519_public_key = Ed25519PublicKey


def _pin(trust: Optional[str]) -> Optional[str]:
    """A trust pin as compared: lowercased, without surrounding whitespace. An empty pin is
    still a pin (it matches nothing): only None means no check."""
    if trust is None:
        return None
    if not isinstance(trust, str):
        raise TypeError("trust must be a vault fingerprint (a str, mkv1:...) or None")
    _require_ed25519()
    return trust.strip().lower()


def _check_signature(data: bytes, pin: str, source: str) -> None:
    """Raises VerifierError unless `data` starts with a signature line by the vault whose
    fingerprint is `pin`, over the rest of the file (docs/verifier.md, "Signatures and trust
    pins"). Runs before anything of the file is parsed."""

    def refused(problem: str) -> VerifierError:
        return VerifierError("%s: not a trusted verifier file: %s" % (source, problem))

    if not data.startswith(_SIGNED_PREFIX):
        raise refused("it is not signed (it does not start with a signature line)")
    m = _SIGNATURE_LINE.match(data)
    if m is None:
        raise refused("the signature line is malformed")
    public_key = base64.b64decode(m.group(1))
    signature = base64.b64decode(m.group(2))
    if (base64.b64encode(public_key) != m.group(1)
            or base64.b64encode(signature) != m.group(2)):
        raise refused("the signature line is malformed (not canonical base64)")
    signer = fingerprint(public_key)
    if signer != pin:
        shown = pin if _FINGERPRINT.fullmatch(pin) else (
            "pin (which is not a fingerprint: mkv1: and 32 characters a-z, 2-7)")
        raise refused("it is signed by the vault %s, not by the trusted %s" % (signer, shown))
    unsigned = b"{\n" + data[m.end():]
    try:
        _ed25519_public_key.from_public_bytes(public_key).verify(
            signature, SIGNATURE_CONTEXT + unsigned)
    except Exception:  # InvalidSignature, or a public key that is not a curve point
        raise refused("the signature does not verify (the file was changed after it was "
                      "signed)") from None


def _load(data: bytes, source: str, pin: Optional[str]) -> _State:
    if pin is not None:
        _check_signature(data, pin, source)
    return _parse(data, source)


#: Permissions with a name form: holding one grants `<it>:<NAME>` for every NAME.
_NAMED = ("tools:call", "prompts:get")


def _granted_by_broader(held, required: str) -> bool:
    for broad in _NAMED:
        if required.startswith(broad) and required[len(broad):len(broad) + 1] == ":":
            return broad in held
    return False


def permits(held: Iterable[str], required: str) -> bool:
    """Whether a key holding the permissions `held` has `required` (docs/verifier.md): it holds
    it exactly, or `required` is `tools:call:NAME` and it holds `tools:call`, or
    `prompts:get:NAME` and it holds `prompts:get`. Otherwise matching is exact and
    case-sensitive; a narrow permission never grants a broad one (`resources:read` has no name
    form). `Verifier.verify` and the middleware use this rule."""
    held = held if isinstance(held, (set, frozenset)) else frozenset(held)
    return required in held or _granted_by_broader(held, required)


_HeaderValue = Union[None, str, Sequence[str]]
_KEY_CHARS = re.compile(r"[\x21-\x7e]+", re.ASCII)


def _one(value: _HeaderValue) -> Tuple[bool, Optional[str]]:
    """(usable, value) of a header given as None, one value, or a list of every value: a header
    sent more than once is not usable."""
    if value is None or isinstance(value, str):
        return True, value
    values = list(value)
    if len(values) > 1:
        return False, None
    return True, (values[0] if values else None)


def key_from_headers(x_api_key: _HeaderValue, authorization: _HeaderValue) -> Optional[str]:
    """The presented key from `X-API-Key` or `Authorization: Bearer`, or None
    (docs/verifier.md, "Header rule").

    Each header is None (absent), a str (sent once) or a list of every value it was sent with.
    A header sent two or more times gives None (ambiguous, whichever the other is). When
    `X-API-Key` is present it alone decides; otherwise `Authorization` must be the scheme
    `bearer` (any case), one or more SP/HTAB, and the key. Only SP and HTAB are trimmed; the key
    must be non-empty visible ASCII (no whitespace, control or non-ASCII character).
    """
    ok_x, x = _one(x_api_key)
    ok_a, auth = _one(authorization)
    if not (ok_x and ok_a):
        return None

    def clean(s: str) -> Optional[str]:
        s = s.strip(" \t")
        return s if _KEY_CHARS.fullmatch(s) else None

    if x is not None:
        return clean(x)
    if auth is None:
        return None
    auth = auth.strip(" \t")
    cut = min((i for i in (auth.find(" "), auth.find("\t")) if i >= 0), default=-1)
    if cut < 0 or auth[:cut].lower() != "bearer":
        return None
    return clean(auth[cut + 1:])


class Verifier:
    """Verifies presented keys against a verifier file.

    Made with `Verifier.from_file(path)` (reloads when the file is replaced) or
    `Verifier.from_json(bytes)` (a fixed snapshot); with `trust="mkv1:..."`, only files signed
    by the vault of that fingerprint are used. `verify` may be called from any number of
    threads and asyncio tasks at once.
    """

    def __init__(self, state: _State, path: Optional[str] = None,
                 signature: Optional[Tuple[int, int, int]] = None,
                 on_reload_error: Optional[Callable[[VerifierError], None]] = None,
                 reload_interval: float = RELOAD_INTERVAL, trust: Optional[str] = None):
        self._state = state
        self._path = path
        self._sig = signature
        self._pin = trust
        self._on_reload_error = on_reload_error
        self._interval = reload_interval
        self._next_check = time.monotonic() + reload_interval if path else float("inf")
        self._lock = threading.Lock()
        self._reported_sig: Any = None

    # -- construction ------------------------------------------------------------------------

    @classmethod
    def from_file(cls, path, *, trust: Optional[str] = None,
                  on_reload_error: Optional[Callable[[VerifierError], None]] = None,
                  reload_interval: float = RELOAD_INTERVAL) -> "Verifier":
        """Loads `path` and watches it: at most every `reload_interval` seconds (0.25), a
        `verify` call stats the path and re-reads the file if its (mtime, size, inode) changed.
        A new file that is broken, whose `revision` is lower than the loaded one, or whose
        `save_digest` differs from the loaded one's at the same revision (a conflict) is not
        used: the last good state stays and `on_reload_error(error)` is called (by default
        the error is logged on the `mcp_key_verifier` logger at WARNING).

        `trust`: the fingerprint of the vault whose files to accept (`mkv1:...`, as
        `mcp-key-manager init`, `slot list` and `check` print it; compared lowercased, without
        surrounding whitespace). Every file, the first and each reloaded one, must then start
        with a signature line by that vault over the rest of the file; any other (unsigned,
        signed by another vault, changed after signing) is refused like a broken one. Needs
        the `cryptography` package (`pip install 'mcp-key-verifier[trust]'`). None: no check.

        Raises VerifierError if the file cannot be read, is not a valid verifier file or,
        with `trust`, is not signed by that vault; ImportError if `trust` is given and
        `cryptography` is missing.
        """
        pin = _pin(trust)
        path = os.fspath(path)
        sig, data = _read(path)
        return cls(_load(data, path, pin), path, sig, on_reload_error, reload_interval, pin)

    @classmethod
    def from_json(cls, data, source: str = "verifier", *,
                  trust: Optional[str] = None) -> "Verifier":
        """A verifier over the given file contents (bytes, or str encoded as UTF-8), never
        reloaded. `trust` as for `from_file`: the exact bytes must be signed by that vault."""
        pin = _pin(trust)
        if isinstance(data, str):
            data = data.encode("utf-8")
        return cls(_load(data, source, pin), trust=pin)

    # -- facts -------------------------------------------------------------------------------

    @property
    def revision(self) -> int:
        """The loaded file's revision (0 for files written without one)."""
        return self._state.revision

    @property
    def save_digest(self) -> Optional[str]:
        """The loaded file's `save_digest` (the SHA-256 of the vault file it was written
        from), or None for files written without one."""
        return self._state.save_digest

    def __len__(self) -> int:
        return self._state.count

    def __repr__(self) -> str:
        trust = "" if self._pin is None else ", trust=%r" % self._pin
        return "Verifier(path=%r, revision=%d, keys=%d%s)" % (self._path, self.revision,
                                                              len(self), trust)

    # -- verification ------------------------------------------------------------------------

    def verify(self, key: Optional[str], require: Iterable[str] = (), *,
               now: Optional[_dt.datetime] = None) -> Verdict:
        """Judges `key` (None counts as MALFORMED) needing the permissions in `require`, at
        `now` (an aware datetime; default the current time). Checks, first failure wins:
        shape and a format-2 key's checksum (MALFORMED, with `reason` SHAPE or CHECKSUM),
        lookup (NOT_FOUND), revoked (REVOKED), expiry (EXPIRED), permissions
        (INSUFFICIENT_PERMISSIONS); else VALID."""
        if time.monotonic() >= self._next_check:
            self.refresh()
        state = self._state
        if key is None:
            return _MALFORMED_VERDICT
        if not isinstance(key, str):
            raise TypeError("key must be a str or None")
        if key.startswith("mcp_"):
            # mcp_ + 16 lowercase hex + _ + 64 lowercase hex, tested on the UTF-8 bytes (which
            # the HMAC needs anyway) with C-speed methods: a regex, or str methods, took half
            # of verify's own time. unhexlify rejects any non-hex byte (also non-ASCII) but
            # accepts uppercase; bytes.islower() (the key always holds the cased "mcp") rejects
            # any uppercase letter.
            try:
                kb = key.encode()
            except UnicodeEncodeError:  # a lone surrogate
                return _MALFORMED_VERDICT
            if len(kb) != 85 or kb[20] != 95 or not kb.islower():
                return _MALFORMED_VERDICT
            try:
                _unhexlify(kb[4:20])
                _unhexlify(kb[21:])
            except (binascii.Error, ValueError):
                return _MALFORMED_VERDICT
            mac = state.mac.copy()
            mac.update(kb)
            d = mac.digest()
            e = state.by_id.get(key[4:20])
            if e is None or not hmac.compare_digest(e.hash, d):
                return _NOT_FOUND_VERDICT
        elif (m := (67 <= len(key) <= 91 and key[-50] == "_"
                    and _LAYOUT2.fullmatch(key))):
            # Format 2: the checksum first (a typo anywhere, the head too, is CHECKSUM), then
            # the head; all before any lookup.
            kb = key.encode()
            if _checksum(kb[:-6]) != key[-6:]:
                return _CHECKSUM_VERDICT
            if _HEAD2.fullmatch(m.group(1)) is None:
                return _MALFORMED_VERDICT
            mac = state.mac.copy()
            mac.update(kb)
            d = mac.digest()
            e = state.by_id.get(m.group(2))
            if e is None or not hmac.compare_digest(e.hash, d):
                return _NOT_FOUND_VERDICT
        else:
            if _LEGACY.fullmatch(key) is None or _HEAD2.match(key) is not None:
                return _MALFORMED_VERDICT
            mac = state.mac.copy()
            mac.update(key.encode())
            d = mac.digest()
            # A dict lookup on a keyed hash: its timing reveals nothing about the key.
            e = state.by_hash.get(d)
            if e is None:
                return _NOT_FOUND_VERDICT
        if e.revoked:
            return e.revoked_v
        if e.expires_ns is not None:
            if now is None:
                now_ns = time.time_ns()
            else:
                if now.tzinfo is None:
                    raise ValueError("now must be an aware datetime")
                delta = now - _EPOCH
                now_ns = ((delta.days * 86400 + delta.seconds) * 1_000_000
                          + delta.microseconds) * 1000
            if e.expires_ns <= now_ns:
                return e.expired_v
        if require:
            if isinstance(require, str):
                require = (require,)
            perms = e.perms
            for p in require:
                if p not in perms and not _granted_by_broader(perms, p):
                    return e.insufficient_v
        return e.valid

    # -- reloading ---------------------------------------------------------------------------

    def refresh(self) -> bool:
        """Looks at the file now (normally `verify` does this by itself at most every 250 ms).
        Returns True if a new state was installed. Never raises for a bad file: the last good
        state stays and the error is reported."""
        if self._path is None:
            return False
        # One thread checks; the others keep verifying with the current state meanwhile.
        if not self._lock.acquire(blocking=False):
            return False
        try:
            self._next_check = time.monotonic() + self._interval
            try:
                st = os.stat(self._path)
            except OSError as exc:
                self._report(VerifierError("%s: cannot stat the verifier file (%s); keeping "
                                           "revision %d" % (self._path, exc.strerror,
                                                            self._state.revision)),
                             ("stat", exc.errno))
                return False
            if (st.st_mtime_ns, st.st_size, st.st_ino) == self._sig:
                return False
            try:
                sig, data = _read(self._path)
            except VerifierError as exc:
                self._report(exc, ("read", str(exc)))
                return False
            if sig == self._sig:
                return False
            self._sig = sig
            try:
                state = _load(data, self._path, self._pin)
            except VerifierError as exc:
                self._report(VerifierError("%s; keeping revision %d" % (exc, self._state.revision)),
                             sig)
                return False
            if state.revision < self._state.revision:
                self._report(VerifierError(
                    "%s: revision %d is older than the loaded revision %d; not used"
                    % (self._path, state.revision, self._state.revision)), sig)
                return False
            old = self._state.save_digest
            if (state.revision == self._state.revision and state.save_digest is not None
                    and old is not None and state.save_digest != old):
                self._report(VerifierError(
                    "%s: revision %d with save_digest %s... conflicts with the loaded revision "
                    "%d (save_digest %s...): two vault saves claim that revision (was the vault "
                    "restored from a backup and changed again?); not used"
                    % (self._path, state.revision, state.save_digest[:12], self._state.revision,
                       old[:12])), sig)
                return False
            self._state = state
            logger.info("verifier %s reloaded: revision %d, %d keys", self._path,
                        state.revision, state.count)
            return True
        finally:
            self._lock.release()

    def _report(self, error: VerifierError, sig) -> None:
        # Reported once per file version, not on every check.
        if sig is not None and self._reported_sig == sig:
            return
        self._reported_sig = sig
        if self._on_reload_error is not None:
            try:
                self._on_reload_error(error)
            except Exception:  # a faulty callback must not break verification
                logger.exception("on_reload_error callback failed")
        else:
            logger.warning("%s", error)


def _read(path: str) -> Tuple[Tuple[int, int, int], bytes]:
    """The file's (mtime_ns, size, inode) and bytes, read through one descriptor."""
    try:
        with open(path, "rb") as fh:
            st = os.fstat(fh.fileno())
            if st.st_size > MAX_FILE_BYTES:
                raise VerifierError("%s: the verifier file is larger than %d bytes"
                                    % (path, MAX_FILE_BYTES))
            data = fh.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise VerifierError("%s: cannot read the verifier file (%s)" % (path, exc.strerror)) from None
    if len(data) > MAX_FILE_BYTES:
        raise VerifierError("%s: the verifier file is larger than %d bytes" % (path, MAX_FILE_BYTES))
    return (st.st_mtime_ns, st.st_size, st.st_ino), data
