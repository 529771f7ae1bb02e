"""Grid import and export as GeoJSON, KML, GeoPackage and zipped Shapefile (geopandas, pyogrio engine).

Export writes the grids a query selects (the session's data scope applies) with the attributes in
`EXPORT_COLUMNS`. Files hold WGS84 lon/lat (EPSG:4326); `crs=gcj02|bd09` shifts the coordinates for
Gaode/Baidu maps while the file still declares EPSG:4326, as those tools expect. Grids without a
geometry (virtual grids) are kept with a null geometry in GeoJSON and GeoPackage and skipped in KML
and Shapefile. Shapefile field names are at most 10 characters: see `SHP_FIELDS`.

Import reads a whole file into memory and reprojects it to WGS84: CGCS2000 (EPSG:4490) is taken as
equal to WGS84; `crs=gcj02|bd09` converts shifted coordinates; `crs` naming an EPSG code overrides the
CRS the file declares (GeoJSON without a "crs" member and Shapefile without .prj count as WGS84). Rows
are ordered parents-first and each is written through `service.create_grid` / `service.update_grid` in
the caller's transaction, so every rule of an interactive edit applies and each row is checked against
the rows written before it (overlaps inside the file are caught). Any row error rejects the whole file:
one `ValidationFailed` with code IMPORT_REJECTED and `errors` = [{row, code, field, message, detail?}],
`row` being the 1-based feature number in the file. In upsert mode (by code) a blank attribute leaves
the stored value unchanged; kind, level and virtual_type of an existing grid cannot change.
"""

from __future__ import annotations

import heapq
import io
import logging
import math
import re
import tempfile
import zipfile
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pyogrio.errors
import shapely
from pyproj import CRS
from pyproj.exceptions import CRSError
from shapely.geometry import MultiPolygon, Polygon, mapping, shape
from sqlalchemy import func, select
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.orm import Session, aliased

from geo_core.crs import parse_crs, transform_geometry
from geo_core.errors import Conflict, NotFound, ValidationFailed
from geo_core.grids import service
from geo_core.grids.models import BusinessLine, Grid, GridKind, GridLevel, GridStatus, VirtualType
from geo_core.orgs.models import Org
from geo_core.scope import Principal

log = logging.getLogger(__name__)

MAX_FEATURES = 20_000  # in the request (POST /grids/import)
MAX_JOB_FEATURES = 100_000  # in a background job (POST /grids/import-jobs, jobs.grids.import_grid_file)
MAX_BYTES = 50 * 1024 * 1024
MAX_UNZIPPED_BYTES = 200 * 1024 * 1024
MAX_EXPORT_FEATURES = 100_000
LAYER = "grids"
EXPORT_COLUMNS = ("code", "name", "kind", "level", "virtual_type", "business_line", "org_code", "parent_code",
                  "division_code", "households_estimate", "status", "area_m2")
# Shapefile (dBASE) field names: at most 10 characters. Imports accept these, the full names and GDAL's
# truncation to 10 characters (parent_cod, ...).
SHP_FIELDS = {"virtual_type": "virt_type", "business_line": "biz_line", "parent_code": "parent_cd",
              "division_code": "div_code", "households_estimate": "households"}
READ_SUFFIXES = (".geojson", ".json", ".kml", ".gpkg", ".zip")
CODE_RE = re.compile(r"^[A-Za-z0-9_-]{1,40}$")
DIVISION_RE = re.compile(r"^\d{6}(\d{3}(\d{3})?)?$")
SAME_AS_WGS84 = (4326, 4490)  # CGCS2000 agrees with WGS84 to centimetres
_READ_ERRORS = (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError, pyogrio.errors.FieldError,
                pyogrio.errors.GeometryError, pyogrio.errors.FeatureError, pyogrio.errors.CRSError, ValueError,
                TypeError, OSError, RuntimeError)


def _reject(message: str) -> ValidationFailed:
    return ValidationFailed(message, code="IMPORT_REJECTED", errors={"file": [message]})


# -- export ------------------------------------------------------------------------------------------

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


# -- reading a file ----------------------------------------------------------------------------------

