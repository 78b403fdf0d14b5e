"""`AccessTokenVerifier`: OAuth 2.1 access tokens (JWTs) of configured issuers, beside keys.

Owns docs/oauth.md on the Python side: which presented value is a token, the checks in that
document's order (shape and header, issuer, key, signature, claims, permissions), where an
issuer's keys come from (a JWK Set given or read from a file, or discovery and its
`jwks_uri`), the cache of verified tokens, and the protected resource metadata (RFC 9728).

Invariants:
- `none` and every HMAC algorithm are refused before any key is looked at: a public key is
  never an HMAC secret. A token is checked only with a key of its own issuer whose type fits
  its `alg`.
- A token is never stored, logged, or put in a verdict or an exception; the cache is keyed by
  its SHA-256 and holds only what was verified.
- Keys are fetched over HTTPS only (plain HTTP on loopback), without following redirects, at
  most 1 MiB a document, from metadata that names the issuer itself (RFC 8414 §3.3); an
  unknown `kid` fetches them again at most once every 30 s per issuer.
- The JWS signature check is joserfc's (the `oauth` extra), imported when the first
  `AccessTokenVerifier` is made: the rest of the package keeps no dependency.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import functools
import datetime as _dt
import hashlib
import ipaddress
import json
import logging
import math
import os
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from types import MappingProxyType
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Tuple, Union

from ._core import EXPIRED, INSUFFICIENT_PERMISSIONS, INVALID_TOKEN, VALID, Verdict, permits

__all__ = ["AccessTokenVerifier", "ALGORITHMS", "CACHE_ENTRIES", "LEEWAY_SECONDS",
           "MAX_DOCUMENT_BYTES", "MAX_TOKEN_BYTES", "REFETCH_SECONDS", "looks_like_token",
           "metadata_document", "metadata_locations", "metadata_url"]

logger = logging.getLogger("mcp_key_verifier")

#: Clock skew allowed on `exp` and `nbf`, in seconds.
LEEWAY_SECONDS = 60
#: Most verified tokens remembered.
CACHE_ENTRIES = 10_000
#: The least time between two fetches of one issuer's keys (an unknown `kid` asks for one).
REFETCH_SECONDS = 30.0
#: The largest token looked at (a JWT of a few kilobytes is large already).
MAX_TOKEN_BYTES = 16 * 1024
#: The largest metadata document or JWK Set read, from the network or a file.
MAX_DOCUMENT_BYTES = 1024 * 1024
#: How long one fetch may take, in seconds (each of connect, every read, and the whole body).
FETCH_TIMEOUT = 5.0
#: How often a JWK Set file is looked at again (stat) while tokens are checked.
_FILE_CHECK_SECONDS = 1.0

#: The accepted algorithms and the (kty, crv) of the key each needs (docs/oauth.md, check 1).
_FITS = {"RS256": ("RSA", None), "PS256": ("RSA", None), "ES256": ("EC", "P-256"),
         "EdDSA": ("OKP", "Ed25519")}
ALGORITHMS = tuple(_FITS)
_TOKEN_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")
# Private members a JWK Set should not carry; dropped so a key is only ever a public key.
_PRIVATE = frozenset(("d", "p", "q", "dp", "dq", "qi", "oth", "k"))
_LATEST = 253402300799  # 9999-12-31T23:59:59Z: a later `exp` is taken as this


def looks_like_token(value: str) -> bool:
    """Whether a presented value has the compact JWS shape (three base64url segments separated
    by dots, at most 16 KiB): such a value is checked as a token, anything else as a key."""
    return (len(value) <= MAX_TOKEN_BYTES and value.count(".") == 2
            and _TOKEN_CHARS.issuperset(value))


def metadata_url(resource: str) -> str:
    """Where `resource`'s protected resource metadata is (RFC 9728 §3.1): the well-known path
    inserted between the host and the resource's path."""
    p = urllib.parse.urlsplit(resource)
    return "%s://%s/.well-known/oauth-protected-resource%s" % (p.scheme, p.netloc,
                                                               p.path.rstrip("/"))


