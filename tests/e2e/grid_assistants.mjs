#!/usr/bin/env node
// End-to-end check of the 网格三员 register, editing a post and balancing customers inside a grid, in headless
// Chromium, driven by tests/e2e/test_grid_assistants.py.
//
//   node tests/e2e/grid_assistants.mjs --base http://127.0.0.1:PORT --out DIR [--user bl_430102] [--keep DIR]
//
// As a branch leader: opens 网格三员 from the menu, searches, creates an assistant (a bad phone is refused with the
// error under the field first), edits him to 停用, deletes him; tries to delete an assistant with posts (409) and
// sets him inactive instead. In 网格管理 edits a current account-manager post of 识字里社区 (duties, a KPI target,
// start date). In 网格平衡 › 网格内客户 picks 文艺路街道, runs 测算 (points coloured by manager, CV before/after),
// locks a moved customer by clicking it, re-runs, applies with a reason. Screenshots go to --out (with --keep also
// to that folder). The caller restores the data. Any failure exits non-zero with a message.

import { copyFile, mkdir } from "node:fs/promises";
import path from "node:path";

import { check, exitFailed, logIn, makeLog, openPage, screenshotOnFailure, scriptArgs } from "./harness.mjs";

const GRID = { code: "G430102001001", name: "识字里社区" };
const TOWNSHIP = { code: "G430102001", name: "文艺路街道" };
const NEW_ASSISTANT = { name: "柳测试", phone: "13900001111" };

const { opts, base, url, timeout } = scriptArgs({
  usage: "node tests/e2e/grid_assistants.mjs --base URL --out DIR [--user U] [--keep DIR]",
  options: {
    user: { type: "string", default: "bl_430102" },
  },
});
const started = Date.now();
const log = makeLog(started);
const shots = [];

async function shoot(page, name, { scrollTo } = {}) {
  await page.evaluate((sel) => {
    const toasts = [...document.querySelectorAll(".ge-toast")];
    toasts.slice(0, -1).forEach((t) => t.remove());
    if (sel === "top") document.querySelector(".content").scrollTop = 0;
    else if (sel) document.querySelector(sel).scrollIntoView({ block: "start" });
  }, scrollTo || null);
  await page.mouse.move(2, 2);
  await page.waitForTimeout(250);
  const file = path.join(opts.out, `${name}.png`);
  await page.screenshot({ path: file });
  shots.push(file);
  log(`screenshot ${file}`);
}

const apiResponse = (page, method, test) => page.waitForResponse(
  (r) => r.request().method() === method && test(new URL(r.url()).pathname),
);

async function login(page) {
  await logIn(page, { base, username: opts.user, password: opts.password, timeout });
}

async function pick(page, inputSelector, query, text) {
  await page.fill(inputSelector, query);
  await page.locator(`.gp-picker:has(${inputSelector}) .gp-picker__option`, { hasText: text }).first().click();
}

async function search(page, q) {
  await page.fill("#ga-q", q);
  const listed = apiResponse(page, "GET", (p) => p === "/api/v1/grid-assistants");
  await page.click("#ga-search");
  await listed;
  await page.waitForTimeout(100);
}

// ---------------------------------------------------------------- 网格三员

