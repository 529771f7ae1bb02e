#!/usr/bin/env node
// End-to-end check of the 建档模板 page in headless Chromium, driven by tests/e2e/test_customer_profile_templates_page.py.
//
//   node tests/e2e/customer_profile_templates.mjs --base http://127.0.0.1:PORT --out DIR [--keep docs/screenshots]
//
// 1. admin opens the page, edits the active 商户 template: adds a field with a bad regex and moves it up one row,
//    saves -> the API's 422 message shows under that row; fixes the regex, saves -> version n+1 (active); the
//    version history lists both versions and shows the old one read-only. 2. A branch leader (bl_430102, only
//    profile_template:read) sees the templates read-only: no edit button, disabled inputs, no save button.
// Prints one JSON line at the end; any failure exits non-zero with a message.

import { copyFile, mkdir } from "node:fs/promises";
import path from "node:path";

import { check, exitFailed, logIn, makeLog, openPage, screenshotOnFailure, scriptArgs } from "./harness.mjs";

const { opts, base, url, timeout } = scriptArgs({
  usage: "node tests/e2e/customer_profile_templates.mjs --base URL --out DIR [--keep DIR]",
});
const started = Date.now();
const log = makeLog(started);
const shots = [];
const NEW_KEY = "e2e_shop_sign";

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

async function openList(page) {
  await page.goto(url("/app/customers/profile-templates"));
  await page.waitForSelector('#pt-list[data-state="ready"] #pt-table tbody tr[data-id]');
}

async function adminFlow(page) {
  await login(page, "admin");
  await openList(page);
  const types = await page.$$eval("#pt-table tbody tr[data-id]", (rows) => rows.map((r) => r.dataset.type));
  for (const t of ["farmer", "merchant", "micro_enterprise"]) check(types.includes(t), `a ${t} template is listed`);
  const merchant = 'tr[data-type="merchant"][data-active="true"]';
  const before = await page.$eval(`#pt-table ${merchant}`, (r) => ({ ...r.dataset }));
  const oldVersion = Number(before.version);
  log(`active 商户 template ${before.code} v${oldVersion} (#${before.id})`);

  await page.click(`#pt-table ${merchant} .pt-edit`);
  await page.waitForSelector(`#pt-editor[data-mode="edit"][data-id="${before.id}"] #pt-fields tbody tr.pt-row`);
  const n = await page.$$eval("#pt-fields tbody tr.pt-row", (r) => r.length);
  await page.click("#pt-add");
  const last = `#pt-fields tbody tr.pt-row[data-index="${n}"]`;
  await page.fill(`${last} [name="key"]`, NEW_KEY);
  await page.fill(`${last} [name="label"]`, "门头招牌");
  await page.selectOption(`${last} [name="type"]`, "string");
  await page.fill(`${last} [name="regex"]`, "([unclosed");
  await page.fill(`${last} [name="group"]`, "经营情况");
  await page.click(`${last} .pt-up`);
  const idx = n - 1;
  const moved = await page.$eval(`#pt-fields tbody tr.pt-row[data-index="${idx}"] [name="key"]`, (i) => i.value);
  check(moved === NEW_KEY, `the new field moved up to row ${idx + 1}, got ${moved}`);

  await page.click("#pt-save");
  await page.waitForSelector("#pt-fields tr.pt-err");
  const errs = await page.$$eval("#pt-fields tr.pt-err", (rows) => rows.map((r) => ({ index: r.dataset.index, text: r.textContent })));
  check(errs.length === 1 && errs[0].index === String(idx), `one error row for row ${idx}, got ${JSON.stringify(errs)}`);
  check(errs[0].text.includes("正则"), `the error names the regex: ${errs[0].text}`);
  const errorAfter = await page.$eval("#pt-fields tr.pt-err", (r) => r.previousElementSibling.dataset.key);
  check(errorAfter === NEW_KEY, `the error sits under the ${NEW_KEY} row, got ${errorAfter}`);
  check(await page.$eval(`#pt-fields tr.pt-row[data-index="${idx}"]`, (r) => r.classList.contains("pt-row--error")),
    "the offending row is marked");
  log(`bad regex: 422 shown under row ${idx + 1}: ${errs[0].text.trim()}`);
  await shoot(page, "profile-templates-error", { height: 1200 });

  await page.fill(`#pt-fields tr.pt-row[data-index="${idx}"] [name="regex"]`, "[A-Za-z0-9]{1,30}");
  await page.click("#pt-save");
  await page.waitForSelector("#pt-saved:not([hidden])");
  const newVersion = Number(await page.getAttribute("#pt-saved", "data-version"));
  check(newVersion === oldVersion + 1, `saved as v${oldVersion + 1}, got v${newVersion}`);
  check(await page.$$eval("#pt-fields tr.pt-err", (r) => r.length) === 0, "no error rows after the fix");
  const listed = await page.$eval(`#pt-table ${merchant}`, (r) => ({ ...r.dataset }));
  check(Number(listed.version) === newVersion && listed.code === before.code, `the list shows v${newVersion} active`);
  const savedKeys = await page.$$eval("#pt-fields tbody tr.pt-row", (rows) => rows.map((r) => r.dataset.key));
  check(savedKeys[idx] === NEW_KEY && savedKeys.length === n + 1, `the saved template keeps the order: ${savedKeys}`);
  log(`saved as v${newVersion}`);
  await page.evaluate(() => {
    document.activeElement?.blur();
    document.querySelectorAll(".table-wrap").forEach((w) => { w.scrollLeft = 0; });
    document.getElementById("pt-list").scrollIntoView({ block: "start" });
  });
  await shoot(page, "profile-templates", { height: 1200 });

  await page.click(`#pt-table ${merchant} .pt-history`);
  await page.waitForSelector(`#pt-versions:not([hidden]) tr[data-version="${oldVersion}"]`);
  const listedVersions = await page.$$eval("#pt-versions-table tbody tr", (r) => r.map((x) => Number(x.dataset.version)));
  check(listedVersions[0] === newVersion && listedVersions.includes(oldVersion), `history ${listedVersions}`);
  await page.click(`#pt-versions-table tr[data-version="${oldVersion}"] .pt-version-view`);
  await page.waitForSelector(`#pt-editor[data-mode="view"][data-id="${before.id}"]`);
  check(await page.isHidden("#pt-save"), "an old version has no save button");
  const oldKeys = await page.$$eval("#pt-fields tbody tr.pt-row", (rows) => rows.map((r) => r.dataset.key));
  check(oldKeys.length === n && !oldKeys.includes(NEW_KEY), "the old version shows its own fields");
  check(await page.$$eval("#pt-fields input, #pt-fields select, #pt-fields textarea",
    (i) => i.every((x) => x.disabled)), "the old version is read-only");
  log(`version history: ${listedVersions.join(", ")}; v${oldVersion} read-only`);
  return { code: before.code, oldId: Number(before.id), oldVersion, newVersion, fields: n + 1 };
}

