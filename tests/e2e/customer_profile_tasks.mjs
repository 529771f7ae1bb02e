#!/usr/bin/env node
// End-to-end check of the 建档任务 page in headless Chromium, driven by tests/e2e/test_customer_profile_tasks_page.py.
//
//   node tests/e2e/customer_profile_tasks.mjs --base URL --out DIR --assignee AM_USER_ID --cancel TASK_ID [--keep DIR]
//
// 1. The account manager (am_430102_1_1) opens the page: it starts on his open tasks; the rows (ids, links) are
//    reported back for the test to compare with the database; a row's customer link opens the profile form.
// 2. The branch leader (bl_430102) sees the team's open tasks, filters by the manager, cancels one task.
// 3. The 岳麓 branch leader (bl_430104) lists every status: the ids are reported (the test checks none is 芙蓉's).
// Prints one JSON line at the end; any failure exits non-zero with a message.

import { copyFile, mkdir } from "node:fs/promises";
import path from "node:path";

import { check, exitFailed, logIn, makeLog, openPage, screenshotOnFailure, scriptArgs } from "./harness.mjs";

const { opts, base, url, timeout } = scriptArgs({
  usage: "node tests/e2e/customer_profile_tasks.mjs --base URL --out DIR --assignee ID --cancel ID",
  options: {
    assignee: { type: "string" },
    cancel: { type: "string" },
  },
  required: ["assignee", "cancel"],
});
const started = Date.now();
const log = makeLog(started);
const shots = [];

async function login(page, username) {
  await logIn(page, { base, username, password: opts.password, timeout, clearSession: true });
}

const rows = (page) => page.$$eval("#pt-table tbody tr[data-id]", (trs) => trs.map((r) => ({
  id: Number(r.dataset.id), customer: Number(r.dataset.customer), status: r.dataset.status,
  assignee: r.children[3].dataset.assignee, href: r.querySelector("a.pt-customer").getAttribute("href"),
  missing: r.children[2].textContent.trim(),
})));

async function apply(page) {
  await page.click("#pt-apply");
  await page.waitForSelector('#pt-list[data-state="ready"]');
}

async function openList(page) {
  await page.goto(url("/app/customers/profile-tasks"));
  await page.waitForSelector('#pt-list[data-state="ready"]');
}

async function managerFlow(page) {
  await login(page, "am_430102_1_1");
  await openList(page);
  check(await page.inputValue("#pt-assignee") === "me", "an account manager starts on his own tasks");
  check(await page.inputValue("#pt-status") === "open", "the page starts on open tasks");
  const mine = await rows(page);
  check(mine.length > 0, "the manager sees his open tasks");
  check(mine.every((r) => r.status === "open" && r.assignee === opts.assignee), "only his open tasks");
  check(mine.every((r) => r.href === `/app/customers/${r.customer}/profile`), "rows link to the profile form");
  check(mine.every((r) => r.missing.length > 0 && !/^[a-z_,、]+$/.test(r.missing)), "missing fields show labels");
  const openCount = (await page.textContent('#pt-counts b[data-status="open"]')).trim();
  check(openCount === String(mine.length), `open count ${openCount} = rows ${mine.length}`);
  const file = path.join(opts.out, "customers-profile-tasks.png");
  await page.screenshot({ path: file });
  shots.push(file);
  log(`am_430102_1_1 sees ${mine.length} open tasks`);

  await Promise.all([page.waitForURL((u) => u.pathname === mine[0].href, { timeout }),
    page.click(`#pt-table tr[data-id="${mine[0].id}"] a.pt-customer`)]);
  await page.waitForFunction(() => {
    const t = document.getElementById("pf-customer");
    return t && t.textContent.trim() && t.textContent.trim() !== "…";
  });
  log(`opened ${mine[0].href}: the profile form loaded`);
  return mine.map((r) => r.id);
}

async function leaderFlow(page) {
  await login(page, "bl_430102");
  await openList(page);
  check(await page.inputValue("#pt-assignee") === "", "a leader starts on the whole team");
  const team = await rows(page);
  await page.selectOption("#pt-assignee", opts.assignee);
  await apply(page);
  const managers = await rows(page);
  check(managers.length > 0 && managers.every((r) => r.assignee === opts.assignee), "filter by assignee");
  await page.click(`#pt-table tr[data-id="${opts.cancel}"] .pt-cancel`);
  await page.click('dialog.ge-dialog button[value="ok"]');
  await page.waitForFunction((id) => !document.querySelector(`#pt-table tr[data-id="${id}"]`), opts.cancel);
  await page.selectOption("#pt-status", "cancelled");
  await apply(page);
  const cancelled = await rows(page);
  check(cancelled.some((r) => r.id === Number(opts.cancel)), "the cancelled task shows under 已取消");
  log(`bl_430102 sees ${team.length} team tasks, ${managers.length} of the manager; cancelled ${opts.cancel}`);
  return { team: team.map((r) => r.id), manager: managers.map((r) => r.id) };
}

async function attackerFlow(page) {
  await login(page, "bl_430104");
  await openList(page);
  await page.selectOption("#pt-status", "");
  await apply(page);
  const seen = await rows(page);
  log(`bl_430104 sees ${seen.length} tasks`);
  return seen.map((r) => r.id);
}

async function main() {
  await mkdir(opts.out, { recursive: true });
  const { browser, page, pageErrors, offsite } = await openPage({ chromiumPath: opts.chromium, base, timeout });
  try {
    const manager = await managerFlow(page);
    const leader = await leaderFlow(page);
    const other = await attackerFlow(page);
    check(offsite.length === 0, `no off-site request, got ${offsite.join(", ")}`);
    check(pageErrors.length === 0, `no uncaught page errors, got: ${pageErrors.join(" | ")}`);
    if (opts.keep) {
      await mkdir(opts.keep, { recursive: true });
      await copyFile(shots[0], path.join(opts.keep, "customers-profile-tasks.png"));
    }
    console.log(JSON.stringify({ ok: true, manager, leader, other, seconds: (Date.now() - started) / 1000 }));
  } catch (err) {
    await screenshotOnFailure(browser, path.join(opts.out, "customers-profile-tasks-failure.png"));
    throw err;
  } finally {
    await browser.close();
  }
}

main().catch(exitFailed(opts.out));
