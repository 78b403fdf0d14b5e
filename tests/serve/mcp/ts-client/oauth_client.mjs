// The official TypeScript SDK v2's OAuth client (`@modelcontextprotocol/client`, pinned in
// package.json beside this file: an `OAuthClientProvider` given to
// `StreamableHTTPClientTransport` as `authProvider`) on the 2026-07-28 protocol (pinned with
// `versionNegotiation`, so every request carries `MCP-Protocol-Version`, `Mcp-Method` and,
// for a tool call, `Mcp-Name`), starting with no credentials at all: on the 401 the SDK
// discovers the protected resource metadata (`resource_metadata` of the challenge), the
// authorization server's metadata, registers (RFC 7591), starts the authorization code flow
// with PKCE (S256) and a resource indicator; this script approves it, hands the redirect's
// `code` and `iss` to `transport.finishAuth` and connects again.
//
// Usage: node oauth_client.mjs URL TOOL...   (TOOL: `echo` or `add`; each is called in turn,
// in one session, with the one token)
// The SDK comes from node_modules beside this file (`npm ci` here), or from the node_modules
// directory named by MCP_TEST_TS_CLIENT_MODULES.
//
// The authorization is approved without a person: `redirectToAuthorization` GETs the
// authorization URL itself (redirects not followed) and keeps the query of the 302's
// Location (its `state` checked here). When a call is refused 403 `insufficient_scope`, the
// SDK re-authorizes (step-up, asking for the union of the scopes): the script approves that
// once, hands it to `finishAuth` and retries the call once. The user agent approves at most
// two authorizations (the sign-in and one step-up): a further one the SDK starts is
// declined (a `DECLINED` line, no request to the issuer).
//
// Prints `CLIENT <package> <version> node <version>`, then a
// `STEP <method> <URL> <status>` line (no query) for every HTTP exchange (the authorization
// GET included), followed by `sent[...]` (the MCP routing headers the request carried, if
// any) and the WWW-Authenticate, if any; an `AUTHORIZE` line with the authorization
// request's parameters (the code challenge itself not shown); then per tool `RESULT <text>`
// or `REFUSED <tool> statuses=[...] <error>`, and `GRANTED scope=<JSON>`. No token is
// printed. Exits 0 when every call worked, 3 otherwise (or after 60 s).

import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const modules = process.env.MCP_TEST_TS_CLIENT_MODULES || join(here, "node_modules");
const pkg = join(modules, "@modelcontextprotocol", "client");
const { name: pkgName, version: pkgVersion } = JSON.parse(
  readFileSync(join(pkg, "package.json"), "utf8"),
);
const { Client, StreamableHTTPClientTransport, UnauthorizedError } = await import(
  pathToFileURL(join(pkg, "dist", "index.mjs")).href
);

const PROTOCOL = "2026-07-28";
const REDIRECT = "http://127.0.0.1:9/callback"; // never contacted: the Location is read
const APPROVALS = 2; // the sign-in and one step-up
const ROUTING = ["mcp-protocol-version", "mcp-method", "mcp-name"];
const [url, ...tools] = process.argv.slice(2);
let statuses = [];

console.log(`CLIENT ${pkgName} ${pkgVersion} node ${process.version}`);

function step(method, target, status, sent, challenge) {
  const u = new URL(target);
  u.search = "";
  let line = `STEP ${method} ${u.href} ${status}`;
  if (sent) line += ` sent[${sent}]`;
  if (challenge) line += " " + challenge;
  console.log(line);
}

/** The SDK's HTTP, all of it (discovery, registration, token, MCP): recorded, unchanged. */
async function recordingFetch(input, init) {
  const response = await fetch(input, init);
  const request = input instanceof Request ? input : undefined;
  const target = request ? request.url : String(input);
  const method = (init && init.method) || (request ? request.method : "GET");
  const headers = new Headers((init && init.headers) || (request ? request.headers : undefined));
  const sent = ROUTING.filter((h) => headers.has(h))
    .map((h) => `${h}=${headers.get(h)}`)
    .join(" ");
  statuses.push(response.status);
  step(method, target, response.status, sent, response.headers.get("www-authenticate"));
  return response;
}

