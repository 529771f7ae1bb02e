"""Grid aggregates for choropleths (strategy map): per grid at a chosen level, customer KPIs inside the caller's
data scope, as GeoJSON (`/aggregates/grids`) or Mapbox Vector Tiles (`/aggregates/grids/{z}/{x}/{y}.mvt`).

A grid at level L counts the customers placed in it or in any grid below it (`customers.grid_id` -> grid whose
ltree `path` lies under L's path). Both the grids and the customers are read on the request session, so RLS decides
which grids appear and which customers count: a caller never learns anything about customers outside his scope.

KPIs (properties): customers, persons, companies, formal, potential, deposit_sum, loan_sum, households_estimate,
coverage_rate (persons / households_estimate), placed_share (share with an account manager, owner_user_id set),
visited_90d_share (last_visit_at within 90 days), task_completion (always null until campaigns/tasks exist).
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

import numpy as np
import shapely
from flask import Response, jsonify, request
from flask.views import MethodView
from marshmallow import ValidationError, fields, validate, validates_schema
from sqlalchemy import text

from api.extensions import BaseSchema, Blueprint, db
from api.grids import from_wgs84
from geo_core.crs import parse_crs, transform_geometry
from geo_core.errors import NotFound, ValidationFailed
from tiles import layer_for, sql, tiles_settings
from tiles.layers import GRID_LEVELS

blp = Blueprint("aggregates", __name__, url_prefix="/aggregates", description="网格汇总（专题图 choropleth）")
MAX_GRIDS = 20_000
MVT_LAYER = "grid_aggregates"
MVT_TYPE = "application/vnd.mapbox-vector-tile"
KPIS = ("customers", "persons", "companies", "formal", "potential", "deposit_sum", "loan_sum", "households_estimate",
        "coverage_rate", "placed_share", "visited_90d_share", "task_completion")

_SQL = """
WITH target AS MATERIALIZED (
  SELECT g.id, g.code, g.name, g.level::text AS level, g.org_id, g.households_estimate, g.path, g.geom
  FROM grids g
  WHERE g.kind = 'physical' AND g.level = CAST(:level AS grid_level) AND g.geom IS NOT NULL
    AND g.geom && ST_MakeEnvelope(:x0, :y0, :x1, :y1, 4326)
  ORDER BY g.id LIMIT :cap
), stats AS (
  SELECT t.id, count(*) AS customers,
         count(*) FILTER (WHERE c.kind = 'person') AS persons,
         count(*) FILTER (WHERE c.kind = 'company') AS companies,
         count(*) FILTER (WHERE c.category = 'formal') AS formal,
         count(*) FILTER (WHERE c.category = 'potential') AS potential,
         coalesce(sum(c.deposit_balance), 0)::float8 AS deposit_sum,
         coalesce(sum(c.loan_balance), 0)::float8 AS loan_sum,
         count(*) FILTER (WHERE c.owner_user_id IS NOT NULL) AS placed,
         count(*) FILTER (WHERE c.last_visit_at >= now() - interval '90 days') AS visited
  FROM target t JOIN grids cg ON cg.path <@ t.path JOIN customers c ON c.grid_id = cg.id
  GROUP BY t.id
)
SELECT t.id, t.code, t.name, t.level, t.org_id, t.households_estimate,
       coalesce(s.customers, 0), coalesce(s.persons, 0), coalesce(s.companies, 0), coalesce(s.formal, 0),
       coalesce(s.potential, 0), coalesce(s.deposit_sum, 0), coalesce(s.loan_sum, 0), coalesce(s.placed, 0),
       coalesce(s.visited, 0), {geometry}
