// 网格管理: grid tree + map editor. Every rule (levels, topology, versions, scope) is the API's; this module
// only draws, collects edits and shows what the API answers. Geometry goes back and forth in the crs of the
// chosen base map (?crs=wgs84|gcj02|bd09), so drawings line up with the tiles.
import { api, ApiError, el, formatNumber, initLayout, reportError } from "./common.js";
import { clearToasts, confirmDialog, failed, field, selectInput, showFieldErrors, toast } from "./grid-ui.js";
import { renderRatingSection } from "./grid-rating.js";
import { renderStaffSection } from "./grid-staff.js";
import { createBaseMap, declutterTooltips } from "./map/base.js";
import { basemapById, basemapChoices, createBaseLayers, leafletCrsFor } from "./map/basemaps.js";

const GRIDS = "/api/v1/grids";
const LEVEL_LABELS = {
  city: "市", district: "区县", township: "街道/乡镇", community: "社区/村", building_group: "楼盘/组",
};
const LEVEL_ORDER = Object.keys(LEVEL_LABELS);
const VTYPE_LABELS = {
  industrial_park: "园区", business_district: "商圈", industry: "垂直行业", supply_chain: "供应链", enterprise: "企业",
};
const LINE_LABELS = { retail: "零售", corporate: "公司", micro: "小微" };
const STATUS_LABELS = { active: "启用", inactive: "停用" };
const CRS_LABELS = { wgs84: "WGS84", gcj02: "GCJ-02（火星坐标）", bd09: "BD-09（百度坐标）" };
const GEOS_REASONS = {
  "Self-intersection": "边界自相交",
  "Ring Self-intersection": "环自相交",
  "Too few points in geometry component": "顶点过少",
  "Hole lies outside shell": "内环在外环之外",
  "Interior is disconnected": "内部不连通",
  "Nested shells": "外环嵌套",
  "Duplicate Rings": "重复的环",
};

const STYLE = {
  overview: { color: "#7b8794", weight: 1, fillColor: "#cfd8e0", fillOpacity: 0.25 },
  parent: { color: "#52606d", weight: 2, dashArray: "6 5", fill: false },
  sibling: { color: "#8795a1", weight: 1.2, fillColor: "#c7d0d9", fillOpacity: 0.22 },
  child: { color: "#2f6fde", weight: 1.3, fillColor: "#2f6fde", fillOpacity: 0.1 },
  selected: { color: "#0f6b4f", weight: 3, fillColor: "#0f6b4f", fillOpacity: 0.12 },
  merge: { color: "#7c3aed", weight: 2.5, fillColor: "#7c3aed", fillOpacity: 0.28 },
  draft: { color: "#d97706", weight: 2.5, fillColor: "#f59e0b", fillOpacity: 0.18 },
  overlap: { color: "#c8102e", weight: 2, fillColor: "#e5483f", fillOpacity: 0.55, dashArray: "4 3" },
  outside: { color: "#c2570c", weight: 2, fillColor: "#f97316", fillOpacity: 0.55, dashArray: "4 3" },
};
const SNAP = { snappable: true, snapDistance: 15, allowSelfIntersection: true };
const MODE_HINTS = {
  draw: "依次单击放置顶点，单击第一个顶点或「完成绘制」结束；靠近已有边界时自动吸附。",
  draft: "可拖动顶点调整边界，在右侧填写编码和名称后保存。",
  edit: "拖动顶点修改边界，单击边中点加点、右键顶点删点；靠近相邻边界时自动吸附。",
  split: "画一条完整穿过所选网格的线，单击最后一个顶点（或「完成绘制」）结束。",
  splitline: "确认按这条线拆分所选网格？面积最大的部分保留原网格。",
  merge: "点击（或 Shift+点击）相邻的同级网格加入/移出合并，所选网格保留编码。",
};

const $ = (id) => document.getElementById(id);
const state = {
  canEdit: false,
  me: null,
  basemap: "none",
  crs: "wgs84",
  baseLayers: [],
  grid: null, // the selected grid (GET one, geometry in state.crs)
  summary: null,
  nodes: new Map(), // id -> list attributes, from every tree/result load
  mode: null, // null | draw | draft | edit | split | splitline | merge
  draft: null,
  splitLine: null,
  mergeIds: new Set(),
  seq: 0,
  offsets: new Map(), // "id:crs" -> [dx, dy] of crs minus wgs84 near that grid
};
let map = null;
let L = null;
const layers = {};
const siblingLayers = new Map(); // id -> polygon
let selectedPolygon = null;

// ---------------------------------------------------------------- small helpers

function levelBadge(item) {
  if (item.kind === "virtual") {
    return el("span", { class: "ge-badge ge-badge--virtual" }, `虚拟·${VTYPE_LABELS[item.virtual_type] || "—"}`);
  }
  return el("span", { class: `ge-badge ge-badge--${item.level}` }, LEVEL_LABELS[item.level] || item.level || "—");
}

function formatArea(m2) {
  if (m2 === null || m2 === undefined) return "—";
  if (m2 >= 1e6) return `${formatNumber(m2 / 1e6, 2)} km²（${formatNumber(m2)} m²）`;
  return `${formatNumber(m2, 1)} m²`;
}

function pathIds(path) {
  return String(path || "").split(".").map((s) => Number(s.replace(/^\D+/, ""))).filter(Boolean);
}

function nextLevel(grid) {
  const i = LEVEL_ORDER.indexOf(grid.level);
  return grid.kind === "physical" && i >= 0 && i < LEVEL_ORDER.length - 1 ? LEVEL_ORDER[i + 1] : null;
}

function mapCoords(geometry, fn) {
  const walk = (c) => (typeof c[0] === "number" ? fn(c) : c.map(walk));
  return { ...geometry, coordinates: walk(geometry.coordinates) };
}

function eachCoord(geometry, fn) {
  const walk = (c) => (typeof c[0] === "number" ? fn(c) : c.forEach(walk));
  if (geometry && geometry.coordinates) walk(geometry.coordinates);
}

function firstCoord(geometry) {
  let first = null;
  eachCoord(geometry, (c) => {
    if (!first) first = c;
  });
  return first;
}

function setStatus() {
  const choice = basemapById(state.basemap);
  $("ge-status").textContent = `底图：${choice.label} · 坐标系：${CRS_LABELS[state.crs]}`;
}

