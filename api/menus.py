"""Menus (菜单管理): the navigation tree, CRUD, batch visibility/permission changes, import and export."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from marshmallow import ValidationError, fields, validate, validates_schema

from api.extensions import BaseSchema, Blueprint, ExportArgs, PageArgs, db, page_body, requires
from api.files import EXPORT_DOC, FileUpload, ImportResult, export_response, uploaded_file
from geo_core.users import menu_admin as service

blp = Blueprint("menus", __name__, url_prefix="/api/v1/menus", description="菜单管理")
PERMISSION_CODE = validate.Regexp(r"^[a-z_]+:[a-z_]+$", error="权限代码格式为 模块:动作，如 grid:edit")


class MenuSchema(BaseSchema):
    id = fields.Integer(dump_only=True)
    code = fields.String(required=True, validate=validate.Regexp(r"^[A-Za-z0-9_.-]{1,64}$",
                                                                error="只能包含字母、数字和 _.-，最长 64 位"))
    name = fields.String(required=True, validate=validate.Length(min=1, max=100))
    parent_id = fields.Integer(allow_none=True, load_default=None, validate=validate.Range(min=1))
    parent_code = fields.String(dump_only=True, allow_none=True)
    route = fields.String(allow_none=True, validate=validate.Length(max=200))
    icon = fields.String(allow_none=True, validate=validate.Length(max=64))
    sort_order = fields.Integer(load_default=0, validate=validate.Range(min=-1_000_000, max=1_000_000))
    permission_code = fields.String(allow_none=True, validate=PERMISSION_CODE)
    is_visible = fields.Boolean(load_default=True)


class MenuUpdateSchema(MenuSchema):
    """All fields optional (loaded with partial=True)."""


class MenuPage(BaseSchema):
    items = fields.List(fields.Nested(MenuSchema))
    total = fields.Integer()
    page = fields.Integer()
    page_size = fields.Integer()


class MenuTreeNode(BaseSchema):
    id = fields.Integer()
    code = fields.String()
    name = fields.String()
    parent_id = fields.Integer(allow_none=True)
    route = fields.String(allow_none=True)
    icon = fields.String(allow_none=True)
    sort_order = fields.Integer()
    permission_code = fields.String(allow_none=True)
    is_visible = fields.Boolean()
    children = fields.List(fields.Nested(lambda: MenuTreeNode()))


class MenuListArgs(PageArgs):
    parent_id = fields.Integer(validate=validate.Range(min=1))
    is_visible = fields.Boolean()


class MenuBatchArgs(BaseSchema):
    ids = fields.List(fields.Integer(validate=validate.Range(min=1)), required=True,
                      validate=validate.Length(min=1, max=1000))
    is_visible = fields.Boolean()
    permission_code = fields.String(allow_none=True, validate=PERMISSION_CODE)

    @validates_schema
    def check_change(self, data: dict[str, Any], **_kwargs: Any) -> None:
        if "is_visible" not in data and "permission_code" not in data:
            raise ValidationError("至少指定 is_visible 或 permission_code 之一", "_schema")


class MenuBatchResult(BaseSchema):
    updated = fields.Integer()
    items = fields.List(fields.Nested(MenuSchema))


def dump(menu: Any) -> dict[str, Any]:
    data = {c: getattr(menu, c) for c in ("id", "code", "name", "parent_id", "route", "icon", "sort_order",
                                          "permission_code", "is_visible")}
    return {**data, "parent_code": service.parent_code(db(), menu)}


@blp.route("")
class Menus(MethodView):
    @requires("menu:read")
    @blp.arguments(MenuListArgs, location="query")
    @blp.response(200, MenuPage)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """List menus flat, with their parent's code (search by code, name or route)"""
        return page_body(service.list_menus(db(), **args), dump)

    @requires("menu:edit")
    @blp.arguments(MenuSchema)
    @blp.response(201, MenuSchema)
    def post(self, data: dict[str, Any]) -> dict[str, Any]:
        """Create a menu"""
        return dump(service.create_menu(db(), data))


@blp.route("/tree")
class MenuTree(MethodView):
    @requires("menu:read")
    @blp.response(200, MenuTreeNode(many=True))
    def get(self) -> list[dict[str, Any]]:
        """The whole menu tree, hidden menus included"""
        return service.full_tree(db())


@blp.route("/<int:menu_id>")
class MenuById(MethodView):
    @requires("menu:read")
    @blp.response(200, MenuSchema)
    def get(self, menu_id: int) -> dict[str, Any]:
        """One menu"""
        return dump(service.get_menu(db(), menu_id))

    @requires("menu:edit")
    @blp.arguments(MenuUpdateSchema(partial=True))
    @blp.response(200, MenuSchema)
    def patch(self, data: dict[str, Any], menu_id: int) -> dict[str, Any]:
        """Update a menu (a parent cycle is refused)"""
        return dump(service.update_menu(db(), menu_id, data))

    @requires("menu:edit")
    @blp.response(204)
    def delete(self, menu_id: int) -> None:
        """Delete a menu without children"""
        service.delete_menu(db(), menu_id)


@blp.route("/batch")
class MenuBatch(MethodView):
    @requires("menu:edit")
    @blp.arguments(MenuBatchArgs)
    @blp.response(200, MenuBatchResult)
    def post(self, args: dict[str, Any]) -> dict[str, Any]:
        """Show/hide many menus or set their permission at once (all or none)"""
        ids = args.pop("ids")
        menus = service.batch_update(db(), ids, args)
        return {"updated": len(menus), "items": [dump(m) for m in menus]}


@blp.route("/export")
class MenuExport(MethodView):
    @requires("menu:read")
    @blp.arguments(ExportArgs, location="query")
    @blp.doc(**EXPORT_DOC)
    def get(self, args: dict[str, Any]):  # noqa: ANN201
        """Export menus as CSV or XLSX"""
        fmt = args.pop("format")
        return export_response(fmt, service.COLUMNS, service.export_rows(db(), **args), "menus")


@blp.route("/import")
class MenuImport(MethodView):
    @requires("menu:edit")
    @blp.arguments(FileUpload, location="files")
    @blp.response(200, ImportResult)
    @blp.alt_response(422, description="Rejected: per-row errors, nothing written")
    def post(self, _files: dict[str, Any]) -> dict[str, int]:
        """Import menus from CSV/XLSX (upsert by code; parents in the file or database; all or none)"""
        filename, data = uploaded_file()
        return service.import_menus(db(), filename, data)
