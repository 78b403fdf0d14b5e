"""Writes a verifier file with N keys (stdlib only), for the serve benchmarks.

Usage: gen_verifier.py OUT N REVISION KEYFILE
The first key (permissions info, tools:call:echo) is written to KEYFILE (mode 0600) so that
the benchmark can present it without putting it in any argv.
"""

import base64
import hashlib
import hmac
import json
import os
import sys

out, n, revision, keyfile = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
hash_key = os.urandom(32)
keys = []
first = None
for i in range(n):
    kid = os.urandom(8).hex()
    key = "mcp_%s_%s" % (kid, os.urandom(32).hex())
    if first is None:
        first = key
    keys.append({
        "id": kid,
        "hash": hmac.new(hash_key, key.encode(), hashlib.sha256).hexdigest(),
        "status": "active",
        "expires_at": None,
        "permissions": ["info", "tools:call:echo"] if i == 0 else ["info"],
    })
doc = {"format": "mcp-key-verifier", "version": 1, "algorithm": "hmac-sha256",
       "hash_key": base64.b64encode(hash_key).decode(), "generated_at": "2026-06-01T00:00:00Z",
       "revision": revision, "keys": keys}
tmp = out + ".tmp"
with open(tmp, "w") as f:
    json.dump(doc, f)
os.replace(tmp, out)
fd = os.open(keyfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
os.write(fd, first.encode())
os.close(fd)
