// Shared helpers: where the vectors are, fresh keys, verifier files written by rename, servers.
import { createHmac, randomBytes } from "node:crypto";
import { mkdtempSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
export const VECTORS =
  process.env.MCP_VECTORS_DIR ?? resolve(here, "..", "..", "..", "tests", "vectors", "verifier");

/** [id, key] of a fresh random modern key. */
export function makeKey() {
  const id = randomBytes(8).toString("hex");
  return [id, `mcp_${id}_${randomBytes(32).toString("hex")}`];
}

/** Writes verifier files the way mcp-key-manager does: temp file + rename. */
export class VerifierWriter {
  constructor() {
    this.dir = mkdtempSync(join(tmpdir(), "mcp-key-verifier-"));
    this.path = join(this.dir, "verifier.json");
    this.hashKey = randomBytes(32);
  }
  /** An entry; `rateLimit` as [requests, windowSeconds]. */
  entry(id, key, { status = "active", permissions = [], expiresAt = null, name, rateLimit } = {}) {
    const e = {
      id,
      hash: createHmac("sha256", this.hashKey).update(key).digest("hex"),
      status,
      expires_at: expiresAt,
      permissions,
    };
    if (rateLimit !== undefined) e.rate_limit = { requests: rateLimit[0], window_seconds: rateLimit[1] };
    if (name !== undefined) e.name = name;
    return e;
  }
  /** The file's bytes as the vault writes them (indented, `{` alone on the first line, so that
   * it can be signed); `extra` members (`save_digest`) follow `revision`. */
  document(entries, revision, extra = {}) {
    const doc = {
      format: "mcp-key-verifier",
      version: 1,
      algorithm: "hmac-sha256",
      hash_key: this.hashKey.toString("base64"),
      generated_at: "2026-06-01T00:00:00Z",
      revision,
      ...extra,
      keys: entries,
    };
    return Buffer.from(`${JSON.stringify(doc, null, 2)}\n`);
  }
  write(entries, revision, raw) {
    const tmp = `${this.path}.tmp`;
    writeFileSync(
      tmp,
      raw ??
        JSON.stringify({
          format: "mcp-key-verifier",
          version: 1,
          algorithm: "hmac-sha256",
          hash_key: this.hashKey.toString("base64"),
          generated_at: "2026-06-01T00:00:00Z",
          revision,
          keys: entries,
        }),
    );
    renameSync(tmp, this.path);
  }
  cleanup() {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Listens on 127.0.0.1 with a port chosen by the OS; resolves to { url, close }. */
export function listen(app) {
  return new Promise((ok, fail) => {
    const server = app.listen(0, "127.0.0.1", (err) => {
      if (err) return fail(err);
      const { port } = server.address();
      ok({
        url: `http://127.0.0.1:${port}`,
        close: () =>
          new Promise((done) => {
            server.closeAllConnections?.();
            server.close(() => done());
          }),
      });
    });
    server.on("error", fail);
  });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Signing keys for access tokens, one per algorithm docs/oauth.md accepts: { alg, kid,
 * privateKey, jwk } (the JWK public, with `kid`, `alg` and `use`). */
export async function signingKeys(prefix = "k") {
  const { exportJWK, generateKeyPair } = await import("jose");
  const out = {};
  for (const [alg, crv] of [["RS256"], ["PS256"], ["ES256"], ["EdDSA", "Ed25519"]]) {
    const { privateKey, publicKey } = await generateKeyPair(alg, crv ? { crv } : {});
    const kid = `${prefix}-${alg.toLowerCase()}`;
    out[alg] = { alg, kid, privateKey, publicKey, jwk: { ...(await exportJWK(publicKey)), kid, alg, use: "sig" } };
  }
  return out;
}

/** A signed access token: `claims` over defaults (`sub`, `exp` in an hour); `header` adds to
 * `{ alg, kid }`. */
export async function mint(key, claims, header = {}) {
  const { SignJWT } = await import("jose");
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ sub: "user-1", iat: now, exp: now + 3600, ...claims })
    .setProtectedHeader({ alg: key.alg, kid: key.kid, ...header })
    .sign(key.privateKey);
}

/** base64url of a JSON value. */
export const b64json = (value) => Buffer.from(JSON.stringify(value)).toString("base64url");
