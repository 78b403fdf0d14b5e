// apiKeyAuth and tokenVerifier with the SDK's real server (McpServer + StreamableHTTPServerTransport
// on Express, 127.0.0.1) and the SDK's real client (StreamableHTTPClientTransport).
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { requireBearerAuth } from "@modelcontextprotocol/sdk/server/auth/middleware/bearerAuth.js";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import express from "express";
import { z } from "zod";

import {
  TOKEN_PREFIX,
  Verifier,
  apiKeyAuth,
  protectedResourceMetadata,
  tokenVerifier,
} from "../dist/index.js";
import { VerifierWriter, listen, makeKey, mint, signingKeys, sleep } from "./util.mjs";

/** An MCP server with tools `add` and `whoami` (reports extra.authInfo), stateless. */
function mcpRoute(seen) {
  return async (req, res) => {
    const server = new McpServer({ name: "protected", version: "1.0.0" });
    server.registerTool(
      "add",
      { description: "Adds two numbers", inputSchema: { a: z.number(), b: z.number() } },
      async ({ a, b }) => ({ content: [{ type: "text", text: String(a + b) }] }),
    );
    server.registerTool("whoami", { description: "The caller's key id" }, async (extra) => {
      seen.push(extra.authInfo);
      return { content: [{ type: "text", text: extra.authInfo.clientId }] };
    });
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined });
    res.on("close", () => {
      transport.close();
      server.close();
    });
    await server.connect(transport);
    await transport.handleRequest(req, res, req.body);
  };
}

function notAllowed(req, res) {
  res.status(405).json({ jsonrpc: "2.0", id: null, error: { code: -32000, message: "Method not allowed." } });
}

async function connect(url, headers) {
  const client = new Client({ name: "test-client", version: "1.0.0" });
  const transport = new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers } });
  await client.connect(transport);
  return client;
}

const text = (result) => result.content[0].text;

/** The error a refused call throws: { status, body } (body: the JSON-RPC error, if any). */
async function refusal(promise) {
  try {
    await promise;
  } catch (e) {
    const match = /(\{.*\})/s.exec(e.message);
    return { status: e.code, body: match ? JSON.parse(match[1]) : null, message: e.message };
  }
  assert.fail("accepted");
}

