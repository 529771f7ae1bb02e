// 客群管理: groups I may see (全部 / 我的 / 待审核), an editor for a dynamic definition (kind × category, tags any/all,
// attribute rules, grids, managers) with a live preview (POST /api/v1/customer-groups/preview: total, by manager,
// by grid), save as draft, submit; a detail view with the review log (审核日志), approve / reject for group:approve
// holders, and the approved member snapshot, paged. Every rule (scope, who may review) is the API's.
import { api, ApiError, el, formatDateTime, formatNumber, initLayout } from "./common.js";
import { CATEGORY_LABELS, KIND_LABELS, label } from "./customer-ui.js";
import { createPicker, errorText, failed, field, searchGrids, searchUsers, selectInput, showFieldErrors, toast }
  from "./grid-ui.js";
import { createPolygonMap } from "./customer-groups-map.js";
import { createRuleBuilder, flattenErrors } from "./rule-builder.js";

const STATUS = { draft: "草稿", submitted: "待审核", approved: "已通过", rejected: "已驳回" };
const STATUS_BADGE = { draft: "neutral", submitted: "warn", approved: "ok", rejected: "off" };
const VISIBILITY = { private: "私有", public: "公开" };
const GROUP_CATEGORIES = { ...CATEGORY_LABELS, list: "名单客群" };
const ACTIONS = { submit: "提交审核", approve: "审核通过", reject: "驳回", withdraw: "撤回", reset: "修改后重置" };

const $ = (id) => document.getElementById(id);
const listCard = $("cg-list");
const editor = $("cg-editor");
const detail = $("cg-detail");
const table = $("cg-table");
const form = $("cg-form");
const state = { tab: "all", page: 1, pageSize: 20, total: 0, me: null, perms: new Set(), tags: [], editing: null,
  grids: new Map(), managers: new Map(), previewSeq: 0, timer: null, detail: null, memberPage: 1 };
let rules = null;
let shapeMap = null; // the optional drawn range; null when the map components are not installed

function show(section) {
  for (const s of [listCard, editor, detail]) s.hidden = s !== section;
  $("cg-new").hidden = section !== listCard || !state.perms.has("group:edit");
}

// ---------------------------------------------------------------- list

async function loadList() {
  const f = $("cg-filters").elements;
  const query = { page: state.page, page_size: state.pageSize, q: f.q.value.trim(), status: f.status.value,
    visibility: f.visibility.value };
  if (state.tab === "mine") query.mine = "true";
  if (state.tab === "review") query.status = "submitted";
  table.setAttribute("aria-busy", "true");
  try {
    const body = await api("/api/v1/customer-groups", { query });
    state.total = body.total;
    renderList(body.items || []);
  } catch (err) {
    failed(err, "加载客群失败");
  } finally {
    table.removeAttribute("aria-busy");
  }
}

function renderList(items) {
  table.tHead.replaceChildren(el("tr", {}, ["客群名称", "客户类型", "类别", "可见范围", "状态", "版本", "成员数", "更新时间", "操作"]
    .map((t, i) => el("th", { class: i === 6 ? "num" : i === 8 ? "actions" : null }, t))));
  const body = table.tBodies[0];
  if (!items.length) {
    body.replaceChildren(el("tr", {}, el("td", { colspan: 9, class: "data-table__empty" },
      state.tab === "review" ? "暂无待审核客群" : "暂无客群")));
  } else {
    body.replaceChildren(...items.map((g) => {
      const mine = state.me && g.created_by === state.me.id;
      const editable = mine && g.status !== "submitted";
      return el("tr", { dataset: { id: g.id } },
        el("td", {}, el("a", { href: `#group-${g.id}`, class: "cg-open", onclick: (e) => { e.preventDefault(); openDetail(g.id); } }, g.name)),
        el("td", {}, label(KIND_LABELS, g.kind)),
        el("td", {}, label(GROUP_CATEGORIES, g.category)),
        el("td", {}, label(VISIBILITY, g.visibility)),
        el("td", {}, el("span", { class: `badge badge--${STATUS_BADGE[g.status]}` }, label(STATUS, g.status))),
        el("td", {}, `v${g.version}`),
        el("td", { class: "num" }, g.member_count == null ? "—" : formatNumber(g.member_count)),
        el("td", { class: "nowrap" }, formatDateTime(g.updated_at)),
        el("td", { class: "actions" },
          el("button", { type: "button", class: "link-btn", onclick: () => openDetail(g.id) },
            g.status === "submitted" && canReview(g) ? "审核" : "查看"),
          editable && g.category !== "list"
            ? el("button", { type: "button", class: "link-btn", onclick: () => openEditor(g) }, "编辑") : null,
          mine && (g.status === "draft" || g.status === "rejected")
            ? el("button", { type: "button", class: "link-btn link-btn--danger", onclick: () => removeGroup(g) }, "删除") : null));
    }));
  }
  const pages = Math.max(1, Math.ceil(state.total / state.pageSize));
  $("cg-pager").hidden = false;
  $("cg-total").textContent = `共 ${formatNumber(state.total)} 个客群`;
  $("cg-pos").textContent = `${state.page} / ${pages}`;
}

