"""Permissions (权限管理): the codes roles and menus refer to. Built-in codes cannot be deleted."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from marshmallow import fields, validate

from api.extensions import BaseSchema, Blueprint, ExportArgs, PageArgs, db, page_body, requires
from api.files import EXPORT_DOC, FileUpload, ImportResult, export_response, uploaded_file
from geo_core import catalog
from geo_core.users import roles as service

blp = Blueprint("permissions", __name__, url_prefix="/api/v1/permissions", description="权限管理")


class PermissionSchema(BaseSchema):
    id = fields.Integer(dump_only=True)
    code = fields.String(required=True, validate=[
        validate.Length(max=64),
        validate.Regexp(r"^[a-z_]+:[a-z_]+$", error="权限代码格式为 模块:动作（小写字母和 _），如 grid:edit"),
    ])
    name = fields.String(required=True, validate=validate.Length(min=1, max=100))
    description = fields.String(allow_none=True, validate=validate.Length(max=500))
    is_builtin = fields.Boolean(dump_only=True)


class PermissionUpdateSchema(PermissionSchema):
    """All fields optional (loaded with partial=True)."""



class PermissionPage(BaseSchema):
    items = fields.List(fields.Nested(PermissionSchema))
    total = fields.Integer()
    page = fields.Integer()
    page_size = fields.Integer()


def dump(perm: Any) -> dict[str, Any]:
    return {"id": perm.id, "code": perm.code, "name": perm.name, "description": perm.description,
            "is_builtin": perm.code in catalog.PERMISSIONS}


@blp.route("")
class Permissions(MethodView):
    @requires("permission:read")
    @blp.arguments(PageArgs, location="query")
    @blp.response(200, PermissionPage)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """List permissions (search by code or name)"""
        return page_body(service.list_permissions(db(), **args), dump)

    @requires("permission:edit")
    @blp.arguments(PermissionSchema)
    @blp.response(201, PermissionSchema)
    def post(self, data: dict[str, Any]) -> dict[str, Any]:
        """Create a permission code (module:action)"""
        return dump(service.create_permission(db(), data))


@blp.route("/<int:permission_id>")
class PermissionById(MethodView):
    @requires("permission:read")
    @blp.response(200, PermissionSchema)
    def get(self, permission_id: int) -> dict[str, Any]:
        """One permission"""
        return dump(service.get_permission(db(), permission_id))

    @requires("permission:edit")
    @blp.arguments(PermissionUpdateSchema(partial=True))
    @blp.response(200, PermissionSchema)
    def patch(self, data: dict[str, Any], permission_id: int) -> dict[str, Any]:
        """Update a permission (built-in codes keep their code)"""
        return dump(service.update_permission(db(), permission_id, data))

    @requires("permission:edit")
    @blp.response(204)
    def delete(self, permission_id: int) -> None:
        """Delete a custom permission (roles lose it, menus guarded by it become public)"""
        service.delete_permission(db(), permission_id)


@blp.route("/export")
class PermissionExport(MethodView):
    @requires("permission:read")
    @blp.arguments(ExportArgs, location="query")
    @blp.doc(**EXPORT_DOC)
    def get(self, args: dict[str, Any]):  # noqa: ANN201
        """Export permissions as CSV or XLSX"""
        fmt = args.pop("format")
        return export_response(fmt, service.PERMISSION_COLUMNS, service.export_permissions(db(), **args),
                               "permissions")


@blp.route("/import")
class PermissionImport(MethodView):
    @requires("permission:edit")
    @blp.arguments(FileUpload, location="files")
    @blp.response(200, ImportResult)
    @blp.alt_response(422, description="Rejected: per-row errors, nothing written")
    def post(self, _files: dict[str, Any]) -> dict[str, int]:
        """Import permissions from CSV/XLSX (upsert by code; all rows or none)"""
        filename, data = uploaded_file()
        return service.import_permissions(db(), filename, data)
