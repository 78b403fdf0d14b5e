/**
 * mcp-key-verifier: protect a Node MCP server with mcp-key-manager API keys.
 *
 * Owns the verifier format (docs/verifier.md) on the Node side: parsing with every reject rule,
 * the verification order, header parsing, reloading the file when it is replaced, per-process
 * rate limits (GCRA in whole microseconds), the Express/Connect middleware and the
 * `OAuthTokenVerifier` for `@modelcontextprotocol/sdk`.
 *
 * Invariants:
 * - A presented key is never stored, logged, thrown or put on `req.auth`: it is hashed with
 *   HMAC-SHA256 under the file's hash key and the digest compared with `timingSafeEqual`. An
 *   unknown id costs the same HMAC as a wrong secret.
 * - A loaded state is immutable and replaced whole, so a verdict always comes from one file.
 * - A reload never installs a broken file, nor one whose `revision` is lower than the loaded one,
 *   nor one of the same revision and another `save_digest` (a conflict).
 * - With a trust pin, no byte of a file is parsed before its signature line has been checked:
 *   the first line after `{`, by a vault whose fingerprint is the pin, over the rest of the file.
 * - Only a request that would be admitted counts against its key's rate limit, and every
 *   rate-limit quantity is a whole number of microseconds below 2^53 (exact in a `number`), so
 *   the decisions are those of the Rust and Python readers.
 *
 * OAuth access tokens beside keys (docs/oauth.md) are `./oauth.ts`'s: with `resource` and
 * `issuers` set, a Bearer value of the JWT shape goes there, anything else is a key as before.
 *
 * Runtime dependencies: jose (only for access tokens; node:crypto underneath), node:crypto and
 * node:fs. The SDK is imported lazily by `tokenVerifier`, only to throw the SDK's own
 * `InvalidTokenError`.
 */

import {
  createHash,
  createHmac,
  createPublicKey,
  timingSafeEqual,
  verify as verifySignature,
} from "node:crypto";
import { closeSync, fstatSync, openSync, readSync, statSync } from "node:fs";
import type { IncomingMessage, ServerResponse } from "node:http";

import {
  ACCESS_TOKEN_PREFIX,
  AccessTokenVerifier,
  isJwtShape,
  protectedResourceMetadata,
  resourceMetadataUrl,
  type IssuerOptions,
  type JwksSource,
  type TokenVerdict,
} from "./oauth.js";
import {
  BadRouting,
  HEADER_MISMATCH,
  MISMATCH_MESSAGE,
  blank,
  bodyMatches,
  neededFor,
  neededFromHeaders,
  readRouting,
  utf8,
  type Routing,
} from "./routing.js";

export * from "./oauth.js";
export {
  BadRouting,
  CHECKED_VERSIONS,
  HEADER_MISMATCH,
  bodyMatches,
  decodeName,
  readRouting,
  type Routing,
} from "./routing.js";

export type Code =
  | "MALFORMED"
  | "NOT_FOUND"
  | "REVOKED"
  | "EXPIRED"
  | "INSUFFICIENT_PERMISSIONS"
  | "VALID";

/** The verdict codes, in the order the checks are made (the CLI's order). */
export const CODES: readonly Code[] = Object.freeze([
  "MALFORMED",
  "NOT_FOUND",
  "REVOKED",
  "EXPIRED",
  "INSUFFICIENT_PERMISSIONS",
  "VALID",
] as Code[]);

/**
 * Why a key is MALFORMED: not of any key's shape, or a format-2 key whose checksum does not
 * match (a typo), told without looking anything up.
 */
export type Reason = "SHAPE" | "CHECKSUM";

/**
 * One regular expression for every key of format 1 and format 2, as a whole word (what a
 * secret scanner looks for; keys imported from the Python tool have no shape of their own).
 */
export const KEY_PATTERN =
  "\\b(?:mcp_[0-9a-f]{16}_[0-9a-f]{64}|(?:[a-z][a-z0-9]{0,15}_)?mkm_[0-9a-f]{16}_[0-9A-Za-z]{49})\\b";

/** The outcome of one verification. Frozen; the key fields are null for MALFORMED/NOT_FOUND. */
export interface Verdict {
  readonly valid: boolean;
  readonly code: Code;
  /** Why a MALFORMED key is malformed; null for every other code. */
  readonly reason: Reason | null;
  readonly keyId: string | null;
  /** The key's name, when the file was published with `--names`. */
  readonly name: string | null;
  readonly permissions: readonly string[];
  /** The key's expiry, or null when it never expires. */
  readonly expiresAt: Date | null;
  /** The entry's rate limit (`apiKeyAuth` enforces it), or null for none. */
  readonly rateLimit: RateLimit | null;
}

/** An entry's `rate_limit`: at most `requests` per `windowSeconds`, bursts up to `requests`. */
export interface RateLimit {
  readonly requests: number;
  readonly windowSeconds: number;
}

/** The most requests one limit may allow per window. */
export const MAX_REQUESTS = 1_000_000_000;
/** The longest window, in seconds (one day). */
export const MAX_WINDOW_SECONDS = 86_400;
const US = 1_000_000;

/** `requests` per `windowSeconds`, checked (integers, 1..1e9 and 1..86,400) and frozen. */
export function rateLimit(requests: number, windowSeconds: number): RateLimit {
  if (!Number.isInteger(requests) || requests < 1 || requests > MAX_REQUESTS) {
    throw new RangeError("a rate limit allows 1 to 1,000,000,000 requests per window");
  }
  if (!Number.isInteger(windowSeconds) || windowSeconds < 1 || windowSeconds > MAX_WINDOW_SECONDS) {
    throw new RangeError("a rate limit's window is 1 second to 1 day (86,400 seconds)");
  }
  return Object.freeze({ requests, windowSeconds });
}

/** The shortest form of a limit, as the 429 message shows it: `100/min`, `7/sec`, `1/day`,
 * `10/30s`. */
export function formatRateLimit(limit: RateLimit): string {
  const unit = ({ 1: "sec", 60: "min", 3600: "hour", 86400: "day" } as Record<number, string>)[
    limit.windowSeconds
  ];
  return `${limit.requests}/${unit ?? `${limit.windowSeconds}s`}`;
}

/** ceil(a / b) for non-negative integers below 2^53, exactly. */
function ceilDiv(a: number, b: number): number {
  const q = Math.floor(a / b);
  return q * b < a ? q + 1 : q;
}

/** floor(a / b) for non-negative integers below 2^53, exactly. */
function floorDiv(a: number, b: number): number {
  const q = Math.floor(a / b);
  return q * b > a ? q - 1 : (q + 1) * b <= a ? q + 1 : q;
}

/** The time one request uses of the window, in microseconds, rounded up: never more than
 * `requests` per window. */
export function intervalUs(limit: RateLimit): number {
  return ceilDiv(limit.windowSeconds * US, limit.requests);
}

/** One rate-limit decision. */
export interface Decision {
  readonly allowed: boolean;
  /** Requests left in the window after this one. */
  readonly remaining: number;
  /** Microseconds until the whole quota is available again. */
  readonly resetUs: number;
  /** Refused only: microseconds until a request would be admitted (else 0). */
  readonly retryAfterUs: number;
}

/**
 * One GCRA step (docs/verifier.md, "Rate limits"): the decision for a request at `nowUs` when
 * the key's theoretical arrival time is `tatUs` (0 for a key not seen), and the TAT to keep
 * (unchanged when refused). Times are microseconds since the Unix epoch.
 */
export function decide(limit: RateLimit, tatUs: number, nowUs: number): [Decision, number] {
  const t = intervalUs(limit);
  const w = limit.windowSeconds * US;
  const tat = Math.max(tatUs, nowUs);
  const newTat = tat + t;
  const allowAt = newTat - w;
  if (nowUs < allowAt) {
    return [
      Object.freeze({ allowed: false, remaining: 0, resetUs: tat - nowUs, retryAfterUs: allowAt - nowUs }),
      tatUs,
    ];
  }
  const used = newTat - nowUs;
  return [
    Object.freeze({ allowed: true, remaining: floorDiv(w - used, t), resetUs: used, retryAfterUs: 0 }),
    newTat,
  ];
}

/** `Retry-After` of a refusal, in whole seconds rounded up, at least 1. */
export function retryAfterSeconds(d: Decision): number {
  return Math.max(1, ceilDiv(d.retryAfterUs, US));
}

