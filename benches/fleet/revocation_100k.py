#!/usr/bin/env python3
"""Revocation to refusal at 100,000 keys, from a file and from Redis, side by side in one run.

Two vaults of N keys each (benches/fleet/bigvault.py: `import-legacy` of a generated store):
one published to a file (`publish PATH`), one to a redis-server on 127.0.0.1 (`publish
redis://…`), so each `revoke` makes exactly one `serve` reload and the two never compete for
the 2 cores. One `serve --verifier … --trust FPR` per source. Then R revocations per source,
the sources taking turns; for each, with the CLI: the key is checked to answer 200, `revoke ID`
runs, and /auth is asked (one keep-alive connection, every 0.5 ms) until it answers 401.

Measured per revocation (wall clock, this machine's; serve's log lines carry milliseconds):
- `revoke`: the CLI's wall time (spawn, unlock, change, save, sign and publish the verifier);
- **revoke returned → first 401**: the figure the goal is about;
- file: the new file's mtime (written, just before the rename) → the log line
  `verifier reloaded` (the watcher's next 200 ms look + read + parse + swap), and → first 401;
- Redis: the change notice (a subscriber in this script) → the log line `verifier loaded from
  the store` (HMGET, HSTRLEN, HGET, signature, parse, index, swap), and → first 401; also
  how long `revoke` went on after its notice.

Then `revoke` alone at N keys (the file vault unpublished, a few revocations), the memory of
both instances after the reloads (VmRSS/VmHWM), and with --phases the reload split phase by
phase by benches/fleet/reload_phases (built on its own, see its Cargo.toml) on the file, with
the serves stopped, plus the HGET of the same bytes from Redis timed from here.

Usage: cargo build --release && benches/fleet/revocation_100k.py [--keys 100000]
       [--revocations 50] [--phases]
Needs redis-server and python3 (standard library only). Everything on 127.0.0.1, in a
temporary directory, stopped at the end.
"""

import argparse
import datetime
import os
import re
import resource
import shutil
import socket
import statistics
import subprocess
import tempfile
import threading
import time

from bigvault import (BIN, Auth, cli, fingerprint, make_vault, proc_status, start_redis,
                      start_serve, stop)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PHASES = os.path.join(ROOT, "target", "reload-phases", "release", "reload-phases")


class Resp:
    """Just enough RESP for SUBSCRIBE and HGET."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.f = self.sock.makefile("rb", buffering=1 << 20)

    def send(self, *args):
        out = [f"*{len(args)}\r\n".encode()]
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out += [f"${len(a)}\r\n".encode(), a, b"\r\n"]
        self.sock.sendall(b"".join(out))

    def read(self):
        line = self.f.readline()
        kind, rest = line[:1], line[1:-2]
        if kind == b"*":
            return [self.read() for _ in range(int(rest))]
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self.f.read(n + 2)
            return data[:-2]
        if kind == b":":
            return int(rest)
        if kind == b"-":
            raise RuntimeError(rest.decode())
        return rest

    def close(self):
        self.sock.close()


def subscriber(port, channel, notices, ready):
    """Appends (revision, time.time()) for every notice on `channel`."""
    r = Resp(port)
    r.send("SUBSCRIBE", channel)
    r.read()
    ready.set()
    while True:
        try:
            m = r.read()
        except (OSError, ValueError):
            return
        if isinstance(m, list) and m and m[0] == b"message":
            notices[int(m[2])] = time.time()


def file_revision(path):
    with open(path, "rb") as f:
        head = f.read(2048).decode()
    return int(re.search(r'"revision": (\d+)', head).group(1))


LOG_LINE = re.compile(r"^(\S+Z) serve: verifier (?:reloaded: .*revision=\d+->(\d+)|"
                      r"loaded from the store: revision=(\d+))")


def reload_times(log):
    """{revision: time.time() of the log line saying it answers}."""
    out = {}
    with open(log) as f:
        for line in f:
            m = LOG_LINE.match(line)
            if m:
                t = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%fZ")
                t = t.replace(tzinfo=datetime.timezone.utc).timestamp()
                out[int(m.group(2) or m.group(3))] = t
    return out


def cpu_s(pid):
    """User + system CPU seconds of `pid` so far (/proc/PID/stat, clock ticks)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))]


