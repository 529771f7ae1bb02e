// Result views of the 网格平衡 page: CV before → after, the per-manager table, the moves and household flags of a
// preview (POST /api/v1/grid-balancing/preview), the map legend, and the hand-overs an apply wrote.
import { api, el, formatDateTime, formatNumber } from "./common.js";
import { flagText } from "./grid-balance-map.js";

const $ = (id) => document.getElementById(id);

const cell = (before, after, digits = 0) => {
  const same = before === after || (before === null && after === null);
  const fmt = (v) => (v === null || v === undefined ? "—" : formatNumber(v, digits));
  return el("td", { class: `num${same ? "" : " is-changed"}` }, fmt(before),
    same ? null : [el("span", { class: "gb-arrow" }, " → "), el("b", {}, fmt(after))]);
};

const swatch = (colour) => el("span", { class: "gb-swatch", style: `background: ${colour}` });

/**
 * The chosen managers as chips in `listId` (count in `countId`), each with its map colour and a remove button
 * calling `onRemove(manager)`; used by the grid and the in-grid customer modes.
 */
export function renderManagerList(listId, countId, managers, colourOf, onRemove) {
  $(countId).textContent = managers.length ? `${managers.length} 人` : "";
  $(listId).replaceChildren(...managers.map((m) => el(
    "li", { class: "gb-manager", dataset: { id: m.id } },
    swatch(colourOf(m.id)),
    el("span", { class: "gb-manager__name" }, m.name),
    el("span", { class: "gb-manager__sub" }, m.sub || ""),
    el("button", {
      type: "button", class: "gp-chip__remove", "aria-label": `移除 ${m.name}`, onclick: () => onRemove(m),
    }, "×"),
  )));
  if (!managers.length) $(listId).append(el("li", { class: "gs__note" }, "尚未选择客户经理"));
}

/**
 * The locked items (grids or customers, `unit` 个 / 户) as chips in `listId` (count in `countId`), named by
 * `nameOf(id)`, each with an unlock button calling `onUnlock(id)`; used by both modes.
 */
export function renderLockedList(listId, countId, locked, unit, nameOf, onUnlock) {
  $(countId).textContent = locked.size ? `${locked.size} ${unit}` : "";
  $(listId).replaceChildren(...[...locked].map((id) => el("li", { class: "gp-chip", dataset: { id } },
    el("span", { class: "gp-chip__label" }, nameOf(id)),
    el("button", { type: "button", class: "gp-chip__remove", "aria-label": "解锁", onclick: () => onUnlock(id) },
      "×"))));
}

/** Fill the result card for preview `r`. ctx: {colourOf(userId), gridName(gridId), range}. */
export function renderPreview(r, { colourOf, gridName, range }) {
  const { cv_before: before, cv_after: after } = r.balance;
  const change = before ? ((after - before) / before) * 100 : 0;
  $("gb-cv").replaceChildren(
    el("div", { class: "gb-cv__item" }, el("span", { class: "gb-cv__label" }, "负荷离散系数（CV）调整前"),
      el("span", { class: "gb-cv__value", id: "gb-cv-before" }, formatNumber(before, 3))),
    el("span", { class: "gb-cv__arrow", "aria-hidden": "true" }, "→"),
    el("div", { class: "gb-cv__item" }, el("span", { class: "gb-cv__label" }, "调整后"),
      el("span", { class: "gb-cv__value gb-cv__value--after", id: "gb-cv-after" }, formatNumber(after, 3))),
    el("span", { class: `gb-cv__delta${change < 0 ? " is-better" : ""}` },
      change ? `${change > 0 ? "+" : ""}${formatNumber(change, 1)}%` : "无变化"),
    el("span", { class: "gb-cv__hint" }, "CV 越小，各客户经理的工作量越均衡"),
  );
  $("gb-table").querySelector("tbody").replaceChildren(...r.managers.map((m) => el("tr", { dataset: { id: m.user_id } },
    el("td", {}, swatch(colourOf(m.user_id)), m.name),
    cell(m.before.units, m.after.units), cell(m.before.load, m.after.load, 2),
    cell(m.before.households, m.after.households), cell(m.before.customers, m.after.customers),
    cell(m.before.value / 1e4, m.after.value / 1e4, 1), cell(m.before.area_km2, m.after.area_km2, 2),
    cell(m.before.travel_km, m.after.travel_km, 1), cell(m.pieces_before, m.pieces_after),
    cell(m.compactness_before, m.compactness_after, 2))));
  const names = new Map(r.managers.map((m) => [m.user_id, m.name]));
  $("gb-move-count").textContent = `${r.moves.length} 项`;
  $("gb-moves").replaceChildren(...(r.moves.length ? r.moves.map((mv) => el("li", { dataset: { gridId: mv.grid_id } },
    el("b", {}, mv.name), el("span", { class: "mono gb-code" }, mv.code),
    `${names.get(mv.from_user_id) || mv.from_user_id} → ${names.get(mv.to_user_id) || mv.to_user_id}`))
    : [el("li", { class: "gs__note" }, "当前分配已较均衡，无需调整")]));
  $("gb-flag-count").textContent = `${r.flags.length} 个`;
  $("gb-flags").replaceChildren(...(r.flags.length ? r.flags.map((f) => el("li", {},
    el("b", {}, gridName(f.grid_id)), el("span", { class: "mono gb-code" }, f.code),
    el("span", { class: "gb-flag" }, flagText(f, range))))
    : [el("li", { class: "gs__note" }, "无")]));
}

/** The map legend: one swatch per manager and the outline conventions (empty without a preview). */
export function renderLegend(r, colourOf) {
  const legend = $("gb-legend");
  if (!r) {
    legend.replaceChildren();
    return;
  }
  legend.replaceChildren(
    ...r.managers.map((m) => el("span", { class: "gb-legend__item" }, swatch(colourOf(m.user_id)), m.name)),
    el("span", { class: "gb-legend__item gb-legend__item--moved" }, "调整的网格"),
    el("span", { class: "gb-legend__item gb-legend__item--locked" }, "锁定的网格"),
    el("span", { class: "gb-legend__item" }, el("span", { class: "gb-flag" }, "户数"), "不在规范范围"),
  );
}

/** List the hand-overs written by an apply (GET /handovers/{id} for each, at most 100). */
export async function renderHandovers(ids) {
  const list = $("gb-handover-list");
  $("gb-handovers").hidden = false;
  const rows = await Promise.all(ids.slice(0, 100).map((id) => api(`/api/v1/handovers/${id}`).catch(() => null)));
  list.replaceChildren(...rows.map((h, i) => (h ? el("li", { class: "gb-handover", dataset: { id: h.id } },
    el("b", {}, h.grid_name || `#${h.grid_id}`), el("span", { class: "mono gb-code" }, h.grid_code || ""),
    `${h.from_user_name} → ${h.to_user_name}`,
    el("span", { class: "gb-handover__meta" }, ` · ${formatDateTime(h.created_at).slice(0, 16)} · ${h.reason}`))
    : el("li", {}, `移交记录 #${ids[i]}`))));
  if (ids.length > rows.length) list.append(el("li", { class: "gs__note" }, `…共 ${ids.length} 条`));
}
