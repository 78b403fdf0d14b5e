/**
 * OAuth 2.1 access tokens beside keys (docs/oauth.md): the checks a JWT access token passes, in
 * the documented order, the issuers' keys (a JWK Set given, read from a file, or discovered and
 * fetched), the cache of verified tokens, and the protected-resource metadata (RFC 9728).
 *
 * Invariants:
 * - A presented token is never stored, logged, thrown or returned: the cache holds its SHA-256,
 *   and every reason is a fixed sentence.
 * - Keys come only from the configured issuers' JWK Sets, never from the token (`jku`, `jwk`,
 *   `x5u` are ignored); `none`, HMAC and `crit` are refused before any key is looked up, and the
 *   signature is checked with exactly the header's algorithm against a key whose type fits it.
 * - An issuer's JWK Set is fetched at most once every 30 s (the first load, a retry after a
 *   failure, or a refetch for an unknown `kid`), each response bounded to 1 MiB and in time.
 *
 * The signature itself is jose's (`compactVerify`, node:crypto underneath).
 */

import { createHash } from "node:crypto";
import { closeSync, fstatSync, openSync, readSync } from "node:fs";
import type { IncomingMessage, ServerResponse } from "node:http";
import { compactVerify, importJWK, type JWK, type KeyLike } from "jose";

/** The algorithms a token may be signed with (docs/oauth.md, "What a token must be"). */
export const TOKEN_ALGORITHMS: readonly string[] = Object.freeze(["RS256", "PS256", "ES256", "EdDSA"]);
/** Allowed clock skew for `exp` and `nbf`, in seconds. */
export const CLOCK_SKEW_SECONDS = 60;
/** Shortest time between two fetches of one issuer's JWK Set, in milliseconds. */
export const JWKS_REFETCH_MS = 30_000;
/** Age after which a fetched JWK Set is fetched again on use (keys removed at the issuer stop
 * being trusted), in milliseconds. */
export const JWKS_MAX_AGE_MS = 10 * 60_000;
/** Largest metadata document or JWK Set read, from the network or a file. */
export const MAX_JWKS_BYTES = 1024 * 1024;
/** Most verified tokens kept. */
export const TOKEN_CACHE_SIZE = 10_000;
/** Prefix of `AuthInfo.token` for an access token: `jwt-sha256:<hex>`, never the token. */
export const ACCESS_TOKEN_PREFIX = "jwt-sha256:";

const FETCH_TIMEOUT_MS = 5_000;
const FILE_CHECK_MS = 250;
/** Compact JWS: header and payload non-empty; an empty signature is still the shape (`alg`
 * `none`), refused by the header check with its own reason. */
const JWS_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;
const METADATA_PATH = "/.well-known/oauth-protected-resource";

export type TokenCode = "VALID" | "INVALID_TOKEN" | "EXPIRED";

/** The outcome of one token verification. Frozen; the token fields are null unless VALID. */
export interface TokenVerdict {
  readonly valid: boolean;
  readonly code: TokenCode;
  /** Why it was refused (a fixed sentence, the 401's `error_description`); null when valid. */
  readonly reason: string | null;
  /** `sub`, or null when the token has none. */
  readonly subject: string | null;
  readonly issuer: string | null;
  /** `client_id` (RFC 9068), else `azp`, else null. */
  readonly clientId: string | null;
  /** The values of the scope claim: the token's permissions. */
  readonly scopes: readonly string[];
  readonly expiresAt: Date | null;
  /** The verified payload (no signature: it cannot be presented again). */
  readonly claims: Readonly<Record<string, unknown>> | null;
  /** SHA-256 of the token, hex: how it is cached and named in `AuthInfo.token`. */
  readonly digest: string | null;
}

/** A JWK Set (RFC 7517 §5). */
export interface JsonWebKeySet {
  keys: Record<string, unknown>[];
}

/** Where an issuer's keys come from: a JWK Set, or the path of a file holding one. */
export type JwksSource = JsonWebKeySet | string;

/** An issuer with keys of its own (otherwise they are discovered, or `jwks` is used). */
export interface IssuerOptions {
  issuer: string;
  jwks?: JwksSource;
}

