// 客户360视图: the sections of GET /api/v1/customers/{id}/360 as cards (profile, holdings, location with a small
// map and 纠偏, tags, groups, accounts, loans, reminders, events, credit decisions, ownership history, lists,
// campaigns, tasks, visits, footprints), plus edit / delete (potential customers) and the audited reveal.
// A section whose feature is not installed shows so; the page never guesses data the API did not send.
import { api, el, formatDateTime, formatNumber, initLayout, reportError } from "./common.js";
import { createCustomerMap } from "./customer-map.js";
import {
  CATEGORY_LABELS, FIELD_LABELS, KIND_LABELS, PROFILE_LABELS, SOURCE_LABELS, STATUS_LABELS, day, formDialog, label,
  money, revealDialog,
} from "./customer-ui.js";
import { confirmDialog, failed, field, selectInput, toast } from "./grid-ui.js";

const customerId = Number(document.body.dataset.customerId);
const root = document.getElementById("cu360");
const holder = document.getElementById("cu-sections");
const UNAVAILABLE = {
  not_installed: "该功能尚未上线", not_linked: "该功能尚未关联客户", forbidden: "无权查看", error: "加载失败，请稍后重试",
};
const VALUE_LABELS = {
  open: "待处理", done: "已完成", missed: "已错过", approved: "已审批", rejected: "已驳回", submitted: "审批中",
  draft: "草稿", approve: "批准", reject: "拒绝", manual: "人工", rule: "规则", import: "导入", normal: "正常",
  overdue: "逾期", settled: "结清", active: "正常", frozen: "冻结", closed: "已销户", deposit: "存款", wealth: "理财",
  card: "银行卡", other: "其他", solar: "公历", lunar: "农历", once: "一次", yearly: "每年", monthly: "每月",
  weekly: "每周", birthday: "生日", holiday: "节日", balance_change: "大额变动", loan_due: "贷款到期",
  loan_overdue: "贷款逾期", custom_event: "自定义事件", birthday_custom: "生日（自定义）", restock: "进货",
  gaokao: "高考", anniversary: "纪念日", formal: "正式", potential: "潜在", list: "名单", create: "建档",
  edit: "编辑", merge: "合并", assign: "分配", transfer: "移交", batch_assign: "批量分配", grid_handover: "网格移交", grid_balancing: "网格平衡", merge_undo: "撤销合并",
};
const COLUMN_LABELS = {
  name: "名称", title: "标题", kind: "类型", status: "状态", due_date: "到期日", created_at: "时间", event_date: "日期",
  product_code: "产品", account_type: "账户类型", balance: "余额", principal: "本金", overdue_amount: "逾期金额",
  overdue_days: "逾期天数", decision: "决策", credit_limit: "授信额度", rate: "利率(%)", valid_until: "有效期至",
  account_no: "账号", loan_no: "借据号", as_of: "数据日期", owner_name: "客户经理", valid_from: "起始",
  valid_to: "截止", reason: "原因", source: "来源", code: "编码", calendar: "历法", recurrence: "周期",
  org_name: "机构", changed_by_name: "操作人", template_name: "模板", link_source: "来源", category: "类别",
};
const MONEY_KEYS = new Set(["balance", "principal", "overdue_amount", "credit_limit", "deposit_total", "loan_total"]);
const HIDDEN_KEYS = new Set(["id", "customer_id", "org_id", "owner_user_id", "user_id", "group_id", "tag_id", "changed_by",
  "created_by", "updated_by", "updated_at", "detail",
  "raw_response", "pricing", "link_created_at", "is_leap_month", "remind_days_before"]);

let me = null;
let perms = new Set();
let sections = {};
let mapView = null;

const kv = (pairs) => el("dl", { class: "cu-kv" }, pairs.filter(([, v]) => v !== undefined).map(([k, v]) => [
  el("dt", {}, k), el("dd", {}, v === null || v === "" ? el("span", { class: "muted" }, "—") : v)]));
const empty = (text = "暂无记录") => el("p", { class: "cu-empty" }, text);

