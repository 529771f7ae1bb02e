// Generic 系统管理 table page: list + search + pagination, CSV/Excel export, file import, row actions.
// Driven by one small config per entity; the API applies permissions, data scope and validation.
import {
  api,
  ApiError,
  DATA_SCOPE_LABELS,
  download,
  el,
  formatDateTime,
  initLayout,
  ORG_LEVEL_LABELS,
  reportError,
  roleNames,
  showPageAlert,
} from "./common.js";

// A parent shown by name or code when the API sends one, else by its id.
const parentOf = (r) => r.parent_name ?? r.parent_code ?? (r.parent_id != null ? `ID ${r.parent_id}` : null);
const labelOf = (labels) => (v) => (v in labels ? labels[v] : v);
const enabledLabel = labelOf({ true: "启用", false: "停用" });
const yesNoLabel = labelOf({ true: "是", false: "否" });
const visibleLabel = labelOf({ true: "显示", false: "隐藏" });
const STATUS_TONE = {
  true: "ok", false: "off", active: "ok", disabled: "off", pending: "warn", locked: "off",
};
const AUDIT_ACTIONS = {
  insert: "新增", create: "新增", update: "修改", delete: "删除", login: "登录", logout: "退出",
  import: "导入", export: "导出", approve: "批准", disable: "停用",
};

const ENTITIES = {
  orgs: {
    path: "/api/v1/orgs",
    importable: true,
    exportable: true,
    searchHint: "机构代码 / 机构名称",
    columns: [
      { key: "code", title: "机构代码" },
      { key: "name", title: "机构名称" },
      { key: "level", title: "机构层级", format: labelOf(ORG_LEVEL_LABELS) },
      { key: "parent", title: "上级机构", value: parentOf },
      { key: "adcode", title: "行政区划代码" },
      { key: "phone", title: "联系电话" },
      { key: "is_active", title: "状态", format: enabledLabel, badge: true },
    ],
  },
  users: {
    path: "/api/v1/users",
    importable: true,
    exportable: true,
    searchHint: "用户名 / 工号 / 姓名 / 手机号",
    columns: [
      { key: "username", title: "用户名" },
      { key: "employee_no", title: "工号" },
      { key: "name", title: "姓名" },
      { key: "phone", title: "手机号" },
      { key: "org_name", title: "所属机构", value: (r) => r.org_name ?? (r.org && r.org.name) },
      { key: "status", title: "状态", format: labelOf({ active: "正常", disabled: "停用" }), badge: true },
      { key: "roles", title: "角色", value: (r) => (r.role_names || roleNames(r.roles)).join("、") },
    ],
  },
  roles: {
    path: "/api/v1/roles",
    importable: true,
    exportable: true,
    searchHint: "角色代码 / 角色名称",
    columns: [
      { key: "code", title: "角色代码", mono: true },
      { key: "name", title: "角色名称" },
      { key: "data_scope", title: "数据权限", format: labelOf(DATA_SCOPE_LABELS) },
      { key: "is_builtin", title: "内置角色", format: yesNoLabel },
      { key: "description", title: "说明" },
    ],
  },
  permissions: {
    path: "/api/v1/permissions",
    importable: false,
    exportable: true,
    searchHint: "权限代码 / 权限名称",
    columns: [
      { key: "code", title: "权限代码", mono: true },
      { key: "name", title: "权限名称" },
      { key: "description", title: "说明" },
    ],
  },
  menus: {
    path: "/api/v1/menus",
    importable: true,
    exportable: true,
    searchHint: "菜单代码 / 菜单名称",
    columns: [
      { key: "code", title: "菜单代码", mono: true },
      { key: "name", title: "菜单名称" },
      { key: "parent", title: "上级菜单", value: parentOf },
      { key: "route", title: "路由", mono: true },
      { key: "icon", title: "图标" },
      { key: "sort_order", title: "排序", align: "right" },
      { key: "permission_code", title: "所需权限", mono: true },
      { key: "is_visible", title: "显示", format: visibleLabel },
    ],
  },
  dict: {
    path: "/api/v1/dict/items",
    importable: true,
    exportable: true,
    searchHint: "字典类型 / 编码 / 名称",
    columns: [
      { key: "type_code", title: "字典类型", mono: true },
      { key: "code", title: "编码", mono: true },
      { key: "label", title: "名称" },
      { key: "value", title: "值" },
      { key: "sort_order", title: "排序", align: "right" },
      { key: "is_active", title: "状态", format: enabledLabel, badge: true },
    ],
  },
  devices: {
    path: "/api/v1/devices",
    importable: true,
    exportable: true,
    searchHint: "设备标识 / 用户 / 型号",
    columns: [
      { key: "device_id", title: "设备标识", mono: true },
      { key: "user_name", title: "使用人", value: (r) => r.user_name ?? (r.user && r.user.name) },
      { key: "model", title: "型号" },
      { key: "platform", title: "平台" },
      {
        key: "status",
        title: "状态",
        format: labelOf({ pending: "待审批", active: "已启用", disabled: "已停用" }),
        badge: true,
      },
    ],
    actions: [
      { label: "批准", op: "approve", done: "设备已批准", inactiveWhen: (r) => r.status === "active" },
      {
        label: "停用",
        op: "disable",
        done: "设备已停用",
        danger: true,
        confirm: "确定停用该设备？停用后该设备将无法登录。",
        inactiveWhen: (r) => r.status === "disabled",
      },
    ],
  },
  audit: {
    path: "/api/v1/audit",
    importable: false,
    exportable: false,
    searchHint: "操作 / 对象 / 请求ID",
    columns: [
      { key: "occurred_at", title: "时间", format: formatDateTime, nowrap: true },
      { key: "actor_user_id", title: "操作人ID", align: "right" },
      { key: "action", title: "操作", format: labelOf(AUDIT_ACTIONS) },
      { key: "entity", title: "对象", mono: true },
      { key: "entity_id", title: "对象ID", mono: true },
      { key: "request_id", title: "请求ID", mono: true },
      { key: "client_ip", title: "客户端IP", mono: true },
    ],
  },
};

