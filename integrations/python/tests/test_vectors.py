"""Every conformance vector in tests/vectors/verifier/ (docs/verifier.md)."""

import datetime as dt
import json
import os

import pytest

from mcp_key_verifier import Limiter, RateLimit, Verifier, VerifierError, decide, key_from_headers

from conftest import VECTORS

with open(os.path.join(VECTORS, "cases.json"), encoding="utf-8") as _fh:
    SPEC = json.load(_fh)
NOW = dt.datetime.fromisoformat(SPEC["now"].replace("Z", "+00:00"))
with open(os.path.join(VECTORS, "ratelimit.json"), encoding="utf-8") as _fh:
    SEQUENCES = json.load(_fh)["sequences"]


def test_the_vectors_are_there():
    assert len(SPEC["cases"]) >= 40 and len(SPEC["invalid"]) >= 10 and SPEC["headers"]


@pytest.mark.parametrize("case", SPEC["cases"], ids=lambda c: c["why"])
def test_case(case):
    v = Verifier.from_file(os.path.join(VECTORS, case["verifier"]))
    verdict = v.verify(case["key"], case["require"], now=NOW)
    assert verdict.code == case["code"]
    assert verdict.reason == case["reason"]
    assert verdict.valid == (case["code"] == "VALID")
    assert verdict.key_id == case["key_id"]
    assert verdict.name == case["name"]
    if case["code"] in ("MALFORMED", "NOT_FOUND"):
        assert verdict.permissions == () and verdict.expires_at is None


@pytest.mark.parametrize("bad", SPEC["invalid"], ids=lambda c: c["verifier"])
def test_invalid_file_is_refused(bad):
    path = os.path.join(VECTORS, bad["verifier"])
    with pytest.raises(VerifierError) as err:
        Verifier.from_file(path)
    assert path in str(err.value)
    with open(path, "rb") as fh:
        with pytest.raises(VerifierError):
            Verifier.from_json(fh.read())


@pytest.mark.parametrize("h", SPEC["headers"], ids=lambda c: c["why"])
def test_headers(h):
    assert key_from_headers(h["x_api_key"], h["authorization"]) == h["key"]


def test_verdict_details_of_a_valid_key():
    case = next(c for c in SPEC["cases"] if c["code"] == "VALID" and c["name"] == "ci-bot")
    v = Verifier.from_file(os.path.join(VECTORS, case["verifier"]))
    verdict = v.verify(case["key"], now=NOW)
    assert verdict.permissions == ("generate", "info")
    assert verdict.expires_at == dt.datetime(2026, 9, 1, tzinfo=dt.timezone.utc)
    assert v.revision == 17
    with pytest.raises(Exception):
        verdict.code = "VALID"  # frozen
    # The real clock: 2026-06-01 may be past, so only the shape is asserted here.
    assert v.verify(case["key"]).code in ("VALID", "EXPIRED")


def test_old_writer_has_revision_zero():
    assert Verifier.from_file(os.path.join(VECTORS, "old-writer.json")).revision == 0


def test_error_messages_hold_no_key_material():
    for bad in SPEC["invalid"]:
        path = os.path.join(VECTORS, bad["verifier"])
        with open(path, "rb") as fh:
            raw = fh.read()
        try:
            doc = json.loads(raw)
        except ValueError:
            continue
        if not isinstance(doc, dict):
            continue
        with pytest.raises(VerifierError) as err:
            Verifier.from_file(path)
        msg = str(err.value)
        if isinstance(doc.get("hash_key"), str) and len(doc["hash_key"]) > 8:
            assert doc["hash_key"] not in msg
        for k in doc.get("keys") or []:
            if isinstance(k, dict) and isinstance(k.get("hash"), str):
                assert k["hash"] not in msg


def test_fast_shape_test_agrees_with_the_spec_regex():
    """verify's modern-shape test is hand-optimised; it must agree with the spec's regex on
    near-miss keys (uppercase, whitespace, non-ASCII digits, wrong lengths)."""
    import random
    import re
    import secrets

    spec = re.compile(r"mcp_[0-9a-f]{16}_[0-9a-f]{64}")
    v = Verifier.from_file(os.path.join(VECTORS, "empty.json"))
    rng = random.Random(1)
    alphabet = "0123456789abcdefABCDEFgz _\t\n\u00e9\u0660\uff10-\ud800"
    for _ in range(20000):
        k = list("mcp_%s_%s" % (secrets.token_hex(8), secrets.token_hex(32)))
        for _ in range(rng.randint(0, 2)):
            k[rng.randrange(4, 85)] = rng.choice(alphabet)
        if rng.random() < 0.1:
            k.insert(rng.randrange(4, 85), rng.choice(alphabet))
        k = "".join(k)
        want = "NOT_FOUND" if spec.fullmatch(k) else "MALFORMED"
        assert v.verify(k).code == want


def test_a_member_twice_is_refused_however_it_is_written():
    def file(extra):
        return ('{"format":"mcp-key-verifier","version":1,"algorithm":"hmac-sha256",'
                '"hash_key":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",'
                '"generated_at":"2026-01-01T00:00:00Z",%s"keys":[]}' % extra)
    assert len(Verifier.from_json(file(""))) == 0
    with pytest.raises(VerifierError):
        Verifier.from_json(file('"note":1,"n\\u006fte":2,'))
    with pytest.raises(VerifierError):
        Verifier.from_json(file('"x":[{"a":{"b":1,"b":2}}],'))
    assert len(Verifier.from_json(file('"b":["a","a"],'))) == 0


@pytest.mark.parametrize("case", SPEC["rate_limits"], ids=lambda c: c["why"])
def test_rate_limit_of_an_entry(case):
    v = Verifier.from_file(os.path.join(VECTORS, case["verifier"]))
    verdict = v.verify(case["key"], now=NOW)
    assert verdict.code == case["code"] and verdict.key_id == case["key_id"]
    want = case["rate_limit"]
    if want is None:
        assert verdict.rate_limit is None
    else:
        assert verdict.rate_limit == RateLimit(want["requests"], want["window_seconds"])
        assert str(verdict.rate_limit) == case["display"]


@pytest.mark.parametrize("seq", SEQUENCES, ids=lambda s: s["why"])
def test_rate_limit_sequence(seq):
    """Every decision of the sequence, by the GCRA step and by a Limiter, and the header
    values it gives."""
    limit = RateLimit(seq["limit"]["requests"], seq["limit"]["window_seconds"])
    assert limit.interval_us == seq["interval_us"]
    assert limit.policy_header() == seq["policy"] and str(limit) == seq["display"]
    limiter = Limiter()
    tat = 0
    for i, r in enumerate(seq["requests"]):
        d, tat = decide(limit, tat, r["at_us"])
        got = (d.allowed, d.remaining, d.reset_us, d.retry_after_us, d.header(),
               None if d.allowed else d.retry_after)
        want = (r["allowed"], r["remaining"], r["reset_us"], r["retry_after_us"], r["ratelimit"],
                r["retry_after"])
        assert got == want, "request %d" % i
        assert limiter.check("k", limit, r["at_us"]) == d, "request %d (Limiter)" % i
