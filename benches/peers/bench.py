#!/usr/bin/env python3
"""Peers benchmark (standard library only; see run.sh): nginx + `serve` against mcp-guard as
gateways in front of one MCP server, and mcp_key_verifier's APIKeyMiddleware against
fastmcp-guard inside one FastMCP server, at N keys each. Prints Markdown; raw figures go to
$OUT (JSON) when set.

Usage: bench.py N [N ...]     (env: SECS, ROUNDS, BIN, MCP_GUARD, PEERS_PY, NGINX, OUT)
"""

import http.client
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "benches", "fleet"))
from bigvault import BIN, cli, cli_env, fingerprint, free_port, make_vault, wait_port  # noqa: E402

PY = os.environ.get("PEERS_PY", "/tmp/peers-venv/bin/python")
GUARD_CLI = os.path.join(os.path.dirname(PY), "fastmcp-guard")
MCP_GUARD = os.environ.get("MCP_GUARD", "/tmp/mcp-guard/bin/mcp-guard")
NGINX = os.environ.get("NGINX", "/usr/sbin/nginx")
SECS = int(os.environ.get("SECS", "10"))
ROUNDS = int(os.environ.get("ROUNDS", "2"))
GW_CONNS = 16   # gateway pair (one Python upstream behind both)
PY_CONNS = 4    # in-process pair (fastmcp-guard's bcrypt check takes ~0.3 s a request)
UPSTREAM = os.path.join(HERE, "upstream.py")
PING = b'{"jsonrpc":"2.0","id":1,"method":"ping"}'


