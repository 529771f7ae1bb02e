// 标签管理: tags I may see with the number of customers in my scope carrying each, create a manual tag or a rule tag
// with a rule builder (field / operator / value rows, all or any), the API's field-level 422 errors shown next to
// the offending row, a count preview (POST /api/v1/tags/rule-preview) and a recompute button that follows the RQ
// job (GET /api/v1/jobs/{id}) to its added / removed figures.
import { api, ApiError, el, formatDateTime, formatNumber, initLayout } from "./common.js";
import { errorText, failed, field, selectInput, showFieldErrors, toast } from "./grid-ui.js";
import { createRuleBuilder, flattenErrors } from "./rule-builder.js";

const KIND = { manual: "手工标签", rule: "规则标签" };
const VISIBILITY = { private: "私有", public: "公开" };
const $ = (id) => document.getElementById(id);
const form = $("tg-form");
const state = { perms: new Set(), kind: "rule", fields: [], scopeAll: false };
// bank-wide tags (org_id null) are edited by scope-all administrators only (the API answers 403 otherwise)
const writable = (t) => state.perms.has("tag:edit") && (t.org_id != null || state.scopeAll);
let rules = null;

const inputs = {
  code: el("input", { type: "text", name: "code", id: "tg-code", maxlength: 40, placeholder: "如 young_rich" }),
  name: el("input", { type: "text", name: "name", id: "tg-name", maxlength: 50 }),
  category: el("input", { type: "text", name: "category", id: "tg-category", maxlength: 32, value: "other" }),
  color: el("input", { type: "color", name: "color", id: "tg-color", value: "#1677ff" }),
  visibility: selectInput("visibility", VISIBILITY, "private"),
  description: el("input", { type: "text", name: "description", id: "tg-description", maxlength: 500 }),
};
$("tg-form-fields").replaceChildren(field("标签编码", inputs.code, "小写字母开头，字母数字下划线"), field("标签名称", inputs.name),
  field("分类", inputs.category), field("颜色", inputs.color), field("可见范围", inputs.visibility), field("说明", inputs.description));

async function loadList() {
  const f = $("tg-filters").elements;
  const table = $("tg-table");
  try {
    const body = await api("/api/v1/tags", { query: { q: f.q.value.trim(), kind: f.kind.value, page_size: 100 } });
    table.tHead.replaceChildren(el("tr", {}, ["标签", "编码", "类型", "分类", "可见范围", "客户数", "最近计算", "操作"]
      .map((t, i) => el("th", { class: i === 5 ? "num" : null }, t))));
    table.tBodies[0].replaceChildren(...(body.items.length ? body.items.map(renderRow)
      : [el("tr", {}, el("td", { colspan: 8, class: "data-table__empty" }, "暂无标签"))]));
    $("tg-pager").hidden = false;
    $("tg-total").textContent = `共 ${formatNumber(body.total)} 个标签`;
  } catch (err) {
    failed(err, "加载标签失败");
  }
}

function computedText(t) {
  if (t.kind !== "rule") return "—";
  return t.computed_at ? `${formatDateTime(t.computed_at)}（+${t.computed_added ?? 0} / -${t.computed_removed ?? 0}）` : "未计算";
}

function renderRow(t) {
  const progress = el("span", { class: "cw-progress", id: `tg-job-${t.id}` });
  return el("tr", { dataset: { id: t.id, code: t.code } },
    el("td", {}, el("span", { class: "badge", style: `background:${t.color};color:#fff` }, t.name)),
    el("td", { class: "mono" }, t.code),
    el("td", { class: "nowrap" }, KIND[t.kind] || t.kind),
    el("td", {}, t.category),
    el("td", {}, t.org_id == null ? "全行" : VISIBILITY[t.visibility] || t.visibility),
    el("td", { class: "num tg-count" }, formatNumber(t.customer_count)),
    el("td", { class: "nowrap tg-computed" }, computedText(t)),
    el("td", { class: "actions" },
      t.kind === "rule" && writable(t)
        ? el("button", { type: "button", class: "link-btn tg-recompute", onclick: (e) => recompute(t, e.target, progress) }, "重新计算") : null,
      writable(t)
        ? el("button", { type: "button", class: "link-btn link-btn--danger tg-delete", onclick: () => removeTag(t) }, "删除") : null,
      progress));
}

async function removeTag(tag) {
  if (!window.confirm(`删除标签“${tag.name}”？已打上该标签的客户将一并去除该标签。`)) return;
  try {
    await api(`/api/v1/tags/${tag.id}`, { method: "DELETE" });
    toast(`已删除标签“${tag.name}”`, "success");
    loadList();
  } catch (err) {
    failed(err, "删除失败"); // e.g. 409 TAG_IN_USE: a rule tag or a customer group refers to it; 403 not writable
  }
}

