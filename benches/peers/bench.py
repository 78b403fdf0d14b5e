#!/usr/bin/env python3
"""Peers benchmark (standard library only; run it through run.sh): at N keys each,

  gateways:    nginx + `serve` (auth_request)  against  mcp-guard, both in front of one FastMCP
               server, and again in front of a trivial upstream (nginx: a static JSON answer;
               mcp-guard: a 20-line stdio responder), so the gateways' own cost shows;
  in-process:  FastMCP + mcp_key_verifier's APIKeyMiddleware  against  FastMCP +
               fastmcp-guard's Guard, beside the bare FastMCP server;

requests/s, p50/p99 and what they add over the bare upstream, RSS, and revocation -> refusal
(idle, and while the key is in use). Every target is measured once per round, pairs side by
side, the order reversed every other round; figures are medians of the rounds and ratios
come from those medians. Prints Markdown; raw figures go to $OUT (JSON) when set.

Usage: bench.py N [N ...]     (env: SECS, ROUNDS, BIN, MCP_GUARD, PEERS_PY, NGINX, OUT, KEEP)
"""

import base64
import hashlib
import http.client
import json
import os
import re
import shutil
import signal
import sqlite3
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
ROUNDS = int(os.environ.get("ROUNDS", "3"))
GW_CONNS = 16   # gateway pairs
PY_CONNS = 4    # in-process pair (fastmcp-guard's bcrypt check takes ~0.3 s of CPU a request)
LOAD_CLIENTS = 4  # clients using the key while it is revoked
HOLD = 5.0      # seconds the revoked key is watched after its first refusal
REVOKE_LIMIT = 30.0  # seconds to wait for a refusal
UPSTREAM = os.path.join(HERE, "upstream.py")
PING = b'{"jsonrpc":"2.0","id":1,"method":"ping"}'
BAD_KEY = "mcp_0123456789abcdef_" + "0" * 64


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def proc_kib(pid, field="VmRSS"):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def children(pid):
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        out.append(int(d))
            except (OSError, ValueError, IndexError):
                pass
    return out


