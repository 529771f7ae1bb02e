#!/usr/bin/env node
// End-to-end check of grid staffing, rating and balancing in headless Chromium, driven by tests/e2e/test_grid_staff.py.
//
//   node tests/e2e/grid_staff.mjs --base http://127.0.0.1:PORT --out DIR [--rate-all] [--keep docs/screenshots]
//
// As admin: opens 识字里社区 (G430102001001) in 网格管理 by search, sees its 网格人员 and 网格评级 sections, is refused
// a second 网格长 (409 shown in the form), assigns an account manager, hands the post over with a reason and finds
// it in 移交记录 and in the history, rates the grid now (and with --rate-all, rates every grid through the
// background job while a worker runs); then opens 网格平衡, picks 岳麓街道 (G430104002) and its managers, runs
// 测算 (CV before/after, coloured map), locks a moved grid by clicking it and re-runs, applies with a reason and
// sees the hand-overs listed. Screenshots go to --out (with --keep also to that folder). The caller restores the
// data. Any failure exits non-zero with a message.

import { copyFile, mkdir } from "node:fs/promises";
import path from "node:path";

import { check, exitFailed, logIn, makeLog, openPage, screenshotOnFailure, scriptArgs } from "./harness.mjs";

const GRID = { code: "G430102001001", name: "识字里社区" };
// a township whose managers each hold several single-manager grids (shared grids stay put), so the
// proposal has moves to lock and apply
const TOWNSHIP = { code: "G430104002", name: "岳麓街道" };
const NEW_AM = { username: "am_430102_2_1" };
const RECEIVER = { username: "am_430102_2_2" };

const { opts, base, url, timeout } = scriptArgs({
  usage: "node tests/e2e/grid_staff.mjs --base URL --out DIR [--rate-all] [--keep DIR]",
  options: {
    user: { type: "string", default: "admin" },
    "rate-all": { type: "boolean", default: false },
  },
});
const started = Date.now();
const log = makeLog(started);
const shots = [];



