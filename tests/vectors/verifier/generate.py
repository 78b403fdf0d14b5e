#!/usr/bin/env python3
"""Writes the verifier conformance vectors in this directory.

Every implementation of the verifier (Rust, Python, TypeScript) runs these files: each case
names a verifier file, a presented key, the required permissions and the verdict (and, for
MALFORMED, the reason: SHAPE or CHECKSUM) that must come out at the fixed time `now`; each
invalid file must be refused at load; each key of `limits.json` carries the `rate_limit` its
`rate_limits` case says, and every request of `ratelimit.json` gets the rate-limit decision
(and header values) written there, computed below by a plain transcription of the GCRA of
docs/verifier.md, "Rate limits"; every case of `routing.json` (MCP routing headers under tool
permissions) gets the answer written there from the tower layer and both middlewares. The keys
here are test keys, derived from fixed labels: they protect nothing.

Deterministic by construction (fixed hash key, keys derived with SHA-256 from fixed labels,
sorted output, no clock): rerunning `python3 generate.py` reproduces every file byte for byte.
Standard library only. The specification is docs/verifier.md.
"""

import base64
import hashlib
import hmac
import json
import os
import sys
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
NOW = "2026-06-01T00:00:00Z"
GENERATED_AT = "2026-05-31T12:00:00Z"
HASH_KEY = hashlib.sha256(b"mcp-key-verifier conformance vectors: hash key").digest()


def derive(label, length):
    """`length` lowercase hex characters derived from `label`."""
    out = ""
    counter = 0
    while len(out) < length:
        out += hashlib.sha256(("%s/%d" % (label, counter)).encode()).hexdigest()
        counter += 1
    return out[:length]


def modern(label):
    """(id, key) of a modern key `mcp_<16 hex id>_<64 hex secret>`."""
    key_id = derive("id:" + label, 16)
    return key_id, "mcp_%s_%s" % (key_id, derive("secret:" + label, 64))


BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def derive62(label, length):
    """`length` base62 characters derived from `label` (bytes below 248, taken mod 62, as the
    tool draws a secret's characters)."""
    out = ""
    counter = 0
    while len(out) < length:
        for b in hashlib.sha256(("%s/%d" % (label, counter)).encode()).digest():
            if b < 248 and len(out) < length:
                out += BASE62[b % 62]
        counter += 1
    return out


def checksum(body):
    """Six base62 digits of the CRC-32 (zlib's) of `body`, most significant first."""
    v = zlib.crc32(body.encode("ascii"))
    digits = ""
    for _ in range(6):
        digits = BASE62[v % 62] + digits
        v //= 62
    return digits


def with_checksum(body):
    return body + checksum(body)


def format2(label, head="mkm_"):
    """(id, key) of a format-2 key `<head><16 hex id>_<43 base62 secret><6 base62 checksum>`."""
    key_id = derive("id:" + label, 16)
    return key_id, with_checksum("%s%s_%s" % (head, key_id, derive62("secret2:" + label, 43)))


def typo(key, at, char):
    """`key` with the character at `at` replaced by `char` (which must differ)."""
    assert key[at] != char
    return key[:at] + char + key[at + 1:]


def digest(key, hash_key=HASH_KEY):
    return hmac.new(hash_key, key.encode("utf-8"), hashlib.sha256).hexdigest()


def b64(raw):
    return base64.b64encode(raw).decode("ascii")


# --- keys -------------------------------------------------------------------------------------

K = {label: modern(label) for label in (
    "active", "noexpiry", "revoked", "expired", "expires-now", "expires-later-ms",
    "expires-earlier-ms", "expires-offset", "expires-micro", "status-expired",
    "revoked-and-expired", "nonames", "old-writer", "unknown",
    "year-1", "year-99", "year-9999",
    "perm-tools", "perm-tool-add", "perm-tool-mul", "perm-prompts", "perm-prompt-greet",
    "perm-resources",
)}
# Keys of format 2, in a file beside a key of format 1 and a legacy key.
K.update({label: format2(label) for label in ("v2-active", "v2-revoked", "v2-unknown")})
K["v2-org"] = format2("v2-org", head="acme_mkm_")
K["v2-org-max"] = format2("v2-org-max", head="abcdefghijklmnop_mkm_")
K["v1-beside-v2"] = modern("v1-beside-v2")
# Keys with rate limits (docs/verifier.md, "Rate limits").
K.update({label: modern(label) for label in (
    "limit-100-min", "limit-7-sec", "limit-1-day", "limit-1-sec", "limit-max", "limit-10-30s",
    "limit-null", "limit-none", "limit-revoked")})
# Keys from the old Python tool: 64 lowercase hex, and one with the other allowed punctuation.
LEGACY_HEX = derive("legacy:hex", 64)
LEGACY_HEX_REVOKED = derive("legacy:hex-revoked", 64)
LEGACY_PUNCT = "Legacy_Key-1.2~3+4/5=" + derive("legacy:punct", 20)
LEGACY_UNKNOWN = derive("legacy:unknown", 64)


ABSENT = object()


def entry(label, status="active", expires_at=None, permissions=None, name=None, omit=(),
          rate_limit=ABSENT):
    key_id, key = K[label]
    e = {"id": key_id, "hash": digest(key), "status": status, "expires_at": expires_at}
    if permissions is not None:
        e["permissions"] = permissions
    if rate_limit is not ABSENT:
        e["rate_limit"] = rate_limit
    if name is not None:
        e["name"] = name
    for field in omit:
        e.pop(field, None)
    return e


def legacy_entry(key_id, key, status="active", permissions=None, name=None):
    e = {"id": key_id, "hash": digest(key), "status": status, "expires_at": None,
         "permissions": permissions if permissions is not None else []}
    if name is not None:
        e["name"] = name
    return e


def verifier_file(keys, revision=None, hash_key=HASH_KEY, generated_at=GENERATED_AT, **extra):
    f = {
        "format": "mcp-key-verifier",
        "version": 1,
        "algorithm": "hmac-sha256",
        "hash_key": b64(hash_key),
        "generated_at": generated_at,
    }
    if revision is not None:
        f["revision"] = revision
    f["keys"] = keys
    f.update(extra)
    return f


# --- valid files ------------------------------------------------------------------------------

BASIC = verifier_file(revision=17, keys=[
    entry("active", expires_at="2026-09-01T00:00:00Z", permissions=["generate", "info"],
          name="ci-bot"),
    entry("noexpiry", expires_at=None, permissions=[], name="no-expiry"),
    entry("revoked", status="revoked", expires_at=None, permissions=["info"], name="old-laptop"),
    entry("expired", expires_at="2026-05-31T23:59:59Z", permissions=["info"], name="expired"),
    entry("expires-now", expires_at=NOW, permissions=["info"], name="expires-now"),
    entry("expires-later-ms", expires_at="2026-06-01T00:00:00.001Z", permissions=["info"],
          name="later-ms"),
    entry("expires-earlier-ms", expires_at="2026-05-31T23:59:59.999Z", permissions=["info"],
          name="earlier-ms"),
    entry("expires-offset", expires_at="2026-06-01T02:00:00+02:00", permissions=["info"],
          name="offset"),
    entry("expires-micro", expires_at="2026-06-01T00:00:00.000001Z", permissions=["info"],
          name="micro"),
    # The file may be older than the vault's own view: only "revoked" matters to a reader.
    entry("status-expired", status="expired", expires_at="2027-01-01T00:00:00Z",
          permissions=["info"], name="status-expired"),
    entry("revoked-and-expired", status="revoked", expires_at="2026-01-01T00:00:00Z",
          permissions=[], name="revoked-and-expired"),
    legacy_entry("legacy_ci-bot", LEGACY_HEX, permissions=["generate"], name="legacy"),
    legacy_entry("legacy-revoked", LEGACY_HEX_REVOKED, status="revoked", name="legacy-revoked"),
    # An imported key may also sit under a modern-looking id: it is still found by hash.
    legacy_entry(derive("id:legacy-punct", 16), LEGACY_PUNCT, permissions=["info"],
                 name="legacy-punct"),
])