export interface AccessTokenOptions {
  /** This server's canonical URI (RFC 8707): the audience every token must carry. */
  resource: string;
  /** The authorization servers whose tokens are accepted, exactly as their `iss`. An issuer
   * given as a string uses `jwks` when set, else discovery (RFC 8414, then OpenID). */
  issuers: readonly (string | IssuerOptions)[];
  /** A JWK Set (or its file) for every issuer given as a string: no discovery, no network. */
  jwks?: JwksSource;
  /** The claim holding the token's permissions (default `scope`: space-separated, or an array
   * of strings as Entra's `scp`). */
  scopeClaim?: string;
  /** Timeout of each metadata or JWK Set request, in milliseconds (default 5,000). */
  fetchTimeoutMs?: number;
  /** Called when an issuer's keys cannot be fetched or a JWK Set file cannot be used (the last
   * good keys stay). Default: `console.warn`. Never given a token. */
  onJwksError?: (error: Error) => void;
  /** The clock, in milliseconds since the epoch (default `Date.now`; for tests). */
  now?: () => number;
}

/** Whether `value` has the compact JWS shape (three base64url segments): a token, not a key
 * (keys never contain a dot). */
export function isJwtShape(value: string): boolean {
  return JWS_SHAPE.test(value);
}

function verdict(
  code: TokenCode,
  reason: string | null,
  fields: Partial<Omit<TokenVerdict, "valid" | "code" | "reason">> = {},
): TokenVerdict {
  return Object.freeze({
    valid: code === "VALID",
    code,
    reason,
    subject: fields.subject ?? null,
    issuer: fields.issuer ?? null,
    clientId: fields.clientId ?? null,
    scopes: Object.freeze([...(fields.scopes ?? [])]),
    expiresAt: fields.expiresAt ?? null,
    claims: fields.claims ?? null,
    digest: fields.digest ?? null,
  });
}

const invalid = (reason: string) => verdict("INVALID_TOKEN", reason);

/** An absolute URL without a fragment; one the package fetches from must be https, or http to
 * a loopback host (a key set fetched in clear could be anyone's). */
function checkUrl(value: string, what: string, fetched = false): URL {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new TypeError(`${what} is not a URL: ${value}`);
  }
  const loopback = ["localhost", "127.0.0.1", "[::1]"].includes(url.hostname);
  if (fetched && url.protocol !== "https:" && !(url.protocol === "http:" && loopback)) {
    throw new TypeError(`${what} must be https (http only to localhost): ${value}`);
  }
  if (value.includes("#")) throw new TypeError(`${what} must not have a fragment: ${value}`);
  return url;
}

/** RFC 9728 §3.1: `/.well-known/oauth-protected-resource` inserted before the resource's path. */
export function resourceMetadataUrl(resource: string): string {
  const url = checkUrl(resource, "resource");
  const path = url.pathname === "/" ? "" : url.pathname.replace(/\/$/, "");
  return `${url.origin}${METADATA_PATH}${path}`;
}

export interface ResourceMetadataOptions {
  resource: string;
  issuers?: readonly (string | IssuerOptions)[];
  /** What `scopes_supported` advertises (omitted when empty). */
  scopesSupported?: readonly string[];
}

/** The protected-resource metadata document (RFC 9728 §2). */
export function resourceMetadata(options: ResourceMetadataOptions): Record<string, unknown> {
  checkUrl(options.resource, "resource");
  const doc: Record<string, unknown> = {
    resource: options.resource,
    authorization_servers: (options.issuers ?? []).map((i) => (typeof i === "string" ? i : i.issuer)),
  };
  if ((options.scopesSupported ?? []).length > 0) doc.scopes_supported = [...options.scopesSupported!];
  doc.bearer_methods_supported = ["header"];
  return doc;
}

type Handler = (req: IncomingMessage & { originalUrl?: string }, res: ServerResponse, next: (err?: unknown) => void) => void;

/**
 * Middleware answering GET (and HEAD) of `/.well-known/oauth-protected-resource` and of the
 * path-suffixed form `/.well-known/oauth-protected-resource/<path of resource>` with the
 * metadata document, without authentication; every other request goes to `next`. Mount it at
 * the root (`app.use(protectedResourceMetadata(options))`), before the authentication.
 */
export function protectedResourceMetadata(options: ResourceMetadataOptions): Handler {
  const body = JSON.stringify(resourceMetadata(options));
  const paths = new Set([METADATA_PATH, new URL(resourceMetadataUrl(options.resource)).pathname]);
  return (req, res, next) => {
    const path = (req.originalUrl ?? req.url ?? "").split("?")[0];
    if (!paths.has(path) || (req.method !== "GET" && req.method !== "HEAD")) {
      next();
      return;
    }
    res.statusCode = 200;
    res.setHeader("Content-Type", "application/json");
    res.setHeader("Content-Length", Buffer.byteLength(body));
    // Public by definition; browser-based clients (MCP Inspector) read it across origins.
    res.setHeader("Access-Control-Allow-Origin", "*");
    res.setHeader("Cache-Control", "max-age=3600");
    res.end(req.method === "HEAD" ? undefined : body);
  };
}