const entity = document.body.dataset.entity;
const config = ENTITIES[entity];
const table = document.getElementById("data-table");
const pager = document.getElementById("pager");
const importResult = document.getElementById("import-result");
const searchInput = document.getElementById("search-q");
const pageSizeSelect = document.getElementById("page-size");

const params = new URLSearchParams(location.search);
const state = {
  q: params.get("q") || "",
  page: Math.max(1, Number(params.get("page")) || 1),
  pageSize: [20, 50, 100].includes(Number(params.get("page_size"))) ? Number(params.get("page_size")) : 20,
  total: 0,
  loading: false,
};

function syncUrl() {
  const query = new URLSearchParams();
  if (state.q) query.set("q", state.q);
  if (state.page > 1) query.set("page", String(state.page));
  if (state.pageSize !== 20) query.set("page_size", String(state.pageSize));
  const search = query.toString();
  history.replaceState(null, "", search ? `?${search}` : location.pathname);
}

// ---------------------------------------------------------------- table

function cellValue(column, row) {
  const raw = column.value ? column.value(row) : row[column.key];
  if (raw === undefined || raw === null || raw === "") return null;
  return column.format ? column.format(raw) : raw;
}

function renderCell(column, row) {
  const value = cellValue(column, row);
  const classes = [column.mono && "mono", column.nowrap && "nowrap", column.align === "right" && "num"];
  let content = value ?? el("span", { class: "muted" }, "—");
  if (column.badge && value !== null) {
    const raw = column.value ? column.value(row) : row[column.key];
    content = el("span", { class: `badge badge--${STATUS_TONE[raw] || "neutral"}` }, value);
  }
  return el("td", { class: classes.filter(Boolean).join(" ") || null }, content);
}