// ---------------------------------------------------------------- tree (lazy) and search results

function nodeRow(item) {
  const hasChildren = (item.children || 0) > 0;
  const row = el(
    "div",
    { class: "ge-node__row", dataset: { id: item.id, code: item.code }, tabindex: "0" },
    hasChildren
      ? el("button", { type: "button", class: "ge-node__caret", "aria-label": "展开/收起" })
      : el("span", { class: "ge-node__caret ge-node__caret--leaf", "aria-hidden": "true" }),
    el("span", { class: "ge-node__name", title: `${item.name}（${item.code}）` }, item.name),
    levelBadge(item),
    item.status === "inactive" ? el("span", { class: "ge-badge ge-badge--off" }, "停用") : null,
    hasChildren ? el("span", { class: "ge-node__count", title: "下级网格数" }, item.children) : null,
  );
  return row;
}

function treeItem(item) {
  state.nodes.set(item.id, item);
  const li = el("li", { class: "ge-node", role: "treeitem", dataset: { id: item.id }, "aria-expanded": "false" });
  const row = nodeRow(item);
  row.addEventListener("click", (e) => {
    if (e.target.closest(".ge-node__caret") && item.children) toggleNode(li);
    else selectGrid(item.id, { reveal: false });
  });
  row.addEventListener("keydown", (e) => {
    if (e.key === "Enter") selectGrid(item.id, { reveal: false });
    if (e.key === "ArrowRight" && item.children && li.getAttribute("aria-expanded") !== "true") toggleNode(li);
    if (e.key === "ArrowLeft" && li.getAttribute("aria-expanded") === "true") toggleNode(li);
  });
  li.append(row);
  if (state.grid && state.grid.id === item.id) row.classList.add("is-selected");
  return li;
}

async function fetchChildren(parentId) {
  const body = await api(GRIDS, { query: { parent_id: parentId, page_size: 500 } });
  const items = body.items || [];
  items.forEach((item) => state.nodes.set(item.id, item));
  return items;
}

/** Top of the tree: parentless grids; for a scoped user whose top grids have hidden parents, the top level. */
async function fetchRoots() {
  const body = await api(GRIDS, { query: { roots: true, page_size: 500 } });
  const roots = body.items || [];
  roots.forEach((item) => state.nodes.set(item.id, item));
  if (roots.some((g) => g.kind === "physical")) return roots;
  for (const level of LEVEL_ORDER) {
    const page = await api(GRIDS, { query: { level, kind: "physical", page_size: 500 } });
    if ((page.items || []).length) return [...page.items, ...roots];
  }
  return roots;
}

async function toggleNode(li, open = li.getAttribute("aria-expanded") !== "true") {
  li.setAttribute("aria-expanded", String(open));
  let group = li.querySelector(":scope > ul");
  if (!open || group) return;
  group = el("ul", { role: "group" }, el("li", { class: "ge-tree__empty" }, "加载中…"));
  li.append(group);
  try {
    const items = await fetchChildren(Number(li.dataset.id));
    group.replaceChildren(...items.map(treeItem));
    if (!items.length) group.append(el("li", { class: "ge-tree__empty" }, "无下级网格"));
  } catch (err) {
    group.replaceChildren(el("li", { class: "ge-tree__empty" }, "加载失败"));
    failed(err, "加载下级网格失败");
  }
}

async function loadTree() {
  const tree = $("ge-tree");
  tree.setAttribute("aria-busy", "true");
  try {
    const roots = await fetchRoots();
    tree.replaceChildren(
      roots.length ? el("ul", { role: "group" }, roots.map(treeItem)) : el("div", { class: "ge-tree__empty" }, "暂无网格"),
    );
  } catch (err) {
    tree.replaceChildren(el("div", { class: "ge-tree__empty" }, "网格加载失败"));
    failed(err, "加载网格树失败");
  } finally {
    tree.setAttribute("aria-busy", "false");
  }
}

/** Re-load one node's children (after create/split/merge/delete) and its count. */
async function refreshTreeNode(parentId) {
  if (isFiltering()) return runSearch();
  const li = parentId && $("ge-tree").querySelector(`li.ge-node[data-id="${parentId}"]`);
  if (!li) return loadTree();
  const items = await fetchChildren(parentId).catch(() => null);
  if (!items) return undefined;
  const fresh = treeItem({ ...(state.nodes.get(parentId) || {}), id: parentId, children: items.length });
  li.replaceWith(fresh);
  if (items.length) await toggleNode(fresh, true);
  return undefined;
}

/** Names for the breadcrumb: load the ancestors' sibling lists that are not known yet (hidden ones stay out). */
async function ensureAncestors(grid) {
  const ids = pathIds(grid.path).slice(0, -1);
  for (let i = 0; i < ids.length; i += 1) {
    if (state.nodes.has(ids[i])) continue;
    if (i === 0) await fetchRoots().catch(() => null);
    else if (state.nodes.has(ids[i - 1])) await fetchChildren(ids[i - 1]).catch(() => null);
  }
}

/** Expand the tree down to the grid and highlight it. */
async function revealInTree(grid) {
  const tree = $("ge-tree");
  for (const id of pathIds(grid.path).slice(0, -1)) {
    const li = tree.querySelector(`li.ge-node[data-id="${id}"]`);
    if (li && li.getAttribute("aria-expanded") !== "true") await toggleNode(li, true);
  }
  markSelectedInList();
  const row = tree.querySelector(`.ge-node__row[data-id="${grid.id}"], .ge-result[data-id="${grid.id}"]`);
  if (row) row.scrollIntoView({ block: "nearest" });
}

function markSelectedInList() {
  const id = state.grid ? String(state.grid.id) : null;
  $("ge-tree").querySelectorAll(".ge-node__row, .ge-result").forEach((r) => {
    r.classList.toggle("is-selected", r.dataset.id === id);
  });
}

function filters() {
  return {
    q: $("ge-q").value.trim(),
    level: $("ge-f-level").value,
    virtual_type: $("ge-f-vtype").value,
    business_line: $("ge-f-line").value,
  };
}

function isFiltering() {
  return Object.values(filters()).some(Boolean);
}

