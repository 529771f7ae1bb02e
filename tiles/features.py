"""OGC API - Features at /ogc: Part 1 Core + GeoJSON (+ a minimal HTML view), Part 2 CRS by reference, Part 3
queryables and CQL2 filters. Read-only (Part 4 is not offered: grid edits go through /api/v1/grids).

Every statement runs on the request's session, so row-level security gives each caller only his data scope: lists,
single items (404 outside the scope), counts and extents alike. The landing page and conformance are public; every
other resource needs the same Bearer token as /api/v1 and the layer's permission (see tiles.layers).
CRS identifiers, the numberMatched rule and examples: docs/TILES.md.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import numpy as np
import shapely
from flask import Response, request
from flask.views import MethodView
from markupsafe import escape
from psycopg import sql as pgsql

from api.extensions import Blueprint, db, principal
from geo_core.crs import transform_coords, transform_geojson
from geo_core.errors import DomainError, NotFound
from geo_core.paging import PG_INT_MAX, valid_id
from tiles import cql2, layer_for, layer_stats, sql, tiles_settings
from tiles.layers import LAYERS, Field, LayerSpec

blp = Blueprint("ogc", __name__, url_prefix="/ogc",
                description="OGC API – Features（GIS 客户端：QGIS、GDAL/OGR、ArcGIS）")

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
EPSG4326 = "http://www.opengis.net/def/crs/EPSG/0/4326"
EPSG3857 = "http://www.opengis.net/def/crs/EPSG/0/3857"
GCJ02 = "http://www.gridmarket.cn/def/crs/GCJ-02"
BD09 = "http://www.gridmarket.cn/def/crs/BD-09"
TRS = "http://www.opengis.net/def/uom/ISO-8601/0/Gregorian"
GEOJSON = "application/geo+json"
JSON = "application/json"
CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
    "http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/crs",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables-query-parameters",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/filter",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/features-filter",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-text",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-json",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-cql2",
    "http://www.opengis.net/spec/cql2/1.0/conf/advanced-comparison-operators",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions-plus",
    "http://www.opengis.net/spec/cql2/1.0/conf/spatial-functions",
    # OGC API - Tiles (tiles/ogc_tiles.py)
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/tileset",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/tilesets-list",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/geodata-tilesets",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/mvt",
]
ITEM_PARAMS = {"f", "limit", "offset", "bbox", "bbox-crs", "crs", "datetime", "filter", "filter-lang", "filter-crs",
               "sortby", "properties"}


@dataclass(frozen=True)
class Crs:
    uri: str
    axes: str  # lonlat | latlon | mercator
    datum: str  # geo_core.crs name: wgs84 | gcj02 | bd09


CRSES = {c.uri: c for c in (Crs(CRS84, "lonlat", "wgs84"), Crs(EPSG4326, "latlon", "wgs84"),
                            Crs(EPSG3857, "mercator", "wgs84"), Crs(GCJ02, "lonlat", "gcj02"),
                            Crs(BD09, "lonlat", "bd09"))}
_CRS_ALIASES = {
    "crs84": CRS84, "ogc:crs84": CRS84, "urn:ogc:def:crs:ogc:1.3:crs84": CRS84, "[ogc:crs84]": CRS84,
    "epsg:4326": EPSG4326, "urn:ogc:def:crs:epsg::4326": EPSG4326, "[epsg:4326]": EPSG4326,
    "epsg:3857": EPSG3857, "urn:ogc:def:crs:epsg::3857": EPSG3857, "[epsg:3857]": EPSG3857,
    "gcj02": GCJ02, "gcj-02": GCJ02, "bd09": BD09, "bd-09": BD09,
}


def bad_request(param: str, message: str, code: str = "INVALID_PARAMETER", **detail: Any) -> DomainError:
    return DomainError(message, code=code, errors={param: [message]}, detail=detail or None)


# --- parameters -----------------------------------------------------------------------------------------------------

def crs_arg(name: str, default: str = CRS84) -> Crs:
    raw = request.args.get(name)
    if raw is None:
        return CRSES[default]
    uri = raw.strip().strip("<>")
    uri = _CRS_ALIASES.get(uri.lower(), uri)
    if uri.startswith("https://www.opengis.net/"):
        uri = "http://" + uri[len("https://"):]
    if uri not in CRSES:
        raise bad_request(name, f"{name} 不支持：{raw}；可选 " + ", ".join(CRSES), supported=list(CRSES))
    return CRSES[uri]


def to_lonlat(x: Any, y: Any, crs: Crs) -> tuple[Any, Any]:
    """Coordinates in `crs` (numpy arrays) to WGS84 lon/lat."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if crs.axes == "latlon":
        x, y = y, x
    elif crs.axes == "mercator":
        x, y = np.degrees(x / 6378137.0), np.degrees(2 * np.arctan(np.exp(y / 6378137.0)) - np.pi / 2)
    if crs.datum != "wgs84":
        x, y = transform_coords(x, y, crs.datum, "wgs84")
    return x, y