/**
 * The headers an answer carries after decision `d` for a key with `limit`:
 * `RateLimit-Policy: "key";q=Q;w=W`, `RateLimit: "key";r=REMAINING;t=SECONDS` (the reset,
 * rounded up) and, for a refusal, `Retry-After`.
 */
export function rateLimitHeaders(limit: RateLimit, d: Decision): Record<string, string> {
  const h: Record<string, string> = {
    "RateLimit-Policy": `"key";q=${limit.requests};w=${limit.windowSeconds}`,
    RateLimit: `"key";r=${d.remaining};t=${ceilDiv(d.resetUs, US)}`,
  };
  if (!d.allowed) h["Retry-After"] = String(retryAfterSeconds(d));
  return h;
}

/** The smallest map a Limiter prunes (the Rust Limiter's floor). */
const PRUNE_FLOOR = 1024;

/**
 * A per-process rate limiter: the theoretical arrival time of every key admitted, by key id.
 * Keys whose quota is whole again are forgotten (pruned each time the map doubles), so it never
 * holds more than the verifier's keys.
 */
export class Limiter {
  #tats = new Map<string, number>();
  #pruneAt = 0;

  /** Decides a request of `keyId` under `limit` at `nowUs` (microseconds since the Unix epoch;
   * default now) and remembers it when admitted. */
  check(keyId: string, limit: RateLimit, nowUs: number = Date.now() * 1000): Decision {
    const [d, newTat] = decide(limit, this.#tats.get(keyId) ?? 0, nowUs);
    if (d.allowed) {
      if (this.#tats.size >= Math.max(this.#pruneAt, PRUNE_FLOOR) && !this.#tats.has(keyId)) {
        // A key whose TAT has passed has its whole quota: forgetting it changes no decision.
        for (const [id, tat] of this.#tats) if (tat <= nowUs) this.#tats.delete(id);
        this.#pruneAt = this.#tats.size * 2;
      }
      this.#tats.set(keyId, newTat);
    }
    return d;
  }

  /** Keys held (for tests and metrics). */
  get size(): number {
    return this.#tats.size;
  }
}

/** A verifier file that cannot be used. The message names the file and the problem, never a key. */
export class VerifierError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "VerifierError";
  }
}

/** Largest verifier file read (the Rust reader's bound). */
export const MAX_FILE_BYTES = 256 * 1024 * 1024;
/** How often (ms) a file-backed verifier looks at its file, at most. */
export const RELOAD_INTERVAL_MS = 250;

const MODERN = /^mcp_([0-9a-f]{16})_[0-9a-f]{64}$/;
const LEGACY = /^[A-Za-z0-9_\-.~+/=]{16,256}$/;
/**
 * Format 2's layout: a head of 1 to 25 legacy characters (`mkm_` or `<org>_mkm_` in a good
 * key), the 16-hex id, `_`, 43 base62 characters of secret and 6 of checksum.
 */
const LAYOUT2 = /^([A-Za-z0-9_\-.~+/=]{1,25})([0-9a-f]{16})_[0-9A-Za-z]{49}$/;
/** `mkm_` or `<org>_mkm_` (a key starting with `mcp_` is judged as format 1 before this). */
const HEAD2 = /^(?:[a-z][a-z0-9]{0,15}_)?mkm_/;
const HEAD2_EXACT = /^(?:[a-z][a-z0-9]{0,15}_)?mkm_$/;
const BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/** CRC-32 (IEEE, as zlib) table; node:zlib's crc32 is missing before Node 20.15. */
const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[i] = c >>> 0;
  }
  return t;
})();

/** Six base62 digits of the CRC-32 of `body` (ASCII), most significant first. */
function checksum(body: string): string {
  let c = 0xffffffff;
  for (let i = 0; i < body.length; i++) c = CRC_TABLE[(c ^ body.charCodeAt(i)) & 0xff] ^ (c >>> 8);
  let v = (c ^ 0xffffffff) >>> 0;
  let out = "";
  for (let i = 0; i < 6; i++) {
    out = BASE62[v % 62] + out;
    v = Math.floor(v / 62);
  }
  return out;
}
const HEX64 = /^[0-9a-fA-F]{64}$/;
const B64 = /^[A-Za-z0-9+/]*={0,2}$/;
const TIME =
  /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$/;
const ID_SHOWN = /^[A-Za-z0-9_-]{1,64}$/;
const SAVE_DIGEST = /^[0-9a-f]{64}$/;

/** What a signature signs: these bytes, then the file without its signature line. */
const SIGNATURE_CONTEXT = Buffer.from("mcp-key-verifier/signature/v1\n", "latin1");
const SIGNED_PREFIX = Buffer.from('{\n  "signature": "', "latin1");
/** The whole signature line, exactly: 32-byte public key, 64-byte signature, padded base64. */
const SIGNATURE_LINE =
  /^\{\n  "signature": "ed25519:([A-Za-z0-9+/]{43}=):([A-Za-z0-9+/]{86}==)",\n/;
/** "{\n", then the line: indentation and name (16), "ed25519:" (8), key (44), ":" (1),
 * signature (88), '",\n' (3). */
const SIGNATURE_LINE_BYTES = 2 + 16 + 8 + 44 + 1 + 88 + 3;
const FINGERPRINT = /^mkv1:[a-z2-7]{32}$/;
/** DER SubjectPublicKeyInfo of an Ed25519 key, up to the 32 key bytes (RFC 8410). */
const SPKI_ED25519 = Buffer.from("302a300506032b6570032100", "hex");

function verdict(
  code: Code,
  keyId: string | null = null,
  name: string | null = null,
  permissions: readonly string[] = [],
  expiresAt: Date | null = null,
  reason: Reason | null = null,
  rateLimit: RateLimit | null = null,
): Verdict {
  return Object.freeze({
    valid: code === "VALID",
    code,
    reason,
    keyId,
    name,
    permissions,
    expiresAt,
    rateLimit,
  });
}

const MALFORMED_VERDICT = verdict("MALFORMED", null, null, [], null, "SHAPE");
const CHECKSUM_VERDICT = verdict("MALFORMED", null, null, [], null, "CHECKSUM");
const NOT_FOUND_VERDICT = verdict("NOT_FOUND");

/** An instant as whole milliseconds plus the nanoseconds below them (the file may hold ns). */
interface Instant {
  ms: number;
  subNs: number;
}

class Entry {
  readonly perms: ReadonlySet<string>;
  readonly valid: Verdict;
  readonly revoked_: Verdict;
  readonly expired: Verdict;
  readonly insufficient: Verdict;

  constructor(
    readonly id: string,
    readonly hash: Buffer,
    readonly revoked: boolean,
    readonly expires: Instant | null,
    permissions: string[],
    name: string | null,
    limit: RateLimit | null,
  ) {
    this.perms = new Set(permissions);
    const perms = Object.freeze([...permissions]);
    const at = expires === null ? null : new Date(expires.ms);
    // Verdicts are immutable, so each entry's are made once and shared.
    this.valid = verdict("VALID", id, name, perms, at, null, limit);
    this.revoked_ = verdict("REVOKED", id, name, perms, at, null, limit);
    this.expired = verdict("EXPIRED", id, name, perms, at, null, limit);
    this.insufficient = verdict("INSUFFICIENT_PERMISSIONS", id, name, perms, at, null, limit);
  }
}

class State {
  readonly byId = new Map<string, Entry>();
  readonly byHash = new Map<string, Entry>();

  constructor(
    readonly hashKey: Buffer,
    entries: Entry[],
    readonly revision: number,
    readonly saveDigest: string | null = null,
  ) {
    for (const e of entries) {
      this.byId.set(e.id, e);
      // A legacy key is found by its keyed hash, whatever its entry's id looks like.
      const h = e.hash.toString("hex");
      if (!this.byHash.has(h)) this.byHash.set(h, e);
    }
  }

  get count(): number {
    return this.byId.size;
  }
}

function parseTime(value: unknown, what: string): Instant {
  const m = typeof value === "string" ? TIME.exec(value) : null;
  if (m === null) throw new VerifierError(`${what} is not an RFC 3339 time`);
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number);
  const frac = m[7];
  const zone = m[8];
  const leap = second === 60; // RFC 3339 allows a leap second: the next second's instant
  // Date.UTC reads years 0-99 as 1900-1999: set the full year explicitly.
  const check = new Date(0);
  check.setUTCFullYear(year, month - 1, day);
  check.setUTCHours(hour, minute, leap ? 59 : second, 0);
  const base = check.getTime();
  if (
    year < 1 ||
    check.getUTCFullYear() !== year ||
    check.getUTCMonth() !== month - 1 ||
    check.getUTCDate() !== day ||
    hour > 23 ||
    minute > 59 ||
    second > 60
  ) {
    throw new VerifierError(`${what} is not a calendar date and time`);
  }
  let ms = base + (leap ? 1000 : 0);
  if (zone !== "Z" && zone !== "z") {
    const oh = Number(zone.slice(1, 3));
    const om = Number(zone.slice(4, 6));
    if (oh > 23 || om > 59) throw new VerifierError(`${what} has an impossible offset`);
    const offset = (oh * 60 + om) * 60000;
    ms = zone[0] === "+" ? ms - offset : ms + offset;
  }
  let subNs = 0;
  if (frac !== undefined) {
    const ns = Number(frac.slice(1).padEnd(9, "0"));
    ms += Math.floor(ns / 1e6);
    subNs = ns % 1e6;
  }
  return { ms, subNs };
}

