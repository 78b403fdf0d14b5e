#!/usr/bin/env python3
"""Revocation to refusal across a fleet: N `serve` instances follow one redis-server; each of
R revocations is made with the CLI, and the time from `revoke` returning to the moment every
instance refuses the key is measured (each instance polled over its own keep-alive
connection). Prints p50, p99 and max in Markdown.

Usage: cargo build --release && benches/fleet/revocation.py [INSTANCES=10] [REVOCATIONS=200]
Needs redis-server and python3 (standard library only). Everything on 127.0.0.1, in a
temporary directory, stopped at the end.
"""

import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.abspath(os.environ.get("BIN") or os.path.join(
    os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release", "mcp-key-manager"))
PASS = "bench passphrase that is long enough"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, limit=10.0):
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.02)
    raise SystemExit(f"port {port} never opened")


def main():
    instances = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    revocations = int(sys.argv[2]) if len(sys.argv) > 2 else 200
    if not os.access(BIN, os.X_OK):
        raise SystemExit(f"build first: cargo build --release ({BIN} missing)")
    work = tempfile.mkdtemp()
    procs = []
    env = {"PATH": os.environ["PATH"], "MCP_KEY_VAULT_PASSPHRASE": PASS,
           "MCP_KEY_MANAGER_CONFIG_DIR": os.path.join(work, "config")}
    try:
        rport = free_port()
        procs.append(subprocess.Popen(
            ["redis-server", "--port", str(rport), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", work],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_port(rport)
        url = f"redis://127.0.0.1:{rport}/0?key=bench"

        def cli(*args):
            return subprocess.run([BIN, *args], cwd=work, env=env, check=True,
                                  capture_output=True, text=True).stdout

        cli("init", "--kdf-preset", "minimum")
        keys = []
        for i in range(revocations):
            out = json.loads(cli("create", f"k{i}", "--json"))
            keys.append((out["id"], out["key"]))
        cli("publish", url)
        fpr = next(l.split(": ", 1)[1] for l in cli("slot", "list").splitlines()
                   if l.startswith("Vault fingerprint: "))
        ports = []
        for i in range(instances):
            port = free_port()
            procs.append(subprocess.Popen(
                [BIN, "serve", "--verifier", url, "--trust", fpr, "--listen",
                 f"127.0.0.1:{port}", "--usage", os.path.join(work, f"usage.{i}.json")],
                cwd=work, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            ports.append(port)
        for port in ports:
            wait_port(port)
        conns = [http.client.HTTPConnection("127.0.0.1", p, timeout=5) for p in ports]

        def status(conn, key):
            conn.request("GET", "/auth", headers={"X-API-Key": key})
            r = conn.getresponse()
            r.read()
            return r.status

        latencies = []
        for key_id, key in keys:
            assert all(status(c, key) == 200 for c in conns)
            cli("revoke", key_id)
            t0 = time.monotonic()
            pending = list(conns)
            while pending:
                pending = [c for c in pending if status(c, key) != 401]
                if time.monotonic() - t0 > 10:
                    raise SystemExit("a revocation did not arrive within 10 s")
            latencies.append(time.monotonic() - t0)
        latencies.sort()

        def pct(p):
            return latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))] * 1000

        print(f"| instances | revocations | p50 | p99 | max |")
        print(f"|---|---|---|---|---|")
        print(f"| {instances} | {len(latencies)} | {pct(50):.1f} ms | {pct(99):.1f} ms | "
              f"{latencies[-1] * 1000:.1f} ms |")
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