def read_features(filename: str, data: bytes, *, crs: str | None = None,
                  max_features: int | None = None) -> gpd.GeoDataFrame:
    """Every feature of an uploaded file, reprojected to WGS84 (EPSG:4326), 2D."""
    if len(data) > MAX_BYTES:
        raise _reject(f"文件超过 {MAX_BYTES // (1024 * 1024)} MB")
    if not data:
        raise _reject("文件为空")
    suffix = PurePosixPath(filename.replace("\\", "/")).suffix.lower()
    if suffix not in READ_SUFFIXES:
        raise _reject("仅支持 .geojson/.json、.kml、.gpkg 或包含 Shapefile 的 .zip 文件")
    with tempfile.TemporaryDirectory(prefix="gm-grids-") as tmp:
        if suffix == ".zip":
            path, encoding = _extract_shapefile(data, Path(tmp))
        else:
            path, encoding = Path(tmp) / f"upload{suffix}", None
            path.write_bytes(data)
        frame = _read_layers(path, encoding, max_features)
    return _to_wgs84(frame, crs)


def _too_many(limit: int, count: int) -> str:
    hint = "，请用后台导入（POST /api/v1/grids/import-jobs）" if limit == MAX_FEATURES else ""
    return f"单个文件最多 {limit} 个要素（该文件 {count} 个）{hint}"


def _read_layers(path: Path, encoding: str | None, max_features: int | None = None) -> gpd.GeoDataFrame:
    """All spatial layers of a file (KML folders, GeoPackage tables) as one frame (default limit MAX_FEATURES)."""
    max_features = MAX_FEATURES if max_features is None else max_features
    try:
        layers = pyogrio.list_layers(path)
        if len(layers) == 0:
            raise _reject("文件中没有图层或要素")
        names = [str(name) for name, gtype in layers if gtype is not None] or [str(layers[0][0])]
        counts = [pyogrio.read_info(path, layer=name, encoding=encoding)["features"] for name in names]
        if sum(max(c, 0) for c in counts) > max_features:
            raise _reject(_too_many(max_features, sum(counts)))
        frames = [_spatial(gpd.read_file(path, layer=name, engine="pyogrio", encoding=encoding)) for name in names]
    except _READ_ERRORS as exc:
        log.info("unreadable grid file", extra={"reason": str(exc)})
        reason = (str(exc).splitlines() or [""])[0].replace(f"{path.parent}/", "").split("; ")[0][:200]
        raise _reject(f"无法读取文件（格式错误或已损坏）：{reason}") from exc
    crs_values = {f.crs.to_wkt() if f.crs else None for f in frames}
    if len(crs_values) > 1:
        frames = [f.to_crs(4326) if f.crs else f.set_crs(4326) for f in frames]
    frame = frames[0] if len(frames) == 1 else gpd.GeoDataFrame(pd.concat(frames, ignore_index=True),
                                                                   geometry="geometry", crs=frames[0].crs)
    if len(frame) > max_features:
        raise _reject(_too_many(max_features, len(frame)))
    if frame.empty:
        raise _reject("文件中没有要素")
    return frame.reset_index(drop=True)


def _spatial(frame: pd.DataFrame) -> gpd.GeoDataFrame:
    """A table without a geometry column (e.g. virtual grids in a GeoPackage) gets null geometries."""
    if isinstance(frame, gpd.GeoDataFrame):
        return frame
    return gpd.GeoDataFrame(frame, geometry=gpd.GeoSeries([None] * len(frame), index=frame.index), crs=4326)


