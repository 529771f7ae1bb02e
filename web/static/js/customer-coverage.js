// 建档与覆盖: coverage indicators (入格率 / 建档率 / 授信率 / 用信率 / 未走访占比 for N days) grouped by org, grid or
// account manager with drill-down (parent_id), a profile statistics table, collection tasks (补录任务) for a
// selection, and a small time series of one row from the daily snapshots. Data and scope are the API's:
// GET /api/v1/coverage, /coverage/series, /profiles/stats, POST /profile-tasks.
import { api, el, formatDateTime, formatNumber, initLayout, reportError } from "./common.js";
import { PROFILE_LABELS, formDialog } from "./customer-ui.js";
import { failed, field, selectInput, toast } from "./grid-ui.js";

const section = document.getElementById("cv-coverage");
const table = document.getElementById("cv-table");
const statsTable = document.getElementById("cv-stats-table");
const crumbs = document.getElementById("cv-crumbs");
const daysInput = document.getElementById("cv-days");
const taskBtn = document.getElementById("cv-create-tasks");
const taskResult = document.getElementById("cv-task-result");
const seriesBox = document.getElementById("cv-series");

const GROUP_LABELS = { org: "机构", grid: "网格", manager: "客户经理" };
const STATS_LABELS = { type: "建档类型", grid: "网格", org: "机构", manager: "客户经理" };
const RATES = [
  ["in_grid_rate", "入格率"], ["profile_rate", "建档率"], ["credit_rate", "授信率"], ["usage_rate", "用信率"],
  ["not_visited_rate", "未走访占比"],
];
const SERIES_COLORS = ["#1677ff", "#52c41a", "#fa8c16", "#eb2f96", "#8c8c8c"];

const state = { group: "org", path: [], days: 90, statsGroup: "type", perms: new Set(), rows: [] };

const pct = (v) => (v === null || v === undefined ? "—" : `${(Number(v) * 100).toFixed(1)}%`);
const parent = () => (state.path.length ? state.path[state.path.length - 1] : null);

// ---------------------------------------------------------------- coverage table

function renderCrumbs() {
  const items = [el("a", { dataset: { depth: "0" }, class: "cv-crumb" }, `全部${GROUP_LABELS[state.group]}`)];
  state.path.forEach((p, i) => items.push(" › ", el("a", { dataset: { depth: String(i + 1) }, class: "cv-crumb" }, p.name)));
  crumbs.replaceChildren(...items);
  crumbs.hidden = state.group === "manager";
}

function rowCells(r, { name, isParent }) {
  const drillable = !isParent && state.group !== "manager" && r.key != null;
  const nameCell = drillable
    ? el("a", { class: "cv-drill", dataset: { key: String(r.key) }, title: "下钻查看下级" }, name)
    : name;
  return [
    el("td", {}, nameCell, isParent && r.key != null ? el("span", { class: "muted" }, "（合计）") : null),
    el("td", { class: "cv-num", dataset: { metric: "customers" } }, formatNumber(r.customers)),
    ...RATES.map(([key]) => el("td", { class: "cv-num", dataset: { metric: key } }, pct(r[key]))),
    el("td", {}, r.key != null ? el("button", { type: "button", class: "btn btn--sm cv-trend",
      dataset: { key: String(r.key), name } }, "趋势") : null),
  ];
}

async function loadCoverage() {
  const p = parent();
  const body = await api("/api/v1/coverage", {
    query: { group_by: state.group, not_visited_days: state.days, ...(p ? { parent_id: p.key } : {}) },
  });
  state.rows = body.items || [];
  table.dataset.group = state.group;
  table.querySelector("thead").replaceChildren(el("tr", {},
    el("th", {}, GROUP_LABELS[state.group]), el("th", { class: "cv-num" }, "客户数"),
    ...RATES.map(([key, text]) => el("th", { class: "cv-num" },
      key === "not_visited_rate" ? `${text}（${body.not_visited_days} 天）` : text)),
    el("th", {}, "")));
  const rows = state.rows.map((r) => {
    const isParent = p && r.key === p.key;
    const name = r.name || (r.key == null ? "未分配" : `#${r.key}`);
    return el("tr", { class: isParent ? "cv-parent" : "", dataset: { key: String(r.key ?? ""), parent: isParent ? "true" : "false" } },
      rowCells(r, { name, isParent }));
  });
  if (!p && body.totals) {
    rows.push(el("tr", { class: "cv-parent", dataset: { key: "totals" } },
      rowCells({ ...body.totals, key: null }, { name: "可见范围合计", isParent: true })));
  }
  table.querySelector("tbody").replaceChildren(...(rows.length ? rows
    : [el("tr", {}, el("td", { class: "data-table__empty", colspan: 8 }, "暂无数据"))]));
  document.getElementById("cv-asof").textContent = body.as_of ? `统计时间 ${formatDateTime(body.as_of)}` : "";
  renderCrumbs();
}

