"""Rate limits: RateLimit and Limiter, and APIKeyMiddleware's 429 and RateLimit headers."""

import json
import threading

import pytest

from mcp_key_verifier import APIKeyMiddleware, Limiter, RateLimit, Verifier

from conftest import make_key
from test_middleware import Recorder, call, rpc

# 2026-06-01T00:00:00Z in microseconds.
T0 = 1780272000 * 1_000_000


class FrozenLimiter(Limiter):
    """A Limiter whose clock stands still at `now` (the tests set it)."""

    now = T0

    def check(self, key_id, limit, now=None):
        return super().check(key_id, limit, self.now)


def test_a_limit_is_q_integers_per_w_integer_seconds():
    assert str(RateLimit(100, 60)) == "100/min" and str(RateLimit(10, 30)) == "10/30s"
    assert str(RateLimit(5, 1)) == "5/sec" and str(RateLimit(2, 3600)) == "2/hour"
    assert str(RateLimit(1, 86400)) == "1/day"
    for q, w in ((0, 60), (10**9 + 1, 60), (1, 0), (1, 86401), (True, 60), (1.0, 60), (1, 60.0),
                 ("1", 60)):
        with pytest.raises(ValueError):
            RateLimit(q, w)


def test_the_limiter_counts_keys_apart_and_forgets_whole_quotas():
    lim, limit, now = Limiter(), RateLimit(2, 10), 50 * 10**6
    assert lim.check("a", limit, now).allowed and lim.check("a", limit, now).allowed
    assert not lim.check("a", limit, now).allowed
    assert lim.check("b", limit, now).allowed, "another key has its own quota"
    for i in range(5000):
        lim.check("k%d" % i, limit, now + 100 * 10**6 + i)
    assert len(lim) <= 5002
    later = now + 1000 * 10**6
    for i in range(10000):
        lim.check("z%d" % i, limit, later)
    assert len(lim) == 10000, "every key whose quota is whole was forgotten"


def test_the_limiter_admits_the_quota_exactly_from_many_threads():
    lim, limit = Limiter(), RateLimit(1000, 3600)
    admitted = []

    def hammer():
        admitted.append(sum(lim.check("k", limit, T0).allowed for _ in range(300)))

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(admitted) == 1000


@pytest.fixture
def limited(writer):
    keys = {p: make_key() for p in ("limited", "free", "narrow")}
    writer.write([writer.entry(*keys["limited"], permissions=["tools:call"], rate_limit=(3, 60)),
                  writer.entry(*keys["free"], permissions=["tools:call"]),
                  writer.entry(*keys["narrow"], permissions=["tools:call:add"],
                               rate_limit=(1, 60))], revision=1)
    return Verifier.from_file(writer.path), keys


def test_three_per_minute_then_429_while_another_key_is_admitted(limited):
    v, keys = limited
    rec = Recorder()
    app = APIKeyMiddleware(rec, v, limiter=FrozenLimiter())
    key = [("X-API-Key", keys["limited"][1])]
    for remaining, reset in ((2, 20), (1, 40), (0, 60)):
        status, headers, body = call(app, key)
        assert (status, body) == (200, b"ok")
        assert headers["ratelimit-policy"] == '"key";q=3;w=60'
        assert headers["ratelimit"] == '"key";r=%d;t=%d' % (remaining, reset)
        assert "retry-after" not in headers
    status, headers, body = call(app, key)
    assert status == 429
    assert headers["retry-after"] == "20"
    assert headers["ratelimit-policy"] == '"key";q=3;w=60'
    assert headers["ratelimit"] == '"key";r=0;t=60'
    assert headers["content-type"] == "application/json"
    assert headers["cache-control"] == "no-store"
    assert int(headers["content-length"]) == len(body)
    assert "www-authenticate" not in headers
    assert json.loads(body) == {
        "jsonrpc": "2.0", "id": None,
        "error": {"code": -32029,
                  "message": "rate limit exceeded for this API key (3/min); retry after 20 s",
                  "data": {"code": "RATE_LIMITED", "retry_after": 20}}}
    # The body is written as the middleware writes its other answers (json.dumps).
    assert body == json.dumps(json.loads(body)).encode()
    assert len(rec.calls) == 3
    # Another key, unlimited: admitted, and its answers carry no RateLimit headers.
    status, headers, _ = call(app, [("X-API-Key", keys["free"][1])])
    assert status == 200 and "ratelimit" not in headers and "ratelimit-policy" not in headers
    # One interval later the limited key has one request again.
    app.limiter.now = T0 + 20 * 10**6
    status, headers, _ = call(app, key)
    assert status == 200 and headers["ratelimit"] == '"key";r=0;t=60'
    assert call(app, key)[0] == 429


def test_a_refused_request_uses_nothing(limited):
    """Only a request that would be admitted counts: 401, 403 (require or tool permissions)
    and 400 leave the quota whole."""
    v, keys = limited
    app = APIKeyMiddleware(Recorder(), v, tool_permissions=True, limiter=FrozenLimiter())
    key = [("X-API-Key", keys["narrow"][1])]
    for _ in range(3):
        assert call(app, key, body=rpc("tools/call", name="rm"))[0] == 403
        assert call(app, key, body=b"{not json")[0] == 400
    strict = APIKeyMiddleware(Recorder(), v, require=["admin"], limiter=app.limiter)
    assert call(strict, key)[0] == 403
    status, headers, _ = call(app, key, body=rpc("tools/call", name="add"))
    assert status == 200 and headers["ratelimit"] == '"key";r=0;t=60'
    status, headers, body = call(app, key, body=rpc("tools/call", name="add"))
    assert status == 429 and json.loads(body)["error"]["data"]["code"] == "RATE_LIMITED"


def test_the_app_headers_are_kept_beside_the_ratelimit_headers(limited):
    v, keys = limited

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 201,
                    "headers": [(b"x-app", b"1")]})
        await send({"type": "http.response.body", "body": b""})

    status, headers, _ = call(APIKeyMiddleware(app, v), [("X-API-Key", keys["limited"][1])])
    assert status == 201 and headers["x-app"] == "1"
    assert headers["ratelimit"] == '"key";r=2;t=20'


def test_rate_limits_can_be_left_to_something_else(limited):
    v, keys = limited
    app = APIKeyMiddleware(Recorder(), v, rate_limits=False)
    for _ in range(5):
        status, headers, _ = call(app, [("X-API-Key", keys["limited"][1])])
        assert status == 200 and "ratelimit" not in headers
    with pytest.raises(TypeError):
        APIKeyMiddleware(Recorder(), v, limiter=object())


def test_a_websocket_handshake_counts_and_is_refused_over_the_limit(limited):
    v, keys = limited
    rec = Recorder()
    app = APIKeyMiddleware(rec, v, limiter=FrozenLimiter())
    key = [("X-API-Key", keys["narrow"][1])]  # 1/min
    call(app, key, kind="websocket")
    assert len(rec.calls) == 1
    assert call(app, key, kind="websocket") == [{"type": "websocket.close", "code": 1008}]
    assert len(rec.calls) == 1


def test_the_real_clock(limited):
    """Without a frozen clock: the first request has the whole quota but one."""
    v, keys = limited
    status, headers, _ = call(APIKeyMiddleware(Recorder(), v), [("X-API-Key", keys["limited"][1])])
    assert status == 200 and headers["ratelimit"] == '"key";r=2;t=20'
