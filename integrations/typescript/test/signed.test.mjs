// Signed verifier files, trust pins and save_digest: every vector in
// tests/vectors/verifier/signed/, and reloading under a pin (docs/verifier.md).
import assert from "node:assert/strict";
import { generateKeyPairSync, sign } from "node:crypto";
import { mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";

import { Verifier, VerifierError, fingerprint } from "../dist/index.js";
import { VECTORS, VerifierWriter, makeKey, sleep } from "./util.mjs";

const SIGNED = join(VECTORS, "signed");
const spec = JSON.parse(readFileSync(join(SIGNED, "cases.json"), "utf8"));
const now = new Date(spec.now);
const vector = (name) => join(SIGNED, name);
const read = (name) => readFileSync(vector(name));

/** Replaces the file at `path` by rename, as the vault does. */
function replace(path, data) {
  writeFileSync(`${path}.tmp`, data);
  renameSync(`${path}.tmp`, path);
}

async function waitFor(predicate, ms = 3000) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (predicate()) return true;
    await sleep(20);
  }
  return false;
}

// --- the vectors ------------------------------------------------------------------------------

test("the signed vectors are there", () => {
  assert.equal(spec.fingerprints.length, 2);
  assert.ok(spec.trust.length >= 20 && spec.reload.length >= 10 && spec.invalid.length >= 2);
  assert.deepEqual(new Set(spec.trust.map((c) => c.ok)), new Set([true, false]));
  assert.deepEqual(new Set(spec.reload.map((c) => c.replaced)), new Set([true, false]));
});

for (const f of spec.fingerprints) {
  test(`fingerprint: ${f.fingerprint}`, () => {
    assert.equal(fingerprint(Buffer.from(f.public_key, "base64")), f.fingerprint);
    assert.equal(fingerprint(new Uint8Array(Buffer.from(f.public_key, "base64"))), f.fingerprint);
  });
}

test("fingerprint takes 32 bytes only", () => {
  assert.equal(fingerprint(new Uint8Array(32)).length, "mkv1:".length + 32);
  assert.throws(() => fingerprint(new Uint8Array(31)), RangeError);
  assert.throws(() => fingerprint(new Uint8Array(33)), RangeError);
  assert.throws(() => fingerprint("x".repeat(32)), TypeError);
});

for (const c of spec.trust) {
  test(`trust: ${c.verifier}: ${c.why}`, () => {
    const path = vector(c.verifier);
    if (c.ok) {
      assert.ok(Verifier.fromFile(path, { trust: c.trust }).size > 0);
      assert.ok(Verifier.fromJSON(read(c.verifier), "v", { trust: c.trust }).size > 0);
      // A string is the same bytes, encoded as UTF-8.
      assert.ok(Verifier.fromJSON(read(c.verifier).toString("utf8"), "v", { trust: c.trust }).size > 0);
    } else {
      assert.throws(
        () => Verifier.fromFile(path, { trust: c.trust }),
        (e) => e instanceof VerifierError && e.message.includes(path) && e.message.includes("not a trusted verifier file"),
      );
      assert.throws(() => Verifier.fromJSON(read(c.verifier), "v", { trust: c.trust }), VerifierError);
    }
  });
}

for (const c of spec.verify) {
  test(`verify: ${c.why}`, () => {
    const v = Verifier.fromFile(vector(c.verifier), { trust: c.trust });
    const got = v.verify(c.key, { require: c.require, now });
    assert.equal(got.code, c.code);
    assert.equal(got.keyId, c.key_id);
    assert.equal(got.name, c.name);
  });
}

for (const bad of spec.invalid) {
  test(`invalid without a pin: ${bad.verifier} (${bad.why})`, () => {
    const path = vector(bad.verifier);
    assert.throws(
      () => Verifier.fromFile(path),
      (e) => e instanceof VerifierError && e.message.includes(path) && e.message.includes("save_digest"),
    );
    assert.throws(() => Verifier.fromJSON(read(bad.verifier)), VerifierError);
  });
}

for (const c of spec.reload) {
  test(`reload: ${c.first} then ${c.then}: ${c.why}`, (t) => {
    const dir = mkdtempSync(join(tmpdir(), "mcp-key-verifier-"));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const path = join(dir, "verifier.json");
    replace(path, read(c.first));
    const errors = [];
    // A long interval: only the explicit refresh() below looks at the file.
    const v = Verifier.fromFile(path, {
      trust: c.trust,
      onReloadError: (e) => errors.push(e),
      reloadIntervalMs: 3_600_000,
    });
    replace(path, read(c.then));
    assert.equal(v.refresh(), c.replaced);
    assert.equal(v.revision, c.revision);
    assert.equal(v.verify(c.key, { now }).code, c.code);
    if (c.replaced) assert.deepEqual(errors, []);
    else assert.ok(errors.length === 1 && errors[0].message.includes(path));
    assert.equal(v.refresh(), false); // the same file is not looked at twice
  });
}

test("save_digest is read; null is absent", () => {
  const x = JSON.parse(read("digest-17-x.json").toString("utf8"));
  assert.equal(Verifier.fromFile(vector("digest-17-x.json")).saveDigest, x.save_digest);
  assert.equal(Verifier.fromFile(vector("signed-a.json")).saveDigest, null);
  x.save_digest = null;
  assert.equal(Verifier.fromJSON(JSON.stringify(x)).saveDigest, null);
});

// --- what the pin does ------------------------------------------------------------------------