/** A JWK Set's keys, as given (only objects with a `kty`). */
class KeySet {
  constructor(readonly keys: readonly Record<string, unknown>[]) {}

  static parse(value: unknown, source: string): KeySet {
    const keys = (value as { keys?: unknown } | null)?.keys;
    if (typeof value !== "object" || value === null || !Array.isArray(keys)) {
      throw new Error(`${source}: not a JWK Set (an object with a "keys" array)`);
    }
    return new KeySet(
      keys.filter((k): k is Record<string, unknown> => typeof k === "object" && k !== null && typeof k.kty === "string"),
    );
  }
}

/** The kty/crv `alg` needs. */
function fits(jwk: Record<string, unknown>, alg: string): boolean {
  switch (alg) {
    case "RS256":
    case "PS256":
      return jwk.kty === "RSA";
    case "ES256":
      return jwk.kty === "EC" && jwk.crv === "P-256";
    case "EdDSA":
      return jwk.kty === "OKP" && jwk.crv === "Ed25519";
    default:
      return false;
  }
}

const UNKNOWN_KID = Symbol("unknown kid");

/** docs/oauth.md step 3: the key for (kid, alg), a reason, or UNKNOWN_KID. */
function select(set: KeySet, kid: unknown, alg: string): Record<string, unknown> | string | typeof UNKNOWN_KID {
  let jwk: Record<string, unknown>;
  if (kid !== undefined) {
    if (typeof kid !== "string") return "the token's kid is not a string";
    const found = set.keys.filter((k) => k.kid === kid);
    if (found.length === 0) return UNKNOWN_KID;
    jwk = found.find((k) => fits(k, alg)) ?? found[0];
  } else {
    const found = set.keys.filter((k) => fits(k, alg));
    if (found.length !== 1) return "the token has no kid and the issuer has not exactly one key for its alg";
    jwk = found[0];
  }
  if (!fits(jwk, alg)) return "the issuer's key does not fit the token's alg";
  if (jwk.alg !== undefined && jwk.alg !== alg) return "the token's alg is not its key's alg";
  if (jwk.use !== undefined && jwk.use !== "sig") return "the issuer's key is not a signing key";
  return jwk;
}

/** The public members only: a JWK Set that (wrongly) holds a private key still gives a public
 * key, and the import sees nothing it does not need. */
function publicJwk(jwk: Record<string, unknown>): JWK {
  const pick = (names: string[]) => Object.fromEntries(names.map((n) => [n, jwk[n]])) as unknown as JWK;
  if (jwk.kty === "RSA") return pick(["kty", "n", "e"]);
  if (jwk.kty === "EC") return pick(["kty", "crv", "x", "y"]);
  return pick(["kty", "crv", "x"]);
}

interface KeySource {
  /** The keys to look in (loading them when needed), or null when none could be had. */
  current(now: number): Promise<KeySet | null>;
  /** Fetches again if allowed now; true when a new set was loaded. */
  refresh(now: number): Promise<boolean>;
}

class StaticKeys implements KeySource {
  constructor(private readonly set: KeySet) {}
  async current(): Promise<KeySet> {
    return this.set;
  }
  async refresh(): Promise<boolean> {
    return false;
  }
}

/** Reads at most `limit` bytes (one more to tell a longer file), from the open descriptor. */
function readBounded(path: string, limit: number): { data: Buffer; sig: string } {
  const fd = openSync(path, "r");
  try {
    const st = fstatSync(fd);
    const chunks: Buffer[] = [];
    let size = 0;
    for (;;) {
      const chunk = Buffer.alloc(Math.min(64 * 1024, limit + 1 - size));
      const n = readSync(fd, chunk, 0, chunk.length, null);
      if (n === 0) break;
      chunks.push(chunk.subarray(0, n));
      size += n;
      if (size > limit) throw new Error(`${path}: larger than ${limit} bytes`);
    }
    return { data: Buffer.concat(chunks), sig: `${st.mtimeMs}:${st.size}:${st.ino}` };
  } finally {
    closeSync(fd);
  }
}

