"""Mapbox Vector Tiles (WebMercatorQuad, z/x/y) and TileJSON 3.0 for every registered layer.

- `/tiles`: the layers the caller may read; `/tiles/{layer}.json`: TileJSON; `/tiles/{layer}/{z}/{x}/{y}.mvt`.
- WGS84 tiles are built by PostGIS in one statement (`tiles.sql.mvt_query`).
- `?crs=gcj02` serves tiles for Gaode/AMap base maps: PostGIS cannot apply the GCJ-02 offset, so the features are
  selected in WGS84 over the tile's inverse-shifted area plus the buffer, shifted with `geo_core.crs` (vectorised),
  clipped with shapely and encoded by the small MVT encoder below. Clusters are counted in SQL over the exact
  inverse-shifted tile quadrilateral (adjacent tiles share edges, so every point is counted once) and only their
  centres are shifted.
  Baidu (BD-09) uses its own tile grid, not WebMercatorQuad: Baidu overlays use GeoJSON (`/ogc/.../items?crs=BD-09`).
- Empty tile: 204. ETag (hash of the bytes) + `Cache-Control: private` (tiles depend on the caller's data scope);
  `If-None-Match` gives 304. Tiles are cached in Redis (see tiles.cache for keys and invalidation).
"""

from __future__ import annotations

import logging
import struct
from typing import Any

import numpy as np
import shapely
from flask import Response, jsonify, request
from flask.views import MethodView
from sqlalchemy.orm import Session

from api.extensions import Blueprint, db, principal
from geo_core.crs import gcj02_to_wgs84, transform_geometry, wgs84_to_gcj02
from geo_core.errors import DomainError, NotFound
from tiles import bytes_response, layer_for, layer_stats, scope_of, sql, tile_cache, tiles_settings
from tiles.layers import LAYERS, LayerSpec

log = logging.getLogger("gridmarket.tiles")
blp = Blueprint("tiles", __name__, url_prefix="/tiles", description="矢量瓦片（MVT, WebMercatorQuad）与 TileJSON")

MVT_TYPE = "application/vnd.mapbox-vector-tile"
TILE_CRS = ("wgs84", "gcj02")
WEB_MERCATOR_LAT = 85.0511287798
_R = 6378137.0


# --- rendering ------------------------------------------------------------------------------------------------------

def fingerprint(session: Session, spec: LayerSpec) -> str:
    return "|".join(str(v) for v in sql.run(session, *sql.fingerprint_query(spec))[0])


def render_tile(session: Session, spec: LayerSpec, z: int, x: int, y: int, crs: str,
                force_cluster: bool = False) -> tuple[bytes, bool]:
    """The tile's bytes and whether its points were clustered."""
    if crs == "gcj02":
        return _render_shifted(session, spec, z, x, y, force_cluster)
    query, params = sql.mvt_query(spec, z, x, y, force_cluster=force_cluster)
    data, clustered = sql.run(session, query, params, binary=True)[0]
    return bytes(data), bool(clustered)


def _lonlat_to_tile(lon: Any, lat: Any, bounds: tuple[float, float, float, float]) -> tuple[Any, Any]:
    """Lon/lat (any datum: the caller shifted them already) to tile coordinates, y down."""
    minx, miny, maxx, maxy = bounds
    lat = np.clip(lat, -WEB_MERCATOR_LAT, WEB_MERCATOR_LAT)
    mx = np.radians(lon) * _R
    my = np.log(np.tan(np.pi / 4 + np.radians(lat) / 2)) * _R
    scale = sql.EXTENT / (maxx - minx)
    return (mx - minx) * scale, (maxy - my) * scale


def _inverse_area(z: int, x: int, y: int, margin: float) -> tuple[np.ndarray, np.ndarray]:
    """WGS84 positions of points around the GCJ-02 tile (grown by `margin` of its size), ring order."""
    minx, miny, maxx, maxy = sql.tile_bounds(z, x, y)
    pad = (maxx - minx) * margin
    xs = np.array([minx - pad, (minx + maxx) / 2, maxx + pad, maxx + pad, maxx + pad, (minx + maxx) / 2, minx - pad,
                   minx - pad])
    ys = np.array([miny - pad, miny - pad, miny - pad, (miny + maxy) / 2, maxy + pad, maxy + pad, maxy + pad,
                   (miny + maxy) / 2])
    lon = np.degrees(xs / _R)
    lat = np.degrees(2 * np.arctan(np.exp(ys / _R)) - np.pi / 2)
    return gcj02_to_wgs84(lon, lat)  # type: ignore[return-value]


