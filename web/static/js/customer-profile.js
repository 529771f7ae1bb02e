// 客户建档: the customer's profile form rendered from the active template's fields (type, required, options, regex,
// bounds, groups, units), completeness and missing fields shown, saved with PUT /api/v1/customers/{id}/profile;
// the API validates and its 422 errors (errors.data.<key>) appear under each field. A customer without a profile
// type first picks one (农户 / 商户 / 小微企业); the active template of that type is then filled.
import { api, el, formatDateTime, initLayout } from "./common.js";
import { PROFILE_LABELS, day, formDialog } from "./customer-ui.js";
import { failed, field, selectInput, toast } from "./grid-ui.js";
import { flattenErrors } from "./rule-builder.js";

const customerId = Number(document.body.dataset.customerId);
const $ = (id) => document.getElementById(id);
const form = $("pf-form");
const state = { profile: null, fields: [], profileType: null, isNew: false };

function inputFor(f, value) {
  const attrs = { name: f.key, id: `pf-${f.key}`, "aria-required": f.required ? "true" : null };
  if (f.type === "text") return el("textarea", { ...attrs, class: "cw-note", maxlength: f.max_length || 2000 }, value ?? "");
  if (f.type === "boolean") {
    return el("select", attrs, el("option", { value: "" }, "未填"),
      el("option", { value: "true", selected: value === true }, "是"), el("option", { value: "false", selected: value === false }, "否"));
  }
  if (f.type === "enum") {
    return el("select", attrs, el("option", { value: "" }, "请选择"),
      (f.options || []).map((o) => el("option", { value: o.value, selected: o.value === value }, o.label || o.value)));
  }
  if (f.type === "multi_enum") {
    const vals = new Set(value || []);
    return el("div", { class: "cw-checks", dataset: { name: f.key, multi: "true" }, id: `pf-${f.key}` },
      (f.options || []).map((o) => el("label", {}, el("input", { type: "checkbox", value: o.value, checked: vals.has(o.value) }),
        o.label || o.value)));
  }
  const type = { integer: "number", decimal: "number", date: "date", phone: "tel" }[f.type] || "text";
  return el("input", { ...attrs, type, value: value ?? "", step: f.type === "decimal" ? "any" : f.type === "integer" ? "1" : null,
    min: f.min ?? null, max: f.max ?? null, maxlength: f.max_length || null, autocomplete: "off",
    placeholder: f.regex ? `格式：${f.help || f.regex}` : f.help || null });
}

function readValue(f) {
  if (f.type === "multi_enum") {
    return [...form.querySelectorAll(`[data-name="${f.key}"] input:checked`)].map((i) => i.value);
  }
  const node = form.elements[f.key];
  const raw = node ? node.value.trim() : "";
  if (raw === "") return null;
  if (f.type === "boolean") return raw === "true";
  if (f.type === "integer") return Number.isInteger(Number(raw)) ? Number(raw) : raw;
  if (f.type === "decimal") return raw;
  return raw;
}

function renderForm() {
  const groups = new Map();
  for (const f of state.fields) {
    const g = f.group || "基本信息";
    if (!groups.has(g)) groups.set(g, []);
    groups.get(g).push(f);
  }
  const data = (state.profile && state.profile.data) || {};
  $("pf-fields").replaceChildren(...[...groups.entries()].map(([name, fs]) => el("fieldset", { class: "cw-pf-group" },
    el("legend", {}, name),
    el("div", { class: "cw-pf-grid" }, fs.map((f) => el("label", { class: "ge-field", dataset: { key: f.key } },
      el("span", { class: "ge-field__label" }, f.label || f.key, f.unit ? `（${f.unit}）` : "",
        f.required ? el("span", { class: "cw-req", title: "必填" }, "*") : null),
      inputFor(f, data[f.key]),
      f.help ? el("span", { class: "ge-field__hint" }, f.help) : null,
      el("span", { class: "ge-field__error", dataset: { for: f.key } })))))));
  form.hidden = false;
}

