// 导入批次: list import batches by time, importer, template, name and status (GET /customer-imports); view a
// batch's rows (the saved list: GET …/rows), rename, delete a batch never submitted, and — when those features
// are installed and permitted — geocode the batch's customers (POST /geocode/runs {batch_id}) and save it as a
// list group (客群, POST /customer-groups with category "list" and definition {batch_ids}).
import { api, el, formatDateTime, formatNumber, initLayout, reportError, showPageAlert } from "./common.js";
import { CATEGORY_LABELS, KIND_LABELS, formDialog, label } from "./customer-ui.js";
import { confirmDialog, createPicker, failed, field, searchUsers, selectInput, toast } from "./grid-ui.js";

const $ = (id) => document.getElementById(id);
const PAGE = 20;
const ROWS_PAGE = 50;
const STATUS = {
  uploaded: ["已上传", "neutral"], validated: ["已校验", "neutral"], running: ["导入中", "warn"], done: ["已完成", "ok"],
  failed: ["失败", "off"], rejected: ["已拒绝", "off"],
};

const params = new URLSearchParams(location.search);
const state = { page: 1, filters: {}, perms: new Set(), users: new Map(), rows: { batch: null, page: 1, matched: "" } };
const importer = createPicker({ name: "importer_user_id", id: "cu-importer", placeholder: "输入姓名 / 用户名", search: searchUsers() });
$("cu-importer-slot").replaceWith(importer.element);

function readFilters() {
  const f = $("cu-batch-filters").elements;
  const day = (v, add = 0) => {
    if (!v) return "";
    const d = new Date(`${v}T00:00:00`);
    d.setDate(d.getDate() + add);
    return d.toISOString();
  };
  return {
    q: f.q.value.trim(), template_id: f.template_id.value, status: f.status.value,
    created_from: day(f.created_from.value), created_to: day(f.created_to.value, 1),
    importer_user_id: importer.value ? importer.value.id : "",
  };
}

async function userName(id) {
  if (!id) return "";
  if (!state.users.has(id)) {
    state.users.set(id, api(`/api/v1/users/${id}`).then((u) => u.name).catch(() => `用户 #${id}`));
  }
  return state.users.get(id);
}

function actions(b) {
  const items = [el("button", { type: "button", class: "link-btn cu-view-rows", onclick: () => openRows(b) }, "查看名单")];
  if (state.perms.has("list:edit")) {
    items.push(el("button", { type: "button", class: "link-btn cu-rename", onclick: () => rename(b) }, "重命名"));
  }
  if (b.status === "done" && state.perms.has("geocode:run")) {
    items.push(el("button", { type: "button", class: "link-btn cu-geocode", onclick: () => geocode(b) }, "地址解析"));
  }
  if (b.status === "done" && state.perms.has("group:edit")) {
    items.push(el("button", { type: "button", class: "link-btn cu-save-group", onclick: () => saveGroup(b) }, "保存为客群"));
  }
  if (["uploaded", "validated"].includes(b.status) && state.perms.has("list:edit")) {
    items.push(el("button", { type: "button", class: "link-btn link-btn--danger", onclick: () => remove(b) }, "删除"));
  }
  return el("td", { class: "actions" }, items);
}

function renderBatches(items) {
  const body = $("cu-batch-table").tBodies[0];
  if (!items.length) {
    body.replaceChildren(el("tr", {}, el("td", { class: "data-table__empty", colspan: 10 }, "没有符合条件的批次")));
    return;
  }
  body.replaceChildren(...items.map((b) => {
    const [text, tone] = STATUS[b.status] || [b.status, "neutral"];
    const who = el("td", {}, "…");
    userName(b.importer_user_id).then((n) => { who.textContent = n; });
    return el("tr", { dataset: { id: b.id } },
      el("td", {}, el("strong", { class: "cu-batch-name" }, b.name), el("span", { class: "cu-sub" }, b.filename)),
      el("td", {}, b.template_name || ""),
      who,
      el("td", {}, el("span", { class: `badge badge--${tone}`, title: b.error || "" }, text)),
      el("td", { class: "num" }, formatNumber(b.total_rows)),
      el("td", { class: "num" }, b.created_rows == null ? "—" : formatNumber(b.created_rows)),
      el("td", { class: "num" }, b.matched_rows == null ? "—" : formatNumber(b.matched_rows)),
      el("td", { class: "num" }, formatNumber(b.skipped_rows ?? b.invalid_rows ?? 0)),
      el("td", { class: "nowrap" }, formatDateTime(b.created_at).slice(0, 16)),
      actions(b));
  }));
}