async function readerFlow(page) {
  await login(page, "bl_430102");
  await openList(page);
  check(await page.$$eval("#pt-table .pt-edit", (b) => b.length) === 0, "a reader gets no edit button");
  check(await page.$eval("#pt-list", (s) => s.dataset.canEdit) === "false", "the page knows the reader cannot edit");
  const menu = await page.$$eval('a[href*="/app/customers/profile-templates"]', (a) => a.length);
  check(menu === 0, "the reader's menu has no 建档模板 entry");
  await page.click('#pt-table tr[data-type="merchant"][data-active="true"] .pt-view');
  await page.waitForSelector('#pt-editor[data-mode="view"] #pt-fields tbody tr.pt-row');
  check(await page.isHidden("#pt-save") && await page.isHidden("#pt-add"), "no save / add for a reader");
  check(await page.$$eval("#pt-fields input, #pt-fields select, #pt-fields textarea",
    (i) => i.every((x) => x.disabled)), "reader inputs are disabled");
  check(await page.$$eval("#pt-fields .pt-remove", (b) => b.length) === 0, "no remove buttons for a reader");
  log("bl_430102 sees the templates read-only");
}

async function main() {
  await mkdir(opts.out, { recursive: true });
  const { browser, page, pageErrors, offsite } = await openPage({ chromiumPath: opts.chromium, base, timeout });
  try {
    const admin = await adminFlow(page);
    await readerFlow(page);
    check(offsite.length === 0, `no off-site request, got ${offsite.join(", ")}`);
    check(pageErrors.length === 0, `no uncaught page errors, got: ${pageErrors.join(" | ")}`);
    if (opts.keep) {
      await mkdir(opts.keep, { recursive: true });
      await copyFile(shots[1], path.join(opts.keep, "customers-profile-templates.png"));
      log(`kept ${shots[1]} in ${opts.keep}`);
    }
    console.log(JSON.stringify({ ok: true, ...admin, new_key: NEW_KEY, seconds: (Date.now() - started) / 1000 }));
  } catch (err) {
    await screenshotOnFailure(browser, path.join(opts.out, "customers-profile-templates-failure.png"));
    throw err;
  } finally {
    await browser.close();
  }
}

main().catch(exitFailed(opts.out));
