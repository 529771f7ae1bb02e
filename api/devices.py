"""Mobile devices (移动设备管理): registration, approval, disabling; scoped by the owner's organisation."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from marshmallow import fields, validate

from api.extensions import BaseSchema, Blueprint, ExportArgs, PageArgs, db, page_body, principal, requires
from api.files import EXPORT_DOC, FileUpload, ImportResult, export_response, uploaded_file
from geo_core.devices import service
from geo_core.devices.models import DeviceStatus
from geo_core.users.models import User

blp = Blueprint("devices", __name__, url_prefix="/api/v1/devices", description="移动设备管理")
STATUSES = [s.value for s in DeviceStatus]


class DeviceSchema(BaseSchema):
    id = fields.Integer(dump_only=True)
    device_id = fields.String(required=True, validate=validate.Regexp(
        r"^[\x21-\x7e]{4,128}$", error="设备号为 4-128 位可见 ASCII 字符（不含空格）"))
    user_id = fields.Integer(required=True, validate=validate.Range(min=1))
    user_name = fields.String(dump_only=True, allow_none=True)
    username = fields.String(dump_only=True, allow_none=True)
    org_id = fields.Integer(dump_only=True)
    model = fields.String(allow_none=True, validate=validate.Length(max=100))
    platform = fields.String(allow_none=True, validate=validate.Length(max=32))
    os_version = fields.String(allow_none=True, validate=validate.Length(max=32))
    status = fields.String(dump_only=True)
    approved_by = fields.Integer(dump_only=True, allow_none=True)
    approved_at = fields.DateTime(dump_only=True, allow_none=True)
    disabled_reason = fields.String(dump_only=True, allow_none=True)
    last_seen_at = fields.DateTime(dump_only=True, allow_none=True)
    created_at = fields.DateTime(dump_only=True)


class DeviceUpdateSchema(BaseSchema):
    user_id = fields.Integer(validate=validate.Range(min=1))
    model = fields.String(allow_none=True, validate=validate.Length(max=100))
    platform = fields.String(allow_none=True, validate=validate.Length(max=32))
    os_version = fields.String(allow_none=True, validate=validate.Length(max=32))


class DevicePage(BaseSchema):
    items = fields.List(fields.Nested(DeviceSchema))
    total = fields.Integer()
    page = fields.Integer()
    page_size = fields.Integer()


class DeviceListArgs(PageArgs):
    status = fields.String(validate=validate.OneOf(STATUSES))
    user_id = fields.Integer(validate=validate.Range(min=1))


class DeviceExportArgs(ExportArgs):
    status = fields.String(validate=validate.OneOf(STATUSES))
    user_id = fields.Integer(validate=validate.Range(min=1))


class DisableArgs(BaseSchema):
    reason = fields.String(required=True, validate=validate.Length(min=1, max=200))


def dump(device: Any) -> dict[str, Any]:
    user = db().get(User, device.user_id)
    data = {c: getattr(device, c) for c in ("id", "device_id", "user_id", "org_id", "model", "platform",
                                            "os_version", "approved_by", "approved_at", "disabled_reason",
                                            "last_seen_at", "created_at")}
    return {**data, "status": device.status.value, "user_name": user.name if user else None,
            "username": user.username if user else None}


@blp.route("")
class Devices(MethodView):
    @requires("device:read")
    @blp.arguments(DeviceListArgs, location="query")
    @blp.response(200, DevicePage)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """List devices in my data scope (search device id, model, owner's name or username)"""
        return page_body(service.list_devices(db(), **args), dump)

    @requires("device:edit")
    @blp.arguments(DeviceSchema)
    @blp.response(201, DeviceSchema)
    def post(self, data: dict[str, Any]) -> dict[str, Any]:
        """Register a device for a user in my scope (approved at once)"""
        return dump(service.register_device(db(), principal(), data))


@blp.route("/<int:device_pk>")
class DeviceById(MethodView):
    @requires("device:read")
    @blp.response(200, DeviceSchema)
    def get(self, device_pk: int) -> dict[str, Any]:
        """One device (404 if outside my scope)"""
        return dump(service.get_device(db(), device_pk))

    @requires("device:edit")
    @blp.arguments(DeviceUpdateSchema)
    @blp.response(200, DeviceSchema)
    def patch(self, data: dict[str, Any], device_pk: int) -> dict[str, Any]:
        """Update a device's owner or description"""
        return dump(service.update_device(db(), device_pk, data))

    @requires("device:edit")
    @blp.response(204)
    def delete(self, device_pk: int) -> None:
        """Delete a device registration"""
        service.delete_device(db(), device_pk)


@blp.route("/<int:device_pk>/approve")
class DeviceApprove(MethodView):
    @requires("device:edit")
    @blp.response(200, DeviceSchema)
    def post(self, device_pk: int) -> dict[str, Any]:
        """Approve a pending device: its owner may log in from it"""
        return dump(service.approve_device(db(), principal(), device_pk))


@blp.route("/<int:device_pk>/disable")
class DeviceDisable(MethodView):
    @requires("device:edit")
    @blp.arguments(DisableArgs)
    @blp.response(200, DeviceSchema)
    def post(self, args: dict[str, Any], device_pk: int) -> dict[str, Any]:
        """Disable a lost or replaced device (ends its mobile sessions)"""
        return dump(service.disable_device(db(), device_pk, args["reason"]))


@blp.route("/<int:device_pk>/enable")
class DeviceEnable(MethodView):
    @requires("device:edit")
    @blp.response(200, DeviceSchema)
    def post(self, device_pk: int) -> dict[str, Any]:
        """Enable a disabled device again"""
        return dump(service.enable_device(db(), principal(), device_pk))


@blp.route("/export")
class DeviceExport(MethodView):
    @requires("device:read")
    @blp.arguments(DeviceExportArgs, location="query")
    @blp.doc(**EXPORT_DOC)
    def get(self, args: dict[str, Any]):  # noqa: ANN201
        """Export devices in my scope as CSV or XLSX"""
        fmt = args.pop("format")
        return export_response(fmt, service.COLUMNS, service.export_rows(db(), **args), "devices")


@blp.route("/import")
class DeviceImport(MethodView):
    @requires("device:edit")
    @blp.arguments(FileUpload, location="files")
    @blp.response(200, ImportResult)
    @blp.alt_response(422, description="Rejected: per-row errors, nothing written")
    def post(self, _files: dict[str, Any]) -> dict[str, int]:
        """Import devices from CSV/XLSX (upsert by device id; all rows or none)"""
        filename, data = uploaded_file()
        return service.import_devices(db(), principal(), filename, data)
