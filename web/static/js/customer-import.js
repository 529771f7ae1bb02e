// 名单导入: choose a template, upload a CSV/XLSX (POST /customer-imports), preview every row with its per-field
// errors highlighted (GET …/preview), submit with or without "skip invalid rows" (POST …/submit), then follow the
// RQ job's progress — rows done / total and ETA from GET /customer-imports/{id} — until the batch is done.
import { ApiError, api, download, el, formatNumber, initLayout } from "./common.js";
import { failText } from "./customer-ui.js";
import { toast } from "./grid-ui.js";

const $ = (id) => document.getElementById(id);
const POLL_MS = 500;
const PREVIEW_PAGE = 50;
const STATUS_TEXT = {
  uploaded: "已上传", validated: "已校验", running: "导入中", done: "已完成", failed: "失败", rejected: "已拒绝",
};
const PHASE_TEXT = { validate: "校验中", write: "写入中", commit: "提交中", done: "已完成" };
const ROW_STATUS = { invalid: ["错误", "danger"], matched: ["匹配已有客户", "ok"], new: ["新建客户", "neutral"] };

const state = { templates: [], template: null, batch: null, only: "all", page: 1, total: 0, polling: null };

function setStep(step) {
  const order = ["upload", "preview", "run", "done"];
  const at = order.indexOf(step);
  document.querySelectorAll("#cu-steps li").forEach((li) => {
    const i = order.indexOf(li.dataset.step);
    li.classList.toggle("is-done", i < at || step === "done");
    li.classList.toggle("is-current", i === at && step !== "done");
  });
}

function showError(box, err, what) {
  box.textContent = typeof err === "string" ? err : failText(err, what);
  box.hidden = !box.textContent;
}

// ---------------------------------------------------------------- templates and upload

function describeTemplate() {
  const t = state.templates.find((x) => String(x.id) === $("cu-template").value);
  state.template = t || null;
  $("cu-template-fields").textContent = t
    ? `列：${t.fields.map((f) => `${f.label}${f.required ? "（必填）" : ""}`).join("、")}；坐标系：${t.crs.toUpperCase()}`
    : "";
}

async function loadTemplates() {
  const select = $("cu-template");
  try {
    state.templates = await api("/api/v1/customer-list-templates");
    select.replaceChildren(el("option", { value: "" }, "请选择模板"), ...state.templates.map((t) => el("option", {
      value: t.id,
    }, `${t.name}${t.is_builtin ? "（内置）" : ""}`)));
  } catch (err) {
    select.replaceChildren(el("option", { value: "" }, "模板加载失败"));
    showError($("cu-upload-error"), err, "加载模板失败");
  }
}

async function blank(format) {
  if (!state.template) return showError($("cu-upload-error"), "请先选择名单模板");
  try {
    await download(`/api/v1/customer-list-templates/${state.template.id}/blank`, {
      query: { format }, fallbackName: `${state.template.name}.${format}`,
    });
  } catch (err) {
    showError($("cu-upload-error"), err, "下载模板失败");
  }
  return undefined;
}

async function upload(e) {
  e.preventDefault();
  const box = $("cu-upload-error");
  showError(box, "");
  const file = $("cu-file").files[0];
  if (!state.template) return showError(box, "请选择名单模板");
  if (!file) return showError(box, "请选择要上传的 CSV 或 XLSX 文件");
  const form = new FormData();
  form.append("file", file, file.name);
  const btn = $("cu-upload");
  btn.disabled = true;
  btn.textContent = "上传校验中…";
  try {
    state.batch = await api("/api/v1/customer-imports", {
      method: "POST", body: form, query: { template_id: state.template.id, name: $("cu-batch-name").value.trim() },
    });
    state.only = "all";
    state.page = 1;
    $("cu-only").value = "all";
    await loadPreview();
    $("cu-upload-card").hidden = true;
    $("cu-preview-card").hidden = false;
    setStep("preview");
  } catch (err) {
    const fields = err instanceof ApiError && err.errors ? Object.values(err.errors).flat().join("；") : "";
    showError(box, `${failText(err, "上传失败")}${fields ? `（${fields}）` : ""}`);
  } finally {
    btn.disabled = false;
    btn.textContent = "上传并校验";
  }
  return undefined;
}

// ---------------------------------------------------------------- preview