/**
 * The first member name written twice in one object of `text` (valid JSON), or null. JSON.parse
 * keeps the last of duplicate members, so `"status":"revoked","status":"active"` would read as
 * active; the Rust and Python readers refuse such a file, and so does this one. Names are
 * compared decoded (`"st\u0061tus"` is `"status"`).
 */
function duplicateMember(text: string): string | null {
  // One frame per open object (a set of its names) or array (null).
  const stack: (Set<string> | null)[] = [];
  let expectName = false;
  const n = text.length;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      const start = i;
      let escaped = false;
      for (i++; i < n; i++) {
        const d = text.charCodeAt(i);
        if (d === 0x5c /* \ */) {
          escaped = true;
          i++;
        } else if (d === 0x22) {
          break;
        }
      }
      const top = stack.length > 0 ? stack[stack.length - 1] : null;
      if (expectName && top !== null) {
        const raw = text.slice(start + 1, i);
        const name = escaped ? (JSON.parse(text.slice(start, i + 1)) as string) : raw;
        if (top.has(name)) return name;
        top.add(name);
        expectName = false;
      }
    } else if (c === 0x7b /* { */) {
      stack.push(new Set());
      expectName = true;
    } else if (c === 0x5b /* [ */) {
      stack.push(null);
      expectName = false;
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      stack.pop();
      expectName = false;
    } else if (c === 0x2c /* , */) {
      expectName = stack.length > 0 && stack[stack.length - 1] !== null;
    }
  }
  return null;
}

/** An integer as JSON writes it: digits only (no fraction, no exponent). */
const JSON_INTEGER = /^-?(0|[1-9][0-9]*)$/;

/** The raw text of the top-level member `name` when it is a number, for `version`/`revision`:
 * JSON.parse reads `1.0` and `1e0` as the integer 1, which the spec's "integer" excludes. */
function topLevelNumberText(text: string, name: string): string | null {
  let depth = 0;
  const n = text.length;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      const start = i;
      for (i++; i < n; i++) {
        const d = text.charCodeAt(i);
        if (d === 0x5c) i++;
        else if (d === 0x22) break;
      }
      if (depth !== 1) continue;
      let j = i + 1;
      while (j < n && /\s/.test(text[j])) j++;
      if (text[j] !== ":") continue; // a value, not a member name
      if (JSON.parse(text.slice(start, i + 1)) !== name) continue;
      j++;
      while (j < n && /\s/.test(text[j])) j++;
      const m = /^-?[0-9][0-9.eE+-]*/.exec(text.slice(j, j + 64));
      return m === null ? null : m[0];
    } else if (c === 0x7b || c === 0x5b) {
      depth++;
    } else if (c === 0x7d || c === 0x5d) {
      depth--;
    }
  }
  return null;
}

/**
 * Whether every number inside an entry's `rate_limit` (`keys[i].rate_limit.*`) is written as a
 * JSON integer: JSON.parse reads `60.0` and `6e1` as 60, which the spec's "integer" excludes.
 * `text` is valid JSON.
 */
function rateLimitNumbersAreIntegers(text: string): boolean {
  // One frame per open object (its current member name) or array (name null).
  const stack: { obj: boolean; name: string | null }[] = [];
  let expectName = false;
  const n = text.length;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      const start = i;
      let escaped = false;
      for (i++; i < n; i++) {
        const d = text.charCodeAt(i);
        if (d === 0x5c) {
          escaped = true;
          i++;
        } else if (d === 0x22) {
          break;
        }
      }
      const top = stack[stack.length - 1];
      if (expectName && top?.obj) {
        top.name = escaped ? (JSON.parse(text.slice(start, i + 1)) as string) : text.slice(start + 1, i);
        expectName = false;
      }
    } else if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      stack.push({ obj: c === 0x7b, name: null });
      expectName = c === 0x7b;
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      stack.pop();
    } else if (c === 0x2c /* , */) {
      expectName = stack[stack.length - 1]?.obj === true;
    } else if (c === 0x2d /* - */ || (c >= 0x30 && c <= 0x39)) {
      const m = /^-?[0-9][0-9.eE+-]*/.exec(text.slice(i, i + 64)) as RegExpExecArray;
      i += m[0].length - 1;
      const inLimit =
        stack.length === 4 &&
        stack[0].name === "keys" &&
        !stack[1].obj &&
        stack[2].name === "rate_limit" &&
        stack[3].obj;
      if (inLimit && !JSON_INTEGER.test(m[0])) return false;
    }
  }
  return true;
}

/** An entry's `rate_limit` (not null or undefined): exactly `requests` and `window_seconds`,
 * integers within bounds; null when it is anything else. */
function parseRateLimit(value: unknown): RateLimit | null {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return null;
  const members = Object.keys(value);
  const { requests, window_seconds } = value as Record<string, unknown>;
  if (members.length !== 2 || typeof requests !== "number" || typeof window_seconds !== "number") {
    return null;
  }
  try {
    return rateLimit(requests, window_seconds);
  } catch {
    return null;
  }
}

function parse(data: Buffer | string, source: string): State {
  const bad = (problem: string) =>
    new VerifierError(`${source}: not a usable verifier file: ${problem}`);
  let doc: unknown;
  const text = typeof data === "string" ? data : data.toString("utf8");
  try {
    doc = JSON.parse(text);
  } catch {
    throw bad("not JSON");
  }
  const dup = duplicateMember(text);
  if (dup !== null) {
    throw bad(`an object has the member ${ID_SHOWN.test(dup) ? dup : "(name not shown)"} twice`);
  }
  for (const name of ["version", "revision"]) {
    const raw = topLevelNumberText(text, name);
    if (raw !== null && !JSON_INTEGER.test(raw)) throw bad(`${name} is not a JSON integer`);
  }
  if (typeof doc !== "object" || doc === null || Array.isArray(doc)) {
    throw bad("the top level is not a JSON object");
  }
  const f = doc as Record<string, unknown>;
  if (f.format !== "mcp-key-verifier") throw bad("format is not 'mcp-key-verifier'");
  if (f.version !== 1) throw bad("version is not 1 (this reader knows version 1 only)");
  if (f.algorithm !== "hmac-sha256") throw bad("algorithm is not 'hmac-sha256'");
  const hk = f.hash_key;
  if (typeof hk !== "string" || hk.length % 4 !== 0 || !B64.test(hk)) {
    throw bad("hash_key is not padded standard base64");
  }
  const hashKey = Buffer.from(hk, "base64");
  if (hashKey.length !== 32) throw bad("hash_key is not 32 bytes");
  if (hashKey.toString("base64") !== hk) {
    throw bad("hash_key is not canonical base64 (non-zero trailing bits)");
  }
  try {
    parseTime(f.generated_at, "generated_at");
  } catch (e) {
    throw bad((e as Error).message);
  }
  const revision = f.revision === undefined ? 0 : f.revision;
  if (typeof revision !== "number" || !Number.isSafeInteger(revision) || revision < 0) {
    throw bad("revision is not a non-negative integer");
  }
  const saveDigest = f.save_digest === undefined || f.save_digest === null ? null : f.save_digest;
  if (saveDigest !== null && (typeof saveDigest !== "string" || !SAVE_DIGEST.test(saveDigest))) {
    throw bad("save_digest is not 64 lowercase hex characters");
  }
  if (!Array.isArray(f.keys)) throw bad("keys is not a list");
  const entries: Entry[] = [];
  const seen = new Set<string>();
  let limited = false;
  f.keys.forEach((k: unknown, i: number) => {
    if (typeof k !== "object" || k === null || Array.isArray(k)) {
      throw bad(`entry ${i} is not an object`);
    }
    const e = k as Record<string, unknown>;
    const id = e.id;
    if (typeof id !== "string") throw bad(`entry ${i} has no id`);
    const shown = ID_SHOWN.test(id) ? id : `#${i}`;
    if (seen.has(id)) throw bad(`the id ${shown} appears more than once`);
    seen.add(id);
    if (typeof e.hash !== "string" || !HEX64.test(e.hash)) {
      throw bad(`entry ${shown}: hash is not 64 hex characters`);
    }
    if (typeof e.status !== "string") throw bad(`entry ${shown}: status is not a string`);
    let expires: Instant | null = null;
    if (e.expires_at !== undefined && e.expires_at !== null) {
      try {
        expires = parseTime(e.expires_at, "expires_at");
      } catch (err) {
        throw bad(`entry ${shown}: ${(err as Error).message}`);
      }
    }
    const perms = e.permissions === undefined ? [] : e.permissions;
    if (!Array.isArray(perms) || !perms.every((p) => typeof p === "string")) {
      throw bad(`entry ${shown}: permissions is not a list of strings`);
    }
    const name = e.name === undefined ? null : e.name;
    if (name !== null && typeof name !== "string") {
      throw bad(`entry ${shown}: name is not a string`);
    }
    let limit: RateLimit | null = null;
    if (e.rate_limit !== undefined && e.rate_limit !== null) {
      limit = parseRateLimit(e.rate_limit);
      if (limit === null) {
        throw bad(
          `entry ${shown}: rate_limit is not {"requests": 1 to 1,000,000,000, ` +
            `"window_seconds": 1 to 86,400} with JSON integers`,
        );
      }
      limited = true;
    }
    entries.push(
      new Entry(id, Buffer.from(e.hash, "hex"), e.status === "revoked", expires, perms, name, limit),
    );
  });
  if (limited && !rateLimitNumbersAreIntegers(text)) {
    throw bad("a rate_limit holds a number that is not a JSON integer (such as 60.0 or 6e1)");
  }
  return new State(hashKey, entries, revision, saveDigest);
}

