"""Grids (网格管理): hierarchy, geometry edits with topology rules, split/merge/rebuild, lookup, GeoJSON.

Every geometry-accepting or GeoJSON-returning endpoint takes `crs=wgs84|gcj02|bd09` (default wgs84):
geometries are stored in WGS84 and converted exactly on the way in and out.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import request
from flask.views import MethodView
from marshmallow import ValidationError, fields, validate, validates_schema

from api.extensions import BaseSchema, Blueprint, PageArgs, db, page_body, principal, requires
from geo_core.crs import parse_crs, transform_geojson
from geo_core.errors import ValidationFailed
from geo_core.grids import service
from geo_core.grids.models import BusinessLine, Grid, GridKind, GridLevel, GridStatus, VirtualType
from geo_core.grids.summary import grid_summary

blp = Blueprint("grids", __name__, url_prefix="/api/v1/grids", description="网格管理")

KINDS = [k.value for k in GridKind]
LEVELS = [lv.value for lv in GridLevel]
VTYPES = [v.value for v in VirtualType]
LINES = [b.value for b in BusinessLine]
STATUSES = [s.value for s in GridStatus]
CODE = validate.Regexp(r"^[A-Za-z0-9_-]{1,40}$", error="只能包含字母、数字、_ 和 -，最长 40 位")
DIVISION = validate.Regexp(r"^\d{6}(\d{3}(\d{3})?)?$", error="行政区划代码为 6、9 或 12 位数字")


def crs_arg() -> str:
    try:
        return parse_crs(request.args.get("crs"))
    except ValueError as exc:
        raise ValidationFailed(str(exc), errors={"crs": [str(exc)]}) from exc


def to_wgs84(geometry: dict[str, Any] | None, crs: str) -> dict[str, Any] | None:
    if geometry is None or crs == "wgs84" or not isinstance(geometry, dict):
        return geometry
    try:
        return transform_geojson(geometry, crs, "wgs84")
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        raise ValidationFailed("几何坐标格式错误", code="INVALID_GEOMETRY", errors={"geometry": [str(exc)]}) from exc


def from_wgs84(obj: dict[str, Any], crs: str) -> dict[str, Any]:
    return obj if crs == "wgs84" else transform_geojson(obj, "wgs84", crs)


@contextmanager
def errors_in(crs: str) -> Iterator[None]:
    """Topology/validity error geometries (overlaps, overhang, invalid location) in the request's crs."""
    try:
        yield
    except ValidationFailed as exc:
        detail = exc.detail or {}
        if crs != "wgs84" and detail:
            for item in [detail.get("outside_parent"), *(detail.get("overlaps") or [])]:
                if item and item.get("geometry"):
                    item["geometry"] = from_wgs84(item["geometry"], crs)
            if detail.get("location"):
                detail["location"] = from_wgs84(detail["location"], crs)
        raise


class CrsArgs(BaseSchema):
    crs = fields.String(load_default="wgs84", metadata={"description": "wgs84 | gcj02 (Gaode) | bd09 (Baidu)"})


class GridSchema(BaseSchema):
    id = fields.Integer(dump_only=True)
    code = fields.String(required=True, validate=CODE)
    name = fields.String(required=True, validate=validate.Length(min=1, max=100))
    kind = fields.String(required=True, validate=validate.OneOf(KINDS))
    level = fields.String(allow_none=True, validate=validate.OneOf(LEVELS))
    virtual_type = fields.String(allow_none=True, validate=validate.OneOf(VTYPES))
    business_line = fields.String(load_default="retail", validate=validate.OneOf(LINES))
    org_id = fields.Integer(validate=validate.Range(min=1), metadata={"description": "default: my org"})
    parent_id = fields.Integer(allow_none=True, validate=validate.Range(min=1))
    division_code = fields.String(allow_none=True, validate=DIVISION)
    households_estimate = fields.Integer(allow_none=True, validate=validate.Range(min=0, max=10_000_000))
    status = fields.String(load_default="active", validate=validate.OneOf(STATUSES))
    geometry = fields.Dict(allow_none=True, metadata={"description": "GeoJSON Polygon/MultiPolygon in `crs`"})
    path = fields.String(dump_only=True)
    area_m2 = fields.Float(dump_only=True, allow_none=True)
    version = fields.Integer(dump_only=True)
    children = fields.Integer(dump_only=True)


