// 客户提醒: my reminders or my team's (everything in my data scope), filtered by kind, state and due range; mark
// one done with an action note (POST /api/v1/reminders/{id}/done); handled-vs-missed statistics per manager or
// org (GET /api/v1/reminders/stats). Scope and state rules are the API's.
import { api, el, formatDateTime, formatNumber, initLayout } from "./common.js";
import { day, formDialog } from "./customer-ui.js";
import { createPicker, errorText, failed, field, searchUsers, showFieldErrors, toast } from "./grid-ui.js";

const KINDS = { birthday: "生日", holiday: "传统节日", balance_change: "大额变动", loan_due: "贷款到期",
  loan_overdue: "贷款逾期", custom_event: "自定义事件" };
const STATUS = { open: "待处理", done: "已处理", missed: "已错过" };
const STATUS_BADGE = { open: "warn", done: "ok", missed: "off" };
const $ = (id) => document.getElementById(id);
const state = { scope: "mine", page: 1, pageSize: 20, total: 0, perms: new Set() };

const ownerPicker = createPicker({ name: "owner_user_id", id: "rm-owner", placeholder: "输入姓名 / 用户名", search: searchUsers() });
$("rm-owner-slot").replaceWith(ownerPicker.element);
$("rm-kind").append(...Object.entries(KINDS).map(([v, t]) => el("option", { value: v }, t)));

async function loadList() {
  const f = $("rm-filters").elements;
  const table = $("rm-table");
  table.setAttribute("aria-busy", "true");
  try {
    const body = await api("/api/v1/reminders", { query: { scope: state.scope, kind: f.kind.value, status: f.status.value,
      owner_user_id: state.scope === "team" && ownerPicker.value ? ownerPicker.value.id : "",
      due_from: f.due_from.value, due_to: f.due_to.value, page: state.page, page_size: state.pageSize } });
    state.total = body.total;
    table.dataset.scope = state.scope;
    table.tHead.replaceChildren(el("tr", {}, ["到期日", "类型", "提醒内容", "客户", "客户经理", "状态", "处理情况", "操作"]
      .map((t) => el("th", {}, t))));
    table.tBodies[0].replaceChildren(...(body.items.length ? body.items.map(renderRow)
      : [el("tr", {}, el("td", { colspan: 8, class: "data-table__empty" }, "暂无提醒"))]));
    const pages = Math.max(1, Math.ceil(state.total / state.pageSize));
    $("rm-pager").hidden = false;
    $("rm-total").textContent = `共 ${formatNumber(state.total)} 条`;
    $("rm-pos").textContent = `${state.page} / ${pages}`;
  } catch (err) {
    failed(err, "加载提醒失败");
  } finally {
    table.removeAttribute("aria-busy");
  }
}

function renderRow(r) {
  const handled = r.status === "done"
    ? [el("div", {}, r.action_note || ""), el("div", { class: "cw-muted" }, formatDateTime(r.done_at))]
    : r.status === "missed" ? el("span", { class: "cw-muted" }, `逾期未处理（${formatDateTime(r.missed_at)}）`) : "";
  return el("tr", { dataset: { id: r.id, status: r.status } },
    el("td", { class: "nowrap" }, day(r.due_date)),
    el("td", {}, KINDS[r.kind] || r.kind),
    el("td", {}, r.title),
    el("td", {}, el("a", { href: `/app/customers/${r.customer_id}` }, r.customer_name || `客户 ${r.customer_id}`)),
    el("td", {}, r.owner_name || `用户 ${r.owner_user_id}`),
    el("td", {}, el("span", { class: `badge badge--${STATUS_BADGE[r.status]}` }, STATUS[r.status] || r.status)),
    el("td", { class: "rm-note" }, handled),
    el("td", { class: "actions" }, r.status === "open" && state.perms.has("reminder:handle")
      ? el("button", { type: "button", class: "link-btn rm-done", onclick: () => markDone(r) }, "标记已处理") : null));
}

