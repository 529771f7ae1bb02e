// 网格平衡 · 网格内客户: balance the customers of one grid (and its descendants) among chosen account managers.
// 测算 asks POST /api/v1/grid-balancing/customers/preview (loads by count and value, compactness, CV, a proposal;
// points in the base map's crs), the map colours each customer by his manager before / after, clicking a point
// locks it; 应用调整 sends the moves to /customers/apply (one audited batch of owner changes). The page
// (grid-balance.js) owns the maps, the base map and the mode switch.
import { api, el, formatDateTime, formatNumber } from "./common.js";
import { PALETTE } from "./grid-balance-map.js";
import { renderLockedList, renderManagerList } from "./grid-balance-results.js";
import {
  confirmDialog, createPicker, errorText, requireFields, searchGrids, searchUsers, showFieldErrors, toast,
} from "./grid-ui.js";

const GRIDS = "/api/v1/grids";
const PREVIEW = "/api/v1/grid-balancing/customers/preview";
const WEIGHTS = [["count", "客户数"], ["value", "存贷款价值"]];
const MAX_CHILDREN = 100;
const SHOWN_MOVES = 60;

const $ = (id) => document.getElementById(id);

/**
 * ctx: {maps, crs() -> current crs, view() -> "before" | "after" | "compare", levelLabels, active() -> bool}.
 * Returns {draw, reload (after a base-map switch), openGrid(id)}.
 */
