#!/usr/bin/env node
// End-to-end check of the 客户管理 pages in headless Chromium, driven by tests/e2e/test_customers_pages.py.
//
//   node tests/e2e/customers.mjs --base http://127.0.0.1:PORT --out DIR [--tag E2E-XXXX] [--keep docs/screenshots]
//
// 1. An account manager (am_430102_1_1) logs in, lists his customers (按管户, then 按网格: every row is his),
//    opens a customer's 360 view, drags the point on the map (纠偏), saves it and sees the provenance turn into
//    地图纠偏. 2. A branch leader (bl_430102) imports a small CSV with one bad ID number: the preview shows the
//    per-field error on that cell, he submits with "skip invalid rows", the progress bar reaches 100 % (a real RQ
//    worker runs the job), then he finds the batch by name on the batches page and views its rows.
// Screenshots go to --out (and with --keep also to that folder). Any failure exits non-zero with a message.

import { copyFile, mkdir } from "node:fs/promises";
import path from "node:path";

import { check, exitFailed, logIn, makeLog, openPage, screenshotOnFailure, scriptArgs } from "./harness.mjs";

const { opts, base, url, timeout } = scriptArgs({
  usage: "node tests/e2e/customers.mjs --base URL --out DIR [--tag TAG] [--keep DIR]",
  options: {
    tag: { type: "string", default: `E2E-${Date.now().toString(36).toUpperCase()}` },
  },
});
const started = Date.now();
const log = makeLog(started);
const shots = [];

