#!/usr/bin/env bash
# Peers benchmark (BENCHMARKS.md, "Peers: mcp-guard and fastmcp-guard"), at 10 and 10,000 keys:
#   gateways:   nginx + `serve` (auth_request) against mcp-guard 1.0.0, in front of one FastMCP
#               server (HTTP for nginx; stdio for mcp-guard, whose free tier has no HTTP
#               upstream) and in front of a trivial upstream;
#   in-process: mcp_key_verifier's APIKeyMiddleware against fastmcp-guard 0.2.2, inside one
#               FastMCP server;
# requests/s, p50/p99 added over the bare upstream, RSS, revocation -> refusal (idle and with
# the key in use). Interleaved rounds, medians, ratios from the same run. Everything listens on
# 127.0.0.1; every process started here is in one process group, killed on exit.
#
# Setup (once):
#   cargo build --release
#   cargo install mcp-guard --version 1.0.0 --root /tmp/mcp-guard --locked
#   python3 -m venv /tmp/peers-venv
#   /tmp/peers-venv/bin/pip install fastmcp-guard==0.2.2 'fastmcp==4.2.3' uvicorn \
#       './integrations/python[trust]'
#   apt-get install wrk nginx        # nginx with auth_request (Debian's has it)
# Usage: benches/peers/run.sh [N ...]          (default: 10 10000)
#   env SECS (per wrk run, default 10), ROUNDS (default 3), LIMIT (seconds for the whole run,
#   default 1800), OUT (raw JSON), KEEP=1 (keep the work directories), BIN, MCP_GUARD,
#   PEERS_PY, NGINX.
set -euo pipefail
cd "$(dirname "$0")/../.."
export BIN=${BIN:-${CARGO_TARGET_DIR:-target}/release/mcp-key-manager}
export MCP_GUARD=${MCP_GUARD:-/tmp/mcp-guard/bin/mcp-guard}
export PEERS_PY=${PEERS_PY:-/tmp/peers-venv/bin/python}
export NGINX=${NGINX:-/usr/sbin/nginx}
for f in "$BIN" "$MCP_GUARD" "$PEERS_PY" "$NGINX" "$(command -v wrk || echo wrk)"; do
    [ -x "$f" ] || { echo "missing $f (see the setup at the top of $0)" >&2; exit 2; }
done
echo "Versions: $("$BIN" --version); mcp-guard $("$MCP_GUARD" version 2>/dev/null | grep -oE '[0-9]+\.[0-9]+\.[0-9]+' | head -1);" \
     "$("$PEERS_PY" -m pip list 2>/dev/null | awk '$1~/^(fastmcp|fastmcp-guard|mcp|mcp-key-verifier|uvicorn|bcrypt)$/ {printf "%s %s; ", $1, $2}')" \
     "$("$PEERS_PY" --version); $("$NGINX" -v 2>&1 | sed 's/^nginx version: //'); $(wrk --version 2>&1 | head -1 | cut -d' ' -f1-2)"
echo "Load before: $(cut -d' ' -f1-3 /proc/loadavg)"
if [ $# -eq 0 ]; then set -- 10 10000; fi
start=$(date +%s)
# bench.py and all it starts (nginx, serve, mcp-guard and its stdio children, the uvicorn
# servers, wrk) share a new process group; `timeout` bounds it, the trap ends what is left.
setsid timeout -k 10 "${LIMIT:-1800}" python3 benches/peers/bench.py "$@" &
pgid=$!
cleanup() {
    kill -TERM -- -"$pgid" 2>/dev/null || true
    sleep 1
    kill -KILL -- -"$pgid" 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM
rc=0
wait "$pgid" || rc=$?
echo
echo "Load after: $(cut -d' ' -f1-3 /proc/loadavg); total $(( $(date +%s) - start )) s; rc=$rc"
exit "$rc"
