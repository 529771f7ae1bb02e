"""One JSON error shape for everything: {code, status, message, errors, request_id}. Nothing leaks a 500
page; only a genuine bug gives 500 (logged with its request id)."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, g, jsonify
from psycopg import errors as pg_errors
from sqlalchemy.exc import DataError, IntegrityError, OperationalError
from werkzeug.exceptions import HTTPException

from geo_core.errors import DomainError

log = logging.getLogger("gridmarket.api")

HTTP_CODES = {
    400: "BAD_REQUEST", 401: "AUTH_REQUIRED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED", 409: "CONFLICT", 413: "PAYLOAD_TOO_LARGE", 415: "UNSUPPORTED_MEDIA_TYPE",
    422: "VALIDATION_FAILED", 429: "TOO_MANY_REQUESTS",
}
HTTP_MESSAGES = {
    400: "请求格式错误", 401: "请先登录", 403: "没有权限", 404: "资源不存在", 405: "不支持该请求方法",
    409: "数据冲突", 413: "请求体过大", 415: "不支持的内容类型", 422: "参数校验失败",
}


def error_body(status: int, code: str, message: str, errors: Any = None, detail: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "status": status, "message": message}
    if errors:
        body["errors"] = errors
    if detail:
        body["detail"] = detail
    body["request_id"] = g.get("request_id")
    return body


def _respond(status: int, code: str, message: str, errors: Any = None, detail: Any = None):  # noqa: ANN202
    response = jsonify(error_body(status, code, message, errors, detail))
    response.status_code = status
    return response


def handle_domain(exc: DomainError):  # noqa: ANN201
    return _respond(exc.status, exc.code, exc.message, exc.errors, exc.detail)


def _flatten_messages(messages: Any) -> Any:
    """webargs reports {location: {field: [...]}}; with one location, report fields directly."""
    if isinstance(messages, dict) and len(messages) == 1:
        (location, inner), = messages.items()
        if location in ("json", "query", "form", "files", "path") and isinstance(inner, dict):
            return inner
    return messages


def handle_http(exc: HTTPException):  # noqa: ANN201
    status = exc.code or 500
    data = getattr(exc, "data", None) or {}
    messages = data.get("messages")
    message = HTTP_MESSAGES.get(status, exc.name)
    if status == 400 and messages:
        message = "请求体不是合法的 JSON" if "json" in str(messages).lower() else message
    response = _respond(status, HTTP_CODES.get(status, exc.name.upper().replace(" ", "_")), message,
                        _flatten_messages(messages) if messages else None)
    for key, value in (data.get("headers") or {}).items():
        response.headers[key] = value
    if status == 405 and exc.get_headers():
        for key, value in exc.get_headers():
            if key.lower() == "allow":
                response.headers["Allow"] = value
    return response


def handle_integrity(exc: IntegrityError):  # noqa: ANN201
    orig = exc.orig
    constraint = getattr(getattr(orig, "diag", None), "constraint_name", None)
    if isinstance(orig, pg_errors.UniqueViolation):
        return _respond(409, "DUPLICATE", "数据重复", {"constraint": [constraint or "unique"]})
    if isinstance(orig, pg_errors.ForeignKeyViolation):
        return _respond(409, "REFERENCE_CONFLICT", "引用的数据不存在或仍被引用", {"constraint": [constraint or "fk"]})
    if isinstance(orig, pg_errors.InsufficientPrivilege) or "row-level security" in str(orig):
        return _respond(403, "OUT_OF_SCOPE", "超出数据权限范围")
    return _respond(409, "CONSTRAINT_VIOLATION", "数据不满足约束", {"constraint": [constraint or "check"]})


def handle_db_programming(exc: Exception):  # noqa: ANN201
    orig = getattr(exc, "orig", exc)
    if isinstance(orig, pg_errors.InsufficientPrivilege):
        if "row-level security" in str(orig):
            return _respond(403, "OUT_OF_SCOPE", "超出数据权限范围")
        log.error("database privilege error", exc_info=exc)
        return _respond(403, "PERMISSION_DENIED", "没有权限")
    if isinstance(exc, DataError):
        return _respond(422, "INVALID_VALUE", "数据取值无效")
    if isinstance(exc, OperationalError):
        if getattr(exc, "connection_invalidated", False):  # lost connection (e.g. a database restart): retry
            log.warning("database connection lost; the pool reconnects", exc_info=exc)
            response = _respond(503, "DB_RECONNECTING", "数据库连接已重置，请稍后重试")
            response.headers["Retry-After"] = "1"
            return response
        log.error("database unavailable", exc_info=exc)
        return _respond(503, "SERVICE_UNAVAILABLE", "数据库暂不可用")
    return handle_unexpected(exc)


def handle_unexpected(exc: Exception):  # noqa: ANN201
    if isinstance(exc, HTTPException):
        return handle_http(exc)
    log.exception("unhandled error", extra={"request_id": g.get("request_id")})
    return _respond(500, "INTERNAL_ERROR", "系统内部错误，请联系管理员并提供请求编号")


def register_error_handlers(app: Flask) -> None:
    from sqlalchemy.exc import DBAPIError, ProgrammingError

    app.register_error_handler(DomainError, handle_domain)
    app.register_error_handler(HTTPException, handle_http)
    app.register_error_handler(IntegrityError, handle_integrity)
    app.register_error_handler(ProgrammingError, handle_db_programming)
    app.register_error_handler(DBAPIError, handle_db_programming)
    app.register_error_handler(Exception, handle_unexpected)
