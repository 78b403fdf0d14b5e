"""Running a real MCP SDK server (uvicorn, 127.0.0.1, a free port) and the SDK's real client."""

import contextlib
import importlib
import os
import threading
import time

import pytest


def need(module):
    """Imports `module`; without it the test fails under CI=true and is skipped elsewhere."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail("CI needs %s: pip install './integrations/python[test]' (%s)" % (module, exc))
        pytest.skip("%s is not installed (pip install './integrations/python[test]')" % module)


@contextlib.contextmanager
def serve(app):
    """Serves the ASGI `app` on 127.0.0.1 (port chosen by the OS) in a thread; yields the base URL."""
    uvicorn = need("uvicorn")
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                            access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield "http://127.0.0.1:%d" % port
    finally:
        server.should_exit = True
        thread.join(15)
        assert not thread.is_alive(), "uvicorn did not stop"


@contextlib.asynccontextmanager
async def mcp_client(url, headers, statuses):
    """An SDK ClientSession over streamable HTTP sending `headers`; every HTTP status the
    server answers is appended to `statuses`."""
    httpx2 = need("httpx2")
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    async def record(response):
        statuses.append(response.status_code)

    http = httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(20, read=60),
                              event_hooks={"response": [record]})
    async with http:
        async with streamable_http_client(url, http_client=http) as (read, write):
            async with ClientSession(read, write) as session:
                yield session


def unwrap(exc, kind):
    """The first `kind` inside `exc` or the exception groups anyio wraps it in, else None."""
    if isinstance(exc, kind):
        return exc
    for inner in getattr(exc, "exceptions", ()):
        found = unwrap(inner, kind)
        if found is not None:
            return found
    return None
