// Shared helpers for the GridMarket pages: tokens, the JSON API client, downloads, DOM building
// and the app layout (header + menu sidebar). Pages hold no business rules: the API decides.

const ACCESS_KEY = "gm.access_token";
const REFRESH_KEY = "gm.refresh_token";
const NAV_STATE_KEY = "gm.nav.open";
export const API_PREFIX = "/api/v1";

export const DATA_SCOPE_LABELS = {
  self: "本人",
  org: "本机构",
  org_subtree: "本机构及下级",
  all: "全行",
};

export const ORG_LEVEL_LABELS = {
  head_office: "总行",
  branch: "分行",
  sub_branch: "支行",
  outlet: "网点",
};

// ---------------------------------------------------------------- tokens

export const tokens = {
  get access() {
    return sessionStorage.getItem(ACCESS_KEY);
  },
  get refresh() {
    return sessionStorage.getItem(REFRESH_KEY);
  },
  save(body) {
    if (body && body.access_token) sessionStorage.setItem(ACCESS_KEY, body.access_token);
    if (body && body.refresh_token) sessionStorage.setItem(REFRESH_KEY, body.refresh_token);
  },
  clear() {
    sessionStorage.removeItem(ACCESS_KEY);
    sessionStorage.removeItem(REFRESH_KEY);
  },
};

/** A same-origin path to return to after login, or null when `value` is not one. */
export function safeNextPath(value) {
  if (typeof value !== "string" || !value.startsWith("/") || value.startsWith("//") || value.startsWith("/\\")) {
    return null;
  }
  return value.startsWith("/login") ? null : value;
}

/** Forget the tokens and go to the login page, remembering where we were. */
export function goToLogin() {
  tokens.clear();
  const next = safeNextPath(location.pathname + location.search);
  location.replace(next ? `/login?next=${encodeURIComponent(next)}` : "/login");
}

// ---------------------------------------------------------------- API client

/** An API error carrying the JSON error body {code, status, message, errors}. */
export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || `请求失败（HTTP ${status}）`);
    this.name = "ApiError";
    this.status = status;
    this.code = body && body.code;
    this.errors = body && body.errors;
    this.body = body;
    this.redirecting = false;
  }
}

async function readJsonSafely(res) {
  try {
    return await res.json();
  } catch {
    return null;
  }
}

function buildUrl(path, query) {
  const url = new URL(path.startsWith("/") ? path : `${API_PREFIX}/${path}`, location.origin);
  for (const [key, value] of Object.entries(query || {})) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(key, value);
  }
  return url.pathname + url.search;
}

let refreshInFlight = null;

/** Trade the refresh token for new tokens once; resolves true on success. Concurrent callers share one call. */
function refreshTokens() {
  const refreshToken = tokens.refresh;
  if (!refreshToken) return Promise.resolve(false);
  if (!refreshInFlight) {
    refreshInFlight = fetch(`${API_PREFIX}/auth/refresh`, {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify({ refresh_token: refreshToken }),
    })
      .then(async (res) => {
        if (!res.ok) return false;
        tokens.save(await res.json());
        return Boolean(tokens.access);
      })
      .catch(() => false)
      .finally(() => {
        refreshInFlight = null;
      });
  }
  return refreshInFlight;
}

/**
 * fetch() against the API with the Bearer token. On 401 tries one token refresh, else goes to /login.
 * Resolves to the Response when it is 2xx; otherwise rejects with an ApiError.
 */
export async function apiFetch(path, { method = "GET", query, json, body, headers = {} } = {}) {
  const url = buildUrl(path, query);
  let sentWith = null;
  const send = () => {
    const h = { Accept: "application/json", ...headers };
    sentWith = tokens.access;
    if (sentWith) h.Authorization = `Bearer ${sentWith}`;
    let payload = body;
    if (json !== undefined) {
      h["Content-Type"] = "application/json";
      payload = JSON.stringify(json);
    }
    return fetch(url, { method, headers: h, body: payload, credentials: "same-origin" });
  };

  let res = await send();
  if (res.status === 401) {
    // Another call may already have refreshed the tokens (refresh tokens rotate): reuse, don't refresh twice.
    const fresh = tokens.access && tokens.access !== sentWith;
    if (fresh || (await refreshTokens())) res = await send();
  }
  if (res.status === 401) {
    const err = new ApiError(401, (await readJsonSafely(res)) || { message: "登录已失效，请重新登录" });
    err.redirecting = true;
    goToLogin();
    throw err;
  }
  if (!res.ok) throw new ApiError(res.status, await readJsonSafely(res));
  return res;
}

