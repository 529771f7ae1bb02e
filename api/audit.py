"""Audit log (审计日志): read-only; rows are written by database triggers and login events."""

from __future__ import annotations

from datetime import timedelta, timezone
from typing import Any

from flask.views import MethodView
from marshmallow import ValidationError, fields, validate, validates_schema

from api.extensions import BaseSchema, Blueprint, ExportArgs, PageArgs, db, requires
from api.files import EXPORT_DOC, export_response
from geo_core.audit import queries

blp = Blueprint("audit", __name__, url_prefix="/api/v1/audit", description="审计日志")
CHINA_TIME = timezone(timedelta(hours=8))


class AuditSchema(BaseSchema):
    id = fields.Integer()
    occurred_at = fields.DateTime()
    actor_user_id = fields.Integer(allow_none=True)
    actor_username = fields.String(allow_none=True)
    actor_name = fields.String(allow_none=True)
    actor_org_id = fields.Integer(allow_none=True)
    action = fields.String()
    entity = fields.String()
    entity_id = fields.String(allow_none=True)
    before = fields.Dict(allow_none=True)
    after = fields.Dict(allow_none=True)
    detail = fields.Dict(allow_none=True)
    request_id = fields.String(allow_none=True)
    client_ip = fields.String(allow_none=True)


class AuditPage(BaseSchema):
    items = fields.List(fields.Nested(AuditSchema))
    total = fields.Integer()
    page = fields.Integer()
    page_size = fields.Integer()


class AuditFilters(BaseSchema):
    entity = fields.String(validate=validate.Length(min=1, max=64))
    entity_id = fields.String(validate=validate.Length(min=1, max=64))
    actor_user_id = fields.Integer(validate=validate.Range(min=1, max=2**31 - 1))
    action = fields.String(validate=validate.Length(min=1, max=32))
    request_id = fields.String(validate=validate.Length(min=1, max=64))
    since = fields.AwareDateTime(default_timezone=CHINA_TIME,
                                 metadata={"description": "ISO 8601, inclusive; without an offset: UTC+8"})
    until = fields.AwareDateTime(default_timezone=CHINA_TIME,
                                 metadata={"description": "ISO 8601, exclusive; without an offset: UTC+8"})

    @validates_schema
    def check_range(self, data: dict[str, Any], **_kwargs: Any) -> None:
        if data.get("since") and data.get("until") and data["since"] > data["until"]:
            raise ValidationError("开始时间不能晚于结束时间", "until")


class AuditListArgs(PageArgs, AuditFilters):
    pass


class AuditExportArgs(ExportArgs, AuditFilters):
    pass


def dump_page(page: Any) -> dict[str, Any]:
    names = queries.actor_names(db(), page.items)
    return {"items": [dump(e, names) for e in page.items], "total": page.total, "page": page.page,
            "page_size": page.page_size}


def dump(entry: Any, names: dict[int, tuple[str, str]]) -> dict[str, Any]:
    data = {c: getattr(entry, c) for c in ("id", "occurred_at", "actor_user_id", "actor_org_id", "action",
                                           "entity", "entity_id", "before", "after", "detail", "request_id")}
    username, name = names.get(entry.actor_user_id, (None, None)) if entry.actor_user_id else (None, None)
    return {**data, "actor_username": username, "actor_name": name,
            "client_ip": None if entry.client_ip is None else str(entry.client_ip)}


@blp.route("")
class AuditEntries(MethodView):
    @requires("audit:read")
    @blp.arguments(AuditListArgs, location="query")
    @blp.response(200, AuditPage)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """List audit entries in my data scope, newest first"""
        return dump_page(queries.list_entries(db(), **args))


@blp.route("/<int:entry_id>")
class AuditEntryById(MethodView):
    @requires("audit:read")
    @blp.response(200, AuditSchema)
    def get(self, entry_id: int) -> dict[str, Any]:
        """One audit entry with its before/after images"""
        entry = queries.get_entry(db(), entry_id)
        return dump(entry, queries.actor_names(db(), [entry]))


@blp.route("/export")
class AuditExport(MethodView):
    @requires("audit:read")
    @blp.arguments(AuditExportArgs, location="query")
    @blp.doc(**EXPORT_DOC)
    def get(self, args: dict[str, Any]):  # noqa: ANN201
        """Export the filtered audit entries as CSV or XLSX (at most 50,000 rows)"""
        fmt = args.pop("format")
        return export_response(fmt, queries.COLUMNS, queries.export_rows(db(), **args), "audit")