class GridUpdateSchema(GridSchema):
    """PATCH: only the fields sent change. Send `version` to refuse a concurrent edit (409)."""

    business_line = fields.String(validate=validate.OneOf(LINES))
    status = fields.String(validate=validate.OneOf(STATUSES))
    version = fields.Integer(validate=validate.Range(min=1))

    class Meta:
        exclude = ("kind", "level", "virtual_type")


class RepairArgs(CrsArgs):
    repair = fields.Boolean(load_default=False, metadata={"description": "apply make-valid to invalid input"})


class GridListArgs(PageArgs):
    kind = fields.String(validate=validate.OneOf(KINDS))
    level = fields.String(validate=validate.OneOf(LEVELS))
    virtual_type = fields.String(validate=validate.OneOf(VTYPES))
    business_line = fields.String(validate=validate.OneOf(LINES))
    status = fields.String(validate=validate.OneOf(STATUSES))
    parent_id = fields.Integer(validate=validate.Range(min=1))
    under_id = fields.Integer(validate=validate.Range(min=1), metadata={"description": "descendants of this grid"})
    org_id = fields.Integer(validate=validate.Range(min=1))
    roots = fields.Boolean(load_default=False, metadata={"description": "only grids without a parent"})


class GeoJsonArgs(GridListArgs, CrsArgs):
    bbox = fields.String(metadata={"description": "minLon,minLat,maxLon,maxLat (WGS84)"})
    simplify_m = fields.Float(load_default=0, validate=validate.Range(min=0, max=1000))
    limit = fields.Integer(load_default=2000, validate=validate.Range(min=1, max=10000))

    @validates_schema
    def _bbox(self, data: dict[str, Any], **_: Any) -> None:
        if "bbox" in data:
            try:
                box = tuple(float(v) for v in data["bbox"].split(","))
            except ValueError as exc:
                raise ValidationError("bbox 须为四个数字", "bbox") from exc
            if len(box) != 4 or not (box[0] < box[2] and box[1] < box[3]):
                raise ValidationError("bbox 须为 minLon,minLat,maxLon,maxLat", "bbox")
            data["bbox"] = box


class GridPage(BaseSchema):
    items = fields.List(fields.Nested(GridSchema))
    total = fields.Integer()
    page = fields.Integer()
    page_size = fields.Integer()


class SplitArgs(BaseSchema):
    line = fields.Dict(required=True, metadata={"description": "GeoJSON LineString in `crs`, crossing the grid"})


class MergeArgs(BaseSchema):
    grid_ids = fields.List(fields.Integer(validate=validate.Range(min=1)), required=True,
                           validate=validate.Length(min=2, max=50))
    name = fields.String(validate=validate.Length(min=1, max=100))


class LookupArgs(CrsArgs):
    lon = fields.Float(required=True, validate=validate.Range(-180, 180))
    lat = fields.Float(required=True, validate=validate.Range(-90, 90))


def dump(grid: Grid, crs: str = "wgs84", with_geometry: bool = True) -> dict[str, Any]:
    data = service.properties(grid)
    data.pop("path")
    data["path"] = str(grid.path)
    if with_geometry:
        geometry = service.current_geometry(db(), grid)
        data["geometry"] = from_wgs84(geometry, crs) if geometry else None
    return data


@blp.route("")
class Grids(MethodView):
    @requires("grid:read")
    @blp.arguments(GridListArgs, location="query")
    @blp.response(200, GridPage)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """List grids in my scope (no geometry; filter by kind, level, type, business line, parent)"""
        page = service.list_grids(db(), **args)
        counts = service.children_summary(db(), [g.id for g in page.items])
        return page_body(page, lambda g: {**dump(g, with_geometry=False), "children": counts.get(g.id, 0)})

    @requires("grid:edit")
    @blp.arguments(GridSchema)
    @blp.arguments(RepairArgs, location="query")
    @blp.response(201, GridSchema)
    @blp.alt_response(422, description="Invalid geometry (reason + location) or topology violation "
                                       "(`detail.overlaps`, `detail.outside_parent` with geometries)")
    def post(self, data: dict[str, Any], args: dict[str, Any]) -> dict[str, Any]:
        """Create a grid; the geometry must be valid, inside its parent and not overlap its siblings"""
        crs = crs_arg()
        data["geometry"] = to_wgs84(data.get("geometry"), crs)
        with errors_in(crs):
            return dump(service.create_grid(db(), principal(), data, repair=args["repair"]), crs)


