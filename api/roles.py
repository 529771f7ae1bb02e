"""Roles (角色管理): CRUD with the grant rule, CSV/XLSX import and export."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from marshmallow import fields, validate

from api.extensions import BaseSchema, Blueprint, ExportArgs, PageArgs, db, page_body, principal, requires
from api.files import EXPORT_DOC, FileUpload, ImportResult, export_response, uploaded_file
from geo_core.scope import DataScope
from geo_core.users import roles as service

blp = Blueprint("roles", __name__, url_prefix="/api/v1/roles", description="角色管理")
SCOPES = [s.value for s in DataScope]
PERMISSION_CODE = validate.Regexp(service.PERMISSION_CODE_RE, error="权限代码格式为 模块:动作，如 grid:edit")


class RoleSchema(BaseSchema):
    id = fields.Integer(dump_only=True)
    code = fields.String(required=True, validate=validate.Regexp(
        service.ROLE_CODE_RE, error="以字母开头，只能包含字母、数字和 _，最长 64 位"))
    name = fields.String(required=True, validate=validate.Length(min=1, max=100))
    description = fields.String(allow_none=True, validate=validate.Length(max=500))
    data_scope = fields.String(required=True, validate=validate.OneOf(SCOPES))
    is_builtin = fields.Boolean(dump_only=True)
    permissions = fields.List(fields.String(validate=PERMISSION_CODE), load_default=list,
                              validate=validate.Length(max=500))
    created_at = fields.DateTime(dump_only=True)
    updated_at = fields.DateTime(dump_only=True)


class RoleUpdateSchema(RoleSchema):
    """All fields optional (loaded with partial=True)."""



class RolePage(BaseSchema):
    items = fields.List(fields.Nested(RoleSchema))
    total = fields.Integer()
    page = fields.Integer()
    page_size = fields.Integer()


class RoleListArgs(PageArgs):
    data_scope = fields.String(validate=validate.OneOf(SCOPES))


class RoleExportArgs(ExportArgs):
    data_scope = fields.String(validate=validate.OneOf(SCOPES))


def dump(role: Any) -> dict[str, Any]:
    data = {c: getattr(role, c) for c in ("id", "code", "name", "description", "is_builtin", "created_at",
                                          "updated_at")}
    return {**data, "data_scope": role.data_scope.value,
            "permissions": sorted(p.code for p in role.permissions)}


@blp.route("")
class Roles(MethodView):
    @requires("role:read")
    @blp.arguments(RoleListArgs, location="query")
    @blp.response(200, RolePage)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """List roles (search by code or name)"""
        return page_body(service.list_roles(db(), **args), dump)

    @requires("role:edit")
    @blp.arguments(RoleSchema)
    @blp.response(201, RoleSchema)
    def post(self, data: dict[str, Any]) -> dict[str, Any]:
        """Create a role no wider than my own data scope and permissions"""
        return dump(service.create_role(db(), principal(), data))


@blp.route("/<int:role_id>")
class RoleById(MethodView):
    @requires("role:read")
    @blp.response(200, RoleSchema)
    def get(self, role_id: int) -> dict[str, Any]:
        """One role with its permission codes"""
        return dump(service.get_role(db(), role_id))

    @requires("role:edit")
    @blp.arguments(RoleUpdateSchema(partial=True))
    @blp.response(200, RoleSchema)
    def patch(self, data: dict[str, Any], role_id: int) -> dict[str, Any]:
        """Update a role (built-in roles keep their code)"""
        return dump(service.update_role(db(), principal(), role_id, data))

    @requires("role:edit")
    @blp.response(204)
    def delete(self, role_id: int) -> None:
        """Delete a custom role no user holds"""
        service.delete_role(db(), principal(), role_id)


@blp.route("/export")
class RoleExport(MethodView):
    @requires("role:read")
    @blp.arguments(RoleExportArgs, location="query")
    @blp.doc(**EXPORT_DOC)
    def get(self, args: dict[str, Any]):  # noqa: ANN201
        """Export roles as CSV or XLSX (permissions ';'-separated)"""
        fmt = args.pop("format")
        return export_response(fmt, service.ROLE_COLUMNS, service.export_roles(db(), **args), "roles")


@blp.route("/import")
class RoleImport(MethodView):
    @requires("role:edit")
    @blp.arguments(FileUpload, location="files")
    @blp.response(200, ImportResult)
    @blp.alt_response(422, description="Rejected: per-row errors, nothing written")
    def post(self, _files: dict[str, Any]) -> dict[str, int]:
        """Import roles from CSV/XLSX (upsert by code; all rows or none)"""
        filename, data = uploaded_file()
        return service.import_roles(db(), principal(), filename, data)
