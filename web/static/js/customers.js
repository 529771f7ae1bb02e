// 客户管理: customers by account ownership (按管户) or by grid (按网格), with filters, exact search by ID number /
// credit code / phone, sortable columns, paging, masked identifiers with an audited reveal, batch assignment to a
// grid and/or an account manager, and delete for potential customers. Data: GET /api/v1/customers/directory.
import { api, el, initLayout, reportError, showPageAlert } from "./common.js";
import {
  CATEGORY_LABELS, KIND_LABELS, FIELD_LABELS, formDialog, label, revealDialog, wan,
} from "./customer-ui.js";
import { confirmDialog, createPicker, failed, field, searchGrids, searchUsers, toast } from "./grid-ui.js";

const table = document.getElementById("cu-table");
const pager = document.getElementById("pager");
const form = document.getElementById("cu-filters");
const selectedInfo = document.getElementById("cu-selected");
const assignBtn = document.getElementById("cu-batch-assign");

const SORTABLE = {
  name: "客户名称", kind: "类型", category: "类别", owner: "客户经理", grid: "网格", org: "机构",
  deposit_balance: "存款余额", loan_balance: "贷款余额", updated_at: "更新时间",
};

const params = new URLSearchParams(location.search);
const state = {
  view: params.get("view") === "grid" ? "grid" : "ownership",
  sort: params.get("sort") || "",
  page: Math.max(1, Number(params.get("page")) || 1),
  pageSize: [20, 50, 100].includes(Number(params.get("page_size"))) ? Number(params.get("page_size")) : 20,
  filters: {},
  total: 0,
  items: [],
  selected: new Map(),
  revealed: new Map(), // customer id -> {field: clear value}, kept for this page view only
  perms: new Set(),
};

const searchOrgs = async (q) => {
  const body = await api("/api/v1/orgs", { query: { q, page_size: 20 } });
  return (body.items || []).map((o) => ({ id: o.id, label: o.name, sub: o.code, org: o }));
};
const gridPicker = createPicker({ name: "grid_id", id: "cu-grid", placeholder: "输入网格名称 / 编码", search: searchGrids() });
const ownerPicker = createPicker({ name: "owner_user_id", id: "cu-owner", placeholder: "输入姓名 / 用户名", search: searchUsers() });
const orgPicker = createPicker({ name: "org_id", id: "cu-org", placeholder: "输入机构名称 / 代码", search: searchOrgs });
document.getElementById("cu-grid-slot").replaceWith(gridPicker.element);
document.getElementById("cu-owner-slot").replaceWith(ownerPicker.element);
document.getElementById("cu-org-slot").replaceWith(orgPicker.element);

function readFilters() {
  const f = form.elements;
  const exactValue = f.exact_value.value.trim();
  return {
    q: f.q.value.trim(),
    kind: f.kind.value,
    category: f.category.value,
    unplaced: f.unplaced.checked ? "true" : "",
    grid_id: gridPicker.value ? gridPicker.value.id : "",
    owner_user_id: ownerPicker.value ? ownerPicker.value.id : "",
    org_id: orgPicker.value ? orgPicker.value.id : "",
    ...(exactValue ? { [f.exact_field.value]: exactValue } : {}),
  };
}

function restoreFilters() {
  const f = form.elements;
  f.q.value = params.get("q") || "";
  f.kind.value = params.get("kind") || "";
  f.category.value = params.get("category") || "";
  f.unplaced.checked = params.get("unplaced") === "true";
  for (const key of Object.keys(FIELD_LABELS)) {
    if (params.get(key)) {
      f.exact_field.value = key;
      f.exact_value.value = params.get(key);
    }
  }
  state.filters = readFilters();
  for (const [key, picker] of [["grid_id", gridPicker], ["owner_user_id", ownerPicker], ["org_id", orgPicker]]) {
    if (params.get(key)) {
      state.filters[key] = params.get(key);
      picker.set({ id: params.get(key), label: params.get(`${key}_label`) || `ID ${params.get(key)}` });
    }
  }
}

