// 重复客户: open duplicate pairs in my scope (GET /api/v1/customer-duplicates, scope-filtered by the API), the two
// customers side by side (masked identifiers), survivor and per-field choice, merge (POST /customer-merges), the
// merge result with undo (POST /customer-merges/{id}/undo), dismiss a pair, and a background scan of my org's
// subtree (POST /customer-duplicates/scans) with its progress. Rules (scope, who may merge) are the API's.
import { api, el, formatDateTime, formatNumber, initLayout } from "./common.js";
import {
  CATEGORY_LABELS, KIND_LABELS, PROFILE_LABELS, SOURCE_LABELS, STATUS_LABELS, formDialog, label, money,
} from "./customer-ui.js";
import { confirmDialog, failed, field, toast } from "./grid-ui.js";

const $ = (id) => document.getElementById(id);
const REASONS = {
  same_id_number: "身份证号相同", same_uscc: "信用代码相同", same_phone: "手机号相同", same_name: "姓名相同",
  same_pinyin: "姓名同音", similar_name: "姓名相似", within_50m: "50 米内", same_address: "地址相同",
};
// compared field -> [label, merge field group or null]
const FIELDS = {
  kind: ["客户类型", null], category: ["客户类别", "category"], name: ["客户名称", "name"],
  customer_no: ["客户号", "customer_no"], profile_type: ["客户画像", "profile_type"], industry: ["行业", "industry"],
  id_number: ["身份证号", "id_number"], uscc: ["统一社会信用代码", "uscc"], phone: ["手机号", "phone"],
  address: ["地址", "address"], location: ["位置（经纬度）", "location"], grid_id: ["网格", "location"],
  owner_user_id: ["客户经理", "owner"], org_id: ["机构", "owner"], status: ["状态", null],
  deposit_balance: ["存款余额", "holdings"], loan_balance: ["贷款余额", "holdings"], credit_limit: ["授信额度", "holdings"],
  created_at: ["创建时间", null], updated_at: ["更新时间", null],
};
const PHASE_TEXT = { detect: "比对姓名、地址与位置", done: "完成" };
const STATUS_TEXT = { queued: "排队中", started: "扫描中", deferred: "等待中", finished: "已完成", failed: "失败" };

const state = {
  status: "open", page: 1, pageSize: 20, total: 0, perms: new Set(), me: null, pair: null, merge: null,
  details: [null, null], names: new Map(), // customer id -> name, from the pairs seen
};

function customerCell(c) {
  return [el("a", { class: "cu-name", href: `/app/customers/${c.id}` }, c.name),
    el("span", { class: "cu-sub mono" }, [c.customer_no, c.phone_mask, c.id_number_mask || c.uscc_mask]
      .filter(Boolean).join(" · "))];
}

async function load() {
  const tbody = $("dup-table").tBodies[0];
  try {
    const body = await api("/api/v1/customer-duplicates",
      { query: { status: state.status, page: state.page, page_size: state.pageSize } });
    state.total = body.total;
    for (const p of body.items) for (const c of [p.customer_a, p.customer_b]) state.names.set(c.id, c.name);
    $("dup-count").textContent = `共 ${formatNumber(body.total)} 对`;
    $("dup-stats").textContent = state.status === "open" ? `待处理疑似重复 ${formatNumber(body.total)} 对` : "";
    tbody.replaceChildren(...(body.items.length ? body.items.map(row)
      : [el("tr", {}, el("td", { class: "data-table__empty", colspan: 7 }, "没有疑似重复客户"))]));
    const pages = Math.max(1, Math.ceil(body.total / state.pageSize));
    $("pager").hidden = body.total <= state.pageSize;
    $("pager-total").textContent = `共 ${formatNumber(body.total)} 条`;
    $("pager-pos").textContent = `${state.page} / ${pages}`;
    $("pager").querySelector('[data-page="prev"]').disabled = state.page <= 1;
    $("pager").querySelector('[data-page="next"]').disabled = state.page >= pages;
  } catch (err) {
    failed(err, "加载疑似重复客户失败");
    tbody.replaceChildren(el("tr", {}, el("td", { class: "data-table__empty", colspan: 7 }, "加载失败")));
  }
  $("dup-list").dataset.state = "ready";
}

