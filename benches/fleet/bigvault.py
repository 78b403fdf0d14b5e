"""Helpers shared by benches/fleet/rss.py and benches/fleet/revocation_100k.py (standard
library only): a vault of N keys made the fast way, redis-server and `serve` started on
127.0.0.1, /auth asked over keep-alive connections, and /proc/PID/status read.

A vault of N keys: benches/legacy_emulation.py `gen` writes the Python tool's plaintext
keys.json (each key 64 random hex characters, an id of 16 hex, a name, an expiry and three
permissions), and `import-legacy --kdf-preset minimum` encrypts it into a real vault (about
2.5 s at 100,000 keys, BENCHMARKS.md), so every key is in the vault, published and signed by
it like any other. The keys' values are read from the plaintext store before it is deleted.
"""

import http.client
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from revocation import BIN, PASS, free_port, wait_port  # noqa: E402,F401

LEGACY = os.path.join(os.path.dirname(HERE), "legacy_emulation.py")


def cli_env(work):
    return {"PATH": os.environ["PATH"], "MCP_KEY_VAULT_PASSPHRASE": PASS,
            "MCP_KEY_MANAGER_CONFIG_DIR": os.path.join(work, "config")}


def cli(work, vault, *args, check=True):
    """Runs the CLI on `vault`; its stdout."""
    return subprocess.run([BIN, "--vault", vault, *args], cwd=work, env=cli_env(work),
                          check=check, capture_output=True, text=True).stdout


def make_vault(work, vault, n):
    """A vault of `n` imported keys at `vault`; returns [(id, key)] in the store's order."""
    store = vault + ".legacy.json"
    subprocess.run([sys.executable, LEGACY, "gen", str(n), store, store + ".lastkey"],
                   check=True, stdout=subprocess.DEVNULL)
    with open(store) as f:
        keys = [(kid, r["key_value"]) for kid, r in json.load(f).items()]
    cli(work, vault, "import-legacy", store, "--kdf-preset", "minimum")
    os.remove(store)
    os.remove(store + ".lastkey")
    return keys


def fingerprint(work, vault):
    return next(l.split(": ", 1)[1] for l in cli(work, vault, "slot", "list").splitlines()
                if l.startswith("Vault fingerprint: "))


def start_redis(work, procs):
    port = free_port()
    procs.append(subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", work],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    wait_port(port)
    return port


def start_serve(work, procs, verifier, fpr, name, limit=60.0):
    """`serve --verifier VERIFIER --trust FPR` on a free port, its log in WORK/NAME.log;
    returns (Popen, port) once it listens (a 100,000-key load takes a moment)."""
    port = free_port()
    log = open(os.path.join(work, f"{name}.log"), "w")
    p = subprocess.Popen(
        [BIN, "serve", "--verifier", verifier, "--trust", fpr, "--listen",
         f"127.0.0.1:{port}", "--usage", os.path.join(work, f"usage.{name}.json")],
        cwd=work, env=cli_env(work), stdout=subprocess.DEVNULL, stderr=log)
    procs.append(p)
    wait_port(port, limit)
    return p, port


def proc_status(pid):
    """VmRSS and VmHWM of `pid`, in KiB."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM"):
                out[k] = int(v.split()[0])
    return out


class Auth:
    """GET /auth over one keep-alive connection."""

    def __init__(self, port):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

    def status(self, key):
        self.conn.request("GET", "/auth", headers={"X-API-Key": key})
        r = self.conn.getresponse()
        r.read()
        return r.status

    def close(self):
        self.conn.close()


def stop(procs):
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