function fmt(key, value) {
  if (value === null || value === undefined || value === "") return "—";
  if (MONEY_KEYS.has(key)) return money(value);
  if (Array.isArray(value)) return value.map((v) => (typeof v === "object" ? JSON.stringify(v) : v)).join("、");
  if (typeof value === "object") return JSON.stringify(value);
  if (typeof value === "boolean") return value ? "是" : "否";
  if (/_at$/.test(key)) return formatDateTime(value).slice(0, 16);
  if (/(_date|_until|_on|as_of|_from|_to)$/.test(key)) return day(value);
  return VALUE_LABELS[value] || String(value);
}

function card(key, title, body, { wide = false, actions = null, off = false } = {}) {
  return el("section", {
    class: `card${wide ? " cu360__wide" : ""}${off ? " cu-card--off" : ""}`, id: `cu-sec-${key}`,
    dataset: { section: key, available: String(!off) },
  }, el("div", { class: "cu-card__head" }, el("h2", { class: "card__title" }, title), actions), body);
}

// ---------------------------------------------------------------- section renderers

function renderProfile(p) {
  const idField = p.kind === "company" ? "uscc" : "id_number";
  const idMask = p.kind === "company" ? p.uscc_mask : p.id_number_mask;
  const fields = [idMask ? idField : null, p.phone_mask ? "phone" : null].filter(Boolean);
  const revealBtn = perms.has("customer:reveal") && fields.length
    ? el("button", { type: "button", class: "link-btn", id: "cu-reveal", onclick: () => reveal(p, fields) }, "查看完整号码")
    : null;
  const body = kv([
    ["客户名称", el("strong", { id: "cu-name" }, p.name)],
    ["客户号", p.customer_no],
    ["类型 / 类别", `${label(KIND_LABELS, p.kind)} · ${label(CATEGORY_LABELS, p.category)}`],
    ["建档类型", label(PROFILE_LABELS, p.profile_type)],
    [FIELD_LABELS[idField], el("span", { class: "mono", id: "cu-id-value" }, idMask || "—")],
    ["手机号", el("span", { class: "mono", id: "cu-phone-value" }, p.phone_mask || "—")],
    ["性别 / 出生", p.gender || p.birth_date ? `${{ M: "男", F: "女" }[p.gender] || ""} ${day(p.birth_date)}` : null],
    ["行业", p.industry],
    ["地址", p.address],
    ["客户经理", p.owner_name],
    ["所属机构", p.org_name],
    ["状态", p.merged_into
      ? el("span", {}, `${label(STATUS_LABELS, p.status)}，并入 `, el("a", { href: `/app/customers/${p.merged_into}` }, `客户 #${p.merged_into}`))
      : label(STATUS_LABELS, p.status)],
    ["建档时间", `${formatDateTime(p.created_at).slice(0, 16)}${p.created_by_name ? ` · ${p.created_by_name}` : ""}`],
  ]);
  return card("profile", "基本信息", body, { actions: revealBtn });
}

function renderHoldings(h) {
  if (!h.has_data) return card("holdings", "产品与余额", empty("数据平台暂无该客户的账户数据"));
  const figure = (title, value, warn) => el("div", { class: `cu-figure${warn ? " cu-figure--warn" : ""}` },
    el("span", { class: "cu-figure__label" }, title), el("span", { class: "cu-figure__value" }, money(value)));
  return card("holdings", "产品与余额", [
    el("div", { class: "cu-figures" },
      figure("存款余额", h.deposit_balance), figure("贷款余额", h.loan_balance),
      figure("授信额度", h.credit_limit), figure("逾期金额", h.overdue_amount, Number(h.overdue_amount) > 0)),
    kv([
      ["持有产品", (h.products || []).length
        ? el("span", { class: "cu-chips" }, h.products.map((p) => el("span", { class: "cu-chip" }, p))) : null],
      ["数据日期", day(h.holdings_as_of)],
      ["最近走访", formatDateTime(h.last_visit_at).slice(0, 16) || null],
    ]),
  ]);
}

