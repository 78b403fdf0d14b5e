"""The official Python SDK's OAuth client (`mcp.client.auth.OAuthClientProvider`) against
`serve --authorization-server` (the bridge) behind nginx, identified by a client ID metadata
document (CIMD: `client_metadata_url`), with a person at the consent page played here.

Usage: MCP_TEST_KEY=<key> bridge_client.py RESOURCE_URL CLIENT_ID_URL
(the key comes through the environment, never argv; it is removed from the environment at
once and printed nowhere).

Phase 1: from no credentials, the SDK calls the `echo` tool: 401, the protected resource
metadata, the authorization server's metadata, the client id (the CIMD URL: no
registration), the authorization request. The redirect handler plays the person's browser:
it GETs the authorization URL, reads the consent page's form (hidden fields, the password
field, the Allow button) and its cookie, posts the key, follows nothing, and hands the
`code`, `state` and `iss` of the 302's Location to the SDK, which exchanges the code and
calls the tool. Then it prints `READY` and waits for a line on stdin.

Phase 2 (on `go`, sent once the key is revoked in the vault): the same provider, so the same
access token, calls `echo` again and again (one session each) until the `tools/call` itself
is refused 401 (the SDK's `call_tool` also lists the tools after the call: the reload may
fall between the two, and that attempt fails with the tool run); then the access token is
treated as expired, so the SDK refreshes it with its refresh token before its next request.

Prints a `STEP <method> <URL> <status> [tok=<fp>] [rpc=<JSON-RPC method>] [grant_type=…
rt=<fp> client_id=… error=…] [<WWW-Authenticate>]` line (no query; `fp`: the first 12 hex digits of a secret's
SHA-256, never the secret) for every HTTP exchange of the SDK and of the person; `AUTHORIZE`
(the authorization request's parameters), `CONSENT-PAGE`, `CONSENT-REFUSED`, `RESULT`,
`TOKENS`, `CLAIMS` (the access token's claims), `ATTEMPT n`, `ACCEPTED n`, `REFUSED n`,
`EXPIRE`, `AFTER-REFRESH` lines. Exits 0 when the flow ran to its end as expected, 3
otherwise.
"""

import asyncio
import base64
import hashlib
import json
import os
import sys
import time
from html.parser import HTMLParser
from urllib.parse import parse_qsl, urljoin, urlsplit

import anyio
import httpx2
import mcp.client.streamable_http as sh
from mcp.client.auth import AuthorizationCodeResult, OAuthClientProvider
from mcp.client.client import Client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.auth import OAuthClientMetadata
from oauth_storage import MemoryStorage

url, client_id_url = sys.argv[1], sys.argv[2]
KEY = os.environ.pop("MCP_TEST_KEY")
REDIRECT = "http://127.0.0.1:9/callback"  # never contacted: the person reads the Location
redirects = []
steps = []  # (method, URL, status, JSON-RPC method, fingerprint of the bearer token)


