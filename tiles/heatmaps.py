"""H3 heatmaps: point counts per hexagon for a bbox, at a resolution chosen from the zoom, inside the
caller's data scope (the request session carries RLS). Points carry their resolution-10 cell
(`h3_r10`); coarser cells come from `gm_h3_parent()` in SQL, so one GROUP BY answers a request.
Footprints (field-work issue) register here with their time column and manager column.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import h3
from flask import jsonify, request
from flask.views import MethodView
from marshmallow import ValidationError, fields, validate, validates_schema
from sqlalchemy import text

from api.extensions import BaseSchema, Blueprint, db
from api.grids import from_wgs84
from geo_core.crs import parse_crs
from geo_core.errors import ValidationFailed
from tiles import layer_for

blp = Blueprint("heatmaps", __name__, url_prefix="/heatmaps", description="H3 热力图")
MAX_CELLS = 20_000


@dataclass(frozen=True)
class HeatLayer:
    table: str
    time_column: str
    manager_column: str | None
    filters: dict[str, str]  # query parameter -> whitelisted column (equality)


HEAT_LAYERS: dict[str, HeatLayer] = {
    "customers": HeatLayer("customers", "updated_at", "owner_user_id",
                           {"kind": "kind", "category": "category", "grid_id": "grid_id"}),
    "pois": HeatLayer("pois", "updated_at", None, {"category": "category", "grid_id": "grid_id"}),
}


def resolution_for_zoom(z: int) -> int:
    """About 30-60 px per hexagon on screen: z8 -> 5 ... z15+ -> 10."""
    return max(5, min(10, z - 3))


class HeatmapArgs(BaseSchema):
    bbox = fields.String(required=True, metadata={"description": "minLon,minLat,maxLon,maxLat (WGS84)"})
    zoom = fields.Integer(load_default=12, validate=validate.Range(min=0, max=22))
    res = fields.Integer(load_default=None, validate=validate.Range(min=5, max=10),
                         metadata={"description": "H3 resolution; default from zoom"})
    since = fields.DateTime(load_default=None)
    until = fields.DateTime(load_default=None)
    org_id = fields.Integer(load_default=None, validate=validate.Range(min=1), metadata={"description": "subtree"})
    manager_id = fields.Integer(load_default=None, validate=validate.Range(min=1))
    kind = fields.String(load_default=None, validate=validate.Length(max=32))
    category = fields.String(load_default=None, validate=validate.Length(max=64))
    grid_id = fields.Integer(load_default=None, validate=validate.Range(min=1))
    crs = fields.String(load_default="wgs84")

    @validates_schema
    def _bbox(self, data: dict[str, Any], **_: Any) -> None:
        try:
            box = tuple(float(v) for v in data["bbox"].split(","))
        except ValueError as exc:
            raise ValidationError("bbox 须为四个数字", "bbox") from exc
        if len(box) != 4 or not (-180 <= box[0] < box[2] <= 180 and -90 <= box[1] < box[3] <= 90):
            raise ValidationError("bbox 须为 minLon,minLat,maxLon,maxLat", "bbox")
        data["bbox"] = box


def heat_cells(layer: str, args: dict[str, Any]) -> list[tuple[int, int]]:
    """(cell, count) for the caller's visible points of `layer` in the bbox."""
    spec = HEAT_LAYERS[layer]
    res = args["res"] or resolution_for_zoom(args["zoom"])
    where = ["h3_r10 IS NOT NULL", "geom && ST_MakeEnvelope(:x0, :y0, :x1, :y1, 4326)"]
    params: dict[str, Any] = dict(zip(("x0", "y0", "x1", "y1"), args["bbox"], strict=True), res=res)
    for name, column in spec.filters.items():
        if args.get(name) is not None:
            where.append(f"{column} = :{name}")
            params[name] = args[name]
    if args.get("since"):
        where.append(f"{spec.time_column} >= :since")
        params["since"] = args["since"]
    if args.get("until"):
        where.append(f"{spec.time_column} < :until")
        params["until"] = args["until"]
    if args.get("manager_id") is not None:
        if spec.manager_column is None:
            raise ValidationFailed.on("manager_id", "该图层没有客户经理字段")
        where.append(f"{spec.manager_column} = :manager_id")
        params["manager_id"] = args["manager_id"]
    if args.get("org_id") is not None and layer == "customers":
        where.append("org_id IN (SELECT id FROM orgs WHERE path <@ (SELECT path FROM orgs WHERE id = :org_id))")
        params["org_id"] = args["org_id"]
    sql = (f"SELECT gm_h3_parent(h3_r10, :res) AS cell, count(*) FROM {spec.table} "
           f"WHERE {' AND '.join(where)} GROUP BY 1 ORDER BY 2 DESC LIMIT {MAX_CELLS + 1}")
    try:
        with db().begin_nested():
            return [(int(c), int(n)) for c, n in db().execute(text(sql), params)]
    except Exception as exc:  # a bad enum value in a filter is the caller's mistake
        if "invalid input value" in str(getattr(exc, "orig", exc)):
            raise ValidationFailed("筛选条件取值无效", errors={"filter": [str(getattr(exc, "orig", exc))
                                                                        .splitlines()[0]]}) from exc
        raise


@blp.route("/<layer>")
class Heatmap(MethodView):
    @blp.arguments(HeatmapArgs, location="query")
    def get(self, args: dict[str, Any], layer: str):  # noqa: ANN201
        """H3 hexagons with point counts (GeoJSON, in `crs`) for a bbox; inside my data scope; no PII"""
        spec = layer_for(layer)  # 401/403/404 like the tiles
        if spec.name not in HEAT_LAYERS:
            raise ValidationFailed.on("layer", f"热力图只支持：{', '.join(HEAT_LAYERS)}")
        try:
            crs = parse_crs(request.args.get("crs"))
        except ValueError as exc:
            raise ValidationFailed.on("crs", str(exc)) from exc
        cells = heat_cells(spec.name, args)
        truncated = len(cells) > MAX_CELLS
        features = []
        for cell, count in cells[:MAX_CELLS]:
            hexid = h3.int_to_str(cell)
            ring = [[lng, lat] for lat, lng in h3.cell_to_boundary(hexid)]
            features.append({"type": "Feature", "id": hexid,
                             "geometry": {"type": "Polygon", "coordinates": [ring + [ring[0]]]},
                             "properties": {"cell": hexid, "count": count}})
        body = from_wgs84({"type": "FeatureCollection", "features": features}, crs)
        body.update({"resolution": args["res"] or resolution_for_zoom(args["zoom"]),
                     "total": sum(n for _, n in cells[:MAX_CELLS]), "truncated": truncated})
        return jsonify(body)
