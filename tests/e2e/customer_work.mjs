#!/usr/bin/env node
// End-to-end check of 客群管理 / 标签管理 / 客户提醒 / 客户建档 in headless Chromium, driven by
// tests/e2e/test_customer_work_pages.py.
//
//   node tests/e2e/customer_work.mjs --base URL --out DIR --tag E2E-XXXX --profile-customer ID [--keep DIR]
//
// 1. bl_430102 builds a group (persons, formal, tag 网点周边500米, rule age >= 30): the live preview answers, a bad rule
//    value shows its error next to the row, then he submits it. 2. He creates a rule tag: a non-numeric value is
//    refused with the error next to the row, fixed, previewed, saved and recomputed (a real RQ worker runs it).
// 3. admin (group:approve; the creator cannot approve his own) approves it from 待审核 and sees the log and members.
// 4. am_430102_1_1 marks a reminder done with a note. 5. He fills a merchant profile with a bad 营业时间, sees the
//    field error, fixes it and sees completeness rise,
//    then adds a weekly restocking-day reminder event. Prints one JSON line with what the Python side checks.

import { copyFile, mkdir } from "node:fs/promises";
import path from "node:path";
import process from "node:process";

import { Failure, check, logIn, makeLog, openPage, scriptArgs } from "./harness.mjs";

const { opts, base, url, timeout } = scriptArgs({
  usage: "node tests/e2e/customer_work.mjs --base URL --out DIR --profile-customer ID [--tag TAG] [--keep DIR]",
  options: {
    tag: { type: "string", default: `E2E-${Date.now().toString(36).toUpperCase()}` },
    "profile-customer": { type: "string", default: "" },
    "untyped-customer": { type: "string", default: "" },
  },
  required: ["profile-customer"],
});
const log = makeLog(Date.now());
const shots = [];
const result = { ok: false, tag: opts.tag };