function syncUrl() {
  const q = new URLSearchParams();
  if (state.view !== "ownership") q.set("view", state.view);
  for (const [k, v] of Object.entries(state.filters)) if (v) q.set(k, v);
  for (const [key, picker] of [["grid_id", gridPicker], ["owner_user_id", ownerPicker], ["org_id", orgPicker]]) {
    if (picker.value) q.set(`${key}_label`, picker.value.label);
  }
  if (state.sort) q.set("sort", state.sort);
  if (state.page > 1) q.set("page", String(state.page));
  if (state.pageSize !== 20) q.set("page_size", String(state.pageSize));
  const search = q.toString();
  history.replaceState(null, "", search ? `?${search}` : location.pathname);
}

// ---------------------------------------------------------------- table

function columns() {
  const owner = { key: "owner", title: "客户经理", cell: (r) => r.owner_name || (r.owner_user_id ? `ID ${r.owner_user_id}` : "—") };
  const grid = {
    key: "grid", title: "网格",
    cell: (r) => (r.grid_id
      ? [el("span", {}, r.grid_name || `ID ${r.grid_id}`), el("span", { class: "cu-sub mono" }, r.grid_code || "")]
      : el("span", { class: "badge badge--warn" }, "未入网格")),
  };
  const middle = state.view === "grid" ? [grid, owner] : [owner, grid];
  return [
    {
      key: "name", title: "客户名称",
      cell: (r) => [el("a", { class: "cu-name", href: `/app/customers/${r.id}` }, r.name),
        el("span", { class: "cu-sub mono" }, r.customer_no || "")],
    },
    { key: "kind", title: "类型", cell: (r) => label(KIND_LABELS, r.kind) },
    {
      key: "category", title: "类别",
      cell: (r) => el("span", { class: `badge badge--${r.category === "formal" ? "ok" : "neutral"}` },
        label(CATEGORY_LABELS, r.category)),
    },
    { key: "ids", title: "证件号码", nowrap: true, cell: idCell },
    { key: "phone", title: "手机号", cell: (r) => revealedOr(r, "phone", r.phone_mask) },
    ...middle,
    { key: "org", title: "机构", nowrap: true, cell: (r) => r.org_name || "—" },
    { key: "deposit_balance", title: "存款余额", num: true, cell: (r) => wan(r.deposit_balance) },
    { key: "loan_balance", title: "贷款余额", num: true, cell: (r) => wan(r.loan_balance) },
    { key: "actions", title: "操作", nowrap: true, cell: actionsCell },
  ];
}

function revealedOr(row, fieldName, mask) {
  const clear = state.revealed.get(row.id);
  if (clear && clear[fieldName]) return el("span", { class: "mono cu-revealed", title: "已查看完整号码（已留痕）" }, clear[fieldName]);
  return mask ? el("span", { class: "mono" }, mask) : el("span", { class: "muted" }, "—");
}

function idCell(row) {
  const fieldName = row.kind === "company" ? "uscc" : "id_number";
  const mask = row.kind === "company" ? row.uscc_mask : row.id_number_mask;
  const out = [revealedOr(row, fieldName, mask)];
  const fields = [mask ? fieldName : null, row.phone_mask ? "phone" : null].filter(Boolean);
  if (state.perms.has("customer:reveal") && fields.length && !state.revealed.has(row.id)) {
    out.push(" ", el("button", {
      type: "button", class: "link-btn cu-reveal", dataset: { id: row.id }, title: "查看完整号码（需填写原因，留痕）",
      onclick: () => reveal(row, fields),
    }, "查看"));
  }
  return out;
}

function actionsCell(row) {
  const items = [el("a", { class: "link-btn", href: `/app/customers/${row.id}`, title: "客户360视图" }, "详情")];
  if (state.perms.has("customer:edit") && row.category === "potential") {
    items.push(" ", el("button", {
      type: "button", class: "link-btn link-btn--danger cu-delete", dataset: { id: row.id },
      onclick: () => remove(row),
    }, "删除"));
  }
  return items;
}