async function markDone(r) {
  const result = await formDialog({
    id: "rm-done-dialog",
    title: "标记提醒已处理",
    meta: `${r.customer_name || ""} · ${r.title} · 到期 ${day(r.due_date)}`,
    okText: "确认已处理",
    build: () => [field("处理情况", el("textarea", { name: "note", id: "rm-note", class: "cw-note", maxlength: 1000,
      placeholder: "如：已电话祝福并介绍定期存款产品" }))],
    submit: async (form) => {
      const note = form.elements.note.value.trim();
      if (note.length < 2) {
        showFieldErrors(form, { status: 422, errors: { note: ["请填写处理情况（至少 2 个字）"] } });
        return undefined;
      }
      return api(`/api/v1/reminders/${r.id}/done`, { method: "POST", json: { note } });
    },
  });
  if (result) {
    toast("已标记为已处理", "success");
    await loadList();
    await loadStats();
  }
}

function pct(v) {
  return v == null ? "—" : `${(v * 100).toFixed(1)}%`;
}

async function loadStats() {
  const f = $("rm-stats-form").elements;
  const errBox = $("rm-stats-error");
  try {
    const body = await api("/api/v1/reminders/stats", { query: { date_from: f.date_from.value, date_to: f.date_to.value,
      group_by: f.group_by.value } });
    errBox.hidden = true;
    const t = body.totals || {};
    $("rm-stats-totals").replaceChildren(...[["提醒总数", t.total], ["已处理", t.done], ["已错过", t.missed], ["待处理", t.open]]
      .map(([k, v]) => el("div", { class: "cw-stat" }, el("b", {}, formatNumber(v || 0)), el("span", {}, k))),
      el("div", { class: "cw-stat", id: "rm-handled-rate" }, el("b", {}, pct(t.handled_rate)), el("span", {}, "处理率 = 已处理/(已处理+已错过)")));
    const tbl = $("rm-stats-table");
    tbl.tHead.replaceChildren(el("tr", {}, [f.group_by.value === "org" ? "机构" : "客户经理", "总数", "已处理", "已错过", "待处理", "处理率"]
      .map((h, i) => el("th", { class: i && i < 5 ? "num" : null }, h))));
    tbl.tBodies[0].replaceChildren(...(body.rows.length ? body.rows.map((r) => el("tr", {},
      el("td", {}, r.name || `#${r.id}`), ...[r.total, r.done, r.missed, r.open].map((v) => el("td", { class: "num" }, formatNumber(v))),
      el("td", {}, el("div", { class: "cw-progress" }, el("div", { class: "cw-bar cw-bar--ok" },
        el("i", { style: `width:${Math.round((r.handled_rate || 0) * 100)}%` })), pct(r.handled_rate)))))
      : [el("tr", {}, el("td", { colspan: 6, class: "data-table__empty" }, "该区间暂无提醒"))]));
  } catch (err) {
    const msgs = err.errors ? Object.values(err.errors).flat().join("；") : "";
    errBox.textContent = [errorText(err, "统计失败"), msgs].filter(Boolean).join("：");
    errBox.hidden = false;
  }
}

document.querySelectorAll(".cw-tab").forEach((tab) => tab.addEventListener("click", () => {
  document.querySelectorAll(".cw-tab").forEach((t) => t.setAttribute("aria-selected", String(t === tab)));
  state.scope = tab.dataset.scope;
  $("rm-owner-label").hidden = state.scope !== "team" || !state.perms.has("user:read");
  state.page = 1;
  loadList();
}));
$("rm-filters").addEventListener("submit", (e) => { e.preventDefault(); state.page = 1; loadList(); });
$("rm-stats-form").addEventListener("submit", (e) => { e.preventDefault(); loadStats(); });
$("rm-pager").addEventListener("click", (e) => {
  const dir = e.target.dataset && e.target.dataset.page;
  if (!dir) return;
  const pages = Math.max(1, Math.ceil(state.total / state.pageSize));
  state.page = Math.min(pages, Math.max(1, state.page + (dir === "next" ? 1 : -1)));
  loadList();
});

const { me } = await initLayout();
state.perms = new Set((me && me.permissions) || []);
const iso = (d) => `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}-${String(d.getDate()).padStart(2, "0")}`;
const now = new Date();
$("rm-stats-from").value = iso(new Date(now.getFullYear(), now.getMonth() - 1, 1));
$("rm-stats-to").value = iso(new Date(now.getFullYear(), now.getMonth() + 1, 0));
await Promise.all([loadList(), loadStats()]);
document.body.dataset.ready = "true";
