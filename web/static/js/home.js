// 首页: welcome card with the current user, org, roles and data scope; shortcuts from the menu tree.
import { dataScopeLabel, el, initLayout, menuHref, menuLeaves, roleNames, userDisplayName, userOrgName } from "./common.js";

function setField(name, value) {
  const dd = document.querySelector(`#profile [data-field="${name}"]`);
  if (dd) dd.textContent = value || "—";
}

function renderShortcuts(menus) {
  const box = document.getElementById("shortcuts");
  const leaves = menuLeaves(menus).filter((m) => m.route !== location.pathname).slice(0, 12);
  box.replaceChildren(
    ...(leaves.length
      ? leaves.map((m) => el("a", { class: "shortcut", href: menuHref(m.route) }, el("span", { class: "shortcut__name" }, m.name)))
      : [el("p", { class: "muted" }, "暂无可用功能，请联系管理员分配权限。")]),
  );
}

const { me, menus } = await initLayout();
if (me) {
  const name = userDisplayName(me);
  document.getElementById("welcome-title").textContent = `欢迎，${name}`;
  setField("user", me.username && me.username !== name ? `${name}（${me.username}）` : name);
  setField("org", userOrgName(me));
  setField("roles", roleNames(me.roles).join("、"));
  setField("scope", dataScopeLabel(me));
}
renderShortcuts(menus);
