"""我的关注 / 自由标注: markers and followed objects of the logged-in user (leaders read their team's)."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from geoalchemy2.shape import to_shape
from marshmallow import fields, validate

from api.extensions import BaseSchema, Blueprint, PageArgs, db, page_body, principal, requires
from api.grids import crs_arg, from_wgs84, to_wgs84
from geo_core.watch import service
from geo_core.watch.models import TARGET_TYPES, WatchItem

blp = Blueprint("watch_items", __name__, url_prefix="/api/v1/watch-items", description="我的关注")


class WatchItemSchema(BaseSchema):
    id = fields.Integer(dump_only=True)
    user_id = fields.Integer(dump_only=True)
    title = fields.String(required=True, validate=validate.Length(min=1, max=100))
    note = fields.String(allow_none=True, validate=validate.Length(max=2000))
    target_type = fields.String(allow_none=True, validate=validate.OneOf(TARGET_TYPES))
    target_id = fields.Integer(allow_none=True, validate=validate.Range(min=1))
    lon = fields.Float(allow_none=True, validate=validate.Range(-180, 180), metadata={"description": "in `crs`"})
    lat = fields.Float(allow_none=True, validate=validate.Range(-90, 90))
    grid_id = fields.Integer(dump_only=True, allow_none=True)
    created_at = fields.DateTime(dump_only=True)


class WatchItemUpdateSchema(WatchItemSchema):
    class Meta:
        exclude = ("target_type", "target_id")


class ListArgs(PageArgs):
    mine = fields.Boolean(load_default=True, metadata={"description": "false: also my team's (leaders)"})
    user_id = fields.Integer(validate=validate.Range(min=1))
    grid_id = fields.Integer(validate=validate.Range(min=1), metadata={"description": "in this grid's subtree"})
    crs = fields.String(load_default="wgs84")


class ItemPage(BaseSchema):
    items = fields.List(fields.Nested(WatchItemSchema))
    total = fields.Integer()
    page = fields.Integer()
    page_size = fields.Integer()


def _point(crs: str, data: dict[str, Any]) -> None:
    if data.get("lon") is not None and data.get("lat") is not None and crs != "wgs84":
        point = to_wgs84({"type": "Point", "coordinates": [data["lon"], data["lat"]]}, crs)
        data["lon"], data["lat"] = point["coordinates"]


def dump(item: WatchItem, crs: str = "wgs84") -> dict[str, Any]:
    lon = lat = None
    if item.geom is not None:
        point = to_shape(item.geom)
        lon, lat = from_wgs84({"type": "Point", "coordinates": [point.x, point.y]}, crs)["coordinates"]
    return {"id": item.id, "user_id": item.user_id, "title": item.title, "note": item.note,
            "target_type": item.target_type, "target_id": item.target_id, "lon": lon, "lat": lat,
            "grid_id": item.grid_id, "created_at": item.created_at}


def _filters(args: dict[str, Any]) -> dict[str, Any]:
    user_id = principal().user_id if args.get("mine", True) else args.get("user_id")
    return {"user_id": user_id, "grid_id": args.get("grid_id")}


@blp.route("")
class Items(MethodView):
    @requires()
    @blp.arguments(ListArgs, location="query")
    @blp.response(200, ItemPage)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """My watch items (or, for leaders, my team's with mine=false)"""
        crs = crs_arg()
        page = service.list_items(db(), page=args["page"], page_size=args["page_size"], **_filters(args))
        return page_body(page, lambda i: dump(i, crs))

    @requires()
    @blp.arguments(WatchItemSchema)
    @blp.response(201, WatchItemSchema)
    def post(self, data: dict[str, Any]) -> dict[str, Any]:
        """Add a free marker (lon/lat in `crs`) or follow a grid, POI or outlet"""
        crs = crs_arg()
        _point(crs, data)
        return dump(service.create_item(db(), principal(), data), crs)


@blp.route("/<int:item_id>")
class ItemById(MethodView):
    @requires()
    @blp.response(200, WatchItemSchema)
    def get(self, item_id: int) -> dict[str, Any]:
        """One watch item"""
        return dump(service.get_item(db(), item_id), crs_arg())

    @requires()
    @blp.arguments(WatchItemUpdateSchema(partial=True))
    @blp.response(200, WatchItemSchema)
    def patch(self, data: dict[str, Any], item_id: int) -> dict[str, Any]:
        """Edit my watch item (title, note, position)"""
        crs = crs_arg()
        _point(crs, data)
        return dump(service.update_item(db(), principal(), item_id, data), crs)

    @requires()
    @blp.response(204)
    def delete(self, item_id: int) -> None:
        """Remove my watch item"""
        service.delete_item(db(), principal(), item_id)


@blp.route("/geojson")
class ItemFeatures(MethodView):
    @requires()
    @blp.arguments(ListArgs, location="query")
    @blp.response(200, description="GeoJSON FeatureCollection of located watch items, in `crs`")
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """Located watch items as GeoJSON (for the map)"""
        crs = crs_arg()
        stmt = service.select_items(**_filters(args)).where(WatchItem.geom.is_not(None)).limit(5000)
        items = db().scalars(stmt).all()
        features = []
        for item in items:
            d = dump(item, "wgs84")
            features.append({"type": "Feature", "id": item.id,
                             "geometry": {"type": "Point", "coordinates": [d["lon"], d["lat"]]},
                             "properties": {k: d[k] for k in ("id", "title", "note", "target_type", "target_id",
                                                              "grid_id", "user_id")}})
        return from_wgs84({"type": "FeatureCollection", "features": features}, crs)
