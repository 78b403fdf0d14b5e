"""`serve --authorization-server` (the bridge) measured on this machine (BENCHMARKS.md,
"The bridge"):

1. token issuance: N authorization codes are obtained as a person would (GET /authorize,
   the consent form posted with the key), then exchanged at /token (PKCE S256) as fast as
   `serve` answers: every exchange request written at once, pipelined over C keep-alive
   connections, the answers read back; rate = N / wall time from the first byte written
   to the last answer read (the client parses little, so `serve` is what is timed);
   measured with the state in memory and in Redis (`--authorization-state`, a redis-server
   of the run's own on 127.0.0.1), in ROUNDS interleaved rounds;
2. `/auth` with a bridge-issued access token of each instance against a key, with wrk
   (ROUNDS interleaved rounds; medians; the ratio per round).

Usage: cargo build --release && python3 benches/serve/bridge.py [N codes a round, default 1500]
   (an instance keeps at most 10,000 codes, spent ones an hour: N x ROUNDS must stay below)
   env BIN, ROUNDS (default 3), SECS (wrk seconds a run, default 8), CONNS (default 4),
   PIN=1 (serve and Redis on CPU 0, wrk on CPU 1, one thread).
Everything listens on 127.0.0.1 and is stopped at the end; no key or token is put in argv.
"""

