// apiKeyAuth as plain Connect-style middleware on node:http: answers, headers, body limits.
import assert from "node:assert/strict";
import { createServer, request } from "node:http";
import { after, before, describe, test } from "node:test";

import { Verifier, apiKeyAuth, neededPermissions } from "../dist/index.js";
import { VerifierWriter, makeKey } from "./util.mjs";

const rpc = (method, params = {}) => JSON.stringify({ jsonrpc: "2.0", id: 1, method, params });

describe("apiKeyAuth on node:http", () => {
  const w = new VerifierWriter();
  const keys = Object.fromEntries(["all", "add", "none"].map((k) => [k, makeKey()]));
  const reached = [];
  let base;
  let server;

  before(async () => {
    w.write(
      [
        w.entry(...keys.all, { permissions: ["tools:call", "resources:read", "prompts:get", "info"] }),
        w.entry(...keys.add, { permissions: ["tools:call:add", "info"] }),
        w.entry(...keys.none),
      ],
      1,
    );
    const v = Verifier.fromFile(w.path);
    const plain = apiKeyAuth({ verifier: v, require: ["info", "admin", "audit"] });
    const tools = apiKeyAuth({ verifier: v, toolPermissions: true });
    server = createServer((req, res) => {
      const mw = req.url === "/require" ? plain : tools;
      mw(req, res, (err) => {
        if (err) {
          res.statusCode = 500;
          res.end();
          return;
        }
        reached.push({ auth: req.auth, body: req.body });
        res.end("ok");
      });
    });
    await new Promise((r) => server.listen(0, "127.0.0.1", r));
    base = `http://127.0.0.1:${server.address().port}`;
  });
  after(async () => {
    await new Promise((r) => server.close(r));
    w.cleanup();
  });

  const post = (path, headers, body) => fetch(base + path, { method: "POST", headers, body });

  test("401 shape", async () => {
    const r = await post("/", { Authorization: `Bearer ${keys.all[1].slice(0, -1)}x` }, rpc("ping"));
    assert.equal(r.status, 401);
    assert.match(r.headers.get("www-authenticate"), /^Bearer error="invalid_token", error_description="/);
    assert.equal(r.headers.get("content-type"), "application/json");
    assert.deepEqual(await r.json(), {
      jsonrpc: "2.0",
      id: null,
      error: { code: -32001, message: "the API key is malformed", data: { code: "MALFORMED" } },
    });
  });

  test("a repeated key header is refused as no key", async () => {
    // Every value of each header reaches keyFromHeaders (Node itself would join two X-API-Key
    // values with ", " and drop the second Authorization).
    const good = keys.all[1];
    const other = keys.none[1];
    for (const headers of [
      [["X-API-Key", good], ["X-API-Key", other]],
      [["X-API-Key", good], ["X-API-Key", good]],
      [["Authorization", `Bearer ${good}`], ["Authorization", `Bearer ${other}`]],
    ]) {
      // node:http sends each value of an array as a header line of its own (fetch would join
      // them into one value).
      const h = {};
      for (const [k, v] of headers) (h[k] ??= []).push(v);
      const { status, body } = await new Promise((resolve, reject) => {
        const req = request(base + "/", { method: "POST", headers: h }, (res) => {
          let data = "";
          res.on("data", (c) => (data += c));
          res.on("end", () => resolve({ status: res.statusCode, body: data }));
        });
        req.on("error", reject);
        req.end(rpc("ping"));
      });
      assert.equal(status, 401, JSON.stringify(headers.map(([k]) => k)));
      assert.equal(JSON.parse(body).error.data.code, "MALFORMED");
    }
    assert.equal((await post("/", { "X-API-Key": good }, rpc("ping"))).status, 200);
  });

  test("403 names the missing required permissions", async () => {
    const r = await post("/require", { "X-API-Key": keys.all[1] }, "");
    assert.equal(r.status, 403);
    assert.equal(r.headers.get("www-authenticate"), 'Bearer error="insufficient_scope", scope="admin audit"');
    const body = await r.json();
    assert.equal(body.error.code, -32003);
    assert.deepEqual(body.error.data, { code: "INSUFFICIENT_PERMISSIONS" });
  });

  const cases = [
    ["all", rpc("tools/call", { name: "anything" }), 200],
    ["add", rpc("tools/call", { name: "add" }), 200],
    ["add", rpc("tools/call", { name: "delete" }), 403],
    ["none", rpc("tools/call", { name: "add" }), 403],
    ["none", rpc("tools/list"), 200],
    ["all", rpc("resources/read", { uri: "file:///x" }), 200],
    ["add", rpc("resources/read", { uri: "file:///x" }), 403],
    ["all", rpc("prompts/get", { name: "p" }), 200],
    ["add", rpc("prompts/get", { name: "p" }), 403],
    ["add", `[${rpc("tools/call", { name: "add" })},${rpc("tools/call", { name: "rm" })}]`, 403],
    ["add", `[${rpc("tools/call", { name: "add" })},${rpc("tools/list")}]`, 200],
    ["add", "", 200],
    ["add", "{not json", 400],
  ];
  for (const [label, body, status] of cases) {
    test(`tool permissions: ${label} ${body.slice(0, 60)} -> ${status}`, async () => {
      const before = reached.length;
      const r = await post("/", { "X-API-Key": keys[label][1] }, body);
      assert.equal(r.status, status);
      if (status === 200) {
        const got = reached.at(-1);
        assert.deepEqual(got.body, body ? JSON.parse(body) : undefined);
        assert.equal(got.auth.clientId, keys[label][0]);
      } else {
        assert.equal(reached.length, before);
      }
      if (status === 403) {
        assert.match(r.headers.get("www-authenticate"), /^Bearer error="insufficient_scope", scope="tools:call:|scope="resources:read"|scope="prompts:get:p"/);
      }
    });
  }

  test("the 403 scope names the narrowest permission", async () => {
    const r = await post("/", { "X-API-Key": keys.add[1] }, rpc("tools/call", { name: "rm" }));
    assert.equal(r.headers.get("www-authenticate"), 'Bearer error="insufficient_scope", scope="tools:call:rm"');
  });

  test("bodies over 1 MiB are 413", async () => {
    const big = " ".repeat(1024 * 1024) + rpc("tools/call", { name: "add" });
    const r = await post("/", { "X-API-Key": keys.add[1] }, big);
    assert.equal(r.status, 413);
    assert.equal((await r.json()).error.data.code, "BODY_TOO_LARGE");
    // Streamed without a length: counted as it arrives.
    const stream = new ReadableStream({
      start(c) {
        for (let i = 0; i < 20; i++) c.enqueue(new TextEncoder().encode(" ".repeat(65536)));
        c.close();
      },
    });
    const r2 = await fetch(base + "/", { method: "POST", headers: { "X-API-Key": keys.add[1] }, body: stream, duplex: "half" });
    assert.equal(r2.status, 413);
  });
});

test("required permissions follow the name form", async () => {
  // tools:call grants tools:call:mul; a 403 names only what is really missing.
  const w = new VerifierWriter();
  const [id, key] = makeKey();
  w.write([w.entry(id, key, { permissions: ["tools:call"] })], 1);
  const v = Verifier.fromFile(w.path);
  const run = (mw, k) =>
    new Promise((resolve) => {
      const res = {
        statusCode: 200,
        headers: {},
        setHeader(name, value) { this.headers[name.toLowerCase()] = value; },
        end() { resolve({ status: this.statusCode, challenge: this.headers["www-authenticate"] }); },
      };
      mw({ headers: { "x-api-key": k } }, res, () => resolve({ status: "next" }));
    });
  assert.equal((await run(apiKeyAuth({ verifier: v, require: ["tools:call:mul"] }), key)).status, "next");
  const r = await run(apiKeyAuth({ verifier: v, require: ["tools:call:mul", "admin"] }), key);
  assert.equal(r.status, 403);
  assert.equal(r.challenge, 'Bearer error="insufficient_scope", scope="admin"');
  w.cleanup();
});

test("neededPermissions", () => {
  assert.deepEqual(neededPermissions({ method: "tools/call", params: { name: "x" } }), [["tools:call", "tools:call:x"]]);
  assert.deepEqual(neededPermissions({ method: "tools/call" }), [["tools:call"]]);
  assert.deepEqual(neededPermissions([{ method: "ping" }, 3, null]), []);
});

test("a body parsed before the middleware is used as is", async () => {
  const w = new VerifierWriter();
  const [id, key] = makeKey();
  w.write([w.entry(id, key, { permissions: ["tools:call:add"] })], 1);
  const mw = apiKeyAuth({ verifier: Verifier.fromFile(w.path), toolPermissions: true });
  const run = (body) =>
    new Promise((resolve) => {
      const res = {
        statusCode: 200,
        headers: {},
        setHeader(k, v) { this.headers[k.toLowerCase()] = v; },
        end() { resolve(this.statusCode); },
      };
      const req = { headers: { "x-api-key": key }, body };
      mw(req, res, () => resolve(req.auth.clientId === id ? "next" : "wrong"));
    });
  assert.equal(await run({ jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: "add" } }), "next");
  assert.equal(await run({ jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: "rm" } }), 403);
  w.cleanup();
});