def metadata_document(resource: str, issuers: Iterable[str],
                      scopes_supported: Iterable[str] = ()) -> Dict[str, Any]:
    """The protected resource metadata document (RFC 9728 §2)."""
    doc: Dict[str, Any] = {"resource": resource, "authorization_servers": list(issuers)}
    scopes = list(scopes_supported)
    if scopes:
        doc["scopes_supported"] = scopes
    doc["bearer_methods_supported"] = ["header"]
    return doc


def metadata_locations(issuer: str) -> List[str]:
    """Where an issuer's metadata may be, in the order tried: RFC 8414 §3.1 (the well-known
    path inserted before the issuer's path), then OpenID Connect Discovery (appended)."""
    p = urllib.parse.urlsplit(issuer)
    base = "%s://%s" % (p.scheme, p.netloc)
    path = p.path.rstrip("/")
    return [base + "/.well-known/oauth-authorization-server" + path,
            base + path + "/.well-known/openid-configuration"]


def _check_url(what: str, url: Any) -> str:
    """`url` when it is an absolute HTTPS URL (HTTP only on loopback), else ValueError."""
    if not isinstance(url, str):
        raise ValueError("%s must be a URL string" % what)
    if not all("\x21" <= c <= "\x7e" and c not in '"\\' for c in url):
        # It is quoted in every challenge's resource_metadata: nothing may break the quoting.
        raise ValueError("%s must be visible ASCII without quotes or backslashes: %r"
                         % (what, url))
    p = urllib.parse.urlsplit(url)
    host = p.hostname or ""
    if p.scheme == "https" and host or p.scheme == "http" and _loopback(host):
        if not p.fragment:
            return url
    raise ValueError("%s must be an absolute https:// URL (http:// only on loopback): %r"
                     % (what, url))


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# -- joserfc, imported when first needed --------------------------------------------------------

_jose: Optional[Tuple[Any, Any, Any, Tuple[type, ...]]] = None


def _joserfc() -> Tuple[Any, Any, Any, Tuple[type, ...]]:
    """(joserfc.jws, the restricted JWS registry, joserfc.jwk.import_key, errors to catch)."""
    global _jose
    if _jose is not None:
        return _jose
    try:
        from joserfc import jws
        from joserfc.errors import JoseError, UnsupportedAlgorithmError
        from joserfc.jwk import import_key
    except ImportError as exc:
        raise ImportError("access tokens need the 'joserfc' package: "
                          "pip install 'mcp-key-verifier[oauth]'") from exc

    class Registry(jws.JWSRegistry):
        """joserfc's JWS registry limited to ALGORITHMS. `get_alg` is its own because joserfc
        warns at every use of `EdDSA` (RFC 9864 deprecates the name), which docs/oauth.md
        accepts as Ed25519: the key's `crv` is checked before the signature is."""

        # A header with an `x5c` chain is larger than joserfc's default 512 bytes.
        max_header_length = 8 * 1024

        def get_alg(self, name: str) -> Any:
            if name not in _FITS:
                raise UnsupportedAlgorithmError("Algorithm of '%s' is not allowed" % name)
            return jws.JWSRegistry.algorithms[name]

    registry = Registry(algorithms=ALGORITHMS, strict_check_header=False)
    _jose = (jws, registry, import_key, (JoseError, ValueError, TypeError, KeyError))
    return _jose


# -- keys ---------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class _Key:
    kid: Optional[str]
    alg: Optional[str]  # the JWK's own `alg`, when it has one
    kty: str
    crv: Optional[str]
    key: Any = dataclasses.field(repr=False)

    def fits(self, alg: str) -> bool:
        return _FITS[alg] == (self.kty, self.crv)


_Keys = Tuple[_Key, ...]


