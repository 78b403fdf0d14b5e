#!/usr/bin/env python3
"""`/auth` throughput of `serve` with usage kept in a file against usage added to Redis
(`--usage redis://…`), side by side in one run: both instances follow one redis-server, the
same key is presented over C keep-alive connections for S seconds, the two alternate R times,
and the medians and their ratio are printed in Markdown.

Usage: cargo build --release && benches/fleet/throughput.py [SECONDS=5] [CONNECTIONS=16] [ROUNDS=3]
Needs redis-server and python3 (standard library only; the load generator is asyncio with raw
keep-alive sockets, so it is as fast for both and the ratio is what counts).
"""

import asyncio
import json
import os
import shutil
import socket
import statistics
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


async def load(port, key, seconds, connections):
    request = (f"GET /auth HTTP/1.1\r\nHost: b\r\nX-API-Key: {key}\r\n\r\n").encode()
    done = 0
    deadline = time.monotonic() + seconds

    async def one():
        nonlocal done
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while time.monotonic() < deadline:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            if length:
                await reader.readexactly(length)
            if not head.startswith(b"HTTP/1.1 200"):
                raise SystemExit(f"unexpected answer: {head[:40]!r}")
            done += 1
        writer.close()

    await asyncio.gather(*(one() for _ in range(connections)))
    return done / seconds


def main():
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 5
    connections = int(sys.argv[2]) if len(sys.argv) > 2 else 16
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 3
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
        key = json.loads(cli("create", "bench", "--json"))["key"]
        cli("publish", url)
        fpr = next(l.split(": ", 1)[1] for l in cli("slot", "list").splitlines()
                   if l.startswith("Vault fingerprint: "))
        ports = {}
        for name, usage in (("usage file", os.path.join(work, "usage.json")),
                            ("usage redis://", url)):
            port = free_port()
            procs.append(subprocess.Popen(
                [BIN, "serve", "--verifier", url, "--trust", fpr, "--listen",
                 f"127.0.0.1:{port}", "--usage", usage],
                cwd=work, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            wait_port(port)
            ports[name] = port
        results = {name: [] for name in ports}
        for _ in range(rounds):
            for name, port in ports.items():
                results[name].append(asyncio.run(load(port, key, seconds, connections)))
        base = statistics.median(results["usage file"])
        print(f"| usage | requests/s (median of {rounds} × {seconds:g} s, {connections} connections) | ratio |")
        print("|---|---:|---:|")
        for name, rs in results.items():
            m = statistics.median(rs)
            print(f"| {name} | {m:,.0f} | {m / base:.2f}× |")
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