function renderHead() {
  const p = state.profile;
  const pct = Math.round((p ? p.completeness : 0) * 1000) / 10;
  $("pf-completeness").textContent = `${pct}%`;
  $("pf-completeness").dataset.value = String(p ? p.completeness : 0);
  $("pf-bar").style.width = `${pct}%`;
  $("pf-template").textContent = p ? `${PROFILE_LABELS[p.profile_type] || p.profile_type} · 模板 ${p.template_code} v${p.template_version}`
    + (p.template_is_active ? "" : "（非当前启用版本，保存后按新模板）") : "";
  const label = (key) => (state.fields.find((f) => f.key === key) || {}).label || key;
  const required = (p && p.missing_required) || [];
  $("pf-complete-badge").replaceChildren(p ? el("span", { class: `badge badge--${p.is_complete ? "ok" : "warn"}` },
    p.is_complete ? "必填项已齐" : `缺 ${required.length} 个必填项`) : "");
  $("pf-missing").textContent = p && p.missing.length ? `未填：${p.missing.map(label).join("、")}` : "";
  $("pf-saved").textContent = p && p.filled_at ? `第 ${p.revision} 版 · ${formatDateTime(p.filled_at)} 保存` : "";
}

function showErrors(err) {
  form.querySelectorAll(".ge-field__error").forEach((n) => { n.textContent = ""; });
  form.querySelectorAll(".ge-field.is-invalid").forEach((n) => n.classList.remove("is-invalid"));
  const box = form.querySelector(".ge-form__error");
  box.hidden = true;
  if (!err) return;
  const rest = [];
  for (const [path, msg] of Object.entries(flattenErrors(err.errors))) {
    const key = path.replace(/^data\./, "").split(".")[0];
    const slot = form.querySelector(`.ge-field__error[data-for="${CSS.escape(key)}"]`);
    if (slot) {
      slot.textContent = msg;
      slot.closest(".ge-field").classList.add("is-invalid");
    } else {
      rest.push(`${path}：${msg}`);
    }
  }
  if (err.status !== 422 || rest.length) {
    box.textContent = [err.message, ...rest].join("；");
    box.hidden = false;
  }
}

form.addEventListener("submit", async (e) => {
  e.preventDefault();
  const data = {};
  for (const f of state.fields) {
    const v = readValue(f);
    if (v !== null && !(Array.isArray(v) && !v.length)) data[f.key] = v;
  }
  const btn = $("pf-save");
  btn.disabled = true;
  try {
    const json = { data, source: "pc" };
    if (state.isNew) json.profile_type = state.profileType;
    state.profile = await api(`/api/v1/customers/${customerId}/profile`, { method: "PUT", json });
    state.isNew = false;
    state.fields = state.profile.fields;
    renderForm(); // from the saved data: phone fields now show the API's mask
    renderHead();
    toast(`已保存，完整度 ${Math.round(state.profile.completeness * 1000) / 10}%`, "success");
  } catch (err) {
    if (!err.redirecting) showErrors(err);
  } finally {
    btn.disabled = false;
  }
});

async function startNew(type) {
  try {
    const list = await api("/api/v1/profile-templates", { query: { profile_type: type } });
    const template = (list || []).find((t) => t.is_active);
    if (!template) {
      failed({ message: "该类型没有启用的建档模板" }, "无法建档");
      return;
    }
    state.profileType = type;
    state.isNew = true;
    state.fields = template.fields;
    state.profile = null;
    $("pf-type-card").hidden = true;
    $("pf-template").textContent = `${PROFILE_LABELS[type]} · 模板 ${template.code} v${template.version}（新建档案）`;
    renderForm();
  } catch (err) {
    failed(err, "加载建档模板失败");
  }
}

// ---------------------------------------------------------------- reminder events (GET/POST/DELETE …/events)

const EVENT_KINDS = { restock: "进货日", gaokao: "子女高考", birthday_custom: "生日（自定义/农历）", anniversary: "纪念日",
  other: "其他" };
const RECURRENCE = { once: "一次", yearly: "每年", monthly: "每月", weekly: "每周" };
const CALENDAR = { solar: "公历", lunar: "农历" };