function renderHead() {
  const head = el("tr", {}, el("th", { class: "cu-check", scope: "col" },
    el("input", { type: "checkbox", id: "cu-check-all", "aria-label": "全选本页", onchange: (e) => selectAll(e.target.checked) })));
  for (const c of columns()) {
    const sortable = c.key in SORTABLE;
    const dir = state.sort === c.key ? "ascending" : state.sort === `-${c.key}` ? "descending" : null;
    head.append(el("th", {
      scope: "col", class: [sortable && "cu-sortable", c.num && "num"].filter(Boolean).join(" ") || null,
      "aria-sort": sortable ? dir || "none" : null, dataset: { sort: sortable ? c.key : "" },
      tabindex: sortable ? 0 : null,
      onclick: sortable ? () => toggleSort(c.key) : null,
      onkeydown: sortable ? (e) => (e.key === "Enter" ? toggleSort(c.key) : null) : null,
    }, c.title));
  }
  table.tHead.replaceChildren(head);
}

function renderRows() {
  const cols = columns();
  if (!state.items.length) {
    table.tBodies[0].replaceChildren(el("tr", {}, el("td", { class: "data-table__empty", colspan: cols.length + 1 },
      "没有符合条件的客户")));
    return;
  }
  table.tBodies[0].replaceChildren(...state.items.map((row) => el("tr", { dataset: { id: row.id } },
    el("td", { class: "cu-check" }, el("input", {
      type: "checkbox", class: "cu-row-check", "aria-label": `选择 ${row.name}`, checked: state.selected.has(row.id),
      onchange: (e) => select(row, e.target.checked),
    })),
    cols.map((c) => el("td", { class: [c.num && "num", (c.num || c.nowrap) && "nowrap"].filter(Boolean).join(" ") || null },
      c.cell(row))))));
}

function renderPager() {
  const pages = Math.max(1, Math.ceil(state.total / state.pageSize));
  pager.hidden = false;
  document.getElementById("pager-total").textContent = `共 ${state.total} 户`;
  document.getElementById("pager-pos").textContent = `第 ${state.page} / ${pages} 页`;
  pager.querySelector('[data-page="prev"]').disabled = state.page <= 1;
  pager.querySelector('[data-page="next"]').disabled = state.page >= pages;
}

function renderSelection() {
  const n = state.selected.size;
  selectedInfo.textContent = n ? `已选择 ${n} 户客户` : "未选择客户";
  assignBtn.disabled = !n;
  const all = document.getElementById("cu-check-all");
  if (all) all.checked = state.items.length > 0 && state.items.every((r) => state.selected.has(r.id));
}

async function load() {
  table.setAttribute("aria-busy", "true");
  syncUrl();
  try {
    const body = await api("/api/v1/customers/directory", {
      query: { view: state.view, sort: state.sort, page: state.page, page_size: state.pageSize, ...state.filters },
    });
    state.total = Number(body.total) || 0;
    state.items = body.items || [];
    const pages = Math.max(1, Math.ceil(state.total / state.pageSize));
    if (state.page > pages && state.total > 0) {
      state.page = pages;
      return load();
    }
    showPageAlert("");
    renderHead();
    renderRows();
    table.dataset.view = state.view;
    renderPager();
    renderSelection();
  } catch (err) {
    reportError(err, "加载客户列表失败");
  } finally {
    table.removeAttribute("aria-busy");
  }
  return undefined;
}

// ---------------------------------------------------------------- actions

function toggleSort(key) {
  state.sort = state.sort === key ? `-${key}` : state.sort === `-${key}` ? "" : key;
  state.page = 1;
  load();
}

function select(row, on) {
  if (on) state.selected.set(row.id, row);
  else state.selected.delete(row.id);
  renderSelection();
}

function selectAll(on) {
  state.items.forEach((r) => (on ? state.selected.set(r.id, r) : state.selected.delete(r.id)));
  table.querySelectorAll(".cu-row-check").forEach((box) => {
    box.checked = on;
  });
  renderSelection();
}

