#!/usr/bin/env bash
# `serve` with access tokens and with tool permissions decided from the SEP-2243 headers,
# beside nginx answering `return 200` itself, with wrk, on this machine (docs/oauth.md):
#   1. GET /auth with a key, and with a (cached) ES256 access token, on one instance;
#   2. --tool-permissions decided from Mcp-Method/Mcp-Name (no body, --trust-routing-headers)
#      against a 300-byte tools/call body read and parsed.
# The token comes from the independent test issuer (tests/serve/oauth/issuer.py, joserfc).
# Usage: cargo build --release && benches/serve/oauth.sh [SECONDS per run, default 10]
#        (ROUNDS=N interleaved rounds, default 3: each target in turn, medians and ratios)
#        PIN=1 WORKERS=1 benches/serve/oauth.sh   # servers on CPU 0 (nginx one worker), wrk on CPU 1
# Needs wrk, nginx and a Python with joserfc ($PYTHON, default .ci/venv/bin/python).
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-${CARGO_TARGET_DIR:-target}/release/mcp-key-manager}
NGINX=${NGINX:-/usr/sbin/nginx}
PYTHON=${PYTHON:-.ci/venv/bin/python}
SECS=${1:-10}
CONNS=32
THREADS=2; SRV=(); CLI=()
if [ "${PIN:-0}" = 1 ]; then
    # One core for the servers, one for wrk (as benches/serve/run.sh does): the ratios no
    # longer depend on how the scheduler shares two cores among three programs.
    THREADS=1; SRV=(taskset -c 0); CLI=(taskset -c 1)
fi
[ -x "$BIN" ] || { echo "build first: cargo build --release ($BIN missing)" >&2; exit 2; }
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 never opened" >&2; exit 1; }

python3 benches/serve/gen_verifier.py "$work/v.json" 10 1 "$work/key"
export BENCH_KEY BENCH_TOKEN
BENCH_KEY=$(cat "$work/key")
mkfifo "$work/issuer.in"
"$PYTHON" tests/serve/oauth/issuer.py < "$work/issuer.in" > "$work/issuer.out" & pids+=($!)
exec 9>"$work/issuer.in"   # keeps the issuer's stdin open until the script ends
for _ in $(seq 100); do grep -q LISTENING "$work/issuer.out" && break; sleep 0.05; done
IPORT=$(awk '/LISTENING/ {print $2}' "$work/issuer.out")
ISSUER="http://127.0.0.1:$IPORT"
RESOURCE="https://mcp.example.com/mcp"
BENCH_TOKEN=$(python3 - "$IPORT" "$RESOURCE" <<'PY'
import json, sys, urllib.request
port, resource = sys.argv[1], sys.argv[2]
body = json.dumps({"alg": "ES256", "claims": {"aud": resource, "scope": "tools:call",
                   "exp": __import__("time").time().__int__() + 3600}}).encode()
req = urllib.request.Request(f"http://127.0.0.1:{port}/mint", data=body,
                             headers={"Content-Type": "application/json"})
print(json.load(urllib.request.urlopen(req))["token"])
PY
)
P_SERVE=$(free_port); P_ROUTED=$(free_port); P_BODY=$(free_port); P_NGX=$(free_port)
"${SRV[@]}" "$BIN" serve --verifier "$work/v.json" --listen "127.0.0.1:$P_SERVE" --usage "$work/u1.json" \
    --resource "$RESOURCE" --issuer "$ISSUER" 2>"$work/serve.log" & pids+=($!)
"${SRV[@]}" "$BIN" serve --verifier "$work/v.json" --listen "127.0.0.1:$P_ROUTED" --usage "$work/u2.json" \
    --tool-permissions --trust-routing-headers 2>"$work/routed.log" & pids+=($!)
"${SRV[@]}" "$BIN" serve --verifier "$work/v.json" --listen "127.0.0.1:$P_BODY" --usage "$work/u3.json" \
    --tool-permissions 2>"$work/body.log" & pids+=($!)