def geometry_to_storage(geom: Any, crs: Crs) -> Any:
    """A shapely geometry in `crs` to WGS84 lon/lat (how the tables store it)."""
    return shapely.transform(geom, lambda c: np.column_stack(to_lonlat(c[:, 0], c[:, 1], crs)))


def bbox_arg(crs: Crs) -> tuple[float, float, float, float]:
    raw = request.args["bbox"]
    try:
        values = [float(v) for v in raw.split(",")]
    except ValueError as exc:
        raise bad_request("bbox", "bbox 须为逗号分隔的 4 个（或 6 个）数字") from exc
    if len(values) == 6:
        values = [values[0], values[1], values[3], values[4]]
    if len(values) != 4 or not all(np.isfinite(values)) or values[0] > values[2] or values[1] > values[3]:
        raise bad_request("bbox", "bbox 须为 minx,miny,maxx,maxy（bbox-crs 的轴顺序），且 min <= max")
    xs = np.array([values[0], values[2], values[0], values[2], (values[0] + values[2]) / 2])
    ys = np.array([values[1], values[1], values[3], values[3], (values[1] + values[3]) / 2])
    lon, lat = to_lonlat(xs, ys, crs)
    box = (float(lon.min()), float(lat.min()), float(lon.max()), float(lat.max()))
    if not (-180 <= box[0] and box[2] <= 180 and -90 <= box[1] and box[3] <= 90):
        raise bad_request("bbox", "bbox 超出经纬度范围（EPSG:4326 的轴顺序为 纬度,经度）")
    return box


def int_arg(name: str, default: int, minimum: int, maximum: int | None = None) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise bad_request(name, f"{name} 须为整数") from exc
    if value < minimum:
        raise bad_request(name, f"{name} 不能小于 {minimum}")
    return value if maximum is None else min(value, maximum)


def _instant(text: str, *, end: bool) -> datetime | None:
    """One end of a datetime interval; a bare date covers the whole (UTC) day."""
    if text in ("", ".."):
        return None
    try:
        if len(text) == 10:
            day = datetime.combine(date.fromisoformat(text), datetime.min.time(), UTC)
            return day + timedelta(days=1) if end else day
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise bad_request("datetime", f"datetime 不是 RFC 3339 时间或区间：{text}") from exc
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def datetime_condition(spec: LayerSpec, where: sql.Where, raw: str) -> None:
    """Instant (equality; a bare date = that day) or interval `start/end` with open ends `..` (inclusive)."""
    column = sql.column(spec.datetime_column)
    if "/" in raw:
        first, _, second = raw.partition("/")
        start, stop, exclusive = _instant(first, end=False), _instant(second, end=True), len(second) == 10
    else:
        start = _instant(raw, end=False)
        if start is None:
            raise bad_request("datetime", "datetime 不能为 ..")
        if len(raw) != 10:
            where.add(pgsql.SQL("{} = %(dt0)s").format(column), dt0=start)
            return
        stop, exclusive = _instant(raw, end=True), True
    if start is not None and stop is not None and start > stop:
        raise bad_request("datetime", "datetime 区间的起点晚于终点")
    if start is not None:
        where.add(pgsql.SQL("{} >= %(dt0)s").format(column), dt0=start)
    if stop is not None:
        where.add(pgsql.SQL("{} {} %(dt1)s").format(column, pgsql.SQL("<" if exclusive else "<=")), dt1=stop)


def queryables(spec: LayerSpec) -> dict[str, Field]:
    return {f.name: f for f in spec.fields if f.item}