// Refusals of an identified key are reported with its id (never the key), as serve and the
// Python middleware log them; unknown keys are not (anyone can send them).
test("refusals of identified keys are reported, with the id and never the key", async () => {
  const w = new VerifierWriter();
  const [addId, add] = makeKey();
  const [revId, rev] = makeKey();
  const [, unknown] = makeKey();
  w.write([w.entry(addId, add, { permissions: ["tools:call:add"] }), w.entry(revId, rev, { status: "revoked" })], 1);
  const events = [];
  const mw = apiKeyAuth({ verifier: Verifier.fromFile(w.path), toolPermissions: true, onRefusal: (r) => events.push(r) });
  const run = (key, body) =>
    new Promise((resolve) => {
      const res = {
        statusCode: 200,
        setHeader() {},
        end() { resolve(this.statusCode); },
      };
      mw({ url: "/mcp?x=1", headers: { "x-api-key": key }, body }, res, () => resolve("next"));
    });
  const call = (name) => ({ jsonrpc: "2.0", id: 1, method: "tools/call", params: { name } });
  assert.equal(await run(add, call("rm")), 403);
  assert.equal(await run(rev, call("add")), 401);
  assert.equal(await run(unknown, call("add")), 401);
  assert.equal(await run(add, call("add")), "next");
  assert.deepEqual(events, [
    { path: "/mcp", code: "INSUFFICIENT_PERMISSIONS", keyId: addId, missing: ["tools:call:rm"] },
    { path: "/mcp", code: "REVOKED", keyId: revId, missing: [] },
  ]);
  // The default goes to console.info: the id, never the key.
  const lines = [];
  const info = console.info;
  console.info = (line) => lines.push(line);
  try {
    const plain = apiKeyAuth({ verifier: Verifier.fromFile(w.path) });
    await new Promise((resolve) =>
      plain({ url: "/mcp\n", headers: { "x-api-key": rev } }, { setHeader() {}, end: resolve }, resolve),
    );
  } finally {
    console.info = info;
  }
  assert.equal(lines.length, 1);
  assert.ok(lines[0].includes(revId) && !lines[0].includes(rev) && !lines[0].includes("\n"), lines[0]);
  w.cleanup();
});