def _extract_shapefile(data: bytes, target: Path) -> tuple[Path, str | None]:
    """Extract a zip safely (no absolute paths, no `..`, no links, at most 200 MB); return its one .shp."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise _reject("不是有效的 zip 文件") from exc
    with archive:
        infos = [i for i in archive.infolist() if not i.filename.startswith("__MACOSX/")]
        for info in infos:
            _check_entry(info)
        if sum(i.file_size for i in infos) > MAX_UNZIPPED_BYTES:
            raise _reject(f"压缩包解压后超过 {MAX_UNZIPPED_BYTES // (1024 * 1024)} MB")
        written = 0
        for info in infos:
            if info.is_dir():
                continue
            dest = target.joinpath(*PurePosixPath(info.filename.replace("\\", "/")).parts)
            dest.parent.mkdir(parents=True, exist_ok=True)
            try:
                with archive.open(info) as src, dest.open("wb") as out:
                    while chunk := src.read(1024 * 1024):
                        written += len(chunk)
                        if written > MAX_UNZIPPED_BYTES:  # sizes in the directory can lie
                            raise _reject(f"压缩包解压后超过 {MAX_UNZIPPED_BYTES // (1024 * 1024)} MB")
                        out.write(chunk)
            except (zipfile.BadZipFile, RuntimeError, OSError, EOFError, NotImplementedError) as exc:
                raise _reject(f"无法解压 {info.filename}（损坏或加密）") from exc
    shapefiles = sorted(p for p in target.rglob("*") if p.suffix.lower() == ".shp" and p.is_file())
    if len(shapefiles) != 1:
        raise _reject("压缩包中应恰好包含一个 Shapefile（.shp 及同名 .shx/.dbf/.prj）"
                      f"，实际 {len(shapefiles)} 个")
    return shapefiles[0], _dbf_encoding(shapefiles[0])


def _check_entry(info: zipfile.ZipInfo) -> None:
    name = info.filename.replace("\\", "/")
    parts = PurePosixPath(name).parts
    if name.startswith("/") or ".." in parts or (parts and ":" in parts[0]):
        raise _reject(f"压缩包含不安全的路径：{info.filename}")
    if (info.external_attr >> 16) & 0o170000 == 0o120000:
        raise _reject(f"压缩包含符号链接：{info.filename}")


def _dbf_encoding(shp: Path) -> str | None:
    """Without a .cpg or code page byte, Chinese GIS tools write GBK; GDAL would guess Latin-1."""
    if any(shp.with_suffix(s).exists() for s in (".cpg", ".CPG")):
        return None
    dbf = next((shp.with_suffix(s) for s in (".dbf", ".DBF") if shp.with_suffix(s).exists()), None)
    if dbf is None:
        return None
    raw = dbf.read_bytes()
    if len(raw) < 32 or raw[29] != 0:
        return None
    try:
        raw[int.from_bytes(raw[8:10], "little"):].decode("utf-8")
    except UnicodeDecodeError:
        return "GB18030"
    return "UTF-8"


def _to_wgs84(frame: gpd.GeoDataFrame, crs: str | None) -> gpd.GeoDataFrame:
    """Reproject to EPSG:4326; undo a GCJ-02/BD-09 shift; drop Z."""
    shift = "wgs84"
    if crs:
        try:
            shift = parse_crs(crs)
        except ValueError:
            frame = frame.set_crs(_user_crs(crs), allow_override=True)
    try:
        if frame.crs is None or frame.crs.to_epsg() in SAME_AS_WGS84:
            frame = frame.set_crs(4326, allow_override=True)
        else:
            frame = frame.to_crs(4326)
    except (CRSError, ValueError, RuntimeError) as exc:
        raise _reject(f"无法把文件坐标系 {frame.crs.name if frame.crs else ''} 转换为 WGS84") from exc
    geometries = shapely.force_2d(frame.geometry.to_numpy())
    if shift != "wgs84":
        geometries = transform_geometry(geometries, shift, "wgs84")
    return frame.set_geometry(gpd.GeoSeries(geometries, index=frame.index, crs=4326))


def _user_crs(value: str) -> CRS:
    try:
        return CRS.from_user_input(value)
    except CRSError as exc:
        message = f"无法识别的坐标系 {value!r}：可用 wgs84、gcj02、bd09 或 EPSG 代码（如 EPSG:3857）"
        raise ValidationFailed(message, errors={"crs": [message]}) from exc


# -- parsing rows ------------------------------------------------------------------------------------

@dataclass
class ImportRow:
    row: int  # 1-based feature number in the file
    code: str | None
    values: dict[str, Any]
    geometry: dict[str, Any] | None
    failed: bool = False


@dataclass
class ImportReport:
    rows: list[ImportRow] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)

    def error(self, row: ImportRow, field_name: str, message: str, detail: dict[str, Any] | None = None) -> None:
        row.failed = True
        entry: dict[str, Any] = {"row": row.row, "code": row.code, "field": field_name, "message": message}
        if detail:
            entry["detail"] = detail
        self.errors.append(entry)

    def raise_if_errors(self) -> None:
        if self.errors:
            raise ValidationFailed(f"导入被拒绝：{len(self.errors)} 处错误，未写入任何数据", code="IMPORT_REJECTED",
                                   errors=sorted(self.errors, key=lambda e: (e["row"], e["field"])))


def _text(max_len: int, pattern: re.Pattern[str] | None = None, hint: str = "") -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        text = str(value)
        if len(text) > max_len:
            raise ValueError(f"长度不能超过 {max_len}")
        if pattern is not None and not pattern.match(text):
            raise ValueError(hint)
        return text

    return parse


def _choice(choices: list[str]) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        if str(value) not in choices:
            raise ValueError("取值必须是 " + "、".join(choices))
        return str(value)

    return parse


def _households(value: Any) -> int:
    if isinstance(value, str):  # KML and some CSV-born files carry numbers as text
        value = _clean(float(value)) if re.fullmatch(r"\d+(\.0*)?", value) else value
    if isinstance(value, float | bool) or not isinstance(value, int):
        raise ValueError(f"不是整数：{value!r}")
    if not 0 <= value <= 10_000_000:
        raise ValueError("应在 0 到 10,000,000 之间")
    return value


PARSERS: dict[str, Callable[[Any], Any]] = {
    "code": _text(40, CODE_RE, "只能包含字母、数字、_ 和 -，最长 40 位"),
    "name": _text(100),
    "kind": _choice([k.value for k in GridKind]),
    "level": _choice([lv.value for lv in GridLevel]),
    "virtual_type": _choice([v.value for v in VirtualType]),
    "business_line": _choice([b.value for b in BusinessLine]),
    "status": _choice([s.value for s in GridStatus]),
    "org_code": _text(32),
    "parent_code": _text(40),
    "division_code": _text(12, DIVISION_RE, "行政区划代码为 6、9 或 12 位数字"),
    "households_estimate": _households,
}


def _clean(value: Any) -> Any:
    """A cell as a plain Python value: None for blanks/NaN, int for whole floats, stripped text."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float):
        if math.isnan(value):
            return None
        return int(value) if value.is_integer() else value
    if isinstance(value, str):
        return value.strip() or None
    return value