async function shoot(page, name, { height = 0 } = {}) {
  const file = path.join(opts.out, `customer-work-${name}.png`);
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

async function open(page, p) {
  await page.goto(url(p));
  await page.waitForSelector("body[data-ready='true']");
}

/** Wait for the group preview to settle and return its total. */
async function previewTotal(page) {
  await page.waitForTimeout(450); // the preview is debounced
  await page.waitForSelector("#cg-preview:not([aria-busy])");
  return page.$eval("#cg-preview-total", (n) => n.textContent);
}

const num = (text) => Number(String(text).replace(/,/g, ""));

/** Draw the group's range on the map: click the [lon, lat] vertices, then the first one again to finish. */
async function drawPolygon(page, vertices) {
  await page.waitForSelector("#cg-map[data-ready='true']");
  await page.locator("#cg-map").scrollIntoViewIfNeeded();
  await page.click("#cg-draw");
  const points = await page.evaluate((vs) => {
    const box = document.getElementById("cg-map");
    const { map } = { map: box.gmMap };
    map.fitBounds(vs.map(([x, y]) => [y, x]), { padding: [30, 30] });
    const r = box.getBoundingClientRect();
    return vs.map(([x, y]) => {
      const p = map.latLngToContainerPoint([y, x]);
      return [r.left + p.x, r.top + p.y];
    });
  }, vertices);
  for (const [x, y] of [...points, points[0]]) {
    await page.mouse.click(x, y);
    await page.waitForTimeout(120);
  }
  await page.waitForSelector("#cg-map[data-polygon='true']");
}

async function buildGroup(page) {
  await open(page, "/app/customers/groups");
  await page.click("#cg-new");
  await page.fill("#cg-name", opts.tag);
  await page.fill("#cg-description", "E2E：芙蓉支行网点周边 30 岁以上个人客户");
  const totalAll = await previewTotal(page);
  await drawPolygon(page, [[113.02, 28.18], [113.07, 28.18], [113.07, 28.23], [113.02, 28.23]]);
  const totalShape = await previewTotal(page);
  log(`preview: all ${totalAll}, in the drawn range ${totalShape}`);
  check(num(totalShape) > 0 && num(totalShape) < num(totalAll), `the drawn range should narrow (${totalAll} -> ${totalShape})`);
  await page.locator("#cg-tags-any label", { hasText: "网点周边500米" }).locator("input").check();
  const totalTag = await previewTotal(page);
  log(`preview: with the tag ${totalTag}`);
  check(num(totalTag) < num(totalShape), `the tag should narrow the preview (${totalShape} -> ${totalTag})`);
  await page.click("#cg-add-rule");
  const row = page.locator("#cg-rules .cw-rule-row").first();
  await row.locator(".cw-rule-field").selectOption("age");
  await row.locator(".cw-rule-op").selectOption(">=");
  await row.locator(".cw-rule-value").fill("三十");
  await page.waitForSelector("#cg-rules .cw-rule-row.has-error");
  const rowError = await row.locator(".cw-row-error").textContent();
  log(`group rule error next to the row: ${rowError}`);
  check(/取值/.test(rowError), `the row error should name the value: ${rowError}`);
  await row.locator(".cw-rule-value").fill("30");
  const totalAge = await previewTotal(page);
  check(!(await page.$("#cg-rules .cw-rule-row.has-error")), "the row error should clear once fixed");
  const byManager = await page.$$eval("#cg-by-manager tbody tr", (rows) => rows.length);
  check(Number(totalAge.replace(/,/g, "")) > 0 && byManager > 0, `preview with the rule: ${totalAge}, ${byManager} managers`);
  result.preview_total = num(totalAge);
  log(`preview with age >= 30: ${totalAge}`);
  // a grid narrows too (grid picker → chip); removing the chip restores the count
  const top = (await page.$eval("#cg-by-grid tbody tr td", (n) => n.textContent)).trim();
  await page.fill("#cg-grid", top);
  await page.locator(".gp-picker__option", { hasText: top }).first().dispatchEvent("mousedown");
  await page.waitForSelector("#cg-grid-chips .cw-chip");
  const totalGrid = await previewTotal(page);
  log(`preview in grid ${top}: ${totalGrid}`);
  check(num(totalGrid) > 0 && num(totalGrid) < num(totalAge), `the grid should narrow (${totalAge} -> ${totalGrid})`);
  await page.click("#cg-grid-chips .cw-chip button");
  check(await previewTotal(page) === totalAge, "removing the grid should restore the count");
  await shoot(page, "group-editor", { height: 1100 });
  await page.click("#cg-submit");
  await page.waitForSelector("#cg-detail-info[data-status='submitted']");
  await page.waitForSelector("#cg-reviews li[data-action='submit']");
  check(await page.isHidden("#cg-review-box"), "the creator must not be offered approve/reject");
}

async function buildTag(page) {
  const code = `e2e_${opts.tag.toLowerCase().replace(/[^a-z0-9]/g, "")}`.slice(0, 40);
  await open(page, "/app/customers/tags");
  await page.click("#tg-new-rule");
  await page.fill("#tg-code", code);
  await page.fill("#tg-name", `${opts.tag} 存款二十万以上`);
  const row = page.locator("#tg-rules .cw-rule-row").first();
  await row.locator(".cw-rule-field").selectOption("deposit_balance");
  await row.locator(".cw-rule-op").selectOption(">=");
  await row.locator(".cw-rule-value").fill("二十万");
  await page.click("#tg-save");
  await page.waitForSelector("#tg-rules .cw-rule-row.has-error");
  const err = await row.locator(".cw-row-error").textContent();
  log(`tag rule error next to the row: ${err}`);
  check(/数字/.test(err), `expected a number error next to the row, got: ${err}`);
  await shoot(page, "tag-rule-error");
  await row.locator(".cw-rule-value").fill("200000");
  await page.click("#tg-preview");
  await page.waitForSelector("#tg-preview-count[data-count]");
  result.tag_preview = Number(await page.$eval("#tg-preview-count", (n) => n.dataset.count));
  check(result.tag_preview > 0, "the rule should match some customers");
  await page.click("#tg-save");
  const tr = page.locator(`#tg-table tr[data-code='${code}']`);
  await tr.waitFor();
  await tr.locator(".tg-recompute").click();
  await page.waitForSelector(`#tg-job-${await tr.getAttribute("data-id")}[data-done='true']`, { timeout: 60000 });
  log(`recompute: ${await tr.locator(".cw-progress").textContent()}`);
  result.tag_count = num(await tr.locator(".tg-count").textContent());
  check(result.tag_count > 0, "the row should show the customers now carrying the tag");
  await shoot(page, "tag-recompute");
  result.tag_code = code;
}

async function approveGroup(page) {
  await open(page, "/app/customers/groups?tab=review");
  const tr = page.locator("#cg-table tbody tr", { hasText: opts.tag });
  await tr.waitFor();
  await tr.locator("button", { hasText: "审核" }).click();
  await page.waitForSelector("#cg-review-box:not([hidden])");
  await page.fill("#cg-review-comment", "E2E 同意：口径清晰");
  await page.click("#cg-approve");
  await page.waitForSelector("#cg-detail-info[data-status='approved']");
  await page.waitForSelector("#cg-reviews li[data-action='approve']");
  await page.waitForSelector("#cg-members tbody a");
  result.member_rows = await page.$$eval("#cg-members tbody tr", (rows) => rows.length);
  await shoot(page, "group-approved", { height: 1100 });
}

async function handleReminder(page) {
  await open(page, "/app/customers/reminders");
  const first = page.locator("#rm-table tbody tr[data-status='open']").first();
  await first.waitFor();
  result.reminder_id = Number(await first.getAttribute("data-id"));
  await first.locator(".rm-done").click();
  await page.fill("#rm-note", "E2E 已电话联系客户并预约走访");
  await page.click("#rm-done-dialog button[type='submit']");
  await page.waitForSelector(`#rm-table tbody tr[data-id='${result.reminder_id}']`, { state: "detached" });
  await page.selectOption("#rm-status", "done");
  await page.click("#rm-filters button[type='submit']");
  const done = page.locator(`#rm-table tbody tr[data-id='${result.reminder_id}']`);
  await done.waitFor();
  check((await done.locator(".rm-note").textContent()).includes("预约走访"), "the note should show on the done reminder");
  await page.click("#rm-stats-form button[type='submit']");
  await page.waitForSelector("#rm-handled-rate");
  await shoot(page, "reminders", { height: 1100 });
}

async function fillProfile(page) {
  const id = opts["profile-customer"];
  await page.goto(url(`/app/customers/${id}`)); // the 360 view's 客户建档 button leads to the form
  await Promise.all([page.waitForURL((u) => u.pathname === `/app/customers/${id}/profile`), page.click("#cu-profile-link")]);
  await page.waitForSelector("body[data-ready='true']");
  await page.waitForSelector("#pf-form:not([hidden])");
  const before = Number(await page.$eval("#pf-completeness", (n) => n.dataset.value || "0"));
  await page.fill("#pf-shop_name", "E2E 便民超市");
  await page.fill("#pf-operator_name", "张三");
  await page.fill("#pf-contact_phone", "13800001234");
  await page.selectOption("#pf-business_type", "grocery");
  await page.fill("#pf-monthly_turnover", "86000");
  await page.locator("[data-name='payment_methods'] input[value='our_qr']").check();
  await page.selectOption("#pf-loan_need", "false");
  await page.fill("#pf-employees", "3");
  await page.fill("#pf-business_hours", "8点-21点");
  await page.click("#pf-save");
  const slot = page.locator(".ge-field__error[data-for='business_hours']");
  await page.waitForFunction(() => document.querySelector(".ge-field__error[data-for='business_hours']").textContent !== "");
  const err = await slot.textContent();
  log(`profile field error: ${err}`);
  await shoot(page, "profile-error", { height: 1200 });
  await page.fill("#pf-business_hours", "08:00-21:00");
  await page.click("#pf-save");
  await page.waitForFunction((b) => Number(document.getElementById("pf-completeness").dataset.value) > b, before);
  check(await slot.textContent() === "", "the field error should clear after a good save");
  result.completeness_before = before;
  result.completeness_after = Number(await page.$eval("#pf-completeness", (n) => n.dataset.value));
  log(`completeness ${before} -> ${result.completeness_after}`);
  // a reminder event set while profiling: the merchant restocks every Monday
  await page.click("#pf-add-event");
  await page.selectOption("#pf-ev-kind", "restock");
  await page.fill("#pf-ev-title", "E2E 每周一进货");
  await page.fill("#pf-ev-date", "2026-11-30");
  await page.selectOption("#pf-ev-recurrence", "weekly");
  await page.fill("#pf-ev-days", "1");
  await page.click("#pf-event-dialog button[type='submit']");
  await page.locator("#pf-events-table tbody tr", { hasText: "E2E 每周一进货" }).waitFor();
  await shoot(page, "profile-saved", { height: 1500 });
  if (opts["untyped-customer"]) {
    // a customer with no profile type yet: pick 农户 and the farmer template's form appears (nothing saved)
    await open(page, `/app/customers/${opts["untyped-customer"]}/profile`);
    await page.waitForSelector("#pf-type-card:not([hidden])");
    await page.click("#pf-type-choices button[data-type='farmer']");
    await page.waitForSelector("#pf-form:not([hidden]) .cw-pf-group");
    result.farmer_fields = await page.$$eval("#pf-fields .ge-field", (n) => n.length);
    check(result.farmer_fields > 5, "the farmer template should render its fields");
  }
}

let browser;
try {
  await mkdir(opts.out, { recursive: true });
  const opened = await openPage({ chromiumPath: opts.chromium, base, timeout });
  browser = opened.browser;
  const { page, pageErrors, offsite } = opened;
  await login(page, "bl_430102");
  await buildGroup(page);
  log("group submitted");
  await buildTag(page);
  log("tag created and recomputed");
  await open(page, "/app/customers/reminders");
  await page.click(".cw-tab[data-scope='team']");
  await page.waitForSelector("#rm-owner-label:not([hidden])");
  await page.waitForSelector("#rm-table[data-scope='team']");
  check(/共 [1-9]/.test(await page.$eval("#rm-total", (n) => n.textContent)), "the team should have open reminders");
  result.team_reminders = await page.$eval("#rm-total", (n) => n.textContent);
  log(`branch leader's team reminders: ${result.team_reminders}`);
  await login(page, "admin");
  await approveGroup(page);
  log("group approved by admin");
  await login(page, "am_430102_1_1");
  await handleReminder(page);
  log("reminder done");
  await fillProfile(page);
  log("profile saved");
  check(!pageErrors.length, `page errors: ${pageErrors.join(" | ")}`);
  check(!offsite.length, `off-site requests: ${offsite.join(" | ")}`);
  if (opts.keep) {
    await mkdir(opts.keep, { recursive: true });
    for (const file of shots) await copyFile(file, path.join(opts.keep, path.basename(file)));
  }
  result.ok = true;
  result.screenshots = shots.length;
  console.log(JSON.stringify(result));
} catch (err) {
  console.error(err instanceof Failure ? `FAILED: ${err.message}` : err);
  process.exitCode = 1;
} finally {
  if (browser) await browser.close();
}
