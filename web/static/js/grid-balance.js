// 网格平衡 (/app/grids/balance): pick a parent grid and 2+ account managers (default: the managers on its child
// grids), weights and locked grids; 测算 asks POST /api/v1/grid-balancing/preview for loads, CV and a proposal,
// drawn on the map and in a table; 应用调整 sends the proposal's moves to POST /grid-balancing/apply and lists the
// hand-overs written. How loads are computed and which grid moves is the API's business. The 网格内客户 mode
// (grid-balance-customers.js) balances the customers of one grid on the same maps.
import { api, el, initLayout, reportError } from "./common.js";
import { PALETTE, createBalanceMaps, flagText } from "./grid-balance-map.js";
import { createCustomerMode } from "./grid-balance-customers.js";
import {
  renderHandovers, renderLegend, renderLockedList, renderManagerList, renderPreview,
} from "./grid-balance-results.js";
import {
  confirmDialog, createPicker, errorText, requireFields, searchGrids, searchUsers, showFieldErrors, toast,
} from "./grid-ui.js";
import { basemapById, basemapChoices } from "./map/basemaps.js";

const GRIDS = "/api/v1/grids";
const LEVEL_LABELS = {
  city: "市", district: "区县", township: "街道/乡镇", community: "社区/村", building_group: "楼盘/组",
};
const CRS_LABELS = { wgs84: "WGS84", gcj02: "GCJ-02（火星坐标）", bd09: "BD-09（百度坐标）" };
const WEIGHTS = [["households", "户数"], ["customers", "客户数"], ["value", "客户价值"], ["area", "面积"], ["travel", "路程"]];
const INITIAL_WEIGHTS = { households: 35, customers: 15, value: 10, area: 15, travel: 25 };
const MAX_LOOKUPS = 200; // assignment look-ups when deriving the default managers
const LOOKUP_BATCH = 8;

const $ = (id) => document.getElementById(id);
const state = {
  basemap: "none",
  crs: "wgs84",
  view: "after",
  mode: "grids", // or "customers": balance the customers inside one grid (grid-balance-customers.js)
  parent: null, // GET /grids/{id} in state.crs
  children: [],
  range: null, // households norm [low, high] from the parent's summary
  managers: [], // [{id, name, sub}]
  locked: new Set(),
  weights: { ...INITIAL_WEIGHTS },
  result: null,
  lastRequest: null,
  stale: false,
  applied: false,
};
let maps = null;
let config = {};
let customers = null;

// ---------------------------------------------------------------- parent and managers

async function chooseParent(item) {
  state.locked.clear();
  state.result = null;
  state.applied = false;
  renderResults();
  if (!item) {
    Object.assign(state, { parent: null, children: [], range: null });
    history.replaceState(null, "", location.pathname);
    renderLocked();
    return draw();
  }
  history.replaceState(null, "", `${location.pathname}?parent=${item.id}`);
  $("gb-derive").disabled = false;
  try {
    await loadParent(item.id);
  } catch (err) {
    return toast(errorText(err, "加载上级网格失败"), "error");
  }
  await deriveManagers();
  return undefined;
}

async function loadParent(id) {
  const [parent, children, summary] = await Promise.all([
    api(`${GRIDS}/${id}`, { query: { crs: state.crs } }),
    api(`${GRIDS}/geojson`, { query: { parent_id: id, crs: state.crs } }),
    api(`${GRIDS}/${id}/summary`).catch(() => null),
  ]);
  state.parent = parent;
  state.children = children.features || [];
  state.range = (summary && summary.households && summary.households.range) || null;
  draw();
  maps.fit();
}

/** Default managers: the current account managers of the child grids (else of the grandchildren). */
async function deriveManagers() {
  if (!state.parent) return;
  const button = $("gb-derive");
  button.disabled = true;
  button.textContent = "正在带出客户经理…";
  try {
    let level = await childIds([state.parent.id]);
    let found = await managersOn(level);
    if (!found.length && level.length) {
      level = await childIds(level);
      found = await managersOn(level);
    }
    state.managers = found;
    renderManagers();
    markStale();
    if (!found.length) toast("下级网格暂无在岗客户经理，请手动添加", "info");
  } catch (err) {
    toast(errorText(err, "带出客户经理失败"), "error");
  } finally {
    button.disabled = false;
    button.textContent = "按下级网格的在岗客户经理重新带出";
  }
}

