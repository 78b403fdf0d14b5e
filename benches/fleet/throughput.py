#!/usr/bin/env python3
"""`/auth` throughput of `serve` with usage kept in a file against usage added to Redis
(`--usage redis://…`), and of a rate-limited key decided per instance against one decided in
Redis (`--limits redis://…`), side by side in one run: every instance follows one
redis-server, a key is presented over C keep-alive connections for S seconds, the instances
take turns R times, and the medians and their ratio to the first are printed in Markdown.
The limited key's limit (1,000,000,000/sec) is never reached: what is measured is the cost of
deciding, not of refusing.

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


def cpu_seconds(pid):
    """User + system CPU time of a process, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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
        limited = json.loads(cli("create", "limited", "--json", "--rate-limit",
                                 "1000000000/sec"))["key"]
        cli("publish", url)
        fpr = next(l.split(": ", 1)[1] for l in cli("slot", "list").splitlines()
                   if l.startswith("Vault fingerprint: "))
        ports, keys, pids = {}, {}, {}
        redis_pid = procs[0].pid
        for name, k, extra in (
                ("usage file", key, ["--usage", os.path.join(work, "usage.json")]),
                ("usage redis://", key, ["--usage", url]),
                ("limited key, per instance", limited,
                 ["--usage", os.path.join(work, "usage.2.json")]),
                ("limited key, --limits redis://", limited,
                 ["--usage", os.path.join(work, "usage.3.json"), "--limits", url])):
            port = free_port()
            procs.append(subprocess.Popen(
                [BIN, "serve", "--verifier", url, "--trust", fpr, "--listen",
                 f"127.0.0.1:{port}", *extra],
                cwd=work, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            wait_port(port)
            ports[name], keys[name], pids[name] = port, k, procs[-1].pid
        results = {name: [] for name in ports}
        cpu = {name: [0.0, 0.0, 0] for name in ports}
        for _ in range(rounds):
            for name, port in ports.items():
                before = (cpu_seconds(pids[name]), cpu_seconds(redis_pid))
                rate = asyncio.run(load(port, keys[name], seconds, connections))
                cpu[name][0] += cpu_seconds(pids[name]) - before[0]
                cpu[name][1] += cpu_seconds(redis_pid) - before[1]
                cpu[name][2] += int(rate * seconds)
                results[name].append(rate)
        base = statistics.median(results["usage file"])
        print(f"| instance | requests/s (median of {rounds} × {seconds:g} s, {connections} "
              "connections) | ratio | serve CPU µs/request | redis-server CPU µs/request |")
        print("|---|---:|---:|---:|---:|")
        for name, rs in results.items():
            m = statistics.median(rs)
            serve_us, redis_us, n = cpu[name]
            print(f"| {name} | {m:,.0f} | {m / base:.2f}× | {serve_us * 1e6 / n:.1f} "
                  f"| {redis_us * 1e6 / n:.1f} |")
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
