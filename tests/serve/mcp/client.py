"""The official Python SDK's MCP client: connects over streamable HTTP, calls `echo`.

Usage: client.py URL [KEY]   (the key is read from the environment variable MCP_TEST_KEY
when KEY is "-", so it never appears in a process listing)
Prints `RESULT <text>` and exits 0 when the call worked; prints `REFUSED <detail>` and
exits 3 when the server (or the proxy in front of it) refused the connection.
Works with the SDK's v1 and v2 client APIs.
"""

import asyncio
import inspect
import os
import sys

import mcp.client.streamable_http as sh
from mcp import ClientSession

url = sys.argv[1]
key = os.environ.get("MCP_TEST_KEY") if len(sys.argv) > 2 and sys.argv[2] == "-" else None
headers = {"Authorization": "Bearer " + key} if key else {}


# Every HTTP status the client received: the SDK reports a refusal as a generic error, so
# the test reads the status from here.
statuses = []


async def record_status(response):
    statuses.append(response.status_code)


def open_transport():
    from mcp.shared._httpx_utils import create_mcp_http_client

    if hasattr(sh, "streamable_http_client") and "http_client" in inspect.signature(
        sh.streamable_http_client
    ).parameters:  # mcp >= 2
        client = create_mcp_http_client(headers=headers)
        client.event_hooks["response"].append(record_status)
        return sh.streamable_http_client(url, http_client=client)

    def factory(headers=None, timeout=None, auth=None):  # mcp 1.x
        client = create_mcp_http_client(headers=headers, timeout=timeout, auth=auth)
        client.event_hooks["response"].append(record_status)
        return client

    return sh.streamablehttp_client(url, headers=headers, httpx_client_factory=factory)


async def main() -> str:
    async with open_transport() as streams:
        read, write = streams[0], streams[1]
        async with ClientSession(read, write) as session:
            await session.initialize()
            result = await session.call_tool("echo", {"text": "hello"})
            if result.isError if hasattr(result, "isError") else result.is_error:
                raise RuntimeError("tool error: %r" % (result,))
            return result.content[0].text


def describe(e: BaseException) -> str:
    parts = []
    stack = [e]
    while stack:
        x = stack.pop()
        parts.append("%s: %s" % (type(x).__name__, x))
        stack.extend(getattr(x, "exceptions", ()) or ())
        if x.__cause__ is not None:
            stack.append(x.__cause__)
    return " | ".join(parts)


try:
    text = asyncio.run(asyncio.wait_for(main(), 30))
except BaseException as e:  # noqa: BLE001 - report any refusal or failure
    print("REFUSED statuses=%s %s" % (statuses, describe(e).replace("\n", " ")))
    sys.exit(3)
print("RESULT " + text)