function row(p) {
  const actions = [];
  if (p.status === "open") {
    actions.push(el("button", { type: "button", class: "btn btn--sm dup-compare", onclick: () => openPair(p.id) },
      "对比"));
  } else if (p.merge_id) {
    actions.push(el("button", { type: "button", class: "btn btn--sm dup-view-merge",
      onclick: () => showMerge(p.merge_id) }, "查看合并"));
  } else if (p.note) {
    actions.push(el("span", { class: "cu-sub" }, p.note));
  }
  return el("tr", { "data-pair-id": String(p.id) },
    el("td", {}, ...customerCell(p.customer_a)), el("td", {}, ...customerCell(p.customer_b)),
    el("td", {}, el("span", { class: "cu-chips" },
      ...p.reasons.map((r) => el("span", { class: "cu-chip" }, REASONS[r] || r)))),
    el("td", { class: "num" }, `${Math.round(p.score * 100)}%`),
    el("td", { class: "num" }, p.distance_m == null ? "—" : `${formatNumber(p.distance_m, 0)} 米`),
    el("td", {}, formatDateTime(p.detected_at)), el("td", {}, ...actions));
}

// ---------------------------------------------------------------- compare and merge

function show(fieldName, value, detail) {
  if (value === null || value === undefined || value === "") return "—";
  const names = detail ? { grid_id: detail.grid_name, owner_user_id: detail.owner_name, org_id: detail.org_name } : {};
  const named = names[fieldName];
  if (named) return named;
  switch (fieldName) {
    case "kind": return label(KIND_LABELS, value);
    case "category": return label(CATEGORY_LABELS, value);
    case "profile_type": return label(PROFILE_LABELS, value);
    case "status": return label(STATUS_LABELS, value);
    case "location_source": return label(SOURCE_LABELS, value);
    case "location": return Array.isArray(value) ? value.map((v) => Number(v).toFixed(6)).join(", ") : String(value);
    case "deposit_balance": case "loan_balance": case "credit_limit": return money(value);
    case "created_at": case "updated_at": return formatDateTime(value);
    case "grid_id": case "owner_user_id": case "org_id": return `ID ${value}`;
    default: return String(value);
  }
}

async function openPair(id) {
  try {
    state.pair = await api(`/api/v1/customer-duplicates/${id}`);
    // names of owner, org and grid (the comparison carries ids); a failed look-up keeps the ids
    const details = await Promise.allSettled(["customer_a", "customer_b"]
      .map((k) => api(`/api/v1/customers/${state.pair[k].id}/360?sections=profile&sections=location`)));
    state.details = details.map((d) => {
      if (d.status !== "fulfilled") return null;
      const { profile = {}, location = {} } = d.value.sections || {};
      return { owner_name: profile.owner_name, org_name: profile.org_name, grid_name: location.grid && location.grid.name };
    });
  } catch (err) {
    failed(err, "获取对比信息失败");
    return;
  }
  renderCompare();
  $("dup-result").hidden = true;
  $("dup-compare").hidden = false;
  $("dup-compare").scrollIntoView({ block: "start" });
}

function renderCompare() {
  const p = state.pair;
  const { customer_a: a, customer_b: b } = p;
  $("dup-compare-meta").textContent = `${a.name} ↔ ${b.name} · 相似度 ${Math.round(p.score * 100)}% · `
    + p.reasons.map((r) => REASONS[r] || r).join("、");
  const canMerge = state.perms.has("customer:merge") && p.status === "open";
  $("dup-merge").hidden = !canMerge;
  $("dup-dismiss").hidden = !canMerge;
  const survivorRadio = (side, c) => el("label", { class: "cu-check" },
    el("input", { type: "radio", name: "dup-survivor", value: side, checked: side === "a", id: `dup-survivor-${side}`,
      onchange: syncChoices }), ` 保留客户 ${side.toUpperCase()}（${c.name}）`);
  $("dup-fields").tHead.replaceChildren(el("tr", {}, el("th", {}, "字段"),
    el("th", {}, survivorRadio("a", a)), el("th", {}, survivorRadio("b", b)), el("th", {}, "合并后取值")));
  const groupsSeen = new Set();
  $("dup-fields").tBodies[0].replaceChildren(...p.fields.map((f) => {
    const [text, group] = FIELDS[f.field] || [f.field, null];
    let choice = el("span", { class: "cu-sub" }, group ? "同上" : "—");
    if (group && !groupsSeen.has(group)) {
      groupsSeen.add(group);
      choice = el("span", { class: "dup-choice", "data-group": group },
        ...["a", "b"].map((side) => el("label", { class: "cu-check" }, el("input", {
          type: "radio", name: `dup-choice-${group}`, value: side, checked: side === "a",
          id: `dup-choice-${group}-${side}`,
        }), ` 取 ${side.toUpperCase()}`)));
    }
    // identifiers compare blind indexes: two empty values are not "the same" there, but show no difference
    const differs = !f.same && JSON.stringify(f.a) !== JSON.stringify(f.b);
    return el("tr", { "data-field": f.field, class: differs ? "dup-diff" : "" },
      el("td", {}, text, differs ? el("span", { class: "badge badge--warn", style: "margin-left: 6px" }, "不同") : null),
      el("td", {}, show(f.field, f.a, state.details[0])), el("td", {}, show(f.field, f.b, state.details[1])),
      el("td", {}, choice));
  }));
}