def _columns(frame: gpd.GeoDataFrame) -> dict[str, str]:
    """File column -> attribute key (case-insensitive; Shapefile short names accepted)."""
    short = {v: k for k, v in SHP_FIELDS.items()} | {k[:10]: k for k in PARSERS}
    mapped: dict[str, str] = {}
    for column in frame.columns:
        if column == frame.geometry.name:
            continue
        key = short.get(str(column).strip().lower(), str(column).strip().lower())
        if key in PARSERS and key not in mapped.values():
            mapped[str(column)] = key
    return mapped


def _geometry(geom: Any) -> dict[str, Any] | None:
    if geom is None or geom.is_empty:
        return None
    if geom.geom_type == "GeometryCollection":  # KML MultiGeometry of polygons
        polygons = [p for g in geom.geoms for p in getattr(g, "geoms", [g]) if isinstance(p, Polygon)]
        geom = MultiPolygon(polygons) if polygons else geom
    return mapping(geom)


def parse_features(frame: gpd.GeoDataFrame) -> ImportReport:
    """Parse and check every feature's attributes; infer kind; flag duplicate codes."""
    columns = _columns(frame)
    present = set(columns.values())
    missing = [k for k in ("code", "name") if k not in present]
    if missing or not present & {"level", "virtual_type"}:
        raise _reject("缺少必填字段：" + "、".join(missing + ([] if present & {"level", "virtual_type"}
                                                            else ["level 或 virtual_type"])))
    report = ImportReport()
    attributes = frame[list(columns)].rename(columns=columns)
    seen: dict[str, int] = {}
    for n, (record, geom) in enumerate(zip(attributes.to_dict("records"), frame.geometry, strict=True), start=1):
        raw = {k: _clean(v) for k, v in record.items()}
        code = None if raw.get("code") is None else str(raw["code"])
        row = ImportRow(n, code, {}, _geometry(geom))
        report.rows.append(row)
        for key, value in raw.items():
            if value is None:
                continue
            if key in ("code", "division_code", "org_code", "parent_code") and isinstance(value, int):
                value = str(value)
            try:
                row.values[key] = PARSERS[key](value)
            except ValueError as exc:
                report.error(row, key, f"{key}：{exc}")
        for key in ("code", "name"):
            if raw.get(key) is None:
                report.error(row, key, f"{key} 不能为空")
        _infer_kind(report, row)
        if row.code in seen:
            report.error(row, "code", f"编码 {row.code} 与第 {seen[row.code]} 个要素重复")
        elif row.code:
            seen[row.code] = n
    return report


