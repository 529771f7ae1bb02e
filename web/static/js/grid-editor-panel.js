// 网格管理 › map layers (the selected grid, its children, siblings and parent, or the districts) and the
// details panel (attributes, breadcrumb, 编辑属性, staff and rating sections).
import { api, el, formatNumber } from "./common.js";
import { failed, field, selectInput, showFieldErrors, toast } from "./grid-ui.js";
import {
  $, GRIDS, LEVEL_LABELS, LINE_LABELS, STATUS_LABELS, STYLE, VTYPE_LABELS, formatArea, label, layers, levelBadge,
  pathIds, polygonLayer, siblingLayers, state, view,
} from "./grid-editor-core.js";
import {
  cancelMode, deleteGrid, rebuildFromChildren, renderDraftForm, renderMergePanel, toggleMerge, updateToolbar,
} from "./grid-editor-edit.js";
import { ensureAncestors, markSelectedInList, refreshTreeNode, revealInTree } from "./grid-editor-tree.js";
import { renderRatingSection } from "./grid-rating.js";
import { renderStaffSection } from "./grid-staff.js";
import { declutterTooltips } from "./map/base.js";

// ---------------------------------------------------------------- map layers

export function fetchLayerData(grid) {
  const crs = state.crs;
  const geojson = (query) => api(`${GRIDS}/geojson`, { query: { ...query, crs } });
  if (!grid) return Promise.allSettled([geojson({ level: "district", simplify_m: 20 })]);
  const requests = [geojson({ parent_id: grid.id })];
  if (grid.parent_id) {
    requests.push(geojson({ parent_id: grid.parent_id }), api(`${GRIDS}/${grid.parent_id}`, { query: { crs } }));
  }
  return Promise.allSettled(requests);
}

export function drawOverview(result) {
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

export function drawLayers(results) {
  for (const group of Object.values(layers)) group.clearLayers();
  siblingLayers.clear();
  view.selectedPolygon = null;
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
  view.selectedPolygon = polygonLayer(grid.geometry, STYLE.selected, {
    pmIgnore: false,
    className: `ge-shape ge-shape--selected ge-code-${grid.code}`,
  });
  if (view.selectedPolygon) {
    label(view.selectedPolygon, grid.name, "ge-label ge-label--selected");
    layers.selected.addLayer(view.selectedPolygon);
  }
  return undefined;
}

export function addChild(f) {
  const layer = polygonLayer(f.geometry, STYLE.child, { className: `ge-shape ge-shape--child ge-code-${f.properties.code}` });
  if (!layer) return;
  label(layer, f.properties.name);
  layer.on("click", () => !state.mode && selectGrid(f.properties.id));
  layers.children.addLayer(layer);
}

export function addSibling(f) {
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

export function relabel() {
  const byArea = (group) => group.getLayers().sort(
    (a, b) => ((b.feature && b.feature.properties.area_m2) || 0) - ((a.feature && a.feature.properties.area_m2) || 0),
  );
  declutterTooltips([...layers.selected.getLayers(), ...layers.children.getLayers(), ...byArea(layers.siblings),
    ...layers.overview.getLayers()]);
}

export function fitToContent() {
  const target = view.selectedPolygon || (layers.overview.getLayers().length ? layers.overview : null);
  if (!target) return;
  const panelOpen = Boolean(state.grid);
  view.map.fitBounds(target.getBounds(), {
    paddingTopLeft: [24, 24],
    paddingBottomRight: [panelOpen ? 360 : 24, 24],
    maxZoom: view.map.getMaxZoom() - 1,
    animate: false,
  });
}

// ---------------------------------------------------------------- selection and the details panel

export async function selectGrid(id, { fit = true, reveal = true } = {}) {
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

export async function clearSelection() {
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

export function renderBreadcrumb() {
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

export function householdsCell(grid) {
  const h = state.summary && state.summary.households;
  const value = grid.households_estimate === null || grid.households_estimate === undefined
    ? "—" : `${formatNumber(grid.households_estimate)} 户`;
  if (!h || !h.flag) return value;
  const [low, high] = h.range || [];
  const text = h.flag === "too_small" ? `低于 ${formatNumber(low)} 户` : `超过 ${formatNumber(high)} 户`;
  return [value, " ", el("span", { class: "badge badge--warn", title: `建议每个网格 ${low}–${high} 户` }, text)];
}

export function childrenCount() {
  const c = state.summary && state.summary.children;
  if (c) return Object.values(c).reduce((a, b) => a + b, 0);
  return layers.children.getLayers().length;
}

export function childrenCell() {
  const c = state.summary && state.summary.children;
  const total = childrenCount();
  if (!c || !total) return `${total} 个`;
  const parts = Object.entries(c).map(([lv, n]) => `${LEVEL_LABELS[lv] || lv} ${n}`);
  return `${total} 个（${parts.join("、")}）`;
}

export function detailRows(grid) {
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
export function renderStaffingSection(grid) {
  const ctx = { me: state.me, toast };
  return el("div", { class: "ge-staffing" }, renderStaffSection(grid, ctx), renderRatingSection(grid, ctx));
}

export function renderDetails(body) {
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

export function renderAttrForm(body) {
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

export async function saveAttributes(form) {
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

export function renderPanel() {
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
