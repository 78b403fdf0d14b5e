"""The official Python SDK's OAuth client (`mcp.client.auth.OAuthClientProvider`) on the
2026-07-28 protocol, starting with no credentials at all: on the 401 it discovers the
protected resource metadata (`resource_metadata` of the challenge), the authorization
server's metadata, registers (RFC 7591), runs the authorization code flow with PKCE (S256)
and a resource indicator, exchanges the code, and retries with the access token.

Usage: oauth_client.py URL TOOL...   (TOOL: `echo` or `add`; each is called in turn, in one
session, with the one token)
The authorization is approved without a person: the redirect handler GETs the authorization
URL itself (redirects not followed) and hands the `code`, `state` and `iss` of the 302's
Location to the SDK's callback handler. Prints a `STEP <method> <URL> <status>` line (no
query) for
every HTTP exchange (the authorization GET included; a WWW-Authenticate follows the status),
then per tool `RESULT <text>` or
`REFUSED <tool> statuses=[...] <error>`; exits 0 when every call worked, 3 otherwise.
"""

import asyncio
import sys
from urllib.parse import parse_qsl, urlsplit

import httpx2
import mcp.client.streamable_http as sh
from mcp.client.auth import AuthorizationCodeResult, OAuthClientProvider
from mcp.client.client import Client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.auth import OAuthClientMetadata
from oauth_storage import MemoryStorage

url, tools = sys.argv[1], sys.argv[2:]
REDIRECT = "http://127.0.0.1:9/callback"  # never contacted: the handler reads the Location
steps = []
statuses = []
redirects = []


def step(method: str, target: str, status: int, challenge: str | None = None) -> None:
    line = "STEP %s %s %d" % (method, urlsplit(target)._replace(query="").geturl(), status)
    if challenge:
        line += " " + challenge
    steps.append(line)
    print(line, flush=True)


async def approve(authorization_url: str) -> None:
    """The user agent: one GET, the approval comes back as a 302 to the redirect_uri."""
    async with httpx2.AsyncClient(follow_redirects=False, timeout=10) as http:
        response = await http.get(authorization_url)
    step("GET", authorization_url, response.status_code)
    if response.status_code != 302:
        raise RuntimeError("authorization refused: %s %s" % (response.status_code, response.text))
    location = response.headers["location"]
    if not location.startswith(REDIRECT + "?"):
        raise RuntimeError("redirected elsewhere: " + location)
    redirects.append(dict(parse_qsl(urlsplit(location).query)))


async def callback() -> AuthorizationCodeResult:
    query = redirects[-1]
    return AuthorizationCodeResult(code=query["code"], state=query.get("state"),
                                   iss=query.get("iss"))


async def record(response) -> None:
    statuses.append(response.status_code)
    step(response.request.method, str(response.request.url), response.status_code,
         response.headers.get("www-authenticate"))


async def main() -> bool:
    provider = OAuthClientProvider(
        server_url=url,
        client_metadata=OAuthClientMetadata(
            client_name="mcp-key-manager oauth e2e",
            redirect_uris=[REDIRECT],
            grant_types=["authorization_code"],
            token_endpoint_auth_method="none",
        ),
        storage=MemoryStorage(),
        redirect_handler=approve,
        callback_handler=callback,
    )
    http = create_mcp_http_client(auth=provider)
    http.event_hooks["response"].append(record)
    ok = True
    async with Client(sh.streamable_http_client(url, http_client=http), mode="2026-07-28") as c:
        for tool in tools:
            args = {"text": "hello"} if tool == "echo" else {"a": 2, "b": 3}
            del statuses[:]
            try:
                result = await c.call_tool(tool, args)
                if result.is_error:
                    raise RuntimeError("tool error: %r" % (result,))
                print("RESULT " + result.content[0].text, flush=True)
            except Exception as e:  # noqa: BLE001 - report any refusal or failure
                ok = False
                print("REFUSED %s statuses=%s %s: %s"
                      % (tool, statuses, type(e).__name__, str(e).replace("\n", " ")), flush=True)
    token = provider.context.current_tokens
    print("GRANTED scope=%r" % (token.scope if token else None), flush=True)
    return ok


try:
    worked = asyncio.run(asyncio.wait_for(main(), 60))
except BaseException as e:  # noqa: BLE001 - report any failure of the flow itself
    print("REFUSED statuses=%s %s: %s" % (statuses, type(e).__name__, str(e).replace("\n", " ")))
    sys.exit(3)
sys.exit(0 if worked else 3)