function resultRow(item) {
  state.nodes.set(item.id, item);
  return el(
    "li",
    {
      class: "ge-result",
      dataset: { id: item.id, code: item.code },
      tabindex: "0",
      onclick: () => selectGrid(item.id),
      onkeydown: (e) => e.key === "Enter" && selectGrid(item.id),
    },
    el("div", { class: "ge-result__main" }, el("span", { class: "ge-node__name" }, item.name), levelBadge(item)),
    el("div", { class: "ge-result__sub mono" }, item.code, item.children ? ` · 下级 ${item.children}` : ""),
  );
}

let searchPage = 1;
let searchSeq = 0;
async function runSearch(more = false) {
  const tree = $("ge-tree");
  const filtering = isFiltering();
  $("ge-clear-filters").hidden = !filtering;
  $("ge-list-title").textContent = filtering ? "搜索结果" : "网格树";
  if (!filtering) return loadTree();
  searchPage = more ? searchPage + 1 : 1;
  const seq = ++searchSeq;
  try {
    const body = await api(GRIDS, { query: { ...filters(), page: searchPage, page_size: 50 } });
    if (seq !== searchSeq) return undefined;
    let list = tree.querySelector("ul.ge-results");
    if (!more || !list) {
      list = el("ul", { class: "ge-results" });
      tree.replaceChildren(list);
    }
    tree.querySelector(".ge-more")?.remove();
    list.append(...(body.items || []).map(resultRow));
    if (!list.children.length) tree.replaceChildren(el("div", { class: "ge-tree__empty" }, "没有符合条件的网格"));
    const shown = list.children.length;
    if (body.total > shown) {
      tree.append(el("button", { type: "button", class: "link-btn ge-more", onclick: () => runSearch(true) },
        `加载更多（已显示 ${shown} / ${body.total}）`));
    }
    markSelectedInList();
  } catch (err) {
    failed(err, "搜索失败");
  }
  return undefined;
}

function initFilters() {
  const fill = (select, labels) => select.append(...Object.entries(labels).map(([v, t]) => el("option", { value: v }, t)));
  fill($("ge-f-level"), LEVEL_LABELS);
  fill($("ge-f-vtype"), VTYPE_LABELS);
  fill($("ge-f-line"), LINE_LABELS);
  let timer = null;
  $("ge-q").addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(() => runSearch(), 300);
  });
  for (const id of ["ge-f-level", "ge-f-vtype", "ge-f-line"]) $(id).addEventListener("change", () => runSearch());
  $("ge-clear-filters").addEventListener("click", () => {
    $("ge-q").value = "";
    ["ge-f-level", "ge-f-vtype", "ge-f-line"].forEach((id) => {
      $(id).value = "";
    });
    runSearch().then(() => state.grid && revealInTree(state.grid));
  });
}

// ---------------------------------------------------------------- map layers

function polygonLayer(geometry, style, extra = {}) {
  if (!geometry) return null;
  return L.GeoJSON.geometryToLayer(geometry, { ...style, pmIgnore: true, snapIgnore: false, ...extra });
}

function label(layer, text, cls = "ge-label") {
  layer.bindTooltip(el("span", {}, text), { permanent: true, direction: "center", className: cls, interactive: false });
}

function fetchLayerData(grid) {
  const crs = state.crs;
  const geojson = (query) => api(`${GRIDS}/geojson`, { query: { ...query, crs } });
  if (!grid) return Promise.allSettled([geojson({ level: "district", simplify_m: 20 })]);
  const requests = [geojson({ parent_id: grid.id })];
  if (grid.parent_id) {
    requests.push(geojson({ parent_id: grid.parent_id }), api(`${GRIDS}/${grid.parent_id}`, { query: { crs } }));
  }
  return Promise.allSettled(requests);
}

function drawOverview(result) {
  if (result.status !== "fulfilled") return failed(result.reason, "加载区县网格失败");
  for (const f of result.value.features || []) {
    const layer = polygonLayer(f.geometry, STYLE.overview, { className: `ge-shape ge-code-${f.properties.code}` });
    if (!layer) continue;
    label(layer, f.properties.name);
    layer.on("click", () => !state.mode && selectGrid(f.properties.id));
    layers.overview.addLayer(layer);
  }
  return undefined;
}

function drawLayers(results) {
  for (const group of Object.values(layers)) group.clearLayers();
  siblingLayers.clear();
  selectedPolygon = null;
  const grid = state.grid;
  if (!grid) return drawOverview(results[0]);
  const [children, siblings, parent] = results;
  if (parent && parent.status === "fulfilled") {
    const layer = polygonLayer(parent.value.geometry, STYLE.parent, { interactive: false, className: "ge-shape ge-shape--parent" });
    if (layer) layers.parent.addLayer(layer);
  }
  if (siblings && siblings.status === "fulfilled") {
    for (const f of siblings.value.features || []) if (f.id !== grid.id) addSibling(f);
  }
  if (children.status === "fulfilled") {
    for (const f of children.value.features || []) addChild(f);
  } else failed(children.reason, "加载下级网格失败");
  selectedPolygon = polygonLayer(grid.geometry, STYLE.selected, {
    pmIgnore: false,
    className: `ge-shape ge-shape--selected ge-code-${grid.code}`,
  });
  if (selectedPolygon) {
    label(selectedPolygon, grid.name, "ge-label ge-label--selected");
    layers.selected.addLayer(selectedPolygon);
  }
  return undefined;
}

function addChild(f) {
  const layer = polygonLayer(f.geometry, STYLE.child, { className: `ge-shape ge-shape--child ge-code-${f.properties.code}` });
  if (!layer) return;
  label(layer, f.properties.name);
  layer.on("click", () => !state.mode && selectGrid(f.properties.id));
  layers.children.addLayer(layer);
}

function addSibling(f) {
  const p = f.properties;
  const inMerge = state.mergeIds.has(p.id);
  const layer = polygonLayer(f.geometry, inMerge ? STYLE.merge : STYLE.sibling, {
    className: `ge-shape ge-shape--sibling ge-code-${p.code}`,
  });
  if (!layer) return;
  layer.feature = f;
  label(layer, p.name);
  layer.on("click", (e) => {
    const shift = e.originalEvent && e.originalEvent.shiftKey;
    if (state.mode === "merge" || (!state.mode && shift)) toggleMerge(p.id);
    else if (!state.mode) selectGrid(p.id);
  });
  siblingLayers.set(p.id, layer);
  layers.siblings.addLayer(layer);
}

