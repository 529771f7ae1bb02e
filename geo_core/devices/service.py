"""Mobile devices (移动设备管理): register, approve, disable, enable. RLS scopes devices by org; a device
outside the caller's scope does not exist for him."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, or_, select, update
from sqlalchemy.orm import Session

from geo_core import tabular
from geo_core.auth.models import AuthSession
from geo_core.devices.models import Device, DeviceStatus
from geo_core.errors import Conflict, NotFound, ValidationFailed
from geo_core.paging import Page, key_taken, like_pattern, paginate, valid_id
from geo_core.scope import Principal
from geo_core.users.models import User

STATUS_LABELS = {"pending": "待审批", "active": "已启用", "disabled": "已停用"}
EDITABLE = ("model", "platform", "os_version")


def now() -> datetime:
    return datetime.now(UTC)


def get_device(session: Session, device_pk: int) -> Device:
    device = session.get(Device, device_pk) if valid_id(device_pk) else None
    if device is None:
        raise NotFound("设备不存在", code="DEVICE_NOT_FOUND")
    return device


def select_devices(q: str | None = None, status: str | None = None,
                   user_id: int | None = None) -> Select[Any]:
    stmt = select(Device).order_by(Device.created_at.desc(), Device.id.desc())
    if q:
        pattern = like_pattern(q)
        owners = select(User.id).where(or_(User.name.ilike(pattern), User.username.ilike(pattern)))
        stmt = stmt.where(or_(Device.device_id.ilike(pattern), Device.model.ilike(pattern),
                              Device.user_id.in_(owners)))
    if status:
        stmt = stmt.where(Device.status == status)
    if user_id is not None:
        stmt = stmt.where(Device.user_id == user_id)
    return stmt


def list_devices(session: Session, *, page: int = 1, page_size: int = 20, **filters: Any) -> Page[Device]:
    return paginate(session, select_devices(**filters), page, page_size)


def _visible_user(session: Session, user_id: int) -> User:
    user = session.get(User, user_id) if valid_id(user_id) else None
    if user is None:
        message = "用户不存在或不在权限范围内"
        raise ValidationFailed(message, errors={"user_id": [message]})
    return user


def _approve(device: Device, actor: Principal) -> None:
    device.status = DeviceStatus.active
    device.approved_by = actor.user_id
    device.approved_at = now()
    device.disabled_reason = None


def register_device(session: Session, actor: Principal, data: dict[str, Any]) -> Device:
    """Register a device for a user in scope. Registered by an administrator, it is approved at once."""
    user = _visible_user(session, data["user_id"])
    if key_taken(session, "devices.device_id", data["device_id"]):
        raise Conflict("设备号已登记", code="DEVICE_ID_TAKEN", errors={"device_id": ["设备号已登记"]})
    device = Device(device_id=data["device_id"], user_id=user.id, org_id=user.org_id,
                    **{k: data.get(k) for k in EDITABLE})
    _approve(device, actor)
    session.add(device)
    session.flush()
    return device


def update_device(session: Session, device_pk: int, data: dict[str, Any]) -> Device:
    device = get_device(session, device_pk)
    if "user_id" in data and data["user_id"] != device.user_id:
        user = _visible_user(session, data["user_id"])
        device.user_id, device.org_id = user.id, user.org_id
    for key in EDITABLE:
        if key in data:
            setattr(device, key, data[key])
    session.flush()
    return device


def approve_device(session: Session, actor: Principal, device_pk: int) -> Device:
    device = get_device(session, device_pk)
    if device.status is not DeviceStatus.pending:
        raise Conflict("只有待审批的设备可以审批", code="DEVICE_NOT_PENDING")
    _approve(device, actor)
    session.flush()
    return device


def disable_device(session: Session, device_pk: int, reason: str) -> Device:
    """Disable a lost or replaced device; its mobile logins end now."""
    device = get_device(session, device_pk)
    if device.status is DeviceStatus.disabled:
        raise Conflict("设备已停用", code="DEVICE_ALREADY_DISABLED")
    device.status = DeviceStatus.disabled
    device.disabled_reason = reason
    _end_mobile_sessions(session, device)
    session.flush()
    return device


def _end_mobile_sessions(session: Session, device: Device) -> None:
    # auth_sessions RLS lets only scope "all" (or the owner) revoke; others' sessions end at expiry
    session.execute(
        update(AuthSession)
        .where(AuthSession.device_id == device.device_id, AuthSession.user_id == device.user_id,
               AuthSession.revoked_at.is_(None))
        .values(revoked_at=now())
        .execution_options(synchronize_session=False)
    )


def enable_device(session: Session, actor: Principal, device_pk: int) -> Device:
    device = get_device(session, device_pk)
    if device.status is not DeviceStatus.disabled:
        raise Conflict("只有已停用的设备可以启用", code="DEVICE_NOT_DISABLED")
    _approve(device, actor)
    session.flush()
    return device


def delete_device(session: Session, device_pk: int) -> None:
    session.delete(get_device(session, device_pk))
    session.flush()


# -- import / export --------------------------------------------------------------------------------

COLUMNS = (
    tabular.TableColumn("device_id", "设备号", True, tabular.max_len(128)),
    tabular.TableColumn("username", "用户名", True, tabular.max_len(64)),
    tabular.TableColumn("model", "设备型号", False, tabular.max_len(100)),
    tabular.TableColumn("platform", "平台", False, tabular.max_len(32)),
    tabular.TableColumn("os_version", "系统版本", False, tabular.max_len(32)),
    tabular.TableColumn("status", "状态", False, tabular.one_of(STATUS_LABELS)),
)


def export_rows(session: Session, **filters: Any) -> list[dict[str, Any]]:
    stmt = select_devices(**filters).add_columns(User.username).outerjoin(User, User.id == Device.user_id)
    return [{**{k: getattr(d, k) for k in ("device_id", *EDITABLE)}, "username": username,
             "status": STATUS_LABELS[d.status.value]}
            for d, username in session.execute(stmt)]


def import_devices(session: Session, actor: Principal, filename: str, data: bytes) -> dict[str, int]:
    """Upsert devices by device id (bulk registration). Every row is checked first; then all rows or none."""
    sheet = tabular.parse_rows(tabular.drop_key_row(tabular.read_sheet(filename, data), COLUMNS), COLUMNS)
    for _, v in sheet.rows:
        if v.get("username"):
            v["username"] = v["username"].strip().lower()
    tabular.check_unique(sheet, "device_id", "设备号")
    names = {v["username"] for _, v in sheet.rows if v.get("username")}
    users = {u.username: u for u in session.scalars(select(User).where(User.username.in_(names)))}  # RLS
    ids = [v["device_id"] for _, v in sheet.rows if v.get("device_id")]
    existing = {d.device_id: d for d in session.scalars(select(Device).where(Device.device_id.in_(ids)))}
    for row, v in sheet.rows:
        if v.get("username") and v["username"] not in users:
            sheet.error(row, "username", f"用户 {v['username']} 不存在或不在权限范围内")
        if v.get("device_id") and v["device_id"] not in existing and key_taken(session, "devices.device_id",
                                                                              v["device_id"]):
            sheet.error(row, "device_id", f"设备号 {v['device_id']} 已被权限范围外的设备占用")
    sheet.raise_if_errors()
    created = updated = 0
    for _, v in sheet.rows:
        user = users[v["username"]]
        device = existing.get(v["device_id"])
        if device is None:
            device = Device(device_id=v["device_id"], status=DeviceStatus.pending)
            session.add(device)
            created += 1
        else:
            updated += 1
        device.user_id, device.org_id = user.id, user.org_id
        for key in EDITABLE:
            if v.get(key) is not None:
                setattr(device, key, v[key])
        status = v.get("status") or (None if v["device_id"] in existing else "active")
        if status:
            _import_status(session, device, actor, DeviceStatus(status))
    session.flush()
    return {"created": created, "updated": updated}


def _import_status(session: Session, device: Device, actor: Principal, status: DeviceStatus) -> None:
    if status is device.status:
        return
    if status is DeviceStatus.active:
        _approve(device, actor)
        return
    device.status = status
    if status is DeviceStatus.disabled and device.id is not None:
        _end_mobile_sessions(session, device)