/** RFC 4648 base32, lowercase, without padding. */
function base32(bytes: Uint8Array): string {
  const alphabet = "abcdefghijklmnopqrstuvwxyz234567";
  let out = "";
  let value = 0;
  let bits = 0;
  for (const b of bytes) {
    value = (value << 8) | b;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      out += alphabet[(value >>> bits) & 31];
    }
    value &= (1 << bits) - 1;
  }
  if (bits > 0) out += alphabet[(value << (5 - bits)) & 31];
  return out;
}

/**
 * The fingerprint of a vault's Ed25519 public key (32 raw bytes), as `init`, `slot list` and
 * `check` print it and as `{ trust }` takes it: `mkv1:` and the lowercase, unpadded base32 of the
 * first 20 bytes of its SHA-256 (32 characters).
 */
export function fingerprint(publicKey: Uint8Array): string {
  if (!(publicKey instanceof Uint8Array)) throw new TypeError("publicKey must be a Uint8Array");
  if (publicKey.length !== 32) {
    throw new RangeError(`an Ed25519 public key is 32 bytes, not ${publicKey.length}`);
  }
  return "mkv1:" + base32(createHash("sha256").update(publicKey).digest().subarray(0, 20));
}

/** A trust pin as compared: lowercased, without surrounding whitespace. An empty pin is still a
 * pin (it matches nothing): only undefined and null mean no check. */
function pinOf(trust: string | null | undefined): string | null {
  if (trust === undefined || trust === null) return null;
  if (typeof trust !== "string") {
    throw new TypeError("trust must be a vault fingerprint (a string, mkv1:...) or null");
  }
  return trust.trim().toLowerCase();
}

/**
 * Throws VerifierError unless `data` starts with a signature line by the vault whose fingerprint
 * is `pin`, over the rest of the file (docs/verifier.md, "Signatures and trust pins"). Runs
 * before anything of the file is parsed.
 */
function checkSignature(data: Buffer, pin: string, source: string): void {
  const refused = (problem: string) =>
    new VerifierError(`${source}: not a trusted verifier file: ${problem}`);
  if (!data.subarray(0, SIGNED_PREFIX.length).equals(SIGNED_PREFIX)) {
    throw refused("it is not signed (it does not start with a signature line)");
  }
  // latin1: one character per byte, so the pattern sees the bytes themselves.
  const m = SIGNATURE_LINE.exec(data.subarray(0, SIGNATURE_LINE_BYTES).toString("latin1"));
  if (m === null) throw refused("the signature line is malformed");
  const publicKey = Buffer.from(m[1], "base64");
  const signature = Buffer.from(m[2], "base64");
  if (publicKey.toString("base64") !== m[1] || signature.toString("base64") !== m[2]) {
    throw refused("the signature line is malformed (not canonical base64)");
  }
  const signer = fingerprint(publicKey);
  if (signer !== pin) {
    const shown = FINGERPRINT.test(pin)
      ? pin
      : "pin (which is not a fingerprint: mkv1: and 32 characters a-z, 2-7)";
    throw refused(`it is signed by the vault ${signer}, not by the trusted ${shown}`);
  }
  const message = Buffer.concat([
    SIGNATURE_CONTEXT,
    Buffer.from("{\n", "latin1"),
    data.subarray(m[0].length),
  ]);
  let ok: boolean;
  try {
    const key = createPublicKey({
      key: Buffer.concat([SPKI_ED25519, publicKey]),
      format: "der",
      type: "spki",
    });
    ok = verifySignature(null, message, key, signature);
  } catch {
    ok = false; // a public key that is not a curve point
  }
  if (!ok) throw refused("the signature does not verify (the file was changed after it was signed)");
}

function load(data: Buffer, source: string, pin: string | null): State {
  if (pin !== null) checkSignature(data, pin, source);
  return parse(data, source);
}

type Signature = string;

function readFile(path: string): { sig: Signature; data: Buffer } {
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch (e) {
    throw new VerifierError(
      `${path}: cannot read the verifier file (${(e as NodeJS.ErrnoException).code ?? "error"})`,
    );
  }
  try {
    const st = fstatSync(fd, { bigint: true });
    if (st.size > BigInt(MAX_FILE_BYTES)) {
      throw new VerifierError(`${path}: the verifier file is larger than ${MAX_FILE_BYTES} bytes`);
    }
    const size = Number(st.size);
    const data = Buffer.alloc(size);
    let off = 0;
    while (off < size) {
      const n = readSync(fd, data, off, size - off, off);
      if (n === 0) break;
      off += n;
    }
    return { sig: `${st.mtimeNs}:${st.size}:${st.ino}`, data: data.subarray(0, off) };
  } catch (e) {
    if (e instanceof VerifierError) throw e;
    throw new VerifierError(
      `${path}: cannot read the verifier file (${(e as NodeJS.ErrnoException).code ?? "error"})`,
    );
  } finally {
    closeSync(fd);
  }
}

export interface TrustOptions {
  /**
   * The fingerprint of the vault whose files to accept (`mkv1:...`, as `mcp-key-manager init`,
   * `slot list` and `check` print it; compared lowercased, without surrounding whitespace).
   * Every file must then start with a signature line by that vault over the rest of the file;
   * any other (unsigned, another vault's, changed after signing) is refused like a broken one.
   * Absent or null: the signature is not checked.
   */
  trust?: string | null;
}

export interface FromFileOptions extends TrustOptions {
  /** Called when a changed file is not used (broken, older revision, a save_digest conflict,
   * not signed by the trusted vault, unreadable); once per file version. Default:
   * `console.warn` of the message (path and problem, never a key). */
  onReloadError?: (error: VerifierError) => void;
  /** Milliseconds between looks at the file, at most (default 250). */
  reloadIntervalMs?: number;
}

export interface VerifyOptions {
  /** Permissions the key must all have. */
  require?: readonly string[];
  /** The time to judge expiry at (default: now). */
  now?: Date;
}

/**
 * Verifies presented keys against a verifier file. `Verifier.fromFile(path)` watches the file;
 * `Verifier.fromJSON(text)` is a fixed snapshot; with `{ trust: "mkv1:..." }`, only files signed
 * by the vault of that fingerprint are used.
 */
export class Verifier {
  private state: State;
  private sig: Signature | null;
  private nextCheck: number;
  private reportedSig: string | null = null;
  private readonly interval: number;

