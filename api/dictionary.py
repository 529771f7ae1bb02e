"""Parameter settings (参数设置): dictionary types and items, the code tables behind dropdowns."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from marshmallow import ValidationError, fields, validate

from api.extensions import BaseSchema, Blueprint, ExportArgs, PageArgs, db, page_body, requires
from api.files import EXPORT_DOC, FileUpload, ImportResult, export_response, uploaded_file
from geo_core.dictionary import service
from geo_core.dictionary.models import ValueType

blp = Blueprint("dictionary", __name__, url_prefix="/api/v1/dict", description="参数设置")
VALUE_TYPES = [t.value for t in ValueType]
CODE = validate.Regexp(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$",
                       error="以字母开头，只能包含字母、数字和 _.-，最长 64 位")
ITEM_CODE = validate.Regexp(r"^[A-Za-z0-9_.-]{1,64}$", error="只能包含字母、数字和 _.-，最长 64 位")


class DictValue(fields.Field):
    """A value as text, number or boolean; checked against the type's value_type by the service."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if value is None or isinstance(value, str | bool | int | float):
            if isinstance(value, str) and len(value) > service.MAX_VALUE_LEN:
                raise ValidationError(f"长度不能超过 {service.MAX_VALUE_LEN}")
            return value
        raise ValidationError("参数值须为文本、数字或布尔值")

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> Any:
        return value


class DictTypeSchema(BaseSchema):
    id = fields.Integer(dump_only=True)
    code = fields.String(required=True, validate=CODE)
    name = fields.String(required=True, validate=validate.Length(min=1, max=100))
    value_type = fields.String(load_default="string", validate=validate.OneOf(VALUE_TYPES))
    description = fields.String(allow_none=True, validate=validate.Length(max=500))
    is_system = fields.Boolean(dump_only=True)
    item_count = fields.Integer(dump_only=True)


class DictTypeUpdateSchema(DictTypeSchema):
    """All fields optional (loaded with partial=True)."""


class DictItemSchema(BaseSchema):
    id = fields.Integer(dump_only=True)
    type_code = fields.String(required=True, validate=validate.Length(min=1, max=64))
    code = fields.String(required=True, validate=ITEM_CODE)
    label = fields.String(required=True, validate=validate.Length(min=1, max=100))
    value = DictValue(allow_none=True, load_default=None, metadata={"type": "string", "nullable": True})
    sort_order = fields.Integer(load_default=0, validate=validate.Range(min=-1_000_000, max=1_000_000))
    is_active = fields.Boolean(load_default=True)


class DictItemUpdateSchema(DictItemSchema):
    """All fields optional (loaded with partial=True)."""


class DictTypePage(BaseSchema):
    items = fields.List(fields.Nested(DictTypeSchema))
    total = fields.Integer()
    page = fields.Integer()
    page_size = fields.Integer()


class DictItemPage(BaseSchema):
    items = fields.List(fields.Nested(DictItemSchema))
    total = fields.Integer()
    page = fields.Integer()
    page_size = fields.Integer()


class ItemListArgs(PageArgs):
    type_code = fields.String(validate=validate.Length(max=64))
    is_active = fields.Boolean()


class TypeItemArgs(PageArgs):
    page_size = fields.Integer(load_default=500, validate=validate.Range(min=1, max=500))
    is_active = fields.Boolean(metadata={"description": "true: only items to offer in dropdowns"})


class ItemExportArgs(ExportArgs):
    type_code = fields.String(validate=validate.Length(max=64))
    is_active = fields.Boolean()


def dump_type(dtype: Any) -> dict[str, Any]:
    data = {c: getattr(dtype, c) for c in ("id", "code", "name", "description", "is_system")}
    return {**data, "value_type": dtype.value_type.value, "item_count": len(dtype.items)}


def dump_item(item: Any) -> dict[str, Any]:
    data = {c: getattr(item, c) for c in ("id", "code", "label", "value", "sort_order", "is_active")}
    return {**data, "type_code": item.dict_type.code}