@blp.route("/<int:grid_id>")
class GridById(MethodView):
    @requires("grid:read")
    @blp.arguments(CrsArgs, location="query")
    @blp.response(200, GridSchema)
    def get(self, args: dict[str, Any], grid_id: int) -> dict[str, Any]:
        """One grid with its geometry (404 if outside my scope)"""
        return dump(service.get_grid(db(), grid_id), crs_arg())

    @requires("grid:edit")
    @blp.arguments(GridUpdateSchema(partial=True))
    @blp.arguments(RepairArgs, location="query")
    @blp.response(200, GridSchema)
    def patch(self, data: dict[str, Any], args: dict[str, Any], grid_id: int) -> dict[str, Any]:
        """Edit a grid's attributes and/or geometry (topology rules re-checked)"""
        crs = crs_arg()
        if "geometry" in data:
            data["geometry"] = to_wgs84(data["geometry"], crs)
        with errors_in(crs):
            return dump(service.update_grid(db(), principal(), grid_id, data, repair=args["repair"]), crs)

    @requires("grid:edit")
    @blp.response(204)
    def delete(self, grid_id: int) -> None:
        """Delete a grid (refused while children or members depend on it)"""
        service.delete_grid(db(), grid_id)


@blp.route("/<int:grid_id>/split")
class GridSplit(MethodView):
    @requires("grid:edit")
    @blp.arguments(SplitArgs)
    @blp.arguments(CrsArgs, location="query")
    @blp.response(200, GridSchema(many=True))
    def post(self, data: dict[str, Any], args: dict[str, Any], grid_id: int) -> list[dict[str, Any]]:
        """Split a grid with a line; the largest part keeps the grid, the others become new grids"""
        crs = crs_arg()
        line = data["line"] if crs == "wgs84" else transform_geojson(data["line"], crs, "wgs84")
        return [dump(g, crs) for g in service.split_grid(db(), principal(), grid_id, line)]


@blp.route("/merge")
class GridMerge(MethodView):
    @requires("grid:edit")
    @blp.arguments(MergeArgs)
    @blp.arguments(CrsArgs, location="query")
    @blp.response(200, GridSchema)
    def post(self, data: dict[str, Any], args: dict[str, Any]) -> dict[str, Any]:
        """Merge adjacent sibling grids into the first one listed"""
        grid = service.merge_grids(db(), principal(), data["grid_ids"], name=data.get("name"))
        return dump(grid, crs_arg())


@blp.route("/<int:grid_id>/rebuild")
class GridRebuild(MethodView):
    @requires("grid:edit")
    @blp.arguments(CrsArgs, location="query")
    @blp.response(200, GridSchema)
    def post(self, args: dict[str, Any], grid_id: int) -> dict[str, Any]:
        """Rebuild a parent grid's boundary as the union of its children"""
        crs = crs_arg()
        with errors_in(crs):
            return dump(service.rebuild_from_children(db(), principal(), grid_id), crs)


@blp.route("/geojson")
class GridFeatures(MethodView):
    @requires("grid:read")
    @blp.arguments(GeoJsonArgs, location="query")
    @blp.response(200, description="GeoJSON FeatureCollection in `crs`")
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """Grids in my scope as GeoJSON (filters as the list; bbox; optional simplification)"""
        crs = crs_arg()
        for key in ("page", "page_size", "crs"):
            args.pop(key, None)
        simplify, limit = args.pop("simplify_m"), args.pop("limit")
        fc = service.feature_collection(db(), service.select_grids(**args), simplify_m=simplify, limit=limit)
        return from_wgs84(fc, crs)


@blp.route("/<int:grid_id>/summary")
class GridSummary(MethodView):
    @requires("grid:read")
    @blp.response(200, description="Counts inside the grid (within my scope) and the layers to overlay")
    def get(self, grid_id: int) -> dict[str, Any]:
        """「我的网格」 summary: children by level, households vs the 500–1,000 norm, POIs, outlets, layers"""
        return grid_summary(db(), grid_id)


@blp.route("/lookup")
class GridLookup(MethodView):
    @requires("grid:read")
    @blp.arguments(LookupArgs, location="query")
    @blp.response(200, GridSchema)
    @blp.alt_response(404, description="No grid of mine contains the point")
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """The finest grid (in my scope) containing a point"""
        crs = crs_arg()
        lon, lat = args["lon"], args["lat"]
        if crs != "wgs84":
            point = transform_geojson({"type": "Point", "coordinates": [lon, lat]}, crs, "wgs84")
            lon, lat = point["coordinates"]
        grid = service.find_grid_for_point(db(), lon, lat)
        if grid is None:
            from geo_core.errors import NotFound

            raise NotFound("该位置不在任何网格内", code="GRID_NOT_FOUND")
        return dump(grid, crs, with_geometry=False)