async function reloadCoverage() {
  section.dataset.state = "loading";
  try {
    await loadCoverage();
  } catch (err) {
    failed(err, "加载覆盖指标");
  } finally {
    section.dataset.state = "ready";
  }
}

// ---------------------------------------------------------------- time series (daily snapshots)

function sparkline(points) {
  const w = 480, h = 120, pad = 8;
  const x = (i) => pad + (points.length > 1 ? (i * (w - 2 * pad)) / (points.length - 1) : (w - 2 * pad) / 2);
  const y = (v) => h - pad - Number(v) * (h - 2 * pad);
  const paths = RATES.map(([key], idx) => {
    const pts = points.map((pt, i) => [i, pt.metrics[key]]).filter(([, v]) => v !== null && v !== undefined);
    if (!pts.length) return null;
    const d = pts.map(([i, v], n) => `${n ? "L" : "M"}${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(" ");
    return el("path", { d, fill: "none", stroke: SERIES_COLORS[idx], "stroke-width": 2 });
  });
  return el("svg", { width: w, height: h, viewBox: `0 0 ${w} ${h}`, role: "img", "aria-label": "覆盖指标趋势" }, paths);
}

async function showSeries(key, name) {
  seriesBox.hidden = false;
  seriesBox.replaceChildren(el("p", {}, `${name}：加载趋势…`));
  const level = state.group;
  try {
    const body = await api("/api/v1/coverage/series", { query: { level, key } });
    const item = (body.items || [])[0];
    const points = item ? item.points : [];
    const head = el("h3", { class: "cv-section-title" }, `${name} 指标趋势（每日快照）`,
      el("button", { type: "button", class: "btn btn--sm", style: "margin-left:1rem", onclick: () => { seriesBox.hidden = true; } }, "关闭"));
    if (!points.length) {
      seriesBox.dataset.points = "0";
      seriesBox.replaceChildren(head, el("p", { class: "muted" }, "暂无快照数据（每日快照任务运行后显示）。"));
      return;
    }
    const legend = el("p", {}, RATES.map(([, text], i) => el("span", { style: `color:${SERIES_COLORS[i]};margin-right:1rem` }, `■ ${text}`)));
    const rows = points.map((pt) => el("tr", {}, el("td", {}, pt.day),
      ...RATES.map(([k]) => el("td", { class: "cv-num" }, pct(pt.metrics[k])))));
    const tbl = el("table", { class: "data-table" },
      el("thead", {}, el("tr", {}, el("th", {}, "日期"), ...RATES.map(([, t]) => el("th", { class: "cv-num" }, t)))),
      el("tbody", {}, rows));
    seriesBox.dataset.points = String(points.length);
    seriesBox.replaceChildren(head, legend, sparkline(points), tbl);
  } catch (err) {
    seriesBox.hidden = true;
    failed(err, "加载趋势");
  }
}

// ---------------------------------------------------------------- collection tasks

async function createTasks() {
  const p = parent();
  const scopeKey = state.group === "grid" ? "grid_id" : "org_id";
  const scopeText = p ? `${GROUP_LABELS[state.group === "grid" ? "grid" : "org"]}：${p.name}（含下级）` : "我的全部可见范围";
  const result = await formDialog({
    id: "cv-task-dialog",
    title: "发起建档补录任务",
    meta: `范围：${scopeText}。为缺少建档字段的客户各生成一条补录任务，已有未完成任务的客户不重复生成。`,
    okText: "生成任务",
    build: () => [
      field("完整度低于（%）", el("input", { type: "text", inputmode: "numeric", name: "completeness_below",
        id: "cv-below", value: "60" }), "留空：所有缺字段的客户"),
      field("建档类型", selectInput("profile_type", PROFILE_LABELS, "", { empty: "全部" })),
      field("备注", el("input", { type: "text", name: "note", id: "cv-note", maxlength: 200 })),
    ],
    submit: (f) => {
      const below = f.elements.completeness_below.value.trim();
      const json = { note: f.elements.note.value.trim() || null };
      if (below !== "") json.completeness_below = Number(below) / 100;
      if (f.elements.profile_type.value) json.profile_type = f.elements.profile_type.value;
      if (p) json[scopeKey] = p.key;
      return api("/api/v1/profile-tasks", { method: "POST", json });
    },
  });
  if (!result) return;
  taskResult.hidden = false;
  taskResult.dataset.created = String(result.created);
  taskResult.textContent = `已生成 ${result.created} 条补录任务（符合条件 ${result.selected} 户，`
    + `其中 ${result.already_open} 户已有未完成任务）。批次号 ${result.batch_key}`;
  toast(`已生成 ${result.created} 条补录任务`, "success");
  loadStats().catch((err) => failed(err, "加载建档统计"));
}

// ---------------------------------------------------------------- profile statistics

async function loadStats() {
  const body = await api("/api/v1/profiles/stats", { query: { group_by: state.statsGroup } });
  statsTable.dataset.group = state.statsGroup;
  statsTable.querySelector("thead").replaceChildren(el("tr", {}, el("th", {}, STATS_LABELS[state.statsGroup]),
    ...["客户数", "已建档", "完整建档", "建档占比", "完整占比", "平均完整度（已建档）"].map((t) => el("th", { class: "cv-num" }, t))));
  const name = (r) => (state.statsGroup === "type" ? PROFILE_LABELS[r.key] || r.key : r.name)
    || (r.key == null ? "未分配" : `#${r.key}`);
  const line = (r, label) => el("tr", { dataset: { key: String(r.key ?? "") } }, el("td", {}, label),
    el("td", { class: "cv-num" }, formatNumber(r.customers)), el("td", { class: "cv-num" }, formatNumber(r.profiled)),
    el("td", { class: "cv-num" }, formatNumber(r.complete)), el("td", { class: "cv-num" }, pct(r.profiled_share)),
    el("td", { class: "cv-num" }, pct(r.complete_share)), el("td", { class: "cv-num" }, pct(r.avg_completeness)));
  const rows = (body.items || []).map((r) => line(r, name(r)));
  if (body.totals) rows.push(line({ ...body.totals, key: "totals" }, "合计"));
  statsTable.querySelector("tbody").replaceChildren(...(rows.length ? rows
    : [el("tr", {}, el("td", { class: "data-table__empty", colspan: 7 }, "暂无数据"))]));
}

// ---------------------------------------------------------------- wiring

function setGroup(group) {
  state.group = group;
  state.path = [];
  seriesBox.hidden = true;
  document.querySelectorAll("#cv-coverage .cu-tab").forEach((t) => t.setAttribute("aria-selected", String(t.dataset.group === group)));
  taskBtn.hidden = !state.perms.has("profile_task:edit") || group === "manager";
  reloadCoverage();
}

document.querySelectorAll("#cv-coverage .cu-tab").forEach((t) => t.addEventListener("click", () => setGroup(t.dataset.group)));
document.querySelectorAll(".cv-stab").forEach((t) => t.addEventListener("click", async () => {
  state.statsGroup = t.dataset.group;
  document.querySelectorAll(".cv-stab").forEach((b) => b.setAttribute("aria-selected", String(b === t)));
  document.getElementById("cv-stats").dataset.state = "loading";
  await loadStats().catch((err) => failed(err, "加载建档统计"));
  document.getElementById("cv-stats").dataset.state = "ready";
}));
document.getElementById("cv-filters").addEventListener("submit", (e) => {
  e.preventDefault();
  const days = Number(daysInput.value.trim());
  if (!Number.isInteger(days) || days < 1 || days > 3650) {
    toast("未走访天数须为 1–3650 的整数", "error");
    return;
  }
  state.days = days;
  reloadCoverage();
});
table.addEventListener("click", (e) => {
  const drill = e.target.closest(".cv-drill");
  if (drill) {
    state.path.push({ key: Number(drill.dataset.key), name: drill.textContent });
    reloadCoverage();
    return;
  }
  const trend = e.target.closest(".cv-trend");
  if (trend) showSeries(Number(trend.dataset.key), trend.dataset.name);
});
crumbs.addEventListener("click", (e) => {
  const a = e.target.closest(".cv-crumb");
  if (!a) return;
  state.path = state.path.slice(0, Number(a.dataset.depth));
  reloadCoverage();
});
taskBtn.addEventListener("click", () => createTasks().catch((err) => reportError(err, "生成补录任务")));

const { me } = await initLayout();
state.perms = new Set((me && me.permissions) || []);
taskBtn.hidden = !state.perms.has("profile_task:edit");
await Promise.all([reloadCoverage(), loadStats().catch((err) => failed(err, "加载建档统计"))]);
document.getElementById("cv-stats").dataset.state = "ready";
