"""Watch items: the caller's own markers and followed objects; leaders read their team's."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from geo_core.errors import NotFound, PermissionDenied, ValidationFailed
from geo_core.grids.models import Grid
from geo_core.grids.service import find_grid_for_point
from geo_core.grids.spatial import point_cell
from geo_core.orgs.models import Org
from geo_core.paging import Page, paginate, valid_id
from geo_core.pois.models import Poi
from geo_core.scope import DataScope, Principal
from geo_core.watch.models import TARGET_TYPES, WatchItem

TARGET_MODELS = {"grid": Grid, "poi": Poi, "org": Org}


def get_item(session: Session, item_id: int) -> WatchItem:
    item = session.get(WatchItem, item_id) if valid_id(item_id) else None
    if item is None:
        raise NotFound("关注项不存在", code="WATCH_ITEM_NOT_FOUND")
    return item


def select_items(user_id: int | None = None, grid_id: int | None = None) -> Select[Any]:
    stmt = select(WatchItem).order_by(WatchItem.created_at.desc(), WatchItem.id.desc())
    if user_id is not None:
        stmt = stmt.where(WatchItem.user_id == user_id)
    if grid_id is not None:
        path = select(Grid.path).where(Grid.id == grid_id).scalar_subquery()
        stmt = stmt.where(WatchItem.grid_id.in_(select(Grid.id).where(Grid.path.op("<@")(path))))
    return stmt


def list_items(session: Session, *, page: int = 1, page_size: int = 20, **filters: Any) -> Page[WatchItem]:
    return paginate(session, select_items(**filters), page, page_size)


def _place(session: Session, item: WatchItem, lon: float, lat: float) -> None:
    item.geom = f"SRID=4326;POINT({lon} {lat})"
    item.h3_r10 = point_cell(lon, lat)
    grid = find_grid_for_point(session, lon, lat)
    item.grid_id = grid.id if grid else None


def create_item(session: Session, actor: Principal, data: dict[str, Any]) -> WatchItem:
    target_type, target_id = data.get("target_type"), data.get("target_id")
    if (target_type is None) != (target_id is None):
        raise ValidationFailed.on("target_id", "关注对象类型与编号须同时提供")
    if target_type is not None:
        if target_type not in TARGET_TYPES:
            raise ValidationFailed.on("target_type", f"只能关注：{', '.join(TARGET_TYPES)}")
        if not valid_id(target_id) or session.get(TARGET_MODELS[target_type], target_id) is None:
            raise ValidationFailed.on("target_id", "关注对象不存在或不在权限范围内")
    elif data.get("lon") is None or data.get("lat") is None:
        raise ValidationFailed.on("lon", "自由标注须提供位置（lon, lat）")
    item = WatchItem(user_id=actor.user_id, org_id=actor.org_id, title=data["title"], note=data.get("note"),
                     target_type=target_type, target_id=target_id)
    if data.get("lon") is not None and data.get("lat") is not None:
        _place(session, item, data["lon"], data["lat"])
    elif target_type == "grid":
        item.grid_id = target_id
    session.add(item)
    session.flush()
    session.refresh(item)
    return item


def _own(actor: Principal, item: WatchItem) -> None:
    """Leaders may read their team's items; only the owner changes them."""
    if item.user_id != actor.user_id and actor.scope is not DataScope.all:
        raise PermissionDenied("只能修改自己的关注项", code="NOT_OWNER")


def update_item(session: Session, actor: Principal, item_id: int, data: dict[str, Any]) -> WatchItem:
    item = get_item(session, item_id)
    _own(actor, item)
    for key in ("title", "note"):
        if key in data:
            setattr(item, key, data[key])
    if data.get("lon") is not None and data.get("lat") is not None:
        _place(session, item, data["lon"], data["lat"])
    session.flush()
    session.refresh(item)
    return item


def delete_item(session: Session, actor: Principal, item_id: int) -> None:
    item = get_item(session, item_id)
    _own(actor, item)
    session.delete(item)
    session.flush()
