"""Customer archives (一户一档): create, edit, lists by ownership or grid, reveal, relocate, batch assign.

Identifiers (ID number, unified social credit code, phone) are validated, then stored only as SM4
ciphertext + SM3-HMAC blind index + mask. Lists show masks; `reveal` decrypts for users holding
customer:reveal and writes an audit event naming the fields and the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from geoalchemy2.shape import to_shape
from sqlalchemy import Select, func, or_, select, text
from sqlalchemy.orm import Session

from geo_core import crypto
from geo_core.auth.service import audit_event
from geo_core.config import Settings
from geo_core.customers import identifiers as ids
from geo_core.customers.models import Customer, CustomerCategory, CustomerKind, CustomerStatus, LocationSource
from geo_core.customers.ownership import ownership_reason
from geo_core.db import elevated
from geo_core.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from geo_core.grids.models import Grid
from geo_core.grids.service import find_grid_for_point
from geo_core.grids.spatial import point_cell
from geo_core.orgs.models import Org
from geo_core.paging import Page, like_pattern, paginate, valid_id
from geo_core.scope import Principal
from geo_core.users.models import User

SENSITIVE = {
    # field: (normaliser, masker, blind-index purpose, allowed kind)
    "id_number": (ids.normalise_id_number, ids.mask_id_number, "id_number", CustomerKind.person),
    "uscc": (ids.normalise_uscc, ids.mask_uscc, "uscc", CustomerKind.company),
    "phone": (ids.normalise_phone, ids.mask_phone, "phone", None),
}
PLAIN = ("name", "customer_no", "profile_type", "industry", "address", "status")


@dataclass(frozen=True)
class Keys:
    sm4: str
    blind: str

    @classmethod
    def of(cls, settings: Settings) -> Keys:
        return cls(settings.sm4_key, settings.blind_index_key)


def get_customer(session: Session, customer_id: int) -> Customer:
    customer = session.get(Customer, customer_id) if valid_id(customer_id) else None
    if customer is None:
        raise NotFound("客户不存在", code="CUSTOMER_NOT_FOUND")
    return customer


def bidx(keys: Keys, field: str, raw: str) -> str:
    """The blind index of a raw identifier (normalised first), for exact search."""
    normalise, _, purpose, _ = SENSITIVE[field]
    try:
        value = normalise(raw)
    except ValueError as exc:
        raise ValidationFailed.on(field, str(exc)) from exc
    return crypto.blind_index(value, keys.blind, purpose)


def select_customers(keys: Keys, *, view: str = "ownership", q: str | None = None, kind: str | None = None,
                     category: str | None = None, grid_id: int | None = None, owner_user_id: int | None = None,
                     org_id: int | None = None, id_number: str | None = None, uscc: str | None = None,
                     phone: str | None = None, unplaced: bool = False) -> Select[Any]:
    """The two views the bank asks for: by account ownership (管户) or by grid (管辖网格)."""
    order = (Customer.owner_user_id, Customer.id) if view == "ownership" else (Customer.grid_id, Customer.id)
    stmt = select(Customer).where(Customer.status != CustomerStatus.merged).order_by(*order)  # merged: see 0016
    if q:
        pattern = like_pattern(q)
        stmt = stmt.where(or_(Customer.name.ilike(pattern), Customer.customer_no.ilike(pattern),
                              Customer.address.ilike(pattern)))
    for column, value in ((Customer.kind, kind), (Customer.category, category),
                          (Customer.owner_user_id, owner_user_id)):
        if value is not None:
            stmt = stmt.where(column == value)
    if grid_id is not None:
        path = select(Grid.path).where(Grid.id == grid_id).scalar_subquery()
        stmt = stmt.where(Customer.grid_id.in_(select(Grid.id).where(Grid.path.op("<@")(path))))
    if org_id is not None:
        path = select(Org.path).where(Org.id == org_id).scalar_subquery()
        stmt = stmt.where(Customer.org_id.in_(select(Org.id).where(Org.path.op("<@")(path))))
    for field, raw in (("id_number", id_number), ("uscc", uscc), ("phone", phone)):
        if raw:
            stmt = stmt.where(getattr(Customer, f"{field}_bidx") == bidx(keys, field, raw))
    if unplaced:
        stmt = stmt.where(Customer.grid_id.is_(None))
    return stmt


def list_customers(session: Session, keys: Keys, *, page: int = 1, page_size: int = 20,
                   **filters: Any) -> Page[Customer]:
    return paginate(session, select_customers(keys, **filters), page, page_size)


def _set_sensitive(customer: Customer, keys: Keys, data: dict[str, Any]) -> None:
    kind = CustomerKind(customer.kind)
    errors: dict[str, list[str]] = {}
    for field, (normalise, masker, purpose, allowed) in SENSITIVE.items():
        if field not in data:
            continue
        raw = data[field]
        if raw in (None, ""):
            for suffix in ("enc", "bidx", "mask"):
                setattr(customer, f"{field}_{suffix}", None)
            continue
        if allowed is not None and kind is not allowed:
            errors[field] = [f"{'个人' if kind is CustomerKind.company else '公司'}客户不能填写该字段"]
            continue
        try:
            value = normalise(raw)
        except ValueError as exc:
            errors[field] = [str(exc)]
            continue
        setattr(customer, f"{field}_enc", crypto.sm4_encrypt(value, keys.sm4, aad=purpose.encode()))
        setattr(customer, f"{field}_bidx", crypto.blind_index(value, keys.blind, purpose))
        setattr(customer, f"{field}_mask", masker(value))
        if field == "id_number":
            customer.birth_date = ids.birth_date_of(value)
            customer.gender = ids.gender_of(value)
    if errors:
        raise ValidationFailed("客户信息校验失败", errors=errors)


def _check_duplicates(session: Session, customer: Customer) -> None:
    """The same ID number / credit code must not be archived twice (checked across all scopes)."""
    for field in ("id_number", "uscc"):
        value = getattr(customer, f"{field}_bidx")
        if not value:
            continue
        taken = session.scalar(text("SELECT gm_customer_bidx_taken(:f, :v, :id)"),
                               {"f": field, "v": value, "id": customer.id})
        if taken:
            label = "身份证号" if field == "id_number" else "统一社会信用代码"
            raise Conflict(f"该{label}已建档", code="CUSTOMER_DUPLICATE", errors={field: [f"该{label}已建档"]})


def _place(session: Session, customer: Customer, lon: float, lat: float, source: LocationSource) -> None:
    """Store the point (WGS84), its H3 cell and provenance; assign the finest grid unless overridden."""
    if not (-180 <= lon <= 180 and -90 <= lat <= 90):
        raise ValidationFailed.on("lon", "坐标超出范围")
    customer.geom = f"SRID=4326;POINT({lon} {lat})"
    customer.h3_r10 = point_cell(lon, lat)
    customer.location_source = source
    if customer.grid_override_by is None:
        # the finest grid may belong to another org than the caller's: look it up elevated (audited)
        with elevated(session, reason="place customer in grid"):
            grid = find_grid_for_point(session, lon, lat)
            grid_id = grid.id if grid else None
            if grid is not None:
                session.expunge(grid)
        customer.grid_id = grid_id


def _check_owner(session: Session, owner_user_id: int | None) -> None:
    if owner_user_id is not None and (not valid_id(owner_user_id) or session.get(User, owner_user_id) is None):
        raise ValidationFailed.on("owner_user_id", "客户经理不存在或不在权限范围内")


def create_customer(session: Session, actor: Principal, keys: Keys, data: dict[str, Any]) -> Customer:
    owner = data.get("owner_user_id", actor.user_id)
    _check_owner(session, owner)
    org_id = data.get("org_id")
    if org_id is None:
        org_id = session.scalar(select(User.org_id).where(User.id == owner)) if owner else actor.org_id
    if not valid_id(org_id) or session.get(Org, org_id) is None:
        raise ValidationFailed.on("org_id", "机构不存在或不在权限范围内")
    customer = Customer(kind=CustomerKind(data["kind"]), category=CustomerCategory(data.get("category", "potential")),
                        owner_user_id=owner, org_id=org_id, created_by=actor.user_id, updated_by=actor.user_id,
                        **{k: data[k] for k in PLAIN if data.get(k) is not None})
    _set_sensitive(customer, keys, data)
    if data.get("lon") is not None and data.get("lat") is not None:
        _place(session, customer, data["lon"], data["lat"], LocationSource(data.get("location_source", "imported")))
    _check_duplicates(session, customer)
    session.add(customer)
    session.flush()
    session.refresh(customer)
    return customer


def update_customer(session: Session, actor: Principal, keys: Keys, customer_id: int,
                    data: dict[str, Any]) -> Customer:
    customer = get_customer(session, customer_id)
    if customer.status is CustomerStatus.merged:  # a tombstone kept for undo (geo_core/customers/merge.py)
        raise Conflict("该客户已合并到其他客户，请编辑合并后的客户", code="CUSTOMER_MERGED")
    for key in PLAIN:
        if key in data:
            setattr(customer, key, data[key])
    if "category" in data:
        customer.category = CustomerCategory(data["category"])
    if "owner_user_id" in data:
        _check_owner(session, data["owner_user_id"])
        customer.owner_user_id = data["owner_user_id"]
    _set_sensitive(customer, keys, data)
    customer.updated_by = actor.user_id
    _check_duplicates(session, customer)
    session.flush()
    session.refresh(customer)
    return customer


def delete_customer(session: Session, customer_id: int) -> None:
    customer = get_customer(session, customer_id)
    if customer.category is CustomerCategory.formal:
        raise Conflict("正式客户不能删除", code="CUSTOMER_FORMAL")
    session.delete(customer)
    session.flush()


def relocate(session: Session, actor: Principal, customer_id: int, lon: float, lat: float,
             source: LocationSource = LocationSource.corrected) -> Customer:
    """纠偏: the manager moves the point on the map; stored in WGS84 with provenance, grid re-assigned."""
    customer = get_customer(session, customer_id)
    _place(session, customer, lon, lat, source)
    customer.updated_by = actor.user_id
    session.flush()
    session.refresh(customer)
    return customer


def override_grid(session: Session, actor: Principal, customer_id: int, grid_id: int | None,
                  reason: str) -> Customer:
    """Manual grid assignment that wins over the spatial one, recording who and why (None = back to spatial)."""
    customer = get_customer(session, customer_id)
    if grid_id is None:
        customer.grid_override_by = customer.grid_override_reason = None
        if customer.geom is not None:
            point = to_shape(customer.geom)
            _place(session, customer, point.x, point.y, LocationSource(customer.location_source or "imported"))
    else:
        if not valid_id(grid_id) or session.get(Grid, grid_id) is None:
            raise ValidationFailed.on("grid_id", "网格不存在或不在权限范围内")
        if not reason or len(reason.strip()) < 2:
            raise ValidationFailed.on("reason", "请填写调整原因")
        customer.grid_id, customer.grid_override_by, customer.grid_override_reason = grid_id, actor.user_id, reason
    customer.updated_by = actor.user_id
    session.flush()
    return customer


def batch_assign(session: Session, actor: Principal, customer_ids: list[int], *, grid_id: int | None = None,
                 owner_user_id: int | None = None, reason: str) -> int:
    """Assign many customers to a grid and/or a manager in one transaction (all visible, or nothing)."""
    ids_ = list(dict.fromkeys(customer_ids))
    found = session.scalars(select(Customer).where(Customer.id.in_(ids_))).all()
    if len(found) != len(ids_):
        missing = sorted(set(ids_) - {c.id for c in found})
        raise ValidationFailed.on("customer_ids", f"客户不存在或不在权限范围内：{missing[:20]}")
    if grid_id is None and owner_user_id is None:
        raise ValidationFailed.on("grid_id", "请指定网格或客户经理")
    if owner_user_id is not None:
        _check_owner(session, owner_user_id)
    with ownership_reason(session, reason, source="batch_assign"):  # the history trigger records why (管户关系)
        for customer in found:
            if grid_id is not None:
                override_grid(session, actor, customer.id, grid_id, reason)
            if owner_user_id is not None:
                customer.owner_user_id = owner_user_id
                customer.updated_by = actor.user_id
        session.flush()
    return len(found)


def reveal(session: Session, actor: Principal, keys: Keys, customer_id: int, fields: list[str],
           reason: str) -> dict[str, str | None]:
    """Decrypt identifiers for a user with customer:reveal; every reveal is an audit event."""
    if not actor.has("customer:reveal"):
        raise PermissionDenied("没有查看完整证件号码的权限", code="PERMISSION_DENIED")
    if not reason or len(reason.strip()) < 2:
        raise ValidationFailed.on("reason", "请填写查看原因")
    customer = get_customer(session, customer_id)
    out: dict[str, str | None] = {}
    for field in fields:
        if field not in SENSITIVE:
            raise ValidationFailed.on("fields", f"未知字段：{field}")
        blob = getattr(customer, f"{field}_enc")
        out[field] = None if blob is None else crypto.sm4_decrypt(blob, keys.sm4, aad=SENSITIVE[field][2].encode())
    audit_event(session, "reveal", "customers", customer.id, {"fields": fields, "reason": reason})
    return out


def coords(customer: Customer) -> tuple[float | None, float | None]:
    if customer.geom is None or isinstance(customer.geom, str):
        return None, None
    point = to_shape(customer.geom)
    return point.x, point.y


def count_by(session: Session, column: Any) -> dict[Any, int]:
    return dict(session.execute(select(column, func.count()).group_by(column)).all())
