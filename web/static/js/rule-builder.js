// A small rule builder for the tag rule language (docs/TAGS_GROUPS.md): rows of field / operator / value combined
// by all (全部满足) or any (满足任一). Fields and operators come from GET /api/v1/tags/fields; the API validates and
// answers 422 with the path of every bad node ("rule.all.1.value"), which showErrors() puts next to that row.
import { el } from "./common.js";

export const OP_LABELS = {
  "=": "等于", "!=": "不等于", ">": "大于", ">=": "大于等于", "<": "小于", "<=": "小于等于", between: "介于",
  in: "属于", not_in: "不属于", contains: "包含", not_contains: "不包含", contains_any: "包含任一",
  contains_all: "包含全部", is_null: "为空", not_null: "不为空", has: "有标签", not_has: "无标签",
};
const LIST_OPS = new Set(["in", "not_in", "contains_any", "contains_all"]);
const NO_VALUE = new Set(["is_null", "not_null"]);
const NUMERIC = new Set(["integer", "number", "metres", "ids", "tag"]);

/** Flatten a nested 422 `errors` object into {"a.b.0.c": "message"}. */
export function flattenErrors(errors, prefix = "", out = {}) {
  if (Array.isArray(errors) && errors.every((m) => typeof m === "string")) {
    out[prefix] = errors.join("；");
  } else if (errors && typeof errors === "object") {
    for (const [k, v] of Object.entries(errors)) flattenErrors(v, prefix ? `${prefix}.${k}` : k, out);
  } else if (errors != null) {
    out[prefix] = String(errors);
  }
  return out;
}

function parseScalar(type, text) {
  const t = text.trim();
  if (NUMERIC.has(type) && t !== "" && !Number.isNaN(Number(t))) return Number(t);
  return t;
}

/**
 * createRuleBuilder({fields, join, onChange}) -> {element, rows, value(), set(rule), showErrors(flat, prefix), clear}
 * `join` is a <select> with all/any; value() is null when there is no row.
 */
export function createRuleBuilder({ fields, join, onChange = () => {} }) {
  const byName = Object.fromEntries(fields.map((f) => [f.field, f]));
  const box = el("div", { class: "cw-rules" });
  const rows = [];

  function addRow(cond = {}) {
    const fieldSel = el("select", { class: "cw-rule-field", "aria-label": "字段" },
      fields.map((f) => el("option", { value: f.field }, f.label)));
    const opSel = el("select", { class: "cw-rule-op", "aria-label": "运算" });
    const valueInput = el("input", { type: "text", class: "cw-rule-value", "aria-label": "取值", autocomplete: "off" });
    const err = el("div", { class: "cw-row-error", role: "alert" });
    const row = el("div", { class: "cw-rule-row" }, fieldSel, opSel, valueInput,
      el("button", { type: "button", class: "link-btn link-btn--danger", onclick: () => remove() }, "删除"), err);
    const fillOps = () => {
      const spec = byName[fieldSel.value];
      opSel.replaceChildren(...spec.ops.map((op) => el("option", { value: op }, OP_LABELS[op] || op)));
      const hint = spec.choices ? `可选：${spec.choices.join(", ")}` : spec.range ? `范围 ${spec.range[0]}–${spec.range[1]}` : "";
      valueInput.placeholder = hint || "取值（多个用逗号分隔）";
    };
    const syncValue = () => {
      valueInput.disabled = NO_VALUE.has(opSel.value);
    };
    fieldSel.value = cond.field && byName[cond.field] ? cond.field : fields[0].field;
    fillOps();
    if (cond.op) opSel.value = cond.op;
    if (cond.value !== undefined) valueInput.value = [].concat(cond.value).join(",");
    syncValue();
    fieldSel.addEventListener("change", () => { fillOps(); syncValue(); onChange(); });
    opSel.addEventListener("change", () => { syncValue(); onChange(); });
    valueInput.addEventListener("input", () => onChange());
    const entry = {
      row, err,
      value() {
        const spec = byName[fieldSel.value];
        const op = opSel.value;
        const out = { field: spec.field, op };
        if (NO_VALUE.has(op)) return out;
        if (LIST_OPS.has(op) || op === "between") {
          out.value = valueInput.value.split(/[,，]/).map((s) => s.trim()).filter(Boolean)
            .map((s) => parseScalar(spec.type, s));
        } else {
          out.value = parseScalar(spec.type, valueInput.value);
        }
        return out;
      },
    };
    function remove() {
      rows.splice(rows.indexOf(entry), 1);
      row.remove();
      onChange();
    }
    rows.push(entry);
    box.append(row);
    return entry;
  }

  return {
    element: box,
    rows,
    addRow: (cond) => { const r = addRow(cond); onChange(); return r; },
    value() {
      if (!rows.length) return null;
      return { [join.value]: rows.map((r) => r.value()) };
    },
    set(rule) {
      rows.splice(0).forEach((r) => r.row.remove());
      if (!rule) return;
      const key = rule.any ? "any" : "all";
      join.value = key;
      for (const cond of rule[key] || []) if (cond && cond.field) addRow(cond);
    },
    /** Put flat errors under their rows: `prefix` is "rule" (tags) or "definition.rule" (groups). Returns the rest. */
    showErrors(flat, prefix) {
      const rest = {};
      rows.forEach((r) => { r.err.textContent = ""; r.row.classList.remove("has-error"); });
      for (const [path, msg] of Object.entries(flat || {})) {
        const m = new RegExp(`^${prefix.replace(".", "\\.")}\\.(all|any)\\.(\\d+)(?:\\.(\\w+))?`).exec(path);
        const r = m && rows[Number(m[2])];
        if (r) {
          const what = { field: "字段", op: "运算", value: "取值" }[m[3]] || "";
          r.err.textContent = [r.err.textContent, what ? `${what}：${msg}` : msg].filter(Boolean).join("；");
          r.row.classList.add("has-error");
        } else {
          rest[path] = msg;
        }
      }
      return rest;
    },
  };
}
