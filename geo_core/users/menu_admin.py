"""Menu management (菜单管理): CRUD, batch changes, import/export. The per-user tree is in menus.py."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, or_, select
from sqlalchemy.orm import Session

from geo_core import tabular
from geo_core.errors import Conflict, NotFound, ValidationFailed
from geo_core.paging import Page, like_pattern, paginate, valid_id
from geo_core.users.menus import menus_by_parent
from geo_core.users.models import Menu, Permission

EDITABLE = ("code", "name", "parent_id", "route", "icon", "sort_order", "permission_code", "is_visible")


def get_menu(session: Session, menu_id: int) -> Menu:
    menu = session.get(Menu, menu_id) if valid_id(menu_id) else None
    if menu is None:
        raise NotFound("菜单不存在", code="MENU_NOT_FOUND")
    return menu


def parent_code(session: Session, menu: Menu) -> str | None:
    parent = session.get(Menu, menu.parent_id) if menu.parent_id else None
    return parent.code if parent else None


def select_menus(q: str | None = None, parent_id: int | None = None,
                 is_visible: bool | None = None) -> Select[Any]:
    stmt = select(Menu).order_by(Menu.parent_id.nulls_first(), Menu.sort_order, Menu.id)
    if q:
        pattern = like_pattern(q)
        stmt = stmt.where(or_(Menu.code.ilike(pattern), Menu.name.ilike(pattern), Menu.route.ilike(pattern)))
    if parent_id is not None:
        stmt = stmt.where(Menu.parent_id == parent_id)
    if is_visible is not None:
        stmt = stmt.where(Menu.is_visible == is_visible)
    return stmt


def list_menus(session: Session, *, page: int = 1, page_size: int = 20, **filters: Any) -> Page[Menu]:
    return paginate(session, select_menus(**filters), page, page_size)


def full_tree(session: Session) -> list[dict[str, Any]]:
    """Every menu, hidden ones included, nested under its parent (for administration; users get menu_tree)."""
    children = menus_by_parent(session)

    def build(parent_id: int | None) -> list[dict[str, Any]]:
        return [{**{k: getattr(m, k) for k in ("id", *EDITABLE)}, "children": build(m.id)}
                for m in children.get(parent_id, [])]

    return build(None)


def _check_permission_code(session: Session, code: str | None) -> None:
    if code and session.scalar(select(Permission.id).where(Permission.code == code)) is None:
        raise ValidationFailed("权限不存在", errors={"permission_code": [f"权限 {code} 不存在"]})


def _check_code_free(session: Session, code: str, own_id: int | None = None) -> None:
    if session.scalar(select(Menu.id).where(Menu.code == code, Menu.id != (own_id or 0))) is not None:
        raise Conflict(f"菜单代码 {code} 已存在", code="MENU_CODE_TAKEN", errors={"code": ["菜单代码已存在"]})


def _check_parent(session: Session, menu_id: int | None, parent_id: int | None) -> None:
    """The parent must exist and must not be the menu itself or one of its descendants."""
    if parent_id is None:
        return
    seen: set[int] = set()
    current: int | None = parent_id
    while current is not None and current not in seen:
        if current == menu_id:
            raise ValidationFailed("上级菜单不能是自己或自己的下级",
                                   errors={"parent_id": ["上级菜单形成循环"]})
        seen.add(current)
        node = session.get(Menu, current) if valid_id(current) else None
        if node is None:
            raise ValidationFailed("上级菜单不存在", errors={"parent_id": ["上级菜单不存在"]})
        current = node.parent_id


def create_menu(session: Session, data: dict[str, Any]) -> Menu:
    _check_code_free(session, data["code"])
    _check_parent(session, None, data.get("parent_id"))
    _check_permission_code(session, data.get("permission_code"))
    menu = Menu(**{k: data[k] for k in EDITABLE if k in data})
    session.add(menu)
    session.flush()
    return menu


def update_menu(session: Session, menu_id: int, data: dict[str, Any]) -> Menu:
    menu = get_menu(session, menu_id)
    if "code" in data and data["code"] != menu.code:
        _check_code_free(session, data["code"], menu.id)
    if "parent_id" in data:
        _check_parent(session, menu.id, data["parent_id"])
    if "permission_code" in data:
        _check_permission_code(session, data["permission_code"])
    for key in EDITABLE:
        if key in data:
            setattr(menu, key, data[key])
    session.flush()
    return menu


def delete_menu(session: Session, menu_id: int) -> None:
    menu = get_menu(session, menu_id)
    if session.scalar(select(Menu.id).where(Menu.parent_id == menu.id).limit(1)) is not None:
        raise Conflict("菜单下仍有子菜单，请先删除或移走子菜单", code="MENU_HAS_CHILDREN")
    session.delete(menu)
    session.flush()


def batch_update(session: Session, ids: list[int], changes: dict[str, Any]) -> list[Menu]:
    """Apply the same visibility and/or permission to many menus at once (all or none)."""
    wanted = sorted(set(ids))
    menus = list(session.scalars(select(Menu).where(Menu.id.in_([i for i in wanted if valid_id(i)]))
                                 .order_by(Menu.sort_order, Menu.id)))
    missing = sorted(set(wanted) - {m.id for m in menus})
    if missing:
        listed = ", ".join(map(str, missing))
        raise ValidationFailed("部分菜单不存在", errors={"ids": [f"菜单不存在：{listed}"]})
    if "permission_code" in changes:
        _check_permission_code(session, changes["permission_code"])
    for menu in menus:
        for key in ("is_visible", "permission_code"):
            if key in changes:
                setattr(menu, key, changes[key])
    session.flush()
    return menus


# -- import / export --------------------------------------------------------------------------------

COLUMNS = (
    tabular.TableColumn("code", "菜单代码", True, tabular.max_len(64)),
    tabular.TableColumn("name", "菜单名称", True, tabular.max_len(100)),
    tabular.TableColumn("parent_code", "上级菜单代码", False, tabular.max_len(64)),
    tabular.TableColumn("route", "路由", False, tabular.max_len(200)),
    tabular.TableColumn("icon", "图标", False, tabular.max_len(64)),
    tabular.TableColumn("sort_order", "排序", False, tabular.parse_int),
    tabular.TableColumn("permission_code", "权限代码", False, tabular.max_len(64)),
    tabular.TableColumn("is_visible", "是否显示", False, tabular.parse_bool),
)


def export_rows(session: Session, **filters: Any) -> list[dict[str, Any]]:
    codes = {menu_id: code for menu_id, code in session.execute(select(Menu.id, Menu.code))}
    return [{**{k: getattr(m, k) for k in EDITABLE if k != "parent_id"},
             "parent_code": codes.get(m.parent_id)}
            for m in session.scalars(select_menus(**filters))]


def _import_checks(session: Session, sheet: tabular.ParsedSheet) -> None:
    """Row errors for unknown parents or permissions and for parent cycles (file and database together)."""
    menus = session.scalars(select(Menu)).all()
    codes = {m.id: m.code for m in menus}
    perms = set(session.scalars(select(Permission.code)))
    plan: dict[str, str | None] = {m.code: codes.get(m.parent_id) if m.parent_id else None for m in menus}
    for _, v in sheet.rows:
        if v.get("code"):
            plan[v["code"]] = v.get("parent_code")
    for row, v in sheet.rows:
        if v.get("parent_code") and v["parent_code"] not in plan:
            sheet.error(row, "parent_code", f"上级菜单 {v['parent_code']} 不存在")
        if v.get("permission_code") and v["permission_code"] not in perms:
            sheet.error(row, "permission_code", f"权限 {v['permission_code']} 不存在")
        seen, current = set(), v.get("code")
        while current is not None and current in plan:
            if current in seen:
                sheet.error(row, "parent_code", "上级关系形成循环")
                break
            seen.add(current)
            current = plan[current]


def import_menus(session: Session, filename: str, data: bytes) -> dict[str, int]:
    """Upsert menus by code; parents may be in the file (any order) or the database. All rows or none."""
    sheet = tabular.parse_rows(tabular.drop_key_row(tabular.read_sheet(filename, data), COLUMNS), COLUMNS)
    tabular.check_unique(sheet, "code", "菜单代码")
    _import_checks(session, sheet)
    sheet.raise_if_errors()
    existing = {m.code: m for m in session.scalars(select(Menu))}
    created = 0
    for _, v in sheet.rows:  # first pass: every row exists, so parents can be linked in any order
        if v["code"] not in existing:
            existing[v["code"]] = create_menu(session, {"code": v["code"], "name": v["name"]})
            created += 1
    for _, v in sheet.rows:
        menu = existing[v["code"]]
        for key in ("name", "route", "icon", "permission_code"):  # a column left out leaves the attribute
            if key in v:
                setattr(menu, key, v[key])
        if "parent_code" in v:
            menu.parent_id = existing[v["parent_code"]].id if v["parent_code"] else None
        if v.get("sort_order") is not None:
            menu.sort_order = v["sort_order"]
        if v.get("is_visible") is not None:
            menu.is_visible = v["is_visible"]
    session.flush()
    return {"created": created, "updated": len(sheet.rows) - created}
