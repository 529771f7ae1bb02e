// 网格人员 section of the grid editor's details panel: current posts (网格长, 客户经理, 协管员) with duties, KPI
// targets and since-date, the history of ended posts, and — for users with grid:assign — 分配人员, 结束任职 and
// 移交 (optionally with the giver's customers), 编辑 of a current post (duties, KPI targets, start date), plus the
// 移交记录 list. Every rule (one current leader, who may be assigned, hand-over) is the API's
// (/api/v1/grids/{id}/assignments, /grid-assignments/{id}/end, /grids/{id}/handover, /handovers); this module
// shows what it answers, errors inline in the form.
import { api, el, formatDateTime, formatNumber } from "./common.js";
import {
  createPicker, errorText, field, requireFields, searchAssistants, searchUsers, selectInput, showFieldErrors,
} from "./grid-ui.js";

const POST_LABELS = { grid_leader: "网格长", account_manager: "客户经理", grid_assistant: "协管员" };
// Display names of the KPI metrics the demo and the docs use; any other metric shows its own key.
const KPI_LABELS = {
  households_profiled: "建档户数",
  deposits_wan: "存款（万元）",
  visits_monthly: "月走访",
  visits_assisted_monthly: "月协助走访",
};
const HANDOVER_PAGE = 5;

let showHistory = false; // kept while the user moves between grids

const kpiLabel = (key) => KPI_LABELS[key] || key;
const day = (value) => (value ? String(value).slice(0, 10) : "");
const minutes = (value) => formatDateTime(value).slice(0, 16);

/** The 网格人员 section for `grid`; it loads its data itself. ctx: {me, toast}. */
export function renderStaffSection(grid, ctx) {
  const perms = new Set((ctx.me && ctx.me.permissions) || []);
  const view = {
    grid,
    ctx,
    canAssign: perms.has("grid:assign"),
    canPickAssistants: perms.has("assistant:read"),
    rows: [],
    root: null,
    formSlot: el("div", { class: "gs__form-slot" }),
    posts: el("div", { class: "gs__posts", "aria-live": "polite" }, el("p", { class: "gs__note" }, "加载中…")),
    handovers: el("ul", { class: "gs-handovers" }),
  };
  const history = el("input", {
    type: "checkbox", id: "gs-history", checked: showHistory,
    onchange: (e) => {
      showHistory = e.target.checked;
      load(view);
    },
  });
  view.root = el(
    "section",
    { class: "gs gs-staff", id: "gs-staff", dataset: { state: "loading" }, "aria-label": "网格人员" },
    el("div", { class: "gs__head" },
      el("h3", { class: "gs__title" }, "网格人员"),
      el("label", { class: "gs__toggle", title: "同时显示已结束的任职及结束原因" }, history, "显示历史")),
    view.canAssign ? el("div", { class: "gs__actions" },
      el("button", { type: "button", class: "btn btn--sm", id: "gs-assign", onclick: () => openAssignForm(view) },
        "分配人员"),
      el("button", { type: "button", class: "btn btn--sm", id: "gs-handover", onclick: () => openHandoverForm(view) },
        "移交")) : null,
    view.formSlot,
    view.posts,
    el("div", { class: "gs__sub" }, el("h4", { class: "gs__subtitle" }, "移交记录"), view.handovers),
  );
  load(view);
  return view.root;
}

async function load(view) {
  view.root.dataset.state = "loading";
  const id = view.grid.id;
  const [staff, handovers] = await Promise.allSettled([
    api(`/api/v1/grids/${id}/assignments`, { query: { include_ended: showHistory } }),
    api("/api/v1/handovers", { query: { grid_id: id, page_size: HANDOVER_PAGE } }),
  ]);
  if (staff.status === "fulfilled") {
    view.rows = staff.value || [];
    renderPosts(view);
  } else {
    view.posts.replaceChildren(el("p", { class: "gs__note gs__note--error" }, errorText(staff.reason, "加载人员失败")));
  }
  if (handovers.status === "fulfilled") renderHandovers(view, handovers.value, false);
  else view.handovers.replaceChildren(el("li", { class: "gs__note" }, errorText(handovers.reason, "加载移交记录失败")));
  view.root.dataset.state = staff.status === "fulfilled" ? "ready" : "error";
}

// ---------------------------------------------------------------- posts

