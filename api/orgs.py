"""Organisations (机构管理): head office > branch > sub-branch > outlet."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from marshmallow import fields, validate

from api.extensions import BaseSchema, Blueprint, ExportArgs, PageArgs, db, page_body, requires
from api.files import EXPORT_DOC, FileUpload, ImportResult, export_response, uploaded_file
from geo_core.orgs import service
from geo_core.orgs.models import Org, OrgLevel

blp = Blueprint("orgs", __name__, url_prefix="/api/v1/orgs", description="机构管理")
LEVELS = [lvl.value for lvl in OrgLevel]


class OrgSchema(BaseSchema):
    id = fields.Integer(dump_only=True)
    code = fields.String(required=True, validate=validate.Regexp(r"^[A-Za-z0-9_-]{1,32}$",
                                                                error="只能包含字母、数字、_ 和 -，最长 32 位"))
    name = fields.String(required=True, validate=validate.Length(min=1, max=100))
    level = fields.String(required=True, validate=validate.OneOf(LEVELS))
    parent_id = fields.Integer(allow_none=True, load_default=None)
    parent_code = fields.String(dump_only=True, allow_none=True)
    parent_name = fields.String(dump_only=True, allow_none=True)
    path = fields.String(dump_only=True)
    adcode = fields.String(allow_none=True, validate=validate.Regexp(r"^\d{6}(\d{3}(\d{3})?)?$",
                                                                     error="行政区划代码为 6、9 或 12 位数字"))
    address = fields.String(allow_none=True, validate=validate.Length(max=200))
    phone = fields.String(allow_none=True, validate=validate.Length(max=32))
    lon = fields.Float(allow_none=True, validate=validate.Range(-180, 180))
    lat = fields.Float(allow_none=True, validate=validate.Range(-90, 90))
    is_active = fields.Boolean(load_default=True)


class OrgUpdateSchema(OrgSchema):
    """PATCH: only the fields sent are changed (no defaults are filled in)."""

    parent_id = fields.Integer(allow_none=True)
    is_active = fields.Boolean()


class OrgListArgs(PageArgs):
    level = fields.String(validate=validate.OneOf(LEVELS))
    parent_id = fields.Integer(validate=validate.Range(min=1))
    under_id = fields.Integer(validate=validate.Range(min=1), metadata={"description": "only this org's subtree"})


class OrgExportArgs(ExportArgs):
    level = fields.String(validate=validate.OneOf(LEVELS))


class OrgPage(BaseSchema):
    items = fields.List(fields.Nested(OrgSchema))
    total = fields.Integer()
    page = fields.Integer()
    page_size = fields.Integer()


class GeoJsonArgs(BaseSchema):
    level = fields.String(validate=validate.OneOf(LEVELS))


def dump(org: Any) -> dict[str, Any]:
    lon, lat = service.coords(org)
    data = {c: getattr(org, c) for c in ("id", "code", "name", "parent_id", "adcode", "address", "phone",
                                         "is_active")}
    parent = db().get(Org, org.parent_id) if org.parent_id else None  # None if outside my scope
    return {**data, "level": OrgLevel(org.level).value, "path": str(org.path), "lon": lon, "lat": lat,
            "parent_code": parent.code if parent else None, "parent_name": parent.name if parent else None}


@blp.route("")
class Orgs(MethodView):
    @requires("org:read")
    @blp.arguments(OrgListArgs, location="query")
    @blp.response(200, OrgPage)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """List organisations in my data scope (search by name or code)"""
        return page_body(service.list_orgs(db(), **args), dump)

    @requires("org:edit")
    @blp.arguments(OrgSchema)
    @blp.response(201, OrgSchema)
    def post(self, data: dict[str, Any]) -> dict[str, Any]:
        """Create an organisation under a parent in my scope"""
        return dump(service.create_org(db(), data))


@blp.route("/<int:org_id>")
class OrgById(MethodView):
    @requires("org:read")
    @blp.response(200, OrgSchema)
    def get(self, org_id: int) -> dict[str, Any]:
        """One organisation (404 if outside my scope)"""
        return dump(service.get_org(db(), org_id))

    @requires("org:edit")
    @blp.arguments(OrgUpdateSchema(partial=True))
    @blp.response(200, OrgSchema)
    def patch(self, data: dict[str, Any], org_id: int) -> dict[str, Any]:
        """Update an organisation (moving it moves its whole subtree)"""
        return dump(service.update_org(db(), org_id, data))

    @requires("org:edit")
    @blp.response(204)
    def delete(self, org_id: int) -> None:
        """Delete an organisation with no children, users or business data"""
        service.delete_org(db(), org_id)


@blp.route("/geojson")
class OrgFeatures(MethodView):
    @requires("org:read")
    @blp.arguments(GeoJsonArgs, location="query")
    @blp.response(200, description="GeoJSON FeatureCollection of org locations (WGS84)")
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """Organisation locations (e.g. outlets) as GeoJSON"""
        return service.org_features(db(), args.get("level"))


@blp.route("/export")
class OrgExport(MethodView):
    @requires("org:export")
    @blp.arguments(OrgExportArgs, location="query")
    @blp.doc(**EXPORT_DOC)
    def get(self, args: dict[str, Any]):  # noqa: ANN201
        """Export organisations in my scope as CSV or XLSX"""
        fmt = args.pop("format")
        return export_response(fmt, service.COLUMNS, service.export_rows(db(), **args), "orgs")


@blp.route("/import")
class OrgImport(MethodView):
    @requires("org:import")
    @blp.arguments(FileUpload, location="files")
    @blp.response(200, ImportResult)
    @blp.alt_response(422, description="Rejected: per-row errors, nothing written")
    def post(self, _files: dict[str, Any]) -> dict[str, int]:
        """Import organisations from CSV/XLSX (upsert by code; all rows or none)"""
        filename, data = uploaded_file()
        return service.import_orgs(db(), filename, data)