NONAMES = verifier_file(revision=4, keys=[
    entry("nonames", expires_at="2026-12-31T23:59:59Z", permissions=["tools:call"]),
    legacy_entry("legacy_ci-bot", LEGACY_HEX, permissions=["generate"]),
])

# Written by an older release (no revision), or by a newer one with fields this reader does
# not know: unknown fields are ignored; an absent expires_at never expires; absent permissions
# are none.
OLD_WRITER = verifier_file(
    keys=[dict(entry("old-writer", omit=("expires_at",)), last_used_at="2026-05-30T10:00:00Z",
               labels={"team": "infra"})],
    comment="written by a future release", features={"usage": True},
)

EMPTY = verifier_file(revision=0, keys=[])

# Both formats of this tool's keys and a legacy key in one file (docs/verifier.md, "Key
# shapes").
FORMAT2 = verifier_file(revision=3, keys=[
    entry("v2-active", expires_at="2026-09-01T00:00:00Z", permissions=["info"], name="v2"),
    entry("v2-revoked", status="revoked", expires_at=None, permissions=["info"],
          name="v2-revoked"),
    entry("v2-org", expires_at=None, permissions=["tools:call"], name="v2-org"),
    entry("v2-org-max", expires_at=None, permissions=[], name="v2-org-max"),
    entry("v1-beside-v2", expires_at=None, permissions=["info"], name="v1"),
    legacy_entry("legacy_ci-bot", LEGACY_HEX, permissions=["generate"], name="legacy"),
])

# The ends of the time rule: years 0001 and 9999, 9 fractional digits (years 0001-0099 are not
# 1901-1999).
TIMES = verifier_file(revision=1, generated_at="0001-01-01T00:00:00.000000001Z", keys=[
    entry("year-1", expires_at="0001-01-01T00:00:00Z", permissions=[]),
    entry("year-99", expires_at="0099-12-31T23:59:59.123456789+00:00", permissions=[]),
    entry("year-9999", expires_at="9999-12-31T23:59:59.999999999Z", permissions=[]),
])

# Permissions with a name form: `tools:call` grants every `tools:call:NAME`, `prompts:get`
# every `prompts:get:NAME`; nothing else is implied. The same keys twice: with few distinct
# permissions (a reader may keep a small table of them), and with more than 64 (it may not).
PERMISSION_KEYS = [
    ("perm-tools", ["tools:call"]),
    ("perm-tool-add", ["tools:call:add"]),
    ("perm-tool-mul", ["tools:call:mul"]),
    ("perm-prompts", ["prompts:get"]),
    ("perm-prompt-greet", ["prompts:get:greet"]),
    ("perm-resources", ["resources:read"]),
]
PERMISSIONS = verifier_file(revision=1, keys=[
    entry(label, permissions=perms, name=label) for label, perms in PERMISSION_KEYS])
PERMISSIONS_MANY = verifier_file(revision=1, keys=[
    entry(label, permissions=perms + ["filler:%02d" % i for i in range(n * 11, n * 11 + 11)],
          name=label)
    for n, (label, perms) in enumerate(PERMISSION_KEYS)])
assert len({p for k in PERMISSIONS_MANY["keys"] for p in k["permissions"]}) > 64

# Rate limits on entries: the ends of both bounds, a window of no named unit, members in
# either order, null and absent (no limit), and a revoked key that keeps its limit.
LIMITS = verifier_file(revision=5, keys=[
    entry("limit-100-min", permissions=["tools:call"], name="limit-100-min",
          rate_limit={"requests": 100, "window_seconds": 60}),
    entry("limit-7-sec", permissions=[], name="limit-7-sec",
          rate_limit={"window_seconds": 1, "requests": 7}),
    entry("limit-1-day", permissions=[], name="limit-1-day",
          rate_limit={"requests": 1, "window_seconds": 86400}),
    entry("limit-1-sec", permissions=[], name="limit-1-sec",
          rate_limit={"requests": 1, "window_seconds": 1}),
    entry("limit-max", permissions=[], name="limit-max",
          rate_limit={"requests": 1000000000, "window_seconds": 86400}),
    entry("limit-10-30s", permissions=[], name="limit-10-30s",
          rate_limit={"requests": 10, "window_seconds": 30}),
    entry("limit-null", permissions=[], name="limit-null", rate_limit=None),
    entry("limit-none", permissions=[], name="limit-none"),
    entry("limit-revoked", status="revoked", permissions=[], name="limit-revoked",
          rate_limit={"requests": 5, "window_seconds": 3600}),
])

VALID_FILES = {
    "basic.json": BASIC,
    "nonames.json": NONAMES,
    "old-writer.json": OLD_WRITER,
    "empty.json": EMPTY,
    "format2.json": FORMAT2,
    "times.json": TIMES,
    "permissions.json": PERMISSIONS,
    "permissions-many.json": PERMISSIONS_MANY,
    "limits.json": LIMITS,
}


# --- invalid files ----------------------------------------------------------------------------

def dump(obj):
    return (json.dumps(obj, indent=2, ensure_ascii=True) + "\n").encode("ascii")


def changed(base, **fields):
    f = json.loads(json.dumps(base))
    f.update(fields)
    return f


def with_key_field(base, **fields):
    f = json.loads(json.dumps(base))
    f["keys"][0].update(fields)
    return f


