#!/usr/bin/env node
// End-to-end check of the 建档与覆盖 page in headless Chromium, driven by tests/e2e/test_customer_coverage_page.py.
//
//   node tests/e2e/customer_coverage.mjs --base http://127.0.0.1:PORT --out DIR [--keep docs/screenshots]
//
// 1. A branch leader (bl_430102) opens the page: the org rows carry the same numbers as GET /api/v1/coverage;
//    he drills into a sub-branch (parent_id), switches to grid grouping, creates collection tasks (补录任务) for
//    the customers below 60 % completeness of a grid and sees how many were created; the profile statistics table
//    and a row's time series show. 2. The 岳麓 branch leader (bl_430104) sees no 芙蓉 row.
// Prints one JSON line at the end; any failure exits non-zero with a message.

import { copyFile, mkdir } from "node:fs/promises";
import path from "node:path";

import { check, exitFailed, logIn, makeLog, openPage, screenshotOnFailure, scriptArgs } from "./harness.mjs";

const { opts, base, url, timeout } = scriptArgs({
  usage: "node tests/e2e/customer_coverage.mjs --base URL --out DIR [--keep DIR]",
});
const started = Date.now();
const log = makeLog(started);
const shots = [];

async function shoot(page, name, { height = 0 } = {}) {
  const file = path.join(opts.out, `customers-${name}.png`);
  if (height) await page.setViewportSize({ width: 1440, height });
  await page.waitForTimeout(200);
  await page.screenshot({ path: file });
  if (height) await page.setViewportSize({ width: 1440, height: 900 });
  shots.push(file);
  log(`screenshot ${file}`);
}

async function login(page, username) {
  await logIn(page, { base, username, password: opts.password, timeout, clearSession: true });
}

const apiGet = (page, p) => page.evaluate(async (target) => {
  const r = await fetch(target, { headers: { Authorization: `Bearer ${sessionStorage.getItem("gm.access_token")}` } });
  return r.json();
}, p);

const pct = (v) => (v === null || v === undefined ? "—" : `${(Number(v) * 100).toFixed(1)}%`);

/** The coverage table as {key: {customers, in_grid_rate, ...}} from the DOM. */
const tableRows = (page) => page.$$eval("#cv-table tbody tr[data-key]", (rows) => rows.map((r) => ({
  key: r.dataset.key,
  parent: r.dataset.parent === "true",
  name: r.children[0].textContent.trim(),
  cells: Object.fromEntries([...r.querySelectorAll("td[data-metric]")].map((td) => [td.dataset.metric, td.textContent.trim()])),
})));

async function waitTable(page, group) {
  await page.waitForSelector(`#cv-coverage[data-state="ready"] #cv-table[data-group="${group}"] tbody tr[data-key]`);
}

function compare(domRows, apiItems, what) {
  check(apiItems.length > 0, `${what}: the API has rows`);
  for (const item of apiItems) {
    const row = domRows.find((r) => r.key === String(item.key ?? ""));
    check(row, `${what}: row ${item.key} (${item.name}) is shown`);
    check(row.cells.customers === item.customers.toLocaleString("zh-CN"),
      `${what}: ${item.name} customers ${row.cells.customers} vs API ${item.customers}`);
    for (const key of ["in_grid_rate", "profile_rate", "credit_rate", "usage_rate", "not_visited_rate"]) {
      check(row.cells[key] === pct(item[key]), `${what}: ${item.name} ${key} ${row.cells[key]} vs API ${pct(item[key])}`);
    }
  }
}

