"""Upload and download helpers for CSV/XLSX import and export endpoints."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from urllib.parse import quote

from flask import Response, request
from marshmallow import fields

from api.extensions import BaseSchema
from geo_core import tabular
from geo_core.errors import ValidationFailed


class ImportResult(BaseSchema):
    created = fields.Integer()
    updated = fields.Integer()


class FileUpload(BaseSchema):
    file = fields.Raw(required=True, metadata={"type": "string", "format": "binary"})


def uploaded_file() -> tuple[str, bytes]:
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        raise ValidationFailed("请上传文件", code="IMPORT_REJECTED", errors={"file": ["缺少 multipart 字段 file"]})
    return upload.filename, upload.read()


def export_response(fmt: str, columns: Sequence[tabular.TableColumn], rows: list[dict[str, Any]],
                    basename: str) -> Response:
    data = tabular.write_sheet(fmt, columns, rows)
    filename = f"{basename}-{datetime.now():%Y%m%d%H%M%S}.{fmt}"
    response = Response(data, mimetype=tabular.FORMATS[fmt])
    response.headers["Content-Disposition"] = f"attachment; filename*=UTF-8''{quote(filename)}"
    response.headers["Cache-Control"] = "no-store"
    return response


EXPORT_DOC = {
    "responses": {
        "200": {
            "description": "CSV (UTF-8 with BOM) or XLSX file; row 1 Chinese headers, row 2 column keys",
            "content": {"text/csv": {"schema": {"type": "string"}},
                        tabular.FORMATS["xlsx"]: {"schema": {"type": "string", "format": "binary"}}},
        }
    }
}
