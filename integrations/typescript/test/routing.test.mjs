// The routing-header vectors (tests/vectors/verifier/routing.json, MCP 2026-07-28 `Mcp-Method` /
// `Mcp-Name`) through apiKeyAuth with toolPermissions on node:http, and the routing module's rules.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createServer, request } from "node:http";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";

import { BadRouting, Verifier, apiKeyAuth, decodeName, neededPermissions, readRouting } from "../dist/index.js";
import { blank, bodyMatches, neededFromHeaders } from "../dist/routing.js";
import { VECTORS, VerifierWriter, makeKey } from "./util.mjs";

const spec = JSON.parse(readFileSync(join(VECTORS, "routing.json"), "utf8"));

/** The case's headers for node:http: every value a line of its own, one character a byte. */
function headersOf(c) {
  const out = {};
  for (const [name, values] of Object.entries(c.headers)) out[name] = values.length === 1 ? values[0] : [...values];
  return out;
}

test("the vectors are there", () => {
  assert.ok(spec.cases.length >= 50);
  const codes = new Set(spec.cases.map((c) => c.expect.data_code));
  for (const code of [undefined, "BAD_ROUTING", "HEADER_MISMATCH", "PARSE_ERROR"]) assert.ok(codes.has(code), code);
});

describe("routing.json through apiKeyAuth on node:http", () => {
  const w = new VerifierWriter();
  const keys = Object.fromEntries(Object.keys(spec.keys).map((label) => [label, makeKey()]));
  let reached;
  let base;
  let server;

  before(async () => {
    w.write(
      Object.entries(spec.keys).map(([label, permissions]) => w.entry(...keys[label], { permissions })),
      1,
    );
    const mw = apiKeyAuth({ verifier: Verifier.fromFile(w.path), toolPermissions: true, onRefusal: () => {} });
    server = createServer((req, res) => {
      mw(req, res, (err) => {
        if (err) {
          res.statusCode = 500;
          res.end(String(err));
          return;
        }
        // What the transport would be handed: the parsed body, or nothing.
        reached = req.body === undefined ? "" : JSON.stringify(req.body);
        res.end("ok");
      });
    });
    await new Promise((r) => server.listen(0, "127.0.0.1", r));
    base = `http://127.0.0.1:${server.address().port}`;
  });
  after(async () => {
    server.closeAllConnections?.();
    await new Promise((r) => server.close(r));
    w.cleanup();
  });

  /** One request of case `c` with `key`: { status, headers, body }. */
  const send = (c, key) =>
    new Promise((resolve, reject) => {
      const body = Buffer.from(c.body, "utf8");
      const headers = { ...headersOf(c), "x-api-key": key, "content-length": String(body.length) };
      const req = request(`${base}/mcp`, { method: c.http_method, headers }, (res) => {
        const chunks = [];
        res.on("data", (d) => chunks.push(d));
        res.on("end", () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString() }));
      });
      req.on("error", reject);
      req.end(body);
    });

  for (const c of spec.cases) {
    test(c.why, async () => {
      const e = c.expect;
      for (const label of ["full", "none"]) {
        reached = null;
        const got = await send(c, keys[label][1]);
        if (e.allow) {
          if (label === "full" || e.scope === null) {
            assert.equal(got.status, 200, `${label}: ${got.body}`);
            // The handler got the body as parsed (or none).
            assert.equal(reached, c.body.trim() === "" ? "" : JSON.stringify(JSON.parse(c.body)));
          } else {
            assert.equal(got.status, 403, got.body);
            assert.equal(got.headers["www-authenticate"], `Bearer error="insufficient_scope", scope="${e.scope}"`);
            assert.equal(JSON.parse(got.body).error.data.code, "INSUFFICIENT_PERMISSIONS");
            assert.equal(reached, null);
          }
        } else {
          assert.equal(got.status, e.status, `${label}: ${got.body}`);
          assert.deepEqual(JSON.parse(got.body), {
            jsonrpc: "2.0",
            id: null,
            error: { code: e.code, message: e.message, data: { code: e.data_code } },
          });
          assert.equal(got.headers["content-type"], "application/json");
          assert.equal(got.headers["cache-control"], "no-store");
          assert.equal(reached, null);
        }
      }
    });
  }
});

/** Every value of each of the case's headers, as Node gives them (one character a byte). */
const valuesOf = (c) => (name) => c.headers[name] ?? [];

for (const c of spec.cases.filter((x) => x.expect.allow)) {
  test(`needs: ${c.why}`, () => {
    const route = readRouting(c.http_method, valuesOf(c));
    const body = Buffer.from(c.body, "utf8");
    let needs;
    if (blank(body)) {
      needs = neededFromHeaders(route);
    } else {
      const message = JSON.parse(c.body);
      assert.ok(route === null || bodyMatches(route, message));
      needs = neededPermissions(message);
    }
    assert.deepEqual(needs, c.expect.needs);
  });
}