function renderPosts(view) {
  const groups = Object.keys(POST_LABELS).map((post) => {
    const rows = view.rows.filter((r) => r.post === post)
      .sort((a, b) => Number(b.is_current) - Number(a.is_current) || String(b.valid_from).localeCompare(a.valid_from));
    const current = rows.filter((r) => r.is_current).length;
    return el("div", { class: "gs-post", dataset: { post } },
      el("div", { class: "gs-post__label" }, POST_LABELS[post], el("span", { class: "gs-post__count" }, current)),
      el("ul", { class: "gs-post__list" }, rows.length ? rows.map((r) => holderItem(view, r))
        : el("li", { class: "gs__note" }, "暂无")));
  });
  view.posts.replaceChildren(...groups);
}

function holderItem(view, row) {
  const kpis = Object.entries(row.kpi_targets || {});
  const item = el(
    "li",
    { class: `gs-holder${row.is_current ? "" : " is-ended"}`, dataset: { id: row.id, userId: row.user_id || "" } },
    el("div", { class: "gs-holder__top" },
      el("span", { class: "gs-holder__name" }, row.name || "（未知）"),
      row.assistant_id ? el("span", { class: "gs-tag", title: "网格三员（可为非本行员工）" }, "三员") : null,
      el("span", { class: "gs-holder__since" }, row.is_current ? `自 ${day(row.valid_from)}`
        : `${day(row.valid_from)} 至 ${day(row.valid_to)}`),
      view.canAssign && row.is_current ? el("button", {
        type: "button", class: "link-btn gs-holder__edit", onclick: () => openEditForm(view, row, item),
      }, "编辑") : null,
      view.canAssign && row.is_current ? el("button", {
        type: "button", class: "link-btn gs-holder__end", onclick: () => openEndForm(view, row, item),
      }, "结束任职") : null),
    row.responsibilities ? el("p", { class: "gs-holder__duty" }, row.responsibilities) : null,
    kpis.length ? el("div", { class: "gs-kpis", "aria-label": "考核指标" }, kpis.map(([k, v]) => el(
      "span", { class: "gs-kpi", title: k }, kpiLabel(k), " ", el("b", {}, formatNumber(v, Number.isInteger(v) ? 0 : 2)),
    ))) : null,
    row.is_current ? null : el("p", { class: "gs-holder__ended" }, `结束原因：${row.ended_reason || "—"}`),
  );
  return item;
}

// ---------------------------------------------------------------- forms

function formShell(id, title, children, onSubmit, submitText, view) {
  const form = el("form", { class: "ge-form gs-form", id, novalidate: true },
    el("h4", { class: "gs-form__title" }, title),
    ...children,
    el("div", { class: "ge-form__error", role: "alert", hidden: true }),
    el("div", { class: "ge-form__actions" },
      el("button", { type: "submit", class: "btn btn--sm btn--primary" }, submitText),
      el("button", { type: "button", class: "btn btn--sm", onclick: () => form.remove() }, "取消")));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const button = form.querySelector('button[type="submit"]');
    if (button.disabled) return;
    button.disabled = true;
    showFieldErrors(form, null);
    try {
      await onSubmit(form);
    } catch (err) {
      showFieldErrors(form, err);
    } finally {
      button.disabled = false;
    }
  });
  if (view) view.formSlot.replaceChildren(form);
  return form;
}

function kpiRow(key = "", value = "") {
  const row = el("div", { class: "gs-kpi-row" },
    el("input", { type: "text", class: "gs-kpi-row__key", placeholder: "指标", list: "gs-kpi-names", value: key,
      maxlength: 64, "aria-label": "指标名" }),
    el("input", { type: "number", class: "gs-kpi-row__value", placeholder: "目标值", min: 0, step: "any", value,
      "aria-label": "目标值" }),
    el("button", { type: "button", class: "gs-kpi-row__remove", "aria-label": "删除该指标",
      onclick: () => row.remove() }, "×"));
  return row;
}

function kpiEditor(initial = {}) {
  const entries = Object.entries(initial || {});
  const rows = el("div", { class: "gs-kpi-rows" }, ...(entries.length ? entries.map(([k, v]) => kpiRow(k, v)) : [kpiRow()]));
  const names = el("datalist", { id: "gs-kpi-names" },
    Object.entries(KPI_LABELS).map(([k, label]) => el("option", { value: k }, label)));
  const box = el("div", { class: "gs-kpi-editor", dataset: { name: "kpi_targets" } }, rows, names,
    el("button", { type: "button", class: "link-btn", onclick: () => rows.append(kpiRow()) }, "+ 添加指标"));
  box.read = () => {
    const out = {};
    rows.querySelectorAll(".gs-kpi-row").forEach((r) => {
      const key = r.querySelector(".gs-kpi-row__key").value.trim();
      const raw = r.querySelector(".gs-kpi-row__value").value;
      if (!key && raw === "") return;
      out[key] = raw === "" ? null : Number(raw);
    });
    return out;
  };
  return box;
}