  private constructor(
    state: State,
    private readonly path: string | null,
    sig: Signature | null,
    private readonly onReloadError: ((e: VerifierError) => void) | undefined,
    interval: number,
    private readonly pin: string | null,
  ) {
    this.state = state;
    this.sig = sig;
    this.interval = interval;
    this.nextCheck = path === null ? Infinity : performance.now() + interval;
  }

  /**
   * Loads `path` and watches it: at most every 250 ms a `verify` call stats the path and
   * re-reads the file if its (mtime, size, inode) changed (it is replaced by rename). A new file
   * that is broken, whose `revision` is lower than the loaded one, or whose `save_digest`
   * differs from the loaded one's at the same revision (a conflict), is not used: the last good
   * state stays and `onReloadError` is called. With `trust`, every file (the first and each
   * reloaded one) must be signed by that vault. Throws VerifierError if the file cannot be read,
   * is not a valid verifier file or, with `trust`, is not signed by that vault.
   */
  static fromFile(path: string, options: FromFileOptions = {}): Verifier {
    const pin = pinOf(options.trust);
    const { sig, data } = readFile(path);
    return new Verifier(
      load(data, path, pin),
      path,
      sig,
      options.onReloadError,
      options.reloadIntervalMs ?? RELOAD_INTERVAL_MS,
      pin,
    );
  }

  /** A verifier over the given file contents (a string is encoded as UTF-8), never reloaded.
   * `trust` as for `fromFile`: the exact bytes must be signed by that vault. */
  static fromJSON(data: string | Buffer, source = "verifier", options: TrustOptions = {}): Verifier {
    const pin = pinOf(options.trust);
    const bytes = typeof data === "string" ? Buffer.from(data, "utf8") : data;
    return new Verifier(load(bytes, source, pin), null, null, undefined, 0, pin);
  }

  /** The loaded file's revision (0 for files written without one). */
  get revision(): number {
    return this.state.revision;
  }

  /** The loaded file's `save_digest` (the SHA-256 of the vault file it was written from), or
   * null for files written without one. */
  get saveDigest(): string | null {
    return this.state.saveDigest;
  }

  /** How many keys the loaded file holds. */
  get size(): number {
    return this.state.count;
  }

  /**
   * Judges `key` (null/undefined count as MALFORMED). Checks, first failure wins: shape and a
   * format-2 key's checksum (MALFORMED, with `reason` SHAPE or CHECKSUM), lookup (NOT_FOUND),
   * revoked (REVOKED), expiry (EXPIRED), permissions (INSUFFICIENT_PERMISSIONS); else VALID.
   */
  verify(key: string | null | undefined, options: VerifyOptions = {}): Verdict {
    if (performance.now() >= this.nextCheck) this.refresh();
    const state = this.state;
    if (typeof key !== "string") return MALFORMED_VERDICT;
    let e: Entry | undefined;
    if (key.startsWith("mcp_")) {
      const m = MODERN.exec(key);
      if (m === null) return MALFORMED_VERDICT;
      const digest = createHmac("sha256", state.hashKey).update(key, "utf8").digest();
      e = state.byId.get(m[1]);
      if (e === undefined || !timingSafeEqual(e.hash, digest)) return NOT_FOUND_VERDICT;
    } else if (key.length >= 67 && key.length <= 91 && key[key.length - 50] === "_" && LAYOUT2.test(key)) {
      // Format 2: the checksum first (a typo anywhere, the head too, is CHECKSUM), then the
      // head; all before any lookup.
      if (checksum(key.slice(0, -6)) !== key.slice(-6)) return CHECKSUM_VERDICT;
      const m = LAYOUT2.exec(key) as RegExpExecArray;
      if (!HEAD2_EXACT.test(m[1])) return MALFORMED_VERDICT;
      const digest = createHmac("sha256", state.hashKey).update(key, "utf8").digest();
      e = state.byId.get(m[2]);
      if (e === undefined || !timingSafeEqual(e.hash, digest)) return NOT_FOUND_VERDICT;
    } else {
      if (!LEGACY.test(key) || HEAD2.test(key)) return MALFORMED_VERDICT;
      const digest = createHmac("sha256", state.hashKey).update(key, "utf8").digest();
      // A map lookup on a keyed hash: its timing reveals nothing about the key.
      e = state.byHash.get(digest.toString("hex"));
      if (e === undefined) return NOT_FOUND_VERDICT;
    }
    if (e.revoked) return e.revoked_;
    if (e.expires !== null) {
      const nowMs = options.now === undefined ? Date.now() : options.now.getTime();
      if (e.expires.ms < nowMs || (e.expires.ms === nowMs && e.expires.subNs === 0)) {
        return e.expired;
      }
    }
    const require = options.require;
    if (require !== undefined) {
      for (const p of require) if (!permits(e.perms, p)) return e.insufficient;
    }
    return e.valid;
  }

  /**
   * Looks at the file now (normally `verify` does this by itself at most every 250 ms).
   * Returns true if a new state was installed. Never throws for a bad file.
   */
  refresh(): boolean {
    if (this.path === null) return false;
    this.nextCheck = performance.now() + this.interval;
    let st;
    try {
      st = statSync(this.path, { bigint: true });
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code ?? "error";
      this.report(
        new VerifierError(
          `${this.path}: cannot stat the verifier file (${code}); keeping revision ${this.state.revision}`,
        ),
        `stat:${code}`,
      );
      return false;
    }
    if (`${st.mtimeNs}:${st.size}:${st.ino}` === this.sig) return false;
    let file;
    try {
      file = readFile(this.path);
    } catch (e) {
      this.report(e as VerifierError, `read:${(e as Error).message}`);
      return false;
    }
    if (file.sig === this.sig) return false;
    this.sig = file.sig;
    let state: State;
    try {
      state = load(file.data, this.path, this.pin);
    } catch (e) {
      this.report(
        new VerifierError(`${(e as Error).message}; keeping revision ${this.state.revision}`),
        file.sig,
      );
      return false;
    }
    if (state.revision < this.state.revision) {
      this.report(
        new VerifierError(
          `${this.path}: revision ${state.revision} is older than the loaded revision ${this.state.revision}; not used`,
        ),
        file.sig,
      );
      return false;
    }
    const loaded = this.state;
    if (
      state.revision === loaded.revision &&
      state.saveDigest !== null &&
      loaded.saveDigest !== null &&
      state.saveDigest !== loaded.saveDigest
    ) {
      const shown = (d: string) => `${d.slice(0, 12)}...`;
      this.report(
        new VerifierError(
          `${this.path}: revision ${state.revision} with save_digest ${shown(state.saveDigest)} ` +
            `conflicts with the loaded revision ${loaded.revision} (save_digest ` +
            `${shown(loaded.saveDigest)}): two vault saves claim that revision (was the vault ` +
            "restored from a backup and changed again?); not used",
        ),
        file.sig,
      );
      return false;
    }
    this.state = state;
    return true;
  }

  private report(error: VerifierError, sig: string): void {
    if (this.reportedSig === sig) return; // once per file version, not on every look
    this.reportedSig = sig;
    if (this.onReloadError !== undefined) {
      try {
        this.onReloadError(error);
      } catch {
        // A faulty callback must not break verification.
      }
    } else {
      console.warn(`mcp-key-verifier: ${error.message}`);
    }
  }
}

/** Permissions with a name form: holding one grants `<it>:<NAME>` for every NAME. */
const NAMED = ["tools:call", "prompts:get"] as const;

/**
 * Whether a key holding the permissions `held` has `required` (docs/verifier.md): it holds it
 * exactly, or `required` is `tools:call:NAME` and it holds `tools:call`, or `prompts:get:NAME`
 * and it holds `prompts:get`. Otherwise matching is exact and case-sensitive; a narrow permission
 * never grants a broad one (`resources:read` has no name form). `Verifier.verify` and the
 * middleware use this rule.
 */
export function permits(held: Iterable<string>, required: string): boolean {
  const set: ReadonlySet<string> = held instanceof Set ? held : new Set(held);
  if (set.has(required)) return true;
  for (const broad of NAMED) {
    if (required.startsWith(broad) && required[broad.length] === ":") return set.has(broad);
  }
  return false;
}

type HeaderValue = string | readonly string[] | null | undefined;

/** Only SP and HTAB are trimmed (HTTP's optional whitespace). */
function trimOws(s: string): string {
  return s.replace(/^[ \t]+|[ \t]+$/g, "");
}

