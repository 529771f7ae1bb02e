"""Reading an uploaded grid file (GeoJSON, KML, GeoPackage, zipped Shapefile) into a WGS84 GeoDataFrame; part of
`geo_core.grids.files` (which re-exports it).

The whole file is read into memory and reprojected to WGS84: CGCS2000 (EPSG:4490) is taken as equal to WGS84;
`crs=gcj02|bd09` converts shifted coordinates; `crs` naming an EPSG code overrides the CRS the file declares
(GeoJSON without a "crs" member and Shapefile without .prj count as WGS84). Zips are extracted safely (no absolute
paths, `..` or links, bounded size); a Shapefile without a code page is read as GB18030 when it is not UTF-8.
"""

from __future__ import annotations

import io
import logging
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

import geopandas as gpd
import pandas as pd
import pyogrio
import pyogrio.errors
import shapely
from pyproj import CRS
from pyproj.exceptions import CRSError

from geo_core.crs import parse_crs, transform_geometry
from geo_core.errors import ValidationFailed

log = logging.getLogger("geo_core.grids.files")

MAX_FEATURES = 20_000  # in the request (POST /grids/import)
MAX_BYTES = 50 * 1024 * 1024
MAX_UNZIPPED_BYTES = 200 * 1024 * 1024
READ_SUFFIXES = (".geojson", ".json", ".kml", ".gpkg", ".zip")
SAME_AS_WGS84 = (4326, 4490)  # CGCS2000 agrees with WGS84 to centimetres
_READ_ERRORS = (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError, pyogrio.errors.FieldError,
                pyogrio.errors.GeometryError, pyogrio.errors.FeatureError, pyogrio.errors.CRSError, ValueError,
                TypeError, OSError, RuntimeError)


def _reject(message: str) -> ValidationFailed:
    return ValidationFailed(message, code="IMPORT_REJECTED", errors={"file": [message]})


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
