"""Economic units (经济单元, POIs): search, GeoJSON, create / edit / delete, import from keyword search.

POIs are public reference data: the `pois` table has no row-level security, every row change is audited by the
table's triggers. Points are stored in WGS84 with their H3 resolution-10 cell and the finest grid containing them.

Grid placement: creating or moving a POI looks up its grid at once (`find_grid_for_point`), in an audited
elevated context, because the finest grid may lie outside the editor's data scope; only the grid's id is kept,
nothing else about it reaches the caller. Grid edits do not re-place POIs here: the batch job
`jobs.grids.place_all_points` does (idempotent, same rule: deepest active physical grid, then the smallest).

Name search: ``name ILIKE '%q%'`` (wildcards in q escaped), served by the pg_trgm GIN index ``ix_pois_name_trgm``
when q has at least 3 characters (shorter patterns give no trigram and scan); results are ordered by
``similarity(name, q)``, then the shorter name. Works for Chinese substrings: 副食 finds 湘江副食批发市场.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import h3
from geoalchemy2.elements import WKTElement
from geoalchemy2.shape import to_shape
from sqlalchemy import Select, func, literal_column, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from geo_core.adapters.places import Place
from geo_core.db import elevated
from geo_core.errors import NotFound, ValidationFailed
from geo_core.grids.models import Grid
from geo_core.grids.service import find_grid_for_point, get_grid
from geo_core.grids.spatial import point_cell
from geo_core.paging import Page, like_pattern, paginate, valid_id
from geo_core.pois.models import Poi

GEOJSON_LIMIT = 5000
IMPORT_SOURCES = ("baidu", "gaode")
EDITABLE = ("name", "category", "address", "phone")
TEXT_LIMITS = {"name": 200, "address": 300, "phone": 64}


class PoiCategory(StrEnum):
    retail = "retail"
    catering = "catering"
    market = "market"
    manufacturing = "manufacturing"
    agriculture = "agriculture"
    services = "services"
    school = "school"
    hospital = "hospital"
    government = "government"
    residential = "residential"
    other = "other"


CATEGORY_LABELS: dict[str, str] = {
    "retail": "零售", "catering": "餐饮", "market": "市场", "manufacturing": "制造", "agriculture": "农业/合作社",
    "services": "服务", "school": "学校", "hospital": "医院", "government": "政府/村委", "residential": "住宅小区",
    "other": "其他",
}
CATEGORIES = [c.value for c in PoiCategory]

# Provider classifications (Gaode "购物服务;综合市场;农贸市场", Baidu "美食;中餐厅;cater") and, failing those, the
# name -> our category. First match wins, so the narrower words come first (超级市场 is retail, not a market).
_CATEGORY_RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("retail", ("超级市场", "超市", "便利店", "药房", "药店")),
    ("market", ("农贸市场", "批发市场", "综合市场", "菜市场", "批发", "集市", "市场")),
    ("catering", ("餐饮", "美食", "cater", "餐厅", "餐馆", "饭店", "小吃", "快餐", "酒楼")),
    ("school", ("学校", "教育", "education", "院校", "大学", "中学", "小学", "幼儿园")),
    ("hospital", ("医院", "医疗", "hospital", "诊所", "卫生院", "卫生室", "卫生服务")),
    ("government", ("政府", "村委", "居委", "村民委员会", "居民委员会", "行政", "机关", "gov")),
    ("residential", ("住宅区", "住宅小区", "小区", "别墅", "宿舍", "house")),
    ("agriculture", ("农林牧渔", "农业", "合作社", "养殖", "种植", "农场", "林场", "渔场", "果园", "茶园")),
    ("manufacturing", ("工厂", "制造", "工业", "加工", "厂", "industry")),
    ("retail", ("购物", "商店", "商场", "专卖", "零售", "副食", "shopping")),
    ("services", ("生活服务", "服务", "life", "维修", "美容", "美发", "酒店", "宾馆", "hotel", "银行", "金融")),
)


def category_for(provider_type: str | None, name: str = "") -> str:
    """Our category for a provider's classification (then the place name); "other" when nothing matches."""
    for text in (provider_type or "", name):
        lowered = text.lower()
        for category, words in _CATEGORY_RULES:
            if any(word in lowered for word in words):
                return category
    return PoiCategory.other.value


@dataclass(frozen=True)
class ImportResult:
    created: int
    updated: int
    pois: list[Poi]


# -- reads -------------------------------------------------------------------------------------------------------

