#!/usr/bin/env bash
# `serve` with access tokens and with tool permissions decided from the SEP-2243 headers,
# beside nginx answering `return 200` itself, with wrk, on this machine (docs/oauth.md):
#   1. GET /auth with a key, and with a (cached) ES256 access token, on one instance;
#   2. --tool-permissions decided from Mcp-Method/Mcp-Name (no body, --trust-routing-headers)
#      against a 300-byte tools/call body read and parsed.
# The token comes from the independent test issuer (tests/serve/oauth/issuer.py, joserfc).
# Usage: cargo build --release && benches/serve/oauth.sh [SECONDS per run, default 10]
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
echo "Machine: $(nproc) cores; load before: $(cut -d' ' -f1-3 /proc/loadavg); wrk -t$THREADS -c$CONNS -d${SECS}s; PIN=${PIN:-0}"
echo
echo "| target | requests/s | p50 | p99 |"
echo "|---|---:|---:|---:|"
read -r n1 a b < <(bench "http://127.0.0.1:$P_NGX/" benches/serve/key.lua);        echo "| nginx \`return 200\` | $n1 | $a | $b |"
read -r k a b < <(bench "http://127.0.0.1:$P_SERVE/auth" benches/serve/key.lua);    echo "| serve /auth, key | $k | $a | $b |"
read -r t a b < <(bench "http://127.0.0.1:$P_SERVE/auth" benches/serve/token.lua);  echo "| serve /auth, ES256 access token (cached) | $t | $a | $b |"
read -r r a b < <(bench "http://127.0.0.1:$P_ROUTED/auth" benches/serve/routed.lua); echo "| serve --tool-permissions, from Mcp-Method/Mcp-Name | $r | $a | $b |"
read -r o a b < <(bench "http://127.0.0.1:$P_BODY/auth" benches/serve/toolcall.lua); echo "| serve --tool-permissions, 300-byte body parsed | $o | $a | $b |"
read -r n2 a b < <(bench "http://127.0.0.1:$P_NGX/" benches/serve/key.lua);        echo "| nginx \`return 200\` (again) | $n2 | $a | $b |"
echo
python3 - "$n1" "$n2" "$k" "$t" "$r" "$o" <<'PY'
import sys
n1, n2, k, t, r, o = map(float, sys.argv[1:])
ngx = (n1 + n2) / 2
print(f"- cached access token / key: {t/k:.2f}x")
print(f"- tool permissions from headers / nginx `return 200`: {r/ngx:.2f}x (from the body: {o/ngx:.2f}x)")
print(f"- key / nginx: {k/ngx:.2f}x")
PY
grep -c "oauth: 4 key(s)" "$work/serve.log" >/dev/null || { echo "serve fetched no keys" >&2; cat "$work/serve.log" >&2; exit 1; }
