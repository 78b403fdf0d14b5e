"""The official Python SDK's `Client` on the 2026-07-28 protocol: it sends `Mcp-Method` and
`Mcp-Name` on every POST (SEP-2243), which nginx passes to `serve`'s /auth.

Usage: modern_client.py URL TOOL   (the key comes from the environment variable
MCP_TEST_KEY, so it never appears in a process listing; TOOL is `echo` or `add`)
Prints `RESULT <text>` and exits 0 when the call worked; prints `REFUSED statuses=[…] …`
and exits 3 otherwise.
"""

import asyncio
import os
import sys

import mcp.client.streamable_http as sh
from mcp.client.client import Client
from mcp.shared._httpx_utils import create_mcp_http_client

url, tool = sys.argv[1], sys.argv[2]
key = os.environ.get("MCP_TEST_KEY")
statuses = []


async def record_status(response):
    statuses.append(response.status_code)


async def main() -> str:
    http = create_mcp_http_client(headers={"Authorization": "Bearer " + key} if key else {})
    http.event_hooks["response"].append(record_status)
    args = {"text": "hello"} if tool == "echo" else {"a": 2, "b": 3}
    async with Client(sh.streamable_http_client(url, http_client=http), mode="2026-07-28") as c:
        result = await c.call_tool(tool, args)
        if result.is_error:
            raise RuntimeError("tool error: %r" % (result,))
        return result.content[0].text


try:
    text = asyncio.run(asyncio.wait_for(main(), 30))
except BaseException as e:  # noqa: BLE001 - report any refusal or failure
    print("REFUSED statuses=%s %s: %s" % (statuses, type(e).__name__, str(e).replace("\n", " ")))
    sys.exit(3)
print("RESULT " + text)
