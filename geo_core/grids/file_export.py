"""Grid export as GeoJSON, KML, GeoPackage and zipped Shapefile (geopandas, pyogrio engine); part of
`geo_core.grids.files` (which re-exports it).

Export writes the grids a query selects (the session's data scope applies) with the attributes in
`EXPORT_COLUMNS`. Files hold WGS84 lon/lat (EPSG:4326); `crs=gcj02|bd09` shifts the coordinates for
Gaode/Baidu maps while the file still declares EPSG:4326, as those tools expect. Grids without a
geometry (virtual grids) are kept with a null geometry in GeoJSON and GeoPackage and skipped in KML
and Shapefile. Shapefile field names are at most 10 characters: see `SHP_FIELDS`.
"""

from __future__ import annotations

import io
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
import shapely
from sqlalchemy import func, select
from sqlalchemy.orm import Session, aliased

from geo_core.crs import transform_geometry
from geo_core.errors import ValidationFailed
from geo_core.grids import service
from geo_core.grids.models import Grid
from geo_core.orgs.models import Org

MAX_EXPORT_FEATURES = 100_000
LAYER = "grids"
EXPORT_COLUMNS = ("code", "name", "kind", "level", "virtual_type", "business_line", "org_code", "parent_code",
                  "division_code", "households_estimate", "status", "area_m2")
# Shapefile (dBASE) field names: at most 10 characters. Imports accept these, the full names and GDAL's
# truncation to 10 characters (parent_cod, ...).
SHP_FIELDS = {"virtual_type": "virt_type", "business_line": "biz_line", "parent_code": "parent_cd",
              "division_code": "div_code", "households_estimate": "households"}


@dataclass(frozen=True)
class FileFormat:
    driver: str
    suffix: str
    media_type: str
    keeps_null_geometry: bool  # virtual grids without a polygon: null geometry, or skipped
    write: Callable[[gpd.GeoDataFrame], bytes]


@dataclass(frozen=True)
class ExportFile:
    data: bytes
    filename: str
    media_type: str
    count: int
    skipped_without_geometry: int


def _write_ogr(driver: str, suffix: str, **options: Any) -> Callable[[gpd.GeoDataFrame], bytes]:
    def write(frame: gpd.GeoDataFrame) -> bytes:
        with tempfile.TemporaryDirectory(prefix="gm-grids-") as tmp:
            path = Path(tmp) / f"{LAYER}.{suffix}"
            frame.to_file(path, driver=driver, layer=LAYER, engine="pyogrio", geometry_type="MultiPolygon",
                          **options)
            return path.read_bytes()

    return write


def _write_shapefile(frame: gpd.GeoDataFrame) -> bytes:
    """A zip of grids.shp/.shx/.dbf/.prj/.cpg (UTF-8), fields renamed per SHP_FIELDS."""
    frame = frame.rename(columns=SHP_FIELDS)
    with tempfile.TemporaryDirectory(prefix="gm-grids-") as tmp:
        frame.to_file(Path(tmp) / f"{LAYER}.shp", driver="ESRI Shapefile", engine="pyogrio", encoding="UTF-8",
                      geometry_type="MultiPolygon")
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
            for part in sorted(Path(tmp).iterdir()):
                archive.write(part, part.name)
        return out.getvalue()


FORMATS: dict[str, FileFormat] = {
    "geojson": FileFormat("GeoJSON", "geojson", "application/geo+json", True,
                          _write_ogr("GeoJSON", "geojson", RFC7946="YES", COORDINATE_PRECISION=9)),
    "kml": FileFormat("KML", "kml", "application/vnd.google-earth.kml+xml", False, _write_ogr("KML", "kml")),
    "gpkg": FileFormat("GPKG", "gpkg", "application/geopackage+sqlite3", True, _write_ogr("GPKG", "gpkg")),
    "shp": FileFormat("ESRI Shapefile", "zip", "application/zip", False, _write_shapefile),
}


def export_frame(session: Session, filters: dict[str, Any]) -> gpd.GeoDataFrame:
    """The selected grids (in scope) as a WGS84 GeoDataFrame with EXPORT_COLUMNS."""
    stmt = service.select_grids(**filters)
    total = session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery())) or 0
    if total > MAX_EXPORT_FEATURES:
        raise ValidationFailed(f"一次最多导出 {MAX_EXPORT_FEATURES} 个网格（当前 {total} 个），请缩小筛选范围",
                               code="EXPORT_TOO_LARGE", errors={"file": ["导出数量超过上限"]})
    sub = stmt.subquery()
    parent = aliased(Grid)
    rows = session.execute(
        select(Grid, Org.code, parent.code, func.ST_AsBinary(Grid.geom))
        .join(sub, sub.c.id == Grid.id)
        .outerjoin(Org, Org.id == Grid.org_id)
        .outerjoin(parent, parent.id == Grid.parent_id)  # a parent outside the scope stays blank
        .order_by(Grid.path)
    ).all()
    records = [{
        "code": g.code, "name": g.name, "kind": _v(g.kind), "level": _v(g.level),
        "virtual_type": _v(g.virtual_type), "business_line": _v(g.business_line), "org_code": org_code,
        "parent_code": parent_code, "division_code": g.division_code, "households_estimate": g.households_estimate,
        "status": _v(g.status), "area_m2": None if g.area_m2 is None else round(g.area_m2, 1),
    } for g, org_code, parent_code, _ in rows]
    geometries = [None if wkb is None else shapely.from_wkb(bytes(wkb)) for *_, wkb in rows]
    frame = pd.DataFrame.from_records(records, columns=list(EXPORT_COLUMNS))
    frame["households_estimate"] = frame["households_estimate"].astype("Int64")
    frame["area_m2"] = frame["area_m2"].astype("float64")
    return gpd.GeoDataFrame(frame, geometry=gpd.GeoSeries(geometries, crs=4326), crs=4326)


def export_grids(session: Session, *, fmt: str, crs: str = "wgs84",
                 filters: dict[str, Any] | None = None) -> ExportFile:
    """Write the selected grids (in scope) as one file of the given format, coordinates in `crs`."""
    spec = FORMATS.get(fmt)
    if spec is None:
        raise ValidationFailed.on("format", "导出格式必须是 " + "、".join(FORMATS))
    frame = export_frame(session, filters or {})
    if crs != "wgs84" and len(frame):
        frame = frame.set_geometry(transform_geometry(frame.geometry.to_numpy(), "wgs84", crs), crs=4326)
    kept = frame if spec.keeps_null_geometry else frame[frame.geometry.notna()]
    suffix = "" if crs == "wgs84" else f"-{crs}"
    return ExportFile(
        data=spec.write(kept), filename=f"grids{suffix}-{datetime.now():%Y%m%d%H%M%S}.{spec.suffix}",
        media_type=spec.media_type, count=len(kept), skipped_without_geometry=len(frame) - len(kept),
    )


def _v(value: Any) -> Any:
    return getattr(value, "value", value)
