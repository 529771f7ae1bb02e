// 网格管理 › editing: toolbar modes (draw, edit vertices, split, merge), create / save / split / merge / delete /
// rebuild calls, and the topology problems of a refused edit drawn on the map (overlaps red, overhang orange).
import { api, ApiError, el, formatNumber } from "./common.js";
import { clearToasts, confirmDialog, failed, field, selectInput, showFieldErrors, toast } from "./grid-ui.js";
import {
  $, GEOS_REASONS, GRIDS, LEVEL_LABELS, LINE_LABELS, MODE_HINTS, SNAP, STYLE, eachCoord, firstCoord, label, layers,
  mapCoords, nextLevel, polygonLayer, siblingLayers, state, view,
} from "./grid-editor-core.js";
import { clearSelection, renderPanel, selectGrid } from "./grid-editor-panel.js";
import { refreshTreeNode } from "./grid-editor-tree.js";

// ---------------------------------------------------------------- toolbar and modes

export function updateToolbar() {
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

export function setMode(mode) {
  state.mode = mode;
  $("grid-editor").dataset.mode = mode || "";
  updateToolbar();
  renderPanel();
}

export function cancelMode() {
  view.map.pm.disableDraw();
  if (state.draft) state.draft.remove();
  if (state.splitLine) state.splitLine.remove();
  const wasEditing = state.mode === "edit";
  if (view.selectedPolygon && view.selectedPolygon.pm) view.selectedPolygon.pm.disable();
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

export function startDraw() {
  layers.topology.clearLayers();
  setMode("draw");
  view.map.pm.enableDraw("Polygon", { ...SNAP, pathOptions: { ...STYLE.draft, className: "ge-shape ge-draft" } });
}

export function startEdit() {
  if (!view.selectedPolygon) return;
  layers.topology.clearLayers();
  setMode("edit");
  view.selectedPolygon.unbindTooltip();
  view.selectedPolygon.pm.enable({ ...SNAP });
}

export function startSplit() {
  setMode("split");
  view.map.pm.enableDraw("Line", { ...SNAP, pathOptions: { color: "#c8102e", weight: 3, dashArray: "8 6", className: "ge-splitline" } });
}

export function finishDrawing() {
  const shape = view.map.pm.Draw.getActiveShape && view.map.pm.Draw.getActiveShape();
  const draw = shape && view.map.pm.Draw[shape];
  if (draw && draw._layer && draw._layer.getLatLngs().length >= (shape === "Line" ? 2 : 3)) draw._finishShape();
  else toast(shape === "Line" ? "请至少放置 2 个顶点" : "请至少放置 3 个顶点", "info");
}

export function onShapeCreated(e) {
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

export function toggleMerge(id) {
  if (state.mergeIds.has(id)) state.mergeIds.delete(id);
  else state.mergeIds.add(id);
  restyleSiblings();
  updateToolbar();
  if (state.mode === "merge") renderPanel();
}

export function restyleSiblings() {
  for (const [id, layer] of siblingLayers) layer.setStyle(state.mergeIds.has(id) ? STYLE.merge : STYLE.sibling);
}

export async function saveMode() {
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

export function draftGeometry() {
  return state.draft.toGeoJSON(false).geometry;
}

export function renderDraftForm(body) {
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

export function redraw() {
  if (state.draft) state.draft.remove();
  state.draft = null;
  startDraw();
}

export async function saveDraft(form, level) {
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

export async function saveEdit() {
  const g = state.grid;
  const geometry = view.selectedPolygon.toGeoJSON(false).geometry;
  try {
    await api(`${GRIDS}/${g.id}`, { method: "PATCH", query: { crs: state.crs }, json: { geometry, version: g.version } });
    toast("边界已保存", "success");
    view.selectedPolygon.pm.disable();
    setMode(null);
    await selectGrid(g.id, { fit: false, reveal: false });
  } catch (err) {
    await showGeometryProblem(err, geometry, "保存边界失败");
  }
}

export async function saveSplit() {
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

export function renderMergePanel(body) {
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

export async function saveMerge() {
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

export async function deleteGrid() {
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

export async function rebuildFromChildren() {
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
export async function crsOffset() {
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

export function segmentDistance(p, a, b) {
  const [dx, dy] = [b[0] - a[0], b[1] - a[1]];
  const len = dx * dx + dy * dy;
  const t = len ? Math.max(0, Math.min(1, ((p[0] - a[0]) * dx + (p[1] - a[1]) * dy) / len)) : 0;
  return Math.hypot(p[0] - (a[0] + t * dx), p[1] - (a[1] + t * dy));
}

export function polygonsOf(geometry) {
  if (geometry.type === "Polygon") return [geometry.coordinates];
  if (geometry.type === "MultiPolygon") return geometry.coordinates;
  return [];
}

export function inRing([x, y], ring) {
  let inside = false;
  for (let i = 0, j = ring.length - 1; i < ring.length; j = i, i += 1) {
    const [xi, yi] = ring[i];
    const [xj, yj] = ring[j];
    if ((yi > y) !== (yj > y) && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

/** Distance from a point to a (multi)polygon or line: 0 inside, else to the nearest edge. */
export function distanceTo(p, geometry) {
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
export function distanceToSubmitted(geometry, submitted) {
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
export async function alignProblem(submitted) {
  if (state.crs === "wgs84" || !submitted) return (g) => g;
  const [dx, dy] = await crsOffset().catch(() => [0, 0]);
  return (g) => {
    if (!g) return g;
    const shifted = mapCoords(g, ([x, y]) => [x + dx, y + dy]);
    return distanceToSubmitted(shifted, submitted) < distanceToSubmitted(g, submitted) ? shifted : g;
  };
}

export function problemLayer(geometry, style, cls, text) {
  const layer = polygonLayer(geometry, style, { pane: "ge-problems", interactive: false, snapIgnore: true, className: cls });
  if (layer) label(layer, text, "ge-label ge-label--problem");
  return layer;
}

export async function showGeometryProblem(err, submitted, what) {
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
      const marker = view.L.marker([y, x], {
        pane: "ge-problems", interactive: false, pmIgnore: true, snapIgnore: true,
        icon: view.L.divIcon({ className: "ge-problem ge-problem--invalid", iconSize: [16, 16] }),
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
