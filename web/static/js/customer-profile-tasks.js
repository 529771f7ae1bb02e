// 建档任务: profile collection tasks (补录任务) in my data scope — an account manager sees his own customers' tasks,
// a leader his team's (RLS through the customer). Filters: status, profile type, assignee; counts by status;
// a row links to the customer's profile form; holders of profile_task:edit may cancel an open task.
// Data and scope are the API's: GET /api/v1/profile-tasks, /profile-templates, /users; POST /profile-tasks/{id}/cancel.
import { api, el, formatDateTime, formatNumber, initLayout, reportError } from "./common.js";
import { PROFILE_LABELS, label } from "./customer-ui.js";
import { confirmDialog, failed, toast } from "./grid-ui.js";

const PAGE_SIZE = 20;
const STATUS_LABELS = { open: "进行中", done: "已完成", cancelled: "已取消" };
const section = document.getElementById("pt-list");
const tbody = document.querySelector("#pt-table tbody");
const form = document.getElementById("pt-filters");
const assigneeSelect = document.getElementById("pt-assignee");

const state = { page: 1, total: 0, me: null, perms: new Set(), labels: {}, users: new Map() };

function filters() {
  const f = Object.fromEntries(new FormData(form).entries());
  const query = {};
  if (f.status) query.status = f.status;
  if (f.profile_type) query.profile_type = f.profile_type;
  if (f.assignee_user_id === "me") query.mine = true;
  else if (f.assignee_user_id) query.assignee_user_id = f.assignee_user_id;
  return query;
}

const fieldLabel = (type, key) => (state.labels[type] && state.labels[type][key]) || key;
const userName = (id) => (id == null ? "未分配" : state.users.get(id) || `#${id}`);

async function loadLabels() {
  const templates = await api("/api/v1/profile-templates");
  for (const t of templates || []) {
    if (!t.is_active) continue;
    state.labels[t.profile_type] = Object.fromEntries((t.fields || []).map((f) => [f.key, f.label || f.key]));
  }
}

async function loadUsers() {
  if (state.me) state.users.set(state.me.id, state.me.name || state.me.username);
  if (!state.perms.has("user:read")) return;
  const body = await api("/api/v1/users", { query: { page_size: 500 } });
  for (const u of body.items || []) {
    state.users.set(u.id, u.name);
    if (u.id !== (state.me && state.me.id)) assigneeSelect.append(el("option", { value: String(u.id) }, u.name));
  }
}

function row(t) {
  const canCancel = t.status === "open" && state.perms.has("profile_task:edit");
  return el("tr", { dataset: { id: String(t.id), customer: String(t.customer_id), status: t.status } },
    el("td", {}, el("a", { class: "pt-customer", href: `/app/customers/${t.customer_id}/profile` }, t.customer_name)),
    el("td", {}, label(PROFILE_LABELS, t.profile_type)),
    el("td", { class: "pt-missing" }, (t.missing_fields || []).map((k) => fieldLabel(t.profile_type, k)).join("、")),
    el("td", { dataset: { assignee: String(t.assignee_user_id ?? "") } }, userName(t.assignee_user_id)),
    el("td", {}, formatDateTime(t.created_at)),
    el("td", {}, STATUS_LABELS[t.status] || t.status, t.closed_at ? el("span", { class: "muted" },
      `（${formatDateTime(t.closed_at)}）`) : null),
    el("td", {}, canCancel ? el("button", { type: "button", class: "btn btn--sm btn--danger pt-cancel",
      dataset: { id: String(t.id), name: t.customer_name } }, "取消") : null));
}

async function loadCounts() {
  const base = filters();
  delete base.status;
  const results = await Promise.all(Object.keys(STATUS_LABELS).map((status) =>
    api("/api/v1/profile-tasks", { query: { ...base, status, page_size: 1 } })));
  Object.keys(STATUS_LABELS).forEach((status, i) => {
    document.querySelector(`#pt-counts b[data-status="${status}"]`).textContent = formatNumber(results[i].total);
  });
}

async function load() {
  section.dataset.state = "loading";
  try {
    const [body] = await Promise.all([
      api("/api/v1/profile-tasks", { query: { ...filters(), page: state.page, page_size: PAGE_SIZE } }), loadCounts()]);
    state.total = body.total;
    const rows = (body.items || []).map(row);
    tbody.replaceChildren(...(rows.length ? rows
      : [el("tr", {}, el("td", { class: "data-table__empty", colspan: 7 }, "暂无补录任务"))]));
    const pages = Math.max(1, Math.ceil(body.total / PAGE_SIZE));
    document.getElementById("pt-page").textContent = `第 ${state.page} / ${pages} 页`;
    document.getElementById("pt-prev").disabled = state.page <= 1;
    document.getElementById("pt-next").disabled = state.page >= pages;
    document.getElementById("pt-total").textContent = `共 ${formatNumber(body.total)} 条`;
    section.dataset.total = String(body.total);
  } catch (err) {
    failed(err, "加载建档任务");
  } finally {
    section.dataset.state = "ready";
  }
}

form.addEventListener("submit", (e) => {
  e.preventDefault();
  state.page = 1;
  load();
});
document.getElementById("pt-prev").addEventListener("click", () => { state.page -= 1; load(); });
document.getElementById("pt-next").addEventListener("click", () => { state.page += 1; load(); });
tbody.addEventListener("click", async (e) => {
  const btn = e.target.closest(".pt-cancel");
  if (!btn) return;
  if (!(await confirmDialog(`取消客户「${btn.dataset.name}」的补录任务？`, { okText: "取消任务", danger: true }))) return;
  try {
    await api(`/api/v1/profile-tasks/${btn.dataset.id}/cancel`, { method: "POST" });
    toast("已取消补录任务", "success");
    await load();
  } catch (err) {
    failed(err, "取消补录任务");
  }
});

const { me } = await initLayout();
state.me = me;
state.perms = new Set((me && me.permissions) || []);
// an account manager starts on his own tasks; leaders on the whole visible team
if (!state.perms.has("profile_task:edit")) assigneeSelect.value = "me";
await Promise.all([loadLabels().catch((err) => reportError(err, "加载建档模板")),
  loadUsers().catch((err) => reportError(err, "加载用户"))]);
await load();
