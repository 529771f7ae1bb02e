// 网格三员 register (/app/grids/assistants): list, search and filter the grid assistants in my scope
// (GET /api/v1/grid-assistants), and — with assistant:edit — create, edit and delete them (POST / PATCH / DELETE
// /grid-assistants[/{id}]). Scope, validation and "delete only if never assigned" are the API's rules: 422 field
// errors appear under the fields, 409 ASSISTANT_HAS_ASSIGNMENTS offers to set the assistant inactive instead.
import { api, el, initLayout, reportError } from "./common.js";
import {
  confirmDialog, createPicker, errorText, field, requireFields, searchUsers, selectInput, showFieldErrors, toast,
} from "./grid-ui.js";

const URL_BASE = "/api/v1/grid-assistants";
const KINDS = {
  village_cadre: "村/社区干部", party_member: "党员", volunteer: "志愿者", merchant_rep: "商户代表", other: "其他",
};
const STATUS = { active: "在岗", inactive: "停用" };
const PAGE_SIZE = 20;

const $ = (id) => document.getElementById(id);
const state = { page: 1, total: 0, filters: {}, org: null, canEdit: false, me: null, items: [] };

/** Picker search over orgs in my scope (GET /orgs?q=). */
function searchOrgs() {
  return async (q) => {
    const body = await api("/api/v1/orgs", { query: { q, page_size: 20 } });
    return (body.items || []).map((o) => ({ id: o.id, label: o.name, sub: o.code || "" }));
  };
}

// ---------------------------------------------------------------- list

let loadSeq = 0;
async function load() {
  const tbody = $("ga-table").querySelector("tbody");
  const seq = ++loadSeq;
  try {
    const body = await api(URL_BASE, { query: { ...state.filters, page: state.page, page_size: PAGE_SIZE } });
    if (seq !== loadSeq) return; // a newer search answered first: keep its rows
    state.total = body.total;
    state.items = body.items || [];
    tbody.replaceChildren(...(state.items.length ? state.items.map(row)
      : [el("tr", {}, el("td", { class: "data-table__empty", colspan: 8 }, "没有符合条件的网格三员"))]));
    $("ga-stats").textContent = `共 ${body.total} 人`;
    const pages = Math.max(1, Math.ceil(body.total / PAGE_SIZE));
    $("ga-pager").hidden = body.total <= PAGE_SIZE;
    $("ga-total").textContent = `共 ${body.total} 条`;
    $("ga-pos").textContent = `${state.page} / ${pages}`;
    $("ga-pager").querySelector('[data-page="prev"]').disabled = state.page <= 1;
    $("ga-pager").querySelector('[data-page="next"]').disabled = state.page >= pages;
  } catch (err) {
    if (seq !== loadSeq) return;
    tbody.replaceChildren(el("tr", {}, el("td", { class: "data-table__empty", colspan: 8 },
      errorText(err, "加载网格三员失败") || "")));
  }
}

function row(a) {
  return el("tr", { dataset: { id: a.id }, class: a.status === "inactive" ? "is-inactive" : "" },
    el("td", { class: "ga-name" }, a.name),
    el("td", { class: "mono" }, a.phone || "—"),
    el("td", {}, a.kind_label || KINDS[a.kind] || a.kind),
    el("td", {}, a.org_name || "—"),
    el("td", {}, a.user_name || "—"),
    el("td", {}, el("span", { class: `badge ${a.status === "active" ? "badge--ok" : "badge--off"}` }, STATUS[a.status])),
    el("td", { class: "ga-notes", title: a.notes || "" }, a.notes || ""),
    el("td", { class: "ga-actions-col" }, state.canEdit ? [
      el("button", { type: "button", class: "link-btn ga-edit", onclick: () => openEditor(a) }, "编辑"),
      el("button", { type: "button", class: "link-btn link-btn--danger ga-delete", onclick: () => remove(a) }, "删除"),
    ] : "—"));
}

// ---------------------------------------------------------------- create / edit / delete