@blp.route("/types")
class DictTypes(MethodView):
    @requires("dict:read")
    @blp.arguments(PageArgs, location="query")
    @blp.response(200, DictTypePage)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """List dictionary types (search by code or name)"""
        return page_body(service.list_types(db(), **args), dump_type)

    @requires("dict:edit")
    @blp.arguments(DictTypeSchema)
    @blp.response(201, DictTypeSchema)
    def post(self, data: dict[str, Any]) -> dict[str, Any]:
        """Create a dictionary type"""
        return dump_type(service.create_type(db(), data))


@blp.route("/types/<int:type_id>")
class DictTypeById(MethodView):
    @requires("dict:read")
    @blp.response(200, DictTypeSchema)
    def get(self, type_id: int) -> dict[str, Any]:
        """One dictionary type"""
        return dump_type(service.get_type(db(), type_id))

    @requires("dict:edit")
    @blp.arguments(DictTypeUpdateSchema(partial=True))
    @blp.response(200, DictTypeSchema)
    def patch(self, data: dict[str, Any], type_id: int) -> dict[str, Any]:
        """Update a dictionary type (existing values must fit a new value type)"""
        return dump_type(service.update_type(db(), type_id, data))

    @requires("dict:edit")
    @blp.response(204)
    def delete(self, type_id: int) -> None:
        """Delete a non-system dictionary type and its items"""
        service.delete_type(db(), type_id)


@blp.route("/types/<string:type_code>/items")
class DictTypeItems(MethodView):
    @requires("dict:read")
    @blp.arguments(TypeItemArgs, location="query")
    @blp.response(200, DictItemPage)
    def get(self, args: dict[str, Any], type_code: str) -> dict[str, Any]:
        """Items of one dictionary type, in display order (for dropdowns)"""
        service.get_type_by_code(db(), type_code)
        return page_body(service.list_items(db(), type_code=type_code, **args), dump_item)


@blp.route("/items")
class DictItems(MethodView):
    @requires("dict:read")
    @blp.arguments(ItemListArgs, location="query")
    @blp.response(200, DictItemPage)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """List dictionary items across types (filter by type, search code, label or value)"""
        return page_body(service.list_items(db(), **args), dump_item)

    @requires("dict:edit")
    @blp.arguments(DictItemSchema)
    @blp.response(201, DictItemSchema)
    def post(self, data: dict[str, Any]) -> dict[str, Any]:
        """Create a dictionary item; its value must fit the type's value type"""
        return dump_item(service.create_item(db(), data))


@blp.route("/items/<int:item_id>")
class DictItemById(MethodView):
    @requires("dict:read")
    @blp.response(200, DictItemSchema)
    def get(self, item_id: int) -> dict[str, Any]:
        """One dictionary item"""
        return dump_item(service.get_item(db(), item_id))

    @requires("dict:edit")
    @blp.arguments(DictItemUpdateSchema(partial=True))
    @blp.response(200, DictItemSchema)
    def patch(self, data: dict[str, Any], item_id: int) -> dict[str, Any]:
        """Update a dictionary item"""
        return dump_item(service.update_item(db(), item_id, data))

    @requires("dict:edit")
    @blp.response(204)
    def delete(self, item_id: int) -> None:
        """Delete a dictionary item"""
        service.delete_item(db(), item_id)


@blp.route("/items/export")
class DictItemExport(MethodView):
    @requires("dict:read")
    @blp.arguments(ItemExportArgs, location="query")
    @blp.doc(**EXPORT_DOC)
    def get(self, args: dict[str, Any]):  # noqa: ANN201
        """Export dictionary items as CSV or XLSX"""
        fmt = args.pop("format")
        return export_response(fmt, service.COLUMNS, service.export_rows(db(), **args), "dict-items")


@blp.route("/items/import")
class DictItemImport(MethodView):
    @requires("dict:edit")
    @blp.arguments(FileUpload, location="files")
    @blp.response(200, ImportResult)
    @blp.alt_response(422, description="Rejected: per-row errors, nothing written")
    def post(self, _files: dict[str, Any]) -> dict[str, int]:
        """Import dictionary items from CSV/XLSX (upsert by type and code; all rows or none)"""
        filename, data = uploaded_file()
        return service.import_items(db(), filename, data)
