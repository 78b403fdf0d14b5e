"""`serve --authorization-server` (the bridge) measured on this machine (BENCHMARKS.md,
"The bridge"):

1. token issuance: N authorization codes are obtained as a person would (GET /authorize,
   the consent form posted with the key), then exchanged at /token (PKCE S256) as fast as
   `serve` answers: every exchange request written at once, pipelined over C keep-alive
   connections, the answers read back; rate = N / wall time from the first byte written
   to the last answer read (the client parses little, so `serve` is what is timed);
2. `/auth` with a bridge-issued access token against the same key, on the same instance,
   with wrk (ROUNDS interleaved rounds; medians; the ratio per round).

Usage: cargo build --release && python3 benches/serve/bridge.py [N codes, default 5000]
   env BIN, ROUNDS (default 3), SECS (wrk seconds a run, default 8), CONNS (default 4).
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
N = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
ROUNDS = int(os.environ.get("ROUNDS", "3"))
SECS = int(os.environ.get("SECS", "8"))
CONNS = int(os.environ.get("CONNS", "4"))
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
    return dict(urllib.parse.parse_qsl(loc.query))["code"], verifier


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
    out = subprocess.run(["wrk", "-t2", "-c32", "-d%ds" % SECS, "--latency", "-s", script, url],
                         capture_output=True, text=True, env=env, timeout=SECS + 30).stdout
    if "Non-2xx" in out:
        raise SystemExit("non-2xx answers from wrk:\n" + out)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = re.search(r"(?m)^\s+50%\s+(\S+)", out).group(1)
    p99 = re.search(r"(?m)^\s+99%\s+(\S+)", out).group(1)
    return rps, p50, p99


def main():
    if not os.access(BIN, os.X_OK):
        raise SystemExit("build first: cargo build --release (%s missing)" % BIN)
    work = tempfile.mkdtemp()
    subprocess.run([sys.executable, os.path.join(ROOT, "benches/serve/gen_verifier.py"),
                    work + "/v.json", "10", "1", work + "/key"], check=True)
    key = open(work + "/key").read().strip()
    port = free_port()
    log = open(work + "/serve.log", "w")
    srv = subprocess.Popen(
        [BIN, "serve", "--verifier", work + "/v.json", "--listen", "127.0.0.1:%d" % port,
         "--usage", work + "/u.json", "--resource", RESOURCE, "--authorization-server",
         "--signing-key", work + "/signing.jwk", "--scope", "tools:call:echo"],
        stdout=log, stderr=log)
    try:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("POST", "/register", body=json.dumps({"redirect_uris": [REDIRECT]}),
                     headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        client = json.loads(r.read())["client_id"]
        print("Machine: %d cores; load before: %s" % (os.cpu_count(),
              " ".join(open("/proc/loadavg").read().split()[:3])))

        t0 = time.perf_counter()
        codes = [code_for(conn, client, key) for _ in range(N)]
        made = time.perf_counter() - t0
        wall, statuses = issuance(port, client, codes)
        ok = statuses.count(200)
        print("\n1. Token issuance (code exchange at /token, PKCE S256, EdDSA access token and "
              "a refresh token), %d codes pipelined over %d connections:" % (N, CONNS))
        print("   %d answered 200 of %d in %.3f s: %s exchanges a second (%.1f µs each, "
              "wall, both cores)" % (ok, len(statuses), wall, f"{ok / wall:,.0f}",
                                     wall / max(ok, 1) * 1e6))
        print("   (getting the %d codes through the consent page took %.1f s from Python)"
              % (N, made))
        if ok != N:
            raise SystemExit("not every exchange succeeded: %s" % sorted(set(statuses)))

        # A token of this bridge, for the /auth comparison.
        code, verifier = code_for(conn, client, key)
        conn.request("POST", "/token", body=urllib.parse.urlencode({
            "grant_type": "authorization_code", "code": code, "client_id": client,
            "redirect_uri": REDIRECT, "code_verifier": verifier, "resource": RESOURCE}),
            headers={"Content-Type": "application/x-www-form-urlencoded"})
        token = json.loads(conn.getresponse().read())["access_token"]
        env = dict(os.environ, BENCH_KEY=key, BENCH_TOKEN=token)
        url = "http://127.0.0.1:%d/auth" % port
        scripts = {"key": ROOT + "/benches/serve/key.lua", "token": ROOT + "/benches/serve/token.lua"}
        res = {"key": [], "token": []}
        for rnd in range(ROUNDS):
            order = ["key", "token"] if rnd % 2 == 0 else ["token", "key"]
            for name in order:
                res[name].append(wrk(url, scripts[name], env))
        print("\n2. /auth on the same instance, wrk -t2 -c32 -d%ds, %d interleaved rounds:"
              % (SECS, ROUNDS))
        print("\n| credential | requests/s (median) | each round | p50 | p99 |")
        print("|---|---:|---|---:|---:|")
        for name, label in (("key", "a key"), ("token", "a bridge-issued access token")):
            rates = [r[0] for r in res[name]]
            print("| %s | %s | %s | %s | %s |" % (
                label, f"{statistics.median(rates):,.0f}",
                " / ".join(f"{x:,.0f}" for x in rates), res[name][0][1], res[name][0][2]))
        ratios = [t[0] / k[0] for t, k in zip(res["token"], res["key"])]
        print("\n- bridge token / key: %.2fx (rounds: %s)" % (
            statistics.median(ratios), ", ".join("%.2f" % x for x in ratios)))
        print("Load after: %s" % " ".join(open("/proc/loadavg").read().split()[:3]))
    finally:
        srv.terminate()
        srv.wait(10)
        log.close()
        if "--keep" not in sys.argv:
            subprocess.run(["rm", "-rf", work])


main()