import base64
import hashlib
import html.parser
import http.client
import json
import os
import re
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("BIN", os.path.join(ROOT, "target/release/mcp-key-manager"))
N = int(sys.argv[1]) if len(sys.argv) > 1 else 1500
ROUNDS = int(os.environ.get("ROUNDS", "3"))
SECS = int(os.environ.get("SECS", "8"))
CONNS = int(os.environ.get("CONNS", "4"))
# PIN=1: serve (and Redis) on CPU 0, wrk on CPU 1 with one thread: less noise, lower rates.
PIN = os.environ.get("PIN") == "1"
SRV = ["taskset", "-c", "0"] if PIN else []
CLI = ["taskset", "-c", "1"] if PIN else []
RESOURCE = "https://mcp.example.com/mcp"
REDIRECT = "http://127.0.0.1:9/cb"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Form(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.fields = {}

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "input" and a.get("type") == "hidden":
            self.fields[a["name"]] = a.get("value", "")


def pkce():
    verifier = secrets.token_urlsafe(32)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=")
    return verifier, challenge.decode()


def code_for(conn, client, key):
    """One code, obtained as a browser would: the consent page, then the form posted."""
    verifier, challenge = pkce()
    q = urllib.parse.urlencode({
        "response_type": "code", "client_id": client, "redirect_uri": REDIRECT,
        "code_challenge": challenge, "code_challenge_method": "S256",
        "scope": "tools:call:echo", "state": "s", "resource": RESOURCE})
    conn.request("GET", "/authorize?" + q)
    r = conn.getresponse()
    page = r.read().decode()
    assert r.status == 200, (r.status, page[:300])
    cookie = r.getheader("set-cookie").split(";")[0]
    f = Form()
    f.feed(page)
    body = urllib.parse.urlencode({**f.fields, "key": key, "decision": "allow"})
    conn.request("POST", "/authorize", body=body, headers={
        "Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie})
    r = conn.getresponse()
    r.read()
    assert r.status == 302, r.status
    loc = urllib.parse.urlsplit(r.getheader("location"))
    got = dict(urllib.parse.parse_qsl(loc.query))
    if "code" not in got:
        raise SystemExit("no code: %s" % got)
    return got["code"], verifier


def exchange_request(port, client, code, verifier):
    body = urllib.parse.urlencode({
        "grant_type": "authorization_code", "code": code, "client_id": client,
        "redirect_uri": REDIRECT, "code_verifier": verifier, "resource": RESOURCE}).encode()
    head = ("POST /token HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n"
            % (port, len(body))).encode()
    return head + body


def read_answers(sock, n, statuses):
    """Reads n HTTP/1.1 answers (Content-Length bodies) from sock; their statuses."""
    buf = b""
    for _ in range(n):
        while b"\r\n\r\n" not in buf:
            chunk = sock.recv(1 << 20)
            if not chunk:
                raise RuntimeError("connection closed early")
            buf += chunk
        head, _, buf = buf.partition(b"\r\n\r\n")
        statuses.append(int(head.split(b" ", 2)[1]))
        m = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
        need = int(m.group(1)) if m else 0
        while len(buf) < need:
            buf += sock.recv(1 << 20)
        buf = buf[need:]


def issuance(port, client, codes):
    parts = [codes[i::CONNS] for i in range(CONNS)]
    socks = [socket.create_connection(("127.0.0.1", port)) for _ in parts]
    payloads = [b"".join(exchange_request(port, client, c, v) for c, v in p) for p in parts]
    statuses = [[] for _ in parts]
    readers = [threading.Thread(target=read_answers, args=(s, len(p), st))
               for s, p, st in zip(socks, parts, statuses)]
    start = time.perf_counter()
    for t in readers:
        t.start()
    for s, data in zip(socks, payloads):
        threading.Thread(target=s.sendall, args=(data,)).start()
    for t in readers:
        t.join(120)
    wall = time.perf_counter() - start
    for s in socks:
        s.close()
    every = [x for st in statuses for x in st]
    return wall, every


def wrk(url, script, env):
    out = subprocess.run(CLI + ["wrk", "-t1" if PIN else "-t2", "-c32", "-d%ds" % SECS,
                                "--latency", "-s", script, url],
                         capture_output=True, text=True, env=env, timeout=SECS + 30).stdout
    if "Non-2xx" in out:
        raise SystemExit("non-2xx answers from wrk:\n" + out)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = re.search(r"(?m)^\s+50%\s+(\S+)", out).group(1)
    p99 = re.search(r"(?m)^\s+99%\s+(\S+)", out).group(1)
    return rps, p50, p99


def start_redis(work):
    """A redis-server of this run's own on 127.0.0.1 (no persistence); None without one."""
    port = free_port()
    try:
        proc = subprocess.Popen(SRV + ["redis-server", "--bind", "127.0.0.1", "--port", str(port),
                                 "--save", "", "--appendonly", "no", "--dir", work],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except FileNotFoundError:
        return None, None
    wait_port(port)
    return proc, port


def wait_port(port):
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit("nothing listens on %d" % port)


def start_serve(work, name, extra):
    port = free_port()
    log = open("%s/serve.%s.log" % (work, name), "w")
    srv = subprocess.Popen(
        SRV + [BIN, "serve", "--verifier", work + "/v.json", "--listen", "127.0.0.1:%d" % port,
         "--usage", "%s/u.%s.json" % (work, name), "--resource", RESOURCE,
         "--authorization-server", "--signing-key", work + "/signing.jwk",
         "--scope", "tools:call:echo"] + extra,
        stdout=log, stderr=log)
    wait_port(port)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("POST", "/register", body=json.dumps({"redirect_uris": [REDIRECT]}),
                 headers={"Content-Type": "application/json"})
    client = json.loads(conn.getresponse().read())["client_id"]
    return {"name": name, "proc": srv, "log": log, "port": port, "conn": conn,
            "client": client}


def token_from(inst, key):
    inst["conn"] = http.client.HTTPConnection("127.0.0.1", inst["port"], timeout=10)
    code, verifier = code_for(inst["conn"], inst["client"], key)
    inst["conn"].request("POST", "/token", body=urllib.parse.urlencode({
        "grant_type": "authorization_code", "code": code, "client_id": inst["client"],
        "redirect_uri": REDIRECT, "code_verifier": verifier, "resource": RESOURCE}),
        headers={"Content-Type": "application/x-www-form-urlencoded"})
    return json.loads(inst["conn"].getresponse().read())["access_token"]


def main():
    if not os.access(BIN, os.X_OK):
        raise SystemExit("build first: cargo build --release (%s missing)" % BIN)
    work = tempfile.mkdtemp()
    subprocess.run([sys.executable, os.path.join(ROOT, "benches/serve/gen_verifier.py"),
                    work + "/v.json", "10", "1", work + "/key"], check=True)
    key = open(work + "/key").read().strip()
    redis, redis_port = start_redis(work)
    insts = []
    try:
        insts.append(start_serve(work, "memory", []))
        if redis is None:
            print("redis-server is not installed: the state in Redis is not measured")
        else:
            url = "redis://127.0.0.1:%d/0?key=bench" % redis_port
            insts.append(start_serve(work, "redis", ["--authorization-state", url]))
        print("Machine: %d cores; load before: %s" % (os.cpu_count(),
              " ".join(open("/proc/loadavg").read().split()[:3])))

        # 1. Issuance, memory and Redis state in interleaved rounds.
        rates = {i["name"]: [] for i in insts}
        consent = {i["name"]: [] for i in insts}
        for rnd in range(ROUNDS):
            order = insts if rnd % 2 == 0 else list(reversed(insts))
            for inst in order:
                # A fresh connection: serve closes one left idle past --read-timeout.
                inst["conn"] = http.client.HTTPConnection("127.0.0.1", inst["port"], timeout=10)
                t0 = time.perf_counter()
                codes = [code_for(inst["conn"], inst["client"], key) for _ in range(N)]
                consent[inst["name"]].append(N / (time.perf_counter() - t0))
                wall, statuses = issuance(inst["port"], inst["client"], codes)
                ok = statuses.count(200)
                if ok != N:
                    raise SystemExit("%s: not every exchange succeeded: %s"
                                     % (inst["name"], sorted(set(statuses))))
                rates[inst["name"]].append(ok / wall)
        print("\n1. Token issuance (code exchange at /token, PKCE S256, EdDSA access token and "
              "a refresh token), %d codes pipelined over %d connections, %d interleaved rounds:"
              % (N, CONNS, ROUNDS))
        print("\n| state | exchanges/s (median) | each round | µs each | consent pages "
              "answered/s (from Python, one connection) |")
        print("|---|---:|---|---:|---:|")
        for name, r in rates.items():
            med = statistics.median(r)
            print("| %s | %s | %s | %.1f | %s |" % (
                name, f"{med:,.0f}", " / ".join(f"{x:,.0f}" for x in r), 1e6 / med,
                f"{statistics.median(consent[name]):,.0f}"))
        if "redis" in rates:
            ratios = [r / m for r, m in zip(rates["redis"], rates["memory"])]
            print("\n- Redis / memory: %.2fx (rounds: %s)" % (
                statistics.median(ratios), ", ".join("%.2f" % x for x in ratios)))

        # 2. /auth: a key, and each instance's token, interleaved.
        creds = [("key", "a key", insts[0], ROOT + "/benches/serve/key.lua", key)]
        for inst in insts:
            creds.append(("token-" + inst["name"],
                          "a bridge token (state: %s)" % inst["name"], inst,
                          ROOT + "/benches/serve/token.lua", token_from(inst, key)))
        res = {c[0]: [] for c in creds}
        for rnd in range(ROUNDS):
            order = creds if rnd % 2 == 0 else list(reversed(creds))
            for name, _, inst, script, secret in order:
                env = dict(os.environ, BENCH_KEY=secret, BENCH_TOKEN=secret)
                res[name].append(wrk("http://127.0.0.1:%d/auth" % inst["port"], script, env))
        print("\n2. /auth, wrk -t%d -c32 -d%ds, %d interleaved rounds%s:" % (
            1 if PIN else 2, SECS, ROUNDS, " (PIN=1: serve on CPU 0, wrk on CPU 1)" if PIN else ""))
        print("\n| credential | requests/s (median) | each round | p50 | p99 |")
        print("|---|---:|---|---:|---:|")
        for name, label, *_ in creds:
            r = [x[0] for x in res[name]]
            print("| %s | %s | %s | %s | %s |" % (
                label, f"{statistics.median(r):,.0f}", " / ".join(f"{x:,.0f}" for x in r),
                res[name][0][1], res[name][0][2]))
        for name, label, *_ in creds[1:]:
            ratios = [t[0] / k[0] for t, k in zip(res[name], res["key"])]
            print("- %s / key: %.2fx (rounds: %s)" % (
                label, statistics.median(ratios), ", ".join("%.2f" % x for x in ratios)))
        print("Load after: %s" % " ".join(open("/proc/loadavg").read().split()[:3]))
    finally:
        for inst in insts:
            inst["proc"].terminate()
            inst["proc"].wait(10)
            inst["log"].close()
        if redis is not None:
            redis.terminate()
            redis.wait(10)
        if "--keep" not in sys.argv:
            subprocess.run(["rm", "-rf", work])


main()
