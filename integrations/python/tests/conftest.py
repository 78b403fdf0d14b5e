"""Shared helpers: where the conformance vectors are, writing verifier files by rename, and
one HTTP request through an ASGI app."""

import asyncio
import base64
import hashlib
import hmac
import json
import os
import secrets

import pytest

VECTORS = os.environ.get("MCP_VECTORS_DIR") or os.path.normpath(
    os.path.join(os.path.dirname(__file__), "..", "..", "..", "tests", "vectors", "verifier"))



def asgi_request(app, raw_headers=(), body=b"", method="POST", path="/mcp"):
    """(status, headers as a dict, body) of one HTTP request through the ASGI `app`, its
    headers given as (name, value) bytes as they come off the wire; bounded to 10 s."""
    sent = []
    incoming = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive():
        if incoming:
            return incoming.pop(0)
        await asyncio.sleep(3600)

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": method, "path": path, "headers": list(raw_headers)}
    asyncio.run(asyncio.wait_for(app(scope, receive, send), 10))
    start = next(m for m in sent if m["type"] == "http.response.start")
    out = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], {k.decode(): v.decode() for k, v in start["headers"]}, out


def make_key():
    """(id, key) of a fresh random modern key."""
    key_id = secrets.token_hex(8)
    return key_id, "mcp_%s_%s" % (key_id, secrets.token_hex(32))


class VerifierWriter:
    """Writes verifier files the way mcp-key-manager does: temp file + rename."""

    def __init__(self, path):
        self.path = str(path)
        self.hash_key = secrets.token_bytes(32)

    def entry(self, key_id, key, status="active", permissions=(), expires_at=None, name=None,
              rate_limit=None):
        """An entry; `rate_limit` as (requests, window_seconds), or None for none."""
        e = {"id": key_id,
             "hash": hmac.new(self.hash_key, key.encode(), hashlib.sha256).hexdigest(),
             "status": status, "expires_at": expires_at, "permissions": list(permissions)}
        if rate_limit is not None:
            e["rate_limit"] = {"requests": rate_limit[0], "window_seconds": rate_limit[1]}
        if name is not None:
            e["name"] = name
        return e

    def document(self, entries, revision, **extra):
        """The file's bytes as the vault writes them (indented, `{` alone on the first line,
        so that it can be signed); `extra` members (`save_digest=...`) follow `revision`."""
        doc = {"format": "mcp-key-verifier", "version": 1, "algorithm": "hmac-sha256",
               "hash_key": base64.b64encode(self.hash_key).decode(),
               "generated_at": "2026-06-01T00:00:00Z", "revision": revision}
        doc.update(extra)
        doc["keys"] = entries
        return (json.dumps(doc, indent=2) + "\n").encode()

    def write(self, entries, revision, raw=None):
        tmp = self.path + ".tmp"
        with open(tmp, "wb") as fh:
            if raw is not None:
                fh.write(raw)
            else:
                fh.write(json.dumps({
                    "format": "mcp-key-verifier", "version": 1, "algorithm": "hmac-sha256",
                    "hash_key": base64.b64encode(self.hash_key).decode(),
                    "generated_at": "2026-06-01T00:00:00Z", "revision": revision,
                    "keys": entries}).encode())
        os.replace(tmp, self.path)


@pytest.fixture
def writer(tmp_path):
    return VerifierWriter(tmp_path / "verifier.json")
