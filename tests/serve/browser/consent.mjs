// The bridge's consent page (`serve --authorization-server`, GET /authorize) as a person sees
// it in a real browser: the system's Chromium, headless, driven by puppeteer-core (pinned in
// package.json beside this file; it downloads no browser), with JavaScript switched off for
// the page, so the page is proven to work without any script.
//
// It opens the authorization URL, checks that the page names the client and the requested
// scopes (in its text and in the accessibility tree: a heading, a password field labelled
// "Your key", the Allow and Deny buttons), that the page holds no <script>, and that
// Chromium kept the `__Host-` consent cookie (Secure, HttpOnly, SameSite=Strict) on
// http://127.0.0.1; it types the key into the field, keeps a screenshot of the filled page
// (the field shows dots), presses Allow, and follows what happens:
//   CONSENT_EXPECT=redirect  the form's POST answers 302 to the client's redirect URI (a
//                            listener on 127.0.0.1 started by the caller); the `code`,
//                            `state` and `iss` that arrived there are reported.
//   CONSENT_EXPECT=refused   the POST answers 400 with the same page and an error
//                            (role=alert, the field aria-invalid); no request ever goes to
//                            the redirect URI's origin.
//
// Accessibility: axe-core (pinned beside this file) runs its WCAG 2.0/2.1/2.2 level A and AA
// rules on the page in a second, separate browser context where JavaScript is on (axe is a
// script: it has to run in the page; the page itself never has any), loaded from the same
// URL and brought to the same state (with CONSENT_EXPECT=refused: after the same key was
// refused, so the error state is checked). CONSENT_AXE=0 skips it.
//
// Input, all from the environment (never argv, so the key is not in the process list):
//   CONSENT_URL        the authorization URL (on 127.0.0.1)
//   CONSENT_KEY        the key to paste
//   CONSENT_EXPECT     redirect | refused
//   CONSENT_REDIRECT   the client's redirect URI
//   CONSENT_CLIENT     text the page must show for the client (optional, repeatable: \n)
//   CONSENT_SCOPES     scopes the page must list (optional, space separated)
//   CONSENT_SCREENSHOT where to write the PNG of the filled page (optional)
//   CONSENT_SCREENSHOT_AFTER  where to write the PNG of what the browser shows after the
//                      submission (optional)
//   CONSENT_AXE        1 (default) or 0
//   CHROMIUM           the browser (default /usr/bin/chromium)
//   CONSENT_TIMEOUT_MS every single wait (default 15000); the whole run is bounded by 6x it
//
// Prints `STEP ...` lines to stderr, then one line `CONSENT_RESULT <JSON>` on stdout (the
// key is never printed; neither is the cookie's value). Exits 0 when every check held,
// 1 otherwise (the first failed check on stderr as `FAIL ...`), 2 on the overall timeout.

import { createRequire } from "node:module";
import puppeteer from "puppeteer-core";

const require = createRequire(import.meta.url);
const axeSource = require("axe-core").source;

const env = process.env;
const T = Number(env.CONSENT_TIMEOUT_MS || 15000);
const url = env.CONSENT_URL;
const key = env.CONSENT_KEY;
const expect = env.CONSENT_EXPECT || "redirect";
const redirectUri = env.CONSENT_REDIRECT || "";
const mustShow = (env.CONSENT_CLIENT || "").split("\n").filter(Boolean);
const scopes = (env.CONSENT_SCOPES || "").split(" ").filter(Boolean);
const shot = env.CONSENT_SCREENSHOT || "";
const runAxe = (env.CONSENT_AXE ?? "1") !== "0";
const chromium = env.CHROMIUM || "/usr/bin/chromium";
// The WCAG 2 A and AA rules of axe-core (2.0, 2.1 and 2.2).
const AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22a", "wcag22aa"];

const step = (...a) => console.error("STEP", ...a);
const result = { expect };
let failed = null;
function check(ok, what) {
  if (!ok && !failed) {
    failed = what;
    console.error("FAIL", what);
  }
  return ok;
}

if (!url || !key || !["redirect", "refused"].includes(expect)) {
  console.error("usage: CONSENT_URL, CONSENT_KEY and CONSENT_EXPECT=redirect|refused in the environment");
  process.exit(1);
}

let browser;
const watchdog = setTimeout(async () => {
  console.error(`FAIL the whole run took more than ${6 * T} ms`);
  try {
    browser?.process()?.kill("SIGKILL");
  } catch {}
  process.exit(2);
}, 6 * T);

const redirectOrigin = redirectUri ? new URL(redirectUri).origin : null;