async function childIds(parentIds) {
  const ids = [];
  for (const id of parentIds.slice(0, MAX_LOOKUPS)) {
    const page = await api(GRIDS, { query: { parent_id: id, page_size: 500 } });
    ids.push(...(page.items || []).map((g) => g.id));
    if (ids.length >= MAX_LOOKUPS) break;
  }
  return ids.slice(0, MAX_LOOKUPS);
}

async function managersOn(gridIds) {
  const byId = new Map();
  for (let i = 0; i < gridIds.length; i += LOOKUP_BATCH) {
    const batch = gridIds.slice(i, i + LOOKUP_BATCH).map((id) => api(`${GRIDS}/${id}/assignments`));
    for (const rows of await Promise.all(batch)) {
      for (const r of rows || []) {
        if (r.post === "account_manager" && r.user_id && !byId.has(r.user_id)) {
          byId.set(r.user_id, { id: r.user_id, name: r.name, sub: `${r.grid_name} 客户经理` });
        }
      }
    }
  }
  return [...byId.values()];
}

function colourOf(userId) {
  const i = state.managers.findIndex((m) => m.id === userId);
  return i < 0 ? "#adb5bd" : PALETTE[i % PALETTE.length];
}

function renderManagers() {
  renderManagerList("gb-managers", "gb-manager-count", state.managers, colourOf, (m) => {
    state.managers = state.managers.filter((x) => x.id !== m.id);
    renderManagers();
    markStale();
  });
}

function addManager(item) {
  if (!state.managers.some((m) => m.id === item.id)) {
    state.managers.push({ id: item.id, name: item.label, sub: item.sub });
    renderManagers();
    markStale();
  }
}

// ---------------------------------------------------------------- weights and locks

function renderWeights() {
  $("gb-weights").replaceChildren(...WEIGHTS.map(([key, label]) => {
    const out = el("output", { class: "gb-weight__value", id: `gb-w-${key}-value` }, state.weights[key]);
    const input = el("input", {
      type: "range", min: 0, max: 100, step: 5, value: state.weights[key], id: `gb-w-${key}`, "aria-label": `${label}权重`,
      oninput: (e) => {
        state.weights[key] = Number(e.target.value);
        out.textContent = e.target.value;
        markStale();
      },
    });
    return el("label", { class: "gb-weight" }, el("span", { class: "gb-weight__label" }, label), input, out);
  }));
}

function gridName(id) {
  const f = (state.result ? state.result.features.features : state.children)
    .find((x) => (x.properties.grid_id || x.properties.id) === id);
  return f ? f.properties.name : `#${id}`;
}

function toggleLock(id) {
  if (state.locked.has(id)) state.locked.delete(id);
  else state.locked.add(id);
  renderLocked();
  markStale();
  draw();
}

function renderLocked() {
  renderLockedList("gb-locked", "gb-locked-count", state.locked, "个", gridName, toggleLock);
}

function markStale() {
  if (!state.result) return;
  state.stale = true;
  $("gb-stale").hidden = false;
  $("gb-apply-btn").disabled = true;
}

// ---------------------------------------------------------------- preview

async function runPreview(e) {
  if (e) e.preventDefault();
  const form = $("gb-form");
  const button = $("gb-run");
  const request = {
    manager_ids: state.managers.map((m) => m.id),
    parent_grid_id: state.parent ? state.parent.id : null,
    locked_grid_ids: [...state.locked],
    weights: Object.fromEntries(WEIGHTS.map(([key]) => [key, state.weights[key] / 100])),
  };
  button.disabled = true;
  button.textContent = "测算中…";
  showFieldErrors(form, null);
  try {
    state.result = await api("/api/v1/grid-balancing/preview", { method: "POST", query: { crs: state.crs }, json: request });
    Object.assign(state, { lastRequest: request, stale: false, applied: false });
    renderResults();
    draw();
    maps.fit();
  } catch (err) {
    showFieldErrors(form, err);
  } finally {
    button.disabled = false;
    button.textContent = "测算";
  }
}