def rss(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def tree_rss(pid):
    """VmRSS of pid and its children (nginx master + workers), KiB."""
    total = rss(pid)
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        total += rss(int(d))
            except (OSError, ValueError, IndexError):
                pass
    return total


def status(port, key, body=PING):
    """HTTP status of one POST /mcp with `key` (None: connection refused / reset)."""
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        c.request("POST", "/mcp", body=body, headers={
            "Authorization": "Bearer " + key, "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream"})
        r = c.getresponse()
        r.read()
        c.close()
        return r.status
    except OSError:
        return None


def to_us(v):
    n, u = re.fullmatch(r"([0-9.]+)(us|ms|s)", v).groups()
    return float(n) * {"us": 1, "ms": 1e3, "s": 1e6}[u]


def wrk(port, key, conns):
    out = subprocess.run(
        ["wrk", "-t2", f"-c{conns}", f"-d{SECS}s", "--timeout", "10s", "--latency",
         "-s", os.path.join(HERE, "ping.lua"), f"http://127.0.0.1:{port}/mcp"],
        env={**os.environ, "BENCH_KEY": key}, check=True, capture_output=True, text=True).stdout
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errs = re.search(r"Socket errors: (.*)", out)
    return {"rps": float(re.search(r"Requests/sec:\s+([0-9.]+)", out).group(1)),
            "p50": to_us(re.search(r"\s50%\s+(\S+)", out).group(1)),
            "p99": to_us(re.search(r"\s99%\s+(\S+)", out).group(1)),
            "non2xx": int(bad.group(1)) if bad else 0, "errors": errs.group(1) if errs else ""}


def id_check(port, key, n=64):
    """Concurrent requests with distinct JSON-RPC ids: how many answers carry another id."""
    wrong = []

    def one(i):
        body = json.dumps({"jsonrpc": "2.0", "id": i, "method": "ping"}).encode()
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        c.request("POST", "/mcp", body=body, headers={
            "Authorization": "Bearer " + key, "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream"})
        r = c.getresponse()
        data = r.read()
        try:
            if json.loads(data).get("id") != i:
                wrong.append(i)
        except ValueError:
            wrong.append(i)

    ts = [threading.Thread(target=one, args=(i,)) for i in range(1, n + 1)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return len(wrong)


def poll_refusal(port, key, t0, limit=60.0):
    """Seconds from t0 until `key` gets 401/403 at `port`; (seconds, unreachable_seconds)."""
    down = 0.0
    while True:
        t = time.monotonic()
        s = status(port, key)
        if s in (401, 403):
            return time.monotonic() - t0, down
        if s is None:
            down += time.monotonic() - t
        if time.monotonic() - t0 > limit:
            raise SystemExit(f"no refusal within {limit} s on port {port}")
        time.sleep(0.005)


def mcp_guard_config(path, port, hashes):
    lines = ["[server]", 'host = "127.0.0.1"', f"port = {port}", "",
             "[upstream]", 'transport = "stdio"', f'command = "{PY}"',
             f'args = ["{UPSTREAM}", "stdio"]', "",
             "[rate_limit]", "enabled = false", "", "[audit]", "enabled = false", ""]
    for i, h in enumerate(hashes):
        lines += ["[[auth.api_keys]]", f'id = "k{i}"', f'key_hash = "{h}"', ""]
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write("\n".join(lines))
    os.replace(tmp, path)


def sha256_b64(key):
    import base64
    import hashlib
    return base64.b64encode(hashlib.sha256(key.encode()).digest()).decode()


def run(n, procs, work):
    res = {"keys": n}
    # --- ours: a vault of n keys (n-3 imported + 3 created), published to a file.
    vault = os.path.join(work, "vault")
    make_vault(work, vault, n - 3)
    made = {name: json.loads(cli(work, vault, "create", name, "--json"))
            for name in ("bench", "victim-gw", "victim-py")}
    verifier = os.path.join(work, "verifier.json")
    cli(work, vault, "publish", verifier)
    fpr = fingerprint(work, vault)
    our_key = made["bench"]["key"]
    # --- mcp-guard keys: sha256/base64 hashes of n random keys in its TOML.
    mg_keys = ["mcp_" + os.urandom(24).hex() for _ in range(n)]
    # --- fastmcp-guard keys in SQLite.
    gdb, gjson = os.path.join(work, "guard.db"), os.path.join(work, "guard.json")
    subprocess.run([PY, os.path.join(HERE, "guard_keys.py"), gdb, str(n), gjson],
                   check=True, cwd=work)
    with open(gjson) as f:
        gk = json.load(f)

    def start(args, port, name, limit=60.0):
        log = open(os.path.join(work, name + ".log"), "w")
        p = subprocess.Popen(args, cwd=work, stdout=subprocess.DEVNULL, stderr=log,
                             env=cli_env(work) if args[0] == BIN else os.environ)
        procs.append(p)
        wait_port(port, limit)
        return p

    ports = {k: free_port() for k in ("up", "serve", "nginx", "mg", "py_ours", "py_guard")}
    up = start([PY, UPSTREAM, "http", str(ports["up"]), "bare"], ports["up"], "upstream")
    serve = start([BIN, "serve", "--verifier", verifier, "--trust", fpr, "--listen",
                   f"127.0.0.1:{ports['serve']}", "--usage", os.path.join(work, "usage.json")],
                  ports["serve"], "serve")
    ngx = os.path.join(work, "ngx")
    os.makedirs(ngx, exist_ok=True)
    with open(os.path.join(work, "nginx.conf"), "w") as f:
        f.write(f"""daemon off; worker_processes 2; pid {ngx}/nginx.pid; error_log {ngx}/error.log warn;
events {{ worker_connections 1024; }}
http {{ access_log off;
  client_body_temp_path {ngx}/body; proxy_temp_path {ngx}/proxy; fastcgi_temp_path {ngx}/f;
  uwsgi_temp_path {ngx}/u; scgi_temp_path {ngx}/s;
  upstream serve {{ server 127.0.0.1:{ports['serve']}; keepalive 64; }}
  upstream mcp {{ server 127.0.0.1:{ports['up']}; keepalive 64; }}
  server {{ listen 127.0.0.1:{ports['nginx']};
    location = /_auth {{ internal; proxy_pass http://serve/auth; proxy_http_version 1.1;
      proxy_set_header Connection ""; proxy_pass_request_body off; proxy_set_header Content-Length ""; }}
    location / {{ auth_request /_auth;
      auth_request_set $key_id $upstream_http_x_mcp_key_id; proxy_set_header X-MCP-Key-Id $key_id;
      proxy_set_header Authorization "";
      proxy_pass http://mcp; proxy_http_version 1.1; proxy_set_header Connection ""; }} }} }}
""")
    nginx = start([NGINX, "-p", ngx, "-c", os.path.join(work, "nginx.conf"), "-e",
                   os.path.join(ngx, "error.log")], ports["nginx"], "nginx")
    mgconf = os.path.join(work, "mcp-guard.toml")
    mcp_guard_config(mgconf, ports["mg"], [sha256_b64(k) for k in mg_keys])
    have_mg = os.access(MCP_GUARD, os.X_OK)  # (run.sh insists; bench.py alone may skip it)
    if have_mg:
        mg = start([MCP_GUARD, "--config", mgconf, "run"], ports["mg"], "mcp-guard")
    py_ours = start([PY, UPSTREAM, "http", str(ports["py_ours"]), "ours", verifier],
                    ports["py_ours"], "py-ours")
    py_guard = start([PY, UPSTREAM, "http", str(ports["py_guard"]), "guard", gdb],
                     ports["py_guard"], "py-guard")

    targets = {  # name: (port, key, conns)
        "bare upstream (gateway pair)": (ports["up"], "none", GW_CONNS),
        "nginx + serve": (ports["nginx"], our_key, GW_CONNS),
        "mcp-guard 1.0.0": (ports["mg"], mg_keys[0], GW_CONNS),
        "bare FastMCP (in-process pair)": (ports["up"], "none", PY_CONNS),
        "FastMCP + APIKeyMiddleware": (ports["py_ours"], our_key, PY_CONNS),
        "FastMCP + fastmcp-guard 0.2.2": (ports["py_guard"], gk["bench"], PY_CONNS),
    }
    if not have_mg:
        del targets["mcp-guard 1.0.0"]
    for name, (port, key, _) in targets.items():
        s = status(port, key)
        assert s == 200, (name, s)
        if key != "none":
            assert status(port, "mcp_0123456789abcdef_" + "0" * 64) in (401, 403), name
    res["id_mismatch"] = {"nginx + serve": id_check(ports["nginx"], our_key)}
    if have_mg:
        res["id_mismatch"]["mcp-guard 1.0.0"] = id_check(ports["mg"], mg_keys[0])
    runs = {name: [] for name in targets}
    for _ in range(ROUNDS):
        for name, (port, key, conns) in targets.items():
            runs[name].append(wrk(port, key, conns))
    res["runs"] = runs
    res["rss_kib"] = {"serve": rss(serve.pid), "nginx (master + 2 workers)": tree_rss(nginx.pid),
                      "mcp-guard (without its stdio child)": rss(mg.pid) if have_mg else 0,
                      "upstream FastMCP bare": rss(up.pid),
                      "FastMCP + APIKeyMiddleware": rss(py_ours.pid),
                      "FastMCP + fastmcp-guard": rss(py_guard.pid)}
    # --- revocation -> refusal
    rev = {}
    for label, port, kid, key in (("nginx + serve", ports["nginx"], made["victim-gw"]["id"],
                                   made["victim-gw"]["key"]),
                                  ("FastMCP + APIKeyMiddleware", ports["py_ours"],
                                   made["victim-py"]["id"], made["victim-py"]["key"])):
        assert status(port, key) == 200
        t0 = time.monotonic()
        cli(work, vault, "revoke", kid)
        t_cli = time.monotonic() - t0
        total, down = poll_refusal(port, key, t0)
        rev[label] = {"how": "`mcp-key-manager revoke` (republishes the file; followed, no restart)",
                      "cli_s": t_cli, "refused_after_s": total, "unreachable_s": down}
    assert status(ports["py_guard"], gk["victim"][1]) == 200
    t0 = time.monotonic()
    subprocess.run([GUARD_CLI, "keys", "revoke", gk["victim"][0], "--db", gdb, "--force"],
                   check=True, capture_output=True, cwd=work)
    t_cli = time.monotonic() - t0
    total, down = poll_refusal(ports["py_guard"], gk["victim"][1], t0)
    rev["FastMCP + fastmcp-guard 0.2.2"] = {
        "how": "`fastmcp-guard keys revoke --db` (SQLite row read on every request, no restart)",
        "cli_s": t_cli, "refused_after_s": total, "unreachable_s": down}
    res["revocation"] = rev
    if not have_mg:
        return res
    victim = mg_keys[1]
    assert status(ports["mg"], victim) == 200
    t0 = time.monotonic()
    mcp_guard_config(mgconf, ports["mg"], [sha256_b64(k) for k in mg_keys if k != victim])
    mg.send_signal(signal.SIGTERM)
    mg.wait(30)
    mg = start([MCP_GUARD, "--config", mgconf, "run"], ports["mg"], "mcp-guard-2")
    t_cli = time.monotonic() - t0
    total, down = poll_refusal(ports["mg"], victim, t0)
    rev["mcp-guard 1.0.0"] = {
        "how": "key removed from the TOML + restart (no reload, no revoke command)",
        "cli_s": t_cli, "refused_after_s": total, "unreachable_s": total - 0.0,
        "note": "every key is refused or unreachable until the restart listens"}
    assert status(ports["mg"], mg_keys[0]) == 200
    res["revocation"] = rev
    return res


def med(rs, k):
    return statistics.median(r[k] for r in rs)


def report(all_res):
    print(f"Machine: {os.cpu_count()} cores, {os.uname().release}. wrk -t2 --latency, {SECS} s a "
          f"run, {ROUNDS} rounds interleaved (every target once per round, in table order); "
          f"medians. Body: a JSON-RPC `ping`, Bearer key.")
    for res in all_res:
        n = res["keys"]
        runs = res["runs"]
        print(f"\n#### {n:,} keys\n")
        print("| target | conns | requests/s | p50 ms | p99 ms | added p50 ms | added p99 ms | non-2xx |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        base = None
        for name, rs in runs.items():
            if name.startswith("bare"):
                base = rs
            conns = GW_CONNS if name in ("bare upstream (gateway pair)", "nginx + serve",
                                          "mcp-guard 1.0.0") else PY_CONNS
            add50 = "—" if rs is base else f"{(med(rs, 'p50') - med(base, 'p50')) / 1e3:+.2f}"
            add99 = "—" if rs is base else f"{(med(rs, 'p99') - med(base, 'p99')) / 1e3:+.2f}"
            print(f"| {name} | {conns} | {med(rs, 'rps'):.0f} | {med(rs, 'p50') / 1e3:.2f} | "
                  f"{med(rs, 'p99') / 1e3:.2f} | {add50} | {add99} | "
                  f"{sum(r['non2xx'] for r in rs)} |")
        print("\nRSS (KiB, after the runs): " + "; ".join(
            f"{k} {v:,}" for k, v in res["rss_kib"].items()))
        print("\nAnswers carrying another request's JSON-RPC id, of 64 concurrent pings: " + "; ".join(
            f"{k} {v}" for k, v in res["id_mismatch"].items()))
        print("\n| revocation → refusal | how | command s | until refused s |")
        print("|---|---|---:|---:|")
        for k, v in res["revocation"].items():
            print(f"| {k} | {v['how']} | {v['cli_s']:.3f} | {v['refused_after_s']:.3f} |")


def main():
    all_res = []
    for n in map(int, sys.argv[1:]):
        procs = []
        work = tempfile.mkdtemp(prefix=f"peers-{n}-")
        try:
            all_res.append(run(n, procs, work))
        finally:
            for p in procs:
                if p.poll() is None:
                    p.terminate()
            for p in procs:
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
            if os.environ.get("KEEP"):
                print("kept", work, file=sys.stderr)
            else:
                shutil.rmtree(work, ignore_errors=True)
    if os.environ.get("OUT"):
        with open(os.environ["OUT"], "w") as f:
            json.dump(all_res, f, indent=1)
    report(all_res)


if __name__ == "__main__":
    main()