function renderCounts(b) {
  const badge = (text, tone, id) => el("span", { class: `badge badge--${tone}`, id }, text);
  $("cu-preview-batch").textContent = `${b.name} · ${b.filename}`;
  $("cu-counts").replaceChildren(
    badge(`共 ${formatNumber(b.total_rows)} 行`, "neutral", "cu-count-total"),
    badge(`校验通过 ${formatNumber(b.valid_rows ?? 0)} 行`, "ok", "cu-count-valid"),
    badge(`错误 ${formatNumber(b.invalid_rows ?? 0)} 行`, b.invalid_rows ? "off" : "neutral", "cu-count-invalid"),
    badge(`匹配已有客户 ${formatNumber(b.matched_rows ?? 0)} 行`, "neutral", "cu-count-matched"),
  );
  $("cu-skip-invalid").closest("label").hidden = !b.invalid_rows;
}

function previewColumns(items) {
  const fields = state.template ? state.template.fields : [];
  const keys = fields.map((f) => f.key);
  for (const item of items) Object.keys(item.values || {}).forEach((k) => !keys.includes(k) && keys.push(k));
  const labels = Object.fromEntries(fields.map((f) => [f.key, f.label]));
  return keys.filter((k) => items.some((i) => k in (i.values || {}))).map((k) => ({ key: k, title: labels[k] || k }));
}

function renderPreview(body) {
  const table = $("cu-preview-table");
  const cols = previewColumns(body.items);
  table.tHead.replaceChildren(el("tr", {}, el("th", { class: "num" }, "行号"), el("th", {}, "结果"),
    cols.map((c) => el("th", { dataset: { key: c.key } }, c.title)), el("th", {}, "说明")));
  if (!body.items.length) {
    table.tBodies[0].replaceChildren(el("tr", {}, el("td", { class: "data-table__empty", colspan: cols.length + 3 },
      "没有符合条件的行")));
  } else {
    table.tBodies[0].replaceChildren(...body.items.map((item) => {
      const errors = item.errors || {};
      const [text, tone] = ROW_STATUS[item.status] || [item.status, "neutral"];
      const rowErrors = Object.entries(errors).filter(([k]) => !cols.some((c) => c.key === k));
      return el("tr", { class: item.status === "invalid" ? "cu-row--invalid" : null, dataset: { row: item.row, status: item.status } },
        el("td", { class: "num" }, item.row),
        el("td", {}, el("span", { class: `badge badge--${tone}` }, text)),
        cols.map((c) => {
          const msgs = errors[c.key];
          return el("td", {
            class: msgs ? "cu-cell--error" : null, dataset: { field: c.key }, title: msgs ? msgs.join("；") : null,
          }, item.values[c.key] ?? "", msgs ? el("span", { class: "cu-cell__msg" }, msgs.join("；")) : null);
        }),
        el("td", {}, rowErrors.map(([k, m]) => `${k === "_row" ? "" : `${k}：`}${[].concat(m).join("；")}`).join("；")
          || (item.customer_id ? el("a", { href: `/app/customers/${item.customer_id}` }, `客户 #${item.customer_id}`) : "")));
    }));
  }
  const pages = Math.max(1, Math.ceil(body.total / PREVIEW_PAGE));
  $("cu-preview-pager").hidden = false;
  $("cu-preview-total").textContent = `共 ${body.total} 行`;
  $("cu-preview-pos").textContent = `第 ${state.page} / ${pages} 页`;
  $("cu-preview-pager").querySelector('[data-page="prev"]').disabled = state.page <= 1;
  $("cu-preview-pager").querySelector('[data-page="next"]').disabled = state.page >= pages;
  state.total = body.total;
}

async function loadPreview() {
  const body = await api(`/api/v1/customer-imports/${state.batch.id}/preview`, {
    query: { only: state.only, page: state.page, page_size: PREVIEW_PAGE },
  });
  state.batch = { ...state.batch, ...body.batch };
  renderCounts(state.batch);
  renderPreview(body);
  if (body.ignored_columns && body.ignored_columns.length) {
    toast(`已忽略模板外的列：${body.ignored_columns.join("、")}`, "info");
  }
}

// ---------------------------------------------------------------- submit and progress