class MemoryProvider {
  constructor() {
    this.client = undefined;
    this.saved = undefined;
    this.verifier = undefined;
    this.discovery = undefined;
    this.redirects = []; // the query of each approval's redirect, in order
    this.states = [];
  }
  get redirectUrl() {
    return REDIRECT;
  }
  get clientMetadata() {
    return {
      client_name: "mcp-key-manager oauth e2e (TypeScript SDK v2)",
      redirect_uris: [REDIRECT],
      grant_types: ["authorization_code"],
      response_types: ["code"],
      token_endpoint_auth_method: "none",
    };
  }
  state() {
    const s = crypto.randomUUID();
    this.states.push(s);
    return s;
  }
  clientInformation() {
    return this.client;
  }
  saveClientInformation(info) {
    this.client = info;
  }
  tokens() {
    return this.saved;
  }
  saveTokens(tokens) {
    this.saved = tokens;
  }
  saveCodeVerifier(v) {
    this.verifier = v;
  }
  codeVerifier() {
    return this.verifier;
  }
  // Kept beside the verifier (SEP-2352): the callback leg is bound to the same issuer.
  saveDiscoveryState(state) {
    this.discovery = state;
  }
  discoveryState() {
    return this.discovery;
  }
  /** The user agent: one GET, the approval comes back as a 302 to the redirect_uri. */
  async redirectToAuthorization(authorizationUrl) {
    const q = authorizationUrl.searchParams;
    console.log(
      `AUTHORIZE scope=${JSON.stringify(q.get("scope"))} resource=${q.get("resource")} ` +
        `response_type=${q.get("response_type")} ` +
        `code_challenge_method=${q.get("code_challenge_method")} ` +
        `code_challenge=${q.get("code_challenge") ? "present" : "absent"}`,
    );
    if (this.redirects.length >= APPROVALS) {
      console.log(`DECLINED scope=${JSON.stringify(q.get("scope"))}`);
      return;
    }
    const response = await fetch(authorizationUrl, { redirect: "manual" });
    step("GET", authorizationUrl.href, response.status);
    if (response.status !== 302) {
      throw new Error(`authorization refused: ${response.status} ${await response.text()}`);
    }
    const location = response.headers.get("location") || "";
    if (!location.startsWith(REDIRECT + "?")) throw new Error("redirected elsewhere");
    const query = new URL(location).searchParams;
    if (query.get("state") !== this.states[this.states.length - 1]) {
      throw new Error("the redirect's state does not match");
    }
    this.redirects.push(query);
  }
}

const provider = new MemoryProvider();
const newClient = () =>
  new Client(
    { name: "mcp-key-manager-oauth-e2e", version: "0.0.0" },
    { versionNegotiation: { mode: { pin: PROTOCOL } } },
  );
const newTransport = () =>
  new StreamableHTTPClientTransport(new URL(url), { authProvider: provider, fetch: recordingFetch });

/**
 * Runs `op(false)`; if the SDK stopped for an authorization that the user agent approved
 * (it throws UnauthorizedError after redirecting), hands the redirect's query (`code`,
 * `iss`) to the transport's `finishAuth` and runs `op(true)`, once.
 */
async function withAuth(transport, op) {
  const before = provider.redirects.length;
  try {
    return await op(false);
  } catch (e) {
    if (!(e instanceof UnauthorizedError) || provider.redirects.length === before) throw e;
    await transport().finishAuth(provider.redirects[provider.redirects.length - 1]);
    return await op(true);
  }
}

async function main() {
  let client = newClient();
  let transport = newTransport();
  // The first connection meets the 401; after finishAuth a new client and transport (a
  // started transport cannot start again) connect with the token.
  await withAuth(
    () => transport,
    async (again) => {
      if (again) {
        await client.close().catch(() => {});
        client = newClient();
        transport = newTransport();
      }
      await client.connect(transport);
    },
  );
  let ok = true;
  for (const tool of tools) {
    const args = tool === "echo" ? { text: "hello" } : { a: 2, b: 3 };
    statuses = [];
    try {
      const result = await withAuth(
        () => transport,
        () => client.callTool({ name: tool, arguments: args }),
      );
      if (result.isError) throw new Error("tool error: " + JSON.stringify(result));
      console.log("RESULT " + result.content[0].text);
    } catch (e) {
      ok = false;
      console.log(
        `REFUSED ${tool} statuses=[${statuses.join(", ")}] ${e.name}: ${String(e.message).replace(/\n/g, " ")}`,
      );
    }
  }
  const granted = provider.tokens();
  console.log(`GRANTED scope=${JSON.stringify(granted ? granted.scope : null)}`);
  await client.close().catch(() => {});
  return ok;
}

const timer = setTimeout(() => {
  console.log(`REFUSED statuses=[${statuses.join(", ")}] Timeout: 60 s`);
  process.exit(3);
}, 60_000);
try {
  const worked = await main();
  clearTimeout(timer);
  process.exit(worked ? 0 : 3);
} catch (e) {
  console.log(
    `REFUSED statuses=[${statuses.join(", ")}] ${e && e.name}: ${String(e && e.message).replace(/\n/g, " ")}`,
  );
  process.exit(3);
}