function relabel() {
  const byArea = (group) => group.getLayers().sort(
    (a, b) => ((b.feature && b.feature.properties.area_m2) || 0) - ((a.feature && a.feature.properties.area_m2) || 0),
  );
  declutterTooltips([...layers.selected.getLayers(), ...layers.children.getLayers(), ...byArea(layers.siblings),
    ...layers.overview.getLayers()]);
}

function fitToContent() {
  const target = selectedPolygon || (layers.overview.getLayers().length ? layers.overview : null);
  if (!target) return;
  const panelOpen = Boolean(state.grid);
  map.fitBounds(target.getBounds(), {
    paddingTopLeft: [24, 24],
    paddingBottomRight: [panelOpen ? 360 : 24, 24],
    maxZoom: map.getMaxZoom() - 1,
    animate: false,
  });
}

// ---------------------------------------------------------------- selection and the details panel

async function selectGrid(id, { fit = true, reveal = true } = {}) {
  if (state.mode) cancelMode();
  const seq = ++state.seq;
  $("ge-map").dataset.state = "loading";
  try {
    const [grid, summary] = await Promise.all([
      api(`${GRIDS}/${id}`, { query: { crs: state.crs } }),
      api(`${GRIDS}/${id}/summary`).catch(() => null),
    ]);
    const results = await fetchLayerData(grid);
    if (seq !== state.seq) return false;
    if (!state.grid || state.grid.parent_id !== grid.parent_id) state.mergeIds.clear();
    if (!state.grid || state.grid.id !== grid.id) $("ge-toasts").querySelectorAll(".ge-toast--error").forEach((t) => t.remove());
    state.grid = grid;
    state.summary = summary;
    layers.topology.clearLayers();
    history.replaceState(null, "", `${location.pathname}?grid=${grid.id}`);
    drawLayers(results);
    renderPanel();
    if (fit) fitToContent();
    relabel();
    updateToolbar();
    $("ge-map").dataset.state = "ready";
    if (!reveal) markSelectedInList();
    (reveal ? revealInTree(grid) : Promise.resolve())
      .then(() => ensureAncestors(grid))
      .then(renderBreadcrumb)
      .catch((err) => failed(err, "加载网格路径失败"));
    return true;
  } catch (err) {
    if (seq === state.seq) $("ge-map").dataset.state = "error";
    failed(err, "加载网格失败");
    return false;
  }
}

async function clearSelection() {
  state.grid = null;
  state.summary = null;
  state.mergeIds.clear();
  history.replaceState(null, "", location.pathname);
  drawLayers(await fetchLayerData(null));
  renderPanel();
  fitToContent();
  relabel();
  updateToolbar();
  markSelectedInList();
  $("ge-map").dataset.state = "ready";
}

function renderBreadcrumb() {
  const box = document.querySelector(".ge-crumbs");
  if (!box || !state.grid) return;
  const ids = pathIds(state.grid.path);
  const known = ids.filter((id) => id === state.grid.id || state.nodes.has(id));
  const parts = known.map((id) => {
    if (id === state.grid.id) return el("span", { class: "ge-crumbs__here" }, state.grid.name);
    const node = state.nodes.get(id);
    return el("button", { type: "button", class: "link-btn ge-crumbs__link", onclick: () => selectGrid(id) }, node.name);
  });
  box.replaceChildren(...parts.flatMap((p, i) => (i ? [el("span", { class: "ge-crumbs__sep" }, "/"), p] : [p])));
}

function householdsCell(grid) {
  const h = state.summary && state.summary.households;
  const value = grid.households_estimate === null || grid.households_estimate === undefined
    ? "—" : `${formatNumber(grid.households_estimate)} 户`;
  if (!h || !h.flag) return value;
  const [low, high] = h.range || [];
  const text = h.flag === "too_small" ? `低于 ${formatNumber(low)} 户` : `超过 ${formatNumber(high)} 户`;
  return [value, " ", el("span", { class: "badge badge--warn", title: `建议每个网格 ${low}–${high} 户` }, text)];
}

function childrenCount() {
  const c = state.summary && state.summary.children;
  if (c) return Object.values(c).reduce((a, b) => a + b, 0);
  return layers.children.getLayers().length;
}

function childrenCell() {
  const c = state.summary && state.summary.children;
  const total = childrenCount();
  if (!c || !total) return `${total} 个`;
  const parts = Object.entries(c).map(([lv, n]) => `${LEVEL_LABELS[lv] || lv} ${n}`);
  return `${total} 个（${parts.join("、")}）`;
}

function detailRows(grid) {
  const kind = grid.kind === "virtual" ? `虚拟网格 · ${VTYPE_LABELS[grid.virtual_type] || "—"}`
    : `实体网格 · ${LEVEL_LABELS[grid.level] || "—"}`;
  return [
    ["编码", el("span", { class: "mono" }, grid.code)],
    ["类型 / 层级", kind],
    ["业务条线", LINE_LABELS[grid.business_line] || grid.business_line],
    ["面积", formatArea(grid.area_m2)],
    ["户数估算", householdsCell(grid)],
    ["状态", el("span", { class: `badge ${grid.status === "active" ? "badge--ok" : "badge--off"}` },
      STATUS_LABELS[grid.status] || grid.status)],
    ["版本", `v${grid.version}`],
    ["下级网格", childrenCell()],
    ["行政区划代码", grid.division_code || "—"],
  ];
}

/** Grid staffing (网格人员、移交) and rating (网格评级) sections of the panel: see grid-staff.js, grid-rating.js. */
function renderStaffingSection(grid) {
  const ctx = { me: state.me, toast };
  return el("div", { class: "ge-staffing" }, renderStaffSection(grid, ctx), renderRatingSection(grid, ctx));
}