def _render_shifted(session: Session, spec: LayerSpec, z: int, x: int, y: int,
                    force_cluster: bool) -> tuple[bytes, bool]:
    bounds = sql.tile_bounds(z, x, y)
    cluster = spec.clustering is not None and (force_cluster or spec.clustered_at(z))
    if not cluster:
        lon, lat = _inverse_area(z, x, y, sql.BUFFER / sql.EXTENT)
        eps = 1e-4  # ~10 m: the shift varies a little across a tile; extra rows are clipped below anyway
        box = (lon.min() - eps, lat.min() - eps, lon.max() + eps, lat.max() + eps)
        tol = (bounds[2] - bounds[0]) / sql.EXTENT / 2 / 111_320 if not spec.is_point else 0.0
        cap = spec.clustering.max_points if spec.clustering is not None else None
        rows = sql.run(session, *sql.tile_rows_query(spec, z, box, simplify=tol,
                                                     limit=None if cap is None else cap + 1))
        if cap is None or len(rows) <= cap:
            return _encode_rows(spec, z, rows, bounds), False
    return _encode_clusters(session, spec, z, x, y, bounds), True


def _encode(spec: LayerSpec, features: list[dict[str, Any]]) -> bytes:
    return encode_layer(spec.name, features) if features else b""


def _encode_rows(spec: LayerSpec, z: int, rows: list[tuple[Any, ...]], bounds: tuple[float, ...]) -> bytes:
    if not rows:
        return b""
    fields = spec.tile_fields(z)
    geoms = transform_geometry(shapely.from_wkb([bytes(r[-1]) for r in rows]), "wgs84", "gcj02")
    geoms = shapely.transform(geoms, lambda c: np.column_stack(_lonlat_to_tile(c[:, 0], c[:, 1], bounds)))
    lo, hi = -sql.BUFFER, sql.EXTENT + sql.BUFFER
    if not spec.is_point:
        geoms = shapely.clip_by_rect(geoms, lo, lo, hi, hi)
    features = []
    for row, g in zip(rows, geoms, strict=True):
        if g is None or g.is_empty or (spec.is_point and not (lo <= g.x <= hi and lo <= g.y <= hi)):
            continue
        props = {f.name: v for f, v in zip(fields, row[1:-1], strict=True) if v is not None}
        features.append({"geometry": g, "properties": props, "id": row[0]})
    return _encode(spec, features)


def _encode_clusters(session: Session, spec: LayerSpec, z: int, x: int, y: int, bounds: tuple[float, ...]) -> bytes:
    assert spec.clustering is not None
    lon, lat = _inverse_area(z, x, y, 0.0)
    area = shapely.Polygon(np.column_stack([lon, lat]))
    merc = shapely.transform(area, lambda c: np.column_stack(
        [np.radians(c[:, 0]) * _R, np.log(np.tan(np.pi / 4 + np.radians(c[:, 1]) / 2)) * _R]))
    mx0, my0, mx1, _ = merc.bounds
    cell = (mx1 - mx0) / spec.clustering.cells
    rows = sql.run(session, *sql.tile_clusters_query(spec, z, shapely.to_wkb(area), (mx0, my0), cell))
    if not rows:
        return b""
    glon, glat = wgs84_to_gcj02(np.array([r[-2] for r in rows], dtype=float),
                                np.array([r[-1] for r in rows], dtype=float))
    px, py = _lonlat_to_tile(glon, glat, bounds)
    names = ["count", *(name for name, _ in spec.clustering.counters)]
    features = [{"geometry": shapely.Point(min(max(a, 0), sql.EXTENT), min(max(b, 0), sql.EXTENT)),
                 "properties": dict(zip(names, (int(v) for v in row[:-2]), strict=True))}
                for row, a, b in zip(rows, px, py, strict=True)]
    return _encode(spec, features)


# --- a minimal MVT 2.1 encoder (the shifted path only; WGS84 tiles come from ST_AsMVT) ------------------------------
# Features are {"geometry": shapely Point/Polygon/MultiPolygon in tile coordinates (y down), "properties": {...},
# "id": int | None}. Kept here, dependency-free, so the GCJ-02 path needs nothing beyond shapely at run time;
# tests decode its output with mapbox-vector-tile.

