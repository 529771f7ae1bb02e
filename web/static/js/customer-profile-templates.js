// 建档模板: the bank's profile templates (农户 / 商户 / 小微企业) with version and active flag, a field editor (add,
// remove, move up/down; saving makes a new version through PUT /profile-templates/{id}; the API's 422 messages per
// field position show under the offending row) and the version history (read-only views of older versions).
// Only holders of profile_template:edit edit; everyone else with profile_template:read sees read-only tables.
import { ApiError, api, el, formatDateTime, initLayout } from "./common.js";
import { PROFILE_LABELS } from "./customer-ui.js";
import { failed, toast } from "./grid-ui.js";

const listSection = document.getElementById("pt-list");
const listBody = document.querySelector("#pt-table tbody");
const editor = document.getElementById("pt-editor");
const fieldsBody = document.querySelector("#pt-fields tbody");
const editorError = document.getElementById("pt-editor-error");
const addBtn = document.getElementById("pt-add");
const saveBtn = document.getElementById("pt-save");
const savedBox = document.getElementById("pt-saved");
const versions = document.getElementById("pt-versions");
const versionsBody = document.querySelector("#pt-versions-table tbody");

const TYPE_LABELS = {
  string: "文本", text: "长文本", integer: "整数", decimal: "小数", date: "日期", boolean: "是/否",
  enum: "单选", multi_enum: "多选", phone: "电话",
};
const TYPE_ORDER = ["farmer", "merchant", "micro_enterprise"];
const FIELD_KEYS = ["key", "label", "type", "required", "options", "regex", "min", "max", "max_length", "group", "unit",
  "weight", "help"];

const state = { canEdit: false, template: null, editing: false };

const badge = (t) => (t.is_active ? el("span", { class: "pt-badge pt-badge--on" }, "启用中")
  : el("span", { class: "pt-badge" }, t.is_current ? "已停用" : "历史版本"));

// ---------------------------------------------------------------- list

async function loadList() {
  listSection.dataset.state = "loading";
  const items = await api("/api/v1/profile-templates");
  items.sort((a, b) => TYPE_ORDER.indexOf(a.profile_type) - TYPE_ORDER.indexOf(b.profile_type)
    || Number(b.is_active) - Number(a.is_active) || a.code.localeCompare(b.code));
  listBody.replaceChildren(...(items.length ? items.map((t) => el("tr", {
    dataset: { id: String(t.id), code: t.code, type: t.profile_type, version: String(t.version), active: String(t.is_active) },
  },
  el("td", {}, PROFILE_LABELS[t.profile_type] || t.profile_type), el("td", {}, t.name), el("td", {}, t.code),
  el("td", { class: "pt-version" }, `v${t.version}`), el("td", {}, badge(t)), el("td", {}, String((t.fields || []).length)),
  el("td", {}, formatDateTime(t.created_at)),
  el("td", { class: "pt-row-btns" },
    state.canEdit && t.is_current ? el("button", { type: "button", class: "btn btn--sm btn--primary pt-edit" }, "编辑字段")
      : el("button", { type: "button", class: "btn btn--sm pt-view" }, "查看字段"), " ",
    el("button", { type: "button", class: "btn btn--sm pt-history" }, "版本历史"))))
    : [el("tr", {}, el("td", { class: "data-table__empty", colspan: 8 }, "暂无模板"))]));
  listSection.dataset.state = "ready";
  return items;
}

// ---------------------------------------------------------------- editor

function optionsText(options) {
  return (options || []).map((o) => `${o.value}=${o.label}`).join("\n");
}

function parseOptions(text) {
  const lines = text.split("\n").map((s) => s.trim()).filter(Boolean);
  if (!lines.length) return null;
  return lines.map((line) => {
    const at = line.indexOf("=");
    return at < 0 ? { value: line, label: line } : { value: line.slice(0, at).trim(), label: line.slice(at + 1).trim() };
  });
}