test("decodeName", () => {
  assert.equal(decodeName("=?base64?ZWNobw==?="), "echo");
  assert.equal(decodeName("=?base64?w6ljaG8=?="), "\u00e9cho");
  assert.equal(decodeName("=?base64??="), "");
  assert.equal(decodeName("echo"), "echo");
  assert.equal(decodeName("=?base64?="), "=?base64?="); // too short to be a sentinel
  // A leading BOM is kept (Rust and Python keep it; TextDecoder drops it by default).
  assert.equal(decodeName("=?base64?77u/ZWNobw==?="), "\ufeffecho");
  for (const bad of ["=?base64?YR==?=", "=?base64?YQ?=", "=?base64?YQ=?=", "=?base64?!!?=", "=?base64?/w==?=",
    "=?base64?ZW\nNobw==?=", "=?base64?ZWNobw==\n?=", "=?base64?7aCA?="]) {
    assert.equal(decodeName(bad), null, bad);
  }
});

test("no header makes readRouting throw anything but BadRouting", () => {
  // A fixed pseudo-random sequence (MINSTD) over pieces of sentinels, bytes and versions.
  let seed = 2243;
  const rnd = (n) => {
    seed = (seed * 48271) % 2147483647; // MINSTD: exact in a double
    return seed % n;
  };
  const pieces = ["=?base64?", "?=", "tools/call", "\xff", "\xe9", " ", "\t", "\x00", "ZWNobw==", "=", "2026-07-28", "\u0100"];
  const outcomes = new Set();
  for (let i = 0; i < 3000; i++) {
    const headers = {};
    for (const name of ["mcp-method", "mcp-name", "mcp-protocol-version"]) {
      const values = [];
      for (let k = [0, 1, 1, 2][rnd(4)]; k > 0; k--) {
        let v = "";
        for (let j = rnd(4); j > 0; j--) v += pieces[rnd(pieces.length)];
        values.push(v);
      }
      headers[name] = values;
    }
    try {
      const r = readRouting(rnd(2) ? "POST" : "GET", (n) => headers[n]);
      outcomes.add(r === null ? "null" : "routing");
    } catch (e) {
      assert.ok(e instanceof BadRouting, String(e));
      assert.ok(e.reason.startsWith("the M"), e.reason);
      outcomes.add("BadRouting");
    }
  }
  assert.deepEqual([...outcomes].sort(), ["BadRouting", "null", "routing"]);
});

test("bodyMatches only one message that says the same", () => {
  const r = { method: "tools/call", name: "add" };
  assert.ok(bodyMatches(r, { method: "tools/call", params: { name: "add" } }));
  for (const other of [
    [{ method: "tools/call", params: { name: "add" } }],
    null,
    3,
    "tools/call",
    { method: "tools/call", params: ["add"] },
    { method: "tools/call", params: { name: 7 } },
    { method: ["tools/call"], params: { name: "add" } },
  ]) {
    assert.equal(bodyMatches(r, other), false, JSON.stringify(other));
  }
});

test("a body of whitespace is blank only for JSON whitespace and form feed", () => {
  assert.ok(blank(Buffer.from("")) && blank(Buffer.from(" \t\r\n\f")));
  for (const b of ["\v", "\u00a0", "\ufeff", " {}"]) assert.equal(blank(Buffer.from(b)), false, JSON.stringify(b));
});

describe("bodies that are not UTF-8 JSON, and a body parsed before the middleware", () => {
  const w = new VerifierWriter();
  const [id, key] = makeKey();
  w.write([w.entry(id, key, { permissions: ["tools:call"] })], 1);
  const mw = apiKeyAuth({ verifier: Verifier.fromFile(w.path), toolPermissions: true });
  after(() => w.cleanup());

  /** Runs `mw` on a hand-made request: its status, or "next". */
  const run = (headers, body, chunk) =>
    new Promise((resolve) => {
      const listeners = {};
      const req = {
        method: "POST",
        headers: { "x-api-key": key, ...headers },
        body,
        on(event, fn) {
          listeners[event] = fn;
          if (event === "end") setImmediate(() => {
            if (chunk !== undefined) listeners.data(chunk);
            fn();
          });
        },
      };
      const res = {
        statusCode: 200,
        setHeader() {},
        end(text) {
          resolve([this.statusCode, JSON.parse(text).error.data.code]);
        },
      };
      mw(req, res, () => resolve("next"));
    });

  test("a body that is not UTF-8, or starts with a BOM, is not JSON (as in Rust and Python)", async () => {
    const call = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}}';
    assert.equal(await run({}, undefined, Buffer.from(call)), "next");
    assert.deepEqual(await run({}, undefined, Buffer.from(call.replace("echo", "ech\xff"), "latin1")), [400, "PARSE_ERROR"]);
    assert.deepEqual(await run({}, undefined, Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(call)])), [400, "PARSE_ERROR"]);
  });

  test("a body a parser read first is held to the routing headers too", async () => {
    const routed = { "mcp-method": "tools/call", "mcp-name": "echo", "mcp-protocol-version": "2026-07-28" };
    assert.equal(await run(routed, { method: "tools/call", params: { name: "echo" } }), "next");
    assert.deepEqual(await run(routed, { method: "tools/call", params: { name: "rm" } }), [400, "HEADER_MISMATCH"]);
    assert.deepEqual(await run({ "mcp-protocol-version": "2026-07-28" }, { method: "ping" }), [400, "BAD_ROUTING"]);
  });
});
