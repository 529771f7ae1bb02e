"""Roles (角色管理) and permissions (权限管理). Both are global tables, guarded by permissions only; the
grant rule of user management applies: nobody defines a role wider than his own scope and permissions."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session

from geo_core import catalog, tabular
from geo_core.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from geo_core.paging import Page, like_pattern, paginate, valid_id
from geo_core.scope import SCOPE_RANK, DataScope, Principal
from geo_core.users.models import Permission, Role, user_roles
from geo_core.users.service import _check_grantable

SCOPE_LABELS = {"self": "本人", "org": "本机构", "org_subtree": "本机构及下级", "all": "全部"}
PERMISSION_CODE_RE = re.compile(r"^[a-z_]+:[a-z_]+$")
ROLE_CODE_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
ROLE_FIELDS = ("code", "name", "description")


# -- roles ----------------------------------------------------------------------------------------

def get_role(session: Session, role_id: int) -> Role:
    role = session.get(Role, role_id) if valid_id(role_id) else None
    if role is None:
        raise NotFound("角色不存在", code="ROLE_NOT_FOUND")
    return role


def select_roles(q: str | None = None, data_scope: str | None = None) -> Select[Any]:
    stmt = select(Role).order_by(Role.is_builtin.desc(), Role.code)
    if q:
        pattern = like_pattern(q)
        stmt = stmt.where(or_(Role.code.ilike(pattern), Role.name.ilike(pattern)))
    if data_scope:
        stmt = stmt.where(Role.data_scope == data_scope)
    return stmt


def list_roles(session: Session, *, page: int = 1, page_size: int = 20, **filters: Any) -> Page[Role]:
    return paginate(session, select_roles(**filters), page, page_size)


def resolve_permissions(session: Session, codes: list[str]) -> list[Permission]:
    stmt = select(Permission).where(Permission.code.in_(codes)).order_by(Permission.code)
    perms = list(session.scalars(stmt))
    unknown = sorted(set(codes) - {p.code for p in perms})
    if unknown:
        raise ValidationFailed("权限不存在", errors={"permissions": [f"权限不存在：{', '.join(unknown)}"]})
    return perms


def _check_role_code_free(session: Session, code: str, own_id: int | None = None) -> None:
    taken = session.scalar(select(Role.id).where(Role.code == code, Role.id != (own_id or 0)))
    if taken is not None:
        raise Conflict(f"角色代码 {code} 已存在", code="ROLE_CODE_TAKEN", errors={"code": ["角色代码已存在"]})


def _draft(name: str, scope: DataScope, perms: list[Permission]) -> Role:
    """A transient role (never added to the session) to run the grant rule on a role's new state."""
    return Role(name=name, data_scope=scope, permissions=list(perms))


def create_role(session: Session, actor: Principal, data: dict[str, Any]) -> Role:
    _check_role_code_free(session, data["code"])
    role = Role(**{k: data.get(k) for k in ROLE_FIELDS}, data_scope=DataScope(data["data_scope"]),
                is_builtin=False)
    role.permissions = resolve_permissions(session, data.get("permissions") or [])
    _check_grantable(actor, role)
    session.add(role)
    session.flush()
    return role


def update_role(session: Session, actor: Principal, role_id: int, data: dict[str, Any]) -> Role:
    role = get_role(session, role_id)
    _check_grantable(actor, role)  # editing a role one could not grant is escalation too
    if "code" in data and data["code"] != role.code:
        if role.is_builtin:
            raise Conflict("内置角色的代码不能修改", code="ROLE_BUILTIN",
                           errors={"code": ["内置角色的代码不能修改"]})
        _check_role_code_free(session, data["code"], role.id)
    scope = DataScope(data["data_scope"]) if data.get("data_scope") else role.data_scope
    perms = resolve_permissions(session, data["permissions"]) if "permissions" in data else role.permissions
    _check_grantable(actor, _draft(data.get("name", role.name), scope, perms))
    for key in ROLE_FIELDS:
        if key in data:
            setattr(role, key, data[key])
    role.data_scope = scope
    if "permissions" in data:
        role.permissions = perms
    session.flush()
    return role