function fieldRow(field) {
  const ro = !state.editing;
  const text = (name, value, extra = {}) => el("input", { type: "text", name, value: value ?? "", disabled: ro, ...extra });
  const type = el("select", { name: "type", disabled: ro },
    ...Object.entries(TYPE_LABELS).map(([v, l]) => el("option", { value: v, selected: v === field.type }, `${l} ${v}`)));
  const row = el("tr", { class: "pt-row" },
    el("td", { class: "pt-index" }),
    el("td", {}, text("key", field.key)),
    el("td", {}, text("label", field.label)),
    el("td", {}, type),
    el("td", {}, el("input", { type: "checkbox", name: "required", checked: Boolean(field.required), disabled: ro })),
    el("td", {}, el("textarea", { name: "options", rows: Math.min(4, Math.max(1, (field.options || []).length)), disabled: ro },
      optionsText(field.options))),
    el("td", {}, text("regex", field.regex)),
    el("td", {}, text("min", field.min, { class: "pt-narrow" })),
    el("td", {}, text("max", field.max, { class: "pt-narrow" })),
    el("td", {}, text("group", field.group, { class: "pt-narrow" })),
    el("td", {}, text("weight", field.weight, { class: "pt-narrow" })),
    el("td", { class: "pt-row-btns" }, ro ? null : [
      el("button", { type: "button", class: "btn btn--sm pt-up", title: "上移" }, "↑"),
      el("button", { type: "button", class: "btn btn--sm pt-down", title: "下移" }, "↓"),
      el("button", { type: "button", class: "btn btn--sm btn--danger pt-remove", title: "删除" }, "删除")]));
  row.base = field;
  return row;
}

function renumber() {
  fieldsBody.querySelectorAll("tr.pt-err").forEach((r) => r.remove());
  fieldsBody.querySelectorAll("tr.pt-row").forEach((r, i) => {
    r.dataset.index = String(i);
    r.dataset.key = r.querySelector('[name="key"]').value.trim();
    r.classList.remove("pt-row--error");
    r.querySelector(".pt-index").textContent = String(i + 1);
  });
}

function numberOrRaw(value) {
  const v = value.trim();
  if (v === "") return null;
  const n = Number(v);
  return Number.isFinite(n) ? n : v; // non-numbers go to the API as they are and come back as a field error
}

function readFields() {
  return [...fieldsBody.querySelectorAll("tr.pt-row")].map((r) => {
    const get = (name) => r.querySelector(`[name="${name}"]`);
    const out = {};
    for (const k of FIELD_KEYS) if (r.base && r.base[k] !== undefined && r.base[k] !== null) out[k] = r.base[k];
    const type = get("type").value;
    Object.assign(out, {
      key: get("key").value.trim(), label: get("label").value.trim(), type, required: get("required").checked,
      options: ["enum", "multi_enum"].includes(type) ? parseOptions(get("options").value) : null,
      regex: get("regex").value.trim() || null, min: numberOrRaw(get("min").value), max: numberOrRaw(get("max").value),
      group: get("group").value.trim() || null, weight: numberOrRaw(get("weight").value),
    });
    if (!["string", "text"].includes(type)) delete out.max_length;
    for (const k of Object.keys(out)) if (out[k] === null) delete out[k];
    return out;
  });
}

function showErrors(err) {
  renumber();
  const perField = err instanceof ApiError && err.errors && err.errors.fields;
  if (perField && typeof perField === "object" && !Array.isArray(perField)) {
    const rows = [...fieldsBody.querySelectorAll("tr.pt-row")];
    for (const [index, messages] of Object.entries(perField)) {
      const row = rows[Number(index)];
      if (!row) continue;
      row.classList.add("pt-row--error");
      row.after(el("tr", { class: "pt-err", dataset: { index } },
        el("td", { colspan: 12 }, `第 ${Number(index) + 1} 行：${[].concat(messages).join("；")}`)));
    }
  }
  const text = err instanceof ApiError ? err.message + (Array.isArray(perField) ? `：${perField.join("；")}` : "")
    : "网络异常，请稍后重试";
  editorError.textContent = `保存失败：${text}`;
  editorError.hidden = false;
}

function openEditor(template, { editing }) {
  state.template = template;
  state.editing = editing;
  editor.dataset.id = String(template.id);
  editor.dataset.mode = editing ? "edit" : "view";
  document.getElementById("pt-editor-title").textContent =
    `${editing ? "编辑" : "查看"}：${template.name}（${PROFILE_LABELS[template.profile_type] || template.profile_type}，v${template.version}）`;
  document.getElementById("pt-editor-meta").textContent = editing
    ? "修改后“保存为新版本”：生成 v" + (template.version + 1) + "，旧版本保留供已建档客户查看。"
    : `只读${template.is_current ? "" : "（历史版本）"}；编码 ${template.code}，创建于 ${formatDateTime(template.created_at)}`;
  editorError.hidden = true;
  savedBox.hidden = true;
  addBtn.hidden = saveBtn.hidden = !editing;
  fieldsBody.replaceChildren(...(template.fields || []).map(fieldRow));
  renumber();
  editor.hidden = false;
  editor.scrollIntoView({ block: "start" });
}