/** Screenshot the page, scrolled to `scrollTo` (a selector, or "top"). */
async function shoot(page, name, { scrollTo } = {}) {
  await page.evaluate((sel) => {
    const toasts = [...document.querySelectorAll(".ge-toast")];
    toasts.slice(0, -1).forEach((t) => t.remove()); // keep the latest message only
    if (sel === "top") document.querySelector(".content").scrollTop = 0;
    else if (sel) document.querySelector(sel).scrollIntoView({ block: "start" });
  }, scrollTo || null);
  await page.mouse.move(2, 2); // no hover effects in the pictures
  await page.waitForTimeout(250); // label de-cluttering runs on moveend
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

/** Type into a search picker and click the option whose text contains `text`. */
async function pick(page, inputSelector, query, text) {
  await page.fill(inputSelector, query);
  await page.locator(`.gp-picker:has(${inputSelector}) .gp-picker__option`, { hasText: text }).first().click();
}

// ---------------------------------------------------------------- 网格管理: staff and rating

async function openGrid(page) {
  await page.goto(url("/app/grids"));
  await page.waitForSelector("#ge-tree .ge-node__row");
  await page.fill("#ge-q", GRID.code);
  await page.click(`.ge-result[data-code="${GRID.code}"]`);
  await page.waitForSelector(`path.ge-code-${GRID.code}.ge-shape--selected`);
  check((await page.textContent(".ge-panel__title")).trim() === GRID.name, "details panel shows the community");
  await page.waitForSelector('#gs-staff[data-state="ready"]');
  await page.waitForSelector('#gs-rating:is([data-state="rated"], [data-state="unrated"])');
  const leaders = await page.locator('.gs-post[data-post="grid_leader"] .gs-holder').count();
  const managers = await page.locator('.gs-post[data-post="account_manager"] .gs-holder').count();
  check(leaders === 1 && managers >= 1, `staff section lists the leader and managers (got ${leaders}, ${managers})`);
  const holder = await page.locator('.gs-post[data-post="grid_leader"] .gs-holder').first().innerText();
  check(/自 \d{4}-\d{2}-\d{2}/.test(holder), `a post shows its since-date, got: ${holder}`);
  check(await page.locator(".gs-kpi").count() > 0, "KPI targets are shown");
  const rated = await page.getAttribute("#gs-rating", "data-state");
  if (rated === "unrated") check(/尚未评级/.test(await page.textContent("#gs-rating")), "an unrated grid says 尚未评级");
  log(`opened ${GRID.name}: leader + ${managers} account manager(s), rating ${rated}`);
  await shoot(page, "grid-staff-01-panel", { scrollTo: "#gs-staff" });
}

async function assign(page) {
  await page.click("#gs-assign");
  await page.selectOption("#gs-assign-post", "grid_leader");
  await pick(page, "#gs-assign-person", NEW_AM.username, NEW_AM.username);
  const refused = apiResponse(page, "POST", (p) => p.endsWith("/assignments"));
  await page.click('#gs-assign-form button[type="submit"]');
  check((await refused).status() === 409, `a second 网格长 is refused with 409, got ${(await refused).status()}`);
  const error = page.locator("#gs-assign-form .ge-form__error");
  await error.waitFor();
  check(/网格长/.test(await error.textContent()), `the 409 is shown in the form, got: ${await error.textContent()}`);
  log(`second leader refused: ${(await error.textContent()).trim()}`);
  await shoot(page, "grid-staff-02-leader-taken", { scrollTo: "#gs-staff" });

  await page.selectOption("#gs-assign-post", "account_manager");
  await pick(page, "#gs-assign-person", NEW_AM.username, NEW_AM.username);
  await page.fill('#gs-assign-form textarea[name="responsibilities"]', "负责识字里社区商户走访与建档（E2E）");
  await page.fill("#gs-assign-form .gs-kpi-row__key", "households_profiled");
  await page.fill("#gs-assign-form .gs-kpi-row__value", "300");
  const created = apiResponse(page, "POST", (p) => p.endsWith("/assignments"));
  await page.click('#gs-assign-form button[type="submit"]');
  const res = await created;
  check(res.status() === 201, `the account manager is assigned (201), got ${res.status()}: ${await res.text()}`);
  const assignment = await res.json();
  await page.waitForSelector(`.gs-post[data-post="account_manager"] .gs-holder[data-id="${assignment.id}"]`);
  log(`assigned ${assignment.name} (user ${assignment.user_id}) as ${assignment.post_label}, assignment ${assignment.id}`);
  return assignment;
}

async function handOver(page, assignment) {
  await page.click("#gs-handover");
  await page.selectOption("#gs-handover-from", String(assignment.user_id));
  const box = page.locator('#gs-handover-form input[name="include_customers"]');
  check(await box.isEnabled(), "同时移交管户客户 can be chosen");
  await box.check();
  await pick(page, "#gs-handover-to", RECEIVER.username, RECEIVER.username);
  await page.fill('#gs-handover-form textarea[name="reason"]', "岗位调整（E2E）");
  const posted = apiResponse(page, "POST", (p) => p.endsWith("/handover"));
  await page.click('#gs-handover-form button[type="submit"]');
  const res = await posted;
  check(res.status() === 201, `the hand-over is written (201), got ${res.status()}: ${await res.text()}`);
  const handover = await res.json();
  check(handover.include_customers && Number.isInteger(handover.moved_customers), "the hand-over includes customers");
  const row = page.locator(`.gs-handover[data-id="${handover.id}"]`);
  await row.waitFor();
  const text = await row.innerText();
  check(text.includes(`${handover.from_user_name} → ${handover.to_user_name}`) && text.includes("岗位调整（E2E）"),
    `移交记录 lists the hand-over, got: ${text}`);
  await page.check("#gs-history");
  const ended = page.locator(`.gs-holder.is-ended[data-id="${assignment.id}"]`);
  await ended.waitFor();
  check(/移交/.test(await ended.innerText()), "the history shows the ended post with its reason");
  log(`handed over ${handover.from_user_name} → ${handover.to_user_name} (hand-over ${handover.id})`);
  await shoot(page, "grid-staff-03-handover", { scrollTo: '.gs-post[data-post="account_manager"]' });
  return handover;
}

async function rate(page) {
  const posted = apiResponse(page, "POST", (p) => p.endsWith("/rating"));
  await page.click("#gr-rate-now");
  const res = await posted;
  check(res.status() === 200, `rate now answers 200, got ${res.status()}: ${await res.text()}`);
  await page.waitForSelector('#gs-rating[data-state="rated"]');
  const grade = (await page.textContent("#gr-grade")).trim();
  check(/^[A-D]$/.test(grade), `a grade A–D is shown, got ${grade}`);
  const bars = await page.locator(".gr-comp .gr-bar__fill").count();
  check(bars > 0, "component bars are shown");
  log(`rated now: grade ${grade}, ${bars} component(s)`);
  await shoot(page, "grid-staff-04-rating", { scrollTo: "#gs-rating" });
  if (!opts["rate-all"]) return;
  const run = apiResponse(page, "POST", (p) => p.endsWith("/grid-ratings/run"));
  await page.click("#gr-rate-all");
  check((await run).status() === 202, "rating all grids is accepted (202)");
  await page.waitForSelector('#gr-job[data-status="finished"]', { timeout: 45000 });
  await page.waitForSelector('#gs-rating[data-state="rated"]');
  log(`rate-all job finished: ${(await page.textContent("#gr-job")).trim()}`);
  await shoot(page, "grid-staff-05-rate-all", { scrollTo: "#gs-rating" });
}

// ---------------------------------------------------------------- 网格平衡

async function preview(page) {
  const posted = apiResponse(page, "POST", (p) => p.endsWith("/grid-balancing/preview"));
  await page.click("#gb-run");
  const res = await posted;
  check(res.status() === 200, `测算 answers 200, got ${res.status()}: ${await res.text()}`);
  await page.waitForSelector("#gb-cv-after");
  return res.json();
}

async function balance(page) {
  await page.goto(url("/app/grids"));
  await page.click('#sidebar a[href="/app/grids/balance"]');
  await page.waitForURL((u) => u.pathname === "/app/grids/balance");
  await pick(page, "#gb-parent", TOWNSHIP.code, TOWNSHIP.name);
  await page.waitForFunction(() => document.querySelectorAll(".gb-manager").length >= 2);
  await page.waitForSelector("#gb-derive:not([disabled])");
  const managers = await page.locator(".gb-manager").count();
  log(`picked ${TOWNSHIP.name}: ${managers} account managers derived from its child grids`);
  const first = await preview(page);
  const cv = [await page.textContent("#gb-cv-before"), await page.textContent("#gb-cv-after")];
  check(cv.every((t) => /^\d+\.\d{3}$/.test(t.trim())), `CV before/after shown, got ${cv.join(" → ")}`);
  const fills = await page.$$eval("#gb-map-0 path.gb-shape", (ps) => [...new Set(ps.map((p) => p.getAttribute("fill")))]);
  check(fills.length >= 2, `the map colours grids by manager, got fills ${fills.join(", ")}`);
  const rows = await page.locator("#gb-table tbody tr").count();
  check(rows === managers, `the table has a row per manager (${rows}/${managers})`);
  check(first.moves.length > 0, "the proposal moves at least one grid");
  check(await page.locator("#gb-map-0 path.is-moved").count() === first.moves.length, "moved grids are outlined");
  log(`测算: CV ${cv.join(" → ")}, ${first.moves.length} move(s), ${first.flags.length} flag(s), fills ${fills.length}`);
  await shoot(page, "grid-balance-01-preview", { scrollTo: "top" });

  // lock the first moved grid by clicking it on the map, then re-run: it must stay put
  const locked = first.moves[0];
  await page.$eval(`#gb-map-0 path.gb-code-${locked.code}`, (p) => p.dispatchEvent(new MouseEvent("click", { bubbles: true })));
  await page.waitForSelector(`#gb-locked .gp-chip[data-id="${locked.grid_id}"]`);
  check(await page.isVisible("#gb-stale"), "changing the locks marks the result stale");
  const second = await preview(page);
  check(!second.moves.some((m) => m.grid_id === locked.grid_id), `locked grid ${locked.code} is not moved`);
  check(await page.locator(`#gb-map-0 path.gb-code-${locked.code}.is-locked`).count() === 1, "the locked grid is marked");
  await page.click('#gb-view [data-view="compare"]');
  await page.waitForSelector("#gb-map-1 path.gb-shape");
  log(`locked ${locked.code}; re-run: ${second.moves.length} move(s), CV ${second.balance.cv_before} → ${second.balance.cv_after}`);
  await shoot(page, "grid-balance-02-locked-compare", { scrollTo: "top" });
  check(second.moves.length > 0, "with one grid locked the proposal still moves grids");

  await page.fill("#gb-reason", "二季度网格平衡（E2E）");
  const applied = apiResponse(page, "POST", (p) => p.endsWith("/grid-balancing/apply"));
  await page.click("#gb-apply-btn");
  await page.click('.ge-dialog button[value="ok"]');
  const res = await applied;
  check(res.status() === 200, `应用调整 answers 200, got ${res.status()}: ${await res.text()}`);
  const { handover_ids: ids } = await res.json();
  check(ids.length === second.moves.length, `one hand-over per move (${ids.length}/${second.moves.length})`);
  await page.waitForFunction((n) => document.querySelectorAll("#gb-handover-list .gb-handover").length === n, ids.length);
  const listed = await page.locator("#gb-handover-list").innerText();
  check(listed.includes("二季度网格平衡（E2E）"), "the hand-overs carry the reason");
  check(await page.isDisabled("#gb-apply-btn"), "an applied proposal cannot be applied twice");
  log(`applied: ${ids.length} hand-over(s) listed`);
  await page.setViewportSize({ width: 1440, height: 1800 }); // the whole page: map, table and hand-overs
  await shoot(page, "grid-balance-03-applied", { scrollTo: "top" });
  await page.setViewportSize({ width: 1440, height: 900 });
  return ids;
}

async function main() {
  await mkdir(opts.out, { recursive: true });
  const { browser, page, pageErrors, offsite } = await openPage({ chromiumPath: opts.chromium, base, timeout });
  try {

    await login(page);
    log("logged in through the login form");
    await openGrid(page);
    const assignment = await assign(page);
    const handover = await handOver(page, assignment);
    await rate(page);
    const balanced = await balance(page);
    check(offsite.length === 0, `no off-site request with 无底图, got ${offsite.join(", ")}`);
    check(pageErrors.length === 0, `no uncaught page errors, got: ${pageErrors.join(" | ")}`);
    if (opts.keep) {
      await mkdir(opts.keep, { recursive: true });
      for (const file of shots) await copyFile(file, path.join(opts.keep, path.basename(file)));
      log(`kept ${shots.length} screenshots in ${opts.keep}`);
    }
    console.log(JSON.stringify({
      ok: true, assignment_id: assignment.id, handover_id: handover.id, balance_handover_ids: balanced,
      seconds: (Date.now() - started) / 1000,
    }));
  } catch (err) {
    await screenshotOnFailure(browser, path.join(opts.out, "grid-staff-failure.png"));
    throw err;
  } finally {
    await browser.close();
  }
}

main().catch(exitFailed(opts.out));