async function register(page) {
  await page.click('#sidebar a[href="/app/grids/assistants"]');
  await page.waitForURL((u) => u.pathname === "/app/grids/assistants");
  await page.waitForSelector("#ga-table tbody tr[data-id]");
  const total = (await page.textContent("#ga-stats")).trim();
  log(`register opened: ${total}`);
  await search(page, "社区干部");
  const cadres = await page.locator("#ga-table tbody tr[data-id]").count();
  check(cadres > 0, "searching 社区干部 finds the community cadres");
  await shoot(page, "grid-assistants-01-list", { scrollTo: "top" });

  // create: a bad phone first (422 under the field), then a good one
  await page.click("#ga-new");
  await page.fill('#ga-form input[name="name"]', NEW_ASSISTANT.name);
  await page.fill('#ga-form input[name="phone"]', "12");
  await page.selectOption('#ga-form select[name="kind"]', "party_member");
  const refused = apiResponse(page, "POST", (p) => p === "/api/v1/grid-assistants");
  await page.click("#ga-save");
  check((await refused).status() === 422, "a bad phone is refused with 422");
  const phoneError = page.locator('#ga-form .ge-field__error[data-for="phone"]');
  await page.waitForFunction(() => document.querySelector('#ga-form .ge-field__error[data-for="phone"]').textContent);
  log(`bad phone refused: ${(await phoneError.textContent()).trim()}`);
  await shoot(page, "grid-assistants-02-form-error", { scrollTo: "top" });
  await page.fill('#ga-form input[name="phone"]', NEW_ASSISTANT.phone);
  await page.fill('#ga-form textarea[name="notes"]', "文艺路社区党员（E2E）");
  const created = apiResponse(page, "POST", (p) => p === "/api/v1/grid-assistants");
  await page.click("#ga-save");
  const res = await created;
  check(res.status() === 201, `the assistant is created (201), got ${res.status()}: ${await res.text()}`);
  const assistant = await res.json();
  await page.waitForSelector("#ga-editor", { state: "hidden" });
  await search(page, NEW_ASSISTANT.name);
  const row = page.locator(`#ga-table tr[data-id="${assistant.id}"]`);
  await row.waitFor();
  check((await row.innerText()).includes("党员"), "the new assistant is listed with his kind");

  // edit: set inactive
  await row.locator(".ga-edit").click();
  await page.selectOption('#ga-form select[name="status"]', "inactive");
  const patched = apiResponse(page, "PATCH", (p) => p === `/api/v1/grid-assistants/${assistant.id}`);
  await page.click("#ga-save");
  check((await patched).status() === 200, "the assistant is edited (200)");
  await page.waitForFunction((id) => document.querySelector(`#ga-table tr[data-id="${id}"]`)?.innerText.includes("停用"),
    assistant.id);
  await shoot(page, "grid-assistants-03-edited", { scrollTo: "top" });

  // delete him (never assigned: 204)
  await page.locator(`#ga-table tr[data-id="${assistant.id}"] .ga-delete`).click();
  const deleted = apiResponse(page, "DELETE", (p) => p === `/api/v1/grid-assistants/${assistant.id}`);
  await page.click('.ge-dialog button[value="ok"]');
  check((await deleted).status() === 204, "an assistant without posts is deleted (204)");
  await page.waitForSelector(`#ga-table tr[data-id="${assistant.id}"]`, { state: "detached" });

  // an assistant with posts cannot be deleted: 409, then 改为停用
  await search(page, "社区干部");
  const seeded = page.locator("#ga-table tbody tr[data-id]").first();
  const seededId = await seeded.getAttribute("data-id");
  await seeded.locator(".ga-delete").click();
  const conflict = apiResponse(page, "DELETE", (p) => p === `/api/v1/grid-assistants/${seededId}`);
  await page.click('.ge-dialog button[value="ok"]');
  check((await conflict).status() === 409, "an assistant with posts is not deleted (409)");
  const offer = page.locator(".ge-dialog");
  await offer.waitFor();
  check(/停用/.test(await offer.innerText()), "the 409 offers to set him inactive");
  const deactivated = apiResponse(page, "PATCH", (p) => p === `/api/v1/grid-assistants/${seededId}`);
  await page.click('.ge-dialog button[value="ok"]');
  check((await deactivated).status() === 200, "set inactive instead (200)");
  log(`created, edited, deleted ${assistant.id}; ${seededId} (with posts) set inactive instead of deleted`);
  return { created: assistant.id, deactivated: Number(seededId) };
}

// ---------------------------------------------------------------- 编辑任职

async function editPost(page) {
  await page.goto(url("/app/grids"));
  await page.waitForSelector("#ge-tree .ge-node__row");
  await page.fill("#ge-q", GRID.code);
  await page.click(`.ge-result[data-code="${GRID.code}"]`);
  await page.waitForSelector('#gs-staff[data-state="ready"]');
  const holder = page.locator('.gs-post[data-post="account_manager"] .gs-holder').first();
  const id = await holder.getAttribute("data-id");
  await holder.locator(".gs-holder__edit").click();
  const form = page.locator(`#gs-edit-${id}`);
  await form.waitFor();
  await form.locator('textarea[name="responsibilities"]').fill("负责识字里社区东片商户建档与走访（E2E 编辑）");
  await form.locator(".gs-kpi-row__value").first().fill("450");
  await form.locator('input[name="valid_from"]').fill("2026-02-01");
  const saved = apiResponse(page, "PATCH", (p) => p === `/api/v1/grid-assignments/${id}`);
  await form.locator('button[type="submit"]').click();
  const res = await saved;
  check(res.status() === 200, `the post is saved (200), got ${res.status()}: ${await res.text()}`);
  const body = await res.json();
  check(body.valid_from === "2026-02-01", "the start date changed");
  const shown = page.locator(`.gs-holder[data-id="${id}"]`);
  await page.waitForFunction((i) => document.querySelector(`.gs-holder[data-id="${i}"]`)?.innerText.includes("E2E 编辑"), id);
  check((await shown.innerText()).includes("自 2026-02-01"), "the panel shows the new start date");
  log(`edited post ${id}: ${JSON.stringify(body.kpi_targets)} from ${body.valid_from}`);
  await shoot(page, "grid-staff-06-edit-post", { scrollTo: `.gs-holder[data-id="${id}"]` });
  return Number(id);
}