function renderDetails(body) {
  const grid = state.grid;
  const actions = state.canEdit ? el(
    "div",
    { class: "ge-panel__actions" },
    el("button", { type: "button", class: "btn btn--sm", id: "ge-edit-attrs", onclick: () => renderAttrForm(body) }, "编辑属性"),
    el("button", {
      type: "button", class: "btn btn--sm", id: "ge-rebuild", onclick: rebuildFromChildren,
      disabled: !childrenCount(),
      title: "用下级网格的并集重建本网格边界",
    }, "由下级重建边界"),
    el("button", { type: "button", class: "btn btn--sm btn--danger-ghost", id: "ge-delete", onclick: deleteGrid }, "删除"),
  ) : null;
  body.replaceChildren(
    el("div", { class: "ge-panel__head" },
      el("h2", { class: "ge-panel__title" }, grid.name),
      levelBadge(grid)),
    el("nav", { class: "ge-crumbs", "aria-label": "网格路径" }),
    el("dl", { class: "ge-dl" }, detailRows(grid).map(([k, v]) => el("div", {}, el("dt", {}, k), el("dd", {}, v)))),
    ...[actions, renderStaffingSection(grid)].filter(Boolean),
  );
  renderBreadcrumb();
}

function renderAttrForm(body) {
  const g = state.grid;
  const form = el(
    "form",
    { class: "ge-form", id: "ge-attr-form", novalidate: true },
    el("h3", { class: "ge-form__title" }, "编辑属性"),
    field("名称", el("input", { type: "text", name: "name", value: g.name, required: true, maxlength: 100 })),
    field("编码", el("input", { type: "text", name: "code", value: g.code, required: true, maxlength: 40 })),
    field("业务条线", selectInput("business_line", LINE_LABELS, g.business_line)),
    field("户数估算", el("input", { type: "number", name: "households_estimate", min: 0,
      value: g.households_estimate ?? "" })),
    field("状态", selectInput("status", STATUS_LABELS, g.status)),
    field("行政区划代码", el("input", { type: "text", name: "division_code", value: g.division_code || "",
      maxlength: 12 })),
    el("div", { class: "ge-form__actions" },
      el("button", { type: "submit", class: "btn btn--sm btn--primary" }, "保存属性"),
      el("button", { type: "button", class: "btn btn--sm", onclick: () => renderDetails(body) }, "取消")),
  );
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    saveAttributes(form);
  });
  body.replaceChildren(form);
  form.elements.name.focus();
}

async function saveAttributes(form) {
  const g = state.grid;
  const values = Object.fromEntries(new FormData(form).entries());
  const changes = {};
  for (const key of ["name", "code", "business_line", "status"]) if (values[key] !== g[key]) changes[key] = values[key];
  const hh = values.households_estimate === "" ? null : Number(values.households_estimate);
  if (hh !== g.households_estimate) changes.households_estimate = hh;
  const dc = values.division_code.trim() || null;
  if (dc !== (g.division_code || null)) changes.division_code = dc;
  if (!Object.keys(changes).length) return renderPanel();
  try {
    await api(`${GRIDS}/${g.id}`, { method: "PATCH", query: { crs: state.crs }, json: { ...changes, version: g.version } });
    toast("网格属性已保存", "success");
    await selectGrid(g.id, { fit: false, reveal: false });
    refreshTreeNode(g.parent_id);
  } catch (err) {
    showFieldErrors(form, err);
    failed(err, "保存失败");
  }
  return undefined;
}

function renderPanel() {
  const body = $("ge-panel-body");
  const has = Boolean(state.grid);
  $("ge-panel-empty").hidden = has;
  $("ge-panel").classList.toggle("is-empty", !has);
  body.hidden = !has;
  if (!has) return body.replaceChildren();
  if (state.mode === "draft") return renderDraftForm(body);
  if (state.mode === "merge") return renderMergePanel(body);
  return renderDetails(body);
}

// ---------------------------------------------------------------- toolbar and modes

function updateToolbar() {
  const g = state.grid;
  const idle = !state.mode;
  const editable = state.canEdit && g && idle;
  $("ge-draw").disabled = !(editable && g.geometry && nextLevel(g));
  $("ge-draw").title = g && !nextLevel(g) ? "该网格不能再划分下级网格" : "在所选网格内绘制一个下级网格";
  $("ge-edit").disabled = !(editable && g.geometry);
  $("ge-split").disabled = !(editable && g.geometry);
  $("ge-merge").disabled = !editable;
  $("ge-merge").textContent = state.mergeIds.size ? `合并（${state.mergeIds.size + 1}）` : "合并";
  $("ge-tools").hidden = !idle;
  $("ge-mode").hidden = idle;
  $("ge-basemap").disabled = !idle;
  $("ge-basemap").title = idle ? "" : "请先保存或取消当前编辑";
  if (idle) return;
  $("ge-mode-hint").textContent = MODE_HINTS[state.mode] || "";
  $("ge-mode-finish").hidden = !(state.mode === "draw" || state.mode === "split");
  const save = $("ge-mode-save");
  save.hidden = !["edit", "splitline", "merge"].includes(state.mode);
  save.textContent = { edit: "保存边界", splitline: "确认拆分", merge: "确认合并" }[state.mode] || "保存";
  save.disabled = state.mode === "merge" && !state.mergeIds.size;
}

function setMode(mode) {
  state.mode = mode;
  $("grid-editor").dataset.mode = mode || "";
  updateToolbar();
  renderPanel();
}

function cancelMode() {
  map.pm.disableDraw();
  if (state.draft) state.draft.remove();
  if (state.splitLine) state.splitLine.remove();
  const wasEditing = state.mode === "edit";
  if (selectedPolygon && selectedPolygon.pm) selectedPolygon.pm.disable();
  state.draft = null;
  state.splitLine = null;
  layers.topology.clearLayers();
  clearToasts();
  if (state.mode === "merge") {
    state.mergeIds.clear();
    restyleSiblings();
  }
  setMode(null);
  if (wasEditing && state.grid) selectGrid(state.grid.id, { fit: false, reveal: false });
}

function startDraw() {
  layers.topology.clearLayers();
  setMode("draw");
  map.pm.enableDraw("Polygon", { ...SNAP, pathOptions: { ...STYLE.draft, className: "ge-shape ge-draft" } });
}

function startEdit() {
  if (!selectedPolygon) return;
  layers.topology.clearLayers();
  setMode("edit");
  selectedPolygon.unbindTooltip();
  selectedPolygon.pm.enable({ ...SNAP });
}

function startSplit() {
  setMode("split");
  map.pm.enableDraw("Line", { ...SNAP, pathOptions: { color: "#c8102e", weight: 3, dashArray: "8 6", className: "ge-splitline" } });
}

