// Shared pieces of the end-to-end browser scripts: Chromium flags, failures, logging, playwright-core.

import { createRequire } from "node:module";
import process from "node:process";
import { parseArgs } from "node:util";

// Headless Chromium on a machine with no outside network: no background traffic, no GPU, no sandbox (root).
export const CHROMIUM_ARGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
];

/** A failed expectation: the script reports the message and exits non-zero. */
export class Failure extends Error {}

export function check(condition, message) {
  if (!condition) throw new Failure(message);
}

/** log(msg) prefixed with the seconds since the script started. */
export function makeLog(started = Date.now()) {
  return (msg) => console.log(`[e2e ${((Date.now() - started) / 1000).toFixed(1)}s] ${msg}`);
}

/** playwright-core as installed by `npm ci --prefix web` (no browser download: the system Chromium is used). */
export function loadPlaywright() {
  const requireFromWeb = createRequire(new URL("../../web/package.json", import.meta.url));
  return requireFromWeb("playwright-core");
}

/**
 * Launch the system Chromium with a zh-CN 1440×900 page that may not leave `base`'s origin: off-site requests
 * are aborted and recorded in `offsite`, uncaught page errors in `pageErrors`. The caller closes `browser`.
 */
export async function openPage({ chromiumPath, base, timeout }) {
  const { chromium } = loadPlaywright();
  const browser = await chromium.launch({ executablePath: chromiumPath, headless: true, args: CHROMIUM_ARGS });
  const pageErrors = [];
  const offsite = [];
  try {
    const context = await browser.newContext({
      viewport: { width: 1440, height: 900 }, locale: "zh-CN", timezoneId: "Asia/Shanghai", deviceScaleFactor: 1,
    });
    await context.route((u) => u.origin !== base.origin, (route) => {
      offsite.push(route.request().url());
      return route.abort("internetdisconnected");
    });
    const page = await context.newPage();
    page.setDefaultTimeout(timeout);
    page.on("pageerror", (err) => pageErrors.push(err.message));
    return { browser, page, pageErrors, offsite };
  } catch (err) {
    await browser.close();
    throw err;
  }
}

/**
 * Log in through the login page and wait for the app shell. `clearSession` first empties the session storage
 * (tests that switch users on one page).
 */
export async function logIn(page, { base, username, password, timeout, clearSession = false }) {
  await page.goto(new URL("/login", base).toString());
  if (clearSession) await page.evaluate(() => sessionStorage.clear());
  await page.fill("#username", username);
  await page.fill("#password", password);
  await Promise.all([page.waitForURL((u) => u.pathname === "/app", { timeout }), page.click("#login-submit")]);
}

/** The options every script takes; a script adds its own. */
const COMMON_OPTIONS = {
  base: { type: "string" },
  out: { type: "string" },
  password: { type: "string", default: process.env.GM_E2E_PASSWORD || "" },
  keep: { type: "string", default: "" },
  chromium: { type: "string", default: process.env.CHROMIUM_PATH || "/usr/bin/chromium" },
  timeout: { type: "string", default: "15000" },
};

/**
 * Command-line options: --base, --out, --password (or GM_E2E_PASSWORD), --keep, --chromium, --timeout plus
 * `options`. Without base, out, password or any of `required`, prints `usage` and exits 2.
 * Returns { opts, base (URL), url(path) -> absolute URL string, timeout (ms) }.
 */
export function scriptArgs({ usage, options = {}, required = [] }) {
  const { values: opts } = parseArgs({ options: { ...COMMON_OPTIONS, ...options } });
  if (!opts.base || !opts.out || !opts.password || required.some((name) => !opts[name])) {
    console.error(`usage: ${usage} (password via --password or GM_E2E_PASSWORD)`);
    process.exit(2);
  }
  const base = new URL(opts.base);
  return { opts, base, url: (p) => new URL(p, base).toString(), timeout: Number(opts.timeout) };
}

/** After a failed flow: a screenshot of the first open page into `file`, if there is one (never throws). */
export async function screenshotOnFailure(browser, file) {
  const pages = browser.contexts().flatMap((c) => c.pages());
  if (pages.length) await pages[0].screenshot({ path: file }).catch(() => null);
}

/** The handler of `main().catch(...)`: the failed check (or stack) and where the artefacts are; exit code 1. */
export function exitFailed(out) {
  return (err) => {
    const what = err instanceof Failure ? `check failed: ${err.message}` : err.stack || String(err);
    console.error(`[e2e] FAILED: ${what}\n[e2e] artefacts: ${out}`);
    process.exit(1);
  };
}
