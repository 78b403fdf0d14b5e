// Every conformance vector in tests/vectors/verifier/ (docs/verifier.md).
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";

import {
  Limiter,
  Verifier,
  VerifierError,
  decide,
  formatRateLimit,
  intervalUs,
  keyFromHeaders,
  rateLimit,
  rateLimitHeaders,
} from "../dist/index.js";
import { VECTORS } from "./util.mjs";

const spec = JSON.parse(readFileSync(join(VECTORS, "cases.json"), "utf8"));
const sequences = JSON.parse(readFileSync(join(VECTORS, "ratelimit.json"), "utf8")).sequences;
const now = new Date(spec.now);

test("the vectors are there", () => {
  assert.ok(spec.cases.length >= 40 && spec.invalid.length >= 10 && spec.headers.length > 0);
});

for (const c of spec.cases) {
  // The test name is the case's reason: a failure never prints the (test) key.
  test(`case: ${c.why}`, () => {
    const v = Verifier.fromFile(join(VECTORS, c.verifier));
    const got = v.verify(c.key, { require: c.require, now });
    assert.equal(got.code, c.code);
    assert.equal(got.reason, c.reason);
    assert.equal(got.valid, c.code === "VALID");
    assert.equal(got.keyId, c.key_id);
    assert.equal(got.name, c.name);
    if (c.code === "MALFORMED" || c.code === "NOT_FOUND") {
      assert.deepEqual(got.permissions, []);
      assert.equal(got.expiresAt, null);
    }
    assert.ok(Object.isFrozen(got));
  });
}

for (const bad of spec.invalid) {
  test(`invalid: ${bad.verifier} (${bad.why})`, () => {
    const path = join(VECTORS, bad.verifier);
    assert.throws(() => Verifier.fromFile(path), (e) => e instanceof VerifierError && e.message.includes(path));
    assert.throws(() => Verifier.fromJSON(readFileSync(path)), VerifierError);
  });
}

for (const h of spec.headers) {
  test(`headers: ${h.why}`, () => {
    assert.equal(keyFromHeaders(h.x_api_key, h.authorization), h.key ?? undefined);
  });
}

test("verdict details of a valid key", () => {
  const c = spec.cases.find((x) => x.code === "VALID" && x.name === "ci-bot");
  const v = Verifier.fromFile(join(VECTORS, c.verifier));
  const got = v.verify(c.key, { now });
  assert.deepEqual([...got.permissions], ["generate", "info"]);
  assert.equal(got.expiresAt.toISOString(), "2026-09-01T00:00:00.000Z");
  assert.equal(v.revision, 17);
  assert.equal(Verifier.fromFile(join(VECTORS, "old-writer.json")).revision, 0);
});

test("error messages hold no hash key or hash", () => {
  for (const bad of spec.invalid) {
    let doc;
    try {
      doc = JSON.parse(readFileSync(join(VECTORS, bad.verifier), "utf8"));
    } catch {
      continue;
    }
    if (typeof doc !== "object" || doc === null || Array.isArray(doc)) continue;
    try {
      Verifier.fromFile(join(VECTORS, bad.verifier));
      assert.fail("accepted");
    } catch (e) {
      if (typeof doc.hash_key === "string" && doc.hash_key.length > 8) {
        assert.ok(!e.message.includes(doc.hash_key));
      }
      for (const k of doc.keys ?? []) {
        if (typeof k?.hash === "string") assert.ok(!e.message.includes(k.hash));
      }
    }
  }
});

test("repeated X-API-Key headers give no key", () => {
  assert.equal(keyFromHeaders(["a".repeat(20), "b".repeat(20)], undefined), undefined);
  assert.equal(keyFromHeaders(["a".repeat(20)], undefined), "a".repeat(20));
});

test("a member twice is refused however it is written", () => {
  const file = (extra) =>
    `{"format":"mcp-key-verifier","version":1,"algorithm":"hmac-sha256",` +
    `"hash_key":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",` +
    `"generated_at":"2026-01-01T00:00:00Z",${extra}"keys":[]}`;
  assert.equal(Verifier.fromJSON(file("")).size, 0);
  // Compared decoded; a quote or brace inside a string is not structure.
  assert.throws(() => Verifier.fromJSON(file('"note":1,"n\\u006fte":2,')), VerifierError);
  assert.equal(Verifier.fromJSON(file('"a":"x\\"}{,\\"a\\":","b":["a","a"],')).size, 0);
  assert.throws(() => Verifier.fromJSON(file('"x":[{"a":{"b":1,"b":2}}],')), VerifierError);
  // version/revision: integers as written; a string holding "1.0" elsewhere is not them.
  assert.equal(Verifier.fromJSON(file('"note":"version","revision":7,')).revision, 7);
  assert.throws(() => Verifier.fromJSON(file('"revision":7.0,')), VerifierError);
});

for (const c of spec.rate_limits) {
  test(`rate limit of an entry: ${c.why}`, () => {
    const got = Verifier.fromFile(join(VECTORS, c.verifier)).verify(c.key, { now });
    assert.equal(got.code, c.code);
    assert.equal(got.keyId, c.key_id);
    if (c.rate_limit === null) {
      assert.equal(got.rateLimit, null);
    } else {
      assert.deepEqual(got.rateLimit, { requests: c.rate_limit.requests, windowSeconds: c.rate_limit.window_seconds });
      assert.ok(Object.isFrozen(got.rateLimit));
      assert.equal(formatRateLimit(got.rateLimit), c.display);
    }
  });
}

for (const s of sequences) {
  // Every decision, by the GCRA step and by a Limiter, and the header values it gives.
  test(`rate limit sequence: ${s.why}`, () => {
    const limit = rateLimit(s.limit.requests, s.limit.window_seconds);
    assert.equal(intervalUs(limit), s.interval_us);
    assert.equal(formatRateLimit(limit), s.display);
    const limiter = new Limiter();
    let tat = 0;
    s.requests.forEach((r, i) => {
      const [d, next] = decide(limit, tat, r.at_us);
      tat = next;
      const h = rateLimitHeaders(limit, d);
      assert.deepEqual(
        [d.allowed, d.remaining, d.resetUs, d.retryAfterUs, h.RateLimit, h["RateLimit-Policy"], h["Retry-After"] ?? null],
        [r.allowed, r.remaining, r.reset_us, r.retry_after_us, r.ratelimit, s.policy, r.retry_after === null ? null : String(r.retry_after)],
        `request ${i}`,
      );
      assert.deepEqual(limiter.check("k", limit, r.at_us), d, `request ${i} (Limiter)`);
    });
  });
}
