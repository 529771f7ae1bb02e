#!/usr/bin/env node
// End-to-end check of the grid editor (网格管理) in headless Chromium, driven by tests/e2e/test_grid_editor.py.
//
//   node tests/e2e/grid_editor.mjs --base http://127.0.0.1:PORT --out DIR [--code E2E-XXXX] [--keep docs/screenshots]
//
// Logs in through the login form, selects 坡子街街道 (G430103002) in the tree, draws a child grid that crosses
// the township boundary, expects the topology error on the map and in a toast, drags the offending vertices
// back inside, saves (201), switches to the Baidu base map (tiles blocked: the page must cope offline) and
// back, reloads and finds the grid by search, in the tree and on the map. Screenshots go to --out (and with
// --keep also to that folder). Any failure exits non-zero with a message. The caller deletes the grid.

import { copyFile, mkdir } from "node:fs/promises";
import path from "node:path";

import { check, exitFailed, logIn, makeLog, openPage, screenshotOnFailure, scriptArgs } from "./harness.mjs";

const TOWNSHIP = { code: "G430103002", name: "坡子街街道", path: ["长沙市", "天心区"] };

const { opts, base, url, timeout } = scriptArgs({
  usage: "node tests/e2e/grid_editor.mjs --base URL --out DIR [--code CODE] [--keep DIR]",
  options: {
    user: { type: "string", default: "admin" },
    code: { type: "string", default: `E2E-${Date.now().toString(36).toUpperCase()}` },
  },
});
const started = Date.now();
const log = makeLog(started);
const shots = [];



async function shoot(page, name) {
  const file = path.join(opts.out, `grid-editor-${name}.png`);
  await page.waitForTimeout(250); // label de-cluttering runs on moveend
  await page.screenshot({ path: file });
  shots.push(file);
  log(`screenshot ${file}`);
}

async function login(page) {
  await logIn(page, { base, username: opts.user, password: opts.password, timeout });
}

async function openEditor(page, query = "") {
  await page.goto(url(`/app/grids${query}`));
  await page.waitForSelector("#ge-tree .ge-node__row");
  await page.waitForSelector('#ge-map[data-state="ready"]');
}

/** Expand 长沙市 > 天心区 in the tree and click 坡子街街道. */
async function selectTownship(page) {
  for (const name of TOWNSHIP.path) {
    const li = page.locator("li.ge-node", { has: page.locator(":scope > .ge-node__row .ge-node__name", { hasText: name }) });
    if ((await li.first().getAttribute("aria-expanded")) !== "true") {
      await li.first().locator(":scope > .ge-node__row .ge-node__caret").click();
    }
    await li.first().locator(":scope > ul > li.ge-node").first().waitFor();
  }
  await page.click(`.ge-node__row[data-code="${TOWNSHIP.code}"]`);
  await page.waitForSelector(`path.ge-code-${TOWNSHIP.code}.ge-shape--selected`);
  await page.waitForSelector(".ge-panel__title", { state: "visible" });
  check((await page.textContent(".ge-panel__title")).trim() === TOWNSHIP.name, "details panel shows the township");
  await page.waitForSelector('#ge-map[data-state="ready"]');
}

/**
 * Screen points for the drawings, by hit-testing the township's SVG path: a square well inside it, and
 * the nearest way out of it (not under the details panel) for the deliberately bad polygon.
 */
async function planShapes(page) {
  return page.evaluate((code) => {
    const shape = document.querySelector(`path.ge-code-${code}`);
    const map = document.getElementById("ge-map").getBoundingClientRect();
    const panel = document.getElementById("ge-panel").getBoundingClientRect();
    const visible = (x, y) => x > map.left + 50 && x < panel.left - 20 && y > map.top + 20 && y < map.bottom - 60;
    const inside = (x, y) => visible(x, y) && document.elementFromPoint(x, y) === shape;
    const d = 28;
    const box = shape.getBoundingClientRect();
    let center = null;
    for (let step = 0; step < 400 && !center; step += 1) {
      const x = box.left + ((step % 20) + 0.5) * (box.width / 20);
      const y = box.top + (Math.floor(step / 20) + 0.5) * (box.height / 20);
      const ok = [-1, -0.5, 0, 0.5, 1].every((i) => [-1, -0.5, 0, 0.5, 1].every((j) => inside(x + i * (d + 20), y + j * (d + 20))));
      if (ok) center = [x, y];
    }
    if (!center) return null;
    const [cx, cy] = center;
    const ways = [[1, 0], [-1, 0], [0, 1], [0, -1]].map(([ux, uy]) => {
      let t = d;
      while (t < 2000 && inside(cx + ux * t, cy + uy * t)) t += 2;
      const far = t + 45;
      return { ux, uy, far, ok: visible(cx + ux * far, cy + uy * far) && visible(cx + ux * far + uy * d, cy + uy * far + ux * d) };
    }).filter((w) => w.ok).sort((a, b) => a.far - b.far);
    if (!ways.length) return null;
    const { ux, uy, far } = ways[0];
    // square corners, counter-clockwise, in screen space: the two on the "way out" side are the movable ones
    const px = -uy;
    const py = ux;
    const corner = (along, across) => [cx + ux * along + px * across, cy + uy * along + py * across];
    return {
      good: [corner(-d, -d), corner(d, -d), corner(d, d), corner(-d, d)],
      bad: [corner(-d, -d), corner(far, -d), corner(far, d), corner(-d, d)],
      moves: [[corner(far, -d), corner(d, -d)], [corner(far, d), corner(d, d)]],
    };
  }, TOWNSHIP.code);
}