async function reveal(row, fields) {
  const clear = await revealDialog(row, fields);
  if (!clear) return;
  state.revealed.set(row.id, clear);
  renderRows();
  toast("已显示完整号码，本次查看已记入审计日志", "success");
}

async function remove(row) {
  const ok = await confirmDialog(`确定删除潜在客户“${row.name}”？删除后不可恢复。`, { okText: "删除", danger: true });
  if (!ok) return;
  try {
    await api(`/api/v1/customers/${row.id}`, { method: "DELETE" });
    state.selected.delete(row.id);
    toast(`已删除客户“${row.name}”`, "success");
    load();
  } catch (err) {
    failed(err, "删除失败");
  }
}

async function batchAssign() {
  const ids = [...state.selected.keys()];
  let grid = null;
  let owner = null;
  const result = await formDialog({
    id: "cu-assign-dialog",
    title: "批量分配",
    meta: `将所选 ${ids.length} 户客户分配到网格和/或客户经理（全部成功或全部不变）。`,
    okText: "分配",
    build: () => {
      grid = createPicker({ name: "grid_id", id: "cu-assign-grid", placeholder: "输入网格名称 / 编码", search: searchGrids() });
      owner = createPicker({
        name: "owner_user_id", id: "cu-assign-owner", placeholder: "输入姓名 / 用户名", search: searchUsers("account_manager"),
      });
      grid.element.dataset.name = "grid_id";
      owner.element.dataset.name = "owner_user_id";
      return [
        field("目标网格", grid.element, "指定后覆盖空间分配，并记录调整人和原因"),
        field("客户经理", owner.element),
        field("调整原因", el("input", { type: "text", name: "reason", id: "cu-assign-reason", maxlength: 200 })),
      ];
    },
    submit: (f) => api("/api/v1/customers/batch-assign", {
      method: "POST",
      json: {
        customer_ids: ids, grid_id: grid.value ? grid.value.id : null,
        owner_user_id: owner.value ? owner.value.id : null, reason: f.elements.reason.value.trim(),
      },
    }),
  });
  if (!result) return;
  toast(`已分配 ${result.updated} 户客户`, "success");
  state.selected.clear();
  load();
}

// ---------------------------------------------------------------- wiring

function setView(view) {
  state.view = view;
  state.page = 1;
  document.querySelectorAll(".cu-tab").forEach((t) => t.setAttribute("aria-selected", String(t.dataset.view === view)));
  load();
}

document.querySelectorAll(".cu-tab").forEach((tab) => tab.addEventListener("click", () => setView(tab.dataset.view)));
form.addEventListener("submit", (e) => {
  e.preventDefault();
  state.filters = readFilters();
  state.page = 1;
  load();
});
document.getElementById("cu-reset").addEventListener("click", () => {
  form.reset();
  gridPicker.clear();
  ownerPicker.clear();
  orgPicker.clear();
  state.filters = {};
  state.page = 1;
  load();
});
const pageSize = document.getElementById("page-size");
pageSize.value = String(state.pageSize);
pageSize.addEventListener("change", () => {
  state.pageSize = Number(pageSize.value);
  state.page = 1;
  load();
});
pager.addEventListener("click", (e) => {
  const btn = e.target.closest("[data-page]");
  if (!btn) return;
  state.page += btn.dataset.page === "next" ? 1 : -1;
  load();
});
assignBtn.addEventListener("click", batchAssign);

restoreFilters();
document.querySelectorAll(".cu-tab").forEach((t) => t.setAttribute("aria-selected", String(t.dataset.view === state.view)));
const { me } = await initLayout();
state.perms = new Set((me && me.permissions) || []);
assignBtn.hidden = !state.perms.has("customer:assign");
// pickers the user could not search with (their list APIs need these permissions)
ownerPicker.element.closest("label").hidden = !state.perms.has("user:read");
orgPicker.element.closest("label").hidden = !state.perms.has("org:read");
gridPicker.element.closest("label").hidden = !state.perms.has("grid:read");
await load();
document.getElementById("customer-list").dataset.state = "ready";