function finishDrawing() {
  const shape = map.pm.Draw.getActiveShape && map.pm.Draw.getActiveShape();
  const draw = shape && map.pm.Draw[shape];
  if (draw && draw._layer && draw._layer.getLatLngs().length >= (shape === "Line" ? 2 : 3)) draw._finishShape();
  else toast(shape === "Line" ? "请至少放置 2 个顶点" : "请至少放置 3 个顶点", "info");
}

function onShapeCreated(e) {
  if (state.mode === "draw") {
    state.draft = e.layer;
    state.draft.pm.enable({ ...SNAP });
    setMode("draft");
  } else if (state.mode === "split") {
    state.splitLine = e.layer;
    setMode("splitline");
  } else {
    e.layer.remove();
  }
}

function toggleMerge(id) {
  if (state.mergeIds.has(id)) state.mergeIds.delete(id);
  else state.mergeIds.add(id);
  restyleSiblings();
  updateToolbar();
  if (state.mode === "merge") renderPanel();
}

function restyleSiblings() {
  for (const [id, layer] of siblingLayers) layer.setStyle(state.mergeIds.has(id) ? STYLE.merge : STYLE.sibling);
}

async function saveMode() {
  const button = $("ge-mode-save");
  if (button.dataset.busy) return;
  button.dataset.busy = "1";
  try {
    if (state.mode === "edit") await saveEdit();
    else if (state.mode === "splitline") await saveSplit();
    else if (state.mode === "merge") await saveMerge();
  } finally {
    delete button.dataset.busy;
  }
}

// ---------------------------------------------------------------- create / edit / split / merge / delete

function draftGeometry() {
  return state.draft.toGeoJSON(false).geometry;
}

function renderDraftForm(body) {
  const parent = state.grid;
  const level = nextLevel(parent);
  const form = el(
    "form",
    { class: "ge-form", id: "ge-new-form", novalidate: true },
    el("h3", { class: "ge-form__title" }, "新建下级网格"),
    el("p", { class: "ge-form__meta" }, "上级网格：", el("strong", {}, parent.name), ` · 层级：${LEVEL_LABELS[level]}`),
    field("编码", el("input", { type: "text", name: "code", required: true, maxlength: 40, placeholder: `如 ${parent.code}-01` }),
      "字母、数字、_ 或 -"),
    field("名称", el("input", { type: "text", name: "name", required: true, maxlength: 100 })),
    field("业务条线", selectInput("business_line", LINE_LABELS, parent.business_line)),
    field("户数估算", el("input", { type: "number", name: "households_estimate", min: 0 }), "选填"),
    el("div", { class: "ge-form__actions" },
      el("button", { type: "submit", class: "btn btn--sm btn--primary", id: "ge-new-save" }, "保存"),
      el("button", { type: "button", class: "btn btn--sm", onclick: redraw }, "重新绘制"),
      el("button", { type: "button", class: "btn btn--sm", onclick: cancelMode }, "取消")),
  );
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    saveDraft(form, level);
  });
  body.replaceChildren(form);
  form.elements.code.focus();
}

function redraw() {
  if (state.draft) state.draft.remove();
  state.draft = null;
  startDraw();
}

async function saveDraft(form, level) {
  const parent = state.grid;
  const values = Object.fromEntries(new FormData(form).entries());
  const geometry = draftGeometry();
  const payload = {
    kind: "physical", level, parent_id: parent.id, code: values.code.trim(), name: values.name.trim(),
    business_line: values.business_line, geometry,
  };
  if (values.households_estimate !== "") payload.households_estimate = Number(values.households_estimate);
  const button = form.querySelector("#ge-new-save");
  button.disabled = true;
  try {
    const created = await api(GRIDS, { method: "POST", query: { crs: state.crs }, json: payload });
    toast(`已创建网格 ${created.name}（${created.code}）`, "success");
    state.draft.remove();
    state.draft = null;
    setMode(null);
    await refreshTreeNode(parent.id);
    await selectGrid(created.id, { fit: false });
  } catch (err) {
    showFieldErrors(form, err);
    await showGeometryProblem(err, geometry, "保存失败");
  } finally {
    button.disabled = false;
  }
}

async function saveEdit() {
  const g = state.grid;
  const geometry = selectedPolygon.toGeoJSON(false).geometry;
  try {
    await api(`${GRIDS}/${g.id}`, { method: "PATCH", query: { crs: state.crs }, json: { geometry, version: g.version } });
    toast("边界已保存", "success");
    selectedPolygon.pm.disable();
    setMode(null);
    await selectGrid(g.id, { fit: false, reveal: false });
  } catch (err) {
    await showGeometryProblem(err, geometry, "保存边界失败");
  }
}

async function saveSplit() {
  const g = state.grid;
  const line = state.splitLine.toGeoJSON(false).geometry;
  try {
    const parts = await api(`${GRIDS}/${g.id}/split`, { method: "POST", query: { crs: state.crs }, json: { line } });
    toast(`已拆分为 ${parts.length} 个网格：${parts.map((p) => p.code).join("、")}`, "success");
    state.splitLine.remove();
    state.splitLine = null;
    setMode(null);
    await refreshTreeNode(g.parent_id);
    await selectGrid(g.id, { fit: false });
  } catch (err) {
    await showGeometryProblem(err, line, "拆分失败");
  }
}

function renderMergePanel(body) {
  const g = state.grid;
  const picked = [...state.mergeIds].map((id) => siblingLayers.get(id)).filter(Boolean).map((l) => l.feature.properties);
  const name = el("input", { type: "text", name: "name", maxlength: 100, placeholder: g.name, id: "ge-merge-name" });
  body.replaceChildren(
    el("div", { class: "ge-form" },
      el("h3", { class: "ge-form__title" }, "合并网格"),
      el("p", { class: "ge-form__meta" }, "保留网格：", el("strong", {}, `${g.name}（${g.code}）`)),
      el("ul", { class: "ge-merge-list" }, picked.length
        ? picked.map((p) => el("li", {}, `${p.name}（${p.code}）`,
          el("button", { type: "button", class: "link-btn", onclick: () => toggleMerge(p.id) }, "移出")))
        : el("li", { class: "muted" }, "尚未选择：在地图上点击相邻的同级网格")),
      field("合并后名称（选填）", name)),
  );
}