const canReview = (g) => state.perms.has("group:approve") && state.me && g.created_by !== state.me.id
  && g.submitted_by !== state.me.id;

async function removeGroup(g) {
  if (!window.confirm(`删除客群“${g.name}”？`)) return;
  try {
    await api(`/api/v1/customer-groups/${g.id}`, { method: "DELETE" });
    toast("已删除", "success");
    loadList();
  } catch (err) {
    failed(err, "删除失败");
  }
}

// ---------------------------------------------------------------- editor

const inputs = {
  name: el("input", { type: "text", name: "name", id: "cg-name", maxlength: 100, required: true }),
  description: el("textarea", { name: "description", id: "cg-description", maxlength: 500 }),
  kind: selectInput("kind", KIND_LABELS, "person"),
  category: selectInput("category", CATEGORY_LABELS, "formal"),
  visibility: selectInput("visibility", VISIBILITY, "private"),
};
inputs.kind.id = "cg-kind";
inputs.category.id = "cg-category";
inputs.visibility.id = "cg-visibility";
const tagsAny = el("div", { class: "cw-checks", id: "cg-tags-any", dataset: { name: "definition.tags" } });
const tagsAll = el("div", { class: "cw-checks", id: "cg-tags-all" });
const gridChips = el("div", { class: "cw-chips", id: "cg-grid-chips" });
const managerChips = el("div", { class: "cw-chips", id: "cg-manager-chips" });

function chipList(map, holder) {
  holder.replaceChildren(...[...map.values()].map((item) => el("span", { class: "cw-chip" }, item.label,
    el("button", { type: "button", "aria-label": `移除${item.label}`, onclick: () => { map.delete(item.id); chipList(map, holder); schedulePreview(); } }, "×"))));
}
const gridPicker = createPicker({ name: "grid_pick", id: "cg-grid", placeholder: "输入网格名称 / 编码", search: searchGrids(), single: false,
  onPick: (item) => { state.grids.set(item.id, item); chipList(state.grids, gridChips); schedulePreview(); } });
const managerPicker = createPicker({ name: "manager_pick", id: "cg-manager", placeholder: "输入客户经理姓名", search: searchUsers(), single: false,
  onPick: (item) => { state.managers.set(item.id, item); chipList(state.managers, managerChips); schedulePreview(); } });

function tagChecks(holder, kind) {
  holder.replaceChildren(...(state.tags.length ? state.tags.map((t) => el("label", {},
    el("input", { type: "checkbox", value: t.id, dataset: { kind }, onchange: schedulePreview }), t.name))
    : [el("span", { class: "cw-muted" }, "暂无可用标签")]));
}

function buildForm() {
  $("cg-form-fields").replaceChildren(
    field("客群名称", inputs.name),
    field("可见范围", inputs.visibility),
    field("客户类型", inputs.kind),
    field("客户类别", inputs.category),
    el("div", { class: "cw-wide" }, field("说明", inputs.description)),
    el("div", { class: "cw-wide" }, field("标签（满足任一）", tagsAny)),
    el("div", { class: "cw-wide" }, field("标签（全部满足）", tagsAll)),
    el("div", {}, field("网格（含下级）", el("div", { dataset: { name: "definition.grid_ids" } }, gridPicker.element, gridChips))),
    state.perms.has("user:read")
      ? el("div", {}, field("客户经理（管户）", el("div", { dataset: { name: "definition.manager_ids" } }, managerPicker.element, managerChips)))
      : null,
  );
  for (const key of ["kind", "category"]) inputs[key].addEventListener("change", schedulePreview);
}

function definition() {
  const checked = (holder) => [...holder.querySelectorAll("input:checked")].map((i) => Number(i.value));
  const def = {};
  const any = checked(tagsAny);
  const all = checked(tagsAll);
  if (any.length || all.length) def.tags = { ...(any.length ? { any } : {}), ...(all.length ? { all } : {}) };
  const rule = rules.value();
  if (rule) def.rule = rule;
  if (state.grids.size) def.grid_ids = [...state.grids.keys()].map(Number);
  if (state.managers.size) def.manager_ids = [...state.managers.keys()].map(Number);
  const polygon = shapeMap && shapeMap.value();
  if (polygon) {
    def.polygon = polygon;
    def.crs = "wgs84";
  }
  return def;
}

