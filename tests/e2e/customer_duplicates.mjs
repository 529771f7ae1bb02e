#!/usr/bin/env node
// End-to-end check of the 重复客户 page in headless Chromium, driven by tests/e2e/test_customer_duplicates_page.py.
//
//   node tests/e2e/customer_duplicates.mjs --base http://127.0.0.1:PORT --out DIR --name NAME [--keep docs/screenshots]
//
// A branch leader (bl_430102) opens /app/customers/duplicates, scans his branch (a real RQ worker runs the job,
// the progress text reaches 已完成), finds the pair whose customers are called NAME (made by the test), opens the
// side-by-side comparison, keeps customer A but takes B's phone, merges, sees the merge result, and undoes it from
// the merge detail; the pair is open again. Screenshots go to --out (with --keep the compare view is also copied
// to docs/screenshots/customers-duplicates.png). Any failure exits non-zero with a message.

import { copyFile, mkdir } from "node:fs/promises";
import path from "node:path";

import { check, exitFailed, logIn, makeLog, openPage, screenshotOnFailure, scriptArgs } from "./harness.mjs";

const { opts, base, url, timeout } = scriptArgs({
  usage: "node tests/e2e/customer_duplicates.mjs --base URL --out DIR --name NAME [--keep DIR]",
  options: {
    name: { type: "string" },
  },
  required: ["name"],
});
const started = Date.now();
const log = makeLog(started);
const shots = [];

async function shoot(page, name) {
  const file = path.join(opts.out, `customers-${name}.png`);
  await page.waitForTimeout(200);
  await page.screenshot({ path: file, fullPage: true });
  shots.push(file);
  log(`screenshot ${file}`);
  return file;
}

async function login(page, username) {
  await logIn(page, { base, username, password: opts.password, timeout, clearSession: true });
}

async function confirm(page) {
  await page.waitForSelector("dialog.ge-dialog[open]");
  await page.click('dialog.ge-dialog[open] button[value="ok"]');
}

const pairRow = (page) => page.locator("#dup-table tbody tr", { hasText: opts.name }).first();

async function flow(page) {
  await login(page, "bl_430102");
  await page.goto(url("/app/customers/duplicates"));
  await page.waitForSelector('#dup-list[data-state="ready"]');
  check(await page.locator('#sidebar a[href="/app/customers/duplicates"]').count() > 0, "the menu shows 重复客户");

  // scan my branch: a real job, its progress ends with 已完成
  await page.click("#dup-scan");
  await page.waitForSelector('#dup-progress[data-status="finished"]', { timeout: 30000 });
  const progress = await page.textContent("#dup-progress-text");
  check(progress.includes("已完成") && progress.includes("疑似重复"), `scan progress text: ${progress}`);
  log(`scan: ${progress}`);

  await page.waitForSelector(`#dup-table tbody tr:has-text("${opts.name}")`);
  const rowText = await pairRow(page).textContent();
  check(rowText.includes("姓名相同") && rowText.includes("50 米内"), `the pair's reasons: ${rowText}`);
  const pairId = Number(await pairRow(page).getAttribute("data-pair-id"));
  await pairRow(page).locator(".dup-compare").click();
  await page.waitForSelector("#dup-compare:not([hidden]) #dup-fields tbody tr");
  const phone = await page.textContent('#dup-fields tr[data-field="phone"]');
  check(/\d{3}\*{4}\d{4}.*\d{3}\*{4}\d{4}/.test(phone) && phone.includes("不同"), `masked phones differ: ${phone}`);
  check(!/1\d{10}/.test(await page.textContent("#dup-fields")), "no clear phone number in the comparison");
  const owner = await page.textContent('#dup-fields tr[data-field="owner_user_id"]');
  check(!owner.includes("ID "), `the owner is shown by name: ${owner}`);
  await page.check("#dup-survivor-a");
  await page.check("#dup-choice-phone-b");
  await shoot(page, "duplicates");

  await page.click("#dup-merge");
  await confirm(page);
  await page.waitForSelector('#dup-result[data-status="done"]');
  const mergeId = Number(await page.getAttribute("#dup-result", "data-merge-id"));
  const result = await page.textContent("#dup-result-body");
  check(result.includes("手机号"), `the result names the field taken from B: ${result}`);
  await page.waitForFunction((name) => !document.querySelector("#dup-table tbody").textContent.includes(name),
    opts.name);
  log(`merged pair ${pairId} as merge ${mergeId}`);
  await shoot(page, "duplicates-merged");

  // the merge detail from the 已合并 tab, then undo
  await page.click('.cu-tab[data-status="merged"]');
  await page.waitForSelector(`#dup-table tbody tr[data-pair-id="${pairId}"] .dup-view-merge`);
  await page.click(`#dup-table tbody tr[data-pair-id="${pairId}"] .dup-view-merge`);
  await page.waitForSelector(`#dup-result[data-merge-id="${mergeId}"][data-status="done"]`);
  await page.click("#dup-undo");
  await confirm(page);
  await page.waitForSelector('#dup-result[data-status="undone"]');
  check(await page.isHidden("#dup-undo"), "no undo button on an undone merge");
  await page.click('.cu-tab[data-status="open"]');
  await page.waitForSelector(`#dup-table tbody tr[data-pair-id="${pairId}"]`);
  log("undone: the pair is open again");

  // on second thought they are two people: dismiss the pair with a reason
  await page.click(`#dup-table tbody tr[data-pair-id="${pairId}"] .dup-compare`);
  await page.waitForSelector("#dup-compare:not([hidden]) #dup-dismiss");
  await page.click("#dup-dismiss");
  await page.waitForSelector("#dup-dismiss-dialog[open]");
  await page.fill("#dup-dismiss-note", "E2E 同名不同人");
  await page.click('#dup-dismiss-dialog button[type="submit"]');
  await page.waitForSelector(`#dup-table tbody tr[data-pair-id="${pairId}"]`, { state: "detached" });
  await page.click('.cu-tab[data-status="dismissed"]');
  await page.waitForSelector(`#dup-table tbody tr[data-pair-id="${pairId}"]:has-text("E2E 同名不同人")`);
  log("dismissed the pair");
  return { pairId, mergeId };
}

async function main() {
  await mkdir(opts.out, { recursive: true });
  const { browser, page, pageErrors, offsite } = await openPage({ chromiumPath: opts.chromium, base, timeout });
  try {
    const done = await flow(page);
    check(offsite.length === 0, `no off-site request, got ${offsite.join(", ")}`);
    check(pageErrors.length === 0, `no uncaught page errors, got: ${pageErrors.join(" | ")}`);
    if (opts.keep) {
      await mkdir(opts.keep, { recursive: true });
      await copyFile(shots[0], path.join(opts.keep, "customers-duplicates.png"));
      log(`kept ${shots[0]} in ${opts.keep}`);
    }
    console.log(JSON.stringify({ ok: true, ...done, name: opts.name, seconds: (Date.now() - started) / 1000 }));
  } catch (err) {
    await screenshotOnFailure(browser, path.join(opts.out, "customers-dup-failure.png"));
    throw err;
  } finally {
    await browser.close();
  }
}

main().catch(exitFailed(opts.out));