def delete_role(session: Session, actor: Principal, role_id: int) -> None:
    role = get_role(session, role_id)
    if role.is_builtin:
        raise Conflict("内置角色不能删除", code="ROLE_BUILTIN")
    _check_grantable(actor, role)
    # user_roles is scoped by the users the caller sees; only an "all" actor can know a role is unused
    if actor.scope is not DataScope.all:
        raise PermissionDenied("角色可能被权限范围外的用户使用，只有数据范围为全部的用户可以删除角色",
                               code="ROLE_NOT_GRANTABLE")
    holders = select(func.count()).select_from(user_roles).where(user_roles.c.role_id == role.id)
    in_use = session.scalar(holders)
    if in_use:
        raise Conflict(f"角色仍分配给 {in_use} 个用户，不能删除", code="ROLE_IN_USE",
                       detail={"users": in_use})
    session.delete(role)
    session.flush()


ROLE_COLUMNS = (
    tabular.TableColumn("code", "角色代码", True, tabular.max_len(64)),
    tabular.TableColumn("name", "角色名称", True, tabular.max_len(100)),
    tabular.TableColumn("description", "说明", False, tabular.max_len(500)),
    tabular.TableColumn("data_scope", "数据范围", True, tabular.one_of(SCOPE_LABELS)),
    tabular.TableColumn("permissions", "权限代码", False, tabular.parse_list,
                        export=lambda v: ";".join(v or [])),
)


def export_roles(session: Session, **filters: Any) -> list[dict[str, Any]]:
    return [
        {"code": r.code, "name": r.name, "description": r.description,
         "data_scope": SCOPE_LABELS[r.data_scope.value], "permissions": sorted(p.code for p in r.permissions)}
        for r in session.scalars(select_roles(**filters))
    ]


def _grant_error(actor: Principal, role: Role) -> tuple[str, str] | None:
    """(field, message) if the actor may not define or change `role`."""
    try:
        _check_grantable(actor, role)
    except PermissionDenied as exc:
        wider = SCOPE_RANK[role.data_scope] > SCOPE_RANK[actor.scope]
        return ("data_scope" if wider else "permissions"), exc.message
    return None


def import_roles(session: Session, actor: Principal, filename: str, data: bytes) -> dict[str, int]:
    """Upsert roles by code. Every row is checked first; then all rows or none."""
    columns = ROLE_COLUMNS
    sheet = tabular.parse_rows(tabular.drop_key_row(tabular.read_sheet(filename, data), columns), columns)
    tabular.check_unique(sheet, "code", "角色代码")
    codes = [v["code"] for _, v in sheet.rows if v.get("code")]
    existing = {r.code: r for r in session.scalars(select(Role).where(Role.code.in_(codes)))}
    perms = {p.code: p for p in session.scalars(select(Permission))}
    for row, v in sheet.rows:
        if v.get("code") and not ROLE_CODE_RE.match(v["code"]):
            sheet.error(row, "code", "角色代码以字母开头，只能包含字母、数字和 _")
        unknown = [c for c in v.get("permissions") or [] if c not in perms]
        if unknown:
            sheet.error(row, "permissions", f"权限不存在：{', '.join(unknown)}")
        own = existing.get(v.get("code") or "")
        if own is not None and _grant_error(actor, own):
            sheet.error(row, "code", f"无权修改角色 {own.code}")
        if v.get("data_scope"):
            draft = _draft(v.get("name") or "", DataScope(v["data_scope"]),
                           [perms[c] for c in v.get("permissions") or [] if c in perms])
            problem = _grant_error(actor, draft)
            if problem:
                sheet.error(row, *problem)
    sheet.raise_if_errors()
    created = updated = 0
    for _, v in sheet.rows:
        # a column left out of the file leaves that attribute alone; an empty cell clears it
        payload = {k: v[k] for k in ("code", "name", "description", "data_scope") if k in v}
        if "permissions" in v or v["code"] not in existing:
            payload["permissions"] = v.get("permissions") or []
        if v["code"] in existing:
            update_role(session, actor, existing[v["code"]].id, payload)
            updated += 1
        else:
            create_role(session, actor, payload)
            created += 1
    return {"created": created, "updated": updated}