function openAssignForm(view) {
  const post = selectInput("post", POST_LABELS, "account_manager");
  post.id = "gs-assign-post";
  const holderKind = el("div", { class: "gs-seg", role: "radiogroup", "aria-label": "人员类型" });
  const slot = el("div", { class: "gs-picker-slot" });
  const duty = el("textarea", { name: "responsibilities", rows: 2, maxlength: 2000, placeholder: "如：负责网格内居民建档、走访" });
  const validFrom = el("input", { type: "date", name: "valid_from" });
  const kpis = kpiEditor();
  let picker = null;
  let kind = "user";
  const mountPicker = () => {
    const assistants = post.value === "grid_assistant" && kind === "assistant";
    const role = post.value === "account_manager" ? "account_manager" : undefined;
    picker = createPicker({
      name: assistants ? "assistant_id" : "user_id",
      id: "gs-assign-person",
      placeholder: assistants ? "搜索网格三员姓名 / 电话" : "搜索姓名 / 用户名 / 工号",
      search: assistants ? searchAssistants() : searchUsers(role),
    });
    slot.replaceChildren(field(assistants ? "网格三员" : "人员", picker.element));
  };
  const renderKinds = () => {
    holderKind.hidden = !(post.value === "grid_assistant" && view.canPickAssistants);
    if (holderKind.hidden) kind = "user";
    holderKind.replaceChildren(...[["assistant", "网格三员"], ["user", "系统用户"]].map(([k, text]) => el("button", {
      type: "button", class: `gs-seg__btn${kind === k ? " is-on" : ""}`, role: "radio", "aria-checked": String(kind === k),
      onclick: () => {
        kind = k;
        renderKinds();
        mountPicker();
      },
    }, text)));
  };
  post.addEventListener("change", () => {
    kind = post.value === "grid_assistant" && view.canPickAssistants ? "assistant" : "user";
    renderKinds();
    mountPicker();
  });
  renderKinds();
  mountPicker();
  formShell("gs-assign-form", "分配人员", [
    field("岗位", post), holderKind, slot,
    field("岗位职责", duty),
    field("考核指标", kpis, "指标名 + 目标值（非负数），可多项"),
    field("起始日期", validFrom, "留空为今天"),
  ], async (form) => {
    const person = picker.value;
    if (!person && !requireFields(form, { [picker.element.dataset.name]: "请选择人员" })) return;
    const payload = { post: post.value, responsibilities: duty.value.trim() || null, kpi_targets: kpis.read() };
    if (person) payload[person.assistant ? "assistant_id" : "user_id"] = person.id;
    if (validFrom.value) payload.valid_from = validFrom.value;
    const created = await api(`/api/v1/grids/${view.grid.id}/assignments`, { method: "POST", json: payload });
    view.ctx.toast(`已分配 ${created.name}为${created.post_label}`, "success");
    view.formSlot.replaceChildren();
    await load(view);
  }, "保存", view);
}

/** 编辑 a current post: duties, KPI targets and the start of its effective period (PATCH /grid-assignments/{id}). */
function openEditForm(view, row, item) {
  item.querySelector(".gs-form")?.remove();
  const duty = el("textarea", { name: "responsibilities", rows: 3, maxlength: 2000 });
  duty.value = row.responsibilities || "";
  const kpis = kpiEditor(row.kpi_targets);
  const validFrom = el("input", { type: "date", name: "valid_from", value: day(row.valid_from), required: true });
  const form = formShell(`gs-edit-${row.id}`, `编辑 ${row.name} 的${POST_LABELS[row.post] || row.post_label}任职`, [
    field("岗位职责", duty),
    field("考核指标", kpis, "指标名 + 目标值（非负数）；删除一行即取消该指标"),
    field("起始日期", validFrom, "任职有效期自该日起，至结束任职为止"),
  ], async (form) => {
    if (!requireFields(form, validFrom.value ? {} : { valid_from: "请填写起始日期" })) return;
    const saved = await api(`/api/v1/grid-assignments/${row.id}`, { method: "PATCH", json: {
      responsibilities: duty.value.trim() || null, kpi_targets: kpis.read(), valid_from: validFrom.value } });
    view.ctx.toast(`已保存 ${saved.name} 的任职信息`, "success");
    await load(view);
  }, "保存");
  form.classList.add("gs-form--inline");
  item.append(form);
  duty.focus();
}

