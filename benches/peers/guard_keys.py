"""Makes fastmcp-guard's SQLite key store with N keys (run with the venv holding
fastmcp-guard). Three keys are made by `KeyStore.create` (a bcrypt hash each, cost 12, ~0.3-0.7 s
here); the other N-3 are rows written in one transaction with a copy of one bcrypt hash and
their own selector. Verification finds a key by its selector (a unique index) and then checks
one bcrypt hash, so the filler rows only make the table and its index the right size;
creating 10,000 keys through `create` would take over an hour of bcrypt on this machine.

Usage: guard_keys.py DB N OUT_JSON
       ->  OUT_JSON: {"bench": token, "victim": [id, token], "victim_load": [id, token]}
"""

import json
import sqlite3
import sys

from fastmcp_guard import KeyStore
from fastmcp_guard.keys.backends.sqlite import SQLiteKeyBackend, _COLUMNS
from fastmcp_guard.keys.models import APIKey, _generate_token

db, n, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
store = KeyStore(backend="sqlite", path=db)
bench = store.create(name="bench", scopes=["read"])
victim = store.create(name="victim", scopes=["read"])
victim_load = store.create(name="victim-load", scopes=["read"])
rows = []
for i in range(n - 3):
    token, selector = _generate_token()
    key = APIKey(name=f"filler-{i}", token_hash=bench.token_hash, selector=selector,
                 scopes=["read"])
    rows.append(SQLiteKeyBackend._to_row(key))
con = sqlite3.connect(db)
con.executemany("INSERT INTO api_keys (%s) VALUES (%s)" % (
    ", ".join(_COLUMNS), ", ".join(":" + c for c in _COLUMNS)), rows)
con.commit()
assert con.execute("SELECT COUNT(*) FROM api_keys").fetchone()[0] == n
con.close()
with open(out, "w") as f:
    json.dump({"bench": bench.token, "victim": [victim.id, victim.token],
               "victim_load": [victim_load.id, victim_load.token]}, f)