async function submit() {
  const box = $("cu-submit-error");
  showError(box, "");
  const btn = $("cu-submit");
  btn.disabled = true;
  try {
    state.batch = await api(`/api/v1/customer-imports/${state.batch.id}/submit`, {
      method: "POST", json: { skip_invalid: $("cu-skip-invalid").checked },
    });
    $("cu-preview-card").hidden = true;
    $("cu-progress-card").hidden = false;
    setStep("run");
    renderProgress(state.batch);
    poll();
  } catch (err) {
    showError(box, failText(err, "提交失败"));
  } finally {
    btn.disabled = false;
  }
}

function renderProgress(batch) {
  const p = (batch.job && batch.job.progress) || {};
  const finished = ["done", "failed", "rejected"].includes(batch.status);
  let pct = p.total ? Math.min(100, Math.floor((100 * (p.done || 0)) / p.total)) : 0;
  if (batch.status === "done") pct = 100;
  $("cu-progress-bar").style.width = `${pct}%`;
  const bar = $("cu-progress");
  bar.setAttribute("aria-valuenow", String(pct));
  bar.dataset.status = batch.status;
  const parts = [`${STATUS_TEXT[batch.status] || batch.status}`];
  if (!finished && p.phase) parts.push(PHASE_TEXT[p.phase] || p.phase);
  if (p.total) parts.push(`${formatNumber(p.done || 0)} / ${formatNumber(p.total)} 行（${pct}%）`);
  if (!finished && p.eta_s != null) parts.push(`预计剩余 ${formatNumber(p.eta_s, 1)} 秒`);
  if (!finished && p.rows_per_s) parts.push(`${formatNumber(p.rows_per_s)} 行/秒`);
  if (!p.total && !finished) parts.push(batch.job && batch.job.status === "queued" ? "排队等待后台任务…" : "准备中…");
  $("cu-progress-text").textContent = parts.join(" · ");
  if (finished) renderResult(batch);
}

function renderResult(batch) {
  setStep("done");
  const ok = batch.status === "done";
  const summary = ok
    ? `导入完成：新建客户 ${formatNumber(batch.created_rows ?? 0)} 户，匹配已有客户 ${formatNumber(batch.matched_rows ?? 0)} 户`
      + `${batch.skipped_rows ? `，跳过错误行 ${formatNumber(batch.skipped_rows)} 行` : ""}。`
    : `导入未完成（${STATUS_TEXT[batch.status]}）：${batch.error || "未写入任何数据"}`;
  $("cu-result").replaceChildren(
    el("div", { class: `alert alert--${ok ? "success" : "error"}`, id: "cu-result-text" }, summary),
    el("p", {}, el("a", { class: "btn btn--sm btn--primary", id: "cu-open-batch", href: `/app/customers/imports?batch=${batch.id}` },
      "查看批次与名单"), " ", el("a", { class: "btn btn--sm", href: "/app/customers/import" }, "继续导入")),
  );
}

function poll() {
  clearTimeout(state.polling);
  state.polling = setTimeout(async () => {
    try {
      state.batch = await api(`/api/v1/customer-imports/${state.batch.id}`);
      renderProgress(state.batch);
      if (!["done", "failed", "rejected"].includes(state.batch.status)) poll();
    } catch (err) {
      $("cu-progress-text").textContent = failText(err, "获取进度失败");
      if (!err || !err.redirecting) poll();
    }
  }, POLL_MS);
}

// ---------------------------------------------------------------- wiring

$("cu-template").addEventListener("change", describeTemplate);
$("cu-upload-form").addEventListener("submit", upload);
$("cu-blank-xlsx").addEventListener("click", () => blank("xlsx"));
$("cu-blank-csv").addEventListener("click", () => blank("csv"));
$("cu-only").addEventListener("change", async (e) => {
  state.only = e.target.value;
  state.page = 1;
  await loadPreview().catch((err) => showError($("cu-submit-error"), err, "加载预览失败"));
});
$("cu-preview-pager").addEventListener("click", async (e) => {
  const btn = e.target.closest("[data-page]");
  if (!btn) return;
  state.page += btn.dataset.page === "next" ? 1 : -1;
  await loadPreview().catch((err) => showError($("cu-submit-error"), err, "加载预览失败"));
});
$("cu-submit").addEventListener("click", submit);
$("cu-restart").addEventListener("click", () => {
  $("cu-preview-card").hidden = true;
  $("cu-upload-card").hidden = false;
  $("cu-upload-form").reset();
  describeTemplate();
  setStep("upload");
});

await initLayout();
await loadTemplates();
document.body.dataset.ready = "true";