def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _zigzag(n: int) -> int:
    return n << 1 if n >= 0 else (-n << 1) - 1


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _value(v: Any) -> bytes:
    if isinstance(v, bool):
        return _varint(7 << 3) + _varint(int(v))
    if isinstance(v, int):
        return _varint(5 << 3) + _varint(v) if v >= 0 else _varint(6 << 3) + _varint(_zigzag(v))
    if isinstance(v, float):
        return _varint(3 << 3 | 1) + struct.pack("<d", v)
    return _field(1, str(v).encode())


def _ring(coords: Any, exterior: bool) -> list[tuple[int, int]] | None:
    """Integer ring without repeats, oriented for MVT (exterior: positive area with y down), or None if degenerate."""
    pts: list[tuple[int, int]] = []
    for x, y in np.rint(np.asarray(coords)[:-1, :2]).astype(np.int64).tolist():
        if not pts or pts[-1] != (x, y):
            pts.append((x, y))
    while len(pts) > 1 and pts[0] == pts[-1]:
        pts.pop()
    if len(pts) < 3:
        return None
    area = sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in zip(pts, pts[1:] + pts[:1], strict=True))
    if area == 0:
        return None
    return pts if (area > 0) == exterior else pts[::-1]


def _geometry(geom: Any) -> tuple[int, list[int]]:
    """(MVT geometry type, command stream) of a point or (multi)polygon; empty stream if nothing is left."""
    cursor = [0, 0]
    out: list[int] = []

    def moves(points: list[tuple[int, int]], command: int) -> None:
        out.append(command | len(points) << 3)
        for x, y in points:
            out.extend((_zigzag(x - cursor[0]), _zigzag(y - cursor[1])))
            cursor[0], cursor[1] = x, y

    if geom.geom_type in ("Point", "MultiPoint"):
        moves([(int(round(p.x)), int(round(p.y))) for p in shapely.get_parts(geom)], 1)
        return 1, out
    for polygon in shapely.get_parts(geom):
        if polygon.geom_type != "Polygon" or polygon.is_empty:
            continue
        shell = _ring(polygon.exterior.coords, True)
        if shell is None:
            continue
        for ring in [shell, *filter(None, (_ring(r.coords, False) for r in polygon.interiors))]:
            moves(ring[:1], 1)
            moves(ring[1:], 2)
            out.append(7 | 1 << 3)
    return 3, out


def encode_layer(name: str, features: list[dict[str, Any]], extent: int = sql.EXTENT) -> bytes:
    """One MVT layer as a complete tile."""
    keys: dict[str, int] = {}
    values: dict[tuple[type, Any], int] = {}
    body = bytearray()
    for feature in features:
        kind, commands = _geometry(feature["geometry"])
        if not commands:
            continue
        tags: list[int] = []
        for key, value in feature["properties"].items():
            if value is None:
                continue
            tags.append(keys.setdefault(key, len(keys)))
            tags.append(values.setdefault((type(value), value), len(values)))
        part = b"" if feature.get("id") is None else _varint(1 << 3) + _varint(int(feature["id"]))
        part += _field(2, b"".join(_varint(t) for t in tags)) + _varint(3 << 3) + _varint(kind)
        part += _field(4, b"".join(_varint(c) for c in commands))
        body += _field(2, part)
    if not body:
        return b""
    layer = _varint(15 << 3) + _varint(2) + _field(1, name.encode()) + bytes(body)
    layer += b"".join(_field(3, k.encode()) for k in keys)
    layer += b"".join(_field(4, _value(v)) for (_, v) in values)
    layer += _varint(5 << 3) + _varint(extent)
    return _field(3, layer)


# --- views ----------------------------------------------------------------------------------------------------------

def _tile_crs() -> str:
    crs = (request.args.get("crs") or "wgs84").strip().lower().replace("-", "")
    if crs not in TILE_CRS:
        raise DomainError("瓦片坐标系须为 wgs84 或 gcj02"
                          "（百度底图请使用 GeoJSON：/ogc/collections/{id}/items?crs=BD-09）",
                          code="INVALID_PARAMETER", errors={"crs": ["wgs84 | gcj02"]})
    return crs


def _tile_url(spec: LayerSpec, crs: str) -> str:
    suffix = "?crs=gcj02" if crs == "gcj02" else ""
    return f"{request.url_root.rstrip('/')}/tiles/{spec.name}/{{z}}/{{x}}/{{y}}.mvt{suffix}"