async function load() {
  try {
    const body = await api("/api/v1/customer-imports", { query: { ...state.filters, page: state.page, page_size: PAGE } });
    renderBatches(body.items || []);
    const pages = Math.max(1, Math.ceil(body.total / PAGE));
    $("pager").hidden = false;
    $("pager-total").textContent = `共 ${body.total} 个批次`;
    $("pager-pos").textContent = `第 ${state.page} / ${pages} 页`;
    $("pager").querySelector('[data-page="prev"]').disabled = state.page <= 1;
    $("pager").querySelector('[data-page="next"]').disabled = state.page >= pages;
    showPageAlert("");
  } catch (err) {
    reportError(err, "加载导入批次失败");
  }
}

// ---------------------------------------------------------------- rows of a batch

async function openRows(batch) {
  state.rows = { batch, page: 1, matched: "" };
  $("cu-rows-matched").value = "";
  $("cu-rows-title").textContent = batch.name ? `· ${batch.name}` : "";
  $("cu-rows-card").hidden = false;
  await loadRows();
  $("cu-rows-card").scrollIntoView({ block: "start" });
}

async function loadRows() {
  const { batch, page, matched } = state.rows;
  try {
    const body = await api(`/api/v1/customer-imports/${batch.id}/rows`, { query: { page, page_size: ROWS_PAGE, matched } });
    if (!batch.name) {
      const full = await api(`/api/v1/customer-imports/${batch.id}`);
      state.rows.batch = full;
      $("cu-rows-title").textContent = `· ${full.name}`;
    }
    const extraKeys = [...new Set((body.items || []).flatMap((r) => Object.keys(r.extra || {})))];
    $("cu-rows-table").tHead.replaceChildren(el("tr", {}, el("th", { class: "num" }, "行号"), el("th", {}, "客户"),
      el("th", {}, "类型"), el("th", {}, "证件号码"), el("th", {}, "手机号"), el("th", {}, "地址"), el("th", {}, "结果"),
      extraKeys.map((k) => el("th", {}, k))));
    const tbody = $("cu-rows-table").tBodies[0];
    if (!body.items.length) {
      tbody.replaceChildren(el("tr", {}, el("td", { class: "data-table__empty", colspan: 7 + extraKeys.length }, "暂无名单行")));
    } else {
      tbody.replaceChildren(...body.items.map((r) => el("tr", {},
        el("td", { class: "num" }, r.row_no),
        el("td", {}, r.name ? el("a", { href: `/app/customers/${r.customer_id}` }, r.name) : el("span", { class: "muted" }, "（无权查看）")),
        el("td", {}, `${label(KIND_LABELS, r.kind)} ${label(CATEGORY_LABELS, r.category)}`),
        el("td", { class: "mono" }, r.id_number_mask || r.uscc_mask || "—"),
        el("td", { class: "mono" }, r.phone_mask || "—"),
        el("td", {}, r.address || ""),
        el("td", {}, el("span", { class: `badge badge--${r.matched ? "neutral" : "ok"}` }, r.matched ? "匹配已有" : "新建")),
        extraKeys.map((k) => el("td", {}, r.extra && r.extra[k] != null ? String(r.extra[k]) : "")))));
    }
    const pages = Math.max(1, Math.ceil(body.total / ROWS_PAGE));
    $("cu-rows-pager").hidden = false;
    $("cu-rows-total").textContent = `共 ${body.total} 行`;
    $("cu-rows-pos").textContent = `第 ${page} / ${pages} 页`;
    $("cu-rows-pager").querySelector('[data-page="prev"]').disabled = page <= 1;
    $("cu-rows-pager").querySelector('[data-page="next"]').disabled = page >= pages;
  } catch (err) {
    failed(err, "加载名单明细失败");
  }
}

