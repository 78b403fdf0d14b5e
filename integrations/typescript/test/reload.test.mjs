// Reloading: the file is replaced by rename (from another thread) while verify runs in a loop.
import assert from "node:assert/strict";
import { unlinkSync } from "node:fs";
import { test } from "node:test";
import { Worker } from "node:worker_threads";

import { Verifier, VerifierError } from "../dist/index.js";
import { VerifierWriter, makeKey, sleep } from "./util.mjs";

async function waitFor(predicate, ms = 3000) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (predicate()) return true;
    await sleep(20);
  }
  return false;
}

test("reload by rename while a loop verifies", async (t) => {
  const w = new VerifierWriter();
  t.after(() => w.cleanup());
  const [stayId, stay] = makeKey();
  const [goneId, gone] = makeKey();
  const [newId, fresh] = makeKey();
  w.write([w.entry(stayId, stay, { permissions: ["info"] }), w.entry(goneId, gone)], 1);
  const v = Verifier.fromFile(w.path);

  // Another thread republishes 10 times, 60 ms apart, each time by rename.
  const versions = [];
  for (let revision = 2; revision <= 11; revision++) {
    const entries = [
      w.entry(stayId, stay, { permissions: ["info"] }),
      w.entry(goneId, gone, { status: "revoked" }),
    ];
    if (revision % 2) entries.push(w.entry(newId, fresh));
    versions.push(
      JSON.stringify({
        format: "mcp-key-verifier", version: 1, algorithm: "hmac-sha256",
        hash_key: w.hashKey.toString("base64"), generated_at: "2026-06-01T00:00:00Z",
        revision, keys: entries,
      }),
    );
  }
  const worker = new Worker(
    `const { parentPort, workerData } = require("node:worker_threads");
     const { writeFileSync, renameSync } = require("node:fs");
     const pause = (ms) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
     for (const text of workerData.versions) {
       writeFileSync(workerData.path + ".tmp", text);
       renameSync(workerData.path + ".tmp", workerData.path);
       pause(60);
     }
     parentPort.postMessage("done");`,
    { eval: true, workerData: { versions, path: w.path } },
  );
  let done = false;
  worker.on("message", () => (done = true));
  let failures = 0;
  let count = 0;
  const seen = new Set();
  const end = Date.now() + 10000;
  while ((!done || v.revision !== 11) && Date.now() < end) {
    for (let i = 0; i < 200; i++) {
      const got = v.verify(stay, { require: ["info"] });
      count++;
      if (!got.valid || got.keyId !== stayId) failures++;
    }
    seen.add(v.revision);
    await new Promise((r) => setImmediate(r));
  }
  await worker.terminate();
  assert.equal(failures, 0);
  assert.ok(count > 1000);
  assert.equal(v.revision, 11);
  assert.ok(seen.size >= 3, `saw revisions ${[...seen]}`);
  assert.equal(v.verify(gone).code, "REVOKED");
  assert.equal(v.verify(fresh).code, "VALID");
});

test("an older revision is kept out; equal and newer are taken", async (t) => {
  const w = new VerifierWriter();
  t.after(() => w.cleanup());
  const [id, key] = makeKey();
  w.write([w.entry(id, key, { status: "revoked" })], 7);
  const errors = [];
  const v = Verifier.fromFile(w.path, { onReloadError: (e) => errors.push(e) });
  w.write([w.entry(id, key)], 6);
  assert.ok(await waitFor(() => (v.verify(key), errors.length > 0)));
  assert.match(errors[0].message, /revision 6 is older than the loaded revision 7/);
  assert.equal(v.verify(key).code, "REVOKED");
  w.write([w.entry(id, key, { status: "revoked", name: "again" })], 7);
  assert.ok(await waitFor(() => v.verify(key).name === "again"));
  w.write([w.entry(id, key)], 8);
  assert.ok(await waitFor(() => v.verify(key).code === "VALID"));
});

test("a broken or missing file is kept out and reported once", async (t) => {
  const w = new VerifierWriter();
  t.after(() => w.cleanup());
  const [id, key] = makeKey();
  w.write([w.entry(id, key)], 3);
  const errors = [];
  const v = Verifier.fromFile(w.path, { onReloadError: (e) => errors.push(e) });
  w.write(null, null, '{"format": "mcp-key-verifier", "vers');
  assert.ok(await waitFor(() => (v.verify(key), errors.length > 0)));
  for (let i = 0; i < 30; i++) {
    assert.ok(v.verify(key).valid);
    await sleep(20);
  }
  assert.equal(errors.length, 1);
  assert.ok(errors[0] instanceof VerifierError);
  assert.match(errors[0].message, /not JSON; keeping revision 3/);
  unlinkSync(w.path);
  assert.ok(await waitFor(() => (v.verify(key), errors.length === 2)));
  assert.ok(v.verify(key).valid);
  w.write([w.entry(id, key, { status: "revoked" })], 4);
  assert.ok(await waitFor(() => v.verify(key).code === "REVOKED"));
});

test("the file is not statted more than every 250 ms", async (t) => {
  const w = new VerifierWriter();
  t.after(() => w.cleanup());
  const [id, key] = makeKey();
  w.write([w.entry(id, key)], 1);
  const v = Verifier.fromFile(w.path);
  let looks = 0;
  const real = v.refresh.bind(v);
  v.refresh = () => (looks++, real());
  const end = Date.now() + 600;
  let n = 0;
  while (Date.now() < end) {
    v.verify(key);
    n++;
    if (n % 1000 === 0) await sleep(1);
  }
  assert.ok(n > 1000);
  assert.ok(looks >= 1 && looks <= 3, `looked ${looks} times`);
});

test("a missing file fails clearly", () => {
  assert.throws(() => Verifier.fromFile("/nonexistent/verifier.json"), /cannot read the verifier file \(ENOENT\)/);
});