function renderActions(row) {
  return el(
    "td",
    { class: "actions" },
    config.actions.map((a) =>
      el(
        "button",
        {
          type: "button",
          class: `link-btn${a.danger ? " link-btn--danger" : ""}`,
          disabled: a.inactiveWhen && a.inactiveWhen(row),
          onclick: (e) => runAction(a, row, e.currentTarget),
        },
        a.label,
      ),
    ),
  );
}

function renderHead() {
  const cells = config.columns.map((c) => el("th", { scope: "col", class: c.align === "right" ? "num" : null }, c.title));
  if (config.actions) cells.push(el("th", { scope: "col", class: "actions" }, "操作"));
  table.tHead.replaceChildren(el("tr", {}, cells));
}

function columnCount() {
  return config.columns.length + (config.actions ? 1 : 0);
}

function renderMessageRow(text) {
  table.tBodies[0].replaceChildren(
    el("tr", {}, el("td", { class: "data-table__empty", colspan: columnCount() }, text)),
  );
}

function renderRows(items) {
  if (!items.length) {
    renderMessageRow(state.q ? "没有符合条件的记录" : "暂无数据");
    return;
  }
  table.tBodies[0].replaceChildren(
    ...items.map((row) => el("tr", {}, config.columns.map((c) => renderCell(c, row)), config.actions && renderActions(row))),
  );
}

function renderPager() {
  const pages = Math.max(1, Math.ceil(state.total / state.pageSize));
  pager.hidden = false;
  document.getElementById("pager-total").textContent = `共 ${state.total} 条`;
  document.getElementById("pager-pos").textContent = `第 ${state.page} / ${pages} 页`;
  pager.querySelector('[data-page="prev"]').disabled = state.page <= 1;
  pager.querySelector('[data-page="next"]').disabled = state.page >= pages;
}

async function load() {
  state.loading = true;
  table.setAttribute("aria-busy", "true");
  syncUrl();
  try {
    const body = await api(config.path, { query: { q: state.q, page: state.page, page_size: state.pageSize } });
    state.total = Number(body.total) || 0;
    if (body.page) state.page = Number(body.page);
    const pages = Math.max(1, Math.ceil(state.total / state.pageSize));
    if (state.page > pages && state.total > 0) {
      state.page = pages;
      return load();
    }
    renderRows(body.items || []);
    renderPager();
  } catch (err) {
    renderMessageRow("数据加载失败");
    reportError(err, "加载列表失败");
  } finally {
    state.loading = false;
    table.removeAttribute("aria-busy");
  }
  return undefined;
}

// ---------------------------------------------------------------- row actions

async function runAction(action, row, button) {
  if (action.confirm && !window.confirm(action.confirm)) return;
  button.disabled = true;
  try {
    await api(`${config.path}/${encodeURIComponent(row.id)}/${action.op}`, { method: "POST" });
    showPageAlert(action.done, "success");
    await load();
  } catch (err) {
    button.disabled = false;
    reportError(err, `${action.label}失败`);
  }
}

// ---------------------------------------------------------------- import / export

function closeImportResult() {
  importResult.hidden = true;
  importResult.replaceChildren();
}

function importErrorRows(errors) {
  if (Array.isArray(errors)) return errors;
  // A field-error object ({field: [messages]}) from a 422 that is not a row-level rejection.
  return Object.entries(errors || {}).flatMap(([field, messages]) =>
    [].concat(messages).map((message) => ({ row: null, field, message: typeof message === "string" ? message : JSON.stringify(message) })),
  );
}