/// Opens the consent page in a new page of `ctx` (JavaScript on or off), checks what it shows
/// and types the key. Returns the page and the requests it made.
async function openAndFill(ctx, js, report) {
  const page = await ctx.newPage();
  page.setDefaultTimeout(T);
  page.setDefaultNavigationTimeout(T);
  await page.setJavaScriptEnabled(js);
  const requests = [];
  page.on("request", (r) => requests.push(`${r.method()} ${r.url().split("?")[0]}`));
  const log = [];
  page.on("console", (m) => log.push(`${m.type()}: ${m.text()}`));
  const resp = await page.goto(url, { waitUntil: "load", timeout: T });
  if (!report) {
    await page.type("#key", key);
    return { page, requests, log };
  }
  result.javascript_enabled = js;
  result.console = log;
  result.page_status = resp.status();
  check(resp.status() === 200, `GET /authorize answered ${resp.status()}`);
  const h = resp.headers();
  result.csp = h["content-security-policy"] || null;
  result.title = await page.title();
  const text = await page.$eval("main", (m) => m.innerText);
  result.text = text;
  for (const s of mustShow) check(text.includes(s), `the page does not show ${JSON.stringify(s)}`);
  for (const s of scopes) {
    const listed = await page.$$eval("li code", (cs) => cs.map((c) => c.textContent));
    check(listed.includes(s), `the page does not list the scope ${s} (lists ${listed})`);
  }
  result.scripts = (await page.$$("script")).length;
  check(result.scripts === 0, "the page holds a <script>");
  // What a screen reader gets: the accessibility tree (CDP, no page script).
  const tree = await page.accessibility.snapshot({ interestingOnly: true });
  const nodes = [];
  (function walk(n) {
    if (!n) return;
    nodes.push({ role: n.role, name: n.name });
    (n.children || []).forEach(walk);
  })(tree);
  result.accessibility = nodes.filter((n) =>
    ["heading", "textbox", "button", "list", "listitem", "form", "alert", "main"].includes(n.role),
  );
  const has = (role, name) => nodes.some((n) => n.role === role && n.name === name);
  check(has("heading", "Allow access with a key"), "no heading 'Allow access with a key' in the accessibility tree");
  check(has("textbox", "Your key"), "no textbox named 'Your key' in the accessibility tree");
  check(has("button", "Allow") && has("button", "Deny"), "no Allow and Deny buttons in the accessibility tree");
  // The consent cookie, as Chromium keeps it (its value not reported).
  const cookies = await page.cookies();
  result.cookies = cookies.map((c) => ({
    name: c.name,
    domain: c.domain,
    path: c.path,
    secure: c.secure,
    httpOnly: c.httpOnly,
    sameSite: c.sameSite,
    session: c.session,
    value_length: c.value.length,
  }));
  const consent = cookies.find((c) => c.name === "__Host-mcp-consent");
  check(
    consent && consent.secure && consent.httpOnly && consent.sameSite === "Strict" && consent.path === "/",
    `Chromium did not keep the __Host-mcp-consent cookie as sent: ${JSON.stringify(result.cookies)}`,
  );
  await page.type("#key", key);
  const typed = await page.$eval("#key", (i) => ({ type: i.type, length: i.value.length }));
  check(typed.type === "password" && typed.length === key.length, `the field holds ${typed.length} characters of ${typed.type}`);
  if (shot) {
    await page.screenshot({ path: shot, fullPage: true, type: "png" });
    result.screenshot = shot;
    step("screenshot", shot);
  }
  return { page, requests, log };
}

/// Presses Allow and waits for the navigation the form's POST makes.
async function submit(page) {
  const [nav] = await Promise.all([
    page.waitForNavigation({ waitUntil: "load", timeout: T }),
    page.click('button[name="decision"][value="allow"]'),
  ]);
  return nav;
}

async function axe(ctx) {
  const { page } = await openAndFill(ctx, true, false);
  if (expect === "refused") await submit(page);
  // Through CDP (Runtime.evaluate): not subject to the page's CSP, which allows no script.
  await page.evaluate(axeSource);
  const r = await page.evaluate(
    async (tags) => {
      const res = await window.axe.run(document, { runOnly: { type: "tag", values: tags } });
      const brief = (v) => ({
        id: v.id,
        impact: v.impact,
        help: v.help,
        nodes: v.nodes.map((n) => ({ target: n.target.join(" "), summary: n.failureSummary })),
      });
      return {
        version: window.axe.version,
        url: location.pathname,
        violations: res.violations.map(brief),
        incomplete: res.incomplete.map(brief),
        passes: res.passes.map((p) => p.id),
        inapplicable: res.inapplicable.length,
      };
    },
    AXE_TAGS,
  );
  r.tags = AXE_TAGS;
  r.state = expect === "refused" ? "after a refused key" : "filled";
  result.axe = r;
  step(`axe ${r.version}: ${r.violations.length} violations, ${r.passes.length} rules passed, ${r.incomplete.length} to review`);
  for (const v of r.violations) console.error("AXE VIOLATION", JSON.stringify(v));
  check(r.violations.length === 0, `axe-core found ${r.violations.length} WCAG 2 A/AA violations`);
  await page.close();
}