function renderLocation(loc) {
  const box = document.getElementById("cu-location");
  let grid = "未入网格";
  if (loc.grid) grid = loc.grid.code ? `${loc.grid.name}（${loc.grid.code}）` : `网格 #${loc.grid.id}（不在您的查看范围）`;
  box.replaceWith(Object.assign(kv([
    ["坐标来源", el("span", { id: "cu-loc-source", dataset: { source: loc.source || "" } },
      loc.source ? label(SOURCE_LABELS, loc.source) : "—")],
    ["所在网格", el("span", { id: "cu-loc-grid" }, grid)],
    ["地址解析", loc.geocoded
      ? `${loc.geocoded.provider} · ${loc.geocoded.level} · 置信度 ${formatNumber(loc.geocoded.confidence, 2)}${loc.geocoded.applied ? "" : "（未采用）"}`
      : undefined],
    ["人工指定网格", loc.grid_override ? `${loc.grid_override.by_name || ""}：${loc.grid_override.reason || ""}` : "否"],
    ["最后更新", `${formatDateTime(loc.updated_at).slice(0, 16)}${loc.updated_by_name ? ` · ${loc.updated_by_name}` : ""}`],
  ]), { id: "cu-location", style: "margin-top: 10px" }));
}

function renderTags(s) {
  if (!s.items.length) return empty("暂无标签");
  return el("div", { class: "cu-chips" }, s.items.map((t) => el("span", {
    class: "cu-chip", title: [t.description, t.link_source && `来源：${fmt("source", t.link_source)}`].filter(Boolean).join(" · "),
    style: t.color ? `background:${t.color}22;border:1px solid ${t.color}` : null,
  }, t.name || t.code || `#${t.id}`)));
}

function renderProfileArchive(s) {
  if (!s.profile) return empty("尚未建档");
  const pct = Number(s.completeness);
  const filled = (s.fields || []).filter((f) => f.value !== null && f.value !== undefined && f.value !== "");
  const value = (f) => `${Array.isArray(f.value) ? f.value.join("、") : fmt(f.key, f.value)}${f.unit ? ` ${f.unit}` : ""}`;
  return [
    el("div", { class: "cu-figures" },
      el("div", { class: `cu-figure${s.profile.is_complete ? "" : " cu-figure--warn"}` },
        el("span", { class: "cu-figure__label" }, "建档完整度"),
        el("span", { class: "cu-figure__value", id: "cu-completeness" }, `${formatNumber(pct * 100, 0)}%`)),
      el("div", { class: "cu-figure" }, el("span", { class: "cu-figure__label" }, "建档模板"),
        el("span", { class: "cu-figure__value", style: "font-size: 14px" }, s.profile.template_name || "—"))),
    filled.length ? kv(filled.slice(0, 10).map((f) => [f.label || f.key, value(f)])) : null,
    (s.profile.missing_required || []).length
      ? el("p", { class: "cu-empty" }, `必填未填：${s.profile.missing_required.map((k) => (s.fields.find((f) => f.key === k) || {}).label || k).join("、")}`)
      : null,
    el("p", { class: "cu-empty" }, `${s.profile.filled_by_name || ""} ${formatDateTime(s.profile.filled_at).slice(0, 16)} 更新`),
  ];
}

/** A list of rows: the first title-like column on the left, a few other columns on the right. */
function renderRows(s) {
  if (!s.items.length) return empty();
  const more = s.total > s.items.length ? el("p", { class: "cu-empty" }, `共 ${s.total} 条，显示最近 ${s.items.length} 条`) : null;
  return [el("ul", { class: "cu-list" }, s.items.map((row) => {
    const titleKey = ["title", "name", "product_code", "decision", "owner_name", "account_no", "loan_no"].find((k) => row[k]);
    const rest = Object.entries(row).filter(([k, v]) => k !== titleKey && !HIDDEN_KEYS.has(k) && v !== null && v !== "")
      .slice(0, 4);
    return el("li", {}, el("span", {}, titleKey ? fmt(titleKey, row[titleKey]) : "记录"),
      el("span", { class: "muted" }, rest.map(([k, v]) => `${COLUMN_LABELS[k] || k}：${fmt(k, v)}`).join(" · ")));
  })), more];
}

function renderLists(s) {
  if (!s.items.length) return empty("未出现在任何导入名单中");
  return el("ul", { class: "cu-list" }, s.items.map((b) => el("li", {},
    el("a", { href: `/app/customers/imports?batch=${b.batch_id}` }, b.name),
    el("span", { class: "muted" }, `${b.template_name || ""} · 第 ${b.row_no} 行 · ${b.matched ? "匹配已有客户" : "导入新建"}`))));
}

const RENDERERS = {
  tags: renderTags, profile_archive: renderProfileArchive, lists: renderLists,
};