function showImportResult(kind, title, rows) {
  const closeBtn = el("button", { type: "button", class: "link-btn", onclick: closeImportResult }, "关闭");
  const children = [el("div", { class: "import-result__head" }, el("strong", {}, title), closeBtn)];
  if (rows && rows.length) {
    children.push(
      el(
        "div",
        { class: "import-result__table" },
        el(
          "table",
          { class: "data-table data-table--compact" },
          el("thead", {}, el("tr", {}, el("th", { class: "num" }, "行号"), el("th", {}, "字段"), el("th", {}, "错误信息"))),
          el(
            "tbody",
            {},
            rows.map((e) =>
              el("tr", {}, el("td", { class: "num" }, e.row ?? "—"), el("td", { class: "mono" }, e.field ?? "—"), el("td", {}, e.message ?? "")),
            ),
          ),
        ),
      ),
    );
  }
  importResult.className = `import-result import-result--${kind}`;
  importResult.replaceChildren(...children);
  importResult.hidden = false;
}

async function upload(file, button) {
  closeImportResult();
  showPageAlert("");
  const form = new FormData();
  form.append("file", file, file.name);
  button.disabled = true;
  button.textContent = "导入中…";
  try {
    const body = (await api(`${config.path}/import`, { method: "POST", body: form })) || {};
    showImportResult("success", `导入完成：新增 ${body.created ?? 0} 条，更新 ${body.updated ?? 0} 条。`);
    await load();
  } catch (err) {
    if (err.redirecting) return;
    if (err instanceof ApiError && err.status === 422) {
      const rows = importErrorRows(err.errors);
      const count = rows.length ? `（共 ${rows.length} 处错误，未导入任何数据）` : "";
      showImportResult("error", `${err.message}${count}`, rows);
    } else {
      reportError(err, "导入失败");
    }
  } finally {
    button.disabled = false;
    button.textContent = "导入";
  }
}

async function exportAs(format, button) {
  const text = button.textContent;
  button.disabled = true;
  button.textContent = "导出中…";
  try {
    await download(`${config.path}/export`, {
      query: { format, q: state.q },
      fallbackName: `${entity}.${format}`,
    });
  } catch (err) {
    reportError(err, "导出失败");
  } finally {
    button.disabled = false;
    button.textContent = text;
  }
}

// ---------------------------------------------------------------- wiring

function wireToolbar() {
  const actions = document.getElementById("toolbar-actions");
  const fileInput = document.getElementById("import-file");
  const importBtn = actions.querySelector('[data-action="import"]');
  const csvBtn = actions.querySelector('[data-action="export-csv"]');
  const xlsxBtn = actions.querySelector('[data-action="export-xlsx"]');

  importBtn.hidden = !config.importable;
  csvBtn.hidden = !config.exportable;
  xlsxBtn.hidden = !config.exportable;

  importBtn.addEventListener("click", () => fileInput.click());
  fileInput.addEventListener("change", () => {
    const file = fileInput.files && fileInput.files[0];
    fileInput.value = "";
    if (file) upload(file, importBtn);
  });
  csvBtn.addEventListener("click", () => exportAs("csv", csvBtn));
  xlsxBtn.addEventListener("click", () => exportAs("xlsx", xlsxBtn));

  searchInput.value = state.q;
  searchInput.placeholder = `搜索：${config.searchHint}`;
  document.getElementById("search-form").addEventListener("submit", (e) => {
    e.preventDefault();
    state.q = searchInput.value.trim();
    state.page = 1;
    load();
  });
  document.getElementById("search-reset").addEventListener("click", () => {
    searchInput.value = "";
    state.q = "";
    state.page = 1;
    load();
  });

  pageSizeSelect.value = String(state.pageSize);
  pageSizeSelect.addEventListener("change", () => {
    state.pageSize = Number(pageSizeSelect.value);
    state.page = 1;
    load();
  });
  pager.addEventListener("click", (e) => {
    const btn = e.target.closest("[data-page]");
    if (!btn || state.loading) return;
    state.page += btn.dataset.page === "next" ? 1 : -1;
    load().then(() => document.getElementById("content").scrollTo({ top: 0 }));
  });
}

const layoutReady = initLayout();
if (!config) {
  showPageAlert(`未知的管理对象：${entity}`);
} else {
  renderHead();
  wireToolbar();
  await load();
}
await layoutReady;