def noncanonical(text):
    """The same bytes with the unused low bits of the last base64 character set."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    body = text.rstrip("=")
    last = alphabet.index(body[-1])
    assert last & 3 == 0
    return body[:-1] + alphabet[last | 1] + text[len(body):]


SMALL = verifier_file(revision=2, keys=[
    entry("active", expires_at="2026-09-01T00:00:00Z", permissions=["info"]),
    entry("noexpiry", expires_at=None, permissions=[]),
])

INVALID = [
    ("bad-format.json", changed(SMALL, format="mcp-key-vault"), "format is not mcp-key-verifier"),
    ("bad-version-2.json", changed(SMALL, version=2), "version is 2"),
    ("bad-version-string.json", changed(SMALL, version="1"), "version is a string, not 1"),
    ("bad-version-bool.json", changed(SMALL, version=True), "version is true, not the number 1"),
    ("bad-algorithm.json", changed(SMALL, algorithm="hmac-sha512"), "algorithm is not hmac-sha256"),
    ("bad-hash-key-31.json", changed(SMALL, hash_key=b64(HASH_KEY[:31])),
     "hash_key decodes to 31 bytes"),
    ("bad-hash-key-base64.json", changed(SMALL, hash_key="not base64!" + "A" * 33),
     "hash_key is not base64"),
    ("bad-hash-key-unpadded.json", changed(SMALL, hash_key=b64(HASH_KEY).rstrip("=")),
     "hash_key lacks its padding"),
    ("bad-hash-key-noncanonical.json", changed(SMALL, hash_key=noncanonical(b64(HASH_KEY))),
     "hash_key has non-zero trailing bits (not canonical base64)"),
    ("bad-hash-short.json", with_key_field(SMALL, hash=SMALL["keys"][0]["hash"][:63]),
     "a hash has 63 hex characters"),
    ("bad-hash-nonhex.json", with_key_field(SMALL, hash="g" + SMALL["keys"][0]["hash"][1:]),
     "a hash is not hex"),
    ("bad-time.json", with_key_field(SMALL, expires_at="tomorrow"), "expires_at is not a time"),
    ("bad-time-feb30.json", with_key_field(SMALL, expires_at="2026-02-30T00:00:00Z"),
     "expires_at is not a calendar date"),
    ("bad-time-date-only.json", with_key_field(SMALL, expires_at="2026-09-01"),
     "expires_at has no time of day"),
    ("bad-time-no-zone.json", with_key_field(SMALL, expires_at="2026-09-01T00:00:00"),
     "expires_at has no time zone"),
    ("bad-generated-at.json", changed(SMALL, generated_at="yesterday"),
     "generated_at is not a time"),
    ("duplicate-id.json",
     changed(SMALL, keys=[SMALL["keys"][0], dict(SMALL["keys"][1], id=SMALL["keys"][0]["id"])]),
     "two entries share an id"),
    ("bad-revision-negative.json", changed(SMALL, revision=-1), "revision is negative"),
    ("bad-revision-huge.json", changed(SMALL, revision=2**53),
     "revision is 2^53, beyond what every reader holds exactly (a saturated revision would "
     "freeze readers)"),
    ("bad-permissions.json", with_key_field(SMALL, permissions="info"),
     "permissions is not a list of strings"),
    ("bad-missing-hash.json",
     changed(SMALL, keys=[{k: v for k, v in SMALL["keys"][0].items() if k != "hash"}]),
     "an entry has no hash"),
    ("bad-missing-keys.json", {k: v for k, v in SMALL.items() if k != "keys"}, "no keys list"),
]

# A time rule for generated_at and expires_at: RFC 3339 with Z or an offset, year 0001-9999,
# at most 9 fractional digits.
INVALID += [
    ("bad-time-year-0000.json", with_key_field(SMALL, expires_at="0000-12-31T00:00:00Z"),
     "expires_at in year 0000 (years are 0001-9999)"),
    ("bad-generated-at-year-0000.json", changed(SMALL, generated_at="0000-01-01T00:00:00Z"),
     "generated_at in year 0000"),
    ("bad-time-10-digit-fraction.json",
     with_key_field(SMALL, expires_at="2026-09-01T00:00:00.0000000001Z"),
     "expires_at with 10 fractional digits (at most 9)"),
    ("bad-generated-at-10-digit-fraction.json",
     changed(SMALL, generated_at="2026-05-31T12:00:00.1234567890Z"),
     "generated_at with 10 fractional digits"),
    # version and revision are JSON integers, not numbers that equal one.
    ("bad-version-float.json", changed(SMALL, version=1.0), "version is 1.0, not the integer 1"),
    ("bad-revision-float.json", changed(SMALL, revision=3.0), "revision is 3.0, not an integer"),
    ("bad-revision-bool.json", changed(SMALL, revision=True), "revision is true, not an integer"),
]


def with_limit(rate_limit):
    return with_key_field(SMALL, rate_limit=rate_limit)


# rate_limit: exactly {"requests": 1..1,000,000,000, "window_seconds": 1..86,400}, JSON integers
# both (docs/verifier.md, "Fields"); anything else makes the whole file invalid.
INVALID += [
    ("bad-rate-limit-zero.json", with_limit({"requests": 0, "window_seconds": 60}),
     "rate_limit allows 0 requests (at least 1)"),
    ("bad-rate-limit-huge.json", with_limit({"requests": 1000000001, "window_seconds": 60}),
     "rate_limit allows 1,000,000,001 requests (at most 1,000,000,000)"),
    ("bad-rate-limit-window.json", with_limit({"requests": 100, "window_seconds": 86401}),
     "rate_limit's window is 86,401 seconds (at most one day)"),
    ("bad-rate-limit-float.json", with_limit({"requests": 100, "window_seconds": 60.0}),
     "rate_limit's window_seconds is 60.0, not an integer"),
    ("bad-rate-limit-bool.json", with_limit({"requests": True, "window_seconds": 60}),
     "rate_limit's requests is true, not an integer"),
    ("bad-rate-limit-requests-string.json", with_limit({"requests": "100", "window_seconds": 60}),
     "rate_limit's requests is a string"),
    ("bad-rate-limit-string.json", with_limit("100/min"),
     "rate_limit is the string 100/min, not an object"),
    ("bad-rate-limit-missing-window.json", with_limit({"requests": 100}),
     "rate_limit has no window_seconds"),
    ("bad-rate-limit-unknown-member.json",
     with_limit({"requests": 100, "window_seconds": 60, "burst": 10}),
     "rate_limit has a member other than requests and window_seconds"),
]


def rewritten(base, text_from, text_to):
    """`base` written out with `text_from` (which must occur once) replaced by `text_to`: for
    what json.dumps cannot write (a duplicate member, a number written as 1e0)."""
    text = dump(base).decode("ascii")
    assert text.count(text_from) == 1, text_from
    return text.replace(text_from, text_to).encode("ascii")


REVOKED_SMALL = with_key_field(SMALL, status="revoked")
RAW_INVALID = [
    ("not-json.txt", b"this is not JSON {\n", "not JSON"),
    ("bad-version-exponent.json",
     rewritten(SMALL, '"version": 1,', '"version": 1e0,'),
     "version is 1e0, not the integer 1"),
    ("bad-revision-exponent.json",
     rewritten(SMALL, '"revision": 2,', '"revision": 3e0,'),
     "revision is 3e0, not an integer"),
    ("bad-duplicate-member-entry.json",
     rewritten(REVOKED_SMALL, '"status": "revoked",',
                   '"status": "revoked",\n      "status": "active",'),
     "an entry has status twice (revoked, then active): a duplicate member is refused"),
    ("bad-duplicate-member-top.json",
     rewritten(SMALL, '"revision": 2,', '"revision": 2,\n  "revision": 3,'),
     "the top level has revision twice: a duplicate member is refused"),
    ("bad-duplicate-member-unknown.json",
     rewritten(SMALL, '"revision": 2,', '"revision": 2,\n  "comment": "a",\n  "comment": "b",'),
     "an unknown top-level member twice: a duplicate member is refused wherever it is"),
    ("bad-duplicate-member-keys.json",
     rewritten(SMALL, '"keys": [', '"keys": [],\n  "keys": ['),
     "the top level has keys twice: a duplicate member is refused"),
    ("bad-top-level-array.json", b"[]\n", "the top level is not an object"),
    ("bad-rate-limit-exponent.json",
     rewritten(with_limit({"requests": 100, "window_seconds": 60}), '"requests": 100,',
               '"requests": 1e2,'),
     "rate_limit's requests is 1e2, not an integer"),
]


# --- cases ------------------------------------------------------------------------------------

def case(verifier, key, code, require=(), key_id=None, name=None, why="", reason=None):
    if code == "MALFORMED" and reason is None:
        reason = "SHAPE"
    assert (code == "MALFORMED") == (reason is not None), why
    return {"verifier": verifier, "key": key, "require": list(require), "code": code,
            "reason": reason, "key_id": key_id, "name": name, "why": why}


def ok(verifier, label, code, require=(), name=None, why=""):
    key_id, key = K[label]
    return case(verifier, key, code, require=require, key_id=key_id, name=name, why=why)


def bad_modern_uppercase():
    key_id, key = K["active"]
    return key[:4] + key[4:].upper()


def cases():
    b = "basic.json"
    active_id, active = K["active"]
    c = [
        ok(b, "active", "VALID", name="ci-bot", why="valid modern key, no permission required"),
        ok(b, "active", "VALID", ["generate", "info"], "ci-bot", "valid with required permissions"),
        ok(b, "active", "VALID", ["info"], "ci-bot", "valid with one of its permissions"),
        ok(b, "active", "INSUFFICIENT_PERMISSIONS", ["admin"], "ci-bot", "lacks admin"),
        ok(b, "active", "INSUFFICIENT_PERMISSIONS", ["info", "admin"], "ci-bot",
           "has one of two required permissions"),
        ok(b, "active", "INSUFFICIENT_PERMISSIONS", ["Info"], "ci-bot",
           "permissions match exactly (case-sensitive)"),
        ok(b, "noexpiry", "VALID", name="no-expiry", why="expires_at null never expires"),
        ok(b, "noexpiry", "INSUFFICIENT_PERMISSIONS", ["info"], "no-expiry", "no permissions"),
        ok(b, "revoked", "REVOKED", name="old-laptop", why="revoked"),
        ok(b, "revoked", "REVOKED", ["admin"], "old-laptop",
           "revoked is checked before permissions"),
        ok(b, "expired", "EXPIRED", name="expired", why="expires_at one second before now"),
        ok(b, "expired", "EXPIRED", ["admin"], "expired", "expiry is checked before permissions"),
        ok(b, "expires-now", "EXPIRED", name="expires-now", why="expires exactly at now"),
        ok(b, "expires-later-ms", "VALID", ["info"], "later-ms", "expires 1 ms after now"),
        ok(b, "expires-earlier-ms", "EXPIRED", name="earlier-ms", why="expired 1 ms before now"),
        ok(b, "expires-offset", "EXPIRED", name="offset",
           why="02:00+02:00 is exactly now: offsets are honoured"),
        ok(b, "expires-micro", "VALID", name="micro",
           why="expires 1 microsecond after now: sub-millisecond precision is kept"),
        ok(b, "status-expired", "VALID", ["info"], "status-expired",
           "status expired is not judged; expires_at (in the future) is"),
        ok(b, "revoked-and-expired", "REVOKED", name="revoked-and-expired",
           why="revoked is checked before expiry"),
        case(b, K["unknown"][1], "NOT_FOUND", why="well-formed modern key, unknown id"),
        case(b, "mcp_%s_%s" % (active_id, derive("secret:wrong", 64)), "NOT_FOUND",
             why="known id, wrong secret: same answer as an unknown id"),
        case(b, "mcp_%s_%s" % (K["revoked"][0], derive("secret:wrong", 64)), "NOT_FOUND",
             why="known revoked id, wrong secret: NOT_FOUND, not REVOKED"),
        case("empty.json", active, "NOT_FOUND", why="a file with no keys"),
        case(b, LEGACY_HEX, "VALID", ["generate"], key_id="legacy_ci-bot", name="legacy",
             why="legacy 64-hex key found by hash"),
        case(b, LEGACY_HEX, "INSUFFICIENT_PERMISSIONS", ["info"], key_id="legacy_ci-bot",
             name="legacy", why="legacy key lacking a permission"),
        case(b, LEGACY_HEX_REVOKED, "REVOKED", key_id="legacy-revoked", name="legacy-revoked",
             why="legacy key revoked"),
        case(b, LEGACY_PUNCT, "VALID", ["info"], key_id=derive("id:legacy-punct", 16),
             name="legacy-punct", why="legacy key with _-.~+/= under a modern-looking id"),
        case(b, LEGACY_UNKNOWN, "NOT_FOUND", why="legacy-shaped key that is not in the file"),
        case(b, "a" * 16, "NOT_FOUND", why="legacy shape at the shortest length (16)"),
        case(b, "a" * 256, "NOT_FOUND", why="legacy shape at the longest length (256)"),
        # Malformed: never looked up.
        case(b, bad_modern_uppercase(), "MALFORMED", why="modern key in uppercase hex"),
        case(b, active[:-1], "MALFORMED", why="modern key one character short (84)"),
        case(b, active + "0", "MALFORMED", why="modern key one character long (86)"),
        case(b, "mcp_" + active_id + "-" + active[21:], "MALFORMED",
             why="modern key with - instead of _ after the id"),
        case(b, "mcp_short", "MALFORMED", why="starts with mcp_ but is not a modern key"),
        case(b, "mcp_" + LEGACY_HEX, "MALFORMED",
             why="starts with mcp_: judged as modern only, never as legacy"),
        case(b, "", "MALFORMED", why="empty"),
        case(b, "a" * 15, "MALFORMED", why="legacy shape one character short (15)"),
        case(b, "a" * 257, "MALFORMED", why="legacy shape one character long (257)"),
        case(b, LEGACY_HEX[:32] + " " + LEGACY_HEX[32:], "MALFORMED", why="inner space"),
        case(b, " " + active, "MALFORMED", why="leading space (verify does not trim)"),
        case(b, LEGACY_HEX[:30] + "\u00e9\u00e9" + LEGACY_HEX[32:], "MALFORMED",
             why="non-ASCII characters"),
        case(b, LEGACY_HEX[:63] + "!", "MALFORMED", why="a character outside [A-Za-z0-9_-.~+/=]"),
        # Without names: name is null.
        ok("nonames.json", "nonames", "VALID", ["tools:call"], None, "a file without names"),
        case("nonames.json", LEGACY_HEX, "VALID", key_id="legacy_ci-bot", name=None,
             why="legacy key in a file without names"),
        case("nonames.json", active, "NOT_FOUND", why="a key of another file"),
        # Old writer, unknown fields.
        ok("old-writer.json", "old-writer", "VALID",
           why="no revision, unknown fields, no expires_at, no permissions"),
        ok("old-writer.json", "old-writer", "INSUFFICIENT_PERMISSIONS", ["info"],
           why="absent permissions are none"),
        # The ends of the time rule (a file generated in year 0001 is still a file).
        ok("times.json", "year-1", "EXPIRED", why="expires in year 0001"),
        ok("times.json", "year-99", "EXPIRED", why="expires in year 0099, not 1999"),
        ok("times.json", "year-9999", "VALID",
           why="expires at the last nanosecond of year 9999"),
    ]
    for f in ("permissions.json", "permissions-many.json"):
        many = " (more than 64 distinct permissions)" if "many" in f else ""

        def perm(label, code, require, why):
            c.append(ok(f, label, code, require, label, why + many))

        perm("perm-tools", "VALID", ["tools:call:mul"], "tools:call grants tools:call:mul")
        perm("perm-tools", "VALID", ["tools:call:add"],
             "tools:call grants tools:call:add (another key holds tools:call:add)")
        perm("perm-tools", "VALID", ["tools:call", "tools:call:x"],
             "tools:call grants itself and tools:call:x together")
        perm("perm-tool-add", "INSUFFICIENT_PERMISSIONS", ["tools:call:mul"],
             "tools:call:add does not grant tools:call:mul")
        perm("perm-tool-add", "VALID", ["tools:call:add"], "tools:call:add grants itself")
        perm("perm-tool-add", "INSUFFICIENT_PERMISSIONS", ["tools:call"],
             "tools:call:add does not grant tools:call")
        perm("perm-prompts", "VALID", ["prompts:get:greet"], "prompts:get grants prompts:get:greet")
        perm("perm-prompt-greet", "INSUFFICIENT_PERMISSIONS", ["prompts:get:other"],
             "prompts:get:greet does not grant prompts:get:other")
        perm("perm-prompt-greet", "INSUFFICIENT_PERMISSIONS", ["prompts:get"],
             "prompts:get:greet does not grant prompts:get")
        perm("perm-resources", "INSUFFICIENT_PERMISSIONS", ["resources:read:x"],
             "resources:read has no name form: it does not grant resources:read:x")
        perm("perm-resources", "VALID", ["resources:read"], "resources:read grants itself")
        perm("perm-tools", "INSUFFICIENT_PERMISSIONS", ["prompts:get:greet"],
             "tools:call does not grant prompts:get:greet")
        perm("perm-tools", "INSUFFICIENT_PERMISSIONS", ["Tools:call:mul"],
             "the name form is case-sensitive like every permission")
    c += format2_cases()
    for x in c:
        if x["code"] in ("MALFORMED", "NOT_FOUND"):
            assert x["key_id"] is None and x["name"] is None, x
    return c


def format2_cases():
    f = "format2.json"
    v2_id, v2 = K["v2-active"]
    head, secret_at, sum_at = len("mkm_"), len("mkm_") + 17, len(v2) - 6
    checksum_typo = "CHECKSUM"
    c = [
        ok(f, "v2-active", "VALID", ["info"], "v2", "format-2 key"),
        ok(f, "v2-active", "INSUFFICIENT_PERMISSIONS", ["admin"], "v2",
           "format-2 key lacking a permission"),
        ok(f, "v2-revoked", "REVOKED", name="v2-revoked", why="format-2 key revoked"),
        ok(f, "v2-org", "VALID", ["tools:call:add"], "v2-org",
           "format-2 key behind an organisation prefix (acme_mkm_)"),
        ok(f, "v2-org-max", "VALID", name="v2-org-max",
           why="organisation prefix of 16 characters, the longest"),
        ok(f, "v1-beside-v2", "VALID", ["info"], "v1", "format-1 key in the same file"),
        case(f, LEGACY_HEX, "VALID", key_id="legacy_ci-bot", name="legacy",
             why="legacy key in the same file"),
        case(f, K["v2-unknown"][1], "NOT_FOUND",
             why="format-2 key with a good checksum, unknown id"),
        case(f, with_checksum("mkm_%s_%s" % (v2_id, derive62("secret2:wrong", 43))),
             "NOT_FOUND", why="format-2 key, known id, wrong secret, good checksum"),
        # A typo is refused before any lookup (the same verdict with no entries at all, below).
        case(f, typo(v2, secret_at + 10, "Q" if v2[secret_at + 10] != "Q" else "R"),
             "MALFORMED", reason=checksum_typo, why="one character of the secret mistyped"),
        case(f, typo(v2, secret_at, v2[secret_at].swapcase() if v2[secret_at].isalpha() else "x"),
             "MALFORMED", reason=checksum_typo, why="the secret's first character's case changed"),
        case(f, typo(v2, head + 3, "0" if v2[head + 3] != "0" else "1"), "MALFORMED",
             reason=checksum_typo, why="one hex character of the id mistyped"),
        case(f, typo(v2, 1, "n"), "MALFORMED", reason=checksum_typo,
             why="the prefix mistyped (mnm_): still caught by the checksum"),
        case(f, typo(v2, sum_at + 5, "0" if v2[sum_at + 5] != "0" else "1"), "MALFORMED",
             reason=checksum_typo, why="bad checksum (its last character changed)"),
        case(f, v2[:sum_at - 2] + v2[sum_at - 1] + v2[sum_at - 2] + v2[sum_at:], "MALFORMED",
             reason=checksum_typo, why="two characters of the secret swapped")
        if v2[sum_at - 2] != v2[sum_at - 1] else None,
        case(f, v2[:sum_at] + checksum(K["v2-unknown"][1][:-6]), "MALFORMED",
             reason=checksum_typo, why="another key's checksum"),
        case(f, "MKM_" + v2[4:], "MALFORMED", reason=checksum_typo,
             why="the prefix in uppercase"),
        # Wrong prefix with a checksum made for it: not a key of this tool.
        case(f, with_checksum("mkx_%s_%s" % (v2_id, v2[secret_at:sum_at])), "MALFORMED",
             why="wrong prefix (mkx_) with a checksum that matches it"),
        case(f, with_checksum("Acme_mkm_%s_%s" % (v2_id, v2[secret_at:sum_at])), "MALFORMED",
             why="an organisation prefix with an uppercase letter, checksum matching"),
        case(f, with_checksum("abcdefghijklmnopq_mkm_%s_%s" % (v2_id, v2[secret_at:sum_at])),
             "MALFORMED", why="an organisation prefix of 17 characters, checksum matching"),
        case(f, with_checksum("mkm_%s_%s" % (v2_id.upper(), v2[secret_at:sum_at])),
             "MALFORMED", why="an uppercase id, checksum matching"),
        case(f, "mcp_" + v2[4:], "MALFORMED",
             why="a format-2 body behind mcp_: judged as format 1 only"),
        case(f, with_checksum("mcp_mkm_%s_%s" % (v2_id, v2[secret_at:sum_at])), "MALFORMED",
             why="mcp is not an organisation prefix (mcp_ is format 1 only)"),
        case(f, v2[:-1], "MALFORMED", why="format-2 key one character short (69)"),
        case(f, v2 + "0", "MALFORMED", why="format-2 key one character long (71)"),
        case(f, v2[:head + 16] + "-" + v2[head + 17:], "MALFORMED",
             why="format-2 key with - instead of _ after the id"),
        case(f, typo(v2, secret_at + 5, "-"), "MALFORMED",
             why="a character of the secret replaced by - (outside base62)"),
        # No entries needed: the empty verifier refuses a typo for what it is.
        case("empty.json", typo(v2, secret_at + 10, "Q" if v2[secret_at + 10] != "Q" else "R"),
             "MALFORMED", reason=checksum_typo,
             why="a verifier with no entries: a mistyped format-2 key is MALFORMED/CHECKSUM"),
        case("empty.json", v2, "NOT_FOUND",
             why="a verifier with no entries: a good format-2 key is NOT_FOUND"),
    ]
    return [x for x in c if x is not None]


HEADERS = [
    # (x_api_key, authorization, presented key or None, why). A header is null (absent), a
    # string (present once) or a list of strings (every value of a header sent that often).
    ("abc", None, "abc", "X-API-Key"),
    ("  abc\t", None, "abc", "X-API-Key is trimmed"),
    ("", "Bearer abc", None, "an empty X-API-Key wins over Authorization and gives no key"),
    ("a b", None, None, "inner whitespace"),
    ("x", "Bearer y", "x", "X-API-Key wins"),
    (None, "Bearer abc", "abc", "bearer"),
    (None, "bearer abc", "abc", "scheme is case-insensitive"),
    (None, "BEARER\tabc", "abc", "tab separates scheme"),
    (None, "  Bearer   abc  ", "abc", "surrounding whitespace trimmed"),
    (None, "Basic abc", None, "another scheme"),
    (None, "Bearer", None, "no key after the scheme"),
    (None, "Bearer ", None, "only whitespace after the scheme"),
    (None, "Bearer a b", None, "inner whitespace in the key"),
    (None, "abc", None, "no scheme"),
    (None, None, None, "no header"),
    # Only SP and HTAB are trimmed; a key is visible ASCII, nothing else.
    ("\u00a0abc\u00a0", None, None, "NBSP padding is not trimmed: no key"),
    ("\u0085abc\u0085", None, None, "NEL padding is not trimmed: no key"),
    ("\x1fabc\x1f", None, None, "0x1F padding is not trimmed: no key"),
    ("\x0babc\x0c", None, None, "VT and FF padding is not trimmed: no key"),
    (None, "Bearer \u00a0abc", None, "NBSP after the scheme: no key"),
    ("ab\u00e9c", None, None, "a non-ASCII key is no key"),
    (None, "Bearer ab\u00e9c", None, "a non-ASCII bearer key is no key"),
    (None, "Bearer\tabc", "abc", "Bearer followed by HTAB"),
    (None, "bearer abc", "abc", "lowercase bearer"),
    # Repeated headers: ambiguous, so no key (whichever value another reader would pick).
    (["abc", "abc"], None, None, "two X-API-Key headers, even equal: no key"),
    (["abc", "def"], "Bearer abc", None, "two X-API-Key headers: no key, Authorization unused"),
    (None, ["Bearer abc", "Bearer def"], None, "two Authorization headers: no key"),
    ("abc", ["Bearer abc", "Bearer def"], None,
     "two Authorization headers refuse even beside one X-API-Key"),
    (["abc"], ["Bearer def"], "abc", "each header once, given as lists of values"),
]


# --- rate limits -------------------------------------------------------------------------------

def display(limit):
    """How a limit is shown (in the 429 message): N/sec, N/min, N/hour, N/day, else N/<W>s."""
    q, w = limit["requests"], limit["window_seconds"]
    unit = {1: "sec", 60: "min", 3600: "hour", 86400: "day"}.get(w, "%ds" % w)
    return "%d/%s" % (q, unit)


def rate_limit_cases():
    """What each key of limits.json carries: its verdict at `now` and its rate_limit."""
    c = []
    for e in LIMITS["keys"]:
        label = e["name"]
        limit = e.get("rate_limit")
        c.append({"verifier": "limits.json", "key": K[label][1], "key_id": e["id"],
                  "code": "REVOKED" if e["status"] == "revoked" else "VALID",
                  "rate_limit": limit, "display": display(limit) if limit else None,
                  "why": ("no rate_limit member: no limit" if "rate_limit" not in e
                          else "rate_limit null: no limit" if limit is None
                          else "%s (%s)" % (display(limit), label))})
    return c


US = 1000000
# 2026-06-01T00:00:00Z (NOW) in microseconds since the Unix epoch.
T0 = 1780272000 * US


def ceil_div(a, b):
    return -(-a // b)


def gcra(limit, tat, now):
    """docs/verifier.md, "Rate limits", written out: (decision, the TAT to keep)."""
    w = limit["window_seconds"] * US
    t = ceil_div(w, limit["requests"])
    tat_ = max(tat, now)
    new_tat = tat_ + t
    if now < new_tat - w:
        return {"allowed": False, "remaining": 0, "reset_us": tat_ - now,
                "retry_after_us": new_tat - w - now}, tat
    reset = new_tat - now
    return {"allowed": True, "remaining": (w - reset) // t, "reset_us": reset,
            "retry_after_us": 0}, new_tat


def sequence(why, requests, window_seconds, at):
    """A fresh key (TAT 0) making requests at the offsets `at` (us after T0), with every
    decision and the header values it gives."""
    limit = {"requests": requests, "window_seconds": window_seconds}
    tat = 0
    out = []
    for offset in at:
        d, tat = gcra(limit, tat, T0 + offset)
        d = dict({"at_us": T0 + offset}, **d)
        d["ratelimit"] = '"key";r=%d;t=%d' % (d["remaining"], ceil_div(d["reset_us"], US))
        d["retry_after"] = None if d["allowed"] else max(1, ceil_div(d["retry_after_us"], US))
        out.append(d)
    return {"why": why, "limit": limit, "interval_us": ceil_div(window_seconds * US, requests),
            "policy": '"key";q=%d;w=%d' % (requests, window_seconds),
            "display": display(limit), "requests": out}


def rate_limit_sequences():
    s = [
        sequence("a burst of the quota at one instant, then refusals (3/min)", 3, 60,
                 [0, 0, 0, 0, 1 * US]),
        sequence("one interval after the burst exactly one more, 1 us earlier none (3/min)",
                 3, 60, [0, 0, 0, 20 * US - 1, 20 * US, 20 * US, 40 * US]),
        sequence("a window after the burst the whole quota is back (3/min)", 3, 60,
                 [0, 0, 0, 60 * US, 60 * US + 1, 180 * US]),
        sequence("requests one interval apart are always admitted (3/min)", 3, 60,
                 [0, 20 * US, 40 * US, 60 * US, 80 * US, 100 * US]),
        sequence("a sustained rate twice the limit: every other request refused (10 per 10 s)",
                 10, 10, [0] * 10 + [i * US // 2 for i in range(1, 11)]),
        sequence("an interval that does not divide the window (7/sec: 142,858 us): 7 intervals "
                 "overrun the second, so a burst gets 6", 7, 1,
                 [0] * 8 + [142857, 142858, US, 2 * US]),
        sequence("the doc's 100/min: a refusal 0.6 s from the next slot says Retry-After 1", 100,
                 60, [0] * 101 + [400000, 600000]),
        sequence("the shortest limit, 1/sec: Retry-After never below 1", 1, 1,
                 [0, 1, US - 1, US, US + 1]),
        sequence("a long window, 1/day", 1, 86400,
                 [0, 3600 * US, 86400 * US - 1, 86400 * US, 86400 * US]),
        sequence("a window of no named unit, 10/30s", 10, 30, [0] * 11 + [3 * US]),
        sequence("the largest quota, 1,000,000,000/day (interval 87 us, rounded up)",
                 1000000000, 86400, [0, 0, 87, 86400 * US]),
        sequence("the largest quota per second, 1,000,000,000/sec: the interval rounds up to "
                 "1 us, so a burst is at most 1,000,000", 1000000000, 1, [0, 0, 1, 2]),
    ]
    burst = [r["allowed"] for r in s[5]["requests"][:8]]
    assert burst == [True] * 6 + [False] * 2, burst
    assert s[5]["interval_us"] == 142858
    assert any(r["retry_after"] == 1 and r["retry_after_us"] == 600000 for r in s[6]["requests"])
    for seq in s:
        assert any(r["allowed"] for r in seq["requests"])
        for r in seq["requests"]:
            assert r["at_us"] < 2**53 and r["reset_us"] < 2**53  # exact in every reader
    return s


# --- the key pattern ---------------------------------------------------------------------------

# docs/verifier.md, "Key shapes": one regular expression for every key of both formats.
KEY_PATTERN = (r"\b(?:mcp_[0-9a-f]{16}_[0-9a-f]{64}"
               r"|(?:[a-z][a-z0-9]{0,15}_)?mkm_[0-9a-f]{16}_[0-9A-Za-z]{49})\b")


def key_pattern():
    """What the pattern must find (whole keys, alone and inside text) and must not (strings a
    scanner meets that are not keys of this tool)."""
    keys = [K[label][1] for label in ("v2-active", "v2-revoked", "v2-org", "v2-org-max",
                                      "v1-beside-v2", "active")]
    keys += [format2("pattern:%d" % i)[1] for i in range(4)]
    v2, v1, org = K["v2-active"][1], K["active"][1], K["v2-org"][1]
    hexes = derive("pattern:hex", 128)
    alnum = derive62("pattern:alnum", 64)
    jwt = ("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
           "eyJzdWIiOiJtY3BfMDEyMzQ1Njc4OWFiY2RlZl8iLCJpYXQiOjE3MDAwMDAwMDB9."
           + derive62("pattern:jwt", 43))
    near = [
        # Other projects' mcp_ keys, and format 1 off by a character.
        ("mcp_" + hexes[:32], "an mcp_ key of 32 hex (another gateway)"),
        ("mcp_sk_" + alnum[:40], "an mcp_sk_ key of another project"),
        ("mcp_live_" + alnum[:32], "an mcp_live_ key of another project"),
        ("mcp_%s_%s" % (hexes[:16], alnum[:43]), "mcp_ with a base62 secret"),
        (v1[:-1], "format 1 one hex character short"),
        (v1 + "a", "format 1 one hex character long"),
        ("mcp_" + v1[4:].upper(), "format 1 in uppercase hex"),
        ("mcp-" + v1[4:], "mcp- instead of mcp_"),
        # Hex digests, UUIDs, JWTs and other vendors' tokens.
        (hexes[:64], "a SHA-256 in hex"),
        (hexes[:40], "a SHA-1 in hex"),
        (hexes, "128 hex characters"),
        ("%s-%s-%s-%s-%s" % (hexes[:8], hexes[8:12], hexes[12:16], hexes[16:20], hexes[20:32]),
         "a UUID"),
        (hexes[:32], "a UUID without dashes"),
        (jwt, "a JWT"),
        ("ghp_" + alnum[:36], "a GitHub token"),
        ("sk_live_" + alnum[:24], "a Stripe key"),
        # Format 2 off by a character or a case, or glued into a longer word.
        (v2[:-1], "format 2 one character short"),
        (v2 + "a", "format 2 one character long"),
        ("mkm_" + v2[4:20].upper() + v2[20:], "format 2 with an uppercase id"),
        ("mkm-" + v2[4:], "mkm- instead of mkm_"),
        ("MKM_" + v2[4:], "MKM_ in uppercase"),
        ("mkmx_" + v2[4:], "mkmx_ instead of mkm_"),
        ("Acme_mkm_" + v2[4:], "an organisation prefix with an uppercase letter"),
        ("abcdefghijklmnopq_mkm_" + v2[4:], "an organisation prefix of 17 characters"),
        ("x" + v2, "a key glued to a word before it"),
        (v2 + "_x", "a key glued to a word after it"),
        ("mkm_id mkm_url mkm_%s" % hexes[:16], "identifiers that start with mkm_"),
    ]
    texts = [
        ("X-API-Key: %s\r\n" % v2, [v2]),
        ("Authorization: Bearer %s" % org, [org]),
        ("MCP_API_KEY=%s\nAPI_KEY_REQUIRED=true\n" % v1, [v1]),
        ('{"headers": {"X-API-Key": "%s"}, "old": "%s"}' % (v2, v1), [v2, v1]),
        ("https://example.com/mcp?api_key=%s&x=1" % v2, [v2]),
        ("two keys: %s,%s." % (v2, org), [v2, org]),
        ("no key: %s %s" % (hexes[:64], jwt), []),
    ]
    # Shaped like keys, checksum and all, but with no randomness: scanners' entropy floors
    # drop them (docs/scanning/).
    placeholders = [with_checksum("mkm_%s_%s" % ("0" * 16, "0" * 43)),
                    with_checksum("mkm_%s_%s" % ("0123456789abcdef", "x" * 43)),
                    "mcp_%s_%s" % ("0" * 16, "0" * 64),
                    "mcp_%s_%s" % ("a" * 16, "b" * 64)]
    return {"pattern": KEY_PATTERN, "keys": keys,
            "near_misses": [{"text": t, "why": w} for t, w in near],
            "texts": [{"text": t, "keys": k} for t, k in texts],
            "placeholders": placeholders}


# --- routing headers (routing.json) -----------------------------------------------------------

ROUTING_ABOUT = [
    "MCP 2026-07-28 (SEP-2243) routing headers under tool permissions: Mcp-Method on every POST,",
    "Mcp-Name on tools/call, prompts/get (the name) and resources/read (the uri), as sent or in",
    "the Base64 sentinel form =?base64?<canonical base64 of UTF-8>?=. The Rust tower layer",
    "(mcp_key_verifier::tower with tool_permissions), the Python APIKeyMiddleware",
    "(tool_permissions=True) and the TypeScript apiKeyAuth (toolPermissions: true) run every case.",
    "",
    "A case: `http_method`; `headers`, each a list of its values, every value sent as a header",
    "line of its own (a header absent from the object is not sent; each character of a value is",
    "one byte, U+0000-U+00FF); `body`, sent as UTF-8 (\"\" sends none). Every case is sent once",
    "with the key `full` and once with the key `none` (permissions below).",
    "",
    "`expect` is either an admission: `allow`, `needs` (what the request needs beyond the",
    "required permissions: a list of alternatives, each satisfied by any one of its",
    "permissions) and `scope` (the WWW-Authenticate scope of the 403 the key `none` gets, or",
    "null when it is let through too; the key `full` is always let through, with the body",
    "unchanged); or a refusal, the same for both keys: HTTP `status`, JSON-RPC error `code`,",
    "`message` and `data_code` (error.data.code).",
    "",
    "Not here: a POST with neither body nor Mcp-Method (and no 2026-07-28 claim). The tower",
    "layer refuses it 403 METHOD_UNSEEN (fail closed, as serve does); the Python and TypeScript",
    "middlewares let it through needing nothing (docs/verifier.md: an empty body needs nothing",
    "extra), since the application behind them gets no message either.",
]


def routing_vectors():
    """The cases of routing.json: the rules of crates/verifier/src/routing.rs and of the tower
    layer's `check_tools`, with the answers of crates/verifier/src/rpc.rs."""
    v26, v25 = "2026-07-28", "2025-11-25"

    def b64(s):
        return "=?base64?" + base64.b64encode(s.encode()).decode() + "?="

    def rpc(method, **params):
        m = {"jsonrpc": "2.0", "id": 1, "method": method}
        if params:
            m["params"] = params
        return json.dumps(m, separators=(",", ":"), ensure_ascii=False)

    def note(method):
        return json.dumps({"jsonrpc": "2.0", "method": method}, separators=(",", ":"))

    def h(method=None, name=None, version=v26):
        out = {}
        for k, v in (("mcp-method", method), ("mcp-name", name), ("mcp-protocol-version", version)):
            if v is not None:
                out[k] = v if isinstance(v, list) else [v]
        return out

    def bad(message):
        return {"status": 400, "code": -32020, "data_code": "BAD_ROUTING", "message": message}

    def allow(*needs):
        """Admitted, needing `needs`; the key without permissions is refused the narrowest
        alternative of each that can be quoted (tools:call:X, else tools:call)."""
        quotable = lambda p: all(0x21 <= ord(c) <= 0x7e and c not in '"\\' for c in p)  # noqa: E731
        scope = [next((a for a in reversed(n) if quotable(a)), n[0]) for n in needs]
        return {"allow": True, "needs": [list(n) for n in needs],
                "scope": " ".join(dict.fromkeys(scope)) or None}

    echo = rpc("tools/call", name="echo", arguments={"text": "hi"})
    add = rpc("tools/call", name="add", arguments={"a": 1, "b": 2})
    need_echo = allow(("tools:call", "tools:call:echo"))
    need_add = allow(("tools:call", "tools:call:add"))
    nothing = allow()
    mismatch = {"status": 400, "code": -32020, "data_code": "HEADER_MISMATCH",
                "message": "the Mcp-Method/Mcp-Name headers do not match the request body"}
    parse = {"status": 400, "code": -32700, "data_code": "PARSE_ERROR",
             "message": "the body is not JSON"}
    m_method = "the Mcp-Method header is repeated or not ASCII"
    m_name = "the Mcp-Name header is repeated or not ASCII"
    m_version = "the MCP-Protocol-Version header is repeated or not ASCII"
    m_sentinel = "the Mcp-Name header carries a malformed base64 sentinel"
    m_name_missing = "the Mcp-Name header is required with this Mcp-Method"
    m_method_missing = ("the Mcp-Method header is required on every POST with "
                        "MCP-Protocol-Version 2026-07-28")

    out = []

    def case(why, headers, body, expect, http_method="POST"):
        out.append({"why": why, "http_method": http_method, "headers": headers, "body": body,
                    "expect": expect})

    # Headers that agree with the body.
    case("tools/call: Mcp-Method and Mcp-Name agree with the body; the tool decides",
         h("tools/call", "echo"), echo, need_echo)
    case("prompts/get: Mcp-Name is the prompt's name",
         h("prompts/get", "greet"), rpc("prompts/get", name="greet"),
         allow(("prompts:get", "prompts:get:greet")))
    case("resources/read: Mcp-Name is the uri (params.uri), not params.name",
         h("resources/read", "file:///notes/a.txt"),
         rpc("resources/read", uri="file:///notes/a.txt"), allow(("resources:read",)))
    case("a method that bears no name needs no Mcp-Name and nothing more",
         h("tools/list"), rpc("tools/list"), nothing)
    case("a notification names its method too",
         h("notifications/initialized"), note("notifications/initialized"), nothing)
    case("an Mcp-Name with a method that bears no name is not compared",
         h("tools/list", "anything"), rpc("tools/list"), nothing)

    # The method disagrees.
    case("Mcp-Method names a harmless method, the body calls a tool: refused, whatever the key",
         h("tools/list"), echo, mismatch)
    case("Mcp-Method and Mcp-Name name a tool, the body is another method",
         h("tools/call", "echo"), rpc("tools/list"), mismatch)
    case("the method is compared exactly (case-sensitive)",
         h("Tools/Call", "echo"), echo, mismatch)
    case("a body that is JSON but no JSON-RPC request has no method to agree with",
         h("tools/call", "echo"), '"tools/call"', mismatch)

    # The name disagrees.
    case("tools/call: Mcp-Name names one tool, the body calls another",
         h("tools/call", "echo"), add, mismatch)
    case("prompts/get: Mcp-Name names one prompt, the body gets another",
         h("prompts/get", "greet"), rpc("prompts/get", name="farewell"), mismatch)
    case("resources/read: Mcp-Name names one uri, the body reads another",
         h("resources/read", "file:///notes/a.txt"),
         rpc("resources/read", uri="file:///notes/b.txt"), mismatch)
    case("resources/read compares the uri: an Mcp-Name equal to params.name does not match",
         h("resources/read", "notes"),
         rpc("resources/read", name="notes", uri="file:///notes/a.txt"), mismatch)
    case("the name is compared exactly (case-sensitive)",
         h("tools/call", "Echo"), echo, mismatch)
    case("tools/call whose body names no tool does not match an Mcp-Name",
         h("tools/call", "echo"), rpc("tools/call", arguments={}), mismatch)

    # Base64 sentinel names.
    case("a Base64 sentinel Mcp-Name is decoded before it is compared",
         h("tools/call", b64("echo")), echo, need_echo)
    case("a non-ASCII tool name comes as a sentinel; its permission cannot be quoted in a "
         "challenge, so the 403 names tools:call",
         h("tools/call", b64("\u00e9cho")), rpc("tools/call", name="\u00e9cho"),
         allow(("tools:call", "tools:call:\u00e9cho")))
    case("a uri with a space, as a sentinel",
         h("resources/read", b64("file:///notes/a b.txt")),
         rpc("resources/read", uri="file:///notes/a b.txt"), allow(("resources:read",)))
    case("a sentinel that decodes to another tool",
         h("tools/call", b64("add")), echo, mismatch)
    case("the sentinel is decoded, so a body naming the sentinel's text itself does not match",
         h("tools/call", b64("echo")), rpc("tools/call", name=b64("echo")), mismatch)
    case("a byte-order mark decoded from a sentinel is part of the name",
         h("tools/call", b64("\ufeffecho")), echo, mismatch)
    case("a value that only starts like a sentinel is a plain name",
         h("tools/call", "=?base64?ZWNobw=="), rpc("tools/call", name="=?base64?ZWNobw=="),
         allow(("tools:call", "tools:call:=?base64?ZWNobw==")))
    case("malformed sentinel: non-canonical Base64 (YR== decodes to 'a' with non-zero trailing "
         "bits; the encoder writes YQ==)",
         h("tools/call", "=?base64?YR==?="), rpc("tools/call", name="a"), bad(m_sentinel))
    case("malformed sentinel: not Base64 at all",
         h("tools/call", "=?base64?!!?="), echo, bad(m_sentinel))
    case("malformed sentinel: Base64 without its padding",
         h("tools/call", "=?base64?ZWNobw?="), echo, bad(m_sentinel))
    case("malformed sentinel: a space inside the Base64 (lenient decoders skip it)",
         h("tools/call", "=?base64?ZWNo bw==?="), echo, bad(m_sentinel))
    case("malformed sentinel: the bytes are not UTF-8 (0xff)",
         h("tools/call", "=?base64?/w==?="), echo, bad(m_sentinel))

    # Unusable headers.
    case("Mcp-Method sent twice (even with the same value) is ambiguous",
         h(["tools/call", "tools/call"], "echo"), echo, bad(m_method))
    case("Mcp-Name sent twice is ambiguous",
         h("tools/call", ["echo", "echo"]), echo, bad(m_name))
    case("MCP-Protocol-Version sent twice, with Mcp-Method",
         h("tools/call", "echo", [v26, v26]), echo, bad(m_version))
    case("Mcp-Method with a byte that is not ASCII (each character of a header value here is one "
         "byte)",
         h("tools/call\u00e9", "echo"), echo, bad(m_method))
    case("Mcp-Name with a byte that is not ASCII: a non-ASCII name must come as a sentinel",
         h("tools/call", "caf\u00e9"), rpc("tools/call", name="caf\u00e9"), bad(m_name))
    case("MCP-Protocol-Version with a byte that is not ASCII, with Mcp-Method",
         h("tools/list", None, "2026-07-28\u00e9"), rpc("tools/list"), bad(m_version))
    case("the headers are judged before the body is read: a repeated Mcp-Method with a body that "
         "is not JSON",
         h(["tools/call", "tools/list"], "echo"), "{", bad(m_method))
    case("without Mcp-Method, Mcp-Name is not read: sent twice it is not refused, and the body "
         "decides",
         h(None, ["add", "add"], v25), echo, need_echo)

    # Mcp-Name required.
    case("tools/call without Mcp-Name", h("tools/call"), echo, bad(m_name_missing))
    case("prompts/get without Mcp-Name",
         h("prompts/get"), rpc("prompts/get", name="greet"), bad(m_name_missing))
    case("resources/read without Mcp-Name, and without a body",
         h("resources/read"), "", bad(m_name_missing))
    case("Mcp-Name required whatever the protocol version",
         h("tools/call", None, v25), echo, bad(m_name_missing))

    # Mcp-Method required by 2026-07-28 on a POST.
    case("a POST of 2026-07-28 without Mcp-Method, with a body",
         h(None), echo, bad(m_method_missing))
    case("a POST of 2026-07-28 without Mcp-Method and without a body",
         h(None), "", bad(m_method_missing))
    case("a POST of 2026-07-28 without Mcp-Method, the version with surrounding spaces",
         h(None, None, " 2026-07-28 "), echo, bad(m_method_missing))
    case("Mcp-Method missing is told before anything else (here an Mcp-Name sent twice)",
         h(None, ["echo", "add"]), echo, bad(m_method_missing))
    case("a GET of 2026-07-28 (the event stream) is no JSON-RPC message: not held to Mcp-Method",
         h(None), "", nothing, "GET")
    case("a DELETE of 2026-07-28 (ending a session) is not held to Mcp-Method",
         h(None), "", nothing, "DELETE")
    case("an older version without Mcp-Method: the body decides",
         h(None, None, v25), echo, need_echo)
    case("no version at all and no routing headers: the body decides", {}, add, need_add)
    case("a version sent twice claims none: without Mcp-Method the body decides",
         h(None, None, [v26, v26]), echo, need_echo)

    # Batches.
    case("a batch never matches routing headers, which describe one message",
         h("tools/call", "echo"), "[" + echo + "]", mismatch)
    case("a batch without routing headers (an older client): every element decides",
         h(None, None, v25), "[" + echo + "," + add + "," + rpc("tools/list") + "]",
         allow(("tools:call", "tools:call:echo"), ("tools:call", "tools:call:add")))

    # Headers without a body: judged from the headers.
    case("a POST without a body is judged from its headers", h("tools/call", "add"), "", need_add)
    case("a POST without a body, a Base64 sentinel name",
         h("tools/call", b64("add")), "", need_add)
    case("a POST without a body for a method that bears no name needs nothing more",
         h("tools/list"), "", nothing)
    case("a body of whitespace only counts as no body",
         h("prompts/get", "greet"), " \r\n\t ", allow(("prompts:get", "prompts:get:greet")))
    case("a GET without a body is judged from its headers too",
         h("tools/call", "add"), "", need_add, "GET")
    case("an older version's headers without a body are judged the same way",
         h("tools/call", "add", v25), "", need_add)

    # Older versions: the body is read and must agree.
    case("2025-11-25 with headers that agree with the body",
         h("tools/call", "echo", v25), echo, need_echo)
    case("2025-11-25 with headers that disagree with the body",
         h("tools/call", "echo", v25), add, mismatch)
    case("no MCP-Protocol-Version, headers that disagree with the body",
         h("tools/call", "echo", None), add, mismatch)

    # Whitespace, order, JSON.
    case("surrounding spaces and tabs of every routing header are trimmed",
         h(" tools/call\t", "\t echo ", " 2026-07-28 "), echo, need_echo)
    case("a sentinel is decoded after trimming",
         h("tools/call", "  " + b64("echo") + " "), echo, need_echo)
    case("a body that is not JSON is a parse error before any comparison",
         h("tools/call", "echo"), "{", parse)
    case("without routing headers, a body that is not JSON is a parse error",
         h(None, None, v25), "{not json", parse)
    case("a member written twice: the last one counts, in the body as for every JSON-RPC parser "
         "here",
         h("tools/call", "add"),
         '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","name":"add"}}',
         need_add)
    return {"about": ROUTING_ABOUT,
            "keys": {"full": ["tools:call", "prompts:get", "resources:read"], "none": []},
            "cases": out}