try {
  const t0 = Date.now();
  browser = await puppeteer.launch({
    executablePath: chromium,
    headless: true,
    pipe: true,
    timeout: T,
    protocolTimeout: 2 * T,
    // The key stays out of the browser's environment too.
    env: Object.fromEntries(Object.entries(env).filter(([k]) => k !== "CONSENT_KEY")),
    args: [
      ...(process.getuid?.() === 0 ? ["--no-sandbox"] : []),
      "--disable-dev-shm-usage",
      "--disable-gpu",
      "--no-first-run",
      "--no-default-browser-check",
      "--lang=en-US",
    ],
  });
  result.browser = await browser.version();
  step("browser", result.browser);

  // The person: JavaScript off for the page.
  const ctx = await browser.createBrowserContext();
  const { page, requests, log } = await openAndFill(ctx, false, true);
  check((await page.evaluate(() => 1 + 1)) === 2, "CDP evaluation");
  const nav = await submit(page);
  const chain = nav.request().redirectChain();
  result.post = chain.length
    ? { status: chain[0].response()?.status(), location: chain[0].response()?.headers().location ? "set" : "none" }
    : { status: nav.status() };
  result.final_status = nav.status();
  const final = new URL(page.url());
  result.final_url = final.origin + final.pathname;
  result.requests = requests;
  result.console = log;
  if (env.CONSENT_SCREENSHOT_AFTER) {
    await page.screenshot({ path: env.CONSENT_SCREENSHOT_AFTER, fullPage: true, type: "png" });
    result.screenshot_after = env.CONSENT_SCREENSHOT_AFTER;
    step("screenshot after", env.CONSENT_SCREENSHOT_AFTER);
  }
  if (expect === "redirect") {
    check(chain.length === 1 && chain[0].response()?.status() === 302, `the POST did not answer 302: ${JSON.stringify(result.post)}`);
    check(redirectUri && page.url().startsWith(redirectUri + "?"), `the browser ended at ${result.final_url}, not the redirect URI`);
    for (const p of ["code", "state", "iss"]) {
      const all = final.searchParams.getAll(p);
      check(all.length === 1, `${p} appears ${all.length} times in the redirect`);
      result[p] = all[0] ?? null;
    }
    check(!final.searchParams.has("error"), `the redirect carries error=${final.searchParams.get("error")}`);
  } else {
    check(nav.status() === 400, `the POST answered ${nav.status()}, not 400`);
    check(new URL(page.url()).pathname.endsWith("/authorize"), `the browser left the page: ${result.final_url}`);
    const alert = await page.$eval("#key-error", (e) => ({ role: e.getAttribute("role"), text: e.textContent }));
    result.error = alert.text;
    check(alert.role === "alert" && alert.text.length > 0, "no error with role=alert on the page");
    const field = await page.$eval("#key", (i) => ({
      invalid: i.getAttribute("aria-invalid"),
      describedby: i.getAttribute("aria-describedby"),
      value: i.value.length,
    }));
    result.field_after = field;
    check(field.invalid === "true" && field.describedby === "key-error", "the field does not point at the error");
    check(field.value === 0, "the refused key is still in the field");
    const tree = await page.accessibility.snapshot({ interestingOnly: true });
    result.alert_in_tree = JSON.stringify(tree).includes('"role":"alert"');
    check(result.alert_in_tree, "the error is not an alert in the accessibility tree");
    const leaked = requests.filter((r) => redirectOrigin && r.includes(redirectOrigin));
    check(leaked.length === 0, `requests went to the redirect URI: ${leaked}`);
  }
  await ctx.close();

  if (runAxe) {
    const actx = await browser.createBrowserContext();
    await axe(actx);
    await actx.close();
  }
  result.ms = Date.now() - t0;
} catch (e) {
  check(false, `error: ${e && e.stack ? e.stack : e}`);
} finally {
  try {
    await browser?.close();
  } catch {}
}
clearTimeout(watchdog);
result.ok = !failed;
result.failed = failed;
const out = JSON.stringify(result);
if (out.includes(key)) {
  console.error("FAIL the result would hold the key");
  process.exit(1);
}
console.log("CONSENT_RESULT " + out);
process.exit(failed ? 1 : 0);