function openEditor(current) {
  const box = $("ga-editor");
  const name = el("input", { type: "text", name: "name", maxlength: 64, value: current ? current.name : "" });
  const phone = el("input", { type: "text", inputmode: "tel", name: "phone", maxlength: 20,
    value: current ? current.phone || "" : "", placeholder: "手机号，可不填" });
  const kind = selectInput("kind", KINDS, current ? current.kind : "village_cadre");
  const status = selectInput("status", STATUS, current ? current.status : "active");
  const notes = el("textarea", { name: "notes", rows: 2, maxlength: 1000, placeholder: "如：某某社区居委会委员" });
  notes.value = current ? current.notes || "" : "";
  const org = createPicker({ name: "org_id", id: "ga-form-org", placeholder: "搜索机构（默认本人机构）", search: searchOrgs() });
  if (current && current.org_id) org.set({ id: current.org_id, label: current.org_name || `#${current.org_id}` });
  const user = createPicker({ name: "user_id", id: "ga-form-user", placeholder: "如也是系统用户，可关联", search: searchUsers() });
  if (current && current.user_id) user.set({ id: current.user_id, label: current.user_name || `#${current.user_id}` });
  const form = el("form", { class: "ge-form ga-form", id: "ga-form", novalidate: true },
    el("h2", { class: "ga-form__title" }, current ? `编辑网格三员：${current.name}` : "新增网格三员"),
    el("div", { class: "ga-form__grid" },
      field("姓名", name), field("电话", phone), field("类型", kind), field("状态", status),
      field("所属机构", org.element), field("关联系统用户", user.element)),
    field("备注", notes),
    el("div", { class: "ge-form__error", role: "alert", hidden: true }),
    el("div", { class: "ge-form__actions" },
      el("button", { type: "submit", class: "btn btn--sm btn--primary", id: "ga-save" }, "保存"),
      el("button", { type: "button", class: "btn btn--sm", onclick: closeEditor }, "取消")));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    if (!requireFields(form, name.value.trim() ? {} : { name: "请填写姓名" })) return;
    const payload = {
      name: name.value.trim(), phone: phone.value.trim() || null, kind: kind.value, status: status.value,
      notes: notes.value.trim() || null, user_id: user.value ? user.value.id : null,
    };
    if (org.value) payload.org_id = org.value.id;
    const button = $("ga-save");
    button.disabled = true;
    try {
      const saved = await api(current ? `${URL_BASE}/${current.id}` : URL_BASE,
        { method: current ? "PATCH" : "POST", json: payload });
      toast(current ? `已保存 ${saved.name}` : `已新增网格三员 ${saved.name}`, "success");
      closeEditor();
      await load();
    } catch (err) {
      showFieldErrors(form, err);
    } finally {
      button.disabled = false;
    }
  });
  box.replaceChildren(form);
  box.hidden = false;
  name.focus();
}

function closeEditor() {
  $("ga-editor").hidden = true;
  $("ga-editor").replaceChildren();
}

async function remove(a) {
  if (!(await confirmDialog(`确定删除网格三员「${a.name}」吗？`, { okText: "删除", danger: true }))) return;
  try {
    await api(`${URL_BASE}/${a.id}`, { method: "DELETE" });
    toast(`已删除 ${a.name}`, "success");
    await load();
  } catch (err) {
    if (err && err.code === "ASSISTANT_HAS_ASSIGNMENTS") {
      if (await confirmDialog(`${err.message}。是否将「${a.name}」改为停用？`, { okText: "改为停用" })) {
        try {
          await api(`${URL_BASE}/${a.id}`, { method: "PATCH", json: { status: "inactive" } });
          toast(`已停用 ${a.name}`, "success");
          await load();
        } catch (again) {
          toast(errorText(again, "停用失败"), "error");
        }
      }
      return;
    }
    toast(errorText(err, "删除失败"), "error");
  }
}

// ---------------------------------------------------------------- start-up

function readFilters() {
  const f = {};
  const q = $("ga-q").value.trim();
  if (q) f.q = q;
  if ($("ga-kind").value) f.kind = $("ga-kind").value;
  if ($("ga-status").value) f.status = $("ga-status").value;
  if (state.org) f.org_id = state.org.id;
  return f;
}

async function main() {
  const layout = await initLayout();
  state.me = layout.me;
  const perms = new Set((state.me && state.me.permissions) || []);
  state.canEdit = perms.has("assistant:edit");
  $("ga-new").hidden = !state.canEdit;
  $("ga-new").addEventListener("click", () => openEditor(null));
  $("ga-kind").append(...Object.entries(KINDS).map(([v, t]) => el("option", { value: v }, t)));
  const orgPicker = createPicker({
    name: "org_id", id: "ga-org", placeholder: "全部机构", search: searchOrgs(),
    onPick: (item) => {
      state.org = item;
    },
  });
  orgPicker.element.addEventListener("click", (e) => {
    if (e.target.closest(".gp-chip__remove")) state.org = null;
  });
  $("ga-org-slot").append(orgPicker.element);
  $("ga-filters").addEventListener("submit", (e) => {
    e.preventDefault();
    state.filters = readFilters();
    state.page = 1;
    load();
  });
  $("ga-reset").addEventListener("click", () => {
    $("ga-filters").reset();
    orgPicker.clear();
    state.org = null;
    state.filters = {};
    state.page = 1;
    load();
  });
  $("ga-pager").addEventListener("click", (e) => {
    const b = e.target.closest("[data-page]");
    if (!b) return;
    state.page += b.dataset.page === "next" ? 1 : -1;
    load();
  });
  if (!perms.has("assistant:read")) {
    $("ga-table").querySelector("tbody").replaceChildren(el("tr", {},
      el("td", { class: "data-table__empty", colspan: 8 }, "没有查看网格三员的权限")));
    return;
  }
  await load();
}

main().catch((err) => reportError(err));
