"""H3 heatmaps: per-hexagon counts and sums of numeric fields, inside the caller's data scope (the request session
carries RLS), as GeoJSON for a bbox (`/heatmaps/{layer}`) and as Mapbox Vector Tiles
(`/heatmaps/{layer}/{z}/{x}/{y}.mvt`, hexagon polygons at a zoom-derived resolution).

Points carry their resolution-10 cell (`h3_r10`); coarser cells come from `gm_h3_parent()` in SQL, so one GROUP BY
answers a request. Each heat layer is one `HeatLayer` entry in `HEAT_LAYERS` (table, cell and time columns, manager
and org columns, equality filters, summed columns, tag table): footprints (field-work issue) plug in by adding one,
with their manager and date columns. Hexagon geometry is computed in Python (h3) - PostGIS has no H3 here.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any

import h3
import numpy as np
import shapely
from flask import Response
from flask.views import MethodView
from marshmallow import ValidationError, fields, validate, validates_schema
from sqlalchemy import text

from api.extensions import BaseSchema, Bbox, Blueprint, db
from api.grids import from_wgs84
from geo_core.crs import wgs84_to_gcj02
from geo_core.errors import NotFound, ValidationFailed
from tiles import bytes_response, heatmap_cells, layer_for, request_crs, scope_of, sql, tile_cache

blp = Blueprint("heatmaps", __name__, url_prefix="/heatmaps", description="H3 热力图（GeoJSON 与 MVT）")
MAX_CELLS = 20_000
MVT_LAYER = "heatmap"
MVT_TYPE = "application/vnd.mapbox-vector-tile"


@dataclass(frozen=True)
class HeatLayer:
    """How a registered map layer (`tiles.layers`, for permission and scope) aggregates into hexagons."""

    table: str
    time_columns: tuple[str, ...]  # `time_field` choices; the first is the default
    manager_column: str | None = None
    org_column: str | None = None  # `org_id` filter = this column within the org's subtree
    filters: dict[str, str] = field(default_factory=dict)  # query parameter -> whitelisted column (equality)
    sums: tuple[str, ...] = ()  # numeric columns summed per hexagon
    tag_table: str | None = None  # (id, tag_id) link table: `tag` filter, used only once the table exists
    cell_column: str = "h3_r10"
    geom_column: str = "geom"


HEAT_LAYERS: dict[str, HeatLayer] = {
    "customers": HeatLayer("customers", ("updated_at", "created_at", "holdings_as_of", "last_visit_at"),
                           manager_column="owner_user_id", org_column="org_id",
                           filters={"kind": "kind", "category": "category", "grid_id": "grid_id"},
                           sums=("deposit_balance", "loan_balance"), tag_table="customer_tags"),
    "pois": HeatLayer("pois", ("updated_at", "created_at"), filters={"category": "category", "grid_id": "grid_id"}),
}
TAG_LINK_COLUMN = {"customer_tags": "customer_id"}


def resolution_for_zoom(z: int) -> int:
    """About 30-60 px per hexagon on screen: z8 -> 5 ... z13+ -> 10."""
    return max(5, min(10, z - 3))


class HeatFilterArgs(BaseSchema):
    res = fields.Integer(load_default=None, validate=validate.Range(min=5, max=10),
                         metadata={"description": "H3 resolution; default from the zoom"})
    time_field = fields.String(load_default=None, validate=validate.Length(max=32),
                               metadata={"description": "column of since/until: updated_at (default), created_at, "
                                                        "holdings_as_of, last_visit_at (customers)"})
    since = fields.DateTime(load_default=None)
    until = fields.DateTime(load_default=None)
    org_id = fields.Integer(load_default=None, validate=validate.Range(min=1), metadata={"description": "subtree"})
    manager_id = fields.Integer(load_default=None, validate=validate.Range(min=1))
    kind = fields.String(load_default=None, validate=validate.Length(max=32))
    category = fields.String(load_default=None, validate=validate.Length(max=64))
    grid_id = fields.Integer(load_default=None, validate=validate.Range(min=1))
    tag = fields.String(load_default=None, validate=validate.Length(max=400),
                        metadata={"description": "tag ids, comma-separated (any of them)"})
    crs = fields.String(load_default="wgs84", metadata={"description": "wgs84 | gcj02 | bd09 (GeoJSON); "
                                                                       "wgs84 | gcj02 (MVT)"})

    @validates_schema
    def _tags(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("tag"):
            try:
                tags = sorted({int(v) for v in data["tag"].split(",") if v.strip()})
            except ValueError as exc:
                raise ValidationError("tag 须为逗号分隔的标签编号", "tag") from exc
            if not tags or len(tags) > 50 or min(tags) < 1 or max(tags) > 2**31 - 1:
                raise ValidationError("tag 须为 1-50 个正整数", "tag")
            data["tag"] = tags


class HeatmapArgs(HeatFilterArgs):
    bbox = Bbox(required=True, metadata={"description": "minLon,minLat,maxLon,maxLat (WGS84)"})
    zoom = fields.Integer(load_default=12, validate=validate.Range(min=0, max=22))


def _heat_layer(name: str) -> tuple[Any, HeatLayer]:
    spec = layer_for(name)  # 401/403/404 like the tiles
    if spec.name not in HEAT_LAYERS:
        raise ValidationFailed.on("layer", f"热力图只支持：{', '.join(HEAT_LAYERS)}")
    return spec, HEAT_LAYERS[spec.name]


def _where(heat: HeatLayer, args: dict[str, Any], box: tuple[float, ...]) -> tuple[list[str], dict[str, Any]]:
    where = [f"t.{heat.cell_column} IS NOT NULL", f"t.{heat.geom_column} && ST_MakeEnvelope(:x0, :y0, :x1, :y1, 4326)"]
    params: dict[str, Any] = dict(zip(("x0", "y0", "x1", "y1"), box, strict=True))
    for name, column in heat.filters.items():
        if args.get(name) is not None:
            where.append(f"t.{column} = :{name}")
            params[name] = args[name]
    time_column = args.get("time_field") or heat.time_columns[0]
    if time_column not in heat.time_columns:
        raise ValidationFailed.on("time_field", f"只支持：{', '.join(heat.time_columns)}")
    for bound, op in (("since", ">="), ("until", "<")):
        if args.get(bound) is not None:
            where.append(f"t.{time_column} {op} :{bound}")
            params[bound] = args[bound]
    if args.get("manager_id") is not None:
        if heat.manager_column is None:
            raise ValidationFailed.on("manager_id", "该图层没有客户经理字段")
        where.append(f"t.{heat.manager_column} = :manager_id")
        params["manager_id"] = args["manager_id"]
    if args.get("org_id") is not None:
        if heat.org_column is None:
            raise ValidationFailed.on("org_id", "该图层没有机构字段")
        where.append(f"t.{heat.org_column} IN (SELECT id FROM orgs WHERE path <@ "
                     "(SELECT path FROM orgs WHERE id = :org_id))")
        params["org_id"] = args["org_id"]
    if args.get("tag"):
        exists = heat.tag_table is not None and db().scalar(text("SELECT to_regclass(:t) IS NOT NULL"),
                                                           {"t": f"public.{heat.tag_table}"})
        if not exists:
            raise ValidationFailed.on("tag", "该图层暂不支持按标签筛选（标签表尚未建立）")
        link = TAG_LINK_COLUMN[heat.tag_table]  # type: ignore[index]
        where.append(f"EXISTS (SELECT 1 FROM {heat.tag_table} x WHERE x.{link} = t.id AND x.tag_id = ANY(:tags))")
        params["tags"] = list(args["tag"])
    return where, params


def heat_cells(layer: str, args: dict[str, Any], box: tuple[float, ...], res: int,
               limit: int | None = MAX_CELLS + 1) -> list[tuple[Any, ...]]:
    """(cell, count, *sums) for the caller's visible points of `layer` in a WGS84 box, most populated first."""
    heat = HEAT_LAYERS[layer]
    where, params = _where(heat, args, box)
    params["res"] = res
    sums = "".join(f", coalesce(sum(t.{c}), 0)::float8" for c in heat.sums)
    query = (f"SELECT gm_h3_parent(t.{heat.cell_column}, :res) AS cell, count(*){sums} FROM {heat.table} t "
             f"WHERE {' AND '.join(where)} GROUP BY 1 ORDER BY 2 DESC, 1"
             + (f" LIMIT {int(limit)}" if limit else ""))
    if heatmap_cells.eligible(layer, args, res):  # same cells, counts and sums from the r8 aggregate
        query, params["pad"] = heatmap_cells.query(args, limit), heatmap_cells.PAD
    try:
        with db().begin_nested():
            return [(int(r[0]), int(r[1]), *(round(float(v), 2) for v in r[2:]))
                    for r in db().execute(text(query), params)]
    except Exception as exc:  # a bad enum value in a filter is the caller's mistake
        if "invalid input value" in str(getattr(exc, "orig", exc)):
            raise ValidationFailed("筛选条件取值无效", errors={"filter": [str(getattr(exc, "orig", exc))
                                                                        .splitlines()[0]]}) from exc
        raise


