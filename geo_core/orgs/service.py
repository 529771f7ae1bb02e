"""Organisation tree use cases. Row-level security decides what the caller sees and may write."""

from __future__ import annotations

from typing import Any

from geoalchemy2.shape import to_shape
from sqlalchemy import Select, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from geo_core import tabular
from geo_core.errors import Conflict, NotFound, ValidationFailed
from geo_core.orgs.models import ALLOWED_PARENT, Org, OrgLevel
from geo_core.paging import Page, key_taken, like_pattern, paginate, valid_id
from geo_core.users.models import User

LEVEL_LABELS = {"head_office": "总行", "branch": "支行", "sub_branch": "二级支行", "outlet": "网点"}
EDITABLE = ("code", "name", "level", "parent_id", "adcode", "address", "phone", "is_active")


def get_org(session: Session, org_id: int) -> Org:
    org = session.get(Org, org_id) if valid_id(org_id) else None
    if org is None:
        raise NotFound("机构不存在", code="ORG_NOT_FOUND")
    return org


def select_orgs(q: str | None = None, level: str | None = None, parent_id: int | None = None,
                under_id: int | None = None) -> Select[Any]:
    stmt = select(Org).order_by(Org.path)
    if q:
        pattern = like_pattern(q)
        stmt = stmt.where(or_(Org.name.ilike(pattern), Org.code.ilike(pattern)))
    if level:
        stmt = stmt.where(Org.level == level)
    if parent_id is not None:
        stmt = stmt.where(Org.parent_id == parent_id)
    if under_id is not None:
        sub = select(Org.path).where(Org.id == under_id).scalar_subquery()
        stmt = stmt.where(Org.path.op("<@")(sub))
    return stmt


def list_orgs(session: Session, *, page: int = 1, page_size: int = 20, **filters: Any) -> Page[Org]:
    return paginate(session, select_orgs(**filters), page, page_size)


def _location_ewkt(lon: float | None, lat: float | None) -> str | None:
    if lon is None and lat is None:
        return None
    if lon is None or lat is None:
        raise ValidationFailed("经纬度须同时提供", errors={"lon": ["经纬度须同时提供"], "lat": ["经纬度须同时提供"]})
    if not (-180 <= lon <= 180 and -90 <= lat <= 90):
        raise ValidationFailed("坐标超出范围", errors={"lon": ["经度 -180..180"], "lat": ["纬度 -90..90"]})
    return f"SRID=4326;POINT({lon} {lat})"


def _check_parent(session: Session, level: OrgLevel, parent_id: int | None) -> Org | None:
    if parent_id is None:
        if level is not OrgLevel.head_office:
            raise ValidationFailed("非总行机构必须有上级机构", errors={"parent_id": ["必须指定上级机构"]})
        if session.scalar(select(func.count()).select_from(Org).where(Org.parent_id.is_(None))):
            raise ValidationFailed("总行已存在", errors={"parent_id": ["只能有一个总行"]})
        return None
    parent = session.get(Org, parent_id) if valid_id(parent_id) else None
    if parent is None:
        message = "上级机构不存在或不在权限范围内"
        raise ValidationFailed(message, errors={"parent_id": [message]})
    if parent.level not in ALLOWED_PARENT[level]:
        allowed = "、".join(LEVEL_LABELS[p] for p in ALLOWED_PARENT[level]) or "无"
        raise ValidationFailed(
            f"{LEVEL_LABELS[level]}的上级只能是：{allowed}", errors={"parent_id": [f"上级须为：{allowed}"]}
        )
    return parent


def _check_code_free(session: Session, code: str, own_id: int | None = None) -> None:
    # uniqueness is global, but the other org may be outside the caller's scope: ask without RLS
    taken = key_taken(session, "orgs.code", code, own_id)
    if taken:
        raise Conflict(f"机构代码 {code} 已存在", code="ORG_CODE_TAKEN", errors={"code": ["机构代码已存在"]})