def property_conditions(spec: LayerSpec, where: sql.Where) -> None:
    """`?name=value` equality filters on queryables (Part 3 queryables-query-parameters)."""
    fields = queryables(spec)
    for i, (name, raw) in enumerate(request.args.items()):
        if name in ITEM_PARAMS:
            continue
        f = fields.get(name)
        if f is None:
            raise bad_request(name, f"未知参数：{name}；可用的属性见 queryables",
                              allowed=sorted(ITEM_PARAMS | set(fields)))
        where.add(pgsql.SQL("{} = {}").format(sql.field_value(f), pgsql.Placeholder(f"pe{i}")),
                  **{f"pe{i}": _typed(f, raw)})


def _typed(f: Field, raw: str) -> Any:
    try:
        if f.type == "integer":
            return int(raw)
        if f.type == "number":
            return float(raw)
    except ValueError as exc:
        raise bad_request(f.name, f"{f.name} 须为数字") from exc
    if f.type == "boolean":
        if raw.lower() not in ("true", "false"):
            raise bad_request(f.name, f"{f.name} 须为 true 或 false")
        return raw.lower() == "true"
    if f.type in ("datetime", "date"):
        raise bad_request(f.name, f"按时间筛选请用 datetime 或 filter 参数：{f.name}")
    if f.enum and raw not in f.enum:
        raise bad_request(f.name, f"{f.name} 须为：{', '.join(f.enum)}")
    return raw


def filter_condition(spec: LayerSpec, where: sql.Where) -> None:
    text = request.args["filter"]
    lang = request.args.get("filter-lang", "cql2-text")
    if lang not in ("cql2-text", "cql2-json"):
        raise bad_request("filter-lang", "filter-lang 须为 cql2-text 或 cql2-json")
    filter_crs = crs_arg("filter-crs")
    fields = queryables(spec)

    def resolve(name: str, pos: int | str, spatial: bool) -> tuple[pgsql.Composable, str]:
        if name in ("geometry", spec.geom_column):
            if not spatial:
                raise cql2.CQL2Error("the geometry can only be used in spatial functions (S_INTERSECTS, ...)", pos)
            return sql.geom(spec), "geometry"
        f = fields.get(name)
        if f is None:
            raise cql2.CQL2Error(f"unknown property {name!r} (see the collection's queryables)", pos)
        if spatial:
            raise cql2.CQL2Error(f"{name!r} is not a geometry; use 'geometry'", pos)
        return sql.field_value(f), f.type

    try:
        tree = cql2.parse(text, lang)
        condition = cql2.Compiler(resolve, lambda g: geometry_to_storage(g, filter_crs), where.params).compile(tree)
    except cql2.CQL2Error as exc:
        pos = exc.position
        near = text[pos:pos + 30] if isinstance(pos, int) else None
        where_ = f"位置 {pos}" if isinstance(pos, int) else f"{pos}"
        raise bad_request("filter", f"filter 有误（{where_}）：{exc.message}", code="INVALID_FILTER",
                          position=pos, near=near) from exc
    where.add(condition)


def sortby_arg(spec: LayerSpec) -> list[tuple[str, bool]]:
    raw = request.args.get("sortby", "")
    fields = queryables(spec)
    order = []
    for item in (i.strip() for i in raw.split(",") if i.strip()):
        asc = not item.startswith("-")
        name = item.lstrip("+-").strip()
        if name not in fields:
            raise bad_request("sortby", f"sortby 不支持的属性：{name}")
        order.append((name, asc))
    return order


def properties_arg(spec: LayerSpec) -> tuple[Field, ...]:
    if "properties" not in request.args:
        return spec.item_fields
    allowed = {f.name: f for f in spec.item_fields}
    chosen = []
    for name in (n.strip() for n in request.args["properties"].split(",") if n.strip()):
        if name not in allowed:
            raise bad_request("properties", f"properties 不支持的属性：{name}")
        chosen.append(allowed[name])
    return tuple(chosen)


# --- responses ------------------------------------------------------------------------------------------------------

def _root() -> str:
    return request.url_root.rstrip("/")


def link(href: str, rel: str, media: str, title: str | None = None) -> dict[str, str]:
    out = {"href": href, "rel": rel, "type": media}
    if title:
        out["title"] = title
    return out


def _default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def wants_html() -> bool:
    f = request.args.get("f")
    if f is not None:
        if f not in ("json", "geojson", "html"):
            raise bad_request("f", "f 须为 json、geojson 或 html")
        return f == "html"
    best = request.accept_mimetypes.best_match([JSON, GEOJSON, "text/html"])
    return best == "text/html"


