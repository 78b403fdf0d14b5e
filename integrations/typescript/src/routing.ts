/**
 * The MCP routing headers under tool permissions: `Mcp-Method` and `Mcp-Name` (MCP 2026-07-28,
 * SEP-2243), read from the raw header values and checked against the JSON-RPC body.
 *
 * The rules of the Rust crate's `mcp_key_verifier::routing` and of its tower layer, word for word
 * in the answers (`tests/vectors/verifier/routing.json` holds all three to them):
 * - `Mcp-Method` sent more than once, or with a character other than visible ASCII, SP or HTAB:
 *   400; likewise `Mcp-Name` and `MCP-Protocol-Version` when `Mcp-Method` is present (without it
 *   neither is read). Values are trimmed of SP and HTAB.
 * - `Mcp-Name` is required with `tools/call`, `prompts/get` and `resources/read`, and may come in
 *   the Base64 sentinel form `=?base64?<canonical base64 of UTF-8>?=`; a malformed sentinel: 400.
 * - A POST claiming `MCP-Protocol-Version: 2026-07-28` (one value) without `Mcp-Method`: 400.
 * - A body, when one comes, must say what the headers say (the method; the name, or the `uri` of
 *   `resources/read`): else 400 `HEADER_MISMATCH`. A batch never matches them. Without a body, the
 *   headers decide what the request needs.
 *
 * Invariant: fail closed. A header/body disagreement is refused, so a client cannot name one tool
 * in the headers (where an edge proxy may have authorized it) and call another in the body. No
 * function here throws on any input but `BadRouting` (from `readRouting`/`routing`).
 */

/** The protocol versions whose clients must send `Mcp-Method` on every POST (an allowlist). */
export const CHECKED_VERSIONS: readonly string[] = Object.freeze(["2026-07-28"]);
/** JSON-RPC error code of a refusal for the routing headers (SEP-2243). */
export const HEADER_MISMATCH = -32020;
/** The message of a `HEADER_MISMATCH` refusal. */
export const MISMATCH_MESSAGE = "the Mcp-Method/Mcp-Name headers do not match the request body";

const METHOD_REPEATED = "the Mcp-Method header is repeated or not ASCII";
const NAME_REPEATED = "the Mcp-Name header is repeated or not ASCII";
const VERSION_REPEATED = "the MCP-Protocol-Version header is repeated or not ASCII";
const BAD_SENTINEL = "the Mcp-Name header carries a malformed base64 sentinel";
const NAME_MISSING = "the Mcp-Name header is required with this Mcp-Method";
const METHOD_MISSING = "the Mcp-Method header is required on every POST with MCP-Protocol-Version 2026-07-28";

/** Visible ASCII, SP and HTAB (Node gives a header value one character per byte). */
const READABLE = /^[\t\x20-\x7e]*$/;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
const PREFIX = "=?base64?";
const SUFFIX = "?=";
/** The body's member that `Mcp-Name` mirrors, per name-bearing method. */
const NAME_KEY: Readonly<Record<string, string>> = Object.freeze({
  "tools/call": "name",
  "prompts/get": "name",
  "resources/read": "uri",
});
/** Strict UTF-8 that keeps a leading BOM (as Rust's and Python's decoders do). */
const UTF8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** The routing headers cannot be used: answered 400, JSON-RPC `-32020`, `data.code`
 * `BAD_ROUTING`, with `reason` as the message. */
export class BadRouting extends Error {
  readonly reason: string;
  constructor(reason: string) {
    super(reason);
    this.name = "BadRouting";
    this.reason = reason;
  }
}

/** The routing headers of one request: `Mcp-Method`, and `Mcp-Name` decoded from the sentinel
 * form (null when not sent). */
export interface Routing {
  readonly method: string;
  readonly name: string | null;
}

function one(values: readonly string[], why: string): string | null {
  if (values.length === 0) return null;
  if (values.length > 1 || !READABLE.test(values[0])) throw new BadRouting(why);
  return values[0].replace(/^[ \t]+|[ \t]+$/g, "");
}

/** What Rust's `trim_ascii` removes: SP, HTAB, LF, CR and FF. */
function trimAsciiWhitespace(s: string): string {
  return s.replace(/^[ \t\n\r\f]+|[ \t\n\r\f]+$/g, "");
}

/** Whether a request claiming a `CHECKED_VERSIONS` protocol version (exactly one
 * `MCP-Protocol-Version` value) sent no `Mcp-Method`: on a POST, answered 400. */