def ms(xs):
    return f"{pct(xs, 50) * 1000:.0f} / {pct(xs, 99) * 1000:.0f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keys", type=int, default=100000)
    ap.add_argument("--revocations", type=int, default=50, help="per source")
    ap.add_argument("--phases", action="store_true")
    a = ap.parse_args()
    if not os.access(BIN, os.X_OK):
        raise SystemExit(f"build first: cargo build --release ({BIN} missing)")
    work = tempfile.mkdtemp(prefix="fleet-rev100k-")
    procs = []
    try:
        rport = start_redis(work, procs)
        name = "rev"
        url = f"redis://127.0.0.1:{rport}/0?key={name}"
        vaults, keys, fprs = {}, {}, {}
        for src in ("file", "redis"):
            vaults[src] = os.path.join(work, src, "vault.json")
            os.makedirs(os.path.dirname(vaults[src]))
            t0 = time.monotonic()
            keys[src] = make_vault(work, vaults[src], a.keys)
            fprs[src] = fingerprint(work, vaults[src])
            print(f"{src} vault: {a.keys:,} keys in {time.monotonic() - t0:.1f} s", flush=True)
        path = os.path.join(work, "file", "verifier.json")
        cli(work, vaults["file"], "publish", path)
        cli(work, vaults["redis"], "publish", url)
        size = os.path.getsize(path)
        notices = {}
        ready = threading.Event()
        threading.Thread(target=subscriber, args=(rport, f"mkm:{{{name}}}:changed", notices,
                                                  ready), daemon=True).start()
        ready.wait(5)
        serves = {"file": start_serve(work, procs, path, fprs["file"], "file"),
                  "redis": start_serve(work, procs, url, fprs["redis"], "redis")}
        auth = {src: Auth(port) for src, (_, port) in serves.items()}
        time.sleep(1)
        rss_before = {src: proc_status(p.pid) for src, (p, _) in serves.items()}

        m = {src: {"revoke": [], "latency": [], "rev": [], "ret": [], "t401": [], "mark": [],
                   "cli_cpu": [], "rss": []} for src in serves}
        serve_cpu0 = {src: cpu_s(p.pid) for src, (p, _) in serves.items()}
        t_start = time.monotonic()
        for i in range(a.revocations):
            for src in ("file", "redis"):
                key_id, key = keys[src][i]
                if auth[src].status(key) != 200:
                    raise SystemExit(f"{src}: key {i} not accepted before its revocation")
                c0 = children_cpu()
                t0 = time.time()
                cli(work, vaults[src], "revoke", key_id)
                t_ret = time.time()
                m[src]["cli_cpu"].append(children_cpu() - c0)
                while auth[src].status(key) != 401:
                    if time.time() - t_ret > 10:
                        raise SystemExit(f"{src}: revocation {i} not refused within 10 s")
                    time.sleep(0.0005)
                t401 = time.time()
                if src == "file":
                    rev = file_revision(path)
                    mark = os.stat(path).st_mtime_ns / 1e9
                else:
                    deadline = time.time() + 2
                    rev = max(notices) if notices else None
                    while (rev is None or notices[rev] < t0) and time.time() < deadline:
                        time.sleep(0.001)
                        rev = max(notices) if notices else None
                    mark = notices[rev]
                for k, v in (("revoke", t_ret - t0), ("latency", t401 - t_ret), ("rev", rev),
                             ("ret", t_ret), ("t401", t401), ("mark", mark)):
                    m[src][k].append(v)
                m[src]["rss"].append(proc_status(serves[src][0].pid))
        serve_cpu = {src: (cpu_s(p.pid) - serve_cpu0[src]) / a.revocations
                     for src, (p, _) in serves.items()}
        loop_s = time.monotonic() - t_start

        # `revoke` alone: the file vault with no publish target.
        cli(work, vaults["file"], "unpublish", path)
        alone = []
        for i in range(a.revocations, a.revocations + min(10, a.revocations)):
            t0 = time.time()
            cli(work, vaults["file"], "revoke", keys["file"][i][0])
            alone.append(time.time() - t0)

        for src in serves:
            auth[src].close()
        logs = {src: reload_times(os.path.join(work, f"{src}.log")) for src in serves}
        for p, _ in serves.values():
            p.terminate()
            p.wait()
            procs.remove(p)

        phases = None
        fetch = []
        if a.phases:
            if os.access(PHASES, os.X_OK):
                phases = subprocess.run([PHASES, path, fprs["file"], "15"], check=True,
                                        capture_output=True, text=True).stdout
            else:
                phases = (f"({PHASES} missing: CARGO_TARGET_DIR=target/reload-phases cargo "
                          "build --release --manifest-path benches/fleet/reload_phases/"
                          "Cargo.toml)")
            r = Resp(rport)
            for _ in range(7):
                t0 = time.perf_counter()
                r.send("HGET", f"mkm:{{{name}}}:verifier", "bytes")
                got = r.read()
                fetch.append(time.perf_counter() - t0)
            r.close()
            fetch_size = len(got)
    finally:
        stop(procs)
        shutil.rmtree(work, ignore_errors=True)

    rows = []
    for src in ("file", "redis"):
        d = m[src]
        loaded = [logs[src].get(r) for r in d["rev"]]
        ok = [i for i, t in enumerate(loaded) if t is not None]
        mark_to_loaded = [loaded[i] - d["mark"][i] for i in ok]
        loaded_to_401 = [d["t401"][i] - loaded[i] for i in ok]
        mark_to_401 = [t - mk for t, mk in zip(d["t401"], d["mark"])]
        ret_after_mark = [rt - mk for rt, mk in zip(d["ret"], d["mark"])]
        rows.append((src, d, mark_to_loaded, loaded_to_401, mark_to_401, ret_after_mark,
                     len(ok)))

    print()
    print(f"{a.keys:,} keys per vault, verifier {size:,} bytes; {a.revocations} revocations "
          f"per source, taking turns ({loop_s:.0f} s). p50 / p99, ms:")
    print()
    print("| source | revocations | `revoke` (CLI wall) | **revoke returned → 401** | max "
          "| written/notice → log line | log line → 401 | written/notice → 401 "
          "| `revoke` after written/notice |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for src, d, ml, l4, m4, ra, n_ok in rows:
        print(f"| {src} | {len(d['latency'])} | {ms(d['revoke'])} | **{ms(d['latency'])}** | "
              f"{max(d['latency']) * 1000:.0f} | {ms(ml)} | {ms(l4)} | {ms(m4)} | {ms(ra)} |")
    f, r = rows[0][1]["latency"], rows[1][1]["latency"]
    print()
    print(f"p50 revoke→401, file/redis: {pct(f, 50) / pct(r, 50):.2f}x; "
          f"p99: {pct(f, 99) / pct(r, 99):.2f}x")
    print(f"`revoke` with no publish target ({len(alone)}): p50 "
          f"{statistics.median(alone) * 1000:.0f} ms (with a file: "
          f"{pct(m['file']['revoke'], 50) * 1000:.0f}, with Redis: "
          f"{pct(m['redis']['revoke'], 50) * 1000:.0f})")
    print("CPU (user + system), independent of how busy the machine is: `revoke` p50 "
          + ", ".join(f"{src} {pct(m[src]['cli_cpu'], 50) * 1000:.0f} ms"
                      for src in ("file", "redis"))
          + "; serve per revocation (its reload, the polls, the usage flushes) "
          + ", ".join(f"{src} {serve_cpu[src] * 1000:.0f} ms" for src in ("file", "redis")))
    print()
    marks = sorted({k for k in (1, 2, 5, 10, 20, a.revocations // 2, a.revocations)
                    if 1 <= k <= a.revocations})
    print("| source | VmRSS / VmHWM before, MiB | "
          + " | ".join(f"after {k}" for k in marks) + " |")
    print("|---|" + "---:|" * (len(marks) + 1))
    for src in ("file", "redis"):
        b = rss_before[src]
        print(f"| {src} | {b['VmRSS'] / 1024:.1f} / {b['VmHWM'] / 1024:.1f} | "
              + " | ".join(f"{m[src]['rss'][k - 1]['VmRSS'] / 1024:.0f} / "
                           f"{m[src]['rss'][k - 1]['VmHWM'] / 1024:.0f}" for k in marks)
              + " |")
    if phases is not None:
        print()
        print("Reload phases (benches/fleet/reload_phases, serves stopped):")
        print()
        print(phases.rstrip())
        print(f"| HGET of the {fetch_size:,} bytes from Redis (Python client, for the "
              f"follower's fetch) | {statistics.median(fetch) * 1000:.1f} | "
              f"{min(fetch) * 1000:.1f} |")


if __name__ == "__main__":
    main()