FROM target t LEFT JOIN stats s ON s.id = t.id ORDER BY t.id
"""


class AggregateFilterArgs(BaseSchema):
    level = fields.String(load_default="community", validate=validate.OneOf(GRID_LEVELS),
                          metadata={"description": "grid level: " + " | ".join(GRID_LEVELS)})
    crs = fields.String(load_default="wgs84", metadata={"description": "wgs84 | gcj02 | bd09 (GeoJSON); "
                                                                       "wgs84 | gcj02 (MVT)"})


class AggregateArgs(AggregateFilterArgs):
    bbox = fields.String(load_default=None, metadata={"description": "minLon,minLat,maxLon,maxLat (WGS84); "
                                                                     "default: everywhere"})

    @validates_schema
    def _bbox(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("bbox") is None:
            data["bbox"] = (-180.0, -90.0, 180.0, 90.0)
            return
        try:
            box = tuple(float(v) for v in data["bbox"].split(","))
        except ValueError as exc:
            raise ValidationError("bbox 须为四个数字", "bbox") from exc
        if len(box) != 4 or not all(math.isfinite(v) for v in box) or not (
                -180 <= box[0] < box[2] <= 180 and -90 <= box[1] < box[3] <= 90):
            raise ValidationError("bbox 须为 minLon,minLat,maxLon,maxLat", "bbox")
        data["bbox"] = box


def _crs(allowed: tuple[str, ...]) -> str:
    try:
        crs = parse_crs(request.args.get("crs"))
    except ValueError as exc:
        raise ValidationFailed.on("crs", str(exc)) from exc
    if crs not in allowed:
        raise ValidationFailed.on("crs", f"只支持：{', '.join(allowed)}")
    return crs


def _share(part: int, whole: int | None) -> float | None:
    return round(part / whole, 4) if whole else None


def grid_kpis(level: str, box: tuple[float, ...], geometry: str) -> list[tuple[dict[str, Any], Any]]:
    """(properties, geometry value) per visible grid of `level` touching the box, KPIs over visible customers."""
    rows = db().execute(text(_SQL.format(geometry=geometry)),
                        {"level": level, "x0": box[0], "y0": box[1], "x1": box[2], "y1": box[3],
                         "cap": MAX_GRIDS + 1}).all()
    out = []
    for (gid, code, name, lvl, org_id, households, customers, persons, companies, formal, potential, deposits,
         loans, placed, visited, geom) in rows:
        props = {"id": gid, "code": code, "name": name, "level": lvl, "org_id": org_id, "customers": customers,
                 "persons": persons, "companies": companies, "formal": formal, "potential": potential,
                 "deposit_sum": round(deposits, 2), "loan_sum": round(loans, 2), "households_estimate": households,
                 "coverage_rate": _share(persons, households), "placed_share": _share(placed, customers),
                 "visited_90d_share": _share(visited, customers), "task_completion": None}
        out.append((props, geom))
    return out


@blp.route("/grids")
class GridAggregates(MethodView):
    @blp.arguments(AggregateArgs, location="query")
    def get(self, args: dict[str, Any]) -> Response:
        """Per-grid customer KPIs at a level, with grid polygons (GeoJSON, in `crs`); inside my data scope"""
        layer_for("grids")
        layer_for("customers")
        crs = _crs(("wgs84", "gcj02", "bd09"))
        rows = grid_kpis(args["level"], args["bbox"], "ST_AsGeoJSON(t.geom, 7)")
        truncated = len(rows) > MAX_GRIDS
        import json

        features = [{"type": "Feature", "id": p["id"], "geometry": json.loads(g), "properties": p}
                    for p, g in rows[:MAX_GRIDS]]
        body = from_wgs84({"type": "FeatureCollection", "features": features}, crs)
        body.update({"level": args["level"], "numberReturned": len(features), "truncated": truncated,
                     "kpis": list(KPIS)})
        return jsonify(body)


@blp.route("/grids/<int:z>/<int:x>/<int:y>.mvt")
class GridAggregateTile(MethodView):
    @blp.arguments(AggregateFilterArgs, location="query")
    def get(self, args: dict[str, Any], z: int, x: int, y: int) -> Response:
        """Per-grid KPIs as a Mapbox Vector Tile (layer `grid_aggregates`); 204 when empty"""
        from tiles.vector_tiles import _inverse_area, _lonlat_to_tile, encode_layer

        layer_for("grids")
        layer_for("customers")
        if not (z <= 22 and x < 1 << z and y < 1 << z):
            raise NotFound("瓦片超出范围", code="TILE_OUT_OF_RANGE")
        crs = _crs(("wgs84", "gcj02"))
        bounds = sql.tile_bounds(z, x, y)
        if crs == "gcj02":
            lon, lat = _inverse_area(z, x, y, sql.BUFFER / sql.EXTENT)
            box = (float(lon.min()) - 1e-4, float(lat.min()) - 1e-4, float(lon.max()) + 1e-4, float(lat.max()) + 1e-4)
        else:
            w, s, e, n = sql.tile_lonlat_bounds(z, x, y)
            pad = (e - w) * sql.BUFFER / sql.EXTENT
            box = (w - pad, s - pad, e + pad, n + pad)
        tol = (bounds[2] - bounds[0]) / sql.EXTENT / 2 / 111_320
        rows = grid_kpis(args["level"], box, f"ST_AsBinary(ST_Simplify(t.geom, {tol!r}, true))")
        features = []
        if rows:
            geoms = shapely.from_wkb([bytes(g) for _, g in rows])
            if crs == "gcj02":
                geoms = transform_geometry(geoms, "wgs84", "gcj02")
            geoms = shapely.transform(geoms, lambda c: np.column_stack(_lonlat_to_tile(c[:, 0], c[:, 1], bounds)))
            lo, hi = -sql.BUFFER, sql.EXTENT + sql.BUFFER
            geoms = shapely.clip_by_rect(geoms, lo, lo, hi, hi)
            for (props, _), g in zip(rows, geoms, strict=True):
                if g is not None and not g.is_empty:
                    features.append({"geometry": g, "id": props["id"],
                                     "properties": {k: v for k, v in props.items() if v is not None and k != "id"}})
        data = encode_layer(MVT_LAYER, features) if features else b""
        headers = {"Cache-Control": f"private, max-age={tiles_settings().max_age_s}", "Vary": "Authorization"}
        if not data:
            return Response(status=204, headers=headers)
        response = Response(data, mimetype=MVT_TYPE, headers=headers)
        response.set_etag(hashlib.sha1(data).hexdigest()[:24])
        return response.make_conditional(request)