function fileSig(path: string): string | null {
  try {
    const fd = openSync(path, "r");
    try {
      const st = fstatSync(fd);
      return `${st.mtimeMs}:${st.size}:${st.ino}`;
    } finally {
      closeSync(fd);
    }
  } catch {
    return null;
  }
}

/** A JWK Set file: read at start (an error then is the caller's), and again when it changes
 * (looked at every 250 ms at most; a broken version is reported once and the last good kept). */
class FileKeys implements KeySource {
  private set: KeySet;
  private sig: string;
  private checkedAt = -Infinity;
  private reportedSig: string | null = null;

  constructor(
    private readonly path: string,
    private readonly report: (e: Error) => void,
  ) {
    const { set, sig } = FileKeys.load(path);
    this.set = set;
    this.sig = sig;
  }

  private static load(path: string): { set: KeySet; sig: string } {
    const { data, sig } = readBounded(path, MAX_JWKS_BYTES);
    let value: unknown;
    try {
      value = JSON.parse(data.toString("utf8"));
    } catch {
      throw new Error(`${path}: not JSON`);
    }
    return { set: KeySet.parse(value, path), sig };
  }

  async current(now: number): Promise<KeySet> {
    if (now - this.checkedAt >= FILE_CHECK_MS || now < this.checkedAt) {
      this.checkedAt = now;
      const sig = fileSig(this.path);
      if (sig !== null && sig !== this.sig && sig !== this.reportedSig) {
        try {
          const loaded = FileKeys.load(this.path);
          this.set = loaded.set;
          this.sig = loaded.sig;
        } catch (e) {
          this.reportedSig = sig;
          this.report(e instanceof Error ? e : new Error(String(e)));
        }
      }
    }
    return this.set;
  }

  async refresh(): Promise<boolean> {
    return false;
  }
}

/** GET `url` as JSON: no redirects, bounded in time and to 1 MiB. */
async function fetchJson(url: string, timeoutMs: number): Promise<unknown> {
  const res = await fetch(url, {
    redirect: "error",
    headers: { accept: "application/json" },
    signal: AbortSignal.timeout(timeoutMs),
  });
  if (!res.ok) {
    await res.body?.cancel();
    throw new Error(`${url}: HTTP ${res.status}`);
  }
  const declared = Number(res.headers.get("content-length"));
  if (Number.isFinite(declared) && declared > MAX_JWKS_BYTES) {
    await res.body?.cancel();
    throw new Error(`${url}: larger than ${MAX_JWKS_BYTES} bytes`);
  }
  const chunks: Uint8Array[] = [];
  let size = 0;
  if (res.body !== null) {
    const reader = res.body.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.byteLength;
      if (size > MAX_JWKS_BYTES) {
        await reader.cancel();
        throw new Error(`${url}: larger than ${MAX_JWKS_BYTES} bytes`);
      }
      chunks.push(value);
    }
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString("utf8"));
  } catch {
    throw new Error(`${url}: not JSON`);
  }
}

/** Where an issuer's metadata is looked for, in order: RFC 8414 §3.1 (the well-known segment
 * inserted before the issuer's path), then OpenID Connect Discovery (appended). */
export function discoveryUrls(issuer: string): string[] {
  const url = new URL(issuer);
  const path = url.pathname === "/" ? "" : url.pathname.replace(/\/$/, "");
  return [
    `${url.origin}/.well-known/oauth-authorization-server${path}`,
    `${url.origin}${path}/.well-known/openid-configuration`,
  ];
}

/** An issuer's keys by discovery: metadata (whose `issuer` must be the configured one, RFC 8414
 * §3.3), then `jwks_uri`. One fetch in flight at a time, and at most one every 30 s. */
class RemoteKeys implements KeySource {
  private set: KeySet | null = null;
  private loadedAt = -Infinity;
  private attemptedAt = -Infinity;
  private jwksUri: string | null = null;
  private inflight: Promise<boolean> | null = null;

  constructor(
    private readonly issuer: string,
    private readonly timeoutMs: number,
    private readonly report: (e: Error) => void,
  ) {}

  async current(now: number): Promise<KeySet | null> {
    if (this.set === null || now - this.loadedAt >= JWKS_MAX_AGE_MS) await this.refresh(now);
    return this.set;
  }

