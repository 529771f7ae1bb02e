"""Economic units (经济单元, POIs) and keyword place search (地图关键字搜索).

Coordinates in and out follow `crs=wgs84|gcj02|bd09` (default wgs84; in the JSON body for writes, in the query
for reads); storage is WGS84. `bbox` filters are WGS84, as for grids. The blueprint is mounted at /api/v1 because
it serves two resources, /pois and /places (as grid_rating and grid_staffing do).
"""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from marshmallow import ValidationError, fields, validate, validates_schema

from api.extensions import BaseSchema, Bbox, Blueprint, PageArgs, db, page_body, requires, settings
from geo_core.adapters import places
from geo_core.crs import parse_crs, transform_coords, transform_geojson
from geo_core.paging import PG_INT_MAX
from geo_core.pois import service
from geo_core.pois.models import Poi

blp = Blueprint("pois", __name__, url_prefix="/api/v1", description="经济单元与地图关键字搜索")

CATEGORY = validate.OneOf(service.CATEGORIES, error="类别须为：" + ", ".join(service.CATEGORIES))
PROVIDER = validate.OneOf(list(places.PROVIDERS), error="搜索服务须为：" + ", ".join(places.PROVIDERS))
GRID_ID = validate.Range(min=1, max=PG_INT_MAX)
DEFAULT_CITY = "长沙"


def _not_blank(value: str) -> None:
    if not value.strip():
        raise ValidationError("不能为空")


class Crs(fields.String):
    """A CRS name or alias, loaded as the canonical name."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            return parse_crs(text)
        except ValueError as exc:
            raise ValidationError(str(exc)) from exc


CRS_DOC = {"description": "wgs84 | gcj02 (Gaode) | bd09 (Baidu); default wgs84"}
CATEGORY_DOC = {"description": ", ".join(f"{k} {v}" for k, v in service.CATEGORY_LABELS.items())}


class CrsArgs(BaseSchema):
    crs = Crs(load_default="wgs84", metadata=CRS_DOC)


class PoiSchema(BaseSchema):
    id = fields.Integer(dump_only=True)
    name = fields.String(required=True, validate=[validate.Length(min=1, max=200), _not_blank])
    category = fields.String(required=True, validate=CATEGORY, metadata=CATEGORY_DOC)
    category_label = fields.String(dump_only=True)
    address = fields.String(allow_none=True, validate=validate.Length(max=300))
    phone = fields.String(allow_none=True, validate=validate.Length(max=64))
    lon = fields.Float(required=True, allow_nan=False, validate=validate.Range(-180, 180))
    lat = fields.Float(required=True, allow_nan=False, validate=validate.Range(-90, 90))
    crs = Crs(load_default="wgs84", metadata={"description": "CRS of lon/lat in and out; default wgs84"})
    source = fields.String(dump_only=True, metadata={"description": "manual | baidu | gaode"})
    source_ref = fields.String(dump_only=True, allow_none=True)
    grid_id = fields.Integer(dump_only=True, allow_none=True)
    h3_r10 = fields.String(dump_only=True, allow_none=True, metadata={"description": "H3 cell (resolution 10)"})
    created_at = fields.DateTime(dump_only=True)
    updated_at = fields.DateTime(dump_only=True)


class PoiUpdateSchema(PoiSchema):
    """PATCH: only the fields sent change; lon and lat go together."""

    @validates_schema
    def _lonlat_together(self, data: dict[str, Any], **_: Any) -> None:
        if ("lon" in data) != ("lat" in data):
            raise ValidationError("经纬度须同时提供", "lat" if "lon" in data else "lon")


class PoiListArgs(PageArgs, CrsArgs):
    category = fields.String(validate=CATEGORY)
    grid_id = fields.Integer(validate=GRID_ID, metadata={"description": "POIs in this grid and its descendants"})
    bbox = Bbox(metadata={"description": "minLon,minLat,maxLon,maxLat (WGS84)"})


class PoiPage(BaseSchema):
    items = fields.List(fields.Nested(PoiSchema))
    total = fields.Integer()
    page = fields.Integer()
    page_size = fields.Integer()


class PoiGeoJsonArgs(CrsArgs):
    q = fields.String(validate=validate.Length(max=100))
    category = fields.String(validate=CATEGORY)
    grid_id = fields.Integer(validate=GRID_ID)
    bbox = Bbox(metadata={"description": "minLon,minLat,maxLon,maxLat (WGS84)"})
    limit = fields.Integer(load_default=service.GEOJSON_LIMIT, validate=validate.Range(1, service.GEOJSON_LIMIT))


class PlaceSearchArgs(CrsArgs):
    q = fields.String(required=True, validate=[validate.Length(min=1, max=45), _not_blank])
    city = fields.String(load_default=DEFAULT_CITY, validate=[validate.Length(min=1, max=50), _not_blank])
    provider = fields.String(validate=PROVIDER, metadata={"description": "default: the first with a key configured"})
    page = fields.Integer(load_default=1, validate=validate.Range(1, 100))
    page_size = fields.Integer(load_default=10, validate=validate.Range(1, places.MAX_PAGE_SIZE))


class PlaceSchema(BaseSchema):
    name = fields.String()
    address = fields.String(allow_none=True)
    phone = fields.String(allow_none=True)
    category = fields.String(metadata={"description": "our POI category, derived from the provider's type"})
    category_label = fields.String()
    provider_type = fields.String(allow_none=True)
    lon = fields.Float()
    lat = fields.Float()
    provider = fields.String()
    provider_id = fields.String()


class ImportArgs(BaseSchema):
    provider = fields.String(validate=PROVIDER, metadata={"description": "default: the first with a key configured"})
    q = fields.String(required=True, validate=[validate.Length(min=1, max=45), _not_blank])
    city = fields.String(load_default=DEFAULT_CITY, validate=[validate.Length(min=1, max=50), _not_blank])
    limit = fields.Integer(data_key="max", load_default=20, validate=validate.Range(1, 200),
                           metadata={"description": "how many results to import at most"})
    crs = Crs(load_default="wgs84", metadata={"description": "CRS of the returned POIs' lon/lat"})


class PoiImportResultSchema(BaseSchema):
    created = fields.Integer()
    updated = fields.Integer()
    items = fields.List(fields.Nested(PoiSchema))


def _point_from(lon: float, lat: float, crs: str, to: str = "wgs84") -> tuple[float, float]:
    x, y = transform_coords(lon, lat, crs, to)
    return round(float(x), 7), round(float(y), 7)


def dump(poi: Poi, crs: str = "wgs84") -> dict[str, Any]:
    lon, lat = _point_from(*service.lonlat(poi), "wgs84", crs)
    return {**service.properties(poi), "lon": lon, "lat": lat, "crs": crs, "created_at": poi.created_at,
            "updated_at": poi.updated_at}


def _to_wgs84(data: dict[str, Any]) -> dict[str, Any]:
    crs = data.pop("crs", "wgs84")
    if "lon" in data and "lat" in data:
        data["lon"], data["lat"] = _point_from(data["lon"], data["lat"], crs)
    return data


@blp.route("/pois")
class Pois(MethodView):
    @requires("poi:read")
    @blp.arguments(PoiListArgs, location="query")
    @blp.response(200, PoiPage)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """List POIs: name search (substring, best matches first), category, grid subtree, bbox"""
        crs = args.pop("crs")
        return page_body(service.list_pois(db(), **args), lambda p: dump(p, crs))

    @requires("poi:edit")
    @blp.arguments(PoiSchema)
    @blp.response(201, PoiSchema)
    def post(self, data: dict[str, Any]) -> dict[str, Any]:
        """Create a POI; stored in WGS84 with its H3 cell and the finest grid containing it"""
        crs = data["crs"]
        return dump(service.create_poi(db(), _to_wgs84(data)), crs)


@blp.route("/pois/geojson")
class PoiFeatures(MethodView):
    @requires("poi:read")
    @blp.arguments(PoiGeoJsonArgs, location="query")
    @blp.response(200, description="GeoJSON FeatureCollection in `crs`, at most 5000 features; `truncated` says "
                                   "whether more matched")
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """POIs as GeoJSON points for the map (filter by bbox, category, grid, name)"""
        crs = args.pop("crs")
        fc = service.feature_collection(db(), **args)
        return fc if crs == "wgs84" else transform_geojson(fc, "wgs84", crs)


@blp.route("/pois/<int:poi_id>")
class PoiById(MethodView):
    @requires("poi:read")
    @blp.arguments(CrsArgs, location="query")
    @blp.response(200, PoiSchema)
    def get(self, args: dict[str, Any], poi_id: int) -> dict[str, Any]:
        """One POI"""
        return dump(service.get_poi(db(), poi_id), args["crs"])

    @requires("poi:edit")
    @blp.arguments(PoiUpdateSchema(partial=True))
    @blp.response(200, PoiSchema)
    def patch(self, data: dict[str, Any], poi_id: int) -> dict[str, Any]:
        """Edit a POI's fields; a new lon/lat re-computes its H3 cell and grid"""
        crs = data.get("crs", "wgs84")
        return dump(service.update_poi(db(), poi_id, _to_wgs84(data)), crs)

    @requires("poi:edit")
    @blp.response(204)
    def delete(self, poi_id: int) -> None:
        """Delete a POI"""
        service.delete_poi(db(), poi_id)