def _keys_of(doc: Any, source: str) -> _Keys:
    """The signing keys of a JWK Set of an accepted type (RSA, EC P-256, OKP Ed25519); others,
    keys for encryption and unreadable ones are skipped. ValueError when `doc` is no JWK Set."""
    if not isinstance(doc, Mapping) or not isinstance(doc.get("keys"), list):
        raise ValueError("%s: not a JWK Set (an object with a \"keys\" array)" % source)
    _, _, import_key, errors = _joserfc()
    keys = []
    for jwk in doc["keys"]:
        if not isinstance(jwk, Mapping):
            continue
        kty, crv, kid, alg = jwk.get("kty"), jwk.get("crv"), jwk.get("kid"), jwk.get("alg")
        crv = None if kty == "RSA" else crv
        if (kty, crv) not in _FITS.values() or jwk.get("use", "sig") != "sig":
            continue
        if not (kid is None or isinstance(kid, str)) or not (alg is None or isinstance(alg, str)):
            continue
        try:
            key = import_key({k: v for k, v in jwk.items() if k not in _PRIVATE})
        except errors:
            continue
        keys.append(_Key(kid, alg, kty, crv, key))
    return tuple(keys)


def _pick(keys: _Keys, kid: Optional[str], alg: str) -> Optional[_Key]:
    """The key a token names: by `kid`; without one, the only key that fits `alg`."""
    if kid is not None:
        return next((k for k in keys if k.kid == kid), None)
    fitting = [k for k in keys if k.fits(alg)]
    return fitting[0] if len(fitting) == 1 else None


class _Static:
    """Keys given as a JWK Set: never change."""

    def __init__(self, keys: _Keys):
        self.keys = keys

    def current(self) -> _Keys:
        return self.keys

    def refresh(self, seen: _Keys) -> bool:
        return False


class _File:
    """Keys read from a JWK Set file, read again when it changes (looked at most every
    second, and on an unknown `kid`). A broken replacement keeps the last good keys."""

    def __init__(self, path: Union[str, "os.PathLike[str]"]):
        self.path = os.fspath(path)
        self._lock = threading.Lock()
        self._sig: Optional[Tuple[int, int, int]]
        self._sig, self.keys = self._read()
        self._next_check = time.monotonic() + _FILE_CHECK_SECONDS

    def _read(self) -> Tuple[Tuple[int, int, int], _Keys]:
        try:
            with open(self.path, "rb") as fh:
                st = os.fstat(fh.fileno())
                data = fh.read(MAX_DOCUMENT_BYTES + 1)
        except OSError as exc:
            raise ValueError("%s: cannot read the JWK Set (%s)"
                             % (self.path, exc.strerror)) from None
        if len(data) > MAX_DOCUMENT_BYTES:
            raise ValueError("%s: the JWK Set is larger than 1 MiB" % self.path)
        try:
            doc = json.loads(data)
        except (ValueError, RecursionError):
            raise ValueError("%s: the JWK Set is not JSON" % self.path) from None
        keys = _keys_of(doc, self.path)
        if not keys:
            raise ValueError("%s holds no RSA, EC P-256 or Ed25519 signing key" % self.path)
        return (st.st_mtime_ns, st.st_size, st.st_ino), keys

    def current(self) -> _Keys:
        if time.monotonic() >= self._next_check:
            self._check()
        return self.keys

    def refresh(self, seen: _Keys) -> bool:
        self._check()
        return self.keys is not seen

    def _check(self) -> None:
        with self._lock:
            self._next_check = time.monotonic() + _FILE_CHECK_SECONDS
            try:
                st = os.stat(self.path)
                sig = (st.st_mtime_ns, st.st_size, st.st_ino)
            except OSError:
                sig = None
            if sig == self._sig:
                return
            self._sig = sig  # a broken version is reported once, not at every look
            try:
                self._sig, self.keys = self._read()
            except ValueError as exc:
                logger.warning("oauth: %s; the keys read before stay", exc)
                return
            logger.info("oauth: %d key(s) read from %s", len(self.keys), self.path)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Redirects are answers, not followed: metadata and keys come from where they were asked."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: D102
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


class _FetchError(Exception):
    """Why keys could not be fetched (a URL and a reason; never a token)."""


