#!/usr/bin/env bash
# Benchmarks of `mcp-key-manager serve` (issue 13), with wrk, on this machine:
#   1. GET /auth with a valid key, 32 connections, beside nginx answering `return 200` itself;
#   2. the same with --tool-permissions and a 300-byte tools/call body;
#   3. nginx + auth_request + serve + a static upstream vs nginx + the static upstream alone;
#   4. RSS with a 100,000-key verifier loaded, and its peak during a reload.
# Usage: cargo build --release && benches/serve/run.sh [SECONDS per run, default 10]
#        PIN=1 benches/serve/run.sh   # servers on CPU 0 (one worker each), wrk on CPU 1
# Needs wrk, nginx (with auth_request) and python3 (stdlib only). Prints Markdown.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-${CARGO_TARGET_DIR:-target}/release/mcp-key-manager}
NGINX=${NGINX:-/usr/sbin/nginx}
SECS=${1:-10}
CONNS=32
THREADS=${WRK_THREADS:-2}
WORKERS=2
SRV=(); CLI=()
if [ "${PIN:-0}" = 1 ]; then
    # One core for the servers, one for wrk: the servers do not compete with the load
    # generator, and tokio sizes its pool from the affinity mask (one worker).
    THREADS=1; WORKERS=1; SRV=(taskset -c 0); CLI=(taskset -c 1)
fi
[ -x "$BIN" ] || { echo "build first: cargo build --release ($BIN missing)" >&2; exit 2; }
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 never opened" >&2; exit 1; }
rss_kib() { awk '/^VmRSS/ {print $2}' /proc/"$1"/status; }
hwm_kib() { awk '/^VmHWM/ {print $2}' /proc/"$1"/status; }

python3 benches/serve/gen_verifier.py "$work/v1.json" 1 1 "$work/key1"
export BENCH_KEY
BENCH_KEY=$(cat "$work/key1")