def create_org(session: Session, data: dict[str, Any]) -> Org:
    level = OrgLevel(data["level"])
    _check_parent(session, level, data.get("parent_id"))
    _check_code_free(session, data["code"])
    org = Org(**{k: data.get(k) for k in EDITABLE if k in data})
    org.location = _location_ewkt(data.get("lon"), data.get("lat"))
    session.add(org)
    session.flush()
    session.refresh(org)
    return org


def update_org(session: Session, org_id: int, data: dict[str, Any]) -> Org:
    org = get_org(session, org_id)
    level = OrgLevel(data.get("level", org.level))
    if "parent_id" in data or "level" in data:
        if data.get("parent_id", org.parent_id) == org.id:
            raise ValidationFailed("上级机构不能是自己", errors={"parent_id": ["上级机构不能是自己"]})
        _check_parent_for_update(session, org, level, data.get("parent_id", org.parent_id))
    if "code" in data and data["code"] != org.code:
        _check_code_free(session, data["code"], org.id)
    for key in EDITABLE:
        if key in data:
            setattr(org, key, data[key])
    if "lon" in data or "lat" in data:
        org.location = _location_ewkt(data.get("lon"), data.get("lat"))
    session.flush()
    session.refresh(org)
    return org


def _check_parent_for_update(session: Session, org: Org, level: OrgLevel, parent_id: int | None) -> None:
    if parent_id is None and org.parent_id is None:
        return  # the head office stays the root
    _check_parent(session, level, parent_id)
    parent = session.get(Org, parent_id)
    if parent is not None and str(parent.path).startswith(str(org.path) + ".") or parent_id == org.id:
        raise ValidationFailed("不能移动到自己的下级机构之下", errors={"parent_id": ["不能移动到自己的下级之下"]})


def delete_org(session: Session, org_id: int) -> None:
    org = get_org(session, org_id)
    try:
        with session.begin_nested():
            session.delete(org)
            session.flush()
    except IntegrityError as exc:
        raise Conflict("机构下仍有下级机构、用户或其他业务数据，不能删除", code="ORG_HAS_DEPENDENTS") from exc


def org_feature(org: Org, lon: float | None, lat: float | None) -> dict[str, Any]:
    return {
        "type": "Feature",
        "id": org.id,
        "geometry": None if lon is None else {"type": "Point", "coordinates": [lon, lat]},
        "properties": {"id": org.id, "code": org.code, "name": org.name, "level": org.level.value,
                       "parent_id": org.parent_id, "address": org.address},
    }


def org_features(session: Session, level: str | None = None) -> dict[str, Any]:
    stmt = select(Org, func.ST_X(Org.location), func.ST_Y(Org.location)).where(Org.location.is_not(None))
    if level:
        stmt = stmt.where(Org.level == level)
    feats = [org_feature(o, x, y) for o, x, y in session.execute(stmt.order_by(Org.path))]
    return {"type": "FeatureCollection", "features": feats}


def coords(org: Org) -> tuple[float | None, float | None]:
    """The org's location as (lon, lat) in WGS84, or (None, None)."""
    if org.location is None or isinstance(org.location, str):
        return None, None
    point = to_shape(org.location)
    return point.x, point.y


# -- import / export (OA/HR sync path) ---------------------------------------------------------------

def _float(raw: str) -> float:
    try:
        return float(raw)
    except ValueError as exc:
        raise ValueError(f"不是数字：{raw!r}") from exc


COLUMNS = (
    tabular.TableColumn("code", "机构代码", True, tabular.max_len(32)),
    tabular.TableColumn("name", "机构名称", True, tabular.max_len(100)),
    tabular.TableColumn("level", "机构层级", True, tabular.one_of(LEVEL_LABELS)),
    tabular.TableColumn("parent_code", "上级机构代码", False, tabular.max_len(32)),
    tabular.TableColumn("adcode", "行政区划代码", False, tabular.max_len(12)),
    tabular.TableColumn("address", "地址", False, tabular.max_len(200)),
    tabular.TableColumn("phone", "电话", False, tabular.max_len(32)),
    tabular.TableColumn("lon", "经度", False, _float),
    tabular.TableColumn("lat", "纬度", False, _float),
    tabular.TableColumn("is_active", "状态", False, tabular.parse_bool,
                        export=lambda v: "启用" if v else "停用"),
)