class _Remote:
    """One issuer's keys, found by discovery and fetched from its `jwks_uri`: first when a
    token of that issuer is seen, again on an unknown `kid`, at most every REFETCH_SECONDS."""

    def __init__(self, issuer: str, timeout: float):
        self.issuer = issuer
        self.timeout = timeout
        self.keys: _Keys = ()
        self.jwks_uri: Optional[str] = None
        self.fetches = 0  # fetch attempts of the key set, for tests and metrics
        self._fetched: Optional[float] = None
        self._lock = threading.Lock()

    def current(self) -> _Keys:
        return self.keys

    def refresh(self, seen: _Keys) -> bool:
        with self._lock:
            if self.keys is not seen:  # fetched by another thread meanwhile
                return True
            now = time.monotonic()
            if self._fetched is not None and now - self._fetched < REFETCH_SECONDS:
                return False
            self._fetched = now
            self.fetches += 1
            try:
                self.keys = self._fetch()
            except _FetchError as exc:
                logger.warning("oauth: %s; tokens of %s needing other keys are refused until "
                               "a later fetch", exc, self.issuer)
                return False
            logger.info("oauth: %d key(s) of %s from %s", len(self.keys), self.issuer,
                        self.jwks_uri)
            return True

    def _fetch(self) -> _Keys:
        uri = self.jwks_uri or self._discover()
        try:
            keys = _keys_of(self._get(uri), uri)
        except (_FetchError, ValueError) as exc:
            self.jwks_uri = None  # discover again next time: the metadata may have moved
            raise _FetchError(str(exc)) from None
        self.jwks_uri = uri
        return keys

    def _discover(self) -> str:
        why = []
        for url in metadata_locations(self.issuer):
            try:
                doc = self._get(url)
            except _FetchError as exc:
                why.append(str(exc))
                continue
            if not isinstance(doc, dict) or doc.get("issuer") != self.issuer:
                why.append("%s does not name the issuer %s" % (url, self.issuer))
                continue
            try:
                return _check_url("jwks_uri of %s" % url, doc.get("jwks_uri"))
            except ValueError as exc:
                why.append(str(exc))
        raise _FetchError("no usable metadata for the issuer %s (%s)"
                          % (self.issuer, "; ".join(why)))

    def _get(self, url: str) -> Any:
        """The JSON document at `url`: 200 only, no redirect, at most 1 MiB, within the timeout."""
        deadline = time.monotonic() + self.timeout
        req = urllib.request.Request(url, headers={"Accept": "application/json",
                                                   "User-Agent": "mcp-key-verifier"})
        chunks, size = [], 0
        try:
            with _OPENER.open(req, timeout=self.timeout) as resp:
                if resp.status != 200:
                    raise _FetchError("%s answered %d" % (url, resp.status))
                while True:
                    chunk = resp.read(64 * 1024)
                    if not chunk:
                        break
                    size += len(chunk)
                    if size > MAX_DOCUMENT_BYTES:
                        raise _FetchError("%s is larger than 1 MiB" % url)
                    if time.monotonic() > deadline:
                        raise _FetchError("%s took longer than %g s" % (url, self.timeout))
                    chunks.append(chunk)
        except urllib.error.HTTPError as exc:
            raise _FetchError("%s answered %d" % (url, exc.code)) from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise _FetchError("cannot fetch %s: %s" % (url, str(reason)[:200])) from None
        try:
            return json.loads(b"".join(chunks))
        except (ValueError, RecursionError):
            raise _FetchError("%s is not JSON" % url) from None


# -- the verifier -------------------------------------------------------------------------------

_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)


def _invalid(why: str) -> Verdict:
    return Verdict(False, INVALID_TOKEN, reason=why)


_EXPIRED = Verdict(False, EXPIRED, reason="the access token has expired")


def _segment(segment: str) -> Any:
    """A base64url segment of a JWS (unpadded) as JSON, or None."""
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        return json.loads(raw)
    except (binascii.Error, ValueError, RecursionError):
        return None