def respond(body: dict[str, Any], media: str = JSON, title: str = "GridMarket", headers: dict[str, str] | None = None,
            html: bool | None = None) -> Response:
    if wants_html() if html is None else html:
        return Response(_html(title, body), mimetype="text/html", headers=headers)
    text = json.dumps(body, ensure_ascii=False, default=_default, separators=(",", ":"))
    return Response(text, mimetype=media, headers=headers)


def _html(title: str, body: dict[str, Any]) -> str:
    """A plain page: the links as anchors and the JSON document itself."""
    links = "".join(f'<li><a href="{escape(lk["href"])}">{escape(lk.get("title") or lk["rel"])}</a> '
                    f'<small>{escape(lk["rel"])} · {escape(lk["type"])}</small></li>'
                    for lk in body.get("links", []))
    doc = escape(json.dumps(body, ensure_ascii=False, default=_default, indent=2)[:200_000])
    return (f'<!doctype html><html lang="zh-CN"><head><meta charset="utf-8"><title>{escape(title)}</title></head>'
            f"<body><h1>{escape(title)}</h1><ul>{links}</ul><pre>{doc}</pre></body></html>")


def _self_links(media: str, title: str) -> list[dict[str, str]]:
    args = {k: v for k, v in request.args.items() if k != "f"}
    base = request.base_url
    html = base + "?" + urlencode({**args, "f": "html"})
    json_link = base + ("?" + urlencode(args) if args else "")
    return [link(json_link, "self", media, title), link(html, "alternate", "text/html", title + " (HTML)")]


def _crs_headers(crs: Crs) -> dict[str, str]:
    return {"Content-Crs": f"<{crs.uri}>"}


def feature(spec: LayerSpec, fields: tuple[Field, ...], row: tuple[Any, ...]) -> dict[str, Any]:
    props = {f.name: v for f, v in zip(fields, row[1:-1], strict=True)}
    return {"type": "Feature", "id": row[0], "geometry": json.loads(row[-1]) if row[-1] else None,
            "properties": props}


def shift(features: list[dict[str, Any]], crs: Crs) -> list[dict[str, Any]]:
    if crs.datum == "wgs84" or not features:
        return features
    return transform_geojson({"type": "FeatureCollection", "features": features}, "wgs84", crs.datum)["features"]


def collection_doc(spec: LayerSpec) -> dict[str, Any]:
    root = f"{_root()}/ogc/collections/{spec.name}"
    stats = layer_stats(spec)
    extent: dict[str, Any] = {}
    if stats["bbox"]:
        extent["spatial"] = {"bbox": [[round(v, 7) for v in stats["bbox"]]], "crs": CRS84}
    if stats["interval"]:
        extent["temporal"] = {"interval": [stats["interval"]], "trs": TRS}
    doc: dict[str, Any] = {"id": spec.name, "title": spec.title, "description": spec.description,
                           "itemType": "feature", "crs": list(CRSES), "storageCrs": CRS84}
    if extent:
        doc["extent"] = extent
    doc["links"] = [
        link(root, "self", JSON, spec.title), link(root + "?f=html", "alternate", "text/html", spec.title),
        link(root + "/items", "items", GEOJSON, "要素 (GeoJSON)"),
        link(root + "/queryables", "http://www.opengis.net/def/rel/ogc/1.0/queryables", "application/schema+json",
             "Queryables"),
        link(f"{_root()}/tiles/{spec.name}.json", "describedby", JSON, "TileJSON (vector tiles)"),
    ]
    return doc


# --- number matched -------------------------------------------------------------------------------------------------

def number_matched(spec: LayerSpec, where: sql.Where, returned: int, limit: int,
                   offset: int) -> tuple[int | None, int | None]:
    """(exact numberMatched or None, planner estimate or None) by the configured rule (docs/TILES.md)."""
    if returned < limit and (returned > 0 or offset == 0):
        return offset + returned, None  # the last page proves the total
    conf = tiles_settings()
    if conf.count_mode == "none":
        return None, None
    session = db()
    if conf.count_mode == "auto":
        plan = sql.run(session, *sql.estimate_query(spec, where))[0][0]
        estimate = int(plan[0]["Plan"]["Plan Rows"])
        if estimate > conf.count_threshold:
            return None, estimate
    return int(sql.run(session, *sql.count_query(spec, where))[0][0]), None