def get_poi(session: Session, poi_id: int) -> Poi:
    poi = session.get(Poi, poi_id) if valid_id(poi_id) else None
    if poi is None:
        raise NotFound("经济单元不存在", code="POI_NOT_FOUND")
    return poi


def select_pois(q: str | None = None, category: str | None = None, grid_id: int | None = None,
                bbox: tuple[float, float, float, float] | None = None) -> Select[Any]:
    """POIs matching every given filter; with q, best name matches first."""
    stmt = select(Poi)
    q = (q or "").strip()
    if q:
        stmt = stmt.where(Poi.name.ilike(like_pattern(q))).order_by(
            func.similarity(Poi.name, q).desc(), func.length(Poi.name), Poi.id)
    else:
        stmt = stmt.order_by(Poi.id)
    if category is not None:
        stmt = stmt.where(Poi.category == category)
    if grid_id is not None:
        # the grid and its descendants, as far as the caller may see them (grids are under RLS)
        path = select(Grid.path).where(Grid.id == grid_id).scalar_subquery()
        stmt = stmt.join(Grid, Grid.id == Poi.grid_id).where(Grid.path.op("<@")(path))
    if bbox is not None:
        stmt = stmt.where(Poi.geom.op("&&")(func.ST_MakeEnvelope(*bbox, 4326)))
    return stmt


def list_pois(session: Session, *, page: int = 1, page_size: int = 20, **filters: Any) -> Page[Poi]:
    if filters.get("grid_id") is not None:
        get_grid(session, filters["grid_id"])  # 404 for a grid the caller cannot see
    return paginate(session, select_pois(**filters), page, page_size)


def lonlat(poi: Poi) -> tuple[float, float]:
    """The POI's WGS84 coordinates."""
    point = to_shape(poi.geom)
    return point.x, point.y


def properties(poi: Poi) -> dict[str, Any]:
    return {
        "id": poi.id, "name": poi.name, "category": poi.category,
        "category_label": CATEGORY_LABELS.get(poi.category, poi.category), "address": poi.address,
        "phone": poi.phone, "source": poi.source, "source_ref": poi.source_ref, "grid_id": poi.grid_id,
        "h3_r10": h3.int_to_str(poi.h3_r10) if poi.h3_r10 else None,
    }


def feature_collection(session: Session, *, limit: int = GEOJSON_LIMIT, **filters: Any) -> dict[str, Any]:
    """GeoJSON (WGS84) of the POIs matching `filters` (as select_pois), at most `limit` of them (capped at
    GEOJSON_LIMIT); `truncated` says whether more matched."""
    if filters.get("grid_id") is not None:
        get_grid(session, filters["grid_id"])
    limit = max(1, min(limit, GEOJSON_LIMIT))
    columns = (Poi.id, Poi.name, Poi.category, Poi.address, Poi.phone, Poi.source, Poi.grid_id,
               func.ST_X(Poi.geom), func.ST_Y(Poi.geom))
    rows = session.execute(select_pois(**filters).with_only_columns(*columns).limit(limit + 1)).all()
    features = [
        {"type": "Feature", "id": r[0], "geometry": {"type": "Point", "coordinates": [r[7], r[8]]},
         "properties": {"id": r[0], "name": r[1], "category": r[2], "category_label": CATEGORY_LABELS.get(r[2], r[2]),
                        "address": r[3], "phone": r[4], "source": r[5], "grid_id": r[6]}}
        for r in rows[:limit]
    ]
    return {"type": "FeatureCollection", "features": features, "truncated": len(rows) > limit}


# -- writes ------------------------------------------------------------------------------------------------------

def _check_category(category: str) -> None:
    if category not in CATEGORIES:
        raise ValidationFailed.on("category", f"未知的经济单元类别 {category!r}")


def _check_point(lon: float, lat: float) -> None:
    if not (math.isfinite(lon) and math.isfinite(lat) and -180 <= lon <= 180 and -90 <= lat <= 90):
        raise ValidationFailed("坐标超出范围", code="INVALID_GEOMETRY",
                               errors={"lon": ["-180..180"], "lat": ["-90..90"]})


def _clean(value: Any, limit: int) -> str | None:
    text = value.strip()[:limit] if isinstance(value, str) else None
    return text or None


def locate_grids(session: Session, points: list[tuple[float, float]]) -> list[int | None]:
    """The finest active physical grid of each WGS84 point, over all grids (an audited elevated lookup).

    Only ids leave the elevated context: the Grid rows loaded there are expunged so the caller's later reads in
    this session cannot be served from the identity map."""
    if not points:
        return []
    found: list[int | None] = []
    with elevated(session, reason=f"poi grid placement ({len(points)} points)"):
        for lon, lat in points:
            grid = find_grid_for_point(session, lon, lat)
            found.append(None if grid is None else grid.id)
            if grid is not None and grid not in session.dirty:
                session.expunge(grid)
    return found