// ---------------------------------------------------------------- 网格内客户 balancing

async function previewCustomers(page) {
  const posted = apiResponse(page, "POST", (p) => p.endsWith("/grid-balancing/customers/preview"));
  await page.click("#gbc-run");
  const res = await posted;
  check(res.status() === 200, `测算 answers 200, got ${res.status()}: ${await res.text()}`);
  await page.waitForSelector("#gbc-cv-after");
  return res.json();
}

async function balanceCustomers(page) {
  await page.goto(url("/app/grids/balance"));
  await page.click('#gb-mode [data-mode="customers"]');
  await page.waitForSelector("#gbc-form:not([hidden])");
  await pick(page, "#gbc-grid", TOWNSHIP.code, TOWNSHIP.name);
  await page.waitForFunction(() => document.querySelectorAll("#gbc-managers .gb-manager").length >= 2);
  await page.waitForSelector("#gbc-derive:not([disabled])");
  const managers = await page.locator("#gbc-managers .gb-manager").count();
  const first = await previewCustomers(page);
  const fills = await page.$$eval("#gb-map-0 path.gbc-point", (ps) => [...new Set(ps.map((p) => p.getAttribute("fill")))]);
  check(fills.length >= 2, `points are coloured by manager, got ${fills.join(", ")}`);
  check(await page.locator("#gbc-table tbody tr").count() === managers, "one table row per manager");
  check(first.moves.length > 0, "the proposal moves customers");
  check(await page.locator("#gb-map-0 path.gbc-point.is-moved").count() === first.moves.length, "moved points are ringed");
  log(`customers 测算: ${managers} managers, CV ${first.balance.cv_before} → ${first.balance.cv_after}, `
    + `${first.moves.length} move(s)`);
  await shoot(page, "grid-balance-04-customers", { scrollTo: "top" });

  const locked = first.moves[0].customer_id;
  await page.$eval(`#gb-map-0 path.gbc-id-${locked}`, (p) => p.dispatchEvent(new MouseEvent("click", { bubbles: true })));
  await page.waitForSelector(`#gbc-locked .gp-chip[data-id="${locked}"]`);
  check(await page.isVisible("#gbc-stale"), "locking marks the result stale");
  const second = await previewCustomers(page);
  check(!second.moves.some((m) => m.customer_id === locked), "the locked customer stays");
  check(second.moves.length > 0, "with one customer locked others still move");

  await page.fill("#gbc-reason", "二季度客户平衡（E2E）");
  const applied = apiResponse(page, "POST", (p) => p.endsWith("/grid-balancing/customers/apply"));
  await page.click("#gbc-apply-btn");
  await page.click('.ge-dialog button[value="ok"]');
  const res = await applied;
  check(res.status() === 200, `应用调整 answers 200, got ${res.status()}: ${await res.text()}`);
  const done = await res.json();
  check(done.moved_customers === second.moves.length, "every proposed customer moved");
  await page.waitForSelector("#gbc-handover-list .gb-handover");
  check(await page.isDisabled("#gbc-apply-btn"), "an applied proposal cannot be applied twice");
  log(`applied: ${done.moved_customers} customers, ${done.handover_ids.length} hand-over record(s)`);
  await page.setViewportSize({ width: 1440, height: 1600 });
  await shoot(page, "grid-balance-05-customers-applied", { scrollTo: "top" });
  await page.setViewportSize({ width: 1440, height: 900 });
  return { moved: done.moved_customers, handovers: done.handover_ids };
}

async function main() {
  await mkdir(opts.out, { recursive: true });
  const { browser, page, pageErrors, offsite } = await openPage({ chromiumPath: opts.chromium, base, timeout });
  try {
    await login(page);
    log(`logged in as ${opts.user}`);
    const assistants = await register(page);
    const post = await editPost(page);
    const balanced = await balanceCustomers(page);
    check(offsite.length === 0, `no off-site request, got ${offsite.join(", ")}`);
    check(pageErrors.length === 0, `no uncaught page errors, got: ${pageErrors.join(" | ")}`);
    if (opts.keep) {
      await mkdir(opts.keep, { recursive: true });
      for (const file of shots) await copyFile(file, path.join(opts.keep, path.basename(file)));
      log(`kept ${shots.length} screenshots in ${opts.keep}`);
    }
    console.log(JSON.stringify({ ok: true, assistants, post, balanced, seconds: (Date.now() - started) / 1000 }));
  } catch (err) {
    await screenshotOnFailure(browser, path.join(opts.out, "grid-assistants-failure.png"));
    throw err;
  } finally {
    await browser.close();
  }
}

main().catch(exitFailed(opts.out));