/** A new survivor: every field defaults to the survivor's own value. */
function syncChoices() {
  const side = survivorSide();
  document.querySelectorAll(`.dup-choice input[value="${side}"]`).forEach((i) => { i.checked = true; });
}

const survivorSide = () => (document.querySelector('input[name="dup-survivor"]:checked') || { value: "a" }).value;

async function doMerge() {
  const p = state.pair;
  const side = survivorSide();
  const survivor = side === "a" ? p.customer_a : p.customer_b;
  const merged = side === "a" ? p.customer_b : p.customer_a;
  const choices = {};
  document.querySelectorAll(".dup-choice").forEach((box) => {
    const picked = box.querySelector("input:checked");
    choices[box.dataset.group] = picked && picked.value !== side ? "merged" : "survivor";
  });
  const ok = await confirmDialog(`将“${merged.name}”合并到“${survivor.name}”？被合并的客户档案将标记为已合并，`
    + "其名单、标签等关联记录转到保留的客户，合并后可撤销。", { okText: "确认合并", danger: true });
  if (!ok) return;
  try {
    const result = await api("/api/v1/customer-merges", { method: "POST",
      json: { survivor_id: survivor.id, merged_id: merged.id, choices, candidate_id: p.id } });
    toast("已合并", "success");
    $("dup-compare").hidden = true;
    renderMerge(result);
    load();
  } catch (err) {
    failed(err, "合并失败");
  }
}

async function doDismiss() {
  const p = state.pair;
  const result = await formDialog({
    id: "dup-dismiss-dialog", title: "不是重复客户", meta: `${p.customer_a.name} ↔ ${p.customer_b.name}：忽略后再次查重也不会重新列出。`,
    okText: "确认忽略",
    build: () => [field("理由", el("input", { type: "text", name: "note", id: "dup-dismiss-note", maxlength: 200,
      placeholder: "如：夫妻共用手机", required: true }))],
    submit: (form) => api(`/api/v1/customer-duplicates/${p.id}/dismiss`,
      { method: "POST", json: { note: form.elements.note.value.trim() } }),
  });
  if (!result) return;
  toast("已忽略该疑似重复", "success");
  $("dup-compare").hidden = true;
  load();
}

// ---------------------------------------------------------------- merge result and undo

async function showMerge(mergeId) {
  try {
    renderMerge(await api(`/api/v1/customer-merges/${mergeId}`));
    $("dup-compare").hidden = true;
  } catch (err) {
    failed(err, "获取合并记录失败");
  }
}

function renderMerge(m) {
  state.merge = m;
  const box = $("dup-result");
  box.hidden = false;
  box.dataset.mergeId = String(m.id);
  box.dataset.status = m.status;
  $("dup-result-meta").textContent = `#${m.id} · ${m.status === "undone" ? "已撤销" : "已合并"}`;
  $("dup-undo").hidden = m.status !== "done" || !state.perms.has("customer:merge");
  const taken = Object.entries(m.choices || {}).filter(([, v]) => v === "merged").map(([k]) => k);
  const refs = (m.references || []).filter((r) => r.moved || r.deleted);
  $("dup-result-body").replaceChildren(
    el("dl", { class: "cu-kv" },
      el("dt", {}, "保留客户"), el("dd", {}, customerLink(m.survivor_id)),
      el("dt", {}, "被合并客户"), el("dd", {}, customerLink(m.merged_id)),
      el("dt", {}, "取被合并方"), el("dd", {}, taken.length ? taken.map((g) => groupLabel(g)).join("、") : "无（全部保留）"),
      el("dt", {}, "合并时间"), el("dd", {}, formatDateTime(m.merged_at)),
      m.undone_at ? el("dt", {}, "撤销时间") : null, m.undone_at ? el("dd", {}, formatDateTime(m.undone_at)) : null),
    el("table", { class: "data-table", style: "margin-top: 10px" },
      el("thead", {}, el("tr", {}, el("th", {}, "关联表"), el("th", {}, "字段"), el("th", { class: "num" }, "转移"),
        el("th", { class: "num" }, "去重删除"))),
      el("tbody", {}, ...(refs.length ? refs.map((r) => el("tr", {}, el("td", { class: "mono" }, r.table),
        el("td", { class: "mono" }, r.column), el("td", { class: "num" }, String(r.moved)),
        el("td", { class: "num" }, String(r.deleted))))
        : [el("tr", {}, el("td", { class: "data-table__empty", colspan: 4 }, "没有需要转移的关联记录"))]))));
  box.scrollIntoView({ block: "start" });
}