def _properties(heat: HeatLayer, row: tuple[Any, ...]) -> dict[str, Any]:
    props: dict[str, Any] = {"cell": h3.int_to_str(row[0]), "count": row[1]}
    props.update(zip(heat.sums, row[2:], strict=True))
    return props


def _cache_key(spec: Any, kind: str, args: dict[str, Any], *parts: object) -> tuple[Any, str | None]:
    cache = tile_cache()
    if not cache.enabled:
        return cache, None
    from tiles.vector_tiles import fingerprint

    scope = scope_of(spec)
    session = db()
    version = cache.version(spec.name, scope, lambda: fingerprint(session, spec))
    norm = json.dumps({k: v for k, v in sorted(args.items()) if v is not None}, default=str, sort_keys=True)
    digest = hashlib.sha1(norm.encode()).hexdigest()[:16]
    return cache, cache.derived_key(spec, version, scope, kind, digest, *parts)


@blp.route("/<layer>")
class Heatmap(MethodView):
    @blp.arguments(HeatmapArgs, location="query")
    def get(self, args: dict[str, Any], layer: str) -> Response:
        """H3 hexagons with counts and sums (GeoJSON, in `crs`) for a bbox; inside my data scope; no PII"""
        spec, heat = _heat_layer(layer)
        crs = request_crs(("wgs84", "gcj02", "bd09"))
        res = args["res"] or resolution_for_zoom(args["zoom"])
        cache, key = _cache_key(spec, "heat", {**args, "res": res, "crs": crs})
        cached = cache.get(key) if key else None
        if cached is not None:
            return Response(cached, mimetype="application/geo+json", headers={"X-Tile-Cache": "hit"})
        cells = heat_cells(spec.name, args, args["bbox"], res)
        truncated = len(cells) > MAX_CELLS
        features = []
        for row in cells[:MAX_CELLS]:
            ring = [[lng, lat] for lat, lng in h3.cell_to_boundary(h3.int_to_str(row[0]))]
            features.append({"type": "Feature", "id": h3.int_to_str(row[0]),
                             "geometry": {"type": "Polygon", "coordinates": [ring + [ring[0]]]},
                             "properties": _properties(heat, row)})
        body = from_wgs84({"type": "FeatureCollection", "features": features}, crs)
        body.update({"resolution": res, "total": sum(r[1] for r in cells[:MAX_CELLS]),
                     "sums": {c: round(sum(r[2 + i] for r in cells[:MAX_CELLS]), 2) for i, c in enumerate(heat.sums)},
                     "truncated": truncated})
        data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        if key:
            cache.put(key, data)
        return Response(data, mimetype="application/geo+json",
                        headers={"X-Tile-Cache": "miss" if key else "off"})