function openEndForm(view, row, item) {
  item.querySelector(".gs-form")?.remove();
  const reason = el("input", { type: "text", name: "reason", maxlength: 400, placeholder: "如：岗位调整、离职" });
  const form = formShell(`gs-end-${row.id}`, `结束 ${row.name} 的${POST_LABELS[row.post] || row.post_label}任职`,
    [field("结束原因", reason)], async (form) => {
      if (!requireFields(form, reason.value.trim() ? {} : { reason: "请填写结束原因" })) return;
      await api(`/api/v1/grid-assignments/${row.id}/end`, { method: "POST", json: { reason: reason.value.trim() } });
      view.ctx.toast(`已结束 ${row.name} 的任职`, "success");
      await load(view);
    }, "确认结束");
  form.classList.add("gs-form--inline");
  item.append(form);
  reason.focus();
}

function openHandoverForm(view) {
  const holders = new Map();
  for (const r of view.rows) {
    if (!r.is_current || !r.user_id) continue;
    const entry = holders.get(r.user_id) || { name: r.name, posts: [] };
    entry.posts.push(POST_LABELS[r.post] || r.post_label);
    holders.set(r.user_id, entry);
  }
  const from = el("select", { name: "from_user_id", id: "gs-handover-from" },
    el("option", { value: "" }, holders.size ? "选择移交人" : "本网格暂无在岗人员"),
    [...holders].map(([id, h]) => el("option", { value: id }, `${h.name}（${h.posts.join("、")}）`)));
  const to = createPicker({ name: "to_user_id", id: "gs-handover-to", search: searchUsers() });
  const reason = el("textarea", { name: "reason", rows: 2, maxlength: 400, placeholder: "必填，如：岗位调整" });
  const includeCustomers = el("input", { type: "checkbox", name: "include_customers" });
  const customers = el("label", { class: "gs-check", title: "移交人在本网格（含下级网格）管户的客户一并转给接收人" },
    includeCustomers, "同时移交管户客户", el("span", { class: "gs-check__hint" }, "（本网格及下级网格内由移交人管户的客户）"));
  formShell("gs-handover-form", "移交网格", [
    field("移交人", from, "移交其在本网格的全部在岗岗位"),
    field("接收人", to.element),
    field("移交原因", reason),
    customers,
  ], async (form) => {
    const missing = {};
    if (!from.value) missing.from_user_id = "请选择移交人";
    if (!to.value) missing.to_user_id = "请选择接收人";
    if (!reason.value.trim()) missing.reason = "请填写移交原因";
    if (!requireFields(form, missing)) return;
    const body = { from_user_id: Number(from.value) || null, to_user_id: to.value ? to.value.id : null,
      reason: reason.value.trim(), include_customers: includeCustomers.checked };
    const done = await api(`/api/v1/grids/${view.grid.id}/handover`, { method: "POST", json: body });
    const moved = done.include_customers ? `、${done.moved_customers} 户客户` : "";
    view.ctx.toast(`已移交：${done.from_user_name} → ${done.to_user_name}（${done.moved_assignments} 个岗位${moved}）`,
      "success");
    view.formSlot.replaceChildren();
    await load(view);
  }, "确认移交", view);
  from.focus();
}

// ---------------------------------------------------------------- 移交记录

function handoverItem(h) {
  return el("li", { class: "gs-handover", dataset: { id: h.id } },
    el("div", { class: "gs-handover__top" },
      el("span", { class: "gs-handover__who" }, `${h.from_user_name || h.from_user_id} → ${h.to_user_name || h.to_user_id}`),
      el("span", { class: "gs-handover__time" }, minutes(h.created_at))),
    el("div", { class: "gs-handover__meta" }, `原因：${h.reason}`,
      ` · 岗位 ${h.moved_assignments} 个`, h.include_customers ? ` · 客户 ${h.moved_customers} 户` : ""));
}

function renderHandovers(view, page, append) {
  view.handovers.querySelector(".gs-handovers__more")?.remove();
  if (!append) view.handovers.replaceChildren();
  view.handovers.append(...(page.items || []).map(handoverItem));
  const shown = view.handovers.querySelectorAll(".gs-handover").length;
  if (!shown) view.handovers.append(el("li", { class: "gs__note" }, "暂无移交记录"));
  if (page.total > shown) {
    view.handovers.append(el("li", { class: "gs-handovers__more" }, el("button", {
      type: "button", class: "link-btn",
      onclick: async () => {
        try {
          const next = await api("/api/v1/handovers", {
            query: { grid_id: view.grid.id, page_size: HANDOVER_PAGE, page: Math.floor(shown / HANDOVER_PAGE) + 1 },
          });
          renderHandovers(view, next, true);
        } catch (err) {
          view.ctx.toast(errorText(err, "加载移交记录失败"), "error");
        }
      },
    }, `更多（${shown} / ${page.total}）`)));
  }
}
