// 网格管理 › left column: the lazy grid tree, the search / filter result list and the filters.
import { api, el } from "./common.js";
import { failed } from "./grid-ui.js";
import {
  $, GRIDS, LEVEL_LABELS, LEVEL_ORDER, LINE_LABELS, VTYPE_LABELS, levelBadge, pathIds, state,
} from "./grid-editor-core.js";
import { selectGrid } from "./grid-editor-panel.js";

// ---------------------------------------------------------------- tree (lazy) and search results

export function nodeRow(item) {
  const hasChildren = (item.children || 0) > 0;
  const row = el(
    "div",
    { class: "ge-node__row", dataset: { id: item.id, code: item.code }, tabindex: "0" },
    hasChildren
      ? el("button", { type: "button", class: "ge-node__caret", "aria-label": "展开/收起" })
      : el("span", { class: "ge-node__caret ge-node__caret--leaf", "aria-hidden": "true" }),
    el("span", { class: "ge-node__name", title: `${item.name}（${item.code}）` }, item.name),
    levelBadge(item),
    item.status === "inactive" ? el("span", { class: "ge-badge ge-badge--off" }, "停用") : null,
    hasChildren ? el("span", { class: "ge-node__count", title: "下级网格数" }, item.children) : null,
  );
  return row;
}

export function treeItem(item) {
  state.nodes.set(item.id, item);
  const li = el("li", { class: "ge-node", role: "treeitem", dataset: { id: item.id }, "aria-expanded": "false" });
  const row = nodeRow(item);
  row.addEventListener("click", (e) => {
    if (e.target.closest(".ge-node__caret") && item.children) toggleNode(li);
    else selectGrid(item.id, { reveal: false });
  });
  row.addEventListener("keydown", (e) => {
    if (e.key === "Enter") selectGrid(item.id, { reveal: false });
    if (e.key === "ArrowRight" && item.children && li.getAttribute("aria-expanded") !== "true") toggleNode(li);
    if (e.key === "ArrowLeft" && li.getAttribute("aria-expanded") === "true") toggleNode(li);
  });
  li.append(row);
  if (state.grid && state.grid.id === item.id) row.classList.add("is-selected");
  return li;
}

export async function fetchChildren(parentId) {
  const body = await api(GRIDS, { query: { parent_id: parentId, page_size: 500 } });
  const items = body.items || [];
  items.forEach((item) => state.nodes.set(item.id, item));
  return items;
}

/** Top of the tree: parentless grids; for a scoped user whose top grids have hidden parents, the top level. */
export async function fetchRoots() {
  const body = await api(GRIDS, { query: { roots: true, page_size: 500 } });
  const roots = body.items || [];
  roots.forEach((item) => state.nodes.set(item.id, item));
  if (roots.some((g) => g.kind === "physical")) return roots;
  for (const level of LEVEL_ORDER) {
    const page = await api(GRIDS, { query: { level, kind: "physical", page_size: 500 } });
    if ((page.items || []).length) return [...page.items, ...roots];
  }
  return roots;
}

export async function toggleNode(li, open = li.getAttribute("aria-expanded") !== "true") {
  li.setAttribute("aria-expanded", String(open));
  let group = li.querySelector(":scope > ul");
  if (!open || group) return;
  group = el("ul", { role: "group" }, el("li", { class: "ge-tree__empty" }, "加载中…"));
  li.append(group);
  try {
    const items = await fetchChildren(Number(li.dataset.id));
    group.replaceChildren(...items.map(treeItem));
    if (!items.length) group.append(el("li", { class: "ge-tree__empty" }, "无下级网格"));
  } catch (err) {
    group.replaceChildren(el("li", { class: "ge-tree__empty" }, "加载失败"));
    failed(err, "加载下级网格失败");
  }
}

export async function loadTree() {
  const tree = $("ge-tree");
  tree.setAttribute("aria-busy", "true");
  try {
    const roots = await fetchRoots();
    tree.replaceChildren(
      roots.length ? el("ul", { role: "group" }, roots.map(treeItem)) : el("div", { class: "ge-tree__empty" }, "暂无网格"),
    );
  } catch (err) {
    tree.replaceChildren(el("div", { class: "ge-tree__empty" }, "网格加载失败"));
    failed(err, "加载网格树失败");
  } finally {
    tree.setAttribute("aria-busy", "false");
  }
}

/** Re-load one node's children (after create/split/merge/delete) and its count. */
export async function refreshTreeNode(parentId) {
  if (isFiltering()) return runSearch();
  const li = parentId && $("ge-tree").querySelector(`li.ge-node[data-id="${parentId}"]`);
  if (!li) return loadTree();
  const items = await fetchChildren(parentId).catch(() => null);
  if (!items) return undefined;
  const fresh = treeItem({ ...(state.nodes.get(parentId) || {}), id: parentId, children: items.length });
  li.replaceWith(fresh);
  if (items.length) await toggleNode(fresh, true);
  return undefined;
}