async function shoot(page, name, { height = 0 } = {}) {
  const file = path.join(opts.out, `customers-${name}.png`);
  // the app scrolls inside its content pane: a taller window shows more of a long page
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

/** A valid resident ID number (GB 11643 check character) born 1990-01-01 in 芙蓉区 with sequence `seq`. */
function idNumber(seq) {
  const first17 = `43010219900101${String(seq).padStart(3, "0")}`;
  const weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
  const sum = [...first17].reduce((acc, d, i) => acc + Number(d) * weights[i], 0);
  return first17 + "10X98765432"[sum % 11];
}

/** Drag the customer's marker by (dx, dy) pixels and wait until the page offers to save. */
async function dragMarker(page, dx, dy) {
  const marker = await page.locator(".cu-marker-el").boundingBox();
  const [x, y] = [marker.x + marker.width / 2, marker.y + marker.height / 2];
  await page.mouse.move(x, y);
  await page.mouse.down();
  await page.mouse.move(x + dx / 2, y + dy / 2, { steps: 6 });
  await page.mouse.move(x + dx, y + dy, { steps: 6 });
  await page.mouse.up();
  await page.waitForSelector('#cu-map[data-moved="true"]');
}

// ---------------------------------------------------------------- account manager: list, 360, 纠偏

async function managerFlow(page) {
  await login(page, "am_430102_1_1");
  const me = await page.evaluate(async () => {
    const r = await fetch("/api/v1/me", { headers: { Authorization: `Bearer ${sessionStorage.getItem("gm.access_token")}` } });
    return r.json();
  });
  await page.goto(url("/app/customers"));
  await page.waitForSelector('#customer-list[data-state="ready"]');
  await page.waitForSelector("#cu-table tbody tr[data-id]");
  const owners = await page.$$eval("#cu-table tbody tr[data-id]", (rows) => rows.map((r) => r.children[6].textContent.trim()));
  check(owners.length > 0 && owners.every((o) => o === me.name), `every row is ${me.name}'s, got ${[...new Set(owners)]}`);
  const total = await page.textContent("#pager-total");
  log(`manager ${me.username} sees ${owners.length} rows on page 1 (${total}), all his`);
  const masked = await page.$$eval("#cu-table tbody tr[data-id] td:nth-child(5) .mono", (n) => n.map((x) => x.textContent));
  check(masked.length > 0 && masked.every((m) => m.includes("*")), `identifiers are masked, got ${masked.slice(0, 3)}`);
  check(await page.locator(".cu-reveal").count() === 0, "no reveal button without customer:reveal");
  await shoot(page, "list-ownership");

  await page.click("#cu-tab-grid");
  await page.waitForSelector('#cu-table[data-view="grid"] tbody tr[data-id]');
  const headers = await page.$$eval("#cu-table thead th", (ths) => ths.map((t) => t.textContent.trim()));
  check(headers.indexOf("网格") < headers.indexOf("客户经理"), `grid view puts 网格 first, got ${headers}`);
  await page.click('#cu-table thead th[data-sort="deposit_balance"]');
  await page.waitForSelector('#cu-table thead th[data-sort="deposit_balance"][aria-sort="ascending"]');
  log("按网格 view and sorting by 存款余额 work");

  const first = page.locator("#cu-table tbody tr[data-id] a.cu-name").first();
  const name = (await first.textContent()).trim();
  await first.click();
  await page.waitForSelector('#cu360[data-state="ready"]');
  await page.waitForSelector('#cu-map[data-state="ready"] .cu-marker-el');
  const id = Number(await page.getAttribute("body", "data-customer-id"));
  check((await page.textContent("#cu-name")).trim() === name, "the 360 view shows the customer clicked");
  const before = await page.getAttribute("#cu-loc-source", "data-source");
  const cards = await page.$$eval("[data-section]", (n) => n.map((x) => x.dataset.section));
  for (const key of ["profile", "holdings", "lists", "campaigns", "visits"]) check(cards.includes(key), `card ${key} shown`);
  log(`360 view of customer ${id} (${name}): ${cards.length} cards, location source ${before}`);
  await shoot(page, "360", { height: 1700 });

  await dragMarker(page, 60, 40);
  await page.waitForSelector("#cu-loc-save:not([hidden])");
  await shoot(page, "360-dragged");
  await page.click("#cu-loc-save");
  await page.waitForSelector('#cu-loc-source[data-source="corrected"]');
  const source = (await page.textContent("#cu-loc-source")).trim();
  check(source === "地图纠偏", `provenance shows 地图纠偏, got ${source}`);
  await page.waitForSelector('#cu-map[data-moved="false"]');
  log(`dragged the point and saved: provenance ${before} -> corrected`);
  await shoot(page, "360-corrected");

  // on the Baidu base map (tiles blocked here: the page copes) the point comes and goes in BD-09
  const wgs = (await page.getAttribute("#cu-map", "data-point")).split(",").map(Number);
  await page.selectOption("#cu-basemap", "baidu");
  await page.waitForSelector('#cu-map[data-crs="bd09"][data-state="ready"] .cu-marker-el');
  const bd = (await page.getAttribute("#cu-map", "data-point")).split(",").map(Number);
  check(bd[0] - wgs[0] > 0.008 && bd[0] - wgs[0] < 0.016, `BD-09 is east of WGS84 around Changsha, got ${bd} vs ${wgs}`);
  await dragMarker(page, -40, -25);
  await page.click("#cu-loc-save");
  await page.waitForSelector('#cu-map[data-moved="false"][data-crs="bd09"]');
  await page.waitForFunction((old) => document.querySelector("#cu-map").dataset.point !== old, bd.join(","));
  const sentBd = (await page.getAttribute("#cu-map", "data-sent")).split(",").map(Number);
  const savedBd = (await page.getAttribute("#cu-map", "data-point")).split(",").map(Number);
  check(Math.abs(sentBd[0] - savedBd[0]) < 1e-5 && Math.abs(sentBd[1] - savedBd[1]) < 1e-5,
    `the saved point comes back where it was dropped, sent ${sentBd}, got ${savedBd}`);
  log(`corrected again on the Baidu map: ${bd} -> ${sentBd} (BD-09)`);
  await shoot(page, "360-baidu-offline");
  return { id, before, bd09: sentBd };
}

// ---------------------------------------------------------------- branch leader: import with one bad row

async function leaderListFlow(page) {
  await login(page, "bl_430102");
  await page.goto(url("/app/customers"));
  await page.waitForSelector('#customer-list[data-state="ready"]');
  await page.waitForSelector("#cu-table tbody tr[data-id] .cu-reveal");
  // reveal: asks for a reason, then shows the number in clear in that row (audited by the API)
  const row = page.locator("#cu-table tbody tr[data-id]", { has: page.locator(".cu-reveal") }).first();
  const customerId = Number(await row.getAttribute("data-id"));
  await row.locator(".cu-reveal").click();
  await page.waitForSelector("#cu-reveal-dialog[open]");
  await page.click('#cu-reveal-dialog button[type="submit"]');
  await page.waitForSelector('#cu-reveal-dialog .ge-field__error[data-for="reason"]:not(:empty)');
  await page.fill("#cu-reveal-reason", "E2E 核实客户身份");
  await page.click('#cu-reveal-dialog button[type="submit"]');
  await page.waitForSelector(`#cu-table tr[data-id="${customerId}"] .cu-revealed`);
  const clear = (await page.textContent(`#cu-table tr[data-id="${customerId}"] .cu-revealed`)).trim();
  check(!clear.includes("*") && clear.length >= 11, `the revealed number is in clear, got ${clear}`);
  log(`revealed customer ${customerId}'s identifiers after giving a reason`);
  // batch assign: two rows selected, the dialog refuses to send nothing (the API's field error shows)
  const boxes = page.locator("#cu-table tbody .cu-row-check");
  await boxes.nth(0).check();
  await boxes.nth(1).check();
  check((await page.textContent("#cu-selected")).includes("2"), "two customers selected");
  await page.click("#cu-batch-assign");
  await page.waitForSelector("#cu-assign-dialog[open]");
  await page.fill("#cu-assign-reason", "E2E 调整");
  await page.click('#cu-assign-dialog button[type="submit"]');
  await page.waitForSelector('#cu-assign-dialog .ge-field__error[data-for="grid_id"]:not(:empty)');
  await shoot(page, "batch-assign");
  await page.click('#cu-assign-dialog button[value="cancel"]');
  log("batch-assign dialog shows the API's field error when neither grid nor manager is chosen");
  return { revealedId: customerId };
}

async function importFlow(page) {
  await page.goto(url("/app/customers/import"));
  await page.waitForSelector('body[data-ready="true"]');
  await page.selectOption("#cu-template", { label: "个人客户名单（内置）" });
  const seed = 100 + Math.floor(Math.random() * 800);
  const bad = idNumber(seed + 2).slice(0, 17) + (idNumber(seed + 2).endsWith("0") ? "1" : "0");
  const csv = [
    "姓名,身份证号,手机号码,地址,经度,纬度",
    `E2E张三,${idNumber(seed)},13800138001,长沙市芙蓉区五一大道1号,112.9952,28.1961`,
    `E2E李四,${idNumber(seed + 1)},13800138002,长沙市芙蓉区韶山北路2号,112.9981,28.1990`,
    `E2E王五,${bad},13800138003,长沙市芙蓉区车站北路3号,113.0012,28.2003`,
  ].join("\r\n");
  await page.fill("#cu-batch-name", opts.tag);
  await page.setInputFiles("#cu-file", { name: "e2e-list.csv", mimeType: "text/csv", buffer: Buffer.from(`\ufeff${csv}`) });
  await page.click("#cu-upload");
  await page.waitForSelector("#cu-preview-table tbody tr[data-row]");
  const badCell = page.locator('#cu-preview-table tr[data-status="invalid"] td.cu-cell--error[data-field="id_number"]');
  await badCell.waitFor();
  const message = (await badCell.locator(".cu-cell__msg").textContent()).trim();
  check(message.length > 0, "the bad ID number cell carries its message");
  const invalidRows = await page.$$eval('#cu-preview-table tr[data-status="invalid"]', (r) => r.map((x) => x.dataset.row));
  check(invalidRows.length === 1 && invalidRows[0] === "4", `exactly row 4 is invalid, got ${invalidRows}`);
  log(`preview: row 4 身份证号 error "${message}"`);
  await shoot(page, "import-preview");

  await page.click("#cu-submit");
  await page.waitForSelector("#cu-submit-error:not([hidden])");
  log(`submit without skip refused: ${(await page.textContent("#cu-submit-error")).trim()}`);
  await page.check("#cu-skip-invalid");
  await page.click("#cu-submit");
  await page.waitForSelector("#cu-progress-card:not([hidden])");
  await page.waitForSelector('#cu-progress[data-status="done"][aria-valuenow="100"]', { timeout: 40000 });
  const result = (await page.textContent("#cu-result-text")).trim();
  check(result.includes("新建客户 2 户") && result.includes("跳过错误行 1 行"), `result summary, got ${result}`);
  log(`progress bar at 100 %: ${result}`);
  await shoot(page, "import-done");

  await page.click("#cu-open-batch");
  await page.waitForSelector('#cu-batches[data-state="ready"]');
  await page.waitForSelector("#cu-rows-card:not([hidden]) #cu-rows-table tbody tr");
  const rows = await page.$$eval("#cu-rows-table tbody tr", (r) => r.length);
  check(rows === 2, `the saved list has the 2 valid rows, got ${rows}`);
  await page.fill("#cu-bq", opts.tag);
  await page.click('#cu-batch-filters button[type="submit"]');
  await page.waitForFunction((tag) => {
    const names = [...document.querySelectorAll("#cu-batch-table .cu-batch-name")].map((n) => n.textContent);
    return names.length === 1 && names[0] === tag;
  }, opts.tag);
  const batchId = Number(await page.getAttribute("#cu-batch-table tbody tr[data-id]", "data-id"));
  log(`found batch ${batchId} "${opts.tag}" by name; its list has ${rows} rows`);
  await shoot(page, "batches");
  await page.click("#cu-batch-table .cu-save-group");
  await page.waitForSelector("#cu-group-dialog[open]");
  await page.click('#cu-group-dialog button[type="submit"]');
  await page.waitForSelector(".ge-toast--success >> text=已保存为客群");
  log("saved the batch as a list group (客群)");
  return { batchId };
}

async function main() {
  await mkdir(opts.out, { recursive: true });
  const { browser, page, pageErrors, offsite } = await openPage({ chromiumPath: opts.chromium, base, timeout });
  try {
    const corrected = await managerFlow(page);
    const revealed = await leaderListFlow(page);
    const imported = await importFlow(page);
    const unexpected = offsite.filter((u) => !new URL(u).hostname.endsWith(".bdimg.com"));
    check(unexpected.length === 0, `no off-site request but the Baidu tiles asked for, got ${unexpected.join(", ")}`);
    check(pageErrors.length === 0, `no uncaught page errors, got: ${pageErrors.join(" | ")}`);
    if (opts.keep) {
      await mkdir(opts.keep, { recursive: true });
      for (const file of shots) await copyFile(file, path.join(opts.keep, path.basename(file)));
      log(`kept ${shots.length} screenshots in ${opts.keep}`);
    }
    console.log(JSON.stringify({
      ok: true, customer_id: corrected.id, source_before: corrected.before, batch_id: imported.batchId, tag: opts.tag,
      revealed_id: revealed.revealedId, bd09: corrected.bd09,
      seconds: (Date.now() - started) / 1000,
    }));
  } catch (err) {
    await screenshotOnFailure(browser, path.join(opts.out, "customers-failure.png"));
    throw err;
  } finally {
    await browser.close();
  }
}

main().catch(exitFailed(opts.out));
