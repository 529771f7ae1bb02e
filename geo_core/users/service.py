"""Users and their roles. RLS limits rows to the caller's scope; these rules stop privilege escalation."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from geo_core import crypto, tabular
from geo_core.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from geo_core.orgs.models import Org
from geo_core.paging import Page, key_taken, like_pattern, paginate, valid_id
from geo_core.scope import SCOPE_RANK, Principal
from geo_core.users.models import Role, User, UserStatus, user_roles

STATUS_LABELS = {"active": "正常", "disabled": "停用"}
EDITABLE = ("username", "employee_no", "name", "phone", "email", "org_id", "status")


def get_user(session: Session, user_id: int) -> User:
    user = session.get(User, user_id) if valid_id(user_id) else None
    if user is None:
        raise NotFound("用户不存在", code="USER_NOT_FOUND")
    return user


def select_users(q: str | None = None, org_id: int | None = None, status: str | None = None,
                 role: str | None = None) -> Select[Any]:
    stmt = select(User).order_by(User.org_id, User.username)
    if q:
        pattern = like_pattern(q)
        stmt = stmt.where(or_(User.username.ilike(pattern), User.name.ilike(pattern),
                              User.employee_no.ilike(pattern), User.phone.ilike(pattern)))
    if org_id is not None:
        sub = select(Org.path).where(Org.id == org_id).scalar_subquery()
        stmt = stmt.where(User.org_id.in_(select(Org.id).where(Org.path.op("<@")(sub))))
    if status:
        stmt = stmt.where(User.status == status)
    if role:
        stmt = stmt.where(User.id.in_(select(user_roles.c.user_id).join(Role).where(Role.code == role)))
    return stmt


def list_users(session: Session, *, page: int = 1, page_size: int = 20, **filters: Any) -> Page[User]:
    return paginate(session, select_users(**filters), page, page_size)


def _resolve_roles(session: Session, actor: Principal, codes: list[str]) -> list[Role]:
    roles = list(session.scalars(select(Role).where(Role.code.in_(codes))))
    unknown = sorted(set(codes) - {r.code for r in roles})
    if unknown:
        raise ValidationFailed("角色不存在", errors={"roles": [f"角色不存在：{', '.join(unknown)}"]})
    for role in roles:
        _check_grantable(actor, role)
    return roles


def _check_grantable(actor: Principal, role: Role) -> None:
    """Nobody may hand out a wider data scope or a permission he does not hold himself."""
    if SCOPE_RANK[role.data_scope] > SCOPE_RANK[actor.scope]:
        raise PermissionDenied(f"不能授予数据范围大于自身的角色：{role.name}", code="ROLE_NOT_GRANTABLE")
    missing = {p.code for p in role.permissions} - actor.permissions
    if missing:
        raise PermissionDenied(f"不能授予自身不具备的权限：{', '.join(sorted(missing))}", code="ROLE_NOT_GRANTABLE")


def _check_org(session: Session, org_id: int) -> None:
    if not valid_id(org_id) or session.get(Org, org_id) is None:
        raise ValidationFailed("机构不存在或不在权限范围内", errors={"org_id": ["机构不存在或不在权限范围内"]})


def _check_unique(session: Session, data: dict[str, Any], own_id: int | None = None) -> None:
    if data.get("username") and key_taken(session, "users.username", data["username"], own_id):
        raise Conflict("用户名已存在", code="USERNAME_TAKEN", errors={"username": ["用户名已存在"]})
    if data.get("employee_no") and key_taken(session, "users.employee_no", data["employee_no"], own_id):
        raise Conflict("员工号已存在", code="EMPLOYEE_NO_TAKEN", errors={"employee_no": ["员工号已存在"]})


def set_password(user: User, password: str, iterations: int) -> None:
    problems = crypto.check_password_policy(password)
    if problems:
        raise ValidationFailed("密码不符合安全要求", errors={"password": problems})
    user.password_hash = crypto.hash_password(password, iterations)
    user.password_changed_at = datetime.now(UTC)


def _normalise(data: dict[str, Any]) -> dict[str, Any]:
    data = dict(data)
    if data.get("username"):
        data["username"] = data["username"].strip().lower()
    if data.get("status") is not None:
        data["status"] = UserStatus(data["status"])
    return data


def create_user(session: Session, actor: Principal, data: dict[str, Any], *, iterations: int) -> User:
    data = _normalise(data)
    _check_org(session, data["org_id"])
    _check_unique(session, data)
    roles = _resolve_roles(session, actor, data.get("roles") or [])
    user = User(**{k: data[k] for k in EDITABLE if k in data})
    user.roles = roles
    if data.get("password"):
        set_password(user, data["password"], iterations)
    session.add(user)
    session.flush()
    return user


def update_user(session: Session, actor: Principal, user_id: int, data: dict[str, Any]) -> User:
    user = get_user(session, user_id)
    data = _normalise(data)
    if "org_id" in data and data["org_id"] != user.org_id:
        _check_org(session, data["org_id"])
    _check_unique(session, data, user.id)
    if user.id == actor.user_id and ("roles" in data or data.get("status") == "disabled"):
        raise PermissionDenied("不能修改自己的角色或停用自己", code="SELF_MODIFICATION")
    if "roles" in data:
        for role in user.roles:  # removing a role one could not grant is escalation too
            if role.code not in data["roles"]:
                _check_grantable(actor, role)
        user.roles = _resolve_roles(session, actor, data["roles"])
    for key in EDITABLE:
        if key in data:
            setattr(user, key, data[key])
    session.flush()
    return user


def delete_user(session: Session, actor: Principal, user_id: int) -> None:
    user = get_user(session, user_id)
    if user.id == actor.user_id:
        raise PermissionDenied("不能删除自己", code="SELF_MODIFICATION")
    for role in user.roles:
        _check_grantable(actor, role)
    try:
        with session.begin_nested():
            session.delete(user)
            session.flush()
    except IntegrityError as exc:
        raise Conflict("用户仍有关联业务数据，请改为停用", code="USER_HAS_DEPENDENTS") from exc


def reset_password(session: Session, actor: Principal, user_id: int, password: str, *, iterations: int) -> None:
    user = get_user(session, user_id)
    for role in user.roles:
        _check_grantable(actor, role)
    set_password(user, password, iterations)
    user.failed_login_count = 0
    user.locked_until = None
    session.flush()


def change_own_password(session: Session, actor: Principal, old: str, new: str, *, iterations: int) -> None:
    user = get_user(session, actor.user_id)
    if not crypto.verify_password(old, user.password_hash):
        raise ValidationFailed("原密码错误", errors={"old_password": ["原密码错误"]})
    if old == new:
        raise ValidationFailed("新密码不能与原密码相同", errors={"new_password": ["新密码不能与原密码相同"]})
    set_password(user, new, iterations)
    session.flush()


def unlock_user(session: Session, user_id: int) -> User:
    user = get_user(session, user_id)
    user.failed_login_count = 0
    user.locked_until = None
    session.flush()
    return user


# -- import / export --------------------------------------------------------------------------------

COLUMNS = (
    tabular.TableColumn("username", "用户名", True, tabular.max_len(64)),
    tabular.TableColumn("employee_no", "员工号", False, tabular.max_len(32)),
    tabular.TableColumn("name", "姓名", True, tabular.max_len(64)),
    tabular.TableColumn("phone", "手机号", False, tabular.max_len(32)),
    tabular.TableColumn("email", "邮箱", False, tabular.max_len(128)),
    tabular.TableColumn("org_code", "机构代码", True, tabular.max_len(32)),
    tabular.TableColumn("roles", "角色代码", False, tabular.parse_list, export=lambda v: ";".join(v or [])),
    tabular.TableColumn("status", "状态", False, tabular.one_of(STATUS_LABELS)),
)


def export_rows(session: Session, **filters: Any) -> list[dict[str, Any]]:
    users = session.scalars(select_users(**filters)).all()
    orgs = {o.id: o for o in session.scalars(select(Org).where(Org.id.in_({u.org_id for u in users})))}
    return [
        {"username": u.username, "employee_no": u.employee_no, "name": u.name, "phone": u.phone, "email": u.email,
         "org_code": orgs[u.org_id].code if u.org_id in orgs else "", "roles": [r.code for r in u.roles],
         "status": STATUS_LABELS[u.status.value]}
        for u in users
    ]


def import_users(session: Session, actor: Principal, filename: str, data: bytes, *, iterations: int) -> dict[str, int]:
    """Upsert users by username (HR/OA sync). Every row is checked first; then all rows or none."""
    sheet = tabular.parse_rows(tabular.drop_key_row(tabular.read_sheet(filename, data), COLUMNS), COLUMNS)
    for _, v in sheet.rows:
        if v.get("username"):
            v["username"] = v["username"].strip().lower()
    tabular.check_unique(sheet, "username", "用户名")
    tabular.check_unique(sheet, "employee_no", "员工号")
    orgs = {o.code: o.id for o in session.scalars(select(Org))}  # RLS: only orgs in scope
    roles = {r.code: r for r in session.scalars(select(Role))}
    usernames = [v["username"] for _, v in sheet.rows if v.get("username")]
    existing = {u.username: u for u in session.scalars(select(User).where(User.username.in_(usernames)))}
    for row, v in sheet.rows:
        if v.get("org_code") and v["org_code"] not in orgs:
            sheet.error(row, "org_code", f"机构 {v['org_code']} 不存在或不在权限范围内")
        for code in v.get("roles") or []:
            if code not in roles:
                sheet.error(row, "roles", f"角色 {code} 不存在")
            elif SCOPE_RANK[roles[code].data_scope] > SCOPE_RANK[actor.scope] or (
                {p.code for p in roles[code].permissions} - actor.permissions
            ):
                sheet.error(row, "roles", f"无权授予角色 {code}")
        own = existing.get(v.get("username") or "")
        if v.get("username") and own is None and key_taken(session, "users.username", v["username"]):
            sheet.error(row, "username", "用户名已被权限范围外的用户占用")
        if v.get("employee_no") and key_taken(session, "users.employee_no", v["employee_no"], own.id if own else None):
            sheet.error(row, "employee_no", f"员工号 {v['employee_no']} 已被其他用户使用")
        if own is not None and own.id == actor.user_id:
            sheet.error(row, "username", "不能通过导入修改自己")
    sheet.raise_if_errors()
    created = updated = 0
    for _, v in sheet.rows:
        payload = {k: v[k] for k in ("username", "employee_no", "name", "phone", "email") if k in v}
        payload["org_id"] = orgs[v["org_code"]]
        if v.get("status"):
            payload["status"] = UserStatus(v["status"])
        if v.get("roles") is not None:
            payload["roles"] = v["roles"]
        if v["username"] in existing:
            update_user(session, actor, existing[v["username"]].id, payload)
            updated += 1
        else:
            payload.setdefault("roles", [])
            create_user(session, actor, payload, iterations=iterations)
            created += 1
    return {"created": created, "updated": updated}