/** Names for the breadcrumb: load the ancestors' sibling lists that are not known yet (hidden ones stay out). */
export async function ensureAncestors(grid) {
  const ids = pathIds(grid.path).slice(0, -1);
  for (let i = 0; i < ids.length; i += 1) {
    if (state.nodes.has(ids[i])) continue;
    if (i === 0) await fetchRoots().catch(() => null);
    else if (state.nodes.has(ids[i - 1])) await fetchChildren(ids[i - 1]).catch(() => null);
  }
}

/** Expand the tree down to the grid and highlight it. */
export async function revealInTree(grid) {
  const tree = $("ge-tree");
  for (const id of pathIds(grid.path).slice(0, -1)) {
    const li = tree.querySelector(`li.ge-node[data-id="${id}"]`);
    if (li && li.getAttribute("aria-expanded") !== "true") await toggleNode(li, true);
  }
  markSelectedInList();
  const row = tree.querySelector(`.ge-node__row[data-id="${grid.id}"], .ge-result[data-id="${grid.id}"]`);
  if (row) row.scrollIntoView({ block: "nearest" });
}

export function markSelectedInList() {
  const id = state.grid ? String(state.grid.id) : null;
  $("ge-tree").querySelectorAll(".ge-node__row, .ge-result").forEach((r) => {
    r.classList.toggle("is-selected", r.dataset.id === id);
  });
}

export function filters() {
  return {
    q: $("ge-q").value.trim(),
    level: $("ge-f-level").value,
    virtual_type: $("ge-f-vtype").value,
    business_line: $("ge-f-line").value,
  };
}

export function isFiltering() {
  return Object.values(filters()).some(Boolean);
}

export function resultRow(item) {
  state.nodes.set(item.id, item);
  return el(
    "li",
    {
      class: "ge-result",
      dataset: { id: item.id, code: item.code },
      tabindex: "0",
      onclick: () => selectGrid(item.id),
      onkeydown: (e) => e.key === "Enter" && selectGrid(item.id),
    },
    el("div", { class: "ge-result__main" }, el("span", { class: "ge-node__name" }, item.name), levelBadge(item)),
    el("div", { class: "ge-result__sub mono" }, item.code, item.children ? ` · 下级 ${item.children}` : ""),
  );
}

let searchPage = 1;
let searchSeq = 0;
export async function runSearch(more = false) {
  const tree = $("ge-tree");
  const filtering = isFiltering();
  $("ge-clear-filters").hidden = !filtering;
  $("ge-list-title").textContent = filtering ? "搜索结果" : "网格树";
  if (!filtering) return loadTree();
  searchPage = more ? searchPage + 1 : 1;
  const seq = ++searchSeq;
  try {
    const body = await api(GRIDS, { query: { ...filters(), page: searchPage, page_size: 50 } });
    if (seq !== searchSeq) return undefined;
    let list = tree.querySelector("ul.ge-results");
    if (!more || !list) {
      list = el("ul", { class: "ge-results" });
      tree.replaceChildren(list);
    }
    tree.querySelector(".ge-more")?.remove();
    list.append(...(body.items || []).map(resultRow));
    if (!list.children.length) tree.replaceChildren(el("div", { class: "ge-tree__empty" }, "没有符合条件的网格"));
    const shown = list.children.length;
    if (body.total > shown) {
      tree.append(el("button", { type: "button", class: "link-btn ge-more", onclick: () => runSearch(true) },
        `加载更多（已显示 ${shown} / ${body.total}）`));
    }
    markSelectedInList();
  } catch (err) {
    failed(err, "搜索失败");
  }
  return undefined;
}

export function initFilters() {
  const fill = (select, labels) => select.append(...Object.entries(labels).map(([v, t]) => el("option", { value: v }, t)));
  fill($("ge-f-level"), LEVEL_LABELS);
  fill($("ge-f-vtype"), VTYPE_LABELS);
  fill($("ge-f-line"), LINE_LABELS);
  let timer = null;
  $("ge-q").addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(() => runSearch(), 300);
  });
  for (const id of ["ge-f-level", "ge-f-vtype", "ge-f-line"]) $(id).addEventListener("change", () => runSearch());
  $("ge-clear-filters").addEventListener("click", () => {
    $("ge-q").value = "";
    ["ge-f-level", "ge-f-vtype", "ge-f-line"].forEach((id) => {
      $(id).value = "";
    });
    runSearch().then(() => state.grid && revealInTree(state.grid));
  });
}