def fp(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()[:12]


def out(line: str) -> None:
    print(line, flush=True)


def step(method: str, target: str, status: int, extra: list[str] | None = None,
         challenge: str | None = None) -> None:
    line = "STEP %s %s %d" % (method, urlsplit(target)._replace(query="").geturl(), status)
    for e in extra or ():
        line += " " + e
    if challenge:
        line += " " + challenge
    out(line)


class Page(HTMLParser):
    """What a browser makes of the consent page: the form, its fields and buttons, the
    client's name as shown (`<strong>`), and any error shown."""

    def __init__(self):
        super().__init__()
        self.forms = []
        self.inputs = []
        self.buttons = []
        self.strong = []
        self.errors = []
        self._in = None

    def handle_starttag(self, tag, attrs):
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append(a)
        elif tag == "input":
            self.inputs.append(a)
        elif tag == "button":
            self.buttons.append(a)
        elif tag == "strong":
            self._in = self.strong
        elif tag == "p" and "error" in a.get("class", "").split():
            self._in = self.errors

    def handle_endtag(self, tag):
        if tag in ("strong", "p"):
            self._in = None

    def handle_data(self, data):
        if self._in is not None:
            self._in.append(data)


class KeyRefused(Exception):
    """The consent page did not accept the person's key."""


async def person(authorization_url: str) -> None:
    """The person's browser: the consent page, the key typed in, Allow; the 302 read."""
    q = dict(parse_qsl(urlsplit(authorization_url).query))
    out("AUTHORIZE " + " ".join(
        "%s=%s" % (k, q.get(k, "")) for k in
        ("client_id", "redirect_uri", "resource", "scope", "response_type", "code_challenge_method"))
        + " code_challenge=" + ("present" if len(q.get("code_challenge", "")) == 43 else "absent"))
    async with httpx2.AsyncClient(follow_redirects=False, timeout=10) as browser:
        page = await browser.get(authorization_url, headers={"Accept": "text/html"})
        step("GET", authorization_url, page.status_code)
        if page.status_code != 200:
            raise RuntimeError("no consent page: %d %s" % (page.status_code, page.text[:300]))
        seen = Page()
        seen.feed(page.text)
        if len(seen.forms) != 1 or seen.forms[0].get("method", "").lower() != "post":
            raise RuntimeError("not one POST form on the consent page")
        fields = {i["name"]: i.get("value", "") for i in seen.inputs if i.get("type") == "hidden"}
        secret = [i for i in seen.inputs if i.get("type") == "password"]
        allow = [b for b in seen.buttons if b.get("value") == "allow"]
        if len(secret) != 1 or len(allow) != 1:
            raise RuntimeError("the consent page has no key field or no Allow button")
        fields[secret[0]["name"]] = KEY
        fields[allow[0]["name"]] = "allow"
        # The browser sends the page's cookie back (a `__Host-`, Secure cookie: a browser
        # keeps it for http://127.0.0.1, a secure context; httpx would not, so it is sent
        # by hand and the jar is not used).
        cookie = page.headers.get("set-cookie", "").split(";")[0]
        browser.cookies.clear()
        action = urljoin(authorization_url, seen.forms[0].get("action", ""))
        out("CONSENT-PAGE client=%r fields=%s action=%s cookie=%s" % (
            "".join(seen.strong), ",".join(sorted(fields)), urlsplit(action).path,
            cookie.split("=")[0]))
        origin = "%s://%s" % urlsplit(authorization_url)[:2]
        answer = await browser.post(action, data=fields, headers={"Cookie": cookie, "Origin": origin})
        step("POST", action, answer.status_code)
    if answer.status_code != 302:
        shown = Page()
        shown.feed(answer.text)
        out("CONSENT-REFUSED %d %s" % (answer.status_code, " ".join(shown.errors)))
        raise KeyRefused("the consent page refused the key (%d)" % answer.status_code)
    location = answer.headers["location"]
    if not location.startswith(REDIRECT + "?"):
        raise RuntimeError("redirected elsewhere: " + location)
    back = dict(parse_qsl(urlsplit(location).query))
    out("REDIRECTED " + " ".join(sorted(back)))
    redirects.append(back)


async def callback() -> AuthorizationCodeResult:
    query = redirects[-1]
    return AuthorizationCodeResult(code=query["code"], state=query.get("state"), iss=query.get("iss"))


async def record(response) -> None:
    request = response.request
    extra = []
    auth = request.headers.get("authorization", "")
    tok = fp(auth[7:].strip()) if auth.lower().startswith("bearer ") else None
    if tok:
        extra.append("tok=" + tok)
    rpc = None
    if request.method == "POST" and str(request.url) == url:
        try:
            rpc = json.loads(request.content).get("method")
        except Exception:  # noqa: BLE001 - not a JSON-RPC request
            rpc = "?"
        extra.append("rpc=%s" % rpc)
    steps.append((request.method, str(request.url), response.status_code, rpc, tok))
    if urlsplit(str(request.url)).path.endswith("/token"):
        try:
            form = dict(parse_qsl(request.content.decode()))
        except Exception:  # noqa: BLE001 - a body not read: nothing to show
            form = {}
        extra.append("grant_type=" + form.get("grant_type", ""))
        if "refresh_token" in form:
            extra.append("rt=" + fp(form["refresh_token"]))
        extra.append("client_id=" + form.get("client_id", ""))
        if response.status_code != 200:
            try:
                extra.append("error=" + str(json.loads(await response.aread()).get("error")))
            except Exception:  # noqa: BLE001 - not JSON
                extra.append("error=?")
    step(request.method, str(request.url), response.status_code, extra,
         response.headers.get("www-authenticate"))


def claims(token: str) -> dict:
    part = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


async def call(http) -> str:
    """`echo`, in a session of its own (a session whose authorization failed is not reused)."""
    with anyio.fail_after(20):
        async with Client(sh.streamable_http_client(url, http_client=http), mode="2026-07-28") as c:
            result = await c.call_tool("echo", {"text": "hello"})
    if result.is_error:
        raise RuntimeError("tool error: %r" % (result,))
    return result.content[0].text


def describe(e: BaseException) -> str:
    return ("%s: %s" % (type(e).__name__, e)).replace("\n", " ")


async def main() -> bool:
    provider = OAuthClientProvider(
        server_url=url,
        client_metadata=OAuthClientMetadata(
            client_name="mcp-key-manager bridge e2e",
            redirect_uris=[REDIRECT],
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            token_endpoint_auth_method="none",
        ),
        storage=MemoryStorage(),
        redirect_handler=person,
        callback_handler=callback,
        client_metadata_url=client_id_url,
    )
    http = create_mcp_http_client(auth=provider)
    http.event_hooks["response"].append(record)

    # Phase 1.
    out("RESULT " + await call(http))
    tokens = provider.context.current_tokens
    out("TOKENS tok=%s rt=%s scope=%s expires_in=%s client_id=%s" % (
        fp(tokens.access_token), fp(tokens.refresh_token or ""), tokens.scope, tokens.expires_in,
        provider.context.client_info.client_id))
    out("CLAIMS " + json.dumps(claims(tokens.access_token), sort_keys=True))
    out("READY")
    line = await anyio.to_thread.run_sync(sys.stdin.readline, abandon_on_cancel=True)
    if line.strip() != "go":
        out("NO-GO %r" % line)
        return False

    # Phase 2: the key is revoked; the same access token until it is refused.
    t0 = time.monotonic()
    n = 0
    while True:
        n += 1
        out("ATTEMPT %d" % n)
        mark = len(steps)
        try:
            out("ACCEPTED %d %s" % (n, await call(http)))
        except Exception as e:  # noqa: BLE001 - the refusal, whatever shape the SDK gives it
            out("REFUSED %d after_ms=%d %s" % (n, (time.monotonic() - t0) * 1000, describe(e)))
            if any(s[2:] == (401, "tools/call", fp(tokens.access_token)) for s in steps[mark:]):
                break
        if time.monotonic() - t0 > 15:
            out("NEVER-REFUSED")
            return False
        await anyio.sleep(0.05)
    if provider.context.current_tokens is None or provider.context.current_tokens.access_token != tokens.access_token:
        out("TOKENS-CHANGED")
        return False

    # The access token treated as expired: the SDK refreshes before its next request.
    out("EXPIRE")
    provider.context.token_expiry_time = time.time() - 1
    try:
        out("AFTER-REFRESH accepted " + await call(http))
        return False
    except Exception as e:  # noqa: BLE001 - as above
        out("AFTER-REFRESH refused " + describe(e))
    return True


try:
    worked = asyncio.run(asyncio.wait_for(main(), 120))
except BaseException as e:  # noqa: BLE001 - report any failure of the flow itself
    out("FAILED " + describe(e))
    sys.exit(3)
sys.exit(0 if worked else 3)