/** A key is non-empty visible ASCII: no whitespace, control or non-ASCII character. */
const KEY_CHARS = /^[\x21-\x7e]+$/;

function clean(s: string): string | undefined {
  const t = trimOws(s);
  return KEY_CHARS.test(t) ? t : undefined;
}

function single(v: HeaderValue): string | undefined | null {
  if (v === null || v === undefined) return undefined;
  if (typeof v === "string") return v;
  if (v.length === 0) return undefined;
  return v.length === 1 ? v[0] : null; // repeated: ambiguous, so no key
}

/**
 * The presented key from `X-API-Key` or `Authorization: Bearer`, or undefined (docs/verifier.md,
 * "Header rule"). Each header is absent, a string (sent once) or the array of every value it was
 * sent with; a header sent two or more times gives no key. When `X-API-Key` is present it alone
 * decides; otherwise `Authorization` must be the scheme `bearer` (any case), one or more SP/HTAB
 * and the key. Only SP and HTAB are trimmed; the key must be non-empty visible ASCII.
 */
export function keyFromHeaders(xApiKey: HeaderValue, authorization: HeaderValue): string | undefined {
  const x = single(xApiKey);
  const a = single(authorization);
  if (x === null || a === null) return undefined;
  if (x !== undefined) return clean(x);
  if (a === undefined) return undefined;
  const auth = trimOws(a);
  const sp = auth.indexOf(" ");
  const tab = auth.indexOf("\t");
  const cut = sp < 0 ? tab : tab < 0 ? sp : Math.min(sp, tab);
  if (cut < 0 || auth.slice(0, cut).toLowerCase() !== "bearer") return undefined;
  return clean(auth.slice(cut + 1));
}

/** Every value of header `name` (lower case) as received: Node joins a repeated `X-API-Key`
 * with ", " and keeps only the first `Authorization` in `req.headers`, so those are not used. */
function headerValues(req: IncomingMessage, name: string): string[] {
  const distinct = (req as { headersDistinct?: Record<string, string[] | undefined> })
    .headersDistinct;
  if (distinct !== undefined) return distinct[name] ?? [];
  const raw = req.rawHeaders;
  if (raw !== undefined) {
    const out: string[] = [];
    for (let i = 0; i + 1 < raw.length; i += 2) {
      if (raw[i].toLowerCase() === name) out.push(raw[i + 1]);
    }
    return out;
  }
  // A request object made by hand (a test, a framework adapter): its parsed headers.
  const v = req.headers[name];
  return v === undefined ? [] : typeof v === "string" ? [v] : v;
}

/**
 * What a JSON-RPC message (or batch) needs: a list of alternatives, each satisfied by any one of
 * its permissions. `tools/call` of X: `tools:call` or `tools:call:X`; `resources/read`:
 * `resources:read`; `prompts/get` of P: `prompts:get` or `prompts:get:P`; else nothing.
 */
export function neededPermissions(message: unknown): string[][] {
  const needs: string[][] = [];
  for (const msg of Array.isArray(message) ? message : [message]) {
    if (typeof msg !== "object" || msg === null) continue;
    const { method, params } = msg as { method?: unknown; params?: unknown };
    if (typeof method !== "string") continue;
    const name =
      typeof params === "object" && params !== null ? (params as { name?: unknown }).name : undefined;
    const need = neededFor(method, typeof name === "string" ? name : null);
    if (need !== null) needs.push(need);
  }
  return needs;
}

/** Prefix of `AuthInfo.token`: it holds `mcp-key-id:<id>`, never the presented key. */
export const TOKEN_PREFIX = "mcp-key-id:";
/** `expiresAt` reported for keys that never expire: 9999-12-31T23:59:59Z in Unix seconds
 * (the SDK's `requireBearerAuth` refuses an AuthInfo without a numeric `expiresAt`). */
export const NEVER_EXPIRES = 253402300799;

/** The SDK's `AuthInfo` shape (`@modelcontextprotocol/sdk/server/auth/types.js`). */
export interface AuthInfo {
  token: string;
  clientId: string;
  scopes: string[];
  expiresAt?: number;
  resource?: URL;
  extra?: Record<string, unknown>;
}

/** The verdict as the SDK's `AuthInfo`: `token` is `mcp-key-id:<id>` (never the key),
 * `clientId` the key id, `scopes` its permissions, `expiresAt` Unix seconds, `resource` the
 * configured resource (if any), and `extra` the full verdict (with `name`) and `subject` (the key
 * id, as for a token its `sub`). */
export function authInfoOf(v: Verdict, resource?: string | null): AuthInfo {
  const info: AuthInfo = {
    token: TOKEN_PREFIX + (v.keyId ?? ""),
    clientId: v.keyId ?? "",
    scopes: [...v.permissions],
    expiresAt:
      v.expiresAt === null ? NEVER_EXPIRES : Math.floor(v.expiresAt.getTime() / 1000),
    extra: { verdict: v, keyId: v.keyId, name: v.name, subject: v.keyId },
  };
  if (resource) info.resource = new URL(resource);
  return info;
}

/** A verified access token as the SDK's `AuthInfo`: `token` is `jwt-sha256:<hex>` (never the
 * token), `clientId` its `sub` (else `client_id`/`azp`), `scopes` the scope claim's values,
 * `expiresAt` its `exp`, `resource` the configured resource, and `extra` the `subject`, `issuer`,
 * `clientId` claim and the verified `claims`. */
export function authInfoOfToken(t: TokenVerdict, resource: string): AuthInfo {
  return {
    token: ACCESS_TOKEN_PREFIX + (t.digest ?? ""),
    clientId: t.subject ?? t.clientId ?? "",
    scopes: [...t.scopes],
    expiresAt: t.expiresAt === null ? undefined : Math.floor(t.expiresAt.getTime() / 1000),
    resource: new URL(resource),
    extra: { subject: t.subject, issuer: t.issuer, clientId: t.clientId, claims: t.claims },
  };
}

const REASONS: Record<string, string> = {
  MALFORMED: "the API key is malformed",
  NOT_FOUND: "unknown API key",
  REVOKED: "the API key was revoked",
  EXPIRED: "the API key has expired",
};
const NO_KEY = "no API key presented (send X-API-Key or Authorization: Bearer)";
const NO_CREDENTIALS = "no access token or API key presented (send Authorization: Bearer)";
const HEADER_SAFE = /^[\x21\x23-\x5b\x5d-\x7e]+$/;

/** Largest body read when tool permissions are on. */
export const MAX_BODY_BYTES = 1024 * 1024;

/** OAuth access tokens beside keys (docs/oauth.md): on when `resource` and at least one issuer
 * are set. */
export interface OAuthOptions {
  /** This server's canonical URI (RFC 8707), e.g. `https://mcp.example.com/mcp`: the audience
   * every token must carry. Alone (no issuers) it only adds `resource_metadata` to the
   * challenges and serves the metadata. */
  resource?: string;
  /** Authorization servers whose tokens are accepted (each exactly as its tokens' `iss`): keys
   * discovered (RFC 8414, then OpenID) unless `jwks` or the issuer's own `jwks` is given. */
  issuers?: readonly (string | IssuerOptions)[];
  /** A JWK Set, or the path of its file (re-read when it changes): the keys of every issuer
   * given as a string, with no discovery. */
  jwks?: JwksSource;
  /** The claim holding a token's permissions (default `scope`; an array such as `scp` works). */
  scopeClaim?: string;
  /** What the metadata's `scopes_supported` advertises. */
  scopesSupported?: readonly string[];
  /** Called when an issuer's keys cannot be fetched or its JWK Set file used (default
   * `console.warn`); never given a token. */
  onJwksError?: (error: Error) => void;
}

interface OAuthSetup {
  tokens: AccessTokenVerifier | null;
  resource: string | null;
  /** `, resource_metadata="<URL>"`, or "" without a resource. */
  challenge: string;
}

function oauthSetup(options: OAuthOptions): OAuthSetup {
  const issuers = options.issuers ?? [];
  const resource = options.resource ?? null;
  if (resource === null && (issuers.length > 0 || options.jwks !== undefined)) {
    throw new TypeError("access tokens need `resource` (this server's canonical URI) beside `issuers`");
  }
  if (issuers.length === 0 && options.jwks !== undefined) throw new TypeError("`jwks` needs `issuers`");
  const tokens =
    resource !== null && issuers.length > 0
      ? new AccessTokenVerifier({
          resource,
          issuers,
          jwks: options.jwks,
          scopeClaim: options.scopeClaim,
          onJwksError: options.onJwksError,
        })
      : null;
  return {
    tokens,
    resource,
    challenge: resource === null ? "" : `, resource_metadata="${resourceMetadataUrl(resource)}"`,
  };
}

