#!/usr/bin/env python3
"""verify() per second for one valid key, beside bare HMAC-SHA256 of the same key (the floor).

Usage: python benches/integrations/bench_python.py [--rounds 9] [--iterations 200000]
(with mcp_key_verifier importable: installed, or run from the repository root, where the
script finds integrations/python). Rounds interleave verify and the floor so that machine
noise hits both alike; rates are per second of this thread's CPU time; each rate is the best round (the one least disturbed by other load on
the machine), and the median is printed beside it.
"""

import argparse
import base64
import hashlib
import hmac
import json
import os
import secrets
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "integrations", "python"))
from mcp_key_verifier import Verifier  # noqa: E402


def make_file(path, n, hash_key):
    keys = []
    entries = []
    for i in range(n):
        key_id = secrets.token_hex(8)
        key = "mcp_%s_%s" % (key_id, secrets.token_hex(32))
        keys.append(key)
        entries.append({"id": key_id, "status": "active", "expires_at": "2999-01-01T00:00:00Z",
                        "permissions": ["tools:call", "info"],
                        "hash": hmac.new(hash_key, key.encode(), hashlib.sha256).hexdigest()})
    with open(path, "w") as fh:
        json.dump({"format": "mcp-key-verifier", "version": 1, "algorithm": "hmac-sha256",
                   "hash_key": base64.b64encode(hash_key).decode(), "revision": 1,
                   "generated_at": "2026-06-01T00:00:00Z", "keys": entries}, fh)
    return keys


def rate(fn, iterations):
    # CPU time of this thread, not wall time: on a shared machine the wall clock also counts
    # the time other processes hold the core.
    start = time.thread_time()
    fn(iterations)
    return iterations / (time.thread_time() - start)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--iterations", type=int, default=50_000)
    args = ap.parse_args()
    print("python %s, %d rounds x %d iterations; best round (median in brackets)"
          % (sys.version.split()[0], args.rounds, args.iterations))
    print("%-6s %-20s %22s %22s %15s" % ("keys", "call", "verify/s", "floor/s", "ratio"))
    with tempfile.TemporaryDirectory() as d:
        for n in (10, 10_000):
            hash_key = secrets.token_bytes(32)
            path = os.path.join(d, "verifier-%d.json" % n)
            keys = make_file(path, n, hash_key)
            v = Verifier.from_file(path)  # file-backed: the 250 ms reload check is included
            key = keys[len(keys) // 2]
            assert v.verify(key, ("info",)).valid

            # The floor: the fastest bare HMAC-SHA256 of the key in Python, keyed once and
            # copied per message (faster than hmac.digest's one-shot, which re-keys each time).
            keyed = hmac.new(hash_key, digestmod=hashlib.sha256)

            def floor(k, _keyed=keyed, _key=key):
                for _ in range(k):
                    m = _keyed.copy()
                    m.update(_key.encode())
                    m.digest()

            def oneshot(k, _hk=hash_key, _key=key, _digest=hmac.digest):
                for _ in range(k):
                    _digest(_hk, _key.encode(), "sha256")

            def plain(k, _v=v.verify, _key=key):
                for _ in range(k):
                    _v(_key)

            def required(k, _v=v.verify, _key=key, _req=("tools:call",)):
                for _ in range(k):
                    _v(_key, _req)

            for label, fn in (("verify(key)", plain), ("verify(key, [perm])", required)):
                ours, base = [], []
                for _ in range(args.rounds):
                    ours.append(rate(fn, args.iterations))
                    base.append(rate(floor, args.iterations))
                o, b = max(ours), max(base)
                om, bm = statistics.median(ours), statistics.median(base)
                print("%-6d %-20s %10.0f [%9.0f] %10.0f [%9.0f] %5.2fx [%5.2fx]"
                      % (n, label, o, om, b, bm, b / o, bm / om))
            if n == 10:
                one = [rate(oneshot, args.iterations) for _ in range(args.rounds)]
                print("%-6s %-20s %10.0f [%9.0f]   (hmac.digest one-shot, for reference)"
                      % ("", "hmac.digest(k, key)", max(one), statistics.median(one)))


if __name__ == "__main__":
    main()