def _page_link(rel: str, offset: int, limit: int) -> dict[str, str]:
    args = {k: v for k, v in request.args.items() if k not in ("offset", "limit")}
    args.update(limit=str(limit), offset=str(offset))
    return link(f"{request.base_url}?{urlencode(args)}", rel, GEOJSON, "下一页" if rel == "next" else "上一页")


# --- views ----------------------------------------------------------------------------------------------------------

@blp.route("", strict_slashes=False)
class Landing(MethodView):
    def get(self) -> Response:
        """OGC API – Features landing page (public)"""
        root = _root()
        body = {"title": "GridMarket 网格化精准营销 – OGC API Features",
                "description": "Grids, customers, outlets and POIs within your data scope. Send the same Bearer "
                               "token as /api/v1 (Authorization header).",
                "links": [*_self_links(JSON, "Landing page"),
                          link(f"{root}/api/openapi.json", "service-desc",
                               "application/vnd.oai.openapi+json;version=3.0", "OpenAPI 3.0"),
                          link(f"{root}/api/docs", "service-doc", "text/html", "API documentation"),
                          link(f"{root}/ogc/conformance", "conformance", JSON, "Conformance classes"),
                          link(f"{root}/ogc/collections", "data", JSON, "Collections")]}
        return respond(body, title="GridMarket OGC API")


@blp.route("/conformance")
class Conformance(MethodView):
    def get(self) -> Response:
        """Conformance classes (public)"""
        return respond({"conformsTo": CONFORMANCE}, title="Conformance")


@blp.route("/collections")
class Collections(MethodView):
    @blp.doc(security=[{"bearerAuth": []}])
    def get(self) -> Response:
        """Feature collections the caller may read (extents cover his data scope only)"""
        user = principal()
        docs = [collection_doc(s) for s in LAYERS.values() if user.has(s.permission)]
        body = {"links": _self_links(JSON, "Collections"), "collections": docs, "crs": list(CRSES)}
        return respond(body, title="Collections")


@blp.route("/collections/<collection_id>")
class Collection(MethodView):
    @blp.doc(security=[{"bearerAuth": []}])
    def get(self, collection_id: str) -> Response:
        """One collection: extent, CRS list, links to items, queryables and TileJSON"""
        return respond(collection_doc(layer_for(collection_id)), title=collection_id)


@blp.route("/collections/<collection_id>/queryables")
class Queryables(MethodView):
    @blp.doc(security=[{"bearerAuth": []}])
    def get(self, collection_id: str) -> Response:
        """Queryable properties as JSON Schema (for `filter`, `sortby` and `?property=value`)"""
        spec = layer_for(collection_id)
        props: dict[str, Any] = {"geometry": {"format": f"geometry-{spec.geometry_type.lower()}",
                                              "x-ogc-role": "primary-geometry"}}
        types = {"integer": "integer", "number": "number", "boolean": "boolean", "string": "string"}
        for f in queryables(spec).values():
            schema: dict[str, Any] = {"title": f.title, "type": types.get(f.type, "string")}
            if f.type in ("datetime", "date"):
                schema["format"] = "date-time" if f.type == "datetime" else "date"
            if f.enum:
                schema["enum"] = list(f.enum)
            if f.name == spec.id_column:
                schema["x-ogc-role"] = "id"
            if f.name == spec.datetime_column:
                schema["x-ogc-role"] = "primary-instant"
            props[f.name] = schema
        body = {"$schema": "https://json-schema.org/draft/2020-12/schema",
                "$id": f"{_root()}/ogc/collections/{spec.name}/queryables", "type": "object",
                "title": spec.title, "properties": props, "additionalProperties": False}
        return respond(body, media="application/schema+json", title=f"{spec.name} queryables")


def _q(name: str, schema: dict[str, Any], description: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description, **extra}


