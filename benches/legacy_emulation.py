#!/usr/bin/env python3
"""An EMULATION of the old Python tool's store operations, for benchmark context only.

It is not the old tool: it reads and writes the same plaintext `keys.json` shape
(an object of id -> record with `key_value`, pretty-printed with indent 2, naive local
timestamps) the way such a tool does: load the whole file with `json.load`, change it, dump
it back with no encryption, no key derivation, no lock and no fsync.

    legacy_emulation.py gen N STORE KEYFILE      # a store of N keys; prints the last id
    legacy_emulation.py --store STORE list [--json]
    legacy_emulation.py --store STORE view ID
    legacy_emulation.py --store STORE create NAME
    legacy_emulation.py --store STORE revoke ID
    legacy_emulation.py --store STORE verify     # one key on stdin (not in the old tool)
"""

import argparse
import datetime
import json
import secrets
import sys


def new_record(name, now, days=90):
    kid = secrets.token_hex(8)
    return kid, {
        "key_id": kid,
        "key_value": secrets.token_hex(32),
        "name": name,
        "description": "",
        "created_at": now.isoformat(),
        "expires_at": (now + datetime.timedelta(days=days)).isoformat(),
        "is_active": True,
        "permissions": ["generate", "info", "health"],
        "metadata": {},
    }


def load(path):
    with open(path) as f:
        return json.load(f)


def save(path, keys):
    with open(path, "w") as f:
        json.dump(keys, f, indent=2)


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "gen":
        n, store, keyfile = int(sys.argv[2]), sys.argv[3], sys.argv[4]
        now = datetime.datetime.now()
        keys = {}
        for i in range(n):
            kid, rec = new_record(f"bench key {i}", now)
            rec["description"] = f"benchmark key number {i}"
            keys[kid] = rec
        save(store, keys)
        with open(keyfile, "w") as f:
            f.write(keys[kid]["key_value"] + "\n")
        print(kid)
        return

    p = argparse.ArgumentParser()
    p.add_argument("--store", required=True)
    sub = p.add_subparsers(dest="cmd", required=True)
    ls = sub.add_parser("list")
    ls.add_argument("--json", action="store_true")
    sub.add_parser("view").add_argument("id")
    sub.add_parser("create").add_argument("name")
    sub.add_parser("revoke").add_argument("id")
    sub.add_parser("verify")
    a = p.parse_args()

    keys = load(a.store)
    if a.cmd == "list":
        rows = [
            {k: v for k, v in r.items() if k != "key_value"} for r in keys.values()
        ]
        if a.json:
            json.dump(rows, sys.stdout, indent=2)
        else:
            for r in rows:
                print(f"{r['key_id']}  {r['name']}  {'active' if r['is_active'] else 'inactive'}")
    elif a.cmd == "view":
        r = keys.get(a.id)
        if r is None:
            sys.exit(1)
        print(json.dumps({k: v for k, v in r.items() if k != "key_value"}, indent=2))
    elif a.cmd == "create":
        kid, rec = new_record(a.name, datetime.datetime.now())
        keys[kid] = rec
        save(a.store, keys)
        print(rec["key_value"])
    elif a.cmd == "revoke":
        r = keys.get(a.id)
        if r is None:
            sys.exit(1)
        r["is_active"] = False
        save(a.store, keys)
        print(f"Revoked {a.id}")
    elif a.cmd == "verify":
        presented = sys.stdin.readline().strip()
        ok = any(
            secrets.compare_digest(r["key_value"], presented) and r["is_active"]
            for r in keys.values()
        )
        print("VALID" if ok else "NOT_FOUND")
        sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