function schedulePreview() {
  clearTimeout(state.timer);
  state.timer = setTimeout(runPreview, 350);
}

function countRows(tbody, rows, what) {
  tbody.replaceChildren(...(rows.length ? rows.map((r) => el("tr", {},
    el("td", {}, r.name || (r.user_id === null || r.grid_id === null ? `（无${what}）` : "（范围外）")),
    el("td", { class: "num" }, formatNumber(r.count)))) : [el("tr", {}, el("td", { class: "data-table__empty" }, "—"))]));
}

async function runPreview() {
  const seq = ++state.previewSeq;
  const box = $("cg-preview");
  const errBox = $("cg-preview-error");
  box.setAttribute("aria-busy", "true");
  try {
    const body = await api("/api/v1/customer-groups/preview", { method: "POST",
      json: { kind: inputs.kind.value, category: inputs.category.value, definition: definition(), top: 10 } });
    if (seq !== state.previewSeq) return;
    errBox.hidden = true;
    rules.showErrors({}, "definition.rule");
    const polygonSlot = form.querySelector('.ge-field__error[data-for="definition.polygon"]');
    if (polygonSlot) polygonSlot.textContent = "";
    $("cg-preview-total").textContent = formatNumber(body.total);
    $("cg-preview-managers").textContent = formatNumber(body.managers);
    $("cg-preview-grids").textContent = formatNumber(body.grids);
    countRows($("cg-by-manager").tBodies[0], body.by_manager || [], "客户经理");
    countRows($("cg-by-grid").tBodies[0], body.by_grid || [], "网格");
    box.dataset.total = String(body.total);
  } catch (err) {
    if (seq !== state.previewSeq) return;
    const rest = rules.showErrors(flattenErrors(err.errors), "definition.rule");
    const polygonSlot = form.querySelector('.ge-field__error[data-for="definition.polygon"]');
    if (polygonSlot) polygonSlot.textContent = rest["definition.polygon"] || "";
    const extra = Object.entries(rest).map(([k, v]) => `${k}：${v}`).join("；");
    errBox.textContent = [errorText(err, "预览失败"), extra].filter(Boolean).join(" ");
    errBox.hidden = false;
    $("cg-preview-total").textContent = "—";
  } finally {
    if (seq === state.previewSeq) box.removeAttribute("aria-busy");
  }
}

/** The definition keeps ids only: fetch the names of the chips (ids I may not see keep their number). */
function nameChips(map, holder, path) {
  for (const item of map.values()) {
    api(path(item.id)).then((body) => {
      if (map.get(item.id) === item && body && body.name) {
        item.label = body.name;
        chipList(map, holder);
      }
    }).catch(() => {});
  }
}

function openEditor(group) {
  state.editing = group || null;
  $("cg-editor-title").textContent = group ? `编辑客群：${group.name}` : "新建客群";
  showFieldErrors(form, null);
  const def = (group && group.definition) || {};
  inputs.name.value = group ? group.name : "";
  inputs.description.value = (group && group.description) || "";
  inputs.kind.value = group ? group.kind : "person";
  inputs.category.value = group ? group.category : "formal";
  inputs.visibility.value = group ? group.visibility : "private";
  inputs.kind.disabled = inputs.category.disabled = Boolean(group);
  tagChecks(tagsAny, "any");
  tagChecks(tagsAll, "all");
  const tags = def.tags || {};
  for (const [holder, ids] of [[tagsAny, tags.any || []], [tagsAll, tags.all || []]]) {
    holder.querySelectorAll("input").forEach((i) => { i.checked = ids.includes(Number(i.value)); });
  }
  state.grids = new Map((def.grid_ids || []).map((id) => [id, { id, label: `网格 ${id}` }]));
  state.managers = new Map((def.manager_ids || []).map((id) => [id, { id, label: `用户 ${id}` }]));
  chipList(state.grids, gridChips);
  chipList(state.managers, managerChips);
  nameChips(state.grids, gridChips, (id) => `/api/v1/grids/${id}`);
  if (state.perms.has("user:read")) nameChips(state.managers, managerChips, (id) => `/api/v1/users/${id}`);
  rules.set(def.rule || null);
  show(editor);
  if (shapeMap) {
    shapeMap.refresh();
    shapeMap.set(def.polygon || null);
  }
  runPreview();
}