async function saveMerge() {
  const g = state.grid;
  const name = ($("ge-merge-name") && $("ge-merge-name").value.trim()) || undefined;
  const ids = [g.id, ...state.mergeIds];
  const ok = await confirmDialog(`确定将 ${ids.length} 个网格合并到「${g.name}」吗？被合并网格的下级网格将移到「${g.name}」下。`,
    { okText: "合并" });
  if (!ok) return;
  try {
    await api(`${GRIDS}/merge`, { method: "POST", query: { crs: state.crs }, json: { grid_ids: ids, name } });
    toast(`已合并 ${ids.length} 个网格`, "success");
    state.mergeIds.clear();
    setMode(null);
    await refreshTreeNode(g.parent_id);
    await selectGrid(g.id, { fit: false });
  } catch (err) {
    failed(err, "合并失败");
  }
}

async function deleteGrid() {
  const g = state.grid;
  if (!(await confirmDialog(`确定删除网格「${g.name}」（${g.code}）吗？删除后不可恢复。`, { okText: "删除", danger: true }))) return;
  try {
    await api(`${GRIDS}/${g.id}`, { method: "DELETE" });
    toast(`已删除网格 ${g.name}`, "success");
    await refreshTreeNode(g.parent_id);
    if (g.parent_id) await selectGrid(g.parent_id);
    else await clearSelection();
  } catch (err) {
    failed(err, "删除失败");
  }
}

async function rebuildFromChildren() {
  const g = state.grid;
  if (!(await confirmDialog(`用下级网格的并集重建「${g.name}」的边界吗？`, { okText: "重建" }))) return;
  try {
    await api(`${GRIDS}/${g.id}/rebuild`, { method: "POST", query: { crs: state.crs } });
    toast("已由下级网格重建边界", "success");
    await selectGrid(g.id, { fit: false, reveal: false });
  } catch (err) {
    await showGeometryProblem(err, state.grid.geometry, "重建失败");
  }
}

// ---------------------------------------------------------------- topology problems on the map

/** [dx, dy] of the current crs minus WGS84 near the selected grid (the API reports problems in WGS84). */
async function crsOffset() {
  const g = state.grid;
  const key = `${g.id}:${state.crs}`;
  if (!state.offsets.has(key)) {
    const wgs = await api(`${GRIDS}/${g.id}`, { query: { crs: "wgs84" } });
    const a = firstCoord(g.geometry);
    const b = firstCoord(wgs.geometry);
    state.offsets.set(key, a && b ? [a[0] - b[0], a[1] - b[1]] : [0, 0]);
  }
  return state.offsets.get(key);
}

function segmentDistance(p, a, b) {
  const [dx, dy] = [b[0] - a[0], b[1] - a[1]];
  const len = dx * dx + dy * dy;
  const t = len ? Math.max(0, Math.min(1, ((p[0] - a[0]) * dx + (p[1] - a[1]) * dy) / len)) : 0;
  return Math.hypot(p[0] - (a[0] + t * dx), p[1] - (a[1] + t * dy));
}

function polygonsOf(geometry) {
  if (geometry.type === "Polygon") return [geometry.coordinates];
  if (geometry.type === "MultiPolygon") return geometry.coordinates;
  return [];
}