P_SERVE=$(free_port); P_SERVE_TP=$(free_port); P_NGX_200=$(free_port)
P_STATIC=$(free_port); P_NGX_PLAIN=$(free_port); P_NGX_AUTH=$(free_port)
"${SRV[@]}" "$BIN" serve --verifier "$work/v1.json" --listen "127.0.0.1:$P_SERVE" --usage "$work/u1.json" 2>"$work/serve.log" & pids+=($!)
"${SRV[@]}" "$BIN" serve --verifier "$work/v1.json" --listen "127.0.0.1:$P_SERVE_TP" --tool-permissions --usage "$work/u2.json" 2>"$work/serve-tp.log" & pids+=($!)
mkdir -p "$work/ngx"
cat > "$work/nginx.conf" <<CONF
daemon off;
worker_processes $WORKERS;
pid $work/ngx/nginx.pid;
error_log $work/ngx/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $work/ngx/body; proxy_temp_path $work/ngx/proxy;
    fastcgi_temp_path $work/ngx/fcgi; uwsgi_temp_path $work/ngx/uwsgi; scgi_temp_path $work/ngx/scgi;
    upstream serve { server 127.0.0.1:$P_SERVE; keepalive 64; }
    upstream static { server 127.0.0.1:$P_STATIC; keepalive 64; }
    # nginx answering by itself: the reference rate.
    server { listen 127.0.0.1:$P_NGX_200; location / { return 200; } }
    # The static upstream.
    server { listen 127.0.0.1:$P_STATIC; location / { return 200 "ok\n"; } }
    # nginx in front of the static upstream, without and with auth_request -> serve.
    server { listen 127.0.0.1:$P_NGX_PLAIN;
        location / { proxy_pass http://static; proxy_http_version 1.1; proxy_set_header Connection ""; } }
    server { listen 127.0.0.1:$P_NGX_AUTH;
        location = /_auth { internal; proxy_pass http://serve/auth; proxy_http_version 1.1;
            proxy_set_header Connection ""; proxy_pass_request_body off; proxy_set_header Content-Length ""; }
        location / { auth_request /_auth;
            auth_request_set \$key_id \$upstream_http_x_mcp_key_id;
            proxy_set_header X-MCP-Key-Id \$key_id;
            proxy_pass http://static; proxy_http_version 1.1; proxy_set_header Connection ""; } }
}
CONF
"${SRV[@]}" "$NGINX" -p "$work/ngx" -c "$work/nginx.conf" -e "$work/ngx/error.log" & pids+=($!)
for p in $P_SERVE $P_SERVE_TP $P_NGX_200 $P_STATIC $P_NGX_PLAIN $P_NGX_AUTH; do wait_port "$p"; done

# One wrk run: prints "req/s p50 p99" (latencies in microseconds).
bench() {
    local url=$1 script=$2 out
    out=$("${CLI[@]}" wrk -t"$THREADS" -c"$CONNS" -d"${SECS}s" --latency -s "$script" "$url")
    echo "$out" >> "$work/wrk.txt"
    if echo "$out" | grep -q "Non-2xx"; then echo "non-2xx answers from $url" >&2; echo "$out" >&2; exit 1; fi
    local rps p50 p99
    rps=$(echo "$out" | awk '/^Requests\/sec/ {print $2}')
    p50=$(echo "$out" | awk '$1=="50%" {print $2}')
    p99=$(echo "$out" | awk '$1=="99%" {print $2}')
    echo "$rps $(to_us "$p50") $(to_us "$p99")"
}
to_us() { python3 -c "import sys,re; v=sys.argv[1]; n,u=re.fullmatch(r'([0-9.]+)(us|ms|s)',v).groups(); print(round(float(n)*{'us':1,'ms':1e3,'s':1e6}[u]))" "$1"; }
row() { printf '| %s | %.0f | %s | %s |\n' "$1" "$2" "$3" "$4"; }

echo "Machine: $(nproc) cores, $(uname -r); load before: $(cut -d' ' -f1-3 /proc/loadavg)"
if [ "${PIN:-0}" = 1 ]; then
    echo "wrk -t1 -c$CONNS -d${SECS}s --latency pinned to CPU 1; serve and nginx (1 worker each) pinned to CPU 0."
else
    echo "wrk -t$THREADS -c$CONNS -d${SECS}s --latency; serve and nginx (2 workers) on the same cores as wrk."
fi
echo
echo "| target | requests/s | p50 µs | p99 µs |"
echo "|---|---:|---:|---:|"
read -r n1 n1p50 n1p99 < <(bench "http://127.0.0.1:$P_NGX_200/" benches/serve/key.lua)
row "nginx \`return 200\`" "$n1" "$n1p50" "$n1p99"
read -r s1 s1p50 s1p99 < <(bench "http://127.0.0.1:$P_SERVE/auth" benches/serve/key.lua)
row "serve GET /auth, valid key" "$s1" "$s1p50" "$s1p99"
read -r t1 t1p50 t1p99 < <(bench "http://127.0.0.1:$P_SERVE_TP/auth" benches/serve/toolcall.lua)
row "serve --tool-permissions POST /auth, 300-byte tools/call" "$t1" "$t1p50" "$t1p99"
read -r n2 n2p50 n2p99 < <(bench "http://127.0.0.1:$P_NGX_200/" benches/serve/key.lua)
row "nginx \`return 200\` (again, after serve)" "$n2" "$n2p50" "$n2p99"
read -r a1 a1p50 a1p99 < <(bench "http://127.0.0.1:$P_NGX_PLAIN/" benches/serve/key.lua)
row "nginx → static upstream" "$a1" "$a1p50" "$a1p99"
read -r a2 a2p50 a2p99 < <(bench "http://127.0.0.1:$P_NGX_AUTH/" benches/serve/key.lua)
row "nginx + auth_request → serve, → static upstream" "$a2" "$a2p50" "$a2p99"
echo
python3 - "$n1" "$n2" "$s1" "$t1" "$a1" "$a2" <<'PY'
import sys
n1, n2, s1, t1, a1, a2 = map(float, sys.argv[1:])
ngx = (n1 + n2) / 2
print(f"- serve / nginx `return 200` (mean of the two nginx runs): {s1/ngx:.2f}x")
print(f"- serve --tool-permissions / nginx: {t1/ngx:.2f}x")
print(f"- auth_request overhead: {1e6/a2 - 1e6/a1:.1f} µs of throughput time per request "
      f"({a2/a1:.2f}x the rate of nginx + static upstream alone)")
PY
curl -s "http://127.0.0.1:$P_SERVE/metrics" | grep -E '^mcp_key_serve_auth_duration_seconds_(sum|count)' | tr '\n' ' ' \
  | awk '{printf "- serve-side time per /auth answer (from /metrics): %.1f µs\n", $2/$4*1e6}'

echo
echo "Memory (VmRSS / peak VmHWM of the serve process):"
python3 benches/serve/gen_verifier.py "$work/v100k.json" 100000 1 "$work/key100k"
P_BIG=$(free_port)
"$BIN" serve --verifier "$work/v100k.json" --listen "127.0.0.1:$P_BIG" --usage "$work/u3.json" 2>"$work/serve-big.log" & big=$!; pids+=($big)
wait_port "$P_BIG"
sleep 0.5
echo "- 1 key loaded: $(rss_kib "${pids[0]}") KiB"
echo "- 100,000 keys loaded ($(stat -c %s "$work/v100k.json") bytes of JSON): $(rss_kib "$big") KiB (peak while loading: $(hwm_kib "$big") KiB)"
echo 5 > /proc/"$big"/clear_refs   # resets VmHWM to the current RSS
python3 benches/serve/gen_verifier.py "$work/v100k-2.json" 100000 2 "$work/key100k-2"
mv "$work/v100k-2.json" "$work/v100k.json"
for _ in $(seq 100); do grep -q "revision=1->2" "$work/serve-big.log" && break; sleep 0.05; done
grep -q "revision=1->2" "$work/serve-big.log" || { echo "no reload seen" >&2; exit 1; }
sleep 0.3
echo "- during a reload to another 100,000-key file: peak $(hwm_kib "$big") KiB, after: $(rss_kib "$big") KiB"
