"""A group's dynamic definition: validation (paths of bad parts) and the SQL selecting its customers.

    {"tags": {"any": [1, 2], "all": [3], "none": [4]},
     "rule": {...},                      # attribute rule, same language as rule tags (geo_core.tags.rules)
     "grid_ids": [..], "manager_ids": [..], "org_ids": [..],    # grids and orgs include their subtrees
     "polygon": {GeoJSON Polygon/MultiPolygon}, "crs": "wgs84|gcj02|bd09",
     "batch_ids": [..]}                  # list groups (名单客群): customers of these imported lists

Every part narrows the group (AND). The stored definition keeps the polygon in WGS84 (`crs` = wgs84, the
client's original system in `polygon_crs`). Customers are always those of the group's kind, active, and
- formal / potential groups: of that category;
- list groups: on one of the batches (any category).
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, select
from sqlalchemy.orm import Session

from geo_core.crs import CRS_NAMES, transform_geojson
from geo_core.customers.lists import get_batch
from geo_core.customers.lists_models import CustomerListEntry, ImportStatus
from geo_core.customers.models import Customer, CustomerStatus
from geo_core.errors import InvalidGeometry, NotFound, ValidationFailed
from geo_core.grids.spatial import checked_multipolygon
from geo_core.groups.models import GroupCategory
from geo_core.paging import valid_id
from geo_core.tags import rules
from geo_core.tags.models import CustomerTag
from geo_core.tags.service import check_refs

KEYS = ("tags", "rule", "grid_ids", "manager_ids", "org_ids", "polygon", "crs", "polygon_crs", "batch_ids")
ID_LISTS = {"grid_ids": "grid", "manager_ids": "owner", "org_ids": "org"}
MAX_IDS = 500
MAX_BATCHES = 50


def _ids(value: Any, path: str, errors: dict[str, list[str]], limit: int = MAX_IDS) -> list[int]:
    if not isinstance(value, list) or not 0 < len(value) <= limit or not all(
            isinstance(v, int) and not isinstance(v, bool) and valid_id(v) for v in value):
        errors.setdefault(path, []).append(f"需要 1-{limit} 个有效编号的列表")
        return []
    return sorted(set(value))


def _polygon(session: Session, data: dict[str, Any], errors: dict[str, list[str]]) -> dict[str, Any] | None:
    crs = data.get("crs") or data.get("polygon_crs") or "wgs84"
    if crs not in CRS_NAMES:
        errors.setdefault("definition.crs", []).append(f"坐标系必须是 {', '.join(CRS_NAMES)} 之一")
        return None
    polygon = data["polygon"]
    try:
        wgs84 = polygon if crs == "wgs84" else transform_geojson(polygon, crs, "wgs84")
        return checked_multipolygon(session, wgs84, field="definition.polygon")
    except InvalidGeometry as exc:
        for key, messages in (exc.errors or {"definition.polygon": [exc.message]}).items():
            errors.setdefault(key, []).extend(messages)
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
        errors.setdefault("definition.polygon", []).append(f"几何坐标格式错误：{str(exc)[:200]}")
    return None


def normalise(session: Session, data: Any, category: GroupCategory) -> dict[str, Any]:
    """A checked, normalised definition (polygon in WGS84), or ValidationFailed naming each bad part."""
    if not isinstance(data, dict):
        raise ValidationFailed.on("definition", "客群定义必须是对象")
    errors: dict[str, list[str]] = {}
    unknown = sorted(set(data) - set(KEYS), key=str)
    if unknown:
        errors["definition"] = [f"未知的键：{', '.join(map(str, unknown))}"[:300]]
    out: dict[str, Any] = {}
    refs = rules.Refs()
    tags = data.get("tags")
    if tags is not None:
        if not isinstance(tags, dict) or not tags or set(tags) - {"any", "all", "none"}:
            errors.setdefault("definition.tags", []).append("tags 需要 any / all / none 中的至少一个标签列表")
        else:
            out["tags"] = {k: _ids(v, f"definition.tags.{k}", errors, 100) for k, v in tags.items()}
            for ids in out["tags"].values():
                refs.tag.update(ids)
    if data.get("rule") is not None:
        try:
            _, rule_refs = rules.compile_rule(data["rule"], path="definition.rule")
            out["rule"] = data["rule"]
            for attr in ("tag", "grid", "org", "owner"):
                getattr(refs, attr).update(getattr(rule_refs, attr))
        except ValidationFailed as exc:
            for key, messages in (exc.errors or {}).items():
                errors.setdefault(key, []).extend(messages)
    for key, ref in ID_LISTS.items():
        if data.get(key) is not None:
            out[key] = _ids(data[key], f"definition.{key}", errors)
            getattr(refs, ref).update(out[key])
    if data.get("polygon") is not None:
        polygon = _polygon(session, data, errors)
        if polygon is not None:
            out["polygon"], out["crs"] = polygon, "wgs84"
            out["polygon_crs"] = data.get("crs") or data.get("polygon_crs") or "wgs84"
    batches = data.get("batch_ids")
    if category is GroupCategory.list_:
        if batches is None:
            errors.setdefault("definition.batch_ids", []).append("名单客群需要至少一个导入批次")
        else:
            out["batch_ids"] = _ids(batches, "definition.batch_ids", errors, MAX_BATCHES)
            _check_batches(session, out["batch_ids"], errors)
    elif batches is not None:
        errors.setdefault("definition.batch_ids", []).append("只有名单客群可以指定导入批次")
    if errors:
        raise ValidationFailed("客群定义有误", code="INVALID_DEFINITION", errors=errors)
    check_refs(session, refs, path="definition")
    return out


def _check_batches(session: Session, batch_ids: list[int], errors: dict[str, list[str]]) -> None:
    for batch_id in batch_ids:
        try:
            batch = get_batch(session, batch_id)
        except NotFound:
            errors.setdefault("definition.batch_ids", []).append(f"批次 {batch_id} 不存在或不在权限范围内")
            continue
        if batch.status is not ImportStatus.done:
            errors.setdefault("definition.batch_ids", []).append(f"批次 {batch_id} 尚未导入完成")


def _has_tag(tag_id: int) -> ColumnElement[bool]:
    return select(CustomerTag.customer_id).where(CustomerTag.customer_id == Customer.id,
                                                 CustomerTag.tag_id == tag_id).exists()


def conditions(definition: dict[str, Any], kind: str, category: str) -> list[ColumnElement[bool]]:
    """WHERE clauses over `customers` for a normalised definition (bound parameters only)."""
    where: list[ColumnElement[bool]] = [Customer.kind == kind, Customer.status == CustomerStatus.active]
    if category == GroupCategory.list_.value:
        where.append(Customer.id.in_(select(CustomerListEntry.customer_id).where(
            CustomerListEntry.batch_id.in_(definition.get("batch_ids") or []))))
    else:
        where.append(Customer.category == category)
    tags = definition.get("tags") or {}
    if tags.get("any"):
        where.append(select(CustomerTag.customer_id).where(CustomerTag.customer_id == Customer.id,
                                                           CustomerTag.tag_id.in_(tags["any"])).exists())
    where.extend(_has_tag(t) for t in tags.get("all") or [])
    if tags.get("none"):
        where.append(~select(CustomerTag.customer_id).where(CustomerTag.customer_id == Customer.id,
                                                            CustomerTag.tag_id.in_(tags["none"])).exists())
    if definition.get("rule") is not None:
        where.append(rules.compile_rule(definition["rule"], path="definition.rule")[0])
    builders = {"grid_ids": ("grid", "in"), "manager_ids": ("owner", "in"), "org_ids": ("org", "in")}
    for key, (field, op) in builders.items():
        if definition.get(key):
            where.append(rules.FIELDS[field].build(op, definition[key], rules.Refs()))
    if definition.get("polygon") is not None:
        shape = func.ST_SetSRID(func.ST_GeomFromGeoJSON(_json(definition["polygon"])), 4326)
        # the explicit && (LEAKPROOF) lets the GiST index serve the filter under row-level security
        where.extend([Customer.geom.op("&&")(shape), func.ST_Intersects(Customer.geom, shape)])
    return where


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def select_members(definition: dict[str, Any], kind: str, category: str) -> Select[Any]:
    return select(Customer.id).where(and_(*conditions(definition, kind, category)))