function inRing([x, y], ring) {
  let inside = false;
  for (let i = 0, j = ring.length - 1; i < ring.length; j = i, i += 1) {
    const [xi, yi] = ring[i];
    const [xj, yj] = ring[j];
    if ((yi > y) !== (yj > y) && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

/** Distance from a point to a (multi)polygon or line: 0 inside, else to the nearest edge. */
function distanceTo(p, geometry) {
  const polygons = polygonsOf(geometry);
  if (polygons.some(([outer, ...holes]) => inRing(p, outer) && !holes.some((h) => inRing(p, h)))) return 0;
  const lines = polygons.length ? polygons.flat() : [geometry.coordinates].flat(geometry.type === "MultiLineString" ? 1 : 0);
  let best = Infinity;
  for (const line of lines) {
    for (let i = 1; i < line.length; i += 1) best = Math.min(best, segmentDistance(p, line[i - 1], line[i]));
  }
  return best;
}

/** How far the farthest vertex of a problem geometry lies outside the submitted shape (0 when within it). */
function distanceToSubmitted(geometry, submitted) {
  let worst = 0;
  eachCoord(geometry, (p) => {
    worst = Math.max(worst, distanceTo(p, submitted));
  });
  return worst;
}

/**
 * Problem geometries in the map's crs. They are parts of the submitted shape, so of the two readings
 * (as sent, or shifted from WGS84 into the current crs) the one lying within the submitted shape is right.
 */
async function alignProblem(submitted) {
  if (state.crs === "wgs84" || !submitted) return (g) => g;
  const [dx, dy] = await crsOffset().catch(() => [0, 0]);
  return (g) => {
    if (!g) return g;
    const shifted = mapCoords(g, ([x, y]) => [x + dx, y + dy]);
    return distanceToSubmitted(shifted, submitted) < distanceToSubmitted(g, submitted) ? shifted : g;
  };
}

function problemLayer(geometry, style, cls, text) {
  const layer = polygonLayer(geometry, style, { pane: "ge-problems", interactive: false, snapIgnore: true, className: cls });
  if (layer) label(layer, text, "ge-label ge-label--problem");
  return layer;
}

async function showGeometryProblem(err, submitted, what) {
  const body = err instanceof ApiError ? err.body || {} : {};
  const detail = body.detail || {};
  layers.topology.clearLayers();
  if (body.code === "TOPOLOGY_VIOLATION" || body.code === "INVALID_GEOMETRY") {
    const align = await alignProblem(submitted);
    for (const o of detail.overlaps || []) {
      const layer = problemLayer(align(o.geometry), STYLE.overlap, "ge-problem ge-problem--overlap",
        `与 ${o.code} 重叠 ${formatNumber(o.area_m2, 1)} m²`);
      if (layer) layers.topology.addLayer(layer);
    }
    const out = detail.outside_parent;
    if (out) {
      const layer = problemLayer(align(out.geometry), STYLE.outside, "ge-problem ge-problem--outside",
        `超出 ${out.parent_code} ${formatNumber(out.area_m2, 1)} m²`);
      if (layer) layers.topology.addLayer(layer);
    }
    if (detail.location && detail.location.coordinates) {
      const [x, y] = align(detail.location).coordinates;
      const reason = GEOS_REASONS[detail.reason] || detail.reason || "几何无效";
      const marker = L.marker([y, x], {
        pane: "ge-problems", interactive: false, pmIgnore: true, snapIgnore: true,
        icon: L.divIcon({ className: "ge-problem ge-problem--invalid", iconSize: [16, 16] }),
      });
      marker.bindTooltip(el("span", {}, reason), { permanent: true, direction: "right", offset: [10, 0],
        className: "ge-label ge-label--problem" });
      layers.topology.addLayer(marker);
    }
    const where = body.code === "INVALID_GEOMETRY" ? "问题位置已在地图上用红点标出"
      : "问题区域已在地图上标出（红色为与同级重叠，橙色为超出上级）";
    toast(`${what}：${err.message}。${where}，请调整后重新保存。`, "error", 12000);
    return;
  }
  failed(err, what);
}

// ---------------------------------------------------------------- base maps

function initBasemapSelect(config) {
  const select = $("ge-basemap");
  for (const choice of basemapChoices(config)) {
    select.append(el("option", {
      value: choice.id, disabled: !choice.available, title: choice.reason || `${choice.label}（${CRS_LABELS[choice.crs]}）`,
    }, choice.available ? choice.label : `${choice.label}（未配置）`));
  }
  select.value = state.basemap;
  $("ge-map").dataset.basemap = state.basemap;
  select.addEventListener("change", () => setBasemap(select.value, config));
}

let tileErrorShown = false;
function addBaseLayers(id, config) {
  state.baseLayers.forEach((layer) => layer.remove());
  state.baseLayers = createBaseLayers(id, config);
  tileErrorShown = false;
  for (const layer of state.baseLayers) {
    layer.on("tileerror", () => {
      if (tileErrorShown) return;
      tileErrorShown = true;
      toast("底图瓦片加载失败（网络不可达或地址有误），网格数据不受影响。", "info", 6000);
    });
    layer.addTo(map);
  }
}

/** The zoom in `to` that shows the ground at the same scale as `zoom` in `from` (Baidu's zooms are ~0.74 finer). */
function equivalentZoom(from, to, center, zoom) {
  const metresPerPixel = (crs) => {
    const p = crs.latLngToPoint(center, zoom);
    return crs.distance(center, crs.pointToLatLng(p.add([100, 0]), zoom)) / 100;
  };
  return zoom - Math.log2(metresPerPixel(from) / metresPerPixel(to));
}

/** Switch base map: reload the overlays in its crs, swap the Leaflet CRS if needed and keep the view. */
async function setBasemap(id, config) {
  const choice = basemapById(id);
  const before = { crs: state.crs, zoom: map.getZoom(), center: map.getCenter() };
  if (choice.id === state.basemap) return;
  const refOld = state.grid ? firstCoord(state.grid.geometry) : null;
  state.basemap = choice.id;
  state.crs = choice.crs;
  setStatus();
  const seq = ++state.seq;
  const container = $("ge-map");
  const select = $("ge-basemap");
  container.dataset.state = "loading";
  select.disabled = true;
  try {
    let grid = state.grid;
    if (grid && before.crs !== state.crs) grid = await api(`${GRIDS}/${grid.id}`, { query: { crs: state.crs } });
    const results = await fetchLayerData(grid);
    const current = seq === state.seq; // else a selection started meanwhile and draws its own layers
    const refNew = grid ? firstCoord(grid.geometry) : null;
    const [dx, dy] = current && refOld && refNew ? [refNew[0] - refOld[0], refNew[1] - refOld[1]] : [0, 0];
    const crs = leafletCrsFor(choice.id);
    let zoom = before.zoom;
    if (crs !== map.options.crs) {
      zoom = equivalentZoom(map.options.crs, crs, before.center, before.zoom);
      map.options.crs = crs;
    }
    // a reset view re-projects every vector layer already on the map
    map.setView([before.center.lat + dy, before.center.lng + dx], zoom, { animate: false, reset: true });
    addBaseLayers(choice.id, config);
    container.dataset.basemap = choice.id;
    if (current) {
      state.grid = grid;
      drawLayers(results);
      relabel();
      container.dataset.state = "ready";
    }
  } catch (err) {
    container.dataset.state = "error";
    failed(err, "切换底图失败");
  } finally {
    select.disabled = Boolean(state.mode);
  }
}

// ---------------------------------------------------------------- start-up

function initMap() {
  map = createBaseMap($("ge-map"), { zoom: 9 });
  if (!map) return false;
  L = window.L;
  map.createPane("ge-problems").style.zIndex = "450";
  for (const name of ["overview", "parent", "siblings", "children", "selected", "topology"]) {
    layers[name] = L.featureGroup([], { pmIgnore: true }).addTo(map);
  }
  if (map.pm) {
    map.pm.setLang("zh");
    map.pm.setGlobalOptions({ ...SNAP, templineStyle: { color: "#d97706" }, hintlineStyle: { color: "#d97706", dashArray: "5 5" } });
    map.on("pm:create", onShapeCreated);
  }
  map.on("zoomend moveend", relabel);
  return true;
}

function initToolbar() {
  $("ge-draw").addEventListener("click", startDraw);
  $("ge-edit").addEventListener("click", startEdit);
  $("ge-split").addEventListener("click", startSplit);
  $("ge-merge").addEventListener("click", () => setMode("merge"));
  $("ge-mode-cancel").addEventListener("click", cancelMode);
  $("ge-mode-finish").addEventListener("click", finishDrawing);
  $("ge-mode-save").addEventListener("click", saveMode);
  document.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && state.mode && !document.querySelector("dialog[open]")) cancelMode();
  });
}

async function main() {
  const config = JSON.parse($("ge-basemap-config").textContent || "{}");
  const layout = initLayout();
  initFilters();
  initToolbar();
  if (!initMap()) {
    $("ge-map").dataset.state = "error";
    await layout;
    return;
  }
  initBasemapSelect(config);
  setStatus();
  const { me } = await layout;
  state.me = me;
  state.canEdit = Boolean(me && (me.permissions || []).includes("grid:edit"));
  const wanted = Number(new URLSearchParams(location.search).get("grid"));
  await loadTree();
  if (!wanted || !(await selectGrid(wanted))) await clearSelection();
}

main().catch((err) => reportError(err));
