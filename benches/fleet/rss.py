#!/usr/bin/env python3
"""Memory of `serve` by verifier size, from a file and from Redis, side by side in one run.

For each size: a vault of N keys (benches/fleet/bigvault.py: `import-legacy` of a generated
store), published both to a file (`publish PATH`) and to a redis-server on 127.0.0.1
(`publish redis://…?key=rssN`); two `serve --trust FPR` instances, one per source, running at
the same time. VmRSS and VmHWM (peak) are read from /proc/PID/status when idle after the load
(IDLE seconds after the port opened), then after a burst of BURST GET /auth requests per
instance (distinct valid keys as far as there are, 4 keep-alive connections, each instance in
turn) and IDLE seconds more (usage is flushed every second). Also the verifier's size in
bytes (the file; Redis holds the same bytes, checked with HSTRLEN), and redis-server's own
VmRSS at the end (all sizes loaded).

Usage: cargo build --release && benches/fleet/rss.py [--sizes 10,10000,100000]
       [--burst 20000] [--idle 2]
Needs redis-server and python3 (standard library only). Everything on 127.0.0.1, in a
temporary directory, stopped at the end.
"""

import argparse
import os
import shutil
import socket
import tempfile
import threading
import time

from bigvault import (BIN, Auth, cli, fingerprint, make_vault, proc_status, start_redis,
                      start_serve, stop)


def burst(port, keys, n, conns=4):
    """`n` GET /auth over `conns` connections; every answer must be 200."""
    bad = []

    def worker(w):
        a = Auth(port)
        for i in range(w, n, conns):
            if a.status(keys[i % len(keys)][1]) != 200:
                bad.append(i)
        a.close()

    ts = [threading.Thread(target=worker, args=(w,)) for w in range(conns)]
    t0 = time.monotonic()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if bad:
        raise SystemExit(f"{len(bad)} requests of the burst were not 200")
    return time.monotonic() - t0


def hstrlen(port, name):
    s = socket.create_connection(("127.0.0.1", port))
    key = f"mkm:{{{name}}}:verifier"
    s.sendall(f"*3\r\n$7\r\nHSTRLEN\r\n${len(key)}\r\n{key}\r\n$5\r\nbytes\r\n".encode())
    r = s.recv(64)
    s.close()
    return int(r[1:].split(b"\r\n")[0])


def mib(kib):
    return kib / 1024


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10,10000,100000")
    ap.add_argument("--burst", type=int, default=20000)
    ap.add_argument("--idle", type=float, default=2.0)
    a = ap.parse_args()
    if not os.access(BIN, os.X_OK):
        raise SystemExit(f"build first: cargo build --release ({BIN} missing)")
    work = tempfile.mkdtemp(prefix="fleet-rss-")
    procs = []
    rows = []
    try:
        rport = start_redis(work, procs)
        for n in [int(s) for s in a.sizes.split(",")]:
            vault = os.path.join(work, f"v{n}", "vault.json")
            os.makedirs(os.path.dirname(vault))
            t0 = time.monotonic()
            keys = make_vault(work, vault, n)
            made = time.monotonic() - t0
            path = os.path.join(work, f"v{n}", "verifier.json")
            url = f"redis://127.0.0.1:{rport}/0?key=rss{n}"
            cli(work, vault, "publish", path)
            cli(work, vault, "publish", url)
            fpr = fingerprint(work, vault)
            size = os.path.getsize(path)
            if hstrlen(rport, f"rss{n}") != size:
                raise SystemExit("Redis holds another size than the file")
            print(f"{n:,} keys: vault made in {made:.1f} s, verifier {size:,} bytes", flush=True)
            serves = {}
            for src, verifier in (("file", path), ("redis", url)):
                serves[src] = start_serve(work, procs, verifier, fpr, f"{src}{n}")
            time.sleep(a.idle)
            idle = {src: proc_status(p.pid) for src, (p, _) in serves.items()}
            rate = {}
            for src, (p, port) in serves.items():
                rate[src] = a.burst / burst(port, keys, a.burst)
            time.sleep(a.idle)
            after = {src: proc_status(p.pid) for src, (p, _) in serves.items()}
            for src in ("file", "redis"):
                rows.append((n, size, src, idle[src], after[src], rate[src]))
                print(f"  {src}: idle {idle[src]}, after burst {after[src]} "
                      f"({rate[src]:,.0f} req/s)", flush=True)
            for p, _ in serves.values():
                p.terminate()
                p.wait()
                procs.remove(p)
        redis_rss = proc_status(procs[0].pid)["VmRSS"]
    finally:
        stop(procs)
        shutil.rmtree(work, ignore_errors=True)

    print()
    print(f"Burst: {a.burst:,} GET /auth per instance (4 keep-alive connections, "
          f"distinct keys up to the vault's size); idle reads {a.idle:g} s after.")
    print()
    print("| keys | verifier bytes | source | VmRSS idle | VmHWM idle | VmRSS after burst "
          "| VmHWM after burst | RSS after burst, redis/file |")
    print("|---:|---:|---|---:|---:|---:|---:|---:|")
    by = {(r[0], r[2]): r for r in rows}
    for n, size, src, idle, after, _ in rows:
        ratio = ""
        if src == "redis":
            ratio = f"{after['VmRSS'] / by[(n, 'file')][4]['VmRSS']:.2f}x"
        print(f"| {n:,} | {size:,} | {src} | {mib(idle['VmRSS']):.1f} MiB | "
              f"{mib(idle['VmHWM']):.1f} MiB | {mib(after['VmRSS']):.1f} MiB | "
              f"{mib(after['VmHWM']):.1f} MiB | {ratio} |")
    print()
    print(f"redis-server VmRSS with all sizes loaded: {mib(redis_rss):.1f} MiB")


if __name__ == "__main__":
    main()