def export_rows(session: Session, **filters: Any) -> list[dict[str, Any]]:
    parent = Org.__table__.alias("parent")
    stmt = (
        select(Org, parent.c.code, func.ST_X(Org.location), func.ST_Y(Org.location))
        .outerjoin(parent, parent.c.id == Org.parent_id)
        .where(Org.id.in_(select_orgs(**filters).with_only_columns(Org.id)))
        .order_by(Org.path)
    )
    return [
        {"code": o.code, "name": o.name, "level": LEVEL_LABELS[o.level.value], "parent_code": pcode,
         "adcode": o.adcode, "address": o.address, "phone": o.phone, "lon": x, "lat": y, "is_active": o.is_active}
        for o, pcode, x, y in session.execute(stmt)
    ]


def import_orgs(session: Session, filename: str, data: bytes) -> dict[str, int]:
    """Upsert orgs by code; parents may come earlier or later in the same file. All or nothing."""
    sheet = tabular.parse_rows(tabular.drop_key_row(tabular.read_sheet(filename, data), COLUMNS), COLUMNS)
    tabular.check_unique(sheet, "code", "机构代码")
    in_file = {v["code"]: (row, v) for row, v in sheet.rows if v.get("code")}
    existing = {o.code: o for o in session.scalars(select(Org).where(Org.code.in_(list(in_file))))}
    for row, v in sheet.rows:
        parent_code = v.get("parent_code")
        if v.get("level") == "head_office":
            if parent_code:
                sheet.error(row, "parent_code", "总行不能有上级机构")
        elif not parent_code:
            sheet.error(row, "parent_code", "上级机构代码不能为空")
        elif parent_code not in in_file and session.scalar(select(Org.id).where(Org.code == parent_code)) is None:
            sheet.error(row, "parent_code", f"上级机构 {parent_code} 不存在或不在权限范围内")
        if v.get("code") and v["code"] not in existing and key_taken(session, "orgs.code", v["code"]):
            sheet.error(row, "code", f"机构代码 {v['code']} 已被权限范围外的机构占用")
        if (v.get("lon") is None) != (v.get("lat") is None):
            sheet.error(row, "lon", "经纬度须同时提供")
    sheet.raise_if_errors()

    created = updated = 0
    done: set[str] = set()

    def upsert(code: str, trail: tuple[str, ...] = ()) -> None:
        nonlocal created, updated
        if code in done or code not in in_file:
            return
        row, v = in_file[code]
        if code in trail:
            sheet.error(row, "parent_code", "上级关系形成循环")
            return
        if v.get("parent_code"):
            upsert(v["parent_code"], (*trail, code))
        parent_id = session.scalar(select(Org.id).where(Org.code == v["parent_code"])) if v.get("parent_code") else None
        payload = {k: v.get(k) for k in ("code", "name", "level", "adcode", "address", "phone", "lon", "lat")}
        payload["parent_id"] = parent_id
        if v.get("is_active") is not None:
            payload["is_active"] = v["is_active"]
        try:
            if code in existing:
                update_org(session, existing[code].id, payload)
                updated += 1
            else:
                create_org(session, payload)
                created += 1
        except (ValidationFailed, Conflict) as exc:
            fields = exc.errors if isinstance(exc.errors, dict) else {"code": [exc.message]}
            for name, messages in fields.items():
                sheet.error(row, "parent_code" if name == "parent_id" else name, "；".join(map(str, messages)))
        done.add(code)

    for code in in_file:
        upsert(code)
    sheet.raise_if_errors()
    return {"created": created, "updated": updated}


def count_users(session: Session, org_id: int) -> int:
    return session.scalar(select(func.count()).select_from(User).where(User.org_id == org_id)) or 0