/** Call the API and return its parsed JSON body (null for 204). */
export async function api(path, options) {
  const res = await apiFetch(path, options);
  if (res.status === 204) return null;
  const type = res.headers.get("Content-Type") || "";
  return type.includes("json") ? res.json() : res.text();
}

function filenameFromDisposition(header) {
  if (!header) return null;
  const star = /filename\*\s*=\s*([^']*)'[^']*'([^;]+)/i.exec(header);
  if (star) {
    try {
      return decodeURIComponent(star[2].trim().replace(/^"|"$/g, ""));
    } catch {
      /* fall through to the plain filename */
    }
  }
  const plain = /filename\s*=\s*"?([^";]+)"?/i.exec(header);
  return plain ? plain[1].trim() : null;
}

/** GET a file with the Bearer header and hand it to the browser as a download. */
export async function download(path, { query, fallbackName = "download" } = {}) {
  const res = await apiFetch(path, { query, headers: { Accept: "*/*" } });
  const blob = await res.blob();
  const name = filenameFromDisposition(res.headers.get("Content-Disposition")) || fallbackName;
  const href = URL.createObjectURL(blob);
  const link = el("a", { href, download: name, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(href), 10_000);
  return name;
}

// ---------------------------------------------------------------- DOM and formatting

/** Create an element: el("a", {class: "x", href: "/", onclick: fn, dataset: {k: "v"}}, "text", child). */
export function el(tag, attrs = {}, ...children) {
  const node = tag === "svg" || tag === "path" || tag === "circle" || tag === "rect"
    ? document.createElementNS("http://www.w3.org/2000/svg", tag)
    : document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.setAttribute("class", value);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
    else if (value === true) node.setAttribute(key, "");
    else node.setAttribute(key, String(value));
  }
  appendChildren(node, children);
  return node;
}

function appendChildren(node, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) appendChildren(node, child);
    else node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function formatDateTime(value) {
  if (!value) return "";
  const d = new Date(value);
  if (Number.isNaN(d.getTime())) return String(value);
  const p = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

export function formatNumber(value, digits = 0) {
  if (value === undefined || value === null || value === "") return "";
  const n = Number(value);
  if (Number.isNaN(n)) return String(value);
  return n.toLocaleString("zh-CN", { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

/** Show (or with no message, hide) the error strip at the top of the content area. */
export function showPageAlert(message, kind = "error") {
  const box = document.getElementById("page-alert");
  if (!box) return;
  box.className = `alert alert--${kind}`;
  box.textContent = message || "";
  box.hidden = !message;
}

/** Report a failed call on the page unless we are already leaving for /login. */
export function reportError(err, prefix = "") {
  if (err && err.redirecting) return;
  console.error(err);
  const text = err instanceof ApiError ? err.message : "网络异常，请检查网络连接后重试。";
  showPageAlert(prefix ? `${prefix}：${text}` : text);
}

// ---------------------------------------------------------------- current user

export function userDisplayName(me) {
  return (me && (me.name || me.username)) || "";
}

export function userOrgName(me) {
  if (!me) return "";
  return me.org_name || (me.org && me.org.name) || "";
}

/** Role names from either [{name}] or ["name"]. */
export function roleNames(roles) {
  return (roles || []).map((r) => (typeof r === "string" ? r : r.name || r.code)).filter(Boolean);
}

/** Chinese label(s) of the user's data scope as reported by the API. */
export function dataScopeLabel(me) {
  if (!me) return "";
  const scope = me.data_scope || (me.scope && me.scope.data_scope) || me.scope;
  if (typeof scope === "string") return DATA_SCOPE_LABELS[scope] || scope;
  const labels = (me.roles || [])
    .map((r) => r && r.data_scope)
    .filter(Boolean)
    .map((s) => DATA_SCOPE_LABELS[s] || s);
  return [...new Set(labels)].join("、");
}

// ---------------------------------------------------------------- sidebar

const ICON_PATHS = {
  home: "M3 11l9-7 9 7v9a1 1 0 0 1-1 1h-5v-6h-6v6H4a1 1 0 0 1-1-1z",
  map: "M9 4l-6 2.5v13L9 17l6 3 6-2.5v-13L15 7 9 4zM9 4v13M15 7v13",
  grid: "M4 4h7v7H4zM13 4h7v7h-7zM4 13h7v7H4zM13 13h7v7h-7z",
  setting: "M12 9a3 3 0 1 0 0 6 3 3 0 0 0 0-6zM19.4 13a7.6 7.6 0 0 0 0-2l2-1.6-2-3.4-2.4 1a7 7 0 0 0-1.7-1L15 3.4h-4l-.4 2.6a7 7 0 0 0-1.7 1l-2.4-1-2 3.4 2 1.6a7.6 7.6 0 0 0 0 2l-2 1.6 2 3.4 2.4-1a7 7 0 0 0 1.7 1l.4 2.6h4l.4-2.6a7 7 0 0 0 1.7-1l2.4 1 2-3.4z",
  org: "M4 21V5a1 1 0 0 1 1-1h9a1 1 0 0 1 1 1v16M15 9h4a1 1 0 0 1 1 1v11M8 8h3M8 12h3M8 16h3M3 21h18",
  user: "M12 12a4 4 0 1 0 0-8 4 4 0 0 0 0 8zM4 21a8 8 0 0 1 16 0",
  team: "M9 11a3.5 3.5 0 1 0 0-7 3.5 3.5 0 0 0 0 7zM2 20a7 7 0 0 1 14 0M16 4.5a3.5 3.5 0 0 1 0 6.5M18 14a6 6 0 0 1 4 6",
  key: "M7.5 15.5a3.5 3.5 0 1 1 3.2-5H21v3h-2v2.5h-3V13.5h-5.3a3.5 3.5 0 0 1-3.2 2z",
  shield: "M12 3l8 3v6c0 4.8-3.4 8-8 9-4.6-1-8-4.2-8-9V6zM8.5 12l2.5 2.5 4.5-4.5",
  menu: "M4 6h16M4 12h16M4 18h16",
  book: "M5 4h11a3 3 0 0 1 3 3v13H8a3 3 0 0 1-3-3zM5 17a3 3 0 0 1 3-3h11",
  mobile: "M7 2h10a1 1 0 0 1 1 1v18a1 1 0 0 1-1 1H7a1 1 0 0 1-1-1V3a1 1 0 0 1 1-1zM11 18h2",
  audit: "M6 3h9l4 4v14H6zM14 3v5h5M9 12h7M9 16h7",
  chart: "M4 20V10M10 20V4M16 20v-7M22 20H2",
  flag: "M5 21V4M5 4h12l-2 4 2 4H5",
  task: "M9 11l3 3 8-8M20 12v7a1 1 0 0 1-1 1H5a1 1 0 0 1-1-1V5a1 1 0 0 1 1-1h11",
  customer: "M12 12a4 4 0 1 0 0-8 4 4 0 0 0 0 8zM4 21a8 8 0 0 1 16 0M17 3l2 2 3-3",
};
const ICON_ALIASES = {
  dashboard: "chart", cockpit: "chart", settings: "setting", system: "setting", gear: "setting",
  apartment: "org", bank: "org", branch: "org", orgs: "org", users: "team", role: "key", roles: "key",
  lock: "shield", safety: "shield", permission: "shield", permissions: "shield", menus: "menu", list: "menu",
  dict: "book", dictionary: "book", device: "mobile", devices: "mobile", phone: "mobile",
  log: "audit", history: "audit", "file-search": "audit", campaign: "flag", tasks: "task",
  customers: "customer", "environment": "map", location: "map", global: "map", appstore: "grid",
};

/** The icon for a menu node: its own `icon`, else one guessed from the last segment of its route. */
function menuIcon(name, route) {
  const fallback = typeof route === "string" ? route.split("/").filter(Boolean).pop() : "";
  const key = String(name || fallback || "").toLowerCase().replace(/^(icon-|el-icon-|ant-)/, "").replace(/-?outlined$/, "");
  const d = ICON_PATHS[key] || ICON_PATHS[ICON_ALIASES[key]];
  const svg = el("svg", { class: "nav__icon", viewBox: "0 0 24 24", "aria-hidden": "true" });
  if (d) svg.append(el("path", { d }));
  else svg.append(el("circle", { cx: 12, cy: 12, r: 3 }));
  return svg;
}

function loadNavState() {
  try {
    return JSON.parse(localStorage.getItem(NAV_STATE_KEY)) || {};
  } catch {
    return {};
  }
}

function saveNavState(code, open) {
  const state = loadNavState();
  state[code] = open;
  localStorage.setItem(NAV_STATE_KEY, JSON.stringify(state));
}

/** The menu route that best matches the current path: exact, else the longest parent path. */
function findActiveRoute(tree, path) {
  const routes = [];
  const walk = (nodes) => nodes.forEach((n) => {
    if (n.route) routes.push(n.route.replace(/\/+$/, "") || "/");
    walk(n.children || []);
  });
  walk(tree);
  if (routes.includes(path)) return path;
  const parents = routes.filter((r) => r !== "/" && r !== "/app" && path.startsWith(`${r}/`));
  return parents.sort((a, b) => b.length - a.length)[0] || null;
}

/** A menu route usable as a link: a same-origin absolute path, else null. */
export function menuHref(route) {
  return typeof route === "string" && route.startsWith("/") && !route.startsWith("//") && !route.startsWith("/\\")
    ? route
    : null;
}

function containsRoute(node, route) {
  return (node.children || []).some((c) => c.route === route || containsRoute(c, route));
}

function renderMenuNodes(nodes, level, ctx) {
  const list = el("ul", { class: `nav nav--level-${level}` });
  for (const node of nodes) {
    const children = node.children || [];
    const item = el("li", { class: "nav__item" });
    const pad = { style: `padding-left: ${12 + level * 16}px` };
    if (children.length) {
      const open = containsRoute(node, ctx.active) || (ctx.saved[node.code] ?? level === 0);
      const sub = renderMenuNodes(children, level + 1, ctx);
      const toggle = el(
        "button",
        { type: "button", class: "nav__link nav__toggle", "aria-expanded": String(open), ...pad },
        menuIcon(node.icon, node.route),
        el("span", { class: "nav__text" }, node.name),
        el("span", { class: "nav__caret", "aria-hidden": "true" }),
      );
      toggle.addEventListener("click", () => {
        const nowOpen = toggle.getAttribute("aria-expanded") !== "true";
        toggle.setAttribute("aria-expanded", String(nowOpen));
        item.classList.toggle("is-open", nowOpen);
        saveNavState(node.code, nowOpen);
      });
      item.classList.add("nav__item--group");
      item.classList.toggle("is-open", open);
      item.append(toggle, sub);
    } else {
      const href = menuHref(node.route);
      const isActive = Boolean(href) && href.replace(/\/+$/, "") === ctx.active;
      item.append(
        el(
          href ? "a" : "span",
          {
            class: `nav__link${isActive ? " is-active" : ""}${href ? "" : " is-disabled"}`,
            href,
            "aria-current": isActive ? "page" : null,
            ...pad,
          },
          menuIcon(node.icon, node.route),
          el("span", { class: "nav__text" }, node.name),
        ),
      );
    }
    list.append(item);
  }
  return list;
}

export function renderSidebar(tree) {
  const sidebar = document.getElementById("sidebar");
  if (!sidebar) return;
  const path = location.pathname.replace(/\/+$/, "") || "/";
  const ctx = { active: findActiveRoute(tree, path), saved: loadNavState() };
  sidebar.replaceChildren(
    tree.length ? renderMenuNodes(tree, 0, ctx) : el("div", { class: "sidebar__placeholder" }, "暂无可用菜单"),
  );
}

/** Flatten a menu tree to its leaf entries that have a route. */
export function menuLeaves(tree) {
  const out = [];
  const walk = (nodes) => nodes.forEach((n) => {
    if ((n.children || []).length) walk(n.children);
    else if (menuHref(n.route)) out.push(n);
  });
  walk(tree || []);
  return out;
}

// ---------------------------------------------------------------- layout

async function logout(button) {
  button.disabled = true;
  try {
    if (tokens.access) {
      await fetch(`${API_PREFIX}/auth/logout`, {
        method: "POST",
        headers: { Authorization: `Bearer ${tokens.access}`, Accept: "application/json" },
      });
    }
  } catch {
    /* leaving anyway */
  }
  tokens.clear();
  location.replace("/login");
}

function renderUser(me) {
  const who = document.getElementById("current-user");
  if (!who) return;
  const org = userOrgName(me);
  who.replaceChildren(
    el("span", { class: "topbar__username" }, userDisplayName(me)),
    org ? el("span", { class: "topbar__org" }, org) : null,
  );
}

/**
 * Set up the header and sidebar of an /app page. Resolves to {me, menus}; never resolves when there is
 * no token (the browser is sent to /login).
 */
export async function initLayout() {
  if (!tokens.access) {
    goToLogin();
    return new Promise(() => {});
  }
  const logoutBtn = document.getElementById("logout-btn");
  if (logoutBtn) logoutBtn.addEventListener("click", () => logout(logoutBtn));

  const [meResult, menuResult] = await Promise.allSettled([api("/api/v1/me"), api("/api/v1/me/menus")]);
  let me = null;
  let menus = [];
  if (meResult.status === "fulfilled") {
    me = meResult.value;
    renderUser(me);
  } else {
    reportError(meResult.reason, "获取当前用户失败");
  }
  if (menuResult.status === "fulfilled") {
    const value = menuResult.value;
    menus = Array.isArray(value) ? value : (value && value.items) || [];
    renderSidebar(menus);
  } else {
    const sidebar = document.getElementById("sidebar");
    if (sidebar) sidebar.replaceChildren(el("div", { class: "sidebar__placeholder" }, "菜单加载失败"));
    if (meResult.status === "fulfilled") reportError(menuResult.reason, "获取菜单失败");
  }
  return { me, menus };
}