async function loadEvents() {
  const tbl = $("pf-events-table");
  try {
    const body = await api(`/api/v1/customers/${customerId}/events`);
    tbl.tHead.replaceChildren(el("tr", {}, ["事件", "类型", "日期", "重复", "提前提醒", "备注", ""].map((t) => el("th", {}, t))));
    tbl.tBodies[0].replaceChildren(...(body.items.length ? body.items.map((e) => el("tr", { dataset: { id: e.id } },
      el("td", {}, e.title), el("td", {}, EVENT_KINDS[e.kind] || e.kind),
      el("td", { class: "nowrap" }, day(e.event_date), e.lunar ? el("span", { class: "cw-muted" },
        ` 农历${e.lunar.is_leap_month ? "闰" : ""}${e.lunar.month}月${e.lunar.day}日`) : null),
      el("td", {}, RECURRENCE[e.recurrence] || e.recurrence), el("td", {}, `${e.remind_days_before} 天`),
      el("td", {}, e.note || ""),
      el("td", { class: "actions" }, state.canEdit ? el("button", { type: "button", class: "link-btn link-btn--danger",
        onclick: () => removeEvent(e) }, "删除") : null)))
      : [el("tr", {}, el("td", { colspan: 7, class: "data-table__empty" }, "暂无提醒事件"))]));
  } catch (err) {
    failed(err, "加载提醒事件失败");
  }
}

async function removeEvent(e) {
  if (!window.confirm(`删除提醒事件“${e.title}”？`)) return;
  try {
    await api(`/api/v1/customers/${customerId}/events/${e.id}`, { method: "DELETE" });
    loadEvents();
  } catch (err) {
    failed(err, "删除失败");
  }
}

async function addEvent() {
  const created = await formDialog({
    id: "pf-event-dialog",
    title: "新增提醒事件",
    meta: "农历事件按农历月日每年重复；到期前按“提前提醒”天数生成客户经理的提醒。",
    okText: "保存",
    build: () => [
      field("类型", Object.assign(selectInput("kind", EVENT_KINDS, "restock"), { id: "pf-ev-kind" })),
      field("事件名称", el("input", { type: "text", name: "title", id: "pf-ev-title", maxlength: 100 })),
      field("日期（公历）", el("input", { type: "date", name: "event_date", id: "pf-ev-date" })),
      field("历法", Object.assign(selectInput("calendar", CALENDAR, "solar"), { id: "pf-ev-calendar" })),
      field("重复", Object.assign(selectInput("recurrence", RECURRENCE, "once"), { id: "pf-ev-recurrence" })),
      field("提前提醒（天）", el("input", { type: "number", name: "remind_days_before", id: "pf-ev-days", min: 0, max: 60, value: 3 })),
      field("备注", el("input", { type: "text", name: "note", id: "pf-ev-note", maxlength: 500 })),
    ],
    submit: (form) => {
      const f = form.elements;
      const days = f.remind_days_before.value.trim();
      return api(`/api/v1/customers/${customerId}/events`, { method: "POST", json: {
        kind: f.kind.value, title: f.title.value.trim(), event_date: f.event_date.value || null, calendar: f.calendar.value,
        recurrence: f.recurrence.value, remind_days_before: days === "" ? 3 : Number(days), note: f.note.value.trim() || null,
      } });
    },
  });
  if (created) {
    toast(`已新增提醒事件“${created.title}”`, "success");
    loadEvents();
  }
}
$("pf-add-event").addEventListener("click", addEvent);

const { me } = await initLayout();
state.canEdit = Boolean(me && (me.permissions || []).includes("customer:edit"));
$("pf-add-event").hidden = !state.canEdit;
$("pf-save").hidden = !state.canEdit;
loadEvents();
try {
  const customer = await api(`/api/v1/customers/${customerId}`);
  $("pf-customer").textContent = customer.name;
  document.title = `客户建档 · ${customer.name}`;
} catch (err) {
  failed(err, "加载客户失败");
}
try {
  state.profile = await api(`/api/v1/customers/${customerId}/profile`, { query: { or_blank: "true" } });
  state.fields = state.profile.fields;
  state.isNew = state.profile.revision === 0;
  state.profileType = state.profile.profile_type;
  renderHead();
  renderForm();
} catch (err) {
  if (err.status === 404 && err.code === "PROFILE_NOT_FOUND") {
    $("pf-type-card").hidden = false;
    $("pf-type-choices").replaceChildren(...Object.entries(PROFILE_LABELS).map(([v, t]) =>
      el("button", { type: "button", class: "btn btn--sm", dataset: { type: v }, onclick: () => startNew(v) }, t)));
  } else {
    failed(err, "加载档案失败");
  }
}
document.body.dataset.ready = "true";