export function methodMissing(method: readonly string[], version: readonly string[]): boolean {
  return method.length === 0 && version.length === 1 && CHECKED_VERSIONS.includes(trimAsciiWhitespace(version[0]));
}

/** `=?base64?…?=` decoded (canonical Base64 of UTF-8 only); any other value as it is; null for a
 * malformed sentinel. */
export function decodeName(raw: string): string | null {
  if (!raw.startsWith(PREFIX) || !raw.slice(PREFIX.length).endsWith(SUFFIX)) return raw;
  const payload = raw.slice(PREFIX.length, raw.length - SUFFIX.length);
  if (!BASE64.test(payload)) return null;
  const bytes = Buffer.from(payload, "base64");
  // The encoder writes only the canonical form; another spelling of the same bytes could match a
  // body value by accident (Node's decoder also skips what is not Base64).
  if (bytes.toString("base64") !== payload) return null;
  try {
    return UTF8.decode(bytes);
  } catch {
    return null;
  }
}

/** The routing headers from every value of `Mcp-Method`, `Mcp-Name` and `MCP-Protocol-Version`
 * (in order); null when no `Mcp-Method` was sent. Throws `BadRouting` for a header that is
 * repeated or unreadable, a malformed sentinel, or a name-bearing method without `Mcp-Name`. */
export function routing(method: readonly string[], name: readonly string[], version: readonly string[]): Routing | null {
  const m = one(method, METHOD_REPEATED);
  if (m === null) return null;
  const raw = one(name, NAME_REPEATED);
  let n: string | null = null;
  if (raw !== null) {
    n = decodeName(raw);
    if (n === null) throw new BadRouting(BAD_SENTINEL);
  }
  if (n === null && Object.hasOwn(NAME_KEY, m)) throw new BadRouting(NAME_MISSING);
  one(version, VERSION_REPEATED);
  return { method: m, name: n };
}

/** The routing headers of a request (its HTTP method, and every value of a header by its
 * lower-case name), or null when it sent no `Mcp-Method`. Throws `BadRouting` as `routing` does,
 * and for a POST that claims protocol 2026-07-28 without `Mcp-Method`. */
export function readRouting(httpMethod: string | undefined, values: (name: string) => readonly string[]): Routing | null {
  const method = values("mcp-method");
  const version = values("mcp-protocol-version");
  if (httpMethod === "POST" && methodMissing(method, version)) throw new BadRouting(METHOD_MISSING);
  return routing(method, values("mcp-name"), version);
}

/** What one message needs beyond the always-required permissions (alternatives, any one of which
 * satisfies it), or null when the method needs nothing more. */
export function neededFor(method: string, name: string | null): string[] | null {
  if (method === "tools/call") return name !== null ? ["tools:call", `tools:call:${name}`] : ["tools:call"];
  if (method === "resources/read") return ["resources:read"];
  if (method === "prompts/get") return name !== null ? ["prompts:get", `prompts:get:${name}`] : ["prompts:get"];
  return null;
}

/** What a request without a body needs, from its routing headers (nothing without them). */
export function neededFromHeaders(r: Routing | null): string[][] {
  const need = r === null ? null : neededFor(r.method, r.name);
  return need === null ? [] : [need];
}

/** Whether the body's message says what the headers say: the same method and, for a
 * name-bearing method, the same name (`uri` for `resources/read`). A batch never matches. */
export function bodyMatches(r: Routing, message: unknown): boolean {
  if (typeof message !== "object" || message === null || Array.isArray(message)) return false;
  const { method, params } = message as { method?: unknown; params?: unknown };
  if (typeof method !== "string" || method !== r.method) return false;
  if (!Object.hasOwn(NAME_KEY, method)) return true;
  const value =
    typeof params === "object" && params !== null && !Array.isArray(params)
      ? (params as Record<string, unknown>)[NAME_KEY[method]]
      : undefined;
  return typeof value === "string" && value === r.name;
}

/** Whether a body is no body: empty, or ASCII whitespace only (SP, HTAB, LF, CR, FF). */
export function blank(body: Uint8Array): boolean {
  for (const b of body) {
    if (b !== 0x20 && b !== 0x09 && b !== 0x0a && b !== 0x0d && b !== 0x0c) return false;
  }
  return true;
}

/** The body as strict UTF-8 (a leading BOM kept), or null when it is not UTF-8. */
export function utf8(body: Uint8Array): string | null {
  try {
    return UTF8.decode(body);
  } catch {
    return null;
  }
}