const customerLink = (id) => el("a", { href: `/app/customers/${id}` }, state.names.get(id) || `ID ${id}`,
  el("span", { class: "cu-sub mono" }, ` ID ${id}`));

function groupLabel(group) {
  const entry = Object.values(FIELDS).find(([, g]) => g === group);
  return { location: "位置与网格", owner: "客户经理与机构", holdings: "业务持有" }[group] || (entry ? entry[0] : group);
}

async function doUndo() {
  const m = state.merge;
  if (!(await confirmDialog("撤销本次合并？两个客户档案及其关联记录将恢复到合并前的状态。", { okText: "撤销合并", danger: true }))) return;
  try {
    renderMerge(await api(`/api/v1/customer-merges/${m.id}/undo`, { method: "POST" }));
    toast("已撤销合并", "success");
    load();
  } catch (err) {
    failed(err, err && err.status === 409 ? "无法撤销：合并后客户已有变更，请先还原这些变更" : "撤销失败");
  }
}

// ---------------------------------------------------------------- scan

async function scan() {
  const org = state.me && state.me.org;
  if (!org) return;
  const btn = $("dup-scan");
  btn.disabled = true;
  $("dup-scan-box").hidden = false;
  try {
    let job = await api("/api/v1/customer-duplicates/scans", { method: "POST", json: { org_id: org.id } });
    const started = Date.now();
    while (!["finished", "failed", "stopped", "canceled"].includes(job.status)) {
      renderScan(job, started);
      await new Promise((r) => setTimeout(r, 1000));
      job = await api(`/api/v1/customer-duplicates/scans/${encodeURIComponent(job.id)}`);
    }
    renderScan(job, started);
    if (job.status === "finished") {
      toast(`扫描完成，发现 ${formatNumber(job.candidates || 0)} 对疑似重复`, "success");
      state.page = 1;
      load();
    } else {
      toast("扫描失败", "error");
    }
  } catch (err) {
    failed(err, "扫描失败");
    $("dup-progress-text").textContent = "扫描失败";
  } finally {
    btn.disabled = false;
  }
}

function renderScan(job, started) {
  const done = job.status === "finished";
  // the job reports phases, not a row count: the bar shows the phase reached
  const pct = done ? 100 : job.status === "started" ? (job.phase === "detect" ? 50 : 20) : 5;
  $("dup-progress-bar").style.width = `${pct}%`;
  $("dup-progress").setAttribute("aria-valuenow", String(pct));
  $("dup-progress").dataset.status = job.status;
  const parts = [STATUS_TEXT[job.status] || job.status];
  if (job.phase && !done) parts.push(PHASE_TEXT[job.phase] || job.phase);
  if (done) parts.push(`发现 ${formatNumber(job.candidates || 0)} 对疑似重复`);
  parts.push(`${Math.round((Date.now() - started) / 1000)} 秒`);
  $("dup-progress-text").textContent = parts.join(" · ");
}

// ---------------------------------------------------------------- wiring

document.querySelectorAll(".cu-tab").forEach((tab) => tab.addEventListener("click", () => {
  state.status = tab.dataset.status;
  state.page = 1;
  document.querySelectorAll(".cu-tab").forEach((t) => t.setAttribute("aria-selected", String(t === tab)));
  $("dup-compare").hidden = true;
  load();
}));
$("pager").addEventListener("click", (e) => {
  const btn = e.target.closest("[data-page]");
  if (!btn) return;
  state.page += btn.dataset.page === "next" ? 1 : -1;
  load();
});
$("dup-merge").addEventListener("click", doMerge);
$("dup-dismiss").addEventListener("click", doDismiss);
$("dup-undo").addEventListener("click", doUndo);
$("dup-scan").addEventListener("click", scan);

const { me } = await initLayout();
state.me = me;
state.perms = new Set((me && me.permissions) || []);
$("dup-scan").hidden = !state.perms.has("customer:merge") || !(me && me.org);
if (me && me.org) $("dup-scan").textContent = `扫描本机构（${me.org.name}）`;
await load();