def _field_doc(spec: LayerSpec) -> dict[str, str]:
    kinds = {"integer": "Number", "number": "Number", "boolean": "Boolean"}
    fields = {f.name: f"{kinds.get(f.type, 'String')}: {f.title} (z>={f.tile_zoom})"
              for f in spec.fields if f.tile_zoom is not None and f.name != spec.id_column}
    if spec.clustering is not None:
        fields["count"] = f"Number: points in a cluster (clustered tiles: z<{spec.clustering.below_zoom}, or more " \
                          f"than {spec.clustering.max_points} points in one tile)"
        for name, _ in spec.clustering.counters:
            fields[name] = f"Number: {name} points in a cluster"
    return fields


def tilejson(spec: LayerSpec, crs: str) -> dict[str, Any]:
    bbox = layer_stats(spec)["bbox"] or [-180.0, -WEB_MERCATOR_LAT, 180.0, WEB_MERCATOR_LAT]
    if crs == "gcj02":
        xs, ys = wgs84_to_gcj02(np.array([bbox[0], bbox[2]]), np.array([bbox[1], bbox[3]]))
        bbox = [float(xs[0]), float(ys[0]), float(xs[1]), float(ys[1])]
    zoom = min(max(spec.min_zoom, 10), spec.max_zoom)
    return {
        "tilejson": "3.0.0", "name": spec.name, "description": spec.description, "version": "1.0.0",
        "scheme": "xyz", "tiles": [_tile_url(spec, crs)], "minzoom": spec.min_zoom, "maxzoom": spec.max_zoom,
        "bounds": [round(v, 7) for v in bbox],
        "center": [round((bbox[0] + bbox[2]) / 2, 7), round((bbox[1] + bbox[3]) / 2, 7), zoom],
        "vector_layers": [{"id": spec.name, "description": spec.title, "minzoom": spec.min_zoom,
                           "maxzoom": spec.max_zoom, "fields": _field_doc(spec)}],
        "crs": "GCJ-02" if crs == "gcj02" else "WGS84",
    }


@blp.route("")
class TileLayers(MethodView):
    def get(self) -> Response:
        """Vector tile layers the caller may read, with their TileJSON and tile URL templates"""
        user = principal()
        root = request.url_root.rstrip("/")
        layers = [{"id": s.name, "title": s.title, "description": s.description, "geometry_type": s.geometry_type,
                   "minzoom": s.min_zoom, "maxzoom": s.max_zoom, "tilejson": f"{root}/tiles/{s.name}.json",
                   "tiles": [_tile_url(s, "wgs84")], "tiles_gcj02": [_tile_url(s, "gcj02")]}
                  for s in LAYERS.values() if user.has(s.permission)]
        return jsonify({"layers": layers})


@blp.route("/<layer>.json")
class TileJson(MethodView):
    def get(self, layer: str) -> Response:
        """TileJSON 3.0 of a layer (`?crs=gcj02` for Gaode base maps); bounds cover what the caller can see"""
        spec = layer_for(layer)
        return jsonify(tilejson(spec, _tile_crs()))


@blp.route("/<layer>/<int:z>/<int:x>/<int:y>.mvt")
class Tile(MethodView):
    def get(self, layer: str, z: int, x: int, y: int) -> Response:
        """One Mapbox Vector Tile (WebMercatorQuad); 204 when empty; `?crs=gcj02` shifts for Gaode base maps"""
        spec = layer_for(layer)
        crs = _tile_crs()
        if not spec.min_zoom <= z <= spec.max_zoom or not (x < 1 << z and y < 1 << z):
            raise NotFound("瓦片超出范围", code="TILE_OUT_OF_RANGE",
                           detail={"minzoom": spec.min_zoom, "maxzoom": spec.max_zoom})
        session, cache, conf = db(), tile_cache(), tiles_settings()
        key = data = None
        if cache.enabled:
            scope = scope_of(spec)
            version = cache.version(spec.name, scope, lambda: fingerprint(session, spec))
            key = cache.tile_key(spec, version, scope, crs, z, x, y)
            data = cache.get(key)
        status = "hit" if data is not None else "miss" if cache.enabled else "off"
        if data is None:
            data, clustered = render_tile(session, spec, z, x, y, crs)
            if len(data) > conf.byte_budget and spec.clustering is not None and not clustered:
                data, clustered = render_tile(session, spec, z, x, y, crs, force_cluster=True)
            if len(data) > conf.byte_budget:
                log.warning("tile over budget", extra={"layer": spec.name, "tile": f"{z}/{x}/{y}",
                                                       "bytes": len(data)})
            if key is not None:
                cache.put(key, data)
        return bytes_response(data, MVT_TYPE, status)