# --- MVT ------------------------------------------------------------------------------------------------------------

def _select_box(z: int, x: int, y: int, res: int, crs: str) -> tuple[float, float, float, float]:
    """WGS84 box holding every point of every hexagon that can touch the (buffered) tile: the tile, inverse-shifted
    for GCJ-02, grown by two hexagon edge lengths (a hexagon's diameter)."""
    from tiles.vector_tiles import _inverse_area

    if crs == "gcj02":
        lon, lat = _inverse_area(z, x, y, sql.BUFFER / sql.EXTENT)
        w, s, e, n = float(lon.min()), float(lat.min()), float(lon.max()), float(lat.max())
    else:
        w, s, e, n = sql.tile_lonlat_bounds(z, x, y)
    edge_deg = 2.2 * h3.average_hexagon_edge_length(res, unit="km") / 111.32
    lat_pad = edge_deg
    lon_pad = edge_deg / max(math.cos(math.radians(max(abs(s), abs(n)))), 0.05)
    return (max(w - lon_pad, -180.0), max(s - lat_pad, -85.06), min(e + lon_pad, 180.0), min(n + lat_pad, 85.06))


def render_heat_tile(layer: str, args: dict[str, Any], z: int, x: int, y: int, res: int, crs: str) -> bytes:
    from tiles.vector_tiles import _lonlat_to_tile, encode_layer

    heat = HEAT_LAYERS[layer]
    rows = heat_cells(layer, args, _select_box(z, x, y, res, crs), res, limit=None)
    if not rows:
        return b""
    bounds = sql.tile_bounds(z, x, y)
    rings = [h3.cell_to_boundary(h3.int_to_str(r[0])) for r in rows]
    lat = np.array([p[0] for ring in rings for p in ring])
    lon = np.array([p[1] for ring in rings for p in ring])
    if crs == "gcj02":
        lon, lat = wgs84_to_gcj02(lon, lat)
    px, py = _lonlat_to_tile(lon, lat, bounds)
    lo, hi = -sql.BUFFER, sql.EXTENT + sql.BUFFER
    features, k = [], 0
    for row, ring in zip(rows, rings, strict=True):
        n = len(ring)
        poly = shapely.Polygon(np.column_stack([px[k:k + n], py[k:k + n]]))
        k += n
        if poly.bounds[2] < lo or poly.bounds[0] > hi or poly.bounds[3] < lo or poly.bounds[1] > hi:
            continue
        clipped = shapely.clip_by_rect(poly, lo, lo, hi, hi)
        if not clipped.is_empty:
            features.append({"geometry": clipped, "properties": _properties(heat, row)})
    return encode_layer(MVT_LAYER, features) if features else b""


@blp.route("/<layer>/<int:z>/<int:x>/<int:y>.mvt")
class HeatTile(MethodView):
    @blp.arguments(HeatFilterArgs, location="query")
    def get(self, args: dict[str, Any], layer: str, z: int, x: int, y: int) -> Response:
        """H3 hexagons as a Mapbox Vector Tile (layer `heatmap`: cell, count, sums); 204 when empty"""
        spec, _ = _heat_layer(layer)
        if not (z <= 22 and x < 1 << z and y < 1 << z):
            raise NotFound("瓦片超出范围", code="TILE_OUT_OF_RANGE")
        crs = request_crs(("wgs84", "gcj02"), hint="（百度底图请用 GeoJSON 形式）")
        res = args["res"] or resolution_for_zoom(z)
        cache, key = _cache_key(spec, "heatmvt", {**args, "res": res, "crs": crs}, f"{z}/{x}/{y}")
        data = cache.get(key) if key else None
        status = "hit" if data is not None else "miss" if key else "off"
        if data is None:
            data = render_heat_tile(spec.name, args, z, x, y, res, crs)
            if key:
                cache.put(key, data)
        return bytes_response(data, MVT_TYPE, status, {"X-H3-Resolution": str(res)})
