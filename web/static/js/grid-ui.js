// Small UI kit shared by the grid pages (网格管理 and its staff/rating panels, 网格平衡): toasts, a confirmation
// dialog, form fields with per-field API errors, and a search picker (combobox) over an API list endpoint.
// No business rules: the pickers only show what the API returns for the query typed.
import { api, ApiError, el, formatNumber } from "./common.js";

const PICKER_PAGE = 20;

// ---------------------------------------------------------------- toasts and dialogs

/** Show a short message in the page's toast area (#ge-toasts). */
export function toast(message, kind = "info", timeout = kind === "error" ? 9000 : 4000) {
  const holder = document.getElementById("ge-toasts");
  if (!holder) return;
  const box = el(
    "div",
    { class: `ge-toast ge-toast--${kind}`, role: kind === "error" ? "alert" : "status" },
    el("span", { class: "ge-toast__text" }, message),
    el("button", { type: "button", class: "ge-toast__close", "aria-label": "关闭", onclick: () => box.remove() }, "×"),
  );
  holder.append(box);
  setTimeout(() => box.remove(), timeout);
}

export function clearToasts() {
  const holder = document.getElementById("ge-toasts");
  if (holder) holder.replaceChildren();
}

/** The message to show for a failed call ("what: reason"); null while we are leaving for /login. */
export function errorText(err, what) {
  if (err && err.redirecting) return null;
  if (err instanceof ApiError) return what ? `${what}：${err.message}` : err.message;
  console.error(err);
  return what ? `${what}：网络异常，请稍后重试` : "网络异常，请稍后重试";
}

/** Report a failed call in a toast. */
export function failed(err, what) {
  const text = errorText(err, what);
  if (text) toast(text, "error");
}

export function confirmDialog(message, { okText = "确定", danger = false } = {}) {
  return new Promise((resolve) => {
    const dialog = el(
      "dialog",
      { class: "ge-dialog" },
      el("p", { class: "ge-dialog__text" }, message),
      el(
        "form",
        { method: "dialog", class: "ge-dialog__actions" },
        el("button", { class: "btn btn--sm", value: "cancel" }, "取消"),
        el("button", { class: `btn btn--sm ${danger ? "btn--danger" : "btn--primary"}`, value: "ok" }, okText),
      ),
    );
    dialog.addEventListener("close", () => {
      resolve(dialog.returnValue === "ok");
      dialog.remove();
    });
    document.body.append(dialog);
    dialog.showModal();
  });
}

// ---------------------------------------------------------------- form fields

/** A labelled field; API field errors for `input.name` (or `data-name`) appear under it. */
export function field(labelText, input, hint) {
  const key = input.name || (input.dataset && input.dataset.name) || "";
  return el("label", { class: "ge-field" }, el("span", { class: "ge-field__label" }, labelText), input,
    hint ? el("span", { class: "ge-field__hint" }, hint) : null,
    el("span", { class: "ge-field__error", dataset: { for: key } }));
}

export function selectInput(name, labels, value, { empty } = {}) {
  const opts = Object.entries(labels).map(([v, t]) => el("option", { value: v, selected: v === value }, t));
  return el("select", { name }, empty ? el("option", { value: "" }, empty) : null, opts);
}

/**
 * Put the API's field errors (422 `errors`) under the matching fields of `form`. Errors for fields that
 * have no slot, and the message of any other error (409 …), go to the form's `.ge-form__error` box if any.
 */
export function showFieldErrors(form, err) {
  form.querySelectorAll(".ge-field__error").forEach((n) => {
    n.textContent = "";
  });
  const box = form.querySelector(".ge-form__error");
  if (box) {
    box.textContent = "";
    box.hidden = true;
  }
  if (!err) return;
  const errors = (err && err.errors) || {};
  const unplaced = [];
  for (const [name, msgs] of Object.entries(errors)) {
    const text = [].concat(msgs).map((m) => (typeof m === "string" ? m : JSON.stringify(m))).join("；");
    const slot = form.querySelector(`.ge-field__error[data-for="${name}"]`);
    if (slot) slot.textContent = text;
    else unplaced.push(text);
  }
  if (box && (err.status !== 422 || !Object.keys(errors).length || unplaced.length)) {
    const text = errorText(err);
    if (text) {
      box.textContent = unplaced.length && err.status === 422 ? `${text}（${unplaced.join("；")}）` : text;
      box.hidden = false;
    }
  }
}

/**
 * Say which fields still need a value before anything is sent: `missing` maps a field name to its message
 * (only the entries whose value is missing). Returns true when the form may be sent.
 */
export function requireFields(form, missing) {
  showFieldErrors(form, null);
  for (const [name, message] of Object.entries(missing)) {
    const slot = form.querySelector(`.ge-field__error[data-for="${name}"]`);
    if (slot) slot.textContent = message;
  }
  return !Object.keys(missing).length;
}

// ---------------------------------------------------------------- search picker

/**
 * A search box with a result list. `search(q)` resolves to [{id, label, sub}] (see the fetchers below).
 * single (default): the picked item replaces the box until cleared; otherwise the box is emptied after
 * each pick and `onPick` collects the items. Returns {element, value, clear(), set(item), focus()}.
 */
