#!/usr/bin/env node
// Capture screenshots of the GridMarket web pages with the system Chromium (playwright-core from web/).
//
//   node scripts/screenshots.mjs --base http://127.0.0.1:8000 --user admin --password XXX --out docs/screenshots
//
// Logs in through the real login form, then writes login.png, app-home.png, app-map.png and
// system-users.png. The password may also come from GM_SCREENSHOT_PASSWORD. Requests to any origin
// other than --base are blocked (the pages must work offline) and reported.

import { mkdir } from "node:fs/promises";
import { createRequire } from "node:module";
import path from "node:path";
import process from "node:process";
import { parseArgs } from "node:util";

const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

const { values: opts } = parseArgs({
  options: {
    base: { type: "string", default: "http://127.0.0.1:8000" },
    user: { type: "string", default: "admin" },
    password: { type: "string", default: process.env.GM_SCREENSHOT_PASSWORD || "" },
    out: { type: "string", default: "docs/screenshots" },
    chromium: { type: "string", default: process.env.CHROMIUM_PATH || "/usr/bin/chromium" },
    width: { type: "string", default: "1440" },
    height: { type: "string", default: "900" },
    timeout: { type: "string", default: "30000" },
    help: { type: "boolean", short: "h", default: false },
  },
});

if (opts.help || !opts.password) {
  console.log(
    "usage: node scripts/screenshots.mjs --base URL --user NAME --password PASS --out DIR\n" +
      "       [--chromium /usr/bin/chromium] [--width 1440] [--height 900] [--timeout 30000]\n" +
      "       (the password may be given as GM_SCREENSHOT_PASSWORD instead)",
  );
  process.exit(opts.help ? 0 : 2);
}

function loadPlaywright() {
  const requireFromWeb = createRequire(new URL("../web/package.json", import.meta.url));
  try {
    return requireFromWeb("playwright-core");
  } catch {
    console.error("playwright-core is not installed: run `npm ci --prefix web` first.");
    process.exit(2);
  }
}

const log = (msg) => console.log(`[screenshots] ${msg}`);
const base = new URL(opts.base);
const url = (p) => new URL(p, base).toString();
const timeout = Number(opts.timeout);

async function settle(page) {
  await page.waitForLoadState("networkidle", { timeout });
  await page.evaluate(() => document.fonts.ready);
}

async function shoot(page, outDir, name) {
  const file = path.join(outDir, name);
  await page.screenshot({ path: file, fullPage: false });
  log(`wrote ${file}`);
}

async function login(page) {
  await page.fill("#username", opts.user);
  await page.fill("#password", opts.password);
  await Promise.all([
    page.waitForURL((u) => u.pathname === "/app", { timeout }).catch(() => null),
    page.click("#login-submit"),
  ]);
  if (new URL(page.url()).pathname !== "/app") {
    const error = await page.textContent("#login-error").catch(() => null);
    throw new Error(`login failed: ${error ? error.trim() : "no redirect to /app"}`);
  }
}

async function waitForLayout(page) {
  await page.waitForFunction(
    () => {
      const who = document.getElementById("current-user");
      const nav = document.querySelector("#sidebar .nav, #sidebar .sidebar__placeholder");
      return who && who.textContent.trim() !== "…" && nav && !/加载中/.test(nav.textContent);
    },
    null,
    { timeout },
  );
}

async function main() {
  const { chromium } = loadPlaywright();
  const outDir = path.resolve(opts.out);
  await mkdir(outDir, { recursive: true });

  const browser = await chromium.launch({
    executablePath: opts.chromium,
    headless: true,
    args: CHROMIUM_ARGS,
  });
  const problems = [];
  try {
    const context = await browser.newContext({
      viewport: { width: Number(opts.width), height: Number(opts.height) },
      locale: "zh-CN",
      timezoneId: "Asia/Shanghai",
      deviceScaleFactor: 1,
    });
    await context.route(
      (u) => u.origin !== base.origin,
      (route) => {
        problems.push(`blocked off-site request: ${route.request().url()}`);
        return route.abort();
      },
    );
    const page = await context.newPage();
    page.setDefaultTimeout(timeout);
    page.on("pageerror", (err) => problems.push(`page error on ${page.url()}: ${err.message}`));
    page.on("console", (msg) => {
      if (msg.type() === "error") problems.push(`console error on ${page.url()}: ${msg.text()}`);
    });
    page.on("response", (res) => {
      if (res.status() >= 400) problems.push(`HTTP ${res.status()} ${res.request().method()} ${res.url()}`);
    });

    await page.goto(url("/login"));
    await settle(page);
    await shoot(page, outDir, "login.png");

    await login(page);
    await settle(page);
    await waitForLayout(page);
    await shoot(page, outDir, "app-home.png");

    await page.goto(url("/app/map"));
    await settle(page);
    await waitForLayout(page);
    await page.waitForSelector("#map[data-state]", { timeout });
    const mapState = await page.getAttribute("#map", "data-state");
    if (mapState !== "ready") problems.push("map: district layer did not load");
    else await page.waitForSelector("#map .leaflet-overlay-pane path", { timeout });
    await page.waitForTimeout(400); // let label de-cluttering and fitBounds animation finish
    await shoot(page, outDir, "app-map.png");

    await page.goto(url("/app/system/users"));
    await settle(page);
    await waitForLayout(page);
    await page.waitForFunction(() => !document.querySelector("#data-table[aria-busy]"), null, { timeout });
    await shoot(page, outDir, "system-users.png");
  } finally {
    await browser.close();
  }

  for (const p of problems) console.warn(`[screenshots] warning: ${p}`);
  log(problems.length ? `done with ${problems.length} warning(s)` : "done");
}

main().catch((err) => {
  console.error(`[screenshots] ${err.stack || err}`);
  process.exit(1);
});