async function drawPolygon(page, points) {
  for (const [x, y] of points) {
    await page.mouse.click(x, y);
    await page.waitForTimeout(80);
  }
  await page.mouse.click(points[0][0], points[0][1]); // clicking the first vertex closes the ring
  await page.waitForSelector("#ge-new-form");
}

async function dragVertex(page, [from, to]) {
  const handle = await page.evaluateHandle(([x, y]) => {
    const markers = [...document.querySelectorAll(".leaflet-marker-pane .marker-icon:not(.marker-icon-middle)")];
    const dist = (m) => {
      const r = m.getBoundingClientRect();
      return Math.hypot(r.left + r.width / 2 - x, r.top + r.height / 2 - y);
    };
    return markers.sort((a, b) => dist(a) - dist(b))[0] || null;
  }, from);
  const marker = handle.asElement();
  check(marker, "a vertex marker of the drawn polygon is on the map");
  const box = await marker.boundingBox();
  await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
  await page.mouse.down();
  await page.mouse.move(to[0], to[1], { steps: 10 });
  await page.mouse.up();
  await page.waitForTimeout(120);
}

async function expectTopologyError(page) {
  await page.waitForSelector(".ge-toast--error");
  const toastText = await page.textContent(".ge-toast--error");
  check(/重叠|超出/.test(toastText), `topology toast mentions 重叠 or 超出, got: ${toastText}`);
  const problems = await page.locator("path.ge-problem--overlap, path.ge-problem--outside").count();
  check(problems > 0, "a red/orange problem shape is drawn on the map");
  const labels = await page.locator(".ge-label--problem").allTextContents();
  check(labels.some((t) => /m²/.test(t)), `problem shapes are labelled with m², got: ${labels.join(" | ")}`);
  log(`topology error shown: ${toastText.trim().slice(0, 80)}…`);
  return toastText;
}

async function createChild(page, plan) {
  await page.click("#ge-draw");
  await page.waitForSelector('.ge[data-mode="draw"]');
  await drawPolygon(page, plan.bad);
  await page.fill('#ge-new-form input[name="code"]', opts.code);
  await page.fill('#ge-new-form input[name="name"]', `测试网格${opts.code.slice(-4)}`);
  await shoot(page, "01-drawn");
  const first = page.waitForResponse((r) => r.request().method() === "POST" && new URL(r.url()).pathname === "/api/v1/grids");
  await page.click("#ge-new-save");
  check((await first).status() === 422, `crossing polygon is refused with 422, got ${(await first).status()}`);
  await expectTopologyError(page);
  await shoot(page, "02-topology-error");

  for (const move of plan.moves) await dragVertex(page, move);
  await page.locator(".ge-toast__close").evaluateAll((buttons) => buttons.forEach((b) => b.click()));
  const second = page.waitForResponse((r) => r.request().method() === "POST" && new URL(r.url()).pathname === "/api/v1/grids");
  await page.click("#ge-new-save");
  const res = await second;
  check(res.status() === 201, `fixed polygon is created (201), got ${res.status()}: ${await res.text()}`);
  const created = await res.json();
  await page.waitForSelector(`path.ge-code-${opts.code}.ge-shape--selected`);
  await page.waitForSelector(".ge-toast--success");
  check(await page.locator("path.ge-problem--overlap, path.ge-problem--outside").count() === 0, "problem shapes cleared");
  log(`created grid ${created.id} ${created.code} (${created.area_m2} m², level ${created.level})`);
  await shoot(page, "03-created");
  return created;
}

/** Pick the Baidu base map (BD-09 on Baidu's tile grid; tiles are blocked here) and come back. */
const shapeBox = (page, code) => page.evaluate((c) => {
  const r = document.querySelector(`path.ge-code-${c}`).getBoundingClientRect();
  const m = document.getElementById("ge-map").getBoundingClientRect();
  return { width: r.width, inView: r.width > 5 && r.right > m.left && r.left < m.right && r.bottom > m.top && r.top < m.bottom };
}, code);