export function createPicker({ name, placeholder = "输入姓名 / 用户名搜索", search, onPick, single = true, id }) {
  const listId = `${id || name || "picker"}-list-${Math.random().toString(36).slice(2, 8)}`;
  const input = el("input", {
    type: "search", class: "gp-picker__input", placeholder, autocomplete: "off", id, role: "combobox",
    "aria-expanded": "false", "aria-autocomplete": "list", "aria-controls": listId,
  });
  const list = el("ul", { class: "gp-picker__list", role: "listbox", id: listId, hidden: true });
  const chosen = el("div", { class: "gp-picker__chosen", hidden: true });
  const root = el("div", { class: "gp-picker", dataset: { name: name || "" } }, input, chosen, list);
  let value = null;
  let items = [];
  let active = -1;
  let seq = 0;
  let timer = null;

  const close = () => {
    clearTimeout(timer);
    seq += 1; // drop answers still on their way
    list.hidden = true;
    input.setAttribute("aria-expanded", "false");
    active = -1;
  };
  const note = (text) => {
    list.replaceChildren(el("li", { class: "gp-picker__note" }, text));
    list.hidden = false;
    input.setAttribute("aria-expanded", "true");
  };
  const highlight = (i) => {
    active = i;
    [...list.querySelectorAll(".gp-picker__option")].forEach((li, j) => {
      li.classList.toggle("is-active", j === i);
      li.setAttribute("aria-selected", String(j === i));
      if (j === i) li.scrollIntoView({ block: "nearest" });
    });
  };
  const render = () => {
    if (!items.length) return note(input.value.trim() ? "没有匹配的结果" : "暂无可选项");
    list.replaceChildren(...items.map((item, i) => el(
      "li",
      {
        class: "gp-picker__option", role: "option", "aria-selected": "false", dataset: { id: item.id },
        onmousedown: (e) => {
          e.preventDefault();
          pick(item);
        },
        onmouseenter: () => highlight(i),
      },
      el("span", { class: "gp-picker__label" }, item.label),
      item.sub ? el("span", { class: "gp-picker__sub" }, item.sub) : null,
    )));
    list.hidden = false;
    input.setAttribute("aria-expanded", "true");
    return undefined;
  };
  const load = async () => {
    const mine = ++seq;
    note("搜索中…");
    try {
      const found = await search(input.value.trim());
      if (mine !== seq) return;
      items = found;
      render();
    } catch (err) {
      if (mine === seq) note(errorText(err, "搜索失败") || "搜索失败");
    }
  };
  const set = (item) => {
    value = item;
    if (!single) return;
    input.hidden = Boolean(item);
    chosen.hidden = !item;
    chosen.replaceChildren();
    if (!item) return;
    chosen.append(
      el("span", { class: "gp-chip" }, el("span", { class: "gp-chip__label" }, item.label),
        item.sub ? el("span", { class: "gp-chip__sub" }, item.sub) : null,
        el("button", {
          type: "button", class: "gp-chip__remove", "aria-label": `清除 ${item.label}`,
          onclick: () => {
            set(null);
            input.value = "";
            input.focus();
          },
        }, "×")),
    );
  };
  function pick(item) {
    close();
    if (single) set(item);
    else input.value = "";
    if (onPick) onPick(item);
  }

  input.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(load, 250);
  });
  input.addEventListener("focus", () => {
    if (list.hidden) load();
  });
  input.addEventListener("blur", () => setTimeout(() => document.activeElement !== input && close(), 150));
  input.addEventListener("keydown", (e) => {
    if (e.key === "ArrowDown" || e.key === "ArrowUp") {
      e.preventDefault();
      if (list.hidden) return void load();
      const n = items.length;
      if (n) highlight((active + (e.key === "ArrowDown" ? 1 : n - 1)) % n);
    } else if (e.key === "Enter") {
      e.preventDefault();
      if (!list.hidden && items[active]) pick(items[active]);
      else if (!list.hidden && items.length === 1) pick(items[0]);
    } else if (e.key === "Escape" && !list.hidden) {
      e.stopPropagation();
      close();
    }
  });
  return {
    element: root,
    get value() {
      return value;
    },
    set,
    clear: () => {
      set(null);
      input.value = "";
    },
    focus: () => input.focus(),
  };
}

/** Picker search over users (`role` e.g. account_manager), active ones only. */
export function searchUsers(role) {
  return async (q) => {
    const body = await api("/api/v1/users", { query: { q, role, status: "active", page_size: PICKER_PAGE } });
    return (body.items || []).map((u) => ({
      id: u.id, label: u.name, sub: [u.username, u.org_name].filter(Boolean).join(" · "), user: u,
    }));
  };
}

/** Picker search over grid assistants (网格三员), active ones only. */
export function searchAssistants() {
  return async (q) => {
    const body = await api("/api/v1/grid-assistants", { query: { q, status: "active", page_size: PICKER_PAGE } });
    return (body.items || []).map((a) => ({
      id: a.id, label: a.name, sub: [a.kind_label, a.org_name].filter(Boolean).join(" · "), assistant: a,
    }));
  };
}

/** Picker search over grids (name, code or division code). */
export function searchGrids(levelLabels = {}) {
  return async (q) => {
    const body = await api("/api/v1/grids", { query: { q, page_size: PICKER_PAGE } });
    return (body.items || []).map((g) => ({
      id: g.id, label: g.name,
      sub: [g.code, levelLabels[g.level] || g.level, g.children ? `下级 ${formatNumber(g.children)}` : ""]
        .filter(Boolean).join(" · "),
      grid: g,
    }));
  };
}