function renderResults() {
  const r = state.result;
  $("gb-results").hidden = !r || state.mode !== "grids";
  $("gb-stale").hidden = !state.stale;
  $("gb-handovers").hidden = true;
  if (!r) return;
  renderPreview(r, { colourOf, gridName, range: state.range });
  $("gb-apply-btn").disabled = !r.moves.length || state.stale || state.applied;
  $("gb-apply-btn").textContent = state.applied ? "已应用" : "应用调整";
}

function draw() {
  if (!maps) return;
  if (state.mode === "customers") {
    customers.draw();
    return;
  }
  const r = state.result;
  $("gb-map-hint").textContent = r ? "单击网格锁定 / 解锁；黑色粗边为调整的网格，虚线边为锁定的网格"
    : state.parent ? "单击网格可锁定 / 解锁，然后点击「测算」" : "选择上级网格后，地图显示其下级网格";
  if (!r) {
    maps.drawPlain(state.parent, state.children, state.locked);
    renderLegend(null, colourOf);
    return;
  }
  const colours = new Map(r.managers.map((m) => [m.user_id, colourOf(m.user_id)]));
  const names = new Map(r.managers.map((m) => [m.user_id, m.name]));
  const flags = new Map(r.flags.map((f) => [f.grid_id, flagText(f, state.range)]));
  const views = state.view === "compare" ? ["before", "after"] : [state.view];
  maps.drawProposal(r.features.features, { views, colours, names, flags, locked: state.locked, parent: state.parent });
  renderLegend(r, colourOf);
  $("gb-map-0").dataset.state = "ready";
}

function setView(view) {
  state.view = view;
  $("gb-maps").dataset.view = view;
  $("gb-maplabel-0").textContent = view === "after" ? "调整后" : "调整前";
  $("gb-view").querySelectorAll(".gs-seg__btn").forEach((b) => {
    b.classList.toggle("is-on", b.dataset.view === view);
    b.setAttribute("aria-checked", String(b.dataset.view === view));
  });
  draw();
  maps.relayout();
}

// ---------------------------------------------------------------- apply

async function applyMoves(e) {
  e.preventDefault();
  const form = $("gb-apply");
  const reason = $("gb-reason").value.trim();
  const r = state.result;
  if (!r || !requireFields(form, reason ? {} : { reason: "请填写调整原因" })) return;
  if (!(await confirmDialog(`确定按测算结果调整 ${r.moves.length} 个网格的客户经理吗？将为每个网格生成一条移交记录。`,
    { okText: "应用调整" }))) return;
  const button = $("gb-apply-btn");
  button.disabled = true;
  try {
    const done = await api("/api/v1/grid-balancing/apply", { method: "POST", json: { moves: r.moves, reason } });
    state.applied = true;
    button.textContent = "已应用";
    toast(`已应用调整，生成 ${done.handover_ids.length} 条移交记录`, "success");
    await renderHandovers(done.handover_ids);
  } catch (err) {
    showFieldErrors(form, err);
    button.disabled = false;
  }
}

// ---------------------------------------------------------------- base maps and start-up

function setStatus() {
  $("gb-status").textContent = `底图：${basemapById(state.basemap).label} · 坐标系：${CRS_LABELS[state.crs]}`;
}

function initBasemapSelect() {
  const select = $("gb-basemap");
  for (const choice of basemapChoices(config)) {
    select.append(el("option", { value: choice.id, disabled: !choice.available, title: choice.reason || choice.label },
      choice.available ? choice.label : `${choice.label}（未配置）`));
  }
  select.value = state.basemap;
  select.addEventListener("change", () => setBasemap(select.value));
}