def pss_kib(pid):
    """Pss of pid (its share of the pages it shares with other processes), KiB."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_pss(pid):
    return pss_kib(pid) + sum(pss_kib(c) for c in children(pid))


def tree_rss(pid):
    """VmRSS of pid and its children (nginx master + workers), KiB."""
    return proc_kib(pid) + sum(proc_kib(c) for c in children(pid))


def post(port, key, body=PING, timeout=30):
    """(HTTP status, body) of one POST /mcp with `key`; (None, b"") if refused or reset."""
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        c.request("POST", "/mcp", body=body, headers={
            "Authorization": "Bearer " + key, "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream"})
        r = c.getresponse()
        data = r.read()
        c.close()
        return r.status, data
    except OSError:
        return None, b""


def status(port, key, body=PING):
    return post(port, key, body)[0]


def to_us(v):
    n, u = re.fullmatch(r"([0-9.]+)(us|ms|s)", v).groups()
    return float(n) * {"us": 1, "ms": 1e3, "s": 1e6}[u]


def wrk(port, key, conns):
    out = subprocess.run(
        ["wrk", "-t2", f"-c{conns}", f"-d{SECS}s", "--timeout", "20s", "--latency",
         "-s", os.path.join(HERE, "ping.lua"), f"http://127.0.0.1:{port}/mcp"],
        env={**os.environ, "BENCH_KEY": key}, check=True, capture_output=True, text=True).stdout
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errs = re.search(r"Socket errors: (.*)", out)
    return {"rps": float(re.search(r"Requests/sec:\s+([0-9.]+)", out).group(1)),
            "requests": int(re.search(r"(\d+) requests in", out).group(1)),
            "p50": to_us(re.search(r"\s50%\s+(\S+)", out).group(1)),
            "p99": to_us(re.search(r"\s99%\s+(\S+)", out).group(1)),
            "non2xx": int(bad.group(1)) if bad else 0, "errors": errs.group(1) if errs else ""}


def id_check(port, key, n=64):
    """n concurrent pings with distinct JSON-RPC ids: how many answers carry another id."""
    wrong = []

    def one(i):
        body = json.dumps({"jsonrpc": "2.0", "id": i, "method": "ping"}).encode()
        s, data = post(port, key, body)
        try:
            if s != 200 or json.loads(data).get("id") != i:
                wrong.append(i)
        except ValueError:
            wrong.append(i)

    ts = [threading.Thread(target=one, args=(i,)) for i in range(1, n + 1)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return len(wrong)


def poll_until(port, key, want, t0, limit=60.0):
    """Seconds from t0 until `key` gets a status in `want` at `port`."""
    while True:
        if status(port, key) in want:
            return time.monotonic() - t0
        if time.monotonic() - t0 > limit:
            return None
        time.sleep(0.005)


class Load:
    """LOAD_CLIENTS threads sending pings with `key` back to back; each answer is recorded
    with the monotonic time its request was sent."""

    def __init__(self, port, key):
        self.port, self.key, self.stop, self.log = port, key, False, []
        self.threads = [threading.Thread(target=self.loop) for _ in range(LOAD_CLIENTS)]
        for t in self.threads:
            t.start()

    def loop(self):
        while not self.stop:
            t = time.monotonic()
            self.log.append((t, status(self.port, self.key)))

    def end(self):
        self.stop = True
        for t in self.threads:
            t.join()


def outage(log):
    """The longest gap, in seconds, between two answers 200 to a good key's requests
    (log: (sent, answered, status)); a request that hangs or fails widens it."""
    done = sorted(end for _, end, s in log if s == 200)
    last = max(end for _, end, _ in log)
    marks = [log[0][0]] + done + [last]
    return max(b - a for a, b in zip(marks, marks[1:]))


def revoke_and_watch(port, key, revoke, under_load, good):
    """Runs `revoke()` (the user's revocation) and measures: the command's wall time, the
    time from its start to the first refusal, how many requests sent after that first
    refusal were still admitted in the next HOLD seconds, and whether another key (`good`,
    asked every 10 ms throughout by one more client) went unanswered meanwhile: the longest
    gap between its answers."""
    assert status(port, key) == 200
    watch = {"stop": False, "log": []}

    def watcher():
        while not watch["stop"]:
            t = time.monotonic()
            st = status(port, good)
            watch["log"].append((t, time.monotonic(), st))
            time.sleep(0.01)

    wt = threading.Thread(target=watcher)
    wt.start()
    load = Load(port, key) if under_load else None
    if load:
        time.sleep(1.0)
    t0 = time.monotonic()
    revoke()
    t_cmd = time.monotonic() - t0
    refused = poll_until(port, key, (401, 403), t0, REVOKE_LIMIT)
    admitted_after = 0
    if refused is not None:
        t_ref = t0 + refused
        end = time.monotonic() + HOLD
        while time.monotonic() < end:
            if status(port, key) == 200:
                admitted_after += 1
            time.sleep(0.05)
        if load:
            load.end()
            admitted_after += sum(1 for t, s in load.log if t > t_ref and s == 200)
    elif load:
        load.end()
    watch["stop"] = True
    wt.join()
    return {"cmd_s": t_cmd, "refused_s": refused, "admitted_after": admitted_after,
            "good_outage_s": outage(watch["log"]),
            "good_failed": sum(1 for _, _, s in watch["log"] if s != 200),
            "still_200": status(port, key) == 200,
            "load_refused": sum(1 for _, s in load.log if s in (401, 403)) if load else None,
            "load_requests": len(load.log) if load else None}


def mcp_guard_config(path, port, upstream_args, hashes):
    lines = ["[server]", 'host = "127.0.0.1"', f"port = {port}", "",
             "[upstream]", 'transport = "stdio"', f'command = "{PY}"',
             "args = [%s]" % ", ".join(f'"{a}"' for a in [UPSTREAM] + upstream_args), "",
             "[rate_limit]", "enabled = false", "", "[audit]", "enabled = false", ""]
    for i, h in enumerate(hashes):
        if h is not None:
            lines += ["[[auth.api_keys]]", f'id = "k{i}"', f'key_hash = "{h}"', ""]
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write("\n".join(lines))
    os.replace(tmp, path)


def mg_key():
    """A key shaped as `mcp-guard keygen` makes them: mcp_ + 32 random bytes, base64url."""
    return "mcp_" + base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")


def mg_hash(key):
    """`mcp-guard hash-key`: SHA-256, standard base64."""
    return base64.b64encode(hashlib.sha256(key.encode()).digest()).decode()


NGINX_CONF = """daemon off; worker_processes 2; pid {ngx}/nginx.pid; error_log {ngx}/error.log warn;
events {{ worker_connections 1024; }}
http {{ access_log off;
  client_body_temp_path {ngx}/body; proxy_temp_path {ngx}/proxy; fastcgi_temp_path {ngx}/f;
  uwsgi_temp_path {ngx}/u; scgi_temp_path {ngx}/s;
  upstream serve {{ server 127.0.0.1:{serve}; keepalive 64; }}
  upstream mcp {{ server 127.0.0.1:{up}; keepalive 64; }}
  upstream static {{ server 127.0.0.1:{static}; keepalive 64; }}
  # the trivial upstream: a JSON-RPC answer to the ping
  server {{ listen 127.0.0.1:{static};
    location / {{ default_type application/json; return 200 '{{"jsonrpc":"2.0","id":1,"result":{{}}}}'; }} }}
  # nginx alone in front of the trivial upstream (the reference of the trivial-upstream pair)
  server {{ listen 127.0.0.1:{plain};
    location / {{ proxy_pass http://static; proxy_http_version 1.1; proxy_set_header Connection ""; }} }}
  # nginx + auth_request -> serve, in front of the FastMCP server and of the trivial upstream
{guarded_mcp}{guarded_static}}}
"""

# One nginx server on {port} asking serve about every request, then passing it to {upstream}.
GUARDED = """  server {{ listen 127.0.0.1:{port};
    location = /_auth {{ internal; proxy_pass http://serve/auth; proxy_http_version 1.1;
      proxy_set_header Connection ""; proxy_pass_request_body off; proxy_set_header Content-Length ""; }}
    location / {{ auth_request /_auth;
      auth_request_set $key_id $upstream_http_x_mcp_key_id; proxy_set_header X-MCP-Key-Id $key_id;
      proxy_set_header Authorization "";
      proxy_pass http://{upstream}; proxy_http_version 1.1; proxy_set_header Connection ""; }} }}
"""

# (group, role, label); the groups are the pairs, "bare" the reference of each.
TARGETS = [
    ("fastmcp", "bare", "FastMCP alone (HTTP)"),
    ("fastmcp", "ours", "nginx + serve → FastMCP (HTTP)"),
    ("fastmcp", "peer", "mcp-guard → FastMCP (stdio)"),
    ("trivial", "bare", "nginx → static answer"),
    ("trivial", "ours", "nginx + serve → static answer"),
    ("trivial", "peer", "mcp-guard → stdio responder"),
    ("inproc", "bare", "FastMCP alone (HTTP)"),
    ("inproc", "ours", "FastMCP + APIKeyMiddleware"),
    ("inproc", "peer", "FastMCP + fastmcp-guard"),
]


def run(n, procs, work):
    res = {"keys": n, "load": {"start": loadavg()}}
    t_setup = time.monotonic()
    # --- ours: a vault of n keys (n-5 imported + 5 created), published to a signed file.
    vault = os.path.join(work, "vault")
    names = ("bench", "victim-gw", "victim-gw-load", "victim-py", "victim-py-load")
    make_vault(work, vault, n - len(names))
    made = {name: json.loads(cli(work, vault, "create", name, "--json")) for name in names}
    verifier = os.path.join(work, "verifier.json")
    cli(work, vault, "publish", verifier)
    fpr = fingerprint(work, vault)
    our_key = made["bench"]["key"]
    # --- mcp-guard: n keys, their SHA-256 in its TOML (as `keygen --apply-to-config` does).
    mg_keys = [mg_key() for _ in range(n)]
    mg_hashes = [mg_hash(k) for k in mg_keys]
    # --- fastmcp-guard: n keys in its SQLite store.
    gdb, gjson = os.path.join(work, "guard.db"), os.path.join(work, "guard.json")
    subprocess.run([PY, os.path.join(HERE, "guard_keys.py"), gdb, str(n), gjson],
                   check=True, cwd=work)
    with open(gjson) as f:
        gk = json.load(f)
    os.remove(gjson)

    def start(args, port, name, limit=60.0):
        log = open(os.path.join(work, name + ".log"), "a")
        p = subprocess.Popen(args, cwd=work, stdout=subprocess.DEVNULL, stderr=log,
                             stdin=subprocess.DEVNULL,
                             env=cli_env(work) if args[0] == BIN else os.environ)
        procs.append(p)
        wait_port(port, limit)
        return p

    ports = {k: free_port() for k in ("up", "serve", "nginx", "nginx_static", "static", "plain",
                                      "mg", "mgmin", "py_ours", "py_guard")}
    up = start([PY, UPSTREAM, "http", str(ports["up"]), "bare"], ports["up"], "upstream")
    serve = start([BIN, "serve", "--verifier", verifier, "--trust", fpr, "--listen",
                   f"127.0.0.1:{ports['serve']}", "--usage", os.path.join(work, "usage.json")],
                  ports["serve"], "serve")
    ngx = os.path.join(work, "ngx")
    os.makedirs(ngx, exist_ok=True)
    with open(os.path.join(work, "nginx.conf"), "w") as f:
        f.write(NGINX_CONF.format(
            ngx=ngx, **ports,
            guarded_mcp=GUARDED.format(port=ports["nginx"], upstream="mcp"),
            guarded_static=GUARDED.format(port=ports["nginx_static"], upstream="static")))
    nginx = start([NGINX, "-p", ngx, "-c", os.path.join(work, "nginx.conf"), "-e",
                   os.path.join(ngx, "error.log")], ports["nginx"], "nginx")
    for p in ("nginx_static", "static", "plain"):
        wait_port(ports[p])
    mgconf, mgminconf = os.path.join(work, "mcp-guard.toml"), os.path.join(work, "mcp-guard-min.toml")
    mcp_guard_config(mgconf, ports["mg"], ["stdio"], mg_hashes)
    mcp_guard_config(mgminconf, ports["mgmin"], ["stdio-min"], mg_hashes)
    mg = start([MCP_GUARD, "--config", mgconf, "run"], ports["mg"], "mcp-guard")
    mgmin = start([MCP_GUARD, "--config", mgminconf, "run"], ports["mgmin"], "mcp-guard-min")
    py_ours = start([PY, UPSTREAM, "http", str(ports["py_ours"]), "ours", verifier, fpr],
                    ports["py_ours"], "py-ours")
    py_guard = start([PY, UPSTREAM, "http", str(ports["py_guard"]), "guard", gdb],
                     ports["py_guard"], "py-guard")
    res["setup_s"] = time.monotonic() - t_setup

    where = {  # label per group -> (port, key, conns)
        ("fastmcp", "bare"): (ports["up"], "none", GW_CONNS),
        ("fastmcp", "ours"): (ports["nginx"], our_key, GW_CONNS),
        ("fastmcp", "peer"): (ports["mg"], mg_keys[0], GW_CONNS),
        ("trivial", "bare"): (ports["plain"], "none", GW_CONNS),
        ("trivial", "ours"): (ports["nginx_static"], our_key, GW_CONNS),
        ("trivial", "peer"): (ports["mgmin"], mg_keys[0], GW_CONNS),
        ("inproc", "bare"): (ports["up"], "none", PY_CONNS),
        ("inproc", "ours"): (ports["py_ours"], our_key, PY_CONNS),
        ("inproc", "peer"): (ports["py_guard"], gk["bench"], PY_CONNS),
    }
    # Every guarded target admits its key and refuses another (the first stdio request also
    # starts mcp-guard's upstream on its way).
    for g, role, label in TARGETS:
        port, key, _ = where[(g, role)]
        s = status(port, key)
        assert s == 200, (label, s)
        if role != "bare":
            assert status(port, BAD_KEY) in (401, 403), label
    # (not nginx's static answer, whose id is always 1)
    res["id_mismatch"] = {label: id_check(where[(g, role)][0], where[(g, role)][1])
                          for g, role, label in TARGETS
                          if g != "inproc" and role != "bare" and (g, role) != ("trivial", "ours")}

    runs = {(g, role): [] for g, role, _ in TARGETS}
    res["load"]["rounds"] = []
    for r in range(ROUNDS):
        res["load"]["rounds"].append(loadavg())
        for g, role, label in (TARGETS if r % 2 == 0 else TARGETS[::-1]):
            port, key, conns = where[(g, role)]
            runs[(g, role)].append(wrk(port, key, conns))
    res["load"]["after_rounds"] = loadavg()
    res["runs"] = {f"{g}/{role}": v for (g, role), v in runs.items()}
    mg_child = children(mg.pid)
    mgmin_child = children(mgmin.pid)
    res["rss_kib"] = {
        "serve": proc_kib(serve.pid), "nginx": tree_rss(nginx.pid),
        "mcp-guard": proc_kib(mg.pid), "mcp-guard (trivial)": proc_kib(mgmin.pid),
        "mcp-guard's FastMCP child": sum(proc_kib(c) for c in mg_child),
        "mcp-guard's responder child": sum(proc_kib(c) for c in mgmin_child),
        "FastMCP alone": proc_kib(up.pid), "FastMCP + APIKeyMiddleware": proc_kib(py_ours.pid),
        "FastMCP + fastmcp-guard": proc_kib(py_guard.pid)}
    res["pss_kib"] = {
        "serve": pss_kib(serve.pid), "nginx": tree_pss(nginx.pid), "mcp-guard": pss_kib(mg.pid),
        "mcp-guard (trivial)": pss_kib(mgmin.pid)}
    res["hwm_kib"] = {"serve": proc_kib(serve.pid, "VmHWM"), "mcp-guard": proc_kib(mg.pid, "VmHWM"),
                      "mcp-guard (trivial)": proc_kib(mgmin.pid, "VmHWM")}

    # --- revocation -> refusal, idle and while the key is in use
    rev = {}

    def ours(kid):
        return lambda: cli(work, vault, "revoke", kid)

    def guard(kid):
        return lambda: subprocess.run([GUARD_CLI, "keys", "revoke", kid, "--db", gdb, "--force"],
                                      check=True, capture_output=True, cwd=work)

    rev["gw/ours/idle"] = revoke_and_watch(ports["nginx"], made["victim-gw"]["key"],
                                           ours(made["victim-gw"]["id"]), False, our_key)
    rev["gw/ours/load"] = revoke_and_watch(ports["nginx"], made["victim-gw-load"]["key"],
                                           ours(made["victim-gw-load"]["id"]), True, our_key)
    rev["inproc/ours/idle"] = revoke_and_watch(ports["py_ours"], made["victim-py"]["key"],
                                               ours(made["victim-py"]["id"]), False, our_key)
    rev["inproc/ours/load"] = revoke_and_watch(ports["py_ours"], made["victim-py-load"]["key"],
                                               ours(made["victim-py-load"]["id"]), True, our_key)
    rev["inproc/peer/idle"] = revoke_and_watch(ports["py_guard"], gk["victim"][1],
                                               guard(gk["victim"][0]), False, gk["bench"])
    rev["inproc/peer/load"] = revoke_and_watch(ports["py_guard"], gk["victim_load"][1],
                                               guard(gk["victim_load"][0]), True, gk["bench"])
    con = sqlite3.connect(gdb)
    res["guard_status_after"] = {
        label: con.execute("SELECT status FROM api_keys WHERE id = ?", (kid,)).fetchone()[0]
        for label, kid in (("idle", gk["victim"][0]), ("load", gk["victim_load"][0]))}
    con.close()
    del gk

    # mcp-guard: its dashboard API has a DELETE for keys; then what works: the key out of the
    # TOML and a restart (it reads its configuration once, at start).
    victim = mg_keys[1]
    assert status(ports["mg"], victim) == 200
    c = http.client.HTTPConnection("127.0.0.1", ports["mg"], timeout=10)
    c.request("DELETE", "/api/dashboard/api-keys/k1")
    r = c.getresponse()
    r.read()
    c.close()
    time.sleep(1.0)
    res["mg_dashboard_delete"] = {"status": r.status, "key_after_1s": status(ports["mg"], victim)}

    def mg_revoke(i):
        """The key out of the TOML, then a restart; a thread notes when a good key is
        answered again (the stdio FastMCP child starts anew)."""
        def do():
            nonlocal mg
            mg_hashes[i] = None
            mcp_guard_config(mgconf, ports["mg"], ["stdio"], mg_hashes)
            old_child = children(mg.pid)
            stop = time.monotonic()
            mg.send_signal(signal.SIGINT)   # its graceful shutdown (`run` handles Ctrl-C)
            mg.wait(30)
            for c in old_child:             # its stdio child ends on EOF; make sure
                try:
                    os.kill(c, signal.SIGTERM)
                except OSError:
                    pass
            th = threading.Thread(target=lambda: state.update(
                good_back=poll_until(ports["mg"], mg_keys[0], (200,), stop)))
            th.start()
            mg = start([MCP_GUARD, "--config", mgconf, "run"], ports["mg"], "mcp-guard")
            state.update(down=time.monotonic() - stop, thread=th)
        return do

    state = {}
    for label, i, under_load in (("gw/peer/idle", 1, False), ("gw/peer/load", 2, True)):
        t = revoke_and_watch(ports["mg"], mg_keys[i], mg_revoke(i), under_load, mg_keys[0])
        state["thread"].join()
        t.update(down_s=state["down"], good_key_back_s=state["good_back"])
        rev[label] = t
    assert status(ports["mg"], mg_keys[0]) == 200
    res["revocation"] = rev
    res["load"]["end"] = loadavg()
    return res


def med(rs, k):
    return statistics.median(r[k] for r in rs)


def fmt_ms(us):
    return f"{us / 1e3:.2f}" if us < 100e3 else f"{us / 1e3:,.0f}"


def ratio(ours, peer, higher_better):
    """'x.xx×' meaning how many times better ours is (>1: ahead), and the verdict."""
    if ours is None or peer is None:
        return "—", "—"
    if higher_better:
        r = ours / peer if peer else float("inf")
    else:
        if ours <= 0 and peer > 0:
            return "ours ≤ 0", "yes"
        if peer <= 0:
            return "peer ≤ 0", "**no**" if ours > peer else "yes"
        r = peer / ours
    return f"{r:.2f}×", "yes" if r > 1 else "**no**"


def report(all_res):
    print(f"Machine: {os.cpu_count()} cores, {os.uname().release}. wrk -t2 --latency, {SECS} s a "
          f"run, {ROUNDS} rounds; in every round each target once, pairs side by side, the order "
          f"reversed every other round; medians of the rounds. Body: a JSON-RPC `ping` "
          f"(41 bytes), Bearer key. Gateways: {GW_CONNS} connections; in-process: {PY_CONNS}.")
    for res in all_res:
        n = res["keys"]
        runs = {tuple(k.split("/")): v for k, v in res["runs"].items()}
        rss = res["rss_kib"]
        rev = res["revocation"]
        load = res["load"]
        print(f"\n#### {n:,} keys\n")
        print(f"Load average (1/5/15 min): start {load['start']}; rounds "
              + "; ".join(load["rounds"]) + f"; after the rounds {load['after_rounds']}; "
              f"end {load['end']}. Setup (vaults, key stores, starts): {res['setup_s']:.0f} s.\n")
        print("| target | requests/s | p50 ms | p99 ms | added p50 ms | added p99 ms | RSS MiB |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        rss_of = {("fastmcp", "ours"): rss["serve"] + rss["nginx"],
                  ("fastmcp", "peer"): rss["mcp-guard"],
                  ("trivial", "ours"): None, ("trivial", "peer"): rss["mcp-guard (trivial)"],
                  ("fastmcp", "bare"): rss["FastMCP alone"], ("trivial", "bare"): None,
                  ("inproc", "bare"): rss["FastMCP alone"],
                  ("inproc", "ours"): rss["FastMCP + APIKeyMiddleware"],
                  ("inproc", "peer"): rss["FastMCP + fastmcp-guard"]}
        verdicts = []
        for g, title in (("fastmcp", "Gateways in front of the FastMCP server"),
                         ("trivial", "Gateways in front of a trivial upstream"),
                         ("inproc", "Inside the FastMCP server")):
            print(f"| *{title}* | | | | | | |")
            base = runs[(g, "bare")]
            fig = {}
            for role in ("bare", "ours", "peer"):
                rs = runs[(g, role)]
                label = next(lb for gg, rr, lb in TARGETS if gg == g and rr == role)
                a50 = med(rs, "p50") - med(base, "p50")
                a99 = med(rs, "p99") - med(base, "p99")
                fig[role] = {"rps": med(rs, "rps"), "a50": a50, "a99": a99, "rss": rss_of[(g, role)]}
                bad = sum(r["non2xx"] for r in rs)
                note = f" ({bad} non-2xx)" if bad else ""
                rsst = "—" if rss_of[(g, role)] is None else f"{rss_of[(g, role)] / 1024:.1f}"
                print(f"| {label}{note} | {med(rs, 'rps'):,.0f} | {fmt_ms(med(rs, 'p50'))} | "
                      f"{fmt_ms(med(rs, 'p99'))} | "
                      + ("—" if role == "bare" else f"{a50 / 1e3:+.2f}") + " | "
                      + ("—" if role == "bare" else f"{a99 / 1e3:+.2f}") + f" | {rsst} |")
            verdicts.append((g, fig))
        print()
        print("RSS after the rounds (MiB): " + "; ".join(
            f"{k} {v / 1024:.1f}" for k, v in rss.items()) + ". Peak (VmHWM): " + "; ".join(
            f"{k} {v / 1024:.1f}" for k, v in res["hwm_kib"].items()) + ". PSS (pages shared "
            "between processes counted once): " + "; ".join(
            f"{k} {v / 1024:.1f}" for k, v in res["pss_kib"].items()) + ".")
        print("\nAnswers carrying another request's JSON-RPC id, of 64 concurrent pings: " + "; ".join(
            f"{k} {v}" for k, v in res["id_mismatch"].items()) + ".")
        print("\n| revocation → refusal | how | idle: command s | idle: refused after s | "
              "in use: refused after s | in use: admitted after the first refusal | "
              "another key: longest gap between answers, idle / in use s |")
        print("|---|---|---:|---:|---:|---:|---:|")
        how = {"gw/ours": ("nginx + serve", "`mcp-key-manager revoke ID` (republishes the "
                           "signed file; `serve` follows it, no restart)"),
               "gw/peer": ("mcp-guard", "key taken out of the TOML, then a restart "
                           "(no reload, no revoke command)"),
               "inproc/ours": ("APIKeyMiddleware", "`mcp-key-manager revoke ID` (the middleware "
                               "follows the file, no restart)"),
               "inproc/peer": ("fastmcp-guard", "`fastmcp-guard keys revoke ID --db` "
                               "(SQLite row, read on every request)")}
        for k, (who, h) in how.items():
            i, lo = rev[k + "/idle"], rev[k + "/load"]
            sec = lambda v: "never" if v is None else f"{v:.3f}"  # noqa: E731
            print(f"| {who} | {h} | {i['cmd_s']:.3f} | {sec(i['refused_s'])} | "
                  f"{sec(lo['refused_s'])} | {lo['admitted_after']}"
                  + (" (still admitted at the end)" if lo["still_200"] else "")
                  + f" | {i['good_outage_s']:.3f} / {lo['good_outage_s']:.3f} |")
        for k in ("gw/peer/idle", "gw/peer/load"):
            t = rev[k]
            back = t["good_key_back_s"]
            print(f"\nmcp-guard restart ({'idle' if k.endswith('idle') else 'key in use'}): "
                  f"not listening for {t['down_s']:.3f} s; a good key answered again after "
                  + ("never (60 s)" if back is None else f"{back:.3f} s")
                  + " (its stdio FastMCP child starts anew).", end="")
        d = res["mg_dashboard_delete"]
        print(f"\nmcp-guard `DELETE /api/dashboard/api-keys/k1`: HTTP {d['status']}, the key "
              f"then answered {d['key_after_1s']}.")
        for k in ("inproc/ours/load", "inproc/peer/load", "gw/ours/load"):
            t = rev[k]
            print(f"{k}: the {LOAD_CLIENTS} clients using the key sent {t['load_requests']} "
                  f"requests, {t['load_refused']} refused.")
        print(f"fastmcp-guard key status in SQLite after the runs: idle victim "
              f"`{res['guard_status_after']['idle']}`, in-use victim "
              f"`{res['guard_status_after']['load']}`.")
        # ratios
        print("\n| pair | figure | ours | peer | ours better by | ahead? |")
        print("|---|---|---:|---:|---:|---|")
        pair = {"fastmcp": "nginx + serve vs mcp-guard (FastMCP)",
                "trivial": "nginx + serve vs mcp-guard (trivial upstream)",
                "inproc": "APIKeyMiddleware vs fastmcp-guard"}
        for g, fig in verdicts:
            o, p = fig["ours"], fig["peer"]
            rows = [("requests/s", o["rps"], p["rps"], True, lambda v: f"{v:,.0f}"),
                    ("added p50 ms", o["a50"], p["a50"], False, lambda v: f"{v / 1e3:+.2f}"),
                    ("added p99 ms", o["a99"], p["a99"], False, lambda v: f"{v / 1e3:+.2f}")]
            if g == "fastmcp":
                pss = res["pss_kib"]
                rows += [("RSS MiB, serve + nginx (3 processes)", o["rss"], p["rss"], False,
                          lambda v: f"{v / 1024:.1f}"),
                         ("PSS MiB, serve + nginx (3 processes)", pss["serve"] + pss["nginx"],
                          pss["mcp-guard"], False, lambda v: f"{v / 1024:.1f}"),
                         ("RSS MiB, serve alone", rss["serve"], p["rss"], False,
                          lambda v: f"{v / 1024:.1f}")]
            elif o["rss"] is not None:
                rows.append(("RSS MiB (whole process)", o["rss"], p["rss"], False,
                             lambda v: f"{v / 1024:.1f}"))
            for name, ov, pv, hb, f in rows:
                r, v = ratio(ov, pv, hb)
                print(f"| {pair[g]} | {name} | {f(ov)} | {f(pv)} | {r} | {v} |")
        for g, k in (("fastmcp", "gw"), ("inproc", "inproc")):
            for when in ("idle", "load"):
                ov, pv = rev[f"{k}/ours/{when}"]["refused_s"], rev[f"{k}/peer/{when}"]["refused_s"]
                r, v = ratio(ov, pv if pv is not None else float("inf"), False)
                print(f"| {pair[g].replace(' (FastMCP)', '')} | revoke → refused, "
                      f"{'idle' if when == 'idle' else 'key in use'} s | "
                      f"{'never' if ov is None else f'{ov:.3f}'} | "
                      f"{'never' if pv is None else f'{pv:.3f}'} | "
                      f"{'∞' if pv is None and ov is not None else r} | {v} |")
            ov = max(rev[f"{k}/ours/idle"]["good_outage_s"], rev[f"{k}/ours/load"]["good_outage_s"])
            pv = max(rev[f"{k}/peer/idle"]["good_outage_s"], rev[f"{k}/peer/load"]["good_outage_s"])
            print(f"| {pair[g].replace(' (FastMCP)', '')} | another key: longest gap between "
                  f"answers during a revocation s | {ov:.3f} | {pv:.3f} | "
                  + ("—" if ov == pv else ("ours 0" if ov == 0 else f"{pv / ov:.2f}×"))
                  + " | " + ("yes" if ov < pv else ("tie" if ov == pv else "**no**")) + " |")


def main():
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    all_res = []
    for n in map(int, sys.argv[1:]):
        procs = []
        work = tempfile.mkdtemp(prefix=f"peers-{n}-")
        try:
            all_res.append(run(n, procs, work))
        finally:
            for p in procs:
                for c in children(p.pid):
                    try:
                        os.kill(c, signal.SIGTERM)
                    except OSError:
                        pass
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