def _infer_kind(report: ImportReport, row: ImportRow) -> None:
    level, vtype = row.values.get("level"), row.values.get("virtual_type")
    if level and vtype:
        report.error(row, "level", "不能同时指定 level（实体网格）和 virtual_type（虚拟网格）")
        return
    if not level and not vtype:
        report.error(row, "level", "必须指定 level（实体网格）或 virtual_type（虚拟网格）")
        return
    kind = GridKind.physical.value if level else GridKind.virtual.value
    if row.values.get("kind", kind) != kind:
        report.error(row, "kind", f"kind 与{'层级' if level else '虚拟类型'}不符，应为 {kind}")
    row.values["kind"] = kind


def parents_first(report: ImportReport) -> list[ImportRow]:
    """Rows ordered so a parent in the file precedes its children (file order otherwise); cycles are errors."""
    rows = {r.row: r for r in report.rows if r.code}
    codes = {r.code for r in rows.values()}
    children: dict[str, list[int]] = defaultdict(list)
    ready: list[int] = []
    for r in rows.values():
        parent = r.values.get("parent_code")
        if parent == r.code:
            report.error(r, "parent_code", "上级网格不能是自己")
        elif parent in codes:
            children[parent].append(r.row)
            continue
        heapq.heappush(ready, r.row)
    order: list[ImportRow] = []
    while ready:
        row = rows[heapq.heappop(ready)]
        order.append(row)
        for child in children.pop(row.code or "", []):  # with duplicate codes, after the first row
            heapq.heappush(ready, child)
    for waiting in children.values():
        for number in waiting:
            r = rows[number]
            report.error(r, "parent_code", f"上级编码形成循环引用（{r.code} → {r.values['parent_code']} → …）")
    return order


# -- writing -----------------------------------------------------------------------------------------

@dataclass
class _Known:
    grids: dict[str, Grid]  # in-scope grids whose code is in the file
    parents: dict[str, int]  # in-scope grids named only as parent_code
    orgs: dict[str, int]  # in-scope orgs named as org_code
    in_file: dict[str, int]  # code -> feature number of its first row
    written: dict[str, int] = field(default_factory=dict)  # code -> id of the rows written so far


def _lookup(session: Session, rows: list[ImportRow]) -> _Known:
    """What the caller can see (RLS) of the grids and orgs the file names, in a few queries."""
    in_file: dict[str, int] = {}
    for r in rows:
        if r.code:
            in_file.setdefault(r.code, r.row)
    parents = {r.values["parent_code"] for r in rows if r.values.get("parent_code")} - in_file.keys()
    orgs = {r.values["org_code"] for r in rows if r.values.get("org_code")}
    return _Known(
        grids={g.code: g for chunk in _chunks(in_file) for g in session.scalars(
            select(Grid).where(Grid.code.in_(chunk)))},
        parents={c: i for chunk in _chunks(parents) for c, i in session.execute(
            select(Grid.code, Grid.id).where(Grid.code.in_(chunk)))},
        orgs={c: i for chunk in _chunks(orgs) for c, i in session.execute(
            select(Org.code, Org.id).where(Org.code.in_(chunk)))},
        in_file=in_file,
    )


def _chunks(values: Iterable[str], size: int = 5000) -> Iterator[list[str]]:
    ordered = sorted(values)
    for i in range(0, len(ordered), size):
        yield ordered[i:i + size]


