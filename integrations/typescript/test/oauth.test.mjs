// OAuth access tokens beside keys (docs/oauth.md): apiKeyAuth on node:http with an offline JWK
// Set, and AccessTokenVerifier against a local authorization server (discovery, rotation,
// bounds). Tokens are minted here with jose from keys generated here.
import assert from "node:assert/strict";
import { createHash, createHmac, sign } from "node:crypto";
import { renameSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";

import { ACCESS_TOKEN_PREFIX, AccessTokenVerifier, Verifier, apiKeyAuth, discoveryUrls, isJwtShape } from "../dist/index.js";
import { VerifierWriter, b64json, makeKey, mint, signingKeys, sleep } from "./util.mjs";

const RESOURCE = "https://mcp.example.com/mcp";
const ISS = "https://id.example.com";
const META = "https://mcp.example.com/.well-known/oauth-protected-resource/mcp";
const rpc = (method, params = {}) => JSON.stringify({ jsonrpc: "2.0", id: 1, method, params });
const call = (name) => rpc("tools/call", { name, arguments: {} });

describe("apiKeyAuth with access tokens (offline JWK Set)", () => {
  const w = new VerifierWriter();
  const key = makeKey();
  const reached = [];
  let keys;
  let base;
  let server;
  const token = (alg, claims = {}, header = {}) =>
    mint(keys[alg], { iss: ISS, aud: RESOURCE, scope: "tools:call", ...claims }, header);

  before(async () => {
    keys = await signingKeys();
    w.write([w.entry(...key, { permissions: ["tools:call:add"] })], 1);
    const oauth = {
      verifier: Verifier.fromFile(w.path),
      resource: RESOURCE,
      issuers: [ISS],
      jwks: { keys: Object.values(keys).map((k) => k.jwk) },
      scopesSupported: ["tools:call", "tools:call:add"],
      onRefusal: () => {},
    };
    const tools = apiKeyAuth({ ...oauth, toolPermissions: true });
    const admin = apiKeyAuth({ ...oauth, require: ["admin"] });
    server = createServer((req, res) =>
      (req.url === "/admin" ? admin : tools)(req, res, (err) => {
        if (err) {
          res.statusCode = 500;
          res.end();
          return;
        }
        reached.push(req.auth);
        res.end("ok");
      }),
    );
    await new Promise((r) => server.listen(0, "127.0.0.1", r));
    base = `http://127.0.0.1:${server.address().port}`;
  });
  after(async () => {
    await new Promise((r) => server.close(r));
    w.cleanup();
  });

  const post = (headers, body = call("add"), path = "/mcp") => fetch(base + path, { method: "POST", headers, body });
  const bearer = (t, body) => post({ Authorization: `Bearer ${t}` }, body);

  /** A 401 for a token: the header docs/oauth.md gives, the JSON-RPC body, and no token echoed. */
  async function assertRefused(r, t, code, description) {
    const body = await r.text();
    assert.equal(r.status, 401, body);
    const www = r.headers.get("www-authenticate");
    assert.equal(www, `Bearer error="invalid_token", error_description="${description}", resource_metadata="${META}"`);
    assert.deepEqual(JSON.parse(body), {
      jsonrpc: "2.0",
      id: null,
      error: { code: -32001, message: description, data: { code } },
    });
    for (const part of t.split(".").filter((s) => s.length > 8)) {
      assert.ok(!body.includes(part) && !www.includes(part), "token echoed");
    }
  }

  for (const alg of ["RS256", "PS256", "ES256", "EdDSA"]) {
    test(`a valid ${alg} token is admitted; the app sees its subject and scopes, never the token`, async () => {
      const t = await token(alg, { sub: `user-${alg}`, client_id: "claude" });
      const r = await bearer(t);
      assert.equal(r.status, 200, await r.text());
      const auth = reached.at(-1);
      assert.equal(auth.clientId, `user-${alg}`);
      assert.deepEqual(auth.scopes, ["tools:call"]);
      assert.equal(auth.token, ACCESS_TOKEN_PREFIX + createHash("sha256").update(t).digest("hex"));
      assert.equal(auth.resource.href, RESOURCE);
      assert.equal(auth.extra.subject, `user-${alg}`);
      assert.equal(auth.extra.issuer, ISS);
      assert.equal(auth.extra.clientId, "claude");
      assert.equal(auth.expiresAt, auth.extra.claims.exp);
      assert.ok(!JSON.stringify(auth).includes(t.split(".")[2]));
      // Limits belong to vault keys: a token's answer has none.
      assert.equal(r.headers.get("ratelimit"), null);
    });
  }

  test("expired (beyond the 60 s skew) is EXPIRED; within the skew it is admitted", async () => {
    const now = Math.floor(Date.now() / 1000);
    const t = await token("ES256", { exp: now - 61 });
    await assertRefused(await bearer(t), t, "EXPIRED", "the access token has expired");
    assert.equal((await bearer(await token("ES256", { exp: now - 30 }))).status, 200);
    const none = await token("ES256", { exp: undefined });
    await assertRefused(await bearer(none), none, "INVALID_TOKEN", "the token has no exp");
  });

  test("nbf in the future (beyond the skew) is refused", async () => {
    const now = Math.floor(Date.now() / 1000);
    const t = await token("RS256", { nbf: now + 120 });
    await assertRefused(await bearer(t), t, "INVALID_TOKEN", "the token is not valid yet");
    assert.equal((await bearer(await token("RS256", { nbf: now + 30 }))).status, 200);
  });

  test("aud: another resource is refused; an array holding the resource is admitted", async () => {
    for (const aud of ["https://other.example.com/mcp", `${RESOURCE}/`, ["https://a.example.com"], undefined]) {
      const t = await token("EdDSA", { aud });
      await assertRefused(await bearer(t), t, "INVALID_TOKEN", "the token is not for this resource");
    }
    assert.equal((await bearer(await token("EdDSA", { aud: ["https://a.example.com", RESOURCE] }))).status, 200);
  });

  test("another issuer is refused, even signed by a known key", async () => {
    for (const iss of ["https://evil.example.com", `${ISS}/`, undefined]) {
      const t = await token("ES256", { iss });
      await assertRefused(await bearer(t), t, "INVALID_TOKEN", "the token's issuer is not accepted here");
    }
  });

  test("alg none is refused", async () => {
    const t = `${b64json({ alg: "none", typ: "JWT" })}.${b64json({ iss: ISS, aud: RESOURCE, exp: 4e9, scope: "tools:call" })}.`;
    assert.ok(isJwtShape(t));
    await assertRefused(await bearer(t), t, "INVALID_TOKEN", "alg none is refused");
  });

  test("HS256 with the issuer's RSA public key (PEM) as the HMAC secret is refused", async () => {
    const pem = keys.RS256.publicKey.export({ type: "spki", format: "pem" });
    const signingInput = `${b64json({ alg: "HS256", kid: keys.RS256.kid })}.${b64json({ iss: ISS, aud: RESOURCE, exp: 4e9, scope: "tools:call" })}`;
    const t = `${signingInput}.${createHmac("sha256", pem).update(signingInput).digest("base64url")}`;
    await assertRefused(await bearer(t), t, "INVALID_TOKEN", "HMAC algorithms are refused");
  });

  test("a crit header is refused, even correctly signed", async () => {
    // jose will not sign an unknown crit: sign the input with node:crypto (ES256 is P1363 r||s).
    const input = `${b64json({ alg: "ES256", kid: keys.ES256.kid, crit: ["x"], x: 1 })}.${b64json({ iss: ISS, aud: RESOURCE, exp: 4e9 })}`;
    const sig = sign("sha256", Buffer.from(input), { key: keys.ES256.privateKey, dsaEncoding: "ieee-p1363" });
    const t = `${input}.${sig.toString("base64url")}`;
    await assertRefused(await bearer(t), t, "INVALID_TOKEN", "a crit header is refused");
  });

  test("a forged signature (payload changed after signing) is refused", async () => {
    const [h, , s] = (await token("RS256", { scope: "tools:call:add" })).split(".");
    const t = `${h}.${b64json({ iss: ISS, aud: RESOURCE, sub: "user-1", exp: 4e9, scope: "tools:call" })}.${s}`;
    await assertRefused(await bearer(t), t, "INVALID_TOKEN", "the token's signature does not verify");
  });

  test("an unknown kid is refused (no refetch for a JWK Set given)", async () => {
    const t = await token("ES256", {}, { kid: "nope" });
    await assertRefused(await bearer(t), t, "INVALID_TOKEN", "the token's kid is not a key of its issuer");
  });

  test("the key must fit the alg: JWK alg mismatch and kty mismatch are refused", async () => {
    // PS256 with the RSA key whose JWK says RS256.
    const ps = await mint({ ...keys.RS256, alg: "PS256" }, { iss: ISS, aud: RESOURCE, scope: "tools:call" });
    await assertRefused(await bearer(ps), ps, "INVALID_TOKEN", "the token's alg is not its key's alg");
    // ES256 naming the RSA key.
    const es = await token("ES256", {}, { kid: keys.RS256.kid });
    await assertRefused(await bearer(es), es, "INVALID_TOKEN", "the issuer's key does not fit the token's alg");
  });

  test("a missing scope is 403 naming only what this request needs", async () => {
    const t = await token("ES256", { scope: "tools:call:add other" });
    assert.equal((await bearer(t, call("add"))).status, 200);
    for (const body of [call("rm"), `[${call("add")},${call("rm")}]`]) {
      const r = await bearer(t, body);
      assert.equal(r.status, 403);
      assert.equal(
        r.headers.get("www-authenticate"),
        `Bearer error="insufficient_scope", scope="tools:call:rm", resource_metadata="${META}"`,
      );
      const b = await r.json();
      assert.equal(b.error.code, -32003);
      assert.equal(b.error.message, "the access token lacks the scope: tools:call:rm");
      assert.deepEqual(b.error.data, { code: "INSUFFICIENT_PERMISSIONS" });
    }
    // An array scope claim is read too.
    assert.equal((await bearer(await token("ES256", { scope: ["tools:call:add"] }), call("add"))).status, 200);
  });

  test("`require` holds for tokens: 403 naming it, and the no-credentials challenge asks for it", async () => {
    const t = await token("EdDSA", { scope: "tools:call" });
    const r = await post({ Authorization: `Bearer ${t}` }, "", "/admin");
    assert.equal(r.status, 403);
    assert.equal(
      r.headers.get("www-authenticate"),
      `Bearer error="insufficient_scope", scope="admin", resource_metadata="${META}"`,
    );
    assert.equal((await post({ Authorization: `Bearer ${await token("EdDSA", { scope: "admin" })}` }, "", "/admin")).status, 200);
    const none = await post({}, "", "/admin");
    assert.equal(none.status, 401);
    assert.equal(none.headers.get("www-authenticate"), `Bearer resource_metadata="${META}", scope="admin"`);
  });

  test("a key still works beside tokens; its refusals gain resource_metadata", async () => {
    assert.equal((await post({ "X-API-Key": key[1] })).status, 200);
    assert.equal(reached.at(-1).clientId, key[0]);
    assert.equal(reached.at(-1).extra.subject, key[0]);
    assert.equal((await post({ Authorization: `Bearer ${key[1]}` })).status, 200);
    const r = await post({ "X-API-Key": key[1] }, call("rm"));
    assert.equal(r.status, 403);
    assert.equal(
      r.headers.get("www-authenticate"),
      `Bearer error="insufficient_scope", scope="tools:call:rm", resource_metadata="${META}"`,
    );
    const bad = await post({ "X-API-Key": key[1].slice(0, -4) + "0000" });
    assert.equal(bad.status, 401);
    assert.match(bad.headers.get("www-authenticate"), new RegExp(`^Bearer error="invalid_token", error_description="[^"]+", resource_metadata="${META}"$`));
    // X-API-Key carries keys only: a token there is a malformed key.
    const viaX = await post({ "X-API-Key": await token("ES256") });
    assert.equal(viaX.status, 401);
    assert.equal((await viaX.json()).error.data.code, "MALFORMED");
  });

  test("no credentials: 401 with resource_metadata, and scope only when the request needs one", async () => {
    const r = await post({}, rpc("initialize"));
    assert.equal(r.status, 401);
    assert.equal(r.headers.get("www-authenticate"), `Bearer resource_metadata="${META}"`);
    assert.deepEqual((await r.json()).error.data, { code: "MALFORMED" });
    const add = await post({}, call("add"));
    assert.equal(add.headers.get("www-authenticate"), `Bearer resource_metadata="${META}", scope="tools:call:add"`);
    const rm = await post({}, call("rm"));
    assert.equal(rm.headers.get("www-authenticate"), `Bearer resource_metadata="${META}", scope="tools:call:rm"`);
  });

  test("the metadata is served on both paths without credentials", async () => {
    for (const path of ["/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/mcp"]) {
      const r = await fetch(base + path);
      assert.equal(r.status, 200, path);
      assert.equal(r.headers.get("content-type"), "application/json");
      assert.deepEqual(await r.json(), {
        resource: RESOURCE,
        authorization_servers: [ISS],
        scopes_supported: ["tools:call", "tools:call:add"],
        bearer_methods_supported: ["header"],
      });
    }
    assert.equal((await fetch(`${base}/.well-known/oauth-protected-resource/other`)).status, 401);
  });
});

describe("AccessTokenVerifier", () => {
  let keys;
  let rotated;
  let idp;
  let idpServer;
  const log = [];
  let realmKeys;
  const errors = [];
  let offset = 0;
  const now = () => Date.now() + offset;

  before(async () => {
    keys = await signingKeys();
    rotated = (await signingKeys("rotated")).ES256;
    realmKeys = [keys.RS256.jwk, keys.ES256.jwk];
    idpServer = createServer((req, res) => {
      log.push(req.url);
      const json = (value, status = 200) => {
        res.statusCode = status;
        res.setHeader("Content-Type", "application/json");
        res.end(typeof value === "string" ? value : JSON.stringify(value));
      };
      switch (req.url) {
        case "/.well-known/oauth-authorization-server/realms/mcp":
          return json({ issuer: `${idp}/realms/mcp`, jwks_uri: `${idp}/realms/mcp/jwks` });
        case "/realms/mcp/jwks":
          return json({ keys: realmKeys });
        case "/oidc/.well-known/openid-configuration":
          return json({ issuer: `${idp}/oidc`, jwks_uri: `${idp}/oidc/jwks` });
        case "/oidc/jwks":
          return json({ keys: [keys.EdDSA.jwk] });
        case "/.well-known/oauth-authorization-server/big":
          return json({ issuer: `${idp}/big`, jwks_uri: `${idp}/big/jwks` });
        case "/big/jwks":
          return json(`{"keys":[],"pad":"${"x".repeat(1024 * 1024)}"}`);
        case "/.well-known/oauth-authorization-server/liar":
          return json({ issuer: "https://elsewhere.example.com", jwks_uri: `${idp}/realms/mcp/jwks` });
        case "/.well-known/oauth-authorization-server/slow":
          return; // never answers
        default:
          return json({ error: "not found" }, 404);
      }
    });
    await new Promise((r) => idpServer.listen(0, "127.0.0.1", r));
    idp = `http://127.0.0.1:${idpServer.address().port}`;
  });
  after(async () => {
    idpServer.closeAllConnections?.();
    await new Promise((r) => idpServer.close(r));
  });

  const verifier = (issuers, extra = {}) =>
    new AccessTokenVerifier({ resource: RESOURCE, issuers, now, onJwksError: (e) => errors.push(e), ...extra });
  const claims = (iss, more = {}) => ({ iss, aud: RESOURCE, scope: "tools:call", ...more });
  const fetches = (path) => log.filter((u) => u === path).length;

  test("discovery with path insertion (RFC 8414); rotation: a new kid only after the 30 s refetch bound", async () => {
    const iss = `${idp}/realms/mcp`;
    const v = verifier([iss]);
    const first = await v.verify(await mint(keys.RS256, claims(iss)));
    assert.equal(first.code, "VALID", first.reason);
    assert.equal(fetches("/.well-known/oauth-authorization-server/realms/mcp"), 1);
    assert.equal(fetches("/realms/mcp/jwks"), 1);

    realmKeys = [...realmKeys, rotated.jwk]; // the issuer rotates
    offset += 5_000;
    const early = await v.verify(await mint(rotated, claims(iss, { n: 1 })));
    assert.equal(early.reason, "the token's kid is not a key of its issuer");
    assert.equal(fetches("/realms/mcp/jwks"), 1, "refetched within 30 s");

    offset += 26_000; // 31 s after the first fetch
    const late = await v.verify(await mint(rotated, claims(iss, { n: 2 })));
    assert.equal(late.code, "VALID", late.reason);
    assert.equal(fetches("/realms/mcp/jwks"), 2);
    assert.equal(fetches("/.well-known/oauth-authorization-server/realms/mcp"), 1, "metadata fetched once");

    const unknown = await mint(rotated, claims(iss), { kid: "gone" });
    assert.equal((await v.verify(unknown)).code, "INVALID_TOKEN");
    assert.equal(fetches("/realms/mcp/jwks"), 2, "an unknown kid right after a refetch fetches nothing");
    offset += 31_000;
    assert.equal((await v.verify(unknown)).code, "INVALID_TOKEN");
    assert.equal(fetches("/realms/mcp/jwks"), 3);
    // Many requests with unknown kids inside the window: still one fetch.
    await Promise.all([1, 2, 3, 4, 5].map(async (i) => v.verify(await mint(rotated, claims(iss), { kid: `x${i}` }))));
    assert.equal(fetches("/realms/mcp/jwks"), 3);
  });

  test("discovery falls back to OpenID's well-known after RFC 8414's", async () => {
    const iss = `${idp}/oidc`;
    assert.deepEqual(discoveryUrls(iss), [
      `${idp}/.well-known/oauth-authorization-server/oidc`,
      `${idp}/oidc/.well-known/openid-configuration`,
    ]);
    const before = log.length;
    const r = await verifier([iss]).verify(await mint(keys.EdDSA, claims(iss)));
    assert.equal(r.code, "VALID", r.reason);
    assert.deepEqual(log.slice(before), [
      "/.well-known/oauth-authorization-server/oidc",
      "/oidc/.well-known/openid-configuration",
      "/oidc/jwks",
    ]);
  });

  test("a JWK Set over 1 MiB, a metadata issuer mismatch and a timeout give no keys", async () => {
    errors.length = 0;
    for (const [name, pattern] of [
      ["big", /larger than 1048576 bytes/],
      ["liar", /its issuer is not/],
      ["slow", /no usable metadata/],
    ]) {
      const iss = `${idp}/${name}`;
      const v = verifier([iss], { fetchTimeoutMs: 300 });
      const r = await v.verify(await mint(keys.ES256, claims(iss)));
      assert.equal(r.reason, "the issuer's keys are unavailable", name);
      assert.match(errors.at(-1).message, pattern);
    }
  });

  test("a verified token is cached by its SHA-256 until exp", async () => {
    const v = verifier([ISS], { jwks: { keys: [keys.ES256.jwk] } });
    const t = await mint(keys.ES256, claims(ISS));
    const first = await v.verify(t);
    assert.equal(first.code, "VALID");
    assert.equal(v.cached, 1);
    assert.equal(await v.verify(t), first, "the second answer is the cached verdict");
    assert.equal(first.digest, createHash("sha256").update(t).digest("hex"));
    const savedOffset = offset;
    offset += 3600_000 + 61_000;
    assert.equal((await v.verify(t)).code, "EXPIRED");
    assert.equal(v.cached, 0);
    offset = savedOffset;
    // Refusals are not cached.
    await v.verify(await mint(keys.ES256, claims("https://evil.example.com")));
    assert.equal(v.cached, 0);
  });

  test("scopeClaim reads another claim (an array, as Entra's scp)", async () => {
    const v = verifier([ISS], { jwks: { keys: [keys.EdDSA.jwk] }, scopeClaim: "scp" });
    const r = await v.verify(await mint(keys.EdDSA, claims(ISS, { scope: "ignored", scp: ["tools:call", "prompts:get"] })));
    assert.deepEqual(r.scopes, ["tools:call", "prompts:get"]);
  });

  test("a JWK Set file is re-read when it changes", async () => {
    const w = new VerifierWriter();
    const path = join(w.dir, "jwks.json");
    const write = (ks) => {
      writeFileSync(`${path}.tmp`, JSON.stringify({ keys: ks }));
      renameSync(`${path}.tmp`, path);
    };
    try {
      write([keys.ES256.jwk]);
      const v = new AccessTokenVerifier({ resource: RESOURCE, issuers: [ISS], jwks: path });
      assert.equal((await v.verify(await mint(keys.ES256, claims(ISS)))).code, "VALID");
      assert.equal((await v.verify(await mint(rotated, claims(ISS)))).code, "INVALID_TOKEN");
      write([keys.ES256.jwk, rotated.jwk]);
      await sleep(300);
      assert.equal((await v.verify(await mint(rotated, claims(ISS, { n: 3 })))).code, "VALID");
    } finally {
      w.cleanup();
    }
  });

  test("configuration: keys are fetched over https only (http to loopback aside)", () => {
    assert.throws(() => verifier(["http://id.example.com"]), TypeError);
    assert.throws(() => new AccessTokenVerifier({ resource: "https://x/#f", issuers: [ISS], jwks: { keys: [] } }), TypeError);
    assert.throws(() => apiKeyAuth({ verifier: Verifier.fromJSON(emptyVerifier(), "x"), issuers: [ISS] }), /resource/);
    // An offline issuer is only a name: http is fine there.
    new AccessTokenVerifier({ resource: RESOURCE, issuers: ["http://keycloak:8080/realms/x"], jwks: { keys: [] } });
  });
});

function emptyVerifier() {
  const w = new VerifierWriter();
  const doc = w.document([], 1).toString();
  w.cleanup();
  return doc;
}