async function save() {
  const t = state.template;
  saveBtn.disabled = true;
  editorError.hidden = true;
  try {
    const saved = await api(`/api/v1/profile-templates/${t.id}`, { method: "PUT", json: { fields: readFields() } });
    toast(`已保存为 v${saved.version}`, "success");
    await loadList();
    openEditor(saved, { editing: true });
    savedBox.textContent = `已保存为新版本 v${saved.version}${saved.is_active ? "（启用中）" : ""}`;
    savedBox.dataset.version = String(saved.version);
    savedBox.hidden = false;
    if (!versions.hidden) await showVersions(saved.code);
  } catch (err) {
    if (err && err.redirecting) return;
    showErrors(err);
  } finally {
    saveBtn.disabled = false;
  }
}

// ---------------------------------------------------------------- versions

async function showVersions(code) {
  const items = await api("/api/v1/profile-templates", { query: { code, all_versions: true } });
  items.sort((a, b) => b.version - a.version);
  document.getElementById("pt-versions-title").textContent = `版本历史：${code}`;
  versions.dataset.code = code;
  versionsBody.replaceChildren(...items.map((t) => el("tr", { dataset: { id: String(t.id), version: String(t.version) } },
    el("td", {}, `v${t.version}`), el("td", {}, t.name), el("td", {}, badge(t)),
    el("td", {}, String((t.fields || []).length)), el("td", {}, formatDateTime(t.created_at)),
    el("td", {}, el("button", { type: "button", class: "btn btn--sm pt-version-view" }, "查看")))));
  versions.hidden = false;
}

// ---------------------------------------------------------------- wiring

listBody.addEventListener("click", async (e) => {
  const row = e.target.closest("tr[data-id]");
  if (!row) return;
  try {
    if (e.target.closest(".pt-history")) await showVersions(row.dataset.code);
    else if (e.target.closest(".pt-edit, .pt-view")) {
      const t = await api(`/api/v1/profile-templates/${row.dataset.id}`);
      openEditor(t, { editing: state.canEdit && Boolean(e.target.closest(".pt-edit")) && t.is_current });
    }
  } catch (err) {
    failed(err, "加载模板");
  }
});
versionsBody.addEventListener("click", async (e) => {
  const row = e.target.closest("tr[data-id]");
  if (!row || !e.target.closest(".pt-version-view")) return;
  try {
    openEditor(await api(`/api/v1/profile-templates/${row.dataset.id}`), { editing: false });
  } catch (err) {
    failed(err, "加载版本");
  }
});
fieldsBody.addEventListener("click", (e) => {
  const row = e.target.closest("tr.pt-row");
  if (!row || !state.editing) return;
  if (e.target.closest(".pt-remove")) row.remove();
  else if (e.target.closest(".pt-up") && row.previousElementSibling) {
    let prev = row.previousElementSibling;
    while (prev && !prev.classList.contains("pt-row")) prev = prev.previousElementSibling;
    if (prev) prev.before(row);
  } else if (e.target.closest(".pt-down")) {
    let next = row.nextElementSibling;
    while (next && !next.classList.contains("pt-row")) next = next.nextElementSibling;
    if (next) next.after(row);
  } else return;
  renumber();
});
addBtn.addEventListener("click", () => {
  const row = fieldRow({ key: "", label: "", type: "string", required: false });
  fieldsBody.append(row);
  renumber();
  row.querySelector('[name="key"]').focus();
});
saveBtn.addEventListener("click", save);
document.getElementById("pt-close").addEventListener("click", () => {
  editor.hidden = true;
  state.template = null;
});

const { me } = await initLayout();
state.canEdit = new Set((me && me.permissions) || []).has("profile_template:edit");
listSection.dataset.canEdit = String(state.canEdit);
document.getElementById("pt-mode").textContent = state.canEdit
  ? "可编辑：修改字段后保存为新版本；同一建档类型同时只有一个启用模板。"
  : "只读：仅总行管理员可维护建档模板。";
await loadList().catch((err) => failed(err, "加载建档模板"));