def _number(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


def _scopes(claim: Any) -> Tuple[str, ...]:
    """A scope claim's values: a space-separated string, or an array of strings."""
    if isinstance(claim, str):
        values = claim.split()
    elif isinstance(claim, list):
        values = [v for v in claim if isinstance(v, str) and v]
    else:
        return ()
    return tuple(dict.fromkeys(values))


class AccessTokenVerifier:
    """Checks OAuth 2.1 access tokens (JWTs) for one resource (docs/oauth.md).

    `resource`: this server's canonical URI, the audience every token must carry.
    `issuers`: the accepted `iss` values (exact strings). `jwks`: their keys, as a JWK Set
    (a dict) or the path of a JWK Set file (read now, and again when it changes); without it,
    each issuer's keys are found by discovery (RFC 8414, then OpenID) when its first token
    comes, over HTTPS (HTTP on loopback). `scope_claim`: the claim holding a token's
    permissions (`scope`: a space-separated string; an array of strings is accepted too).

    `verify` may block on a fetch of keys (at most a few timeouts of `fetch_timeout`
    seconds); `cached` never does. Both are safe from any number of threads.
    """

    def __init__(self, resource: str, issuers: Iterable[str], *,
                 jwks: Union[None, Mapping[str, Any], str, "os.PathLike[str]"] = None,
                 scope_claim: str = "scope", fetch_timeout: float = FETCH_TIMEOUT):
        _joserfc()
        self.resource = _check_url("resource", resource)
        issuers = [issuers] if isinstance(issuers, str) else list(issuers)
        if not issuers:
            raise ValueError("at least one issuer is needed")
        for issuer in issuers:
            _check_url("issuer", issuer)
        if len(set(issuers)) != len(issuers):
            raise ValueError("an issuer is given twice")
        if not isinstance(scope_claim, str) or not scope_claim:
            raise ValueError("scope_claim must be a claim name")
        self.issuers: Tuple[str, ...] = tuple(issuers)
        self.scope_claim = scope_claim
        self.metadata_url = metadata_url(resource)
        shared: Any
        if jwks is None:
            self._sources: Dict[str, Any] = {i: _Remote(i, fetch_timeout) for i in issuers}
        else:
            if isinstance(jwks, Mapping):
                shared = _Static(_keys_of(jwks, "jwks"))
            else:
                shared = _File(jwks)
            self._sources = {i: shared for i in issuers}
        self._cache: Dict[bytes, Tuple[float, Verdict]] = {}
        self._cache_lock = threading.Lock()

    def __repr__(self) -> str:
        return "AccessTokenVerifier(resource=%r, issuers=%r)" % (self.resource, self.issuers)

    def cached(self, token: str, require: Iterable[str] = (), *,
               now: Optional[_dt.datetime] = None) -> Optional[Verdict]:
        """The verdict on a token verified before and not yet expired, judged against
        `require`; None when it must be checked (`verify`). Never blocks."""
        if not looks_like_token(token):
            return None
        hit = self._cache.get(hashlib.sha256(token.encode("ascii")).digest())
        if hit is None or _seconds(now) >= hit[0]:
            return None
        return _judge(hit[1], require)

    def verify(self, token: str, require: Iterable[str] = (), *,
               now: Optional[_dt.datetime] = None) -> Verdict:
        """Judges `token` needing the permissions in `require`, at `now` (an aware datetime;
        default the current time). Returns a `Verdict`: VALID (with `subject` = `sub`,
        `issuer`, `permissions` = the scope claim's values, `expires_at` = `exp`, `claims`),
        INVALID_TOKEN or EXPIRED (with `reason`, fit for `error_description`), or
        INSUFFICIENT_PERMISSIONS. The first check of docs/oauth.md that fails decides."""
        if not isinstance(token, str):
            raise TypeError("token must be a str")
        if not looks_like_token(token):
            return _invalid("not a JWT")
        t = _seconds(now)
        digest = hashlib.sha256(token.encode("ascii")).digest()
        hit = self._cache.get(digest)
        if hit is not None and t < hit[0]:
            return _judge(hit[1], require)
        verdict, exp = self._check(token, t)
        if verdict.valid:
            self._remember(digest, exp + LEEWAY_SECONDS, verdict)
        return _judge(verdict, require)

    def _check(self, token: str, t: float) -> Tuple[Verdict, float]:
        head, body, _ = token.split(".")
        # 1. shape and header
        header = _segment(head)
        if not isinstance(header, dict):
            return _invalid("unreadable JWT header"), 0
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in _FITS:
            return _invalid("the token's algorithm is not accepted (RS256, PS256, ES256, "
                            "EdDSA)"), 0
        if "crit" in header:
            return _invalid("the token names critical header parameters"), 0
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            return _invalid("the token's kid is not a string"), 0
        claims = _segment(body)
        if not isinstance(claims, dict):
            return _invalid("unreadable JWT claims"), 0
        # 2. issuer (not yet verified: it only chooses whose keys to try)
        iss = claims.get("iss")
        source = self._sources.get(iss) if isinstance(iss, str) else None
        if source is None:
            return _invalid("the token's issuer is not accepted"), 0
        # 3. key
        keys = source.current()
        key = _pick(keys, kid, alg)
        if key is None and source.refresh(keys):
            key = _pick(source.current(), kid, alg)
        if key is None:
            return _invalid("the access token's key is not one of its issuer's"), 0
        if not key.fits(alg) or key.alg is not None and key.alg != alg:
            return _invalid("the token's algorithm does not fit its key"), 0
        # 4. signature
        jws, registry, _, errors = _joserfc()
        try:
            jws.deserialize_compact(token, key.key, registry=registry)
        except errors:
            return _invalid("the token's signature does not verify"), 0
        # 5. claims
        exp = claims.get("exp")
        if not _number(exp):
            return _invalid("the token has no exp"), 0
        if t >= exp + LEEWAY_SECONDS:
            return _EXPIRED, 0
        nbf = claims.get("nbf")
        if nbf is not None and (not _number(nbf) or nbf > t + LEEWAY_SECONDS):
            return _invalid("the token is not valid yet (nbf)"), 0
        aud = claims.get("aud")
        auds = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
        if self.resource not in auds:
            return _invalid("the token is not for this resource (aud)"), 0
        # 6. permissions (judged against what a request needs by the caller)
        sub = claims.get("sub")
        exp = min(float(exp), float(_LATEST))
        return Verdict(True, VALID, permissions=_scopes(claims.get(self.scope_claim)),
                       expires_at=_EPOCH + _dt.timedelta(seconds=math.floor(exp)),
                       subject=sub if isinstance(sub, str) else None, issuer=iss,
                       claims=MappingProxyType(claims)), exp

    def _remember(self, digest: bytes, until: float, verdict: Verdict) -> None:
        # Readers take no lock: a dict's get is atomic while a writer holds this one.
        with self._cache_lock:
            cache = self._cache
            if len(cache) >= CACHE_ENTRIES and digest not in cache:
                now = time.time()
                for d in [d for d, e in cache.items() if e[0] <= now]:
                    del cache[d]
                while len(cache) >= CACHE_ENTRIES:  # still full of live tokens: oldest out
                    del cache[next(iter(cache))]
            cache[digest] = (until, verdict)


def configured(resource: Optional[str], issuers: Iterable[str], jwks: Any,
               scope_claim: str) -> Optional[AccessTokenVerifier]:
    """An `AccessTokenVerifier` when tokens are configured, else None (docs/oauth.md: tokens
    are off unless a resource and at least one issuer are given)."""
    issuers = [issuers] if isinstance(issuers, str) else list(issuers)
    if resource is None and not issuers and jwks is None:
        return None
    if resource is None or not issuers:
        raise ValueError("access tokens need both resource= and at least one issuer "
                         "(issuers=[...])")
    return AccessTokenVerifier(resource, issuers, jwks=jwks, scope_claim=scope_claim)


async def in_thread(fn: Callable[..., Any], *args: Any) -> Any:
    """`fn(*args)` in a worker thread: anyio's when it is there (Starlette, the SDK and every
    ASGI server with it), else the asyncio loop's default executor."""
    call = functools.partial(fn, *args)
    try:
        import anyio.to_thread
    except ImportError:
        import asyncio

        return await asyncio.get_running_loop().run_in_executor(None, call)
    return await anyio.to_thread.run_sync(call)


def _seconds(now: Optional[_dt.datetime]) -> float:
    if now is None:
        return time.time()
    if now.tzinfo is None:
        raise ValueError("now must be an aware datetime")
    return (now - _EPOCH).total_seconds()


def _judge(verdict: Verdict, require: Iterable[str]) -> Verdict:
    if not verdict.valid or not require:
        return verdict
    if isinstance(require, str):
        require = (require,)
    held = frozenset(verdict.permissions)
    if all(permits(held, p) for p in require):
        return verdict
    return dataclasses.replace(verdict, valid=False, code=INSUFFICIENT_PERMISSIONS)