export interface ApiKeyAuthOptions extends OAuthOptions {
  verifier: Verifier;
  /** Permissions every request needs. */
  require?: readonly string[];
  /** MCP-shaped permissions from the JSON-RPC body (tools/call of X needs tools:call or
   * tools:call:X, …). The body is read (at most 1 MiB) unless a body parser already set
   * `req.body`, and left parsed on `req.body`: pass `req.body` to `transport.handleRequest`.
   * The `Mcp-Method`/`Mcp-Name` headers (MCP 2026-07-28, SEP-2243) are read too: unusable ones
   * are 400 `-32020` `BAD_ROUTING`, a body that disagrees with them 400 `-32020`
   * `HEADER_MISMATCH`, and a request without a body is judged from them. */
  toolPermissions?: boolean;
  maxBodyBytes?: number;
  /** Called for every refusal of an identified key (revoked, expired, lacking a permission,
   * over its rate limit), as `serve` and the Python middleware log them; unknown and malformed
   * keys are not reported (anyone can send them). Default: `console.info` of the path, the
   * code, the key id and what was missing: never the key. */
  onRefusal?: (refusal: Refusal) => void;
  /** Enforce each key's `rate_limit` in this process (default true): 429 over the limit. */
  rateLimits?: boolean;
  /** The Limiter to count in (to share one between middlewares); default: one of its own. */
  limiter?: Limiter;
}

/** A refusal of an identified key: what `onRefusal` receives. */
export interface Refusal {
  readonly path: string;
  readonly code: Code | "RATE_LIMITED";
  readonly keyId: string;
  /** The permissions the request needed and the key lacked (403 only). */
  readonly missing: readonly string[];
}