describe("apiKeyAuth in front of the SDK server", () => {
  const w = new VerifierWriter();
  const keys = Object.fromEntries(["full", "narrow", "none", "victim", "limited"].map((k) => [k, makeKey()]));
  // The limited key's quota per hour: enough to connect and call a tool, spent soon after.
  const LIMIT = 6;
  const entries = (victimStatus) => [
    w.entry(...keys.full, { permissions: ["tools:call"], name: "full" }),
    w.entry(...keys.narrow, { permissions: ["tools:call:add"] }),
    w.entry(...keys.none, { permissions: [] }),
    w.entry(...keys.victim, { status: victimStatus, permissions: ["tools:call"] }),
    w.entry(...keys.limited, { permissions: ["tools:call"], rateLimit: [LIMIT, 3600] }),
  ];
  const seen = [];
  let server;
  let verifier;
  let url;

  before(async () => {
    w.write(entries("active"), 1);
    verifier = Verifier.fromFile(w.path);
    const app = express();
    // No body parser: with toolPermissions the middleware reads the body and leaves it on req.body.
    app.use("/mcp", apiKeyAuth({ verifier, toolPermissions: true }));
    app.post("/mcp", mcpRoute(seen));
    app.get("/mcp", notAllowed);
    app.delete("/mcp", notAllowed);
    server = await listen(app);
    url = `${server.url}/mcp`;
  });
  after(async () => {
    await server.close();
    w.cleanup();
  });

  test("a valid key calls the tool; the tool sees the key id, never the key", async () => {
    const client = await connect(url, { "X-API-Key": keys.full[1] });
    try {
      const tools = (await client.listTools()).tools.map((t) => t.name).sort();
      assert.deepEqual(tools, ["add", "whoami"]);
      assert.equal(text(await client.callTool({ name: "add", arguments: { a: 2, b: 3 } })), "5");
      assert.equal(text(await client.callTool({ name: "whoami", arguments: {} })), keys.full[0]);
    } finally {
      await client.close();
    }
    const auth = seen.at(-1);
    assert.equal(auth.clientId, keys.full[0]);
    assert.deepEqual(auth.scopes, ["tools:call"]);
    assert.equal(auth.token, TOKEN_PREFIX + keys.full[0]);
    assert.equal(auth.extra.name, "full");
    assert.ok(!JSON.stringify(auth).includes(keys.full[1]));
  });

  test("a missing key is refused with 401", async () => {
    const r = await refusal(connect(url, {}));
    assert.equal(r.status, 401);
    assert.equal(r.body.error.code, -32001);
    assert.deepEqual(r.body.error.data, { code: "MALFORMED" });
    assert.match(r.body.error.message, /no API key presented/);
  });

  test("a wrong key is refused with 401", async () => {
    const wrong = keys.full[1].slice(0, -4) + (keys.full[1].endsWith("0000") ? "1111" : "0000");
    const r = await refusal(connect(url, { Authorization: `Bearer ${wrong}` }));
    assert.equal(r.status, 401);
    assert.deepEqual(r.body.error.data, { code: "NOT_FOUND" });
    assert.ok(!r.message.includes(wrong));
  });

  test("insufficient permission is 403", async () => {
    const client = await connect(url, { Authorization: `Bearer ${keys.narrow[1]}` });
    try {
      await client.listTools();
      assert.equal(text(await client.callTool({ name: "add", arguments: { a: 1, b: 1 } })), "2");
      const r = await refusal(client.callTool({ name: "whoami", arguments: {} }));
      assert.equal(r.status, 403);
      assert.equal(r.body.error.code, -32003);
      assert.deepEqual(r.body.error.data, { code: "INSUFFICIENT_PERMISSIONS" });
      assert.match(r.body.error.message, /tools:call:whoami/);
    } finally {
      await client.close();
    }
    const none = await connect(url, { "X-API-Key": keys.none[1] });
    try {
      assert.equal((await refusal(none.callTool({ name: "add", arguments: { a: 1, b: 1 } }))).status, 403);
    } finally {
      await none.close();
    }
  });

  test("revoked after republish: the same client is refused within 2 s, nothing restarted", async () => {
    const client = await connect(url, { Authorization: `Bearer ${keys.victim[1]}` });
    try {
      assert.equal(text(await client.callTool({ name: "add", arguments: { a: 20, b: 22 } })), "42");
      w.write(entries("revoked"), 2);
      const start = Date.now();
      let r;
      for (;;) {
        try {
          await client.callTool({ name: "add", arguments: { a: 1, b: 2 } });
        } catch (e) {
          r = e;
          break;
        }
        assert.ok(Date.now() - start < 2000, "still accepted 2 s after the rewrite");
        await sleep(50);
      }
      assert.ok(Date.now() - start < 2000);
      assert.equal(r.code, 401);
      assert.match(r.message, /"code":"REVOKED"/);
    } finally {
      await client.close();
    }
    assert.equal(verifier.revision, 2);
    const other = await connect(url, { "X-API-Key": keys.full[1] });
    try {
      assert.equal(text(await other.callTool({ name: "add", arguments: { a: 1, b: 2 } })), "3");
    } finally {
      await other.close();
    }
  });

  test("a key over its rate limit: the SDK client gets the 429 and its JSON-RPC error", async () => {
    // Every HTTP request of the session counts (initialize, the initialized notification, the
    // calls); once the quota is spent the client's call throws, and another key is served.
    const client = await connect(url, { "X-API-Key": keys.limited[1] });
    let r;
    try {
      assert.equal(text(await client.callTool({ name: "add", arguments: { a: 1, b: 2 } })), "3");
      for (let i = 0; i < LIMIT && r === undefined; i++) {
        try {
          await client.callTool({ name: "add", arguments: { a: 1, b: 2 } });
        } catch (e) {
          r = await refusal(Promise.reject(e));
        }
      }
    } finally {
      await client.close();
    }
    assert.ok(r !== undefined, "never limited");
    assert.equal(r.status, 429);
    assert.equal(r.body.error.code, -32029);
    assert.equal(r.body.error.data.code, "RATE_LIMITED");
    const secs = r.body.error.data.retry_after;
    assert.ok(secs >= 1);
    assert.equal(r.body.error.message, `rate limit exceeded for this API key (${LIMIT}/hour); retry after ${secs} s`);
    assert.ok(!r.message.includes(keys.limited[1]));
    const other = await connect(url, { "X-API-Key": keys.full[1] });
    try {
      assert.equal(text(await other.callTool({ name: "add", arguments: { a: 1, b: 2 } })), "3");
    } finally {
      await other.close();
    }
  });
});

describe("tokenVerifier with the SDK's requireBearerAuth", () => {
  const w = new VerifierWriter();
  const keys = Object.fromEntries(["good", "forever", "readonly", "revoked"].map((k) => [k, makeKey()]));
  const seen = [];
  let server;
  let url;

  before(async () => {
    w.write(
      [
        w.entry(...keys.good, { permissions: ["mcp", "tools:call"], expiresAt: "2999-01-01T00:00:00Z" }),
        w.entry(...keys.forever, { permissions: ["mcp"] }),
        w.entry(...keys.readonly, { permissions: ["info"] }),
        w.entry(...keys.revoked, { status: "revoked", permissions: ["mcp"] }),
      ],
      1,
    );
    const app = express();
    app.use(express.json());
    app.use("/mcp", requireBearerAuth({ verifier: tokenVerifier(Verifier.fromFile(w.path)), requiredScopes: ["mcp"] }));
    app.post("/mcp", mcpRoute(seen));
    app.get("/mcp", notAllowed);
    app.delete("/mcp", notAllowed);
    server = await listen(app);
    url = `${server.url}/mcp`;
  });
  after(async () => {
    await server.close();
    w.cleanup();
  });

  test("a valid key works through the SDK's bearer auth", async () => {
    for (const label of ["good", "forever"]) {
      const client = await connect(url, { Authorization: `Bearer ${keys[label][1]}` });
      try {
        assert.equal(text(await client.callTool({ name: "whoami", arguments: {} })), keys[label][0]);
      } finally {
        await client.close();
      }
    }
    const [good, forever] = seen.slice(-2);
    assert.equal(good.expiresAt, Date.UTC(2999, 0, 1) / 1000);
    assert.deepEqual(good.scopes, ["mcp", "tools:call"]);
    assert.equal(forever.expiresAt, 253402300799);
    assert.ok(!JSON.stringify(seen).includes(keys.good[1]));
  });

  for (const [label, status] of [["wrong", 401], ["revoked", 401], ["readonly", 403], ["none", 401]]) {
    test(`${label} is refused with ${status}`, async () => {
      let headers = {};
      if (label === "wrong") headers = { Authorization: `Bearer ${keys.good[1].slice(0, -4)}abcd` };
      else if (label !== "none") headers = { Authorization: `Bearer ${keys[label][1]}` };
      const r = await refusal(connect(url, headers));
      assert.equal(r.status, status);
      if (label === "revoked") assert.match(r.message, /the API key was revoked/);
      for (const k of Object.values(keys)) assert.ok(!r.message.includes(k[1]));
    });
  }
});

