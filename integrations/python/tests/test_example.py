"""Runs examples/server.py (the README's example) as its own process and talks to it."""

import asyncio
import os
import socket
import subprocess
import sys
import time

from conftest import VerifierWriter, make_key
from sdkutil import mcp_client, need, unwrap

EXAMPLE = os.path.join(os.path.dirname(__file__), "..", "examples", "server.py")


def package_root():
    """Where this process imported mcp_key_verifier from, so the example imports the same."""
    import mcp_key_verifier

    root = os.path.dirname(os.path.dirname(os.path.abspath(mcp_key_verifier.__file__)))
    return os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_example_server(tmp_path):
    need("mcp")
    need("uvicorn")
    from mcp.shared.exceptions import MCPError

    caller_id, caller = make_key()
    reader_id, reader = make_key()
    writer = VerifierWriter(tmp_path / "verifier.json")
    # The README's first command makes a key with the default permissions: the example
    # must let it call the tool. A revoked key is refused.
    writer.write([writer.entry(caller_id, caller, permissions=["generate", "info", "health"]),
                  writer.entry(reader_id, reader, status="revoked")], revision=1)
    port = free_port()
    log = open(tmp_path / "server.log", "w+b")
    proc = subprocess.Popen([sys.executable, EXAMPLE], stdout=log, stderr=subprocess.STDOUT,
                            env=dict(os.environ, MCP_VERIFIER=writer.path, PORT=str(port),
                                     PYTHONPATH=package_root()))
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert proc.poll() is None, "the example exited"
                assert time.monotonic() < deadline, "the example did not listen"
                time.sleep(0.1)
        url = "http://127.0.0.1:%d/mcp" % port

        async def go():
            statuses = []
            async with mcp_client(url, {"Authorization": "Bearer " + caller}, statuses) as s:
                await s.initialize()
                assert (await s.call_tool("add", {"a": 40, "b": 2})).content[0].text == "42"
            statuses = []
            try:
                async with mcp_client(url, {"X-API-Key": reader}, statuses) as s:
                    await s.initialize()
                    await s.call_tool("add", {"a": 1, "b": 1})
                raise AssertionError("a revoked key was let through")
            except AssertionError:
                raise
            except BaseException as exc:
                assert unwrap(exc, MCPError) is not None
            assert 401 in statuses
            statuses = []
            try:
                async with mcp_client(url, {}, statuses) as s:
                    await s.initialize()
            except BaseException as exc:
                assert unwrap(exc, MCPError) is not None
            assert statuses == [401]

        asyncio.run(asyncio.wait_for(go(), 60))
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.seek(0)
        output = log.read().decode(errors="replace")
        log.close()
    assert caller not in output and reader not in output


def test_the_readme_quotes_the_example_verbatim():
    with open(EXAMPLE, encoding="utf-8") as fh:
        example = fh.read()
    with open(os.path.join(os.path.dirname(EXAMPLE), "..", "README.md"), encoding="utf-8") as fh:
        assert example in fh.read(), "README.md and examples/server.py differ"
