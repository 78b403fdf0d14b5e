#!/usr/bin/env bash
# Peers benchmark: nginx + `serve` against mcp-guard 1.0.0 (gateways in front of one FastMCP
# server), and mcp_key_verifier's APIKeyMiddleware against fastmcp-guard 0.2.2 (inside one
# FastMCP server), at 10 and 10,000 keys: requests/s, added p50/p99 latency over the bare
# upstream, RSS, revocation -> refusal. Prints Markdown (BENCHMARKS.md, "Peers").
#
# Setup (once):
#   cargo build --release
#   cargo install mcp-guard --version 1.0.0 --root /tmp/mcp-guard --locked
#   python3 -m venv /tmp/peers-venv
#   /tmp/peers-venv/bin/pip install fastmcp-guard==0.2.2 fastmcp ./integrations/python
# Usage: benches/peers/run.sh [N ...]          (default: 10 10000)
#   env SECS (per wrk run, default 10), ROUNDS (default 2), OUT (raw JSON), KEEP=1,
#   BIN, MCP_GUARD, PEERS_PY, NGINX.  Needs wrk and nginx (with auth_request).
set -euo pipefail
cd "$(dirname "$0")/../.."
export BIN=${BIN:-${CARGO_TARGET_DIR:-target}/release/mcp-key-manager}
export MCP_GUARD=${MCP_GUARD:-/tmp/mcp-guard/bin/mcp-guard}
export PEERS_PY=${PEERS_PY:-/tmp/peers-venv/bin/python}
for f in "$BIN" "$MCP_GUARD" "$PEERS_PY"; do
    [ -x "$f" ] || { echo "missing $f (see the setup at the top of $0)" >&2; exit 2; }
done
echo "Versions: $("$BIN" --version); $("$MCP_GUARD" version 2>/dev/null | head -1 || true);" \
     "$("$PEERS_PY" -m pip list 2>/dev/null | awk '$1~/^(fastmcp|fastmcp-guard|mcp|mcp-key-verifier|uvicorn)$/ {printf "%s %s; ", $1, $2}')" \
     "$(${NGINX:-/usr/sbin/nginx} -v 2>&1); $(wrk --version 2>&1 | head -1 | cut -d' ' -f1-2)"
echo "Load before: $(cut -d' ' -f1-3 /proc/loadavg)"
if [ $# -eq 0 ]; then set -- 10 10000; fi
exec python3 benches/peers/bench.py "$@"