async function leaderFlow(page) {
  await login(page, "bl_430102");
  const me = await apiGet(page, "/api/v1/me");
  await page.goto(url("/app/customers/coverage"));
  await waitTable(page, "org");
  await page.waitForSelector('#cv-stats[data-state="ready"] #cv-stats-table tbody tr[data-key]');
  const api = await apiGet(page, "/api/v1/coverage?group_by=org&not_visited_days=90");
  compare(await tableRows(page), api.items, "org rows");
  log(`bl_430102: ${api.items.length} org rows equal the API's`);
  const furongKeys = api.items.map((i) => i.key);
  await shoot(page, "coverage", { height: 1300 });

  // N days: 30 changes the not-visited column to the API's 30-day figures
  await page.fill("#cv-days", "30");
  await page.click("#cv-apply");
  await page.waitForFunction(() => document.querySelector("#cv-table thead").textContent.includes("30 天"));
  await waitTable(page, "org");
  const api30 = await apiGet(page, "/api/v1/coverage?group_by=org&not_visited_days=30");
  compare(await tableRows(page), api30.items, "org rows, 30 days");
  log("未走访 N = 30 follows the API");

  // drill into the largest org row that is not the branch itself (a sub-branch rolls up its outlets)
  const sub = api30.items.filter((i) => i.key !== me.org_id && i.key !== null)
    .sort((a, b) => b.customers - a.customers)[0];
  await page.click(`#cv-table tr[data-key="${sub.key}"] .cv-drill`);
  await page.waitForSelector(`#cv-table tr[data-parent="true"][data-key="${sub.key}"]`);
  await waitTable(page, "org");
  const drilled = await apiGet(page, `/api/v1/coverage?group_by=org&not_visited_days=30&parent_id=${sub.key}`);
  compare(await tableRows(page), drilled.items, `drilled into ${sub.name}`);
  check((await page.textContent("#cv-crumbs")).includes(sub.name), "the breadcrumb names the sub-branch");
  log(`drilled into ${sub.name} (${drilled.items.length} rows)`);

  // grid grouping, then a grid's collection tasks
  await page.click("#cv-tab-grid");
  await waitTable(page, "grid");
  const grids = await apiGet(page, "/api/v1/coverage?group_by=grid&not_visited_days=30");
  compare(await tableRows(page), grids.items, "grid rows");
  const grid = grids.items.filter((i) => i.key !== null && i.profileable > i.profiled)
    .sort((a, b) => b.customers - a.customers)[0];
  check(grid, "a grid with unprofiled customers");
  await page.click(`#cv-table tr[data-key="${grid.key}"] .cv-drill`);
  await page.waitForSelector(`#cv-table tr[data-parent="true"][data-key="${grid.key}"]`);
  log(`grid grouping: ${grids.items.length} rows equal the API's; drilled into grid ${grid.name}`);

  await page.click("#cv-create-tasks");
  await page.waitForSelector("#cv-task-dialog[open]");
  await page.fill("#cv-below", "60");
  await page.fill("#cv-note", "E2E 补录");
  await page.click('#cv-task-dialog button[type="submit"]');
  await page.waitForSelector("#cv-task-result:not([hidden])");
  const created = Number(await page.getAttribute("#cv-task-result", "data-created"));
  const resultText = (await page.textContent("#cv-task-result")).trim();
  check(created > 0 && resultText.includes(`已生成 ${created} 条补录任务`), `tasks created, got ${resultText}`);
  const batchKey = resultText.split("批次号 ")[1];
  log(`created ${created} collection tasks in grid ${grid.name}: ${resultText}`);
  await shoot(page, "coverage-tasks");

  // the same selection again creates nothing twice
  await page.click("#cv-create-tasks");
  await page.waitForSelector("#cv-task-dialog[open]");
  await page.fill("#cv-below", "60");
  await page.click('#cv-task-dialog button[type="submit"]');
  await page.waitForFunction(() => document.querySelector("#cv-task-result").dataset.created === "0");
  log("repeating the selection creates 0 tasks");

  // time series of a row (empty until the snapshot job ran) and the statistics by org
  await page.click(`#cv-table tr[data-key="${grid.key}"] .cv-trend`);
  await page.waitForSelector("#cv-series:not([hidden])[data-points]");
  await page.click('.cv-stab[data-group="org"]');
  await page.waitForSelector('#cv-stats[data-state="ready"] #cv-stats-table[data-group="org"] tbody tr[data-key]');
  const stats = await apiGet(page, "/api/v1/profiles/stats?group_by=org");
  const statRows = await page.$$eval("#cv-stats-table tbody tr[data-key]", (r) => r.length);
  check(statRows === stats.items.length + 1, `statistics rows ${statRows} = API ${stats.items.length} + 合计`);
  log(`profile statistics by org: ${stats.items.length} rows + 合计`);
  return { furongKeys, created, batchKey, grid: grid.key };
}

async function attackerFlow(page, furongKeys) {
  await login(page, "bl_430104");
  await page.goto(url("/app/customers/coverage"));
  await waitTable(page, "org");
  const rows = await tableRows(page);
  check(rows.length > 0, "bl_430104 sees his own rows");
  check(rows.every((r) => !r.name.includes("芙蓉")), `no 芙蓉 row, got ${rows.map((r) => r.name)}`);
  const overlap = rows.filter((r) => furongKeys.map(String).includes(r.key));
  check(overlap.length === 0, `no 芙蓉 key, got ${overlap.map((r) => r.key)}`);
  await page.click("#cv-tab-grid");
  await waitTable(page, "grid");
  const gridRows = await tableRows(page);
  check(gridRows.every((r) => !r.name.includes("芙蓉")), "no 芙蓉 grid row");
  log(`bl_430104 sees ${rows.length} org rows and ${gridRows.length} grid rows, none of 芙蓉`);
}

async function main() {
  await mkdir(opts.out, { recursive: true });
  const { browser, page, pageErrors, offsite } = await openPage({ chromiumPath: opts.chromium, base, timeout });
  try {
    const leader = await leaderFlow(page);
    await attackerFlow(page, leader.furongKeys);
    check(offsite.length === 0, `no off-site request, got ${offsite.join(", ")}`);
    check(pageErrors.length === 0, `no uncaught page errors, got: ${pageErrors.join(" | ")}`);
    if (opts.keep) {
      await mkdir(opts.keep, { recursive: true });
      await copyFile(shots[0], path.join(opts.keep, "customers-coverage.png"));
      log(`kept ${shots[0]} in ${opts.keep}`);
    }
    console.log(JSON.stringify({
      ok: true, created: leader.created, batch_key: leader.batchKey, grid_id: leader.grid,
      seconds: (Date.now() - started) / 1000,
    }));
  } catch (err) {
    await screenshotOnFailure(browser, path.join(opts.out, "customers-coverage-failure.png"));
    throw err;
  } finally {
    await browser.close();
  }
}

main().catch(exitFailed(opts.out));