def import_grids(session: Session, actor: Principal, filename: str, data: bytes, *, crs: str | None = None,
                 repair: bool = False, mode: str = "upsert", max_features: int | None = None,
                 on_progress: Callable[[int, int], None] | None = None) -> dict[str, int]:
    """Create (and in upsert mode update, by code) the file's grids: all rows or none.

    `on_progress(done, total)` is called every 100 rows written (the background import reports it)."""
    if mode not in ("create", "upsert"):
        raise ValidationFailed.on("mode", "mode 必须是 create 或 upsert")
    report = parse_features(read_features(filename, data, crs=crs, max_features=max_features))
    order = parents_first(report)
    known = _lookup(session, report.rows)
    counts = {"created": 0, "updated": 0}
    with session.begin_nested():  # all-or-nothing even for a caller that catches the rejection
        for done, row in enumerate(order):
            if on_progress is not None and done % 100 == 0:
                on_progress(done, len(order))
            if row.failed:
                continue
            try:
                with session.begin_nested():
                    grid, created = _write_row(session, actor, row, known, mode=mode, repair=repair)
            except (ValidationFailed, Conflict, NotFound) as exc:
                _row_failed(report, row, exc)
                continue
            except (IntegrityError, DataError) as exc:
                reason = str(getattr(exc, "orig", exc)).splitlines()[0]
                report.error(row, "file", f"数据库拒绝该行：{reason}")
                continue
            known.written[row.code or ""] = grid.id
            counts["created" if created else "updated"] += 1
        report.raise_if_errors()
    if on_progress is not None:
        on_progress(len(order), len(order))
    return counts


def _row_failed(report: ImportReport, row: ImportRow, exc: ValidationFailed | Conflict | NotFound) -> None:
    field_name = next(iter(exc.errors), "file") if isinstance(exc.errors, dict) and exc.errors else "file"
    field_name = {"parent_id": "parent_code", "org_id": "org_code", "grid_id": "code"}.get(field_name, field_name)
    report.error(row, field_name, exc.message, exc.detail)


def _resolve(row: ImportRow, known: _Known) -> dict[str, Any]:
    """parent_code / org_code -> ids (None when blank)."""
    resolved: dict[str, Any] = {}
    parent = row.values.get("parent_code")
    if parent:
        if parent in known.written:
            resolved["parent_id"] = known.written[parent]
        elif parent in known.in_file:  # parents come first, so it failed
            raise ValidationFailed.on("parent_code", f"上级网格 {parent}（第 {known.in_file[parent]} 个要素）未能导入")
        elif parent in known.parents:
            resolved["parent_id"] = known.parents[parent]
        else:
            raise ValidationFailed.on("parent_code", f"上级网格 {parent} 不存在或不在权限范围内")
    org = row.values.get("org_code")
    if org:
        if org not in known.orgs:
            raise ValidationFailed.on("org_code", f"机构 {org} 不存在或不在权限范围内")
        resolved["org_id"] = known.orgs[org]
    return resolved


def _write_row(session: Session, actor: Principal, row: ImportRow, known: _Known, *, mode: str,
               repair: bool) -> tuple[Grid, bool]:
    data = {k: v for k, v in row.values.items() if k not in ("parent_code", "org_code")}
    data.update(_resolve(row, known))
    existing = known.grids.get(row.code or "")
    if existing is None:
        data["geometry"] = row.geometry
        return service.create_grid(session, actor, data, repair=repair), True
    if mode == "create":
        raise Conflict(f"网格编码 {row.code} 已存在", code="GRID_CODE_TAKEN", errors={"code": ["网格编码已存在"]})
    for key in ("level", "virtual_type"):
        if data.get(key) != _v(getattr(existing, key)):
            current = _v(getattr(existing, key)) or "空"
            raise ValidationFailed.on(key, f"导入不能修改已有网格的 {key}（现为 {current}）")
    for key in ("kind", "level", "virtual_type", "code"):
        data.pop(key, None)
    if row.geometry is not None and not _same_geometry(service.current_geometry(session, existing), row.geometry):
        data["geometry"] = row.geometry
    return service.update_grid(session, actor, existing.id, data, repair=repair), False


def _same_geometry(current: dict[str, Any] | None, new: dict[str, Any]) -> bool:
    """Unchanged within ~1 mm (ring order, orientation and Polygon vs MultiPolygon ignored)."""
    if current is None:
        return False
    try:
        a, b = shapely.normalize(shape(current)), shapely.normalize(shape(new))
    except (ValueError, TypeError, AttributeError, shapely.errors.GEOSException):
        return False
    if isinstance(b, Polygon):
        b = shapely.normalize(MultiPolygon([b]))
    return bool(a.equals_exact(b, 1e-8))