async function recompute(tag, button, progress) {
  button.disabled = true;
  const bar = el("div", { class: "cw-bar" }, el("i", { style: "width:10%" }));
  const text = el("span", { class: "cw-muted" }, "排队中…");
  progress.replaceChildren(bar, text);
  try {
    const job = await api(`/api/v1/tags/${tag.id}/recompute`, { method: "POST" });
    for (let i = 0; i < 240; i += 1) {
      const j = await api(`/api/v1/jobs/${job.id}`);
      const status = j.status;
      if (status === "finished") {
        const r = j.result || {};
        bar.firstChild.style.width = "100%";
        bar.classList.add("cw-bar--ok");
        text.textContent = `完成：新增 ${formatNumber(r.added ?? 0)}，移除 ${formatNumber(r.removed ?? 0)}`;
        toast(`“${tag.name}”已重新计算`, "success");
        const fresh = await api(`/api/v1/tags/${tag.id}`); // the row's count and last-run figures
        const row = progress.closest("tr");
        row.querySelector(".tg-count").textContent = formatNumber(fresh.customer_count);
        row.querySelector(".tg-computed").textContent = computedText(fresh);
        progress.dataset.done = "true";
        return;
      }
      if (status === "failed" || status === "stopped" || status === "canceled") throw new Error(`任务${status}`);
      bar.firstChild.style.width = status === "started" ? "60%" : "25%";
      text.textContent = status === "started" ? "计算中…" : "排队中…";
      await new Promise((r) => setTimeout(r, 500));
    }
    text.textContent = "仍在计算，请稍后刷新";
  } catch (err) {
    text.textContent = errorText(err, "重新计算失败") || String(err.message || err);
  } finally {
    button.disabled = false;
  }
}

function openEditor(kind) {
  state.kind = kind;
  $("tg-editor-title").textContent = kind === "rule" ? "新建规则标签" : "新建手工标签";
  $("tg-rule-part").hidden = kind !== "rule";
  form.reset();
  showFieldErrors(form, null);
  rules.set(null);
  if (kind === "rule") rules.addRow();
  $("tg-preview-count").textContent = "";
  $("tg-editor").hidden = false;
  $("tg-list").hidden = true;
}

function closeEditor() {
  $("tg-editor").hidden = true;
  $("tg-list").hidden = false;
  loadList();
}

/** 422 errors: rule paths go next to their rows, the rest under the form fields. */
function showErrors(err) {
  const flat = flattenErrors(err.errors);
  const rest = rules.showErrors(flat, "rule");
  showFieldErrors(form, err instanceof ApiError ? new ApiError(err.status, { ...err.body, errors: rest }) : err);
}

async function preview() {
  const out = $("tg-preview-count");
  out.textContent = "计算中…";
  try {
    const body = await api("/api/v1/tags/rule-preview", { method: "POST", json: { rule: rules.value() || { all: [] } } });
    rules.showErrors({}, "rule");
    showFieldErrors(form, null);
    out.textContent = `本人范围内命中 ${formatNumber(body.count)} 户`;
    out.dataset.count = String(body.count);
  } catch (err) {
    out.textContent = "";
    if (!err.redirecting) showErrors(err);
  }
}

form.addEventListener("submit", async (e) => {
  e.preventDefault();
  const payload = { code: inputs.code.value.trim(), name: inputs.name.value.trim(), category: inputs.category.value.trim() || "other",
    color: inputs.color.value, visibility: inputs.visibility.value, description: inputs.description.value.trim() || null,
    kind: state.kind };
  if (state.kind === "rule") payload.rule = rules.value() || { all: [] };
  try {
    const tag = await api("/api/v1/tags", { method: "POST", json: payload });
    toast(`已创建标签“${tag.name}”${tag.kind === "rule" ? "，可点击“重新计算”打标" : ""}`, "success");
    closeEditor();
  } catch (err) {
    if (!err.redirecting) showErrors(err);
  }
});
$("tg-filters").addEventListener("submit", (e) => { e.preventDefault(); loadList(); });
$("tg-new-manual").addEventListener("click", () => openEditor("manual"));
$("tg-new-rule").addEventListener("click", () => openEditor("rule"));
$("tg-cancel").addEventListener("click", closeEditor);
$("tg-add-rule").addEventListener("click", () => rules.addRow());
$("tg-preview").addEventListener("click", preview);

const { me } = await initLayout();
state.perms = new Set((me && me.permissions) || []);
state.scopeAll = Boolean(me && me.data_scope === "all");
$("tg-new-manual").hidden = $("tg-new-rule").hidden = !state.perms.has("tag:edit");
try {
  state.fields = await api("/api/v1/tags/fields");
  rules = createRuleBuilder({ fields: state.fields, join: $("tg-rule-join") });
  $("tg-rules").replaceChildren(rules.element);
} catch (err) {
  failed(err, "加载规则字段失败");
}
await loadList();
document.body.dataset.ready = "true";
