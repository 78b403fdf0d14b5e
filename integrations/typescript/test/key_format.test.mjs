// Key format 2 on the Node side: the documented key pattern (docs/verifier.md, "Key shapes")
// as JavaScript runs it, and a typo told from an unknown key without any entry.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";

import { KEY_PATTERN, Verifier } from "../dist/index.js";
import { VECTORS } from "./util.mjs";

const corpus = JSON.parse(readFileSync(join(VECTORS, "key-pattern.json"), "utf8"));

test("the docs show the exported pattern", () => {
  for (const doc of ["verifier.md", "commands.md"]) {
    const text = readFileSync(join(VECTORS, "..", "..", "..", "docs", doc), "utf8");
    const blocks = [...text.matchAll(/```regex\n([\s\S]*?)```/g)].map((m) => m[1]);
    assert.deepEqual(blocks, [`${KEY_PATTERN}\n`], doc);
  }
  assert.equal(corpus.pattern, KEY_PATTERN);
});

test("the pattern finds every key and no near miss", () => {
  const whole = new RegExp(`^(?:${KEY_PATTERN})$`);
  for (const k of corpus.keys) assert.ok(whole.test(k));
  const missed = corpus.near_misses.filter((n) => new RegExp(KEY_PATTERN).test(n.text));
  assert.deepEqual(missed.map((n) => n.why), []);
  for (const t of corpus.texts) {
    assert.deepEqual([...t.text.matchAll(new RegExp(KEY_PATTERN, "g"))].map((m) => m[0]), t.keys);
  }
});

test("a typo is MALFORMED/CHECKSUM without any entry", () => {
  const empty = Verifier.fromFile(join(VECTORS, "empty.json"));
  const key = corpus.keys[0];
  assert.ok(key.startsWith("mkm_"));
  const typo = key.slice(0, 30) + (key[30] === "Q" ? "R" : "Q") + key.slice(31);
  const v = empty.verify(typo);
  assert.deepEqual([v.code, v.reason], ["MALFORMED", "CHECKSUM"]);
  assert.equal(empty.verify(key).reason, null);
  assert.equal(empty.verify(key.slice(0, -1)).reason, "SHAPE");
  assert.equal(empty.verify(null).reason, "SHAPE");
});