describe("access tokens with the SDK server and client", () => {
  const RESOURCE = "https://mcp.example.com/mcp";
  const ISS = "https://id.example.com/realms/mcp";
  const w = new VerifierWriter();
  const key = makeKey();
  const seen = [];
  let signing;
  let servers = [];
  let viaMiddleware;
  let viaSdk;
  let base;
  const token = (scope, claims = {}) => mint(signing.ES256, { iss: ISS, aud: RESOURCE, sub: "alice", scope, ...claims });

  before(async () => {
    signing = await signingKeys();
    w.write([w.entry(...key, { permissions: ["tools:call"] })], 1);
    const verifier = Verifier.fromFile(w.path);
    const oauth = { resource: RESOURCE, issuers: [ISS], jwks: { keys: [signing.ES256.jwk] }, scopesSupported: ["tools:call"] };

    const app = express();
    app.use(protectedResourceMetadata(oauth));
    app.use("/mcp", apiKeyAuth({ verifier, toolPermissions: true, onRefusal: () => {}, ...oauth }));
    app.post("/mcp", mcpRoute(seen));
    const one = await listen(app);
    base = one.url;
    viaMiddleware = `${one.url}/mcp`;

    // One OAuthTokenVerifier for keys and tokens behind the SDK's own bearer auth.
    const sdkApp = express();
    sdkApp.use(express.json());
    sdkApp.use(
      "/mcp",
      requireBearerAuth({
        verifier: tokenVerifier(verifier, oauth),
        requiredScopes: ["tools:call"],
        expectedResource: new URL(RESOURCE),
      }),
    );
    sdkApp.post("/mcp", mcpRoute(seen));
    const two = await listen(sdkApp);
    viaSdk = `${two.url}/mcp`;
    servers = [one, two];
  });
  after(async () => {
    for (const s of servers) await s.close();
    w.cleanup();
  });

  test("a token calls the tool its scope names; another tool is 403 naming only that tool", async () => {
    const t = await token("tools:call:whoami");
    const client = await connect(viaMiddleware, { Authorization: `Bearer ${t}` });
    try {
      assert.equal(text(await client.callTool({ name: "whoami", arguments: {} })), "alice");
      const r = await refusal(client.callTool({ name: "add", arguments: { a: 1, b: 2 } }));
      assert.equal(r.status, 403);
      assert.equal(r.body.error.code, -32003);
      assert.equal(r.body.error.message, "the access token lacks the scope: tools:call:add");
      assert.ok(!r.message.includes(t));
    } finally {
      await client.close();
    }
    const auth = seen.at(-1);
    assert.deepEqual(auth.scopes, ["tools:call:whoami"]);
    assert.equal(auth.extra.issuer, ISS);
    assert.ok(!JSON.stringify(auth).includes(t));
    const meta = await (await fetch(`${base}/.well-known/oauth-protected-resource/mcp`)).json();
    assert.deepEqual(meta.authorization_servers, [ISS]);
  });

  test("requireBearerAuth with tokenVerifier: keys and tokens through one verifier", async () => {
    for (const [bearer, who] of [[await token("tools:call"), "alice"], [key[1], key[0]]]) {
      const client = await connect(viaSdk, { Authorization: `Bearer ${bearer}` });
      try {
        assert.equal(text(await client.callTool({ name: "whoami", arguments: {} })), who);
      } finally {
        await client.close();
      }
      assert.equal(seen.at(-1).resource.href, RESOURCE);
    }
    const expired = await token("tools:call", { exp: Math.floor(Date.now() / 1000) - 120 });
    const r = await refusal(connect(viaSdk, { Authorization: `Bearer ${expired}` }));
    assert.equal(r.status, 401);
    assert.match(r.message, /the access token has expired/);
    assert.ok(!r.message.includes(expired));
    assert.equal((await refusal(connect(viaSdk, { Authorization: `Bearer ${await token("tools:call:add")}` }))).status, 403);
  });
});