  refresh(now: number): Promise<boolean> {
    if (this.inflight !== null) return this.inflight;
    if (now - this.attemptedAt < JWKS_REFETCH_MS && now >= this.attemptedAt) return Promise.resolve(false);
    this.attemptedAt = now;
    this.inflight = this.load().then(
      (set) => {
        this.set = set;
        this.loadedAt = now;
        return true;
      },
      (e: unknown) => {
        this.report(e instanceof Error ? e : new Error(String(e)));
        return false;
      },
    );
    void this.inflight.finally(() => (this.inflight = null));
    return this.inflight;
  }

  private async load(): Promise<KeySet> {
    this.jwksUri ??= await this.discover();
    return KeySet.parse(await fetchJson(this.jwksUri, this.timeoutMs), this.jwksUri);
  }

  private async discover(): Promise<string> {
    const problems: string[] = [];
    for (const url of discoveryUrls(this.issuer)) {
      let meta: unknown;
      try {
        meta = await fetchJson(url, this.timeoutMs);
      } catch (e) {
        problems.push(e instanceof Error ? e.message : String(e));
        continue;
      }
      const m = (typeof meta === "object" && meta !== null ? meta : {}) as { issuer?: unknown; jwks_uri?: unknown };
      if (m.issuer !== this.issuer) {
        problems.push(`${url}: its issuer is not ${this.issuer}`);
        continue;
      }
      if (typeof m.jwks_uri !== "string") {
        problems.push(`${url}: no jwks_uri`);
        continue;
      }
      try {
        return checkUrl(m.jwks_uri, "jwks_uri", true).href;
      } catch (e) {
        problems.push(`${url}: ${(e as Error).message}`);
      }
    }
    throw new Error(`issuer ${this.issuer}: no usable metadata (${problems.join("; ")})`);
  }
}

function decodeJson(segment: string): Record<string, unknown> | null {
  try {
    const value: unknown = JSON.parse(Buffer.from(segment, "base64url").toString("utf8"));
    return typeof value === "object" && value !== null && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : null;
  } catch {
    return null;
  }
}

/** The scope claim's values: a space-separated string, or an array of strings; anything else
 * grants nothing. */
function scopesOf(value: unknown): string[] {
  if (typeof value === "string") return value.split(" ").filter((s) => s !== "");
  if (Array.isArray(value) && value.every((s) => typeof s === "string")) return [...new Set(value as string[])];
  return [];
}

/**
 * Verifies JWT access tokens of the configured issuers for one resource (docs/oauth.md).
 * `verify` never throws for a bad token; the constructor throws `TypeError` for a bad
 * configuration and `Error` for a JWK Set file that cannot be read.
 */
export class AccessTokenVerifier {
  readonly resource: string;
  readonly issuers: readonly string[];
  readonly scopeClaim: string;
  private readonly sources = new Map<string, KeySource>();
  private readonly cache = new Map<string, { verdict: TokenVerdict; expMs: number }>();
  private readonly imported = new WeakMap<object, Promise<KeyLike | Uint8Array>>();
  private readonly now: () => number;

  constructor(options: AccessTokenOptions) {
    checkUrl(options.resource, "resource");
    this.resource = options.resource;
    this.scopeClaim = options.scopeClaim ?? "scope";
    this.now = options.now ?? Date.now;
    const report =
      options.onJwksError ?? ((e: Error) => console.warn(`mcp-key-verifier: ${e.message}`));
    const safeReport = (e: Error) => {
      try {
        report(e);
      } catch {
        // A faulty callback must not break verification.
      }
    };
    const timeout = options.fetchTimeoutMs ?? FETCH_TIMEOUT_MS;
    const source = (jwks: JwksSource | undefined, issuer: string): KeySource => {
      if (jwks === undefined) return new RemoteKeys(issuer, timeout, safeReport);
      if (typeof jwks === "string") return new FileKeys(jwks, safeReport);
      return new StaticKeys(KeySet.parse(jwks, "jwks"));
    };
    // One set (and one file watcher) shared by every issuer given without keys of its own.
    const shared = options.jwks === undefined ? undefined : source(options.jwks, "");
    for (const entry of options.issuers ?? []) {
      const issuer = typeof entry === "string" ? entry : entry.issuer;
      if (typeof issuer !== "string") throw new TypeError("an issuer is a URL string");
      const own = typeof entry === "string" ? undefined : entry.jwks;
      const keys = own !== undefined ? source(own, issuer) : (shared ?? source(undefined, issuer));
      checkUrl(issuer, "issuer", keys instanceof RemoteKeys);
      if (!this.sources.has(issuer)) this.sources.set(issuer, keys);
    }
    if (this.sources.size === 0) throw new TypeError("access tokens need at least one issuer");
    this.issuers = Object.freeze([...this.sources.keys()]);
  }