def dump_routing(doc):
    """routing.json, one member of a case a line (readable, still plain JSON)."""
    lines = ["{", '  "about": [',
             ",\n".join("    " + json.dumps(line) for line in doc["about"]), "  ],",
             '  "keys": ' + json.dumps(doc["keys"]) + ",", '  "cases": [']
    cases_ = []
    for c in doc["cases"]:
        members = ",\n".join("      %s: %s" % (json.dumps(k), json.dumps(v)) for k, v in c.items())
        cases_.append("    {\n" + members + "\n    }")
    lines += [",\n".join(cases_), "  ]", "}"]
    text = "\n".join(lines) + "\n"
    assert json.loads(text) == doc
    return text.encode("ascii")


def main():
    out = {}
    for name, f in VALID_FILES.items():
        out[name] = dump(f)
    for name, f, _ in INVALID:
        out[name] = dump(f)
    for name, raw, _ in RAW_INVALID:
        out[name] = raw
    out["key-pattern.json"] = dump(key_pattern())
    out["cases.json"] = dump({
        "now": NOW,
        "cases": cases(),
        "invalid": [{"verifier": n, "why": w} for n, _, w in INVALID + RAW_INVALID],
        "headers": [{"x_api_key": x, "authorization": a, "key": k, "why": w}
                    for x, a, k, w in HEADERS],
        "rate_limits": rate_limit_cases(),
    })
    out["ratelimit.json"] = dump({"sequences": rate_limit_sequences()})
    out["routing.json"] = dump_routing(routing_vectors())
    for name, data in sorted(out.items()):
        with open(os.path.join(HERE, name), "wb") as fh:
            fh.write(data)
    sys.stdout.write("wrote %d files to %s\n" % (len(out), HERE))


if __name__ == "__main__":
    main()