function logRefusal(r: Refusal): void {
  // The path comes from the client: control characters are escaped so a log line stays one.
  const path = r.path.replace(/[\x00-\x1f\x7f-\x9f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`);
  const needs = r.missing.length > 0 ? ` (needs ${r.missing.join(" ")})` : "";
  console.info(`mcp-key-verifier: ${path} refused: ${r.code} for key id ${r.keyId}${needs}`);
}

type Req = IncomingMessage & { auth?: AuthInfo; body?: unknown; _body?: boolean };
type Next = (err?: unknown) => void;

function errorBody(code: number, message: string, dataCode: string, data: Record<string, unknown> = {}): string {
  return JSON.stringify({
    jsonrpc: "2.0",
    id: null,
    error: { code, message, data: { code: dataCode, ...data } },
  });
}

/** JSON-RPC error code of the 429 answer (a key over its rate limit). */
export const RATE_LIMITED = -32029;

function rateLimitedBody(limit: RateLimit, d: Decision): string {
  const secs = retryAfterSeconds(d);
  return errorBody(
    RATE_LIMITED,
    `rate limit exceeded for this API key (${formatRateLimit(limit)}); retry after ${secs} s`,
    "RATE_LIMITED",
    { retry_after: secs },
  );
}

function respond(
  res: ServerResponse,
  status: number,
  body: string,
  wwwAuth?: string,
  headers: Record<string, string> = {},
): void {
  res.statusCode = status;
  res.setHeader("Content-Type", "application/json");
  res.setHeader("Content-Length", Buffer.byteLength(body));
  res.setHeader("Cache-Control", "no-store");
  if (wwwAuth !== undefined) res.setHeader("WWW-Authenticate", wwwAuth);
  for (const [name, value] of Object.entries(headers)) res.setHeader(name, value);
  res.end(body);
}

/** 401 for a refused key or token; `challenge` is the `resource_metadata` parameter or "". */
function unauthorized(res: ServerResponse, reason: string, code: string, challenge: string): void {
  respond(
    res,
    401,
    errorBody(-32001, reason, code),
    `Bearer error="invalid_token", error_description="${reason}"${challenge}`,
  );
}

function forbidden(res: ServerResponse, missing: string[], token: boolean, challenge: string): void {
  const s = missing.length > 1 ? "s" : "";
  const reason = token
    ? `the access token lacks the scope${s}: ${missing.join(" ")}`
    : `the API key lacks the permission${s}: ${missing.join(" ")}`;
  respond(
    res,
    403,
    errorBody(-32003, reason, "INSUFFICIENT_PERMISSIONS"),
    `Bearer error="insufficient_scope", scope="${missing.join(" ")}"${challenge}`,
  );
}

/** What a request needs under tool permissions, or the answer refusing it: the routing headers
 * first (SEP-2243, before the body is read, as the Rust layer), then the body, read (at most
 * `limit` bytes) and left parsed on `req.body` as express.json() would, unless a body parser has
 * already set `req.body`. A body must agree with the routing headers; without a body, the headers
 * (when sent) say what the request needs. */
async function needsOf(req: Req, limit: number): Promise<{ needs: string[][] } | { status: number; body: string }> {
  let route: Routing | null;
  try {
    route = readRouting(req.method, (name) => headerValues(req, name));
  } catch (e) {
    if (e instanceof BadRouting) return { status: 400, body: errorBody(HEADER_MISMATCH, e.reason, "BAD_ROUTING") };
    throw e;
  }
  let message: unknown = req.body; // a body parser ran before us
  if (message === undefined) {
    const body = await readBody(req, limit);
    if (body === "too-large") {
      return { status: 413, body: errorBody(-32600, `the request body is larger than ${limit} bytes`, "BODY_TOO_LARGE") };
    }
    if (blank(body)) return { needs: neededFromHeaders(route) };
    const text = utf8(body);
    try {
      if (text === null) throw new SyntaxError("not UTF-8");
      message = JSON.parse(text);
    } catch {
      return { status: 400, body: errorBody(-32700, "the body is not JSON", "PARSE_ERROR") };
    }
    // Left parsed: pass req.body on to the transport.
    req.body = message;
    req._body = true;
  }
  // An edge may have authorized on the headers: the body must say the same.
  if (route !== null && !bodyMatches(route, message)) {
    return { status: 400, body: errorBody(HEADER_MISMATCH, MISMATCH_MESSAGE, "HEADER_MISMATCH") };
  }
  return { needs: neededPermissions(message) };
}

function readBody(req: Req, limit: number): Promise<Buffer | "too-large"> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers["content-length"]);
    if (Number.isFinite(declared) && declared > limit) {
      resolve("too-large");
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    req.on("data", (chunk: Buffer) => {
      if (done) return;
      size += chunk.length;
      if (size > limit) {
        done = true;
        resolve("too-large");
        return;
      }
      chunks.push(chunk);
    });
    req.on("end", () => {
      if (!done) {
        done = true;
        resolve(Buffer.concat(chunks));
      }
    });
    req.on("error", (e) => {
      if (!done) {
        done = true;
        reject(e);
      }
    });
  });
}

/**
 * Express/Connect middleware: only requests with a good key (or, with `resource` and `issuers`,
 * a good access token) reach the next handler. 401 (missing, malformed, unknown, revoked,
 * expired) and 403 (missing permission) carry `WWW-Authenticate` and a JSON-RPC error body.
 * Admitted requests get `req.auth`: the SDK's `AuthInfo` shape (`clientId` = key id or the
 * token's `sub`, `scopes` = permissions, `token` = `mcp-key-id:<id>` or `jwt-sha256:<hex>`, never
 * the key or token; `extra.verdict` = a key's verdict), which `StreamableHTTPServerTransport`
 * hands to tool handlers as `extra.authInfo`.
 *
 * A key whose entry has a `rate_limit` is limited in this process (docs/verifier.md, "Rate
 * limits"), counting only requests that pass every other check: admitted answers carry
 * `RateLimit-Policy` and `RateLimit`; over the limit, 429 with `Retry-After`, the same two
 * headers and a JSON-RPC error body (`-32029`, `data.code` `RATE_LIMITED`, `data.retry_after`).
 * Tokens are not limited (limits belong to vault keys).
 *
 * With `resource`, every challenge carries `resource_metadata`, a request without credentials
 * gets `Bearer resource_metadata="…"` (and `scope` when it needs one; docs/oauth.md, "Answers"),
 * and the metadata routes are answered when they reach this middleware (mounted at the root);
 * mounted on a path, add `protectedResourceMetadata(options)` at the root.
 */
export function apiKeyAuth(options: ApiKeyAuthOptions): (req: Req, res: ServerResponse, next: Next) => void {
  const { verifier, toolPermissions = false } = options;
  if (!(verifier instanceof Verifier)) throw new TypeError("verifier must be a Verifier");
  const require = [...(options.require ?? [])];
  const limit = options.maxBodyBytes ?? MAX_BODY_BYTES;
  const onRefusal = options.onRefusal ?? logRefusal;
  if (options.limiter !== undefined && !(options.limiter instanceof Limiter)) {
    throw new TypeError("limiter must be a Limiter");
  }
  const limiter = options.rateLimits === false ? null : (options.limiter ?? new Limiter());
  const { tokens, resource, challenge } = oauthSetup(options);
  const metadata = resource === null ? null : protectedResourceMetadata({ ...options, resource });

  /** What `held` lacks for `needs`: of each need, the narrowest permission that fits in a
   * header (`tools:call:add` rather than `tools:call`): only what this request needs. */
  const missingFor = (held: readonly string[], needs: string[][]): string[] => {
    const missing: string[] = [];
    for (const alternatives of needs) {
      if (!alternatives.some((p) => permits(held, p))) {
        let narrow = alternatives[alternatives.length - 1];
        if (!HEADER_SAFE.test(narrow)) narrow = alternatives[0];
        if (!missing.includes(narrow)) missing.push(narrow);
      }
    }
    return missing;
  };

  return (req, res, next) => {
    if (metadata !== null) {
      let passed = false;
      metadata(req, res, () => (passed = true)); // answers synchronously, or passes
      if (!passed) return;
    }
    // Every value of each header: one sent twice gives no key.
    const xApiKey = headerValues(req, "x-api-key");
    const authorization = headerValues(req, "authorization");
    const key = keyFromHeaders(xApiKey, authorization);

    /** Tool permissions (with `held`), then `admit`; `refused` reports a 403. */
    const authorize = (held: readonly string[], token: boolean, admit: () => void, refused: (m: string[]) => void) => {
      if (!toolPermissions) {
        admit();
        return;
      }
      needsOf(req, limit).then((got) => {
        if ("status" in got) {
          respond(res, got.status, got.body);
          return;
        }
        const missing = missingFor(held, got.needs);
        if (missing.length > 0) {
          refused(missing);
          forbidden(res, missing, token, challenge);
        } else admit();
      }, next);
    };

    // A Bearer value of the JWT shape is an access token (X-API-Key carries keys only).
    if (tokens !== null && xApiKey.length === 0 && key !== undefined && isJwtShape(key)) {
      tokens.verify(key).then((t) => {
        if (!t.valid) {
          unauthorized(res, t.reason ?? "the access token was refused", t.code, challenge);
          return;
        }
        const missing = require.filter((p) => !permits(t.scopes, p));
        if (missing.length > 0) {
          forbidden(res, missing, true, challenge);
          return;
        }
        authorize(
          t.scopes,
          true,
          () => {
            req.auth = authInfoOfToken(t, tokens.resource);
            next();
          },
          () => {},
        );
      }, next);
      return;
    }

    if (resource !== null && xApiKey.length === 0 && authorization.length === 0) {
      // No credentials at all: no error code (RFC 6750 §3.1), where to get a token (RFC 9728
      // §5.1) and the scope this request needs, if any.
      const answer = (needs: string[]) => {
        const scope = needs.length > 0 ? `, scope="${needs.join(" ")}"` : "";
        respond(
          res,
          401,
          errorBody(-32001, tokens !== null ? NO_CREDENTIALS : NO_KEY, "MALFORMED"),
          `Bearer ${challenge.slice(2)}${scope}`,
        );
      };
      const needs = require.filter((p) => HEADER_SAFE.test(p));
      if (!toolPermissions) {
        answer(needs);
        return;
      }
      needsOf(req, limit).then(
        (got) => answer("needs" in got ? [...new Set([...needs, ...missingFor([], got.needs)])] : needs),
        next,
      );
      return;
    }

    const v = verifier.verify(key, { require });
    const refused = (code: Code | "RATE_LIMITED", missing: readonly string[]) => {
      if (v.keyId !== null) onRefusal({ path: (req.url ?? "").split("?")[0], code, keyId: v.keyId, missing });
    };
    if (!v.valid) {
      if (v.code === "INSUFFICIENT_PERMISSIONS") {
        const missing = require.filter((p) => !permits(v.permissions, p));
        refused(v.code, missing);
        forbidden(res, missing, false, challenge);
      } else {
        refused(v.code, []);
        const reason = key === undefined ? NO_KEY : (REASONS[v.code] ?? "the API key was refused");
        unauthorized(res, reason, v.code, challenge);
      }
      return;
    }
    const admit = () => {
      // Last: only a request that passed every other check uses its key's quota.
      if (limiter !== null && v.rateLimit !== null && v.keyId !== null) {
        const d = limiter.check(v.keyId, v.rateLimit);
        const headers = rateLimitHeaders(v.rateLimit, d);
        if (!d.allowed) {
          refused("RATE_LIMITED", []);
          respond(res, 429, rateLimitedBody(v.rateLimit, d), undefined, headers);
          return;
        }
        for (const [name, value] of Object.entries(headers)) res.setHeader(name, value);
      }
      req.auth = authInfoOf(v, resource);
      next();
    };
    authorize(v.permissions, false, admit, (missing) => refused("INSUFFICIENT_PERMISSIONS", missing));
  };
}

export interface TokenVerifierOptions extends OAuthOptions {
  /** Permissions the key or token must have (else it is refused with 401; for a 403, use
   * `requireBearerAuth({ requiredScopes })` instead, which the SDK checks itself). */
  require?: readonly string[];
  /** The SDK's `InvalidTokenError` class. By default it is imported from
   * `@modelcontextprotocol/sdk/server/auth/errors.js` the first time a token is refused. */
  InvalidTokenError?: new (message: string) => Error;
}

/** The SDK's `OAuthTokenVerifier` interface. */
export interface OAuthTokenVerifier {
  verifyAccessToken(token: string): Promise<AuthInfo>;
}

let sdkInvalidTokenError: Promise<new (message: string) => Error> | undefined;

/**
 * An `OAuthTokenVerifier` for the SDK's `requireBearerAuth({ verifier: tokenVerifier(v) })`.
 * A key that verifies gives `authInfoOf(verdict)`; with `resource` and `issuers`, a value of the
 * JWT shape is checked as an access token instead and gives `authInfoOfToken(verdict)`. Any other
 * is refused by throwing the SDK's `InvalidTokenError` (401), whose message names the verdict
 * code or why the token was refused, never the key or token. Rate limits are not enforced here (a
 * token verifier can only admit or answer 401, and a key over its limit is no invalid token): put
 * `apiKeyAuth` in front for them.
 *
 * The SDK refuses an `AuthInfo` whose `expiresAt` has passed, so a token in its last 60 s of
 * clock skew is refused there although it verifies here.
 */
export function tokenVerifier(verifier: Verifier, options: TokenVerifierOptions = {}): OAuthTokenVerifier {
  if (!(verifier instanceof Verifier)) throw new TypeError("verifier must be a Verifier");
  const require = [...(options.require ?? [])];
  const { tokens, resource } = oauthSetup(options);
  const refuse = async (message: string): Promise<never> => {
    let Invalid = options.InvalidTokenError;
    if (Invalid === undefined) {
      sdkInvalidTokenError ??= import(
        // A string the compiler does not resolve: the SDK is a peer, present where it is used.
        "@modelcontextprotocol/sdk/server/auth/errors.js" as string
      ).then(
        (m: { InvalidTokenError: new (message: string) => Error }) => m.InvalidTokenError,
        // Without the SDK the refusal still happens, as a plain error (the SDK answers 500).
        () => Error,
      );
      Invalid = await sdkInvalidTokenError;
    }
    throw new Invalid(message);
  };
  return {
    async verifyAccessToken(token: string): Promise<AuthInfo> {
      if (tokens !== null && typeof token === "string" && isJwtShape(token)) {
        const t = await tokens.verify(token);
        if (!t.valid) return refuse(t.reason ?? "the access token was refused");
        if (!require.every((p) => permits(t.scopes, p))) return refuse("the access token lacks a required scope");
        return authInfoOfToken(t, tokens.resource);
      }
      const v = verifier.verify(token, { require });
      if (v.valid) return authInfoOf(v, resource);
      return refuse(REASONS[v.code] ?? `the API key lacks a required permission`);
    },
  };
}