/** New base map: swap tiles and CRS, then reload the overlays (and the proposal) in its crs. */
async function setBasemap(id) {
  const choice = basemapById(id);
  state.basemap = choice.id;
  state.crs = choice.crs;
  setStatus();
  let warned = false;
  for (const layer of maps.setBasemap(choice.id, config)) {
    layer.on("tileerror", () => {
      if (!warned) toast("底图瓦片加载失败（网络不可达或地址有误），网格数据不受影响。", "info", 6000);
      warned = true;
    });
  }
  $("gb-maps").dataset.basemap = choice.id;
  try {
    if (state.mode === "customers") {
      await customers.reload();
      maps.fit();
      return;
    }
    if (state.parent) await loadParent(state.parent.id);
    if (state.result && state.lastRequest) {
      state.result = { ...state.result, features: (await api("/api/v1/grid-balancing/preview", {
        method: "POST", query: { crs: state.crs }, json: state.lastRequest })).features };
    }
    draw();
    maps.fit();
  } catch (err) {
    toast(errorText(err, "切换底图失败"), "error");
  }
}

/** 网格分配 (grids among managers) or 网格内客户 (customers of one grid among managers). */
function setMode(mode) {
  state.mode = mode;
  $("gb-mode").querySelectorAll(".gs-seg__btn").forEach((b) => {
    b.classList.toggle("is-on", b.dataset.mode === mode);
    b.setAttribute("aria-checked", String(b.dataset.mode === mode));
  });
  $("gb-form").hidden = mode !== "grids";
  $("gbc-form").hidden = mode !== "customers";
  renderResults();
  if (customers) customers.renderResults();
  if (mode === "grids") {
    history.replaceState(null, "", state.parent ? `${location.pathname}?parent=${state.parent.id}` : location.pathname);
  }
  draw();
  if (maps) maps.fit();
}

async function main() {
  config = JSON.parse($("gb-basemap-config").textContent || "{}");
  const layout = initLayout();
  maps = createBalanceMaps([$("gb-map-0"), $("gb-map-1")], { onGridClick: toggleLock });
  customers = createCustomerMode({
    maps, crs: () => state.crs, view: () => state.view, levelLabels: LEVEL_LABELS,
    active: () => state.mode === "customers",
  });
  $("gb-mode").addEventListener("click", (e) => {
    const b = e.target.closest(".gs-seg__btn");
    if (b && b.dataset.mode !== state.mode) setMode(b.dataset.mode);
  });
  const parentPicker = createPicker({
    name: "parent_grid_id", id: "gb-parent", placeholder: "搜索网格名称 / 编码", search: searchGrids(LEVEL_LABELS),
    onPick: chooseParent,
  });
  $("gb-parent-slot").append(parentPicker.element);
  parentPicker.element.addEventListener("click", (e) => {
    if (e.target.closest(".gp-chip__remove")) chooseParent(null);
  });
  const managerPicker = createPicker({
    name: "manager", id: "gb-manager-add", single: false, placeholder: "添加客户经理：姓名 / 用户名",
    search: searchUsers("account_manager"), onPick: addManager,
  });
  $("gb-manager-slot").append(managerPicker.element);
  $("gb-derive").addEventListener("click", deriveManagers);
  $("gb-form").addEventListener("submit", runPreview);
  $("gb-apply").addEventListener("submit", applyMoves);
  $("gb-view").addEventListener("click", (e) => {
    const b = e.target.closest(".gs-seg__btn");
    if (b) setView(b.dataset.view);
  });
  renderWeights();
  renderManagers();
  renderLocked();
  setStatus();
  await layout;
  if (!maps) return;
  initBasemapSelect();
  draw();
  const params = new URLSearchParams(location.search);
  if (params.get("mode") === "customers") {
    setMode("customers");
    const grid = Number(params.get("grid"));
    if (grid) await customers.openGrid(grid).catch((err) => toast(errorText(err, "加载网格失败"), "error"));
    return;
  }
  const wanted = Number(params.get("parent"));
  if (wanted) {
    try {
      const g = await api(`${GRIDS}/${wanted}`);
      parentPicker.set({ id: g.id, label: g.name, sub: `${g.code} · ${LEVEL_LABELS[g.level] || g.level || ""}` });
      await chooseParent({ id: g.id });
    } catch (err) {
      toast(errorText(err, "加载上级网格失败"), "error");
    }
  }
}

main().catch((err) => reportError(err));
