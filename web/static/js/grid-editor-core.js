// Shared core of the 网格管理 editor (grid-editor.js and its grid-editor-*.js modules): labels, styles, the page
// state, the Leaflet map and layer groups, and small geometry/format helpers. No API calls here.
import { el, formatNumber } from "./common.js";
import { basemapById } from "./map/basemaps.js";

export const GRIDS = "/api/v1/grids";
export const LEVEL_LABELS = {
  city: "市", district: "区县", township: "街道/乡镇", community: "社区/村", building_group: "楼盘/组",
};
export const LEVEL_ORDER = Object.keys(LEVEL_LABELS);
export const VTYPE_LABELS = {
  industrial_park: "园区", business_district: "商圈", industry: "垂直行业", supply_chain: "供应链", enterprise: "企业",
};
export const LINE_LABELS = { retail: "零售", corporate: "公司", micro: "小微" };
export const STATUS_LABELS = { active: "启用", inactive: "停用" };
export const CRS_LABELS = { wgs84: "WGS84", gcj02: "GCJ-02（火星坐标）", bd09: "BD-09（百度坐标）" };
export const GEOS_REASONS = {
  "Self-intersection": "边界自相交",
  "Ring Self-intersection": "环自相交",
  "Too few points in geometry component": "顶点过少",
  "Hole lies outside shell": "内环在外环之外",
  "Interior is disconnected": "内部不连通",
  "Nested shells": "外环嵌套",
  "Duplicate Rings": "重复的环",
};

export const STYLE = {
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
export const SNAP = { snappable: true, snapDistance: 15, allowSelfIntersection: true };
export const MODE_HINTS = {
  draw: "依次单击放置顶点，单击第一个顶点或「完成绘制」结束；靠近已有边界时自动吸附。",
  draft: "可拖动顶点调整边界，在右侧填写编码和名称后保存。",
  edit: "拖动顶点修改边界，单击边中点加点、右键顶点删点；靠近相邻边界时自动吸附。",
  split: "画一条完整穿过所选网格的线，单击最后一个顶点（或「完成绘制」）结束。",
  splitline: "确认按这条线拆分所选网格？面积最大的部分保留原网格。",
  merge: "点击（或 Shift+点击）相邻的同级网格加入/移出合并，所选网格保留编码。",
};


export const $ = (id) => document.getElementById(id);
export const state = {
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
// the Leaflet map, Leaflet itself and the selected grid's polygon, shared by the editor's modules
export const view = { map: null, L: null, selectedPolygon: null };
export const layers = {};
export const siblingLayers = new Map(); // id -> polygon

// ---------------------------------------------------------------- small helpers

export function levelBadge(item) {
  if (item.kind === "virtual") {
    return el("span", { class: "ge-badge ge-badge--virtual" }, `虚拟·${VTYPE_LABELS[item.virtual_type] || "—"}`);
  }
  return el("span", { class: `ge-badge ge-badge--${item.level}` }, LEVEL_LABELS[item.level] || item.level || "—");
}

export function formatArea(m2) {
  if (m2 === null || m2 === undefined) return "—";
  if (m2 >= 1e6) return `${formatNumber(m2 / 1e6, 2)} km²（${formatNumber(m2)} m²）`;
  return `${formatNumber(m2, 1)} m²`;
}

export function pathIds(path) {
  return String(path || "").split(".").map((s) => Number(s.replace(/^\D+/, ""))).filter(Boolean);
}

export function nextLevel(grid) {
  const i = LEVEL_ORDER.indexOf(grid.level);
  return grid.kind === "physical" && i >= 0 && i < LEVEL_ORDER.length - 1 ? LEVEL_ORDER[i + 1] : null;
}

export function mapCoords(geometry, fn) {
  const walk = (c) => (typeof c[0] === "number" ? fn(c) : c.map(walk));
  return { ...geometry, coordinates: walk(geometry.coordinates) };
}

export function eachCoord(geometry, fn) {
  const walk = (c) => (typeof c[0] === "number" ? fn(c) : c.forEach(walk));
  if (geometry && geometry.coordinates) walk(geometry.coordinates);
}

export function firstCoord(geometry) {
  let first = null;
  eachCoord(geometry, (c) => {
    if (!first) first = c;
  });
  return first;
}

export function setStatus() {
  const choice = basemapById(state.basemap);
  $("ge-status").textContent = `底图：${choice.label} · 坐标系：${CRS_LABELS[state.crs]}`;
}

export function polygonLayer(geometry, style, extra = {}) {
  if (!geometry) return null;
  return view.L.GeoJSON.geometryToLayer(geometry, { ...style, pmIgnore: true, snapIgnore: false, ...extra });
}

export function label(layer, text, cls = "ge-label") {
  layer.bindTooltip(el("span", {}, text), { permanent: true, direction: "center", className: cls, interactive: false });
}