_CRS_SCHEMA = {"type": "string", "enum": list(CRSES), "default": CRS84}
ITEMS_DOC = {
    "security": [{"bearerAuth": []}],
    "parameters": [
        _q("limit", {"type": "integer", "minimum": 1, "maximum": 10_000, "default": 10},
           "page size (larger values are clamped to GM_OGC_LIMIT_MAX)"),
        _q("offset", {"type": "integer", "minimum": 0, "default": 0}, "features to skip (next/prev links set it)"),
        _q("bbox", {"type": "array", "minItems": 4, "maxItems": 6, "items": {"type": "number"}},
           "minx,miny,maxx,maxy in bbox-crs (axis order of that CRS)", style="form", explode=False),
        _q("bbox-crs", _CRS_SCHEMA, "CRS of bbox"),
        _q("crs", _CRS_SCHEMA, "CRS of the returned geometries (Content-Crs header)"),
        _q("datetime", {"type": "string"}, "updated_at instant or interval (RFC 3339, `..` for open ends)"),
        _q("filter", {"type": "string"}, "CQL2 filter over the queryables"),
        _q("filter-lang", {"type": "string", "enum": ["cql2-text", "cql2-json"], "default": "cql2-text"}, ""),
        _q("filter-crs", _CRS_SCHEMA, "CRS of geometry literals in filter"),
        _q("sortby", {"type": "string"}, "comma-separated queryables, `-` for descending"),
        _q("properties", {"type": "string"}, "comma-separated properties to return"),
        _q("f", {"type": "string", "enum": ["json", "geojson", "html"]}, "output format"),
    ],
    "responses": {"200": {"description": "GeoJSON FeatureCollection",
                          "content": {GEOJSON: {"schema": {"type": "object"}}}}},
}


@blp.route("/collections/<collection_id>/items")
class Items(MethodView):
    @blp.doc(**ITEMS_DOC)
    def get(self, collection_id: str) -> Response:
        """Features as GeoJSON: bbox, datetime, filter (CQL2), property filters, sortby, properties, crs, paging"""
        spec = layer_for(collection_id)
        conf = tiles_settings()
        html = wants_html()
        limit = int_arg("limit", conf.limit_default, 1, conf.limit_max)
        offset = int_arg("offset", 0, 0, PG_INT_MAX)
        out = crs_arg("crs")
        where = sql.Where(spec)
        if "bbox" in request.args:
            sql.bbox_condition(spec, where, bbox_arg(crs_arg("bbox-crs")))
        if "datetime" in request.args:
            datetime_condition(spec, where, request.args["datetime"])
        property_conditions(spec, where)
        if "filter" in request.args:
            filter_condition(spec, where)
        fields = properties_arg(spec)
        rows = sql.run(db(), *sql.items_query(spec, where, fields, out.axes, sortby_arg(spec), limit, offset))
        matched, estimate = number_matched(spec, where, len(rows), limit, offset)
        body: dict[str, Any] = {"type": "FeatureCollection", "timeStamp": datetime.now(UTC).isoformat()}
        if matched is not None:
            body["numberMatched"] = matched
        elif estimate is not None:
            body["numberMatchedEstimate"] = estimate
        body["numberReturned"] = len(rows)
        links = [*_self_links(GEOJSON, "本页"), link(f"{_root()}/ogc/collections/{spec.name}", "collection", JSON)]
        if len(rows) == limit and (matched is None or offset + limit < matched):
            links.append(_page_link("next", offset + limit, limit))
        if offset > 0:
            links.append(_page_link("prev", max(0, offset - limit), limit))
        body["links"] = links
        body["features"] = shift([feature(spec, fields, r) for r in rows], out)
        return respond(body, media=GEOJSON, title=f"{spec.title}", headers=_crs_headers(out), html=html)


@blp.route("/collections/<collection_id>/items/<feature_id>")
class Item(MethodView):
    @blp.doc(security=[{"bearerAuth": []}])
    def get(self, collection_id: str, feature_id: str) -> Response:
        """One feature (404 when it does not exist or is outside the caller's data scope)"""
        spec = layer_for(collection_id)
        html = wants_html()
        unknown = set(request.args) - {"f", "crs", "properties"}
        if unknown:
            raise bad_request(sorted(unknown)[0], f"未知参数：{', '.join(sorted(unknown))}")
        out = crs_arg("crs")
        fid = int(feature_id) if feature_id.isdigit() and len(feature_id) < 12 else 0
        if not valid_id(fid):
            raise NotFound("要素不存在", code="FEATURE_NOT_FOUND")
        fields = properties_arg(spec)
        rows = sql.run(db(), sql.item_by_id_query(spec, fields, out.axes), {"fid": fid})
        if not rows:
            raise NotFound("要素不存在", code="FEATURE_NOT_FOUND")
        body = shift([feature(spec, fields, rows[0])], out)[0]
        body["links"] = [*_self_links(GEOJSON, f"{spec.name} {fid}"),
                         link(f"{_root()}/ogc/collections/{spec.name}", "collection", JSON)]
        return respond(body, media=GEOJSON, title=f"{spec.title} {fid}", headers=_crs_headers(out), html=html)