export function createCustomerMode(ctx) {
  const state = {
    grid: null, // GET /grids/{id} in ctx.crs()
    managers: [],
    locked: new Set(),
    weights: { count: 50, value: 50 },
    result: null,
    lastRequest: null,
    stale: false,
    applied: false,
  };

  const colourOf = (userId) => {
    const i = state.managers.findIndex((m) => m.id === userId);
    return i < 0 ? "#adb5bd" : PALETTE[i % PALETTE.length];
  };

  // ------------------------------------------------------------ grid and managers

  async function chooseGrid(item) {
    Object.assign(state, { result: null, applied: false, stale: false });
    state.locked.clear();
    renderLocked();
    renderResults();
    if (!item) {
      state.grid = null;
      history.replaceState(null, "", `${location.pathname}?mode=customers`);
      return draw();
    }
    history.replaceState(null, "", `${location.pathname}?mode=customers&grid=${item.id}`);
    $("gbc-derive").disabled = false;
    try {
      state.grid = await api(`${GRIDS}/${item.id}`, { query: { crs: ctx.crs() } });
    } catch (err) {
      return toast(errorText(err, "加载网格失败"), "error");
    }
    draw();
    ctx.maps.fit();
    await deriveManagers();
    return undefined;
  }

  /** Default managers: the grid's own account managers, then those of its children (at most 100). */
  async function deriveManagers() {
    if (!state.grid) return;
    const button = $("gbc-derive");
    button.disabled = true;
    try {
      const children = await api(GRIDS, { query: { parent_id: state.grid.id, page_size: MAX_CHILDREN } });
      const ids = [state.grid.id, ...(children.items || []).map((g) => g.id)];
      const byId = new Map();
      for (let i = 0; i < ids.length; i += 8) {
        const rows = await Promise.all(ids.slice(i, i + 8).map((id) => api(`${GRIDS}/${id}/assignments`)));
        for (const r of rows.flat()) {
          if (r && r.post === "account_manager" && r.user_id && !byId.has(r.user_id)) {
            byId.set(r.user_id, { id: r.user_id, name: r.name, sub: `${r.grid_name} 客户经理` });
          }
        }
      }
      state.managers = [...byId.values()];
      renderManagers();
      markStale();
      if (state.managers.length < 2) toast("该网格在岗客户经理不足 2 人，请手动添加", "info");
    } catch (err) {
      toast(errorText(err, "带出客户经理失败"), "error");
    } finally {
      button.disabled = false;
    }
  }

  function renderManagers() {
    renderManagerList("gbc-managers", "gbc-manager-count", state.managers, colourOf, (m) => {
      state.managers = state.managers.filter((x) => x.id !== m.id);
      renderManagers();
      markStale();
    });
  }

  function addManager(item) {
    if (state.managers.some((m) => m.id === item.id)) return;
    state.managers.push({ id: item.id, name: item.label, sub: item.sub });
    renderManagers();
    markStale();
  }

  // ------------------------------------------------------------ weights and locks

  function renderWeights() {
    $("gbc-weights").replaceChildren(...WEIGHTS.map(([key, label]) => {
      const out = el("output", { class: "gb-weight__value" }, state.weights[key]);
      const input = el("input", {
        type: "range", min: 0, max: 100, step: 5, value: state.weights[key], id: `gbc-w-${key}`,
        "aria-label": `${label}权重`,
        oninput: (e) => {
          state.weights[key] = Number(e.target.value);
          out.textContent = e.target.value;
          markStale();
        },
      });
      return el("label", { class: "gb-weight" }, el("span", { class: "gb-weight__label" }, label), input, out);
    }));
  }

  function customerName(id) {
    const f = state.result && state.result.features.features.find((x) => x.properties.customer_id === id);
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
    renderLockedList("gbc-locked", "gbc-locked-count", state.locked, "户", customerName, toggleLock);
  }

  function markStale() {
    if (!state.result) return;
    state.stale = true;
    $("gbc-stale").hidden = false;
    $("gbc-apply-btn").disabled = true;
  }

  // ------------------------------------------------------------ preview, results, map

  async function runPreview(e) {
    if (e) e.preventDefault();
    const form = $("gbc-form");
    const button = $("gbc-run");
    showFieldErrors(form, null);
    if (!requireFields(form, state.grid ? {} : { manager_ids: "请先选择网格" })) return;
    const request = {
      grid_id: state.grid.id,
      manager_ids: state.managers.map((m) => m.id),
      locked_customer_ids: [...state.locked],
      weights: Object.fromEntries(WEIGHTS.map(([key]) => [key, state.weights[key] / 100])),
      company_factor: Number($("gbc-company-factor").value || 0),
    };
    button.disabled = true;
    button.textContent = "测算中…";
    try {
      state.result = await api(PREVIEW, { method: "POST", query: { crs: ctx.crs() }, json: request });
      Object.assign(state, { lastRequest: request, stale: false, applied: false });
      renderResults();
      draw();
      ctx.maps.fit();
    } catch (err) {
      showFieldErrors(form, err);
    } finally {
      button.disabled = false;
      button.textContent = "测算";
    }
  }

  const cell = (before, after, digits = 0) => {
    const fmt = (v) => (v === null || v === undefined ? "—" : formatNumber(v, digits));
    const same = fmt(before) === fmt(after);
    return el("td", { class: `num${same ? "" : " is-changed"}` }, fmt(before),
      same ? null : [el("span", { class: "gb-arrow" }, " → "), el("b", {}, fmt(after))]);
  };

  function renderResults() {
    const r = state.result;
    $("gbc-results").hidden = !r || !ctx.active();
    $("gbc-stale").hidden = !state.stale;
    $("gbc-handovers").hidden = true;
    if (!r) return;
    $("gbc-result-grid").textContent = `${r.grid.name}（${r.grid.code}）`;
    const { cv_before: before, cv_after: after } = r.balance;
    $("gbc-cv").replaceChildren(
      el("div", { class: "gb-cv__item" }, el("span", { class: "gb-cv__label" }, "负荷离散系数（CV）调整前"),
        el("span", { class: "gb-cv__value", id: "gbc-cv-before" }, formatNumber(before, 3))),
      el("span", { class: "gb-cv__arrow", "aria-hidden": "true" }, "→"),
      el("div", { class: "gb-cv__item" }, el("span", { class: "gb-cv__label" }, "调整后"),
        el("span", { class: "gb-cv__value gb-cv__value--after", id: "gbc-cv-after" }, formatNumber(after, 3))),
      el("span", { class: "gb-cv__hint" }, "负荷 = 客户数（对公按折算）与存贷款价值的加权；平均距中心越小，客户越集中"),
    );
    $("gbc-table").querySelector("tbody").replaceChildren(...r.managers.map((m) => el("tr", { dataset: { id: m.user_id } },
      el("td", {}, el("span", { class: "gb-swatch", style: `background: ${colourOf(m.user_id)}` }), m.name),
      cell(m.before.customers, m.after.customers), cell(m.before.companies, m.after.companies),
      cell(m.before.formal, m.after.formal), cell(m.before.value / 1e4, m.after.value / 1e4, 1),
      cell(m.before.load, m.after.load, 2), cell(m.before.compactness_m, m.after.compactness_m))));
    const names = new Map(r.managers.map((m) => [m.user_id, m.name]));
    $("gbc-move-count").textContent = `${r.moves.length} 户`;
    const shown = r.moves.slice(0, SHOWN_MOVES).map((mv) => el("li", { dataset: { customerId: mv.customer_id } },
      el("b", {}, mv.name), `${names.get(mv.from_user_id) || mv.from_user_id} → ${names.get(mv.to_user_id) || mv.to_user_id}`));
    if (r.moves.length > SHOWN_MOVES) shown.push(el("li", { class: "gs__note" }, `…共 ${r.moves.length} 户`));
    $("gbc-moves").replaceChildren(...(shown.length ? shown : [el("li", { class: "gs__note" }, "当前分配已较均衡，无需调整")]));
    $("gbc-apply-btn").disabled = !r.moves.length || state.stale || state.applied;
    $("gbc-apply-btn").textContent = state.applied ? "已应用" : "应用调整";
  }

  function draw() {
    if (!ctx.active() || !ctx.maps) return;
    const r = state.result;
    $("gb-map-hint").textContent = r ? "单击客户点锁定 / 解锁；黑圈为调整的客户，虚线圈为锁定的客户"
      : state.grid ? "选择客户经理后点击「测算」" : "选择网格后，地图显示其范围";
    const views = ctx.view() === "compare" ? ["before", "after"] : [ctx.view()];
    const colours = new Map(state.managers.map((m) => [m.id, colourOf(m.id)]));
    const names = new Map(state.managers.map((m) => [m.id, m.name]));
    if (r) r.managers.forEach((m) => names.set(m.user_id, m.name));
    ctx.maps.drawPoints(r ? r.features.features : [], {
      views, colours, names, locked: state.locked, outline: state.grid, onPointClick: toggleLock,
    });
    const legend = $("gb-legend");
    legend.replaceChildren(...(r ? [
      ...r.managers.map((m) => el("span", { class: "gb-legend__item" },
        el("span", { class: "gb-swatch", style: `background: ${colourOf(m.user_id)}` }), m.name)),
      el("span", { class: "gb-legend__item gbc-legend--moved" }, "调整的客户"),
      el("span", { class: "gb-legend__item gbc-legend--locked" }, "锁定的客户"),
      el("span", { class: "gb-legend__item" }, "大点为对公客户"),
    ] : []));
    if (r) $("gb-map-0").dataset.state = "ready";
  }

  async function applyMoves(e) {
    e.preventDefault();
    const form = $("gbc-apply");
    const reason = $("gbc-reason").value.trim();
    const r = state.result;
    if (!r || !requireFields(form, reason ? {} : { reason: "请填写调整原因" })) return;
    if (!(await confirmDialog(`确定将 ${r.moves.length} 户客户调整给新的客户经理吗？管户变更将记入客户的管户历史。`,
      { okText: "应用调整" }))) return;
    const button = $("gbc-apply-btn");
    button.disabled = true;
    try {
      const done = await api("/api/v1/grid-balancing/customers/apply", {
        method: "POST", json: { grid_id: r.grid.id, moves: r.moves, reason } });
      state.applied = true;
      button.textContent = "已应用";
      toast(`已调整 ${done.moved_customers} 户客户的客户经理`, "success");
      const rows = await Promise.all(done.handover_ids.map((id) => api(`/api/v1/handovers/${id}`).catch(() => null)));
      $("gbc-handovers").hidden = false;
      $("gbc-handover-list").replaceChildren(...rows.filter(Boolean).map((h) => el("li", { class: "gb-handover" },
        `${h.from_user_name} → ${h.to_user_name}：${h.moved_customers} 户`,
        el("span", { class: "gb-handover__meta" }, ` · ${formatDateTime(h.created_at).slice(0, 16)} · ${h.reason}`))));
    } catch (err) {
      showFieldErrors(form, err);
      button.disabled = false;
    }
  }

  // ------------------------------------------------------------ set-up

  const gridPicker = createPicker({
    name: "grid_id", id: "gbc-grid", placeholder: "搜索网格名称 / 编码", search: searchGrids(ctx.levelLabels),
    onPick: chooseGrid,
  });
  $("gbc-grid-slot").append(gridPicker.element);
  gridPicker.element.addEventListener("click", (e) => {
    if (e.target.closest(".gp-chip__remove")) chooseGrid(null);
  });
  const managerPicker = createPicker({
    name: "manager", id: "gbc-manager-add", single: false, placeholder: "添加客户经理：姓名 / 用户名",
    search: searchUsers("account_manager"), onPick: addManager,
  });
  $("gbc-manager-slot").append(managerPicker.element);
  $("gbc-derive").addEventListener("click", deriveManagers);
  $("gbc-form").addEventListener("submit", runPreview);
  $("gbc-apply").addEventListener("submit", applyMoves);
  $("gbc-company-factor").addEventListener("input", markStale);
  renderWeights();
  renderManagers();
  renderLocked();

  return {
    draw,
    renderResults,
    /** After a base-map switch: the grid outline and the proposal's points in the new crs. */
    async reload() {
      if (state.grid) state.grid = await api(`${GRIDS}/${state.grid.id}`, { query: { crs: ctx.crs() } });
      if (state.result && state.lastRequest) {
        const again = await api(PREVIEW, { method: "POST", query: { crs: ctx.crs() }, json: state.lastRequest });
        state.result = { ...state.result, features: again.features };
      }
      draw();
    },
    async openGrid(id) {
      const g = await api(`${GRIDS}/${id}`);
      gridPicker.set({ id: g.id, label: g.name, sub: `${g.code} · ${ctx.levelLabels[g.level] || g.level || ""}` });
      await chooseGrid({ id: g.id });
    },
  };
}