def _place(session: Session, poi: Poi, lon: float, lat: float, grid_id: int | None) -> None:
    poi.geom = WKTElement(f"POINT({lon!r} {lat!r})", srid=4326)
    poi.h3_r10 = point_cell(lon, lat)
    poi.grid_id = grid_id


def create_poi(session: Session, data: dict[str, Any]) -> Poi:
    """A manual POI at data["lon"], data["lat"] (WGS84)."""
    name = _clean(data.get("name"), 200)
    if not name:
        raise ValidationFailed.on("name", "名称不能为空")
    _check_category(data["category"])
    lon, lat = float(data["lon"]), float(data["lat"])
    _check_point(lon, lat)
    (grid_id,) = locate_grids(session, [(lon, lat)])
    poi = Poi(name=name, category=data["category"], address=_clean(data.get("address"), 300),
              phone=_clean(data.get("phone"), 64), source="manual")
    _place(session, poi, lon, lat, grid_id)
    session.add(poi)
    session.flush()
    return poi


def update_poi(session: Session, poi_id: int, data: dict[str, Any]) -> Poi:
    """Change the fields sent; a new lon/lat (WGS84, both together) re-computes the cell and the grid."""
    poi = get_poi(session, poi_id)
    if "category" in data:
        _check_category(data["category"])
    if "name" in data and not _clean(data["name"], 200):
        raise ValidationFailed.on("name", "名称不能为空")
    if ("lon" in data) != ("lat" in data):
        raise ValidationFailed("经纬度须同时提供", errors={"lon": ["须与 lat 同时提供"], "lat": ["须与 lon 同时提供"]})
    moved = "lon" in data
    if moved:
        lon, lat = float(data["lon"]), float(data["lat"])
        _check_point(lon, lat)
        (grid_id,) = locate_grids(session, [(lon, lat)])  # before any change, so nothing flushes while elevated
    for key in EDITABLE:
        if key in data:
            setattr(poi, key, data[key] if key == "category" else _clean(data[key], TEXT_LIMITS[key]))
    if moved:
        _place(session, poi, lon, lat, grid_id)
    session.flush()
    return poi


def delete_poi(session: Session, poi_id: int) -> None:
    session.delete(get_poi(session, poi_id))
    session.flush()


def import_places(session: Session, places: Iterable[Place]) -> ImportResult:
    """Upsert search results as POIs keyed by (source=provider, source_ref=provider id).

    Name, address, phone and location follow the provider on every import; the category is derived on creation
    only, so an editor's correction survives re-imports. One INSERT ... ON CONFLICT, safe against a concurrent
    import of the same places."""
    unique: dict[tuple[str, str], Place] = {}
    for place in places:
        if place.provider not in IMPORT_SOURCES:
            raise ValidationFailed.on("provider", f"未知的搜索服务 {place.provider!r}")
        unique.setdefault((place.provider, place.provider_id[:100]), place)
    if not unique:
        return ImportResult(0, 0, [])
    items = list(unique.items())
    grid_ids = locate_grids(session, [(p.lon, p.lat) for _, p in items])
    rows = [
        {"name": p.name.strip()[:200] or p.provider_id, "category": category_for(p.provider_type, p.name),
         "address": _clean(p.address, 300), "phone": _clean(p.phone, 64), "source": source, "source_ref": ref,
         "geom": func.ST_SetSRID(func.ST_MakePoint(p.lon, p.lat), 4326), "h3_r10": point_cell(p.lon, p.lat),
         "grid_id": grid_id}
        for ((source, ref), p), grid_id in zip(items, grid_ids, strict=True)
    ]
    stmt = insert(Poi).values(rows)
    stmt = stmt.on_conflict_do_update(
        constraint="uq_pois_source_ref",
        set_={col: stmt.excluded[col] for col in ("name", "address", "phone", "geom", "h3_r10", "grid_id")}
        | {"updated_at": func.now()},
    ).returning(Poi.id, literal_column("xmax = 0"))
    result = session.execute(stmt).all()
    created = sum(1 for _, inserted in result if inserted)
    ids = [poi_id for poi_id, _ in result]
    pois = list(session.scalars(select(Poi).where(Poi.id.in_(ids)).order_by(Poi.id)
                                .execution_options(populate_existing=True)))
    return ImportResult(created, len(result) - created, pois)
