"""Geometry checks (validity with reason and location) and the H3 cover of a grid.

H3 resolutions: a grid's cover is stored at resolution 10 (edge ~76 m, ~0.015 km2) when the grid is
at most 50 km2, else 9 (edge ~200 m) up to 500 km2, else 8 (edge ~530 m), so no grid needs more than
~17,000 cells (the whole city at resolution 8). Cells entirely inside the grid are "interior" (a point
in one belongs to the grid without a polygon test); cells crossing the boundary need an exact PostGIS
test. Points carry their resolution-10 cell; a lookup asks for that cell and its parents at 9 and 8
(in SQL: gm_h3_parent), so a lookup is three equality probes, and a batch is a hash join.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import h3
from shapely.geometry import mapping
from shapely.geometry.base import BaseGeometry
from sqlalchemy import text
from sqlalchemy.orm import Session

from geo_core.errors import InvalidGeometry

POINT_RES = 10
COVER_RESOLUTIONS = (10, 9, 8)
COARSE_RES = 7  # aggregation (heatmaps, district overviews)
MAX_VERTICES = 100_000


def cover_resolution(area_m2: float) -> int:
    if area_m2 <= 50e6:
        return 10
    if area_m2 <= 500e6:
        return 9
    return 8


@dataclass(frozen=True)
class H3Cover:
    res: int
    interior: list[int]  # at `res`
    boundary: list[int]  # at `res`


def h3_cover(geom: BaseGeometry, area_m2: float) -> H3Cover:
    res = cover_resolution(area_m2)
    shape = h3.geo_to_h3shape(mapping(geom))
    full = set(h3.h3shape_to_cells_experimental(shape, res, contain="full"))
    overlap = set(h3.h3shape_to_cells_experimental(shape, res, contain="overlap"))
    interior = [h3.str_to_int(c) for c in full]
    boundary = [h3.str_to_int(c) for c in overlap - full]
    return H3Cover(res, interior, boundary)


def point_cells(lon: float, lat: float) -> list[int]:
    """The point's cell at each cover resolution (what a cover lookup must match)."""
    cell = h3.latlng_to_cell(lat, lon, POINT_RES)
    return [h3.str_to_int(h3.cell_to_parent(cell, r)) for r in COVER_RESOLUTIONS]


def point_cell(lon: float, lat: float, res: int = POINT_RES) -> int:
    return h3.str_to_int(h3.latlng_to_cell(lat, lon, res))


_CHECK_SQL = text(
    """
    WITH g AS (SELECT ST_SetSRID(ST_GeomFromGeoJSON(:geojson), 4326) AS g)
    SELECT GeometryType(g) AS type, ST_NPoints(g) AS npoints, (ST_IsValidDetail(g)).valid AS valid,
           (ST_IsValidDetail(g)).reason AS reason, ST_AsGeoJSON((ST_IsValidDetail(g)).location, 7) AS location,
           ST_XMin(g) AS xmin, ST_YMin(g) AS ymin, ST_XMax(g) AS xmax, ST_YMax(g) AS ymax
    FROM g
    """
)
_REPAIR_SQL = text(
    "SELECT ST_AsGeoJSON(ST_Multi(ST_CollectionExtract(ST_MakeValid(ST_SetSRID(ST_GeomFromGeoJSON(:geojson), 4326),"
    " 'method=structure'), 3)), 9)"
)
_AS_MULTI_SQL = text("SELECT ST_AsGeoJSON(ST_Multi(ST_SetSRID(ST_GeomFromGeoJSON(:geojson), 4326)), 9)")


def checked_multipolygon(session: Session, geometry: dict[str, Any], *, repair: bool = False,
                         field: str = "geometry") -> dict[str, Any]:
    """A valid WGS84 MultiPolygon as GeoJSON, or InvalidGeometry saying why and where."""
    if not isinstance(geometry, dict) or geometry.get("type") not in ("Polygon", "MultiPolygon"):
        raise InvalidGeometry.on(field, "几何必须是 Polygon 或 MultiPolygon")
    geojson = json.dumps(geometry)
    try:
        with session.begin_nested():
            row = session.execute(_CHECK_SQL, {"geojson": geojson}).mappings().one()
    except Exception as exc:  # PostGIS rejects malformed coordinates / rings with too few points
        detail = str(getattr(exc, "orig", exc)).splitlines()[0]
        raise InvalidGeometry(f"几何无法解析：{detail}", errors={field: [f"几何无法解析：{detail}"]}) from exc
    if row["npoints"] > MAX_VERTICES:
        raise InvalidGeometry("几何顶点过多", errors={field: [f"顶点数 {row['npoints']} 超过上限 {MAX_VERTICES}"]})
    if not (-180 <= row["xmin"] <= row["xmax"] <= 180 and -90 <= row["ymin"] <= row["ymax"] <= 90):
        raise InvalidGeometry("坐标超出经纬度范围（需为 WGS84 经纬度）", errors={field: ["坐标超出经纬度范围"]})
    if not row["valid"]:
        if not repair:
            location = json.loads(row["location"]) if row["location"] else None
            message = f"几何无效：{row['reason']}"
            raise InvalidGeometry(message, code="INVALID_GEOMETRY", errors={field: [message]},
                                  detail={"reason": row["reason"], "location": location})
        repaired = session.scalar(_REPAIR_SQL, {"geojson": geojson})
        if not repaired or json.loads(repaired).get("coordinates") in (None, []):
            raise InvalidGeometry("几何无法修复", errors={field: ["修复后不含面"]})
        return json.loads(repaired)
    return json.loads(session.scalar(_AS_MULTI_SQL, {"geojson": geojson}))