async function save(submit) {
  showFieldErrors(form, null);
  if (!inputs.name.value.trim()) {
    showFieldErrors(form, { status: 422, errors: { name: ["请填写客群名称"] } });
    return;
  }
  const payload = { name: inputs.name.value.trim(), description: inputs.description.value.trim() || null,
    visibility: inputs.visibility.value, definition: definition() };
  try {
    let group;
    if (state.editing) {
      group = await api(`/api/v1/customer-groups/${state.editing.id}`, { method: "PATCH", json: payload });
    } else {
      group = await api("/api/v1/customer-groups", { method: "POST",
        json: { ...payload, kind: inputs.kind.value, category: inputs.category.value } });
    }
    state.editing = group;
    if (submit) {
      group = await api(`/api/v1/customer-groups/${group.id}/submit`, { method: "POST", json: {} });
      toast(`已提交审核：${group.name}`, "success");
    } else {
      toast(`草稿已保存：${group.name}`, "success");
    }
    await openDetail(group.id);
  } catch (err) {
    if (err.redirecting) return;
    const flat = flattenErrors(err.errors);
    const rest = rules.showErrors(flat, "definition.rule");
    showFieldErrors(form, err instanceof ApiError ? new ApiError(err.status, { ...err.body, errors: rest }) : err);
  }
}

// ---------------------------------------------------------------- detail, review, members

async function openDetail(id) {
  try {
    const [g, reviews] = await Promise.all([api(`/api/v1/customer-groups/${id}`),
      api(`/api/v1/customer-groups/${id}/reviews`)]);
    state.detail = g;
    state.memberPage = 1;
    $("cg-detail-title").textContent = g.name;
    const info = [["状态", label(STATUS, g.status)], ["版本", `v${g.version}`], ["客户类型", label(KIND_LABELS, g.kind)],
      ["类别", label(GROUP_CATEGORIES, g.category)], ["可见范围", label(VISIBILITY, g.visibility)],
      ["成员数（快照）", g.member_count == null ? "—" : formatNumber(g.member_count)],
      ["提交时间", formatDateTime(g.submitted_at) || "—"], ["审核意见", g.review_comment || "—"], ["说明", g.description || "—"]];
    $("cg-detail-info").replaceChildren(...info.map(([k, v]) => el("div", {}, el("dt", {}, k), el("dd", {}, v))));
    $("cg-detail-info").dataset.status = g.status;
    $("cg-review-box").hidden = !(g.status === "submitted" && canReview(g));
    $("cg-owner-actions").hidden = !(g.status === "submitted" && state.me && g.created_by === state.me.id);
    $("cg-review-comment").value = "";
    $("cg-review-error").hidden = true;
    $("cg-reviews").replaceChildren(...(reviews.length ? reviews.map((r) => el("li", { dataset: { action: r.action } },
      el("b", {}, label(ACTIONS, r.action)), ` · v${r.version} · ${r.actor_name || `用户 ${r.actor_user_id}`} · `,
      formatDateTime(r.created_at), r.member_count != null ? ` · 成员 ${formatNumber(r.member_count)}` : "",
      r.comment ? el("div", { class: "cw-muted" }, `意见：${r.comment}`) : null))
      : [el("li", {}, "暂无审核记录")]));
    show(detail);
    loadMembers();
  } catch (err) {
    failed(err, "打开客群失败");
  }
}

async function loadMembers() {
  const g = state.detail;
  const tbl = $("cg-members");
  tbl.tHead.replaceChildren(el("tr", {}, ["客户名称", "类型", "类别", "证件号码", "手机号"].map((t) => el("th", {}, t))));
  if (g.status !== "approved") {
    tbl.tBodies[0].replaceChildren(el("tr", {}, el("td", { colspan: 5, class: "data-table__empty" }, "审核通过后生成成员快照")));
    $("cg-members-pos").textContent = "";
    return;
  }
  try {
    const body = await api(`/api/v1/customer-groups/${g.id}/members`, { query: { page: state.memberPage, page_size: 20 } });
    tbl.tBodies[0].replaceChildren(...(body.items.length ? body.items.map((m) => el("tr", {},
      el("td", {}, el("a", { href: `/app/customers/${m.id}` }, m.name)), el("td", {}, label(KIND_LABELS, m.kind)),
      el("td", {}, label(CATEGORY_LABELS, m.category)), el("td", { class: "mono" }, m.id_number_mask || m.uscc_mask || "—"),
      el("td", { class: "mono" }, m.phone_mask || "—")))
      : [el("tr", {}, el("td", { colspan: 5, class: "data-table__empty" }, "本人范围内无成员"))]));
    const pages = Math.max(1, Math.ceil(body.total / 20));
    $("cg-members-pos").textContent = `${state.memberPage} / ${pages}（本人范围内 ${formatNumber(body.total)} 户）`;
    $("cg-members-prev").disabled = state.memberPage <= 1;
    $("cg-members-next").disabled = state.memberPage >= pages;
  } catch (err) {
    failed(err, "加载成员失败");
  }
}

