// Rate limits: the Limiter, and apiKeyAuth's 429 and RateLimit headers on node:http.
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { after, before, describe, test } from "node:test";

import { Limiter, Verifier, apiKeyAuth, rateLimit } from "../dist/index.js";
import { VerifierWriter, makeKey } from "./util.mjs";

/** 2026-06-01T00:00:00Z in microseconds. */
const T0 = 1780272000 * 1_000_000;

/** A Limiter whose clock stands still at `now` (the tests set it). */
class FrozenLimiter extends Limiter {
  now = T0;
  check(keyId, limit) {
    return super.check(keyId, limit, this.now);
  }
}

const rpc = (method, params = {}) => JSON.stringify({ jsonrpc: "2.0", id: 1, method, params });

test("a limit is integers in bounds", () => {
  assert.deepEqual(rateLimit(100, 60), { requests: 100, windowSeconds: 60 });
  for (const [q, w] of [[0, 60], [1e9 + 1, 60], [1, 0], [1, 86401], [1.5, 60], [true, 60], ["1", 60]]) {
    assert.throws(() => rateLimit(q, w), RangeError);
  }
});

test("the limiter counts keys apart and forgets whole quotas", () => {
  const lim = new Limiter();
  const l = rateLimit(2, 10);
  const now = 50 * 1e6;
  assert.ok(lim.check("a", l, now).allowed && lim.check("a", l, now).allowed);
  assert.ok(!lim.check("a", l, now).allowed);
  assert.ok(lim.check("b", l, now).allowed, "another key has its own quota");
  for (let i = 0; i < 5000; i++) lim.check(`k${i}`, l, now + 100e6 + i);
  assert.ok(lim.size <= 5002);
  const later = now + 1000e6;
  for (let i = 0; i < 10000; i++) lim.check(`z${i}`, l, later);
  assert.equal(lim.size, 10000, "every key whose quota is whole was forgotten");
});

describe("apiKeyAuth with rate limits", () => {
  const w = new VerifierWriter();
  const keys = Object.fromEntries(["limited", "free", "narrow"].map((k) => [k, makeKey()]));
  const limiter = new FrozenLimiter();
  const refusals = [];
  let reached = 0;
  let base;
  let server;

  before(async () => {
    w.write(
      [
        w.entry(...keys.limited, { permissions: ["tools:call"], rateLimit: [3, 60] }),
        w.entry(...keys.free, { permissions: ["tools:call"] }),
        w.entry(...keys.narrow, { permissions: ["tools:call:add"], rateLimit: [1, 60] }),
      ],
      1,
    );
    const verifier = Verifier.fromFile(w.path);
    const onRefusal = (r) => refusals.push(r);
    const routes = {
      "/": apiKeyAuth({ verifier, limiter, onRefusal }),
      "/tools": apiKeyAuth({ verifier, limiter, onRefusal, toolPermissions: true }),
      "/admin": apiKeyAuth({ verifier, limiter, onRefusal, require: ["admin"] }),
      "/off": apiKeyAuth({ verifier, rateLimits: false }),
      "/real": apiKeyAuth({ verifier }),
    };
    server = createServer((req, res) => {
      routes[req.url](req, res, () => {
        reached++;
        res.setHeader("X-App", "1");
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

  const post = (path, key, body = rpc("ping")) =>
    fetch(base + path, { method: "POST", headers: { "X-API-Key": key }, body });

  test("3/min: three admitted with RateLimit headers, then 429; another key is still admitted", async () => {
    limiter.now = T0;
    const start = reached;
    for (const [remaining, reset] of [[2, 20], [1, 40], [0, 60]]) {
      const r = await post("/", keys.limited[1]);
      assert.equal(r.status, 200);
      assert.equal(await r.text(), "ok");
      assert.equal(r.headers.get("x-app"), "1");
      assert.equal(r.headers.get("ratelimit-policy"), '"key";q=3;w=60');
      assert.equal(r.headers.get("ratelimit"), `"key";r=${remaining};t=${reset}`);
      assert.equal(r.headers.get("retry-after"), null);
    }
    const r = await post("/", keys.limited[1]);
    assert.equal(r.status, 429);
    assert.equal(r.headers.get("retry-after"), "20");
    assert.equal(r.headers.get("ratelimit-policy"), '"key";q=3;w=60');
    assert.equal(r.headers.get("ratelimit"), '"key";r=0;t=60');
    assert.equal(r.headers.get("content-type"), "application/json");
    assert.equal(r.headers.get("cache-control"), "no-store");
    assert.equal(r.headers.get("www-authenticate"), null);
    // The text as serve's documentation shows it: compact, in this member order.
    assert.equal(
      await r.text(),
      '{"jsonrpc":"2.0","id":null,"error":{"code":-32029,"message":"rate limit exceeded for this API key ' +
        '(3/min); retry after 20 s","data":{"code":"RATE_LIMITED","retry_after":20}}}',
    );
    assert.equal(reached - start, 3);
    assert.deepEqual(refusals.at(-1), { path: "/", code: "RATE_LIMITED", keyId: keys.limited[0], missing: [] });
    const free = await post("/", keys.free[1]);
    assert.equal(free.status, 200);
    assert.equal(free.headers.get("ratelimit"), null);
    assert.equal(free.headers.get("ratelimit-policy"), null);
    // One interval later exactly one more.
    limiter.now = T0 + 20e6;
    const again = await post("/", keys.limited[1]);
    assert.equal(again.status, 200);
    assert.equal(again.headers.get("ratelimit"), '"key";r=0;t=60');
    assert.equal((await post("/", keys.limited[1])).status, 429);
  });

  test("a refused request uses nothing", async () => {
    limiter.now = T0 + 3600e6;
    for (let i = 0; i < 3; i++) {
      assert.equal((await post("/tools", keys.narrow[1], rpc("tools/call", { name: "rm" }))).status, 403);
      assert.equal((await post("/tools", keys.narrow[1], "{not json")).status, 400);
      assert.equal((await post("/admin", keys.narrow[1])).status, 403);
    }
    const ok = await post("/tools", keys.narrow[1], rpc("tools/call", { name: "add" }));
    assert.equal(ok.status, 200);
    assert.equal(ok.headers.get("ratelimit"), '"key";r=0;t=60');
    const over = await post("/tools", keys.narrow[1], rpc("tools/call", { name: "add" }));
    assert.equal(over.status, 429);
    assert.equal((await over.json()).error.data.code, "RATE_LIMITED");
  });

  test("rateLimits: false leaves limits to something else; the real clock works", async () => {
    for (let i = 0; i < 5; i++) {
      const r = await post("/off", keys.narrow[1]);
      assert.equal(r.status, 200);
      assert.equal(r.headers.get("ratelimit"), null);
    }
    const r = await post("/real", keys.limited[1]);
    assert.equal(r.headers.get("ratelimit"), '"key";r=2;t=20');
    assert.throws(() => apiKeyAuth({ verifier: Verifier.fromFile(w.path), limiter: {} }), TypeError);
  });
});