async function switchBasemaps(page, created, offsite) {
  const start = await shapeBox(page, created.code);
  const geojsonCrs = page.waitForRequest((r) => r.url().includes("/api/v1/grids/geojson") && r.url().includes("crs=bd09"));
  await page.selectOption("#ge-basemap", "baidu");
  await geojsonCrs;
  await page.waitForSelector('#ge-map[data-basemap="baidu"][data-state="ready"]');
  await page.waitForSelector(`path.ge-code-${created.code}`);
  await page.waitForSelector(".basemap-tile--baidu img.leaflet-tile", { state: "attached" });
  check(/BD-09/.test(await page.textContent("#ge-status")), "status line names the BD-09 crs");
  const onBaidu = await shapeBox(page, created.code);
  check(onBaidu.inView, "after switching to 百度 the new grid is still in view");
  const ratio = onBaidu.width / start.width;
  check(ratio > 0.8 && ratio < 1.25, `the map keeps its scale across CRSs (size ratio ${ratio.toFixed(2)})`);
  const tiles = offsite.filter((u) => u.includes("bdimg.com"));
  check(tiles.length > 0, "Baidu tiles are requested only once 百度 is picked");
  for (const tile of tiles) {
    // Baidu's grid: tile (x, y) at zoom z spans BD09MC metres [x, x+1) * 256 * 2^(18-z), y counted north
    const q = new URL(tile).searchParams;
    const size = 256 * 2 ** (18 - Number(q.get("z")));
    const [mx, my] = [Number(q.get("x")) * size, Number(q.get("y")) * size];
    check(mx > 12.4e6 && mx < 12.7e6 && my > 3.1e6 && my < 3.4e6, `Baidu tile ${tile} lies on Changsha (BD09MC ${mx}, ${my})`);
  }
  log(`百度 base map: overlays reloaded with crs=bd09, ${tiles.length} tile request(s) blocked as offline`);
  await shoot(page, "04-baidu-offline");
  const back = page.waitForRequest((r) => r.url().includes("/api/v1/grids/geojson") && r.url().includes("crs=wgs84"));
  await page.selectOption("#ge-basemap", "none");
  await back;
  await page.waitForSelector('#ge-map[data-basemap="none"][data-state="ready"]');
  await page.waitForSelector(`path.ge-code-${created.code}`);
  check(await page.locator(".leaflet-tile-pane img").count() === 0, "无底图 has no tiles");
}

async function findAfterReload(page, created) {
  await openEditor(page);
  await page.fill("#ge-q", opts.code);
  await page.waitForSelector(`.ge-result[data-code="${opts.code}"]`);
  await page.click(`.ge-result[data-code="${opts.code}"]`);
  await page.waitForSelector(`path.ge-code-${opts.code}.ge-shape--selected`);
  const title = (await page.textContent(".ge-panel__title")).trim();
  check(title === created.name, `details panel shows the new grid, got ${title}`);
  const crumbs = await page.waitForFunction(
    (name) => document.querySelector(".ge-crumbs").textContent.includes(name), TOWNSHIP.name,
  ).then(() => true, () => false);
  check(crumbs, `breadcrumb contains the parent, got ${await page.textContent(".ge-crumbs")}`);
  await page.click("#ge-clear-filters");
  await page.waitForSelector(`.ge-node__row.is-selected[data-code="${opts.code}"]`);
  log("after reload: found by search, in the tree (under 坡子街街道) and on the map");
  await shoot(page, "05-found");
}

async function main() {
  await mkdir(opts.out, { recursive: true });
  const { browser, page, pageErrors, offsite } = await openPage({ chromiumPath: opts.chromium, base, timeout });
  try {

    await login(page);
    log("logged in through the login form");
    await openEditor(page);
    check(offsite.length === 0, `no off-site request with 无底图, got ${offsite.join(", ")}`);
    await selectTownship(page);
    log(`selected ${TOWNSHIP.name} via the tree`);
    const plan = await planShapes(page);
    check(plan, "found room inside the township to draw in");
    const created = await createChild(page, plan);
    await switchBasemaps(page, created, offsite);
    await findAfterReload(page, created);
    check(pageErrors.length === 0, `no uncaught page errors, got: ${pageErrors.join(" | ")}`);
    if (opts.keep) {
      await mkdir(opts.keep, { recursive: true });
      for (const file of shots) await copyFile(file, path.join(opts.keep, path.basename(file)));
      log(`kept ${shots.length} screenshots in ${opts.keep}`);
    }
    console.log(JSON.stringify({ ok: true, grid_id: created.id, code: created.code, seconds: (Date.now() - started) / 1000 }));
  } catch (err) {
    await screenshotOnFailure(browser, path.join(opts.out, "grid-editor-failure.png"));
    throw err;
  } finally {
    await browser.close();
  }
}

main().catch(exitFailed(opts.out));
