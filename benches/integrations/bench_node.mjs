// verify() per second for one valid key, beside bare HMAC-SHA256 of the same key (the floor).
//
// Usage: node benches/integrations/bench_node.mjs [rounds=15] [iterations=50000]
// (after `npm ci && npm run build` in integrations/typescript). Rounds interleave verify and
// the floor so machine noise hits both alike; rates are per second of this process's CPU time
// (process.cpuUsage), the best round, with the median in brackets.
import { createHmac, randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const { Verifier } = await import(join(here, "..", "..", "integrations", "typescript", "dist", "index.js"));

const rounds = Number(process.argv[2] ?? 15);
const iterations = Number(process.argv[3] ?? 50000);

function makeFile(path, n, hashKey) {
  const keys = [];
  const entries = [];
  for (let i = 0; i < n; i++) {
    const id = randomBytes(8).toString("hex");
    const key = `mcp_${id}_${randomBytes(32).toString("hex")}`;
    keys.push(key);
    entries.push({
      id,
      status: "active",
      expires_at: "2999-01-01T00:00:00Z",
      permissions: ["tools:call", "info"],
      hash: createHmac("sha256", hashKey).update(key).digest("hex"),
    });
  }
  writeFileSync(
    path,
    JSON.stringify({
      format: "mcp-key-verifier", version: 1, algorithm: "hmac-sha256",
      hash_key: hashKey.toString("base64"), revision: 1, generated_at: "2026-06-01T00:00:00Z",
      keys: entries,
    }),
  );
  return keys;
}

function rate(fn) {
  const start = process.cpuUsage();
  fn(iterations);
  const used = process.cpuUsage(start);
  return iterations / ((used.user + used.system) / 1e6);
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const fmt = (x) => Math.round(x).toString().padStart(10);
let sink = 0;

console.log(`node ${process.version}, ${rounds} rounds x ${iterations} iterations; best round (median in brackets)`);
console.log(`${"keys".padEnd(6)} ${"call".padEnd(26)} ${"verify/s".padStart(22)} ${"floor/s".padStart(22)} ${"ratio".padStart(15)}`);
const dir = mkdtempSync(join(tmpdir(), "bench-node-"));
try {
  for (const n of [10, 10000]) {
    const hashKey = randomBytes(32);
    const path = join(dir, `verifier-${n}.json`);
    const keys = makeFile(path, n, hashKey);
    const v = Verifier.fromFile(path); // file-backed: the 250 ms reload check is included
    const key = keys[Math.floor(keys.length / 2)];
    if (!v.verify(key, { require: ["info"] }).valid) throw new Error("bench key does not verify");
    const floor = (k) => {
      for (let i = 0; i < k; i++) sink += createHmac("sha256", hashKey).update(key, "utf8").digest()[0];
    };
    const plain = (k) => {
      for (let i = 0; i < k; i++) sink += v.verify(key).valid ? 1 : 0;
    };
    const req = { require: ["tools:call"] };
    const required = (k) => {
      for (let i = 0; i < k; i++) sink += v.verify(key, req).valid ? 1 : 0;
    };
    for (const [label, fn] of [["verify(key)", plain], ["verify(key, {require})", required]]) {
      const ours = [];
      const base = [];
      for (let r = 0; r < rounds; r++) {
        ours.push(rate(fn));
        base.push(rate(floor));
      }
      const o = Math.max(...ours);
      const b = Math.max(...base);
      const om = median(ours);
      const bm = median(base);
      console.log(
        `${String(n).padEnd(6)} ${label.padEnd(26)} ${fmt(o)} [${fmt(om).slice(1)}] ${fmt(b)} [${fmt(bm).slice(1)}] ${(b / o).toFixed(2).padStart(5)}x [${(bm / om).toFixed(2).padStart(5)}x]`,
      );
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
if (sink === 0.5) console.log(sink); // keeps the loops from being optimised away