test("refusals say why, without key material", () => {
  const [a, b] = spec.fingerprints.map((f) => f.fingerprint);
  const reasons = [
    ["unsigned.json", a, "it is not signed"],
    ["signature-not-first.json", a, "it is not signed"],
    ["malformed-signature-short.json", a, "the signature line is malformed"],
    ["malformed-signature-public-key-noncanonical.json", a, "not canonical base64"],
    ["signed-b.json", a, `signed by the vault ${b}, not by the trusted ${a}`],
    ["tampered.json", a, "the signature does not verify"],
    ["bad-signature-bit.json", a, "the signature does not verify"],
    ["signed-a.json", "mkv1:nope", "not by the trusted pin (which is not a fingerprint"],
  ];
  for (const [name, pin, reason] of reasons) {
    const doc = JSON.parse(read(name).toString("utf8"));
    assert.throws(
      () => Verifier.fromFile(vector(name), { trust: pin }),
      (e) => e.message.includes(reason) && !e.message.includes(doc.hash_key),
      name,
    );
  }
});

test("trust must be a string", () => {
  assert.throws(() => Verifier.fromFile(vector("signed-a.json"), { trust: 42 }), TypeError);
  // null and absent are no pin.
  assert.equal(Verifier.fromFile(vector("unsigned.json"), { trust: null }).revision, 17);
});

// --- reloading under a pin, with files signed here --------------------------------------------

/** A vault's signing key: signs documents as docs/verifier.md says. */
class Vault {
  constructor() {
    const { publicKey, privateKey } = generateKeyPairSync("ed25519");
    this.privateKey = privateKey;
    this.public = publicKey.export({ format: "der", type: "spki" }).subarray(12);
    this.fingerprint = fingerprint(this.public);
  }
  sign(unsigned) {
    assert.equal(unsigned.subarray(0, 2).toString(), "{\n");
    const sig = sign(null, Buffer.concat([Buffer.from("mcp-key-verifier/signature/v1\n"), unsigned]), this.privateKey);
    const line = `  "signature": "ed25519:${this.public.toString("base64")}:${sig.toString("base64")}",\n`;
    return Buffer.concat([Buffer.from(`{\n${line}`), unsigned.subarray(2)]);
  }
}

test("a pinned reader keeps its file against unsigned, foreign and tampered ones", async (t) => {
  const w = new VerifierWriter();
  t.after(() => w.cleanup());
  const vault = new Vault();
  const other = new Vault();
  const [id, key] = makeKey();
  w.write(null, null, vault.sign(w.document([w.entry(id, key)], 1)));
  const errors = [];
  const v = Verifier.fromFile(w.path, { trust: vault.fingerprint, onReloadError: (e) => errors.push(e) });
  assert.ok(v.verify(key).valid);

  // Each of these would revoke the key at a higher revision; none may be used.
  const revoked = w.document([w.entry(id, key, { status: "revoked" })], 2);
  const signedActive = vault.sign(w.document([w.entry(id, key)], 2)).toString("utf8");
  const tampered = Buffer.from(signedActive.replace('"status": "active"', '"status": "revoked"'));
  assert.notEqual(tampered.toString("utf8"), signedActive);
  for (const [raw, reason] of [
    [revoked, "it is not signed"],
    [other.sign(revoked), `signed by the vault ${other.fingerprint}`],
    [tampered, "the signature does not verify"],
  ]) {
    const n = errors.length;
    w.write(null, null, raw);
    assert.ok(await waitFor(() => (v.verify(key), errors.length > n)), reason);
    assert.ok(errors.at(-1).message.includes(reason), errors.at(-1).message);
    assert.ok(errors.at(-1).message.includes("keeping revision 1"));
    for (let i = 0; i < 15; i++) {
      assert.ok(v.verify(key).valid); // looked at again: still the old file, reported once
      await sleep(20);
    }
    assert.equal(errors.length, n + 1);
    assert.equal(v.revision, 1);
  }

  // The vault's own newer file is taken.
  w.write(null, null, vault.sign(revoked));
  assert.ok(await waitFor(() => v.verify(key).code === "REVOKED"));
  assert.equal(v.revision, 2);
  assert.ok(!errors.some((e) => e.message.includes(key)));
});

test("a save_digest conflict is kept out", async (t) => {
  const w = new VerifierWriter();
  t.after(() => w.cleanup());
  const x = "a".repeat(64);
  const y = "b".repeat(64);
  const [id, key] = makeKey();
  w.write(null, null, w.document([w.entry(id, key)], 5, { save_digest: x }));
  const errors = [];
  const v = Verifier.fromFile(w.path, { onReloadError: (e) => errors.push(e) });
  assert.equal(v.saveDigest, x);
  // Another save that claims revision 5 (a vault restored from a backup, changed again).
  w.write(null, null, w.document([w.entry(id, key, { status: "revoked" })], 5, { save_digest: y }));
  assert.ok(await waitFor(() => (v.verify(key), errors.length > 0)));
  assert.match(errors[0].message, /conflicts with the loaded revision 5/);
  assert.ok(v.verify(key).valid);
  assert.equal(v.saveDigest, x);
  // The same save written again is taken.
  w.write(null, null, w.document([w.entry(id, key, { name: "again" })], 5, { save_digest: x }));
  assert.ok(await waitFor(() => v.verify(key).name === "again"));
  // A later save is taken, whatever its digest.
  w.write(null, null, w.document([w.entry(id, key, { status: "revoked" })], 6, { save_digest: y }));
  assert.ok(await waitFor(() => v.verify(key).code === "REVOKED"));
  assert.equal(v.saveDigest, y);
  assert.equal(errors.length, 1);
});
