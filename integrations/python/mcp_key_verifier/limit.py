"""Rate limits: what a key may do per window, one GCRA decision, and a per-process limiter.

Owns docs/verifier.md, "Rate limits", on the Python side, as the Rust `mcp_key_verifier::limit`
does: a limit of Q requests per W seconds lets a fresh key make Q requests at once, then one
every W/Q seconds. Each key has a theoretical arrival time (TAT); a request at `now` moves it
to `max(TAT, now) + interval` and is admitted when that is at most a window ahead of `now`.

Invariants:
- Every quantity is a whole number of microseconds (the interval rounded up), so this module
  makes exactly the decisions of the Rust, TypeScript and Redis ones; the vectors in
  tests/vectors/verifier/ratelimit.json pin them.
- A refused request changes nothing; the limiter holds one time per key it has admitted and
  forgets keys whose quota is whole again, so it never holds more than the verifier's keys.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

__all__ = ["MAX_REQUESTS", "MAX_WINDOW_SECONDS", "RateLimit", "Decision", "decide", "Limiter"]

_US = 1_000_000
#: The most requests one limit may allow per window.
MAX_REQUESTS = 1_000_000_000
#: The longest window, in seconds (one day).
MAX_WINDOW_SECONDS = 86_400
# The smallest map the limiter prunes (the Rust Limiter's floor).
_PRUNE_FLOOR = 1024


@dataclass(frozen=True)
class RateLimit:
    """At most `requests` per `window_seconds`, bursts up to `requests` (an entry's
    `rate_limit`). `str()` gives the shortest form: `100/min`, `7/sec`, `1/day`, `10/30s`."""

    requests: int
    window_seconds: int

    def __post_init__(self) -> None:
        q, w = self.requests, self.window_seconds
        if type(q) is not int or not 1 <= q <= MAX_REQUESTS:
            raise ValueError("a rate limit allows 1 to 1,000,000,000 requests per window")
        if type(w) is not int or not 1 <= w <= MAX_WINDOW_SECONDS:
            raise ValueError("a rate limit's window is 1 second to 1 day (86,400 seconds)")

    @property
    def window_us(self) -> int:
        return self.window_seconds * _US

    @property
    def interval_us(self) -> int:
        """The time one request uses of the window, in microseconds, rounded up: never more
        than `requests` per window."""
        return -(-self.window_us // self.requests)

    def policy_header(self) -> str:
        """The `RateLimit-Policy` value: `"key";q=100;w=60`."""
        return '"key";q=%d;w=%d' % (self.requests, self.window_seconds)

    def __str__(self) -> str:
        unit = {1: "sec", 60: "min", 3600: "hour", 86_400: "day"}.get(self.window_seconds)
        return "%d/%s" % (self.requests, unit or "%ds" % self.window_seconds)


@dataclass(frozen=True)
class Decision:
    """One decision: admitted or not, the requests left in the window after it, microseconds
    until the whole quota is back (`reset_us`) and, when refused, until a request would be
    admitted (`retry_after_us`, else 0)."""

    allowed: bool
    remaining: int
    reset_us: int
    retry_after_us: int

    def header(self) -> str:
        """The `RateLimit` value: `"key";r=REMAINING;t=SECONDS` (the reset, rounded up)."""
        return '"key";r=%d;t=%d' % (self.remaining, -(-self.reset_us // _US))

    @property
    def retry_after(self) -> int:
        """`Retry-After`, in whole seconds rounded up, at least 1."""
        return max(1, -(-self.retry_after_us // _US))

    def headers(self, limit: RateLimit) -> List[Tuple[str, str]]:
        """The headers an answer carries after this decision: `RateLimit-Policy`,
        `RateLimit`, and for a refusal `Retry-After` (names in lower case)."""
        h = [("ratelimit-policy", limit.policy_header()), ("ratelimit", self.header())]
        if not self.allowed:
            h.append(("retry-after", str(self.retry_after)))
        return h


def decide(limit: RateLimit, tat_us: int, now_us: int) -> Tuple[Decision, int]:
    """One GCRA step: the decision for a request at `now_us` when the key's theoretical
    arrival time is `tat_us` (0 for a key not seen), and the TAT to keep (unchanged when
    refused)."""
    t = limit.interval_us
    w = limit.window_us
    tat = max(tat_us, now_us)
    new_tat = tat + t
    allow_at = new_tat - w
    if now_us < allow_at:
        return Decision(False, 0, tat - now_us, allow_at - now_us), tat_us
    used = new_tat - now_us
    return Decision(True, (w - used) // t, used, 0), new_tat


def now_us() -> int:
    """Microseconds since the Unix epoch, now."""
    return time.time_ns() // 1000


class Limiter:
    """A per-process limiter: the TAT of every key admitted, by key id. Safe to call from
    any number of threads and asyncio tasks (one short lock, no await inside)."""

    def __init__(self) -> None:
        self._tats: Dict[str, int] = {}
        self._prune_at = 0
        self._lock = threading.Lock()

    def check(self, key_id: str, limit: RateLimit, now: Optional[int] = None) -> Decision:
        """Decides a request of `key_id` under `limit` at `now` (microseconds since the Unix
        epoch; default the current time), and remembers it when admitted."""
        if now is None:
            now = now_us()
        with self._lock:
            tats = self._tats
            d, new_tat = decide(limit, tats.get(key_id, 0), now)
            if d.allowed:
                if len(tats) >= max(self._prune_at, _PRUNE_FLOOR) and key_id not in tats:
                    # A key whose TAT has passed has its whole quota: forgetting it changes no
                    # decision. Pruned each time the map doubles, so the cost is amortised.
                    self._tats = tats = {k: t for k, t in tats.items() if t > now}
                    self._prune_at = len(tats) * 2
                tats[key_id] = new_tat
            return d

    def __len__(self) -> int:
        """Keys held (for tests and metrics)."""
        with self._lock:
            return len(self._tats)