function renderSection(key, s) {
  if (!s.available) {
    return card(key, s.title, empty(UNAVAILABLE[s.reason] || "暂不可用"), { off: true });
  }
  const render = RENDERERS[key] || renderRows;
  return card(key, s.title, render(s));
}

function renderAll(body) {
  sections = body.sections;
  document.getElementById("cu-sec-profile").replaceWith(renderProfile(sections.profile));
  document.title = `${sections.profile.name} · 客户360视图`;
  const rest = body.order.filter((k) => !["profile", "location"].includes(k));
  holder.replaceChildren(...rest.map((k) => (k === "holdings" ? renderHoldings(sections[k]) : renderSection(k, sections[k]))));
  renderLocation(sections.location);
  const canDelete = perms.has("customer:edit") && sections.profile.category === "potential";
  document.getElementById("cu-edit").hidden = !perms.has("customer:edit");
  document.getElementById("cu-delete").hidden = !canDelete;
}

// ---------------------------------------------------------------- actions

async function reveal(profile, fields) {
  const clear = await revealDialog(profile, fields);
  if (!clear) return;
  if (clear.id_number || clear.uscc) document.getElementById("cu-id-value").textContent = clear.id_number || clear.uscc;
  if (clear.phone) document.getElementById("cu-phone-value").textContent = clear.phone;
  toast("已显示完整号码，本次查看已记入审计日志", "success");
}

async function edit() {
  const p = sections.profile;
  const text = (name, value, max) => el("input", { type: "text", name, value: value || "", maxlength: max });
  const saved = await formDialog({
    id: "cu-edit-dialog",
    title: "编辑客户",
    okText: "保存",
    build: () => [
      field("客户名称", text("name", p.name, 100)),
      field("客户号", text("customer_no", p.customer_no, 32)),
      field("客户类别", selectInput("category", CATEGORY_LABELS, p.category)),
      field("建档类型", selectInput("profile_type", PROFILE_LABELS, p.profile_type || "", { empty: "（未指定）" })),
      field("行业", text("industry", p.industry, 64)),
      field("地址", text("address", p.address, 300)),
      field("手机号", text("phone", "", 30), "留空则不修改；填写后以新号码加密保存"),
    ],
    submit: (f) => {
      const v = (n) => f.elements[n].value.trim();
      const body = {
        name: v("name"), customer_no: v("customer_no") || null, category: v("category"),
        profile_type: v("profile_type") || null, industry: v("industry") || null, address: v("address") || null,
      };
      if (v("phone")) body.phone = v("phone");
      return api(`/api/v1/customers/${customerId}`, { method: "PATCH", json: body });
    },
  });
  if (!saved) return;
  toast("客户信息已保存", "success");
  await load();
}

async function remove() {
  const p = sections.profile;
  if (!(await confirmDialog(`确定删除潜在客户“${p.name}”？删除后不可恢复。`, { okText: "删除", danger: true }))) return;
  try {
    await api(`/api/v1/customers/${customerId}`, { method: "DELETE" });
    location.replace("/app/customers");
  } catch (err) {
    failed(err, "删除失败");
  }
}

async function load() {
  const crs = mapView ? mapView.crs : "wgs84";
  const body = await api(`/api/v1/customers/${customerId}/360`, { query: { crs } });
  renderAll(body);
  return body;
}

document.getElementById("cu-edit").addEventListener("click", edit);
document.getElementById("cu-delete").addEventListener("click", remove);

({ me } = await initLayout());
perms = new Set((me && me.permissions) || []);
try {
  const body = await load();
  mapView = createCustomerMap(document.getElementById("cu-map"), {
    customerId,
    canEdit: perms.has("customer:edit"),
    config: JSON.parse(document.getElementById("cu-basemap-config").textContent || "{}"),
    onLocation: (loc) => {
      sections.location = loc;
      renderLocation(loc);
    },
  });
  if (mapView) mapView.show(body.sections.location);
  root.dataset.state = "ready";
} catch (err) {
  root.dataset.state = "error";
  if (err && err.status === 404) {
    root.replaceChildren(el("section", { class: "card" }, empty("客户不存在或不在您的数据权限范围内。")));
  } else {
    reportError(err, "加载客户360视图失败");
  }
} finally {
  root.removeAttribute("aria-busy");
}