# -- permissions ----------------------------------------------------------------------------------

def get_permission(session: Session, permission_id: int) -> Permission:
    perm = session.get(Permission, permission_id) if valid_id(permission_id) else None
    if perm is None:
        raise NotFound("权限不存在", code="PERMISSION_NOT_FOUND")
    return perm


def select_permissions(q: str | None = None) -> Select[Any]:
    stmt = select(Permission).order_by(Permission.code)
    if q:
        pattern = like_pattern(q)
        stmt = stmt.where(or_(Permission.code.ilike(pattern), Permission.name.ilike(pattern)))
    return stmt


def list_permissions(session: Session, *, page: int = 1, page_size: int = 20,
                     **filters: Any) -> Page[Permission]:
    return paginate(session, select_permissions(**filters), page, page_size)


def _check_permission_code(session: Session, code: str, own_id: int | None = None) -> None:
    if not PERMISSION_CODE_RE.match(code):
        raise ValidationFailed("权限代码格式错误", errors={"code": ["格式为 模块:动作，如 grid:edit"]})
    taken = session.scalar(select(Permission.id).where(Permission.code == code,
                                                       Permission.id != (own_id or 0)))
    if taken is not None:
        raise Conflict(f"权限代码 {code} 已存在", code="PERMISSION_CODE_TAKEN",
                       errors={"code": ["权限代码已存在"]})


def create_permission(session: Session, data: dict[str, Any]) -> Permission:
    _check_permission_code(session, data["code"])
    perm = Permission(code=data["code"], name=data["name"], description=data.get("description"))
    session.add(perm)
    session.flush()
    return perm


def update_permission(session: Session, permission_id: int, data: dict[str, Any]) -> Permission:
    perm = get_permission(session, permission_id)
    if "code" in data and data["code"] != perm.code:
        if perm.code in catalog.PERMISSIONS:
            raise Conflict("内置权限的代码不能修改", code="PERMISSION_BUILTIN",
                           errors={"code": ["内置权限的代码不能修改"]})
        _check_permission_code(session, data["code"], perm.id)
    for key in ("code", "name", "description"):
        if key in data:
            setattr(perm, key, data[key])
    session.flush()
    return perm


def delete_permission(session: Session, permission_id: int) -> None:
    perm = get_permission(session, permission_id)
    if perm.code in catalog.PERMISSIONS:
        raise Conflict("内置权限不能删除", code="PERMISSION_BUILTIN")
    session.delete(perm)  # role grants go with it (cascade); menus guarded by it become public (SET NULL)
    session.flush()


PERMISSION_COLUMNS = (
    tabular.TableColumn("code", "权限代码", True, tabular.max_len(64)),
    tabular.TableColumn("name", "权限名称", True, tabular.max_len(100)),
    tabular.TableColumn("description", "说明", False, tabular.max_len(500)),
)


def export_permissions(session: Session, **filters: Any) -> list[dict[str, Any]]:
    return [{"code": p.code, "name": p.name, "description": p.description}
            for p in session.scalars(select_permissions(**filters))]


def import_permissions(session: Session, filename: str, data: bytes) -> dict[str, int]:
    """Upsert permissions by code (name and description). All rows or none."""
    columns = PERMISSION_COLUMNS
    sheet = tabular.parse_rows(tabular.drop_key_row(tabular.read_sheet(filename, data), columns), columns)
    tabular.check_unique(sheet, "code", "权限代码")
    for row, v in sheet.rows:
        if v.get("code") and not PERMISSION_CODE_RE.match(v["code"]):
            sheet.error(row, "code", "权限代码格式为 模块:动作，如 grid:edit")
    sheet.raise_if_errors()
    codes = [v["code"] for _, v in sheet.rows]
    existing = {p.code: p for p in session.scalars(select(Permission).where(Permission.code.in_(codes)))}
    created = updated = 0
    for _, v in sheet.rows:
        perm = existing.get(v["code"])
        if perm is None:
            create_permission(session, v)
            created += 1
        else:
            perm.name, perm.description = v["name"], v.get("description")
            updated += 1
    session.flush()
    return {"created": created, "updated": updated}
