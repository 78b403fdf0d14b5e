// Runs examples/server.mjs (the README's example) as its own process and talks to it.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createServer, connect as tcpConnect } from "node:net";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

import { VerifierWriter, makeKey, sleep } from "./util.mjs";

const example = join(dirname(fileURLToPath(import.meta.url)), "..", "examples", "server.mjs");

function freePort() {
  return new Promise((ok) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });
}

function listening(port) {
  return new Promise((ok) => {
    const c = tcpConnect(port, "127.0.0.1");
    c.on("connect", () => (c.destroy(), ok(true)));
    c.on("error", () => ok(false));
  });
}

async function connect(url, headers) {
  const client = new Client({ name: "example-test", version: "1.0.0" });
  await client.connect(new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers } }));
  return client;
}

test("the example server protects its tool", async (t) => {
  const w = new VerifierWriter();
  const [callerId, caller] = makeKey();
  const [readerId, reader] = makeKey();
  // The README's first command makes a key with the default permissions: the example must
  // let it call the tool. A revoked key is refused.
  w.write([w.entry(callerId, caller, { permissions: ["generate", "info", "health"] }), w.entry(readerId, reader, { status: "revoked" })], 1);
  const port = await freePort();
  const child = spawn(process.execPath, [example], {
    env: { ...process.env, MCP_VERIFIER: w.path, PORT: String(port) },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout.on("data", (d) => (output += d));
  child.stderr.on("data", (d) => (output += d));
  t.after(() => {
    child.kill();
    w.cleanup();
  });
  const end = Date.now() + 30000;
  while (!(await listening(port))) {
    assert.equal(child.exitCode, null, `the example exited: ${output}`);
    assert.ok(Date.now() < end, "the example did not listen");
    await sleep(100);
  }
  const url = `http://127.0.0.1:${port}/mcp`;

  const client = await connect(url, { Authorization: `Bearer ${caller}` });
  const result = await client.callTool({ name: "add", arguments: { a: 40, b: 2 } });
  assert.equal(result.content[0].text, "42");
  await client.close();

  await assert.rejects(connect(url, { "X-API-Key": reader }), (e) => e.code === 401);

  await assert.rejects(connect(url, {}), (e) => e.code === 401 && /no API key presented/.test(e.message));
  assert.ok(!output.includes(caller) && !output.includes(reader));
});

test("the README quotes the example verbatim", async () => {
  const { readFileSync } = await import("node:fs");
  const readme = readFileSync(join(dirname(example), "..", "README.md"), "utf8");
  assert.ok(readme.includes(readFileSync(example, "utf8")), "README.md and examples/server.mjs differ");
});
