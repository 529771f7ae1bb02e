"""OGC API – Tiles (core, tilesets list, tileset metadata) over the same vector tiles as /tiles.

Path order differs from /tiles: OGC uses /ogc/collections/{id}/tiles/WebMercatorQuad/{tileMatrix}/{tileRow}/{tileCol}
(zoom / row = y / column = x); /tiles/{layer}/{z}/{x}/{y}.mvt is the XYZ order map libraries use. Both
render through tiles.vector_tiles, with the same scope, cache and `?crs=gcj02` handling.
"""

from __future__ import annotations

from typing import Any

from flask import Response
from flask.views import MethodView

from api.extensions import Blueprint
from tiles import layer_for
from tiles.features import JSON, _root, link, respond
from tiles.vector_tiles import Tile

blp = Blueprint("ogc_tiles", __name__, url_prefix="/ogc", description="OGC API – Tiles")
MVT = "application/vnd.mapbox-vector-tile"
TMS = "WebMercatorQuad"
TMS_URI = "http://www.opengis.net/def/tilematrixset/OGC/1.0/WebMercatorQuad"


def _tileset(spec: Any) -> dict[str, Any]:
    root = _root()
    base = f"{root}/ogc/collections/{spec.name}/tiles/{TMS}"
    return {
        "title": f"{spec.title} – {TMS}", "dataType": "vector", "crs": "http://www.opengis.net/def/crs/EPSG/0/3857",
        "tileMatrixSetURI": TMS_URI,
        "tileMatrixSetLimits": [{"tileMatrix": str(z), "minTileRow": 0, "maxTileRow": (1 << z) - 1, "minTileCol": 0,
                                 "maxTileCol": (1 << z) - 1} for z in range(spec.min_zoom, spec.max_zoom + 1)],
        "layers": [{"id": spec.name, "dataType": "vector", "geometryDimension": 0 if spec.is_point else 2,
                    "minTileMatrix": str(spec.min_zoom), "maxTileMatrix": str(spec.max_zoom)}],
        "links": [link(base, "self", JSON, "This tileset"),
                  link(TMS_URI, "http://www.opengis.net/def/rel/ogc/1.0/tiling-scheme", JSON, TMS),
                  {**link(f"{base}/{{tileMatrix}}/{{tileRow}}/{{tileCol}}", "item", MVT, "Tiles"), "templated": True},
                  link(f"{root}/tiles/{spec.name}.json", "alternate", JSON, "TileJSON")],
    }


@blp.route("/collections/<collection_id>/tiles")
class Tilesets(MethodView):
    def get(self, collection_id: str) -> Response:
        """Tilesets of a collection (one: WebMercatorQuad vector tiles)"""
        spec = layer_for(collection_id)
        ts = _tileset(spec)
        return respond({"tilesets": [{k: ts[k] for k in ("title", "dataType", "crs", "tileMatrixSetURI", "links")}]})


@blp.route("/collections/<collection_id>/tiles/<tms>")
class Tileset(MethodView):
    def get(self, collection_id: str, tms: str) -> Response:
        """Tileset metadata (tile matrix limits, layers, tile URL template)"""
        spec = layer_for(collection_id)
        if tms != TMS:
            from geo_core.errors import NotFound

            raise NotFound(f"只支持 {TMS}", code="TILE_MATRIX_SET_NOT_FOUND")
        return respond(_tileset(spec))


@blp.route("/collections/<collection_id>/tiles/<tms>/<int:tile_matrix>/<int:tile_row>/<int:tile_col>")
class OgcTile(MethodView):
    def get(self, collection_id: str, tms: str, tile_matrix: int, tile_row: int, tile_col: int) -> Response:
        """One vector tile in OGC order: {tileMatrix}/{tileRow}/{tileCol} = z/y/x"""
        if tms != TMS:
            from geo_core.errors import NotFound

            raise NotFound(f"只支持 {TMS}", code="TILE_MATRIX_SET_NOT_FOUND")
        return Tile().get(collection_id, tile_matrix, tile_col, tile_row)


@blp.route("/tileMatrixSets")
class TileMatrixSets(MethodView):
    def get(self) -> Response:
        """Tile matrix sets in use (public)"""
        return respond({"tileMatrixSets": [{"id": TMS, "uri": TMS_URI,
                                            "links": [link(TMS_URI, "self", JSON, TMS)]}]})