  /** Verifies `token` (docs/oauth.md, "What a token must be"); the first failing check decides. */
  async verify(token: string): Promise<TokenVerdict> {
    const now = this.now();
    if (typeof token !== "string" || !JWS_SHAPE.test(token)) return invalid("not a JWT access token");
    const digest = createHash("sha256").update(token).digest("hex");
    const hit = this.cache.get(digest);
    if (hit !== undefined) {
      if (now < hit.expMs) return hit.verdict;
      this.cache.delete(digest);
    }
    const v = await this.check(token, digest, now);
    const expMs = v.expiresAt?.getTime() ?? 0;
    if (v.valid && now < expMs) {
      if (this.cache.size >= TOKEN_CACHE_SIZE) {
        for (const [d, e] of this.cache) if (e.expMs <= now) this.cache.delete(d);
        // Still full: the oldest entry goes (a Map iterates in insertion order).
        if (this.cache.size >= TOKEN_CACHE_SIZE) this.cache.delete(this.cache.keys().next().value!);
      }
      this.cache.set(digest, { verdict: v, expMs });
    }
    return v;
  }

  /** Tokens held in the cache (for tests and metrics). */
  get cached(): number {
    return this.cache.size;
  }

  private async check(token: string, digest: string, now: number): Promise<TokenVerdict> {
    const [h, p] = token.split(".");
    // 1. Shape and header.
    const header = decodeJson(h);
    if (header === null) return invalid("the token header is not a JSON object");
    const alg = header.alg;
    if (alg === "none") return invalid("alg none is refused");
    if (typeof alg === "string" && /^HS/i.test(alg)) return invalid("HMAC algorithms are refused");
    if (typeof alg !== "string" || !TOKEN_ALGORITHMS.includes(alg)) return invalid("unsupported alg");
    if ("crit" in header) return invalid("a crit header is refused");
    const claims = decodeJson(p);
    if (claims === null) return invalid("the token payload is not a JSON object");
    // 2. Issuer (not yet verified: it only picks the keys).
    const iss = claims.iss;
    const source = typeof iss === "string" ? this.sources.get(iss) : undefined;
    if (source === undefined || typeof iss !== "string") return invalid("the token's issuer is not accepted here");
    // 3. Key, with one refetch (at most every 30 s per issuer) for an unknown kid.
    let set = await source.current(now);
    if (set === null) return invalid("the issuer's keys are unavailable");
    let jwk = select(set, header.kid, alg);
    if (jwk === UNKNOWN_KID && (await source.refresh(now))) {
      set = await source.current(now);
      if (set !== null) jwk = select(set, header.kid, alg);
    }
    if (jwk === UNKNOWN_KID) return invalid("the token's kid is not a key of its issuer");
    if (typeof jwk === "string") return invalid(jwk);
    // 4. Signature, with exactly the header's algorithm.
    try {
      let key = this.imported.get(jwk);
      if (key === undefined) {
        key = importJWK(publicJwk(jwk), alg);
        this.imported.set(jwk, key);
      }
      await compactVerify(token, await key, { algorithms: [alg] });
    } catch {
      return invalid("the token's signature does not verify");
    }
    // 5. Claims.
    const nowS = now / 1000;
    const exp = claims.exp;
    if (typeof exp !== "number" || !Number.isFinite(exp)) return invalid("the token has no exp");
    if (nowS >= exp + CLOCK_SKEW_SECONDS) return verdict("EXPIRED", "the access token has expired");
    const nbf = claims.nbf;
    if (nbf !== undefined && (typeof nbf !== "number" || !Number.isFinite(nbf))) return invalid("the token's nbf is not a number");
    if (typeof nbf === "number" && nbf > nowS + CLOCK_SKEW_SECONDS) return invalid("the token is not valid yet");
    const aud = claims.aud;
    const audiences = typeof aud === "string" ? [aud] : Array.isArray(aud) ? aud : [];
    if (!audiences.includes(this.resource)) return invalid("the token is not for this resource");
    // 6. Permissions.
    const str = (v: unknown) => (typeof v === "string" ? v : null);
    return verdict("VALID", null, {
      subject: str(claims.sub),
      issuer: iss,
      clientId: str(claims.client_id) ?? str(claims.azp),
      scopes: scopesOf(claims[this.scopeClaim]),
      expiresAt: new Date(exp * 1000),
      claims: Object.freeze({ ...claims }),
      digest,
    });
  }
}