@blp.route("/pois/import-from-search")
class PoiImport(MethodView):
    @requires("poi:edit")
    @blp.arguments(ImportArgs)
    @blp.response(200, PoiImportResultSchema)
    @blp.alt_response(502, description="PLACE_SEARCH_FAILED: the provider answered with an error or not at all")
    @blp.alt_response(503, description="PLACE_SEARCH_DISABLED: no key configured for the provider")
    def post(self, data: dict[str, Any]) -> dict[str, Any]:
        """Save keyword search results as POIs (source = provider, source_ref = provider id; upsert)"""
        provider = data.get("provider") or places.default_provider(settings())
        found = places.collect_places(settings(), provider, data["q"], data["city"], data["limit"])
        result = service.import_places(db(), found)
        return {"created": result.created, "updated": result.updated,
                "items": [dump(p, data["crs"]) for p in result.pois]}


@blp.route("/places/search")
class PlaceSearch(MethodView):
    @requires("place:search")
    @blp.arguments(PlaceSearchArgs, location="query")
    @blp.response(200, PlaceSchema(many=True))
    @blp.alt_response(502, description="PLACE_SEARCH_FAILED: the provider answered with an error or not at all")
    @blp.alt_response(503, description="PLACE_SEARCH_DISABLED: no key configured for the provider")
    def get(self, args: dict[str, Any]) -> list[dict[str, Any]]:
        """Keyword search through Baidu or Gaode in a city; coordinates converted to `crs`"""
        provider = args.get("provider") or places.default_provider(settings())
        page = places.search_places(settings(), provider, args["q"], args["city"], page=args["page"],
                                    page_size=args["page_size"])
        out = []
        for place in page.items:
            category = service.category_for(place.provider_type, place.name)
            lon, lat = _point_from(place.lon, place.lat, "wgs84", args["crs"])
            out.append({"name": place.name, "address": place.address, "phone": place.phone, "category": category,
                        "category_label": service.CATEGORY_LABELS[category], "provider_type": place.provider_type,
                        "lon": lon, "lat": lat, "provider": place.provider, "provider_id": place.provider_id})
        return out
