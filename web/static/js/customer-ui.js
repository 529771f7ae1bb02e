// Shared pieces of the 客户管理 pages: labels, money formatting, the audited reveal dialog and a form dialog.
// Rules (scope, who may reveal, what may be deleted) are the API's; these helpers only show its answers.
import { api, el, formatNumber } from "./common.js";
import { errorText, field, showFieldErrors } from "./grid-ui.js";

export const KIND_LABELS = { person: "个人", company: "对公" };
export const CATEGORY_LABELS = { formal: "正式客户", potential: "潜在客户" };
export const PROFILE_LABELS = { farmer: "农户", merchant: "商户", micro_enterprise: "小微企业" };
export const STATUS_LABELS = { active: "正常", closed: "已销户", merged: "已合并" };
export const SOURCE_LABELS = {
  geocoded: "地址解析", corrected: "地图纠偏", gps: "走访定位", imported: "导入坐标",
};
export const FIELD_LABELS = { id_number: "身份证号", uscc: "统一社会信用代码", phone: "手机号" };

export const label = (labels, value) => (value == null || value === "" ? "" : labels[value] || value);

/** Yuan as "1,234.56 元", or "—" when unknown. */
export function money(value) {
  if (value === undefined || value === null || value === "") return "—";
  return `${formatNumber(value, 2)} 元`;
}

/** Yuan as "12.35 万" for compact tables. */
export function wan(value) {
  if (value === undefined || value === null || value === "") return "—";
  return `${formatNumber(Number(value) / 10000, 2)} 万`;
}

export const day = (value) => (value ? String(value).slice(0, 10) : "");

/**
 * A modal form: `build(form)` returns the fields; `submit(form)` calls the API and resolves to the result
 * (the dialog closes) or throws (422 field errors appear under the fields, others in the error box).
 */
export function formDialog({ title, meta, okText = "确定", danger = false, build, submit, id }) {
  return new Promise((resolve) => {
    const errorBox = el("div", { class: "ge-form__error", hidden: true, role: "alert" });
    const ok = el("button", { type: "submit", class: `btn btn--sm ${danger ? "btn--danger" : "btn--primary"}` }, okText);
    const cancel = el("button", { type: "button", class: "btn btn--sm", value: "cancel" }, "取消");
    const form = el("form", { class: "ge-form", method: "dialog", novalidate: true });
    const dialog = el("dialog", { class: "ge-dialog cu-dialog", id }, form);
    form.append(el("h3", { class: "ge-form__title" }, title), meta ? el("p", { class: "ge-form__meta" }, meta) : null,
      errorBox, ...[].concat(build(form)), el("div", { class: "ge-dialog__actions" }, cancel, ok));
    let result = null;
    cancel.addEventListener("click", () => dialog.close());
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      ok.disabled = true;
      try {
        result = await submit(form);
        if (result !== undefined) dialog.close();
      } catch (err) {
        if (!err || !err.redirecting) showFieldErrors(form, err);
      } finally {
        ok.disabled = false;
      }
    });
    dialog.addEventListener("close", () => {
      dialog.remove();
      resolve(result);
    });
    document.body.append(dialog);
    dialog.showModal();
  });
}

/**
 * Ask for a reason and reveal identifiers of a customer (POST /customers/{id}/reveal, audited). Resolves to
 * {field: clear value} or null when cancelled.
 */
export function revealDialog(customer, fields) {
  const names = fields.map((f) => FIELD_LABELS[f] || f).join("、");
  return formDialog({
    id: "cu-reveal-dialog",
    title: `查看完整${names}`,
    meta: `客户：${customer.name}。查看将记入审计日志（含查看人、时间与原因）。`,
    okText: "查看",
    build: () => [field("查看原因", el("input", { type: "text", name: "reason", id: "cu-reveal-reason", maxlength: 200,
      placeholder: "如：办理业务核实身份", required: true }))],
    submit: async (form) => {
      const reason = form.elements.reason.value.trim();
      if (reason.length < 2) {
        showFieldErrors(form, { status: 422, errors: { reason: ["请填写查看原因（至少 2 个字）"] } });
        return undefined;
      }
      return api(`/api/v1/customers/${customer.id}/reveal`, { method: "POST", json: { fields, reason } });
    },
  });
}

/** A short text for a failed call, for inline notes. */
export function failText(err, what) {
  return errorText(err, what) || "";
}