mkdir -p "$work/ngx"
cat > "$work/nginx.conf" <<CONF
daemon off;
worker_processes ${WORKERS:-2};
pid $work/ngx/nginx.pid;
error_log $work/ngx/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $work/ngx/body; proxy_temp_path $work/ngx/proxy;
    fastcgi_temp_path $work/ngx/fcgi; uwsgi_temp_path $work/ngx/uwsgi; scgi_temp_path $work/ngx/scgi;
    server { listen 127.0.0.1:$P_NGX; location / { return 200; } }
}
CONF
"${SRV[@]}" "$NGINX" -p "$work/ngx" -c "$work/nginx.conf" -e "$work/ngx/error.log" & pids+=($!)
for p in $P_SERVE $P_ROUTED $P_BODY $P_NGX; do wait_port "$p"; done

bench() {
    local url=$1 script=$2 out
    out=$("${CLI[@]}" wrk -t"$THREADS" -c"$CONNS" -d"${SECS}s" --latency -s "$script" "$url")
    if echo "$out" | grep -q "Non-2xx"; then echo "non-2xx answers from $url" >&2; echo "$out" >&2; exit 1; fi
    local rps p50 p99
    rps=$(echo "$out" | awk '/^Requests\/sec/ {print $2}')
    p50=$(echo "$out" | awk '$1=="50%" {print $2}')
    p99=$(echo "$out" | awk '$1=="99%" {print $2}')
    echo "$rps $p50 $p99"
}
ROUNDS=${ROUNDS:-3}
echo "Machine: $(nproc) cores; load before: $(cut -d' ' -f1-3 /proc/loadavg); wrk -t$THREADS -c$CONNS -d${SECS}s; PIN=${PIN:-0}; $ROUNDS interleaved rounds"
# Each round measures every target in turn; the table gives each target's median over the
# rounds, and each ratio is the median of the ratios taken within one round.
names=(nginx key token routed body)
urls=("http://127.0.0.1:$P_NGX/" "http://127.0.0.1:$P_SERVE/auth" "http://127.0.0.1:$P_SERVE/auth"
      "http://127.0.0.1:$P_ROUTED/auth" "http://127.0.0.1:$P_BODY/auth")
scripts=(key.lua key.lua token.lua routed.lua toolcall.lua)
: > "$work/results"
for round in $(seq "$ROUNDS"); do
    for i in "${!names[@]}"; do
        read -r rps p50 p99 < <(bench "${urls[$i]}" "benches/serve/${scripts[$i]}")
        echo "$round ${names[$i]} $rps $p50 $p99" >> "$work/results"
    done
done
echo "Load after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
python3 - "$work/results" <<'PY'
import re, statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
def us(v):
    n, u = re.fullmatch(r"([\d.]+)(us|ms|s)", v).groups()
    return float(n) * {"us": 1, "ms": 1e3, "s": 1e6}[u]
labels = {"nginx": "nginx `return 200`", "key": "serve /auth, key",
          "token": "serve /auth, ES256 access token (cached)",
          "routed": "serve --tool-permissions, from Mcp-Method/Mcp-Name (no body)",
          "body": "serve --tool-permissions, 300-byte body read and parsed"}
by = {}
for r, name, rps, p50, p99 in rows:
    by.setdefault(name, {})[int(r)] = (float(rps), us(p50), us(p99))
print("| target | requests/s (median) | each round | p50 | p99 |")
print("|---|---:|---|---:|---:|")
for name, label in labels.items():
    v = by[name]
    rates = [v[r][0] for r in sorted(v)]
    print(f"| {label} | {statistics.median(rates):,.0f} | {' / '.join(f'{x:,.0f}' for x in rates)} "
          f"| {statistics.median(x[1] for x in v.values()):.0f} µs "
          f"| {statistics.median(x[2] for x in v.values()):.0f} µs |")
def ratio(a, b):
    rs = [by[a][r][0] / by[b][r][0] for r in sorted(by[a])]
    return f"{statistics.median(rs):.2f}x (rounds: {', '.join(f'{x:.2f}' for x in rs)})"
print()
print(f"- cached access token / key: {ratio('token', 'key')}")
print(f"- tool permissions from headers / nginx `return 200`: {ratio('routed', 'nginx')}")
print(f"- tool permissions from the body / nginx `return 200`: {ratio('body', 'nginx')}")
print(f"- key / nginx `return 200`: {ratio('key', 'nginx')}")
print(f"- tool permissions from headers / key: {ratio('routed', 'key')}")
PY
grep -c "oauth: 4 key(s)" "$work/serve.log" >/dev/null || { echo "serve fetched no keys" >&2; cat "$work/serve.log" >&2; exit 1; }