async function review(action) {
  const comment = $("cg-review-comment").value.trim();
  const errBox = $("cg-review-error");
  if (action === "reject" && !comment) {
    errBox.textContent = "驳回时请填写审核意见";
    errBox.hidden = false;
    return;
  }
  try {
    const g = await api(`/api/v1/customer-groups/${state.detail.id}/${action}`, { method: "POST", json: { comment: comment || null } });
    toast(action === "approve" ? `已审核通过，成员 ${formatNumber(g.member_count)} 户` : "已驳回", "success");
    openDetail(g.id);
  } catch (err) {
    errBox.textContent = errorText(err, action === "approve" ? "审核失败" : "驳回失败") || "";
    errBox.hidden = false;
  }
}

// ---------------------------------------------------------------- wiring

document.querySelectorAll(".cw-tab").forEach((tab) => tab.addEventListener("click", () => {
  document.querySelectorAll(".cw-tab").forEach((t) => t.setAttribute("aria-selected", String(t === tab)));
  state.tab = tab.dataset.tab;
  state.page = 1;
  loadList();
}));
$("cg-filters").addEventListener("submit", (e) => { e.preventDefault(); state.page = 1; loadList(); });
$("cg-pager").addEventListener("click", (e) => {
  const dir = e.target.dataset && e.target.dataset.page;
  if (!dir) return;
  const pages = Math.max(1, Math.ceil(state.total / state.pageSize));
  state.page = Math.min(pages, Math.max(1, state.page + (dir === "next" ? 1 : -1)));
  loadList();
});
$("cg-new").addEventListener("click", () => openEditor(null));
$("cg-cancel").addEventListener("click", () => { show(listCard); loadList(); });
$("cg-detail-back").addEventListener("click", () => { show(listCard); loadList(); });
$("cg-save").addEventListener("click", () => save(false));
$("cg-submit").addEventListener("click", () => save(true));
$("cg-add-rule").addEventListener("click", () => rules.addRow());
$("cg-approve").addEventListener("click", () => review("approve"));
$("cg-withdraw").addEventListener("click", async () => {
  try {
    const g = await api(`/api/v1/customer-groups/${state.detail.id}/withdraw`, { method: "POST", json: {} });
    toast("已撤回，客群回到草稿", "success");
    openDetail(g.id);
  } catch (err) {
    failed(err, "撤回失败");
  }
});
$("cg-reject").addEventListener("click", () => review("reject"));
$("cg-members-prev").addEventListener("click", () => { state.memberPage -= 1; loadMembers(); });
$("cg-members-next").addEventListener("click", () => { state.memberPage += 1; loadMembers(); });
$("cg-rule-join").addEventListener("change", schedulePreview);
form.addEventListener("input", (e) => {
  // names, descriptions and the pickers' search boxes do not change the members
  if (e.target === inputs.name || e.target === inputs.description || e.target.classList.contains("gp-picker__input")) return;
  schedulePreview();
});

const { me } = await initLayout();
state.me = me;
state.perms = new Set((me && me.permissions) || []);
$("cg-tab-review").hidden = !state.perms.has("group:approve");
try {
  const [fields, tags] = await Promise.all([api("/api/v1/tags/fields"), api("/api/v1/tags", { query: { page_size: 100 } })]);
  state.tags = tags.items || [];
  rules = createRuleBuilder({ fields, join: $("cg-rule-join"), onChange: schedulePreview });
  $("cg-rules").replaceChildren(rules.element);
} catch (err) {
  failed(err, "加载标签失败");
}
buildForm();
const mapBox = $("cg-map");
if (mapBox) {
  show(editor); // Leaflet needs a laid-out container
  shapeMap = createPolygonMap(mapBox, schedulePreview);
  $("cg-draw").addEventListener("click", () => shapeMap && shapeMap.draw());
  $("cg-edit-shape").addEventListener("click", () => shapeMap && shapeMap.edit());
  $("cg-clear-shape").addEventListener("click", () => shapeMap && shapeMap.clear());
}
show(listCard);
if (new URLSearchParams(location.search).get("tab") === "review" && state.perms.has("group:approve")) {
  $("cg-tab-review").click();
} else {
  loadList();
}
document.body.dataset.ready = "true";
