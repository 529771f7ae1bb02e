"""Grid files (网格导入导出): GeoJSON, KML, GeoPackage and zipped Shapefile.

Export takes the list filters of `GET /api/v1/grids` and returns only grids in the caller's scope. Import is
all-or-nothing: one bad row rejects the file with 422 IMPORT_REJECTED and per-row errors. The logic lives in
`geo_core.grids.files`, which documents the attributes, the Shapefile field names and the CRS rules.
"""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import quote

from flask import Response, g, request
from flask.views import MethodView
from marshmallow import fields, validate
from rq import Queue

from api.extensions import BaseSchema, Blueprint, db, principal, requires, state
from api.files import FileUpload, ImportResult, uploaded_file
from api.grid_rating import JobStatusSchema, _job_body
from api.grids import GridListArgs
from geo_core.crs import CRS_NAMES, parse_crs
from geo_core.errors import ValidationFailed
from geo_core.grids import files
from jobs.grids import import_grid_file
from jobs.queues import IMPORTS

blp = Blueprint("grid_files", __name__, url_prefix="/api/v1/grids",
                description="网格导入导出（GeoJSON / KML / GeoPackage / Shapefile）")


class GridExportArgs(GridListArgs):
    format = fields.String(load_default="geojson", validate=validate.OneOf(list(files.FORMATS)),
                           metadata={"description": "geojson | kml | gpkg | shp (a zip)"})
    crs = fields.String(load_default="wgs84", validate=validate.OneOf(CRS_NAMES),
                        metadata={"description": "wgs84 | gcj02 (Gaode) | bd09 (Baidu); the file says EPSG:4326"})

    class Meta(BaseSchema.Meta):
        exclude = ("page", "page_size")


class GridImportArgs(BaseSchema):
    crs = fields.String(load_default=None, validate=validate.Length(max=100), metadata={
        "description": "the file's coordinates if not WGS84: gcj02 | bd09 (shifted lon/lat), or an EPSG code "
                       "(e.g. EPSG:3857) overriding the CRS the file declares. Without it, a declared CRS "
                       "(e.g. a .prj in EPSG:3857 or 4490) is reprojected and an undeclared one read as WGS84"})
    repair = fields.Boolean(load_default=False, metadata={"description": "apply make-valid to invalid polygons"})
    mode = fields.String(load_default="upsert", validate=validate.OneOf(["create", "upsert"]),
                         metadata={"description": "create: existing codes are errors; upsert: update them by code"})


EXPORT_DOC = {
    "responses": {
        "200": {
            "description": "The file as an attachment. Headers: `X-Feature-Count`, `X-Skipped-Without-Geometry` "
                           "(virtual grids without a polygon, left out of KML and Shapefile), "
                           "`X-Coordinate-System`. Shapefile fields: "
                           + ", ".join(f"{k} → {v}" for k, v in files.SHP_FIELDS.items()),
            "content": {spec.media_type: {"schema": {"type": "string", "format": "binary"}}
                        for spec in files.FORMATS.values()},
        }
    }
}


@blp.before_request
def _allow_large_upload() -> None:
    """Grid files may be up to 50 MB, above the app-wide request limit."""
    if request.endpoint in (f"{blp.name}.GridImport", f"{blp.name}.GridImportJob"):
        request.max_content_length = files.MAX_BYTES + 1024 * 1024  # room for the multipart envelope


@blp.route("/export")
class GridExport(MethodView):
    @requires("grid:export")
    @blp.arguments(GridExportArgs, location="query")
    @blp.doc(**EXPORT_DOC)
    def get(self, args: dict[str, Any]) -> Response:
        """Export grids in my scope as GeoJSON, KML, GeoPackage or zipped Shapefile (list filters apply)"""
        fmt, crs = args.pop("format"), parse_crs(args.pop("crs"))
        out = files.export_grids(db(), fmt=fmt, crs=crs, filters=args)
        response = Response(out.data, mimetype=out.media_type)
        response.headers["Content-Disposition"] = (f'attachment; filename="{out.filename}"; '
                                                   f"filename*=UTF-8''{quote(out.filename)}")
        response.headers["X-Feature-Count"] = str(out.count)
        response.headers["X-Skipped-Without-Geometry"] = str(out.skipped_without_geometry)
        response.headers["X-Coordinate-System"] = crs
        response.headers["Cache-Control"] = "no-store"
        return response


@blp.route("/import")
class GridImport(MethodView):
    @requires("grid:import")
    @blp.arguments(FileUpload, location="files")
    @blp.arguments(GridImportArgs, location="query")
    @blp.response(200, ImportResult)
    @blp.alt_response(422, description="Rejected, nothing written: `errors` = [{row, code, field, message, "
                                       "detail}] (`detail.overlaps` for topology), or a file-level reason")
    def post(self, _files: dict[str, Any], args: dict[str, Any]) -> dict[str, int]:
        """Import grids from .geojson/.json, .kml, .gpkg or a zipped Shapefile (≤ 50 MB, ≤ 20,000 features).

        Attributes: code, name, level (physical) or virtual_type (virtual), parent_code (a grid earlier in the file
        or an existing one), optional business_line, org_code (default: my org), division_code, households_estimate,
        status. Rows are written parents-first with every topology rule; all rows or none."""
        filename, data = uploaded_file()
        if len(data) > files.MAX_BYTES:
            raise ValidationFailed("文件超过 50 MB", code="IMPORT_REJECTED", errors={"file": ["文件超过 50 MB"]})
        return files.import_grids(db(), principal(), filename, data, **args)


@blp.route("/import-jobs")
class GridImportJob(MethodView):
    @requires("grid:import")
    @blp.arguments(FileUpload, location="files")
    @blp.arguments(GridImportArgs, location="query")
    @blp.response(202, JobStatusSchema)
    def post(self, _files: dict[str, Any], args: dict[str, Any]) -> dict[str, Any]:
        """Import a large grid file in the background (≤ 50 MB, ≤ 100,000 features); poll GET /api/v1/jobs/{id}.

        Same file formats, attributes and rules as POST /grids/import (all rows or none, acting as me with my data
        scope). `progress` = {done, total} rows written; `result` = {status: done, created, updated} or
        {status: rejected, message, errors: [{row, code, field, message, detail}], error_count}."""
        filename, data = uploaded_file()
        if len(data) > files.MAX_BYTES:
            raise ValidationFailed("文件超过 50 MB", code="IMPORT_REJECTED", errors={"file": ["文件超过 50 MB"]})
        if not data:
            raise ValidationFailed("文件为空", code="IMPORT_REJECTED", errors={"file": ["文件为空"]})
        redis = state().redis
        key = f"gm:grid-import:{uuid.uuid4().hex}"
        redis.set(key, data, ex=86400)
        job = Queue(IMPORTS, connection=redis).enqueue(
            import_grid_file, key, filename, args.get("crs"), args["repair"], args["mode"],
            meta={"user_id": principal().user_id, "request_id": g.request_id, "phase": "queued"},
            job_timeout=3600, result_ttl=86400, failure_ttl=86400)
        return _job_body(job)