// ---------------------------------------------------------------- batch actions

async function rename(b) {
  const done = await formDialog({
    id: "cu-rename-dialog", title: "重命名批次", okText: "保存",
    build: () => [field("批次名称", el("input", { type: "text", name: "name", value: b.name, maxlength: 100 }))],
    submit: (f) => api(`/api/v1/customer-imports/${b.id}`, { method: "PATCH", json: { name: f.elements.name.value.trim() } }),
  });
  if (!done) return;
  toast("批次已重命名", "success");
  load();
}

async function remove(b) {
  if (!(await confirmDialog(`确定删除未提交的批次“${b.name}”及其上传文件？`, { okText: "删除", danger: true }))) return;
  try {
    await api(`/api/v1/customer-imports/${b.id}`, { method: "DELETE" });
    toast("批次已删除", "success");
    load();
  } catch (err) {
    failed(err, "删除失败");
  }
}

async function geocode(b) {
  if (!(await confirmDialog(`对批次“${b.name}”中的客户进行地址解析（已有坐标的客户不变）？解析在后台进行。`))) return;
  try {
    const run = await api("/api/v1/geocode/runs", { method: "POST", json: { batch_id: b.id } });
    toast(`已提交地址解析任务 #${run.id}`, "success");
  } catch (err) {
    failed(err, "提交地址解析失败");
  }
}

async function saveGroup(b) {
  const tpl = b.template_name || "";
  const group = await formDialog({
    id: "cu-group-dialog", title: "保存为客群", okText: "保存",
    meta: "以该批次名单中的客户建立名单客群（草稿，提交审批后生效）。",
    build: () => [
      field("客群名称", el("input", { type: "text", name: "name", value: b.name, maxlength: 100 })),
      field("客户类型", selectInput("kind", KIND_LABELS, tpl.includes("商户") ? "company" : "person")),
      field("说明", el("input", { type: "text", name: "description", maxlength: 500, value: `导入批次 #${b.id}` })),
    ],
    submit: (f) => api("/api/v1/customer-groups", {
      method: "POST",
      json: {
        name: f.elements.name.value.trim(), kind: f.elements.kind.value, category: "list",
        description: f.elements.description.value.trim() || null, definition: { batch_ids: [b.id] },
      },
    }),
  });
  if (group) toast(`已保存为客群“${group.name}”`, "success");
}

// ---------------------------------------------------------------- wiring

$("cu-batch-filters").addEventListener("submit", (e) => {
  e.preventDefault();
  state.filters = readFilters();
  state.page = 1;
  load();
});
$("cu-breset").addEventListener("click", () => {
  $("cu-batch-filters").reset();
  importer.clear();
  state.filters = {};
  state.page = 1;
  load();
});
$("pager").addEventListener("click", (e) => {
  const btn = e.target.closest("[data-page]");
  if (!btn) return;
  state.page += btn.dataset.page === "next" ? 1 : -1;
  load();
});
$("cu-rows-pager").addEventListener("click", (e) => {
  const btn = e.target.closest("[data-page]");
  if (!btn) return;
  state.rows.page += btn.dataset.page === "next" ? 1 : -1;
  loadRows();
});
$("cu-rows-matched").addEventListener("change", (e) => {
  state.rows.matched = e.target.value;
  state.rows.page = 1;
  loadRows();
});
$("cu-rows-close").addEventListener("click", () => {
  $("cu-rows-card").hidden = true;
});

const { me } = await initLayout();
state.perms = new Set((me && me.permissions) || []);
$("cu-new-import").hidden = !state.perms.has("list:edit");
importer.element.closest("label").hidden = !state.perms.has("user:read");
try {
  const templates = await api("/api/v1/customer-list-templates");
  $("cu-btemplate").append(...templates.map((t) => el("option", { value: t.id }, t.name)));
} catch (err) {
  reportError(err, "加载模板失败");
}
await load();
if (params.get("batch")) await openRows({ id: Number(params.get("batch")) });
$("cu-batches").dataset.state = "ready";
