"""The routing-header vectors (tests/vectors/verifier/routing.json, MCP 2026-07-28 `Mcp-Method` /
`Mcp-Name`) through APIKeyMiddleware with tool permissions, and the `routing` module's rules."""

import json
import os
import random

import pytest

from mcp_key_verifier import APIKeyMiddleware, Verifier, needed_permissions
from mcp_key_verifier.routing import (BadRouting, Routing, blank, body_matches, decode_name,
                                      needed_from_headers, read_routing)

from conftest import VECTORS, asgi_request, make_key

with open(os.path.join(VECTORS, "routing.json"), encoding="utf-8") as _fh:
    SPEC = json.load(_fh)


class Echo:
    """An ASGI app that answers 200 and records the body it was replayed."""

    def __init__(self):
        self.bodies = []

    async def __call__(self, scope, receive, send):
        body = b""
        while True:
            m = await receive()
            body += m.get("body", b"")
            if not m.get("more_body"):
                break
        self.bodies.append(body)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from conftest import VerifierWriter

    keys = {label: make_key() for label in SPEC["keys"]}
    writer = VerifierWriter(tmp_path_factory.mktemp("routing") / "verifier.json")
    writer.write([writer.entry(*keys[label], permissions=perms)
                  for label, perms in SPEC["keys"].items()], revision=1)
    return Verifier.from_file(writer.path), keys


def raw_headers(case):
    """The case's headers as ASGI pairs: every value a line of its own, one byte a character."""
    return [(name.encode("ascii"), value.encode("latin-1"))
            for name, values in case["headers"].items() for value in values]


def send_case(app, case, key, raw_body=None):
    """Runs the case through `app` with `key` (and `raw_body` for the case's body, when given);
    (status, headers dict, body)."""
    body = case["body"].encode("utf-8") if raw_body is None else raw_body
    headers = [(b"x-api-key", key.encode())] + raw_headers(case)
    return asgi_request(app, headers, body, case["http_method"])

def test_the_vectors_are_there():
    assert len(SPEC["cases"]) >= 50
    assert {c["expect"].get("data_code") for c in SPEC["cases"]} >= {
        None, "BAD_ROUTING", "HEADER_MISMATCH", "PARSE_ERROR"}


@pytest.mark.parametrize("case", SPEC["cases"], ids=lambda c: c["why"])
def test_case_through_the_middleware(world, case):
    verifier, keys = world
    expect = case["expect"]
    for label in ("full", "none"):
        app = Echo()
        status, headers, body = send_case(
            APIKeyMiddleware(app, verifier, tool_permissions=True), case, keys[label][1])
        if expect.get("allow"):
            if label == "full" or expect["scope"] is None:
                assert (status, app.bodies) == (200, [case["body"].encode("utf-8")]), label
            else:
                assert status == 403, body
                assert headers["www-authenticate"] == \
                    'Bearer error="insufficient_scope", scope="%s"' % expect["scope"]
                assert json.loads(body)["error"]["data"]["code"] == "INSUFFICIENT_PERMISSIONS"
                assert app.bodies == []
        else:
            assert status == expect["status"], (label, body)
            assert json.loads(body) == {
                "jsonrpc": "2.0", "id": None,
                "error": {"code": expect["code"], "message": expect["message"],
                          "data": {"code": expect["data_code"]}}}
            assert headers["content-type"] == "application/json"
            assert headers["cache-control"] == "no-store"
            assert app.bodies == []


@pytest.mark.parametrize("case", [c for c in SPEC["cases"] if c["expect"].get("allow")],
                         ids=lambda c: c["why"])
def test_an_admitted_case_needs_what_the_vector_says(case):
    """The same decision from the module's functions: the needs, alternatives and all."""
    route = read_routing(case["http_method"], raw_headers(case))
    body = case["body"].encode("utf-8")
    if blank(body):
        needs = needed_from_headers(route)
    else:
        message = json.loads(body)
        assert route is None or body_matches(route, message)
        needs = needed_permissions(message)
    assert [list(n) for n in needs] == case["expect"]["needs"]


def test_decode_name():
    assert decode_name("=?base64?ZWNobw==?=") == "echo"
    assert decode_name("=?base64?w6ljaG8=?=") == "\u00e9cho"
    assert decode_name("=?base64??=") == ""
    assert decode_name("echo") == "echo"
    assert decode_name("=?base64?=") == "=?base64?="  # too short to be a sentinel
    for bad in ("=?base64?YR==?=", "=?base64?YQ?=", "=?base64?YQ=?=", "=?base64?!!?=",
                "=?base64?/w==?=", "=?base64?ZW\nNobw==?=", "=?base64?ZWNobw==\n?="):
        assert decode_name(bad) is None, bad


def test_no_header_raises_anything_but_bad_routing():
    """Random header bytes (and some near-sentinels): `read_routing` returns or raises
    BadRouting, nothing else, so no exception reaches the ASGI server."""
    rng = random.Random(2243)
    pieces = [b"=?base64?", b"?=", b"tools/call", b"\xff", b"\xe9", b" ", b"\t", b"\x00",
              b"ZWNobw==", b"=", b"2026-07-28"]
    outcomes = set()
    for _ in range(3000):
        headers = []
        for name in (b"mcp-method", b"Mcp-Name", b"MCP-PROTOCOL-VERSION"):
            for _ in range(rng.choice((0, 1, 1, 2))):
                value = b"".join(rng.choice(pieces) for _ in range(rng.randrange(4)))
                if rng.random() < 0.2:
                    value = bytes(rng.randrange(256) for _ in range(rng.randrange(8)))
                headers.append((name, value))
        try:
            outcomes.add(type(read_routing(rng.choice(("POST", "GET")), headers)).__name__)
        except BadRouting as exc:
            assert exc.reason.startswith("the M")
            outcomes.add("BadRouting")
    assert outcomes == {"NoneType", "Routing", "BadRouting"}


def test_body_matches_only_one_message_that_says_the_same():
    r = Routing("tools/call", "add")
    assert body_matches(r, {"method": "tools/call", "params": {"name": "add"}})
    for other in ([{"method": "tools/call", "params": {"name": "add"}}], None, 3, "tools/call",
                  {"method": "tools/call", "params": ["add"]},
                  {"method": "tools/call", "params": {"name": 7}},
                  {"method": ["tools/call"], "params": {"name": "add"}}):
        assert not body_matches(r, other), other


def test_a_body_of_whitespace_is_blank_only_for_json_whitespace_and_form_feed():
    """Rust's trim_ascii: SP, HTAB, LF, CR and FF; a vertical tab is a body (not JSON)."""
    assert blank(b"") and blank(b" \t\r\n\x0c")
    assert not blank(b"\x0b") and not blank(b"\xa0") and not blank(b" {}")


def test_a_body_that_is_not_utf8_or_starts_with_a_bom_is_not_json(world):
    """Strict UTF-8, as in Rust and TypeScript: json.loads of bytes would read these."""
    verifier, keys = world
    call = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}}'
    for body in (call.replace("echo", "ech\udcff").encode("utf-8", "surrogateescape"),
                 b"\xef\xbb\xbf" + call.encode(), call.encode("utf-16"),
                 call.replace("echo", "ech\ud800").encode("utf-8", "surrogatepass")):
        app = Echo()
        case = {"http_method": "POST", "headers": {}, "body": ""}
        status, _, answer = send_case(APIKeyMiddleware(app, verifier, tool_permissions=True),
                                      case, keys["full"][1], raw_body=body)
        assert (status, json.loads(answer)["error"]["data"]["code"]) == (400, "PARSE_ERROR"), body
        assert app.bodies == []
