"""Project-wide API plumbing: Api/Blueprint subclasses, the request's DB session, authentication."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import flask_smorest
from flask import Flask, current_app, g, request
from marshmallow import Schema, ValidationError, fields, validate
from redis import Redis
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from geo_core.auth.fast import authenticate_session
from geo_core.auth.service import decode_access_token
from geo_core.config import Settings
from geo_core.db import NOBODY, SYSTEM, DbContext, get_context, make_engine, make_session_factory, set_context
from geo_core.errors import AuthenticationFailed, PermissionDenied
from geo_core.scope import Principal

F = TypeVar("F", bound=Callable[..., Any])
REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


@dataclass
class State:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    redis: Redis


def init_state(app: Flask, settings: Settings, engine: Engine | None = None) -> State:
    engine = engine or make_engine(settings.sa_app_database_url, pre_ping=settings.db_pre_ping)
    state = State(settings, engine, make_session_factory(engine), Redis.from_url(settings.redis_url))
    app.extensions["gridmarket"] = state
    return state


def state() -> State:
    return current_app.extensions["gridmarket"]


def settings() -> Settings:
    return state().settings


class Api(flask_smorest.Api):
    pass


class Blueprint(flask_smorest.Blueprint):
    pass


class BaseSchema(Schema):
    class Meta:
        ordered = True


# -- request session -----------------------------------------------------------------------------

def db() -> Session:
    """The request's session; its transaction carries the caller's data scope."""
    if "db" not in g:
        g.db = state().sessions()
        set_context(g.db, g.get("db_context", NOBODY))
    return g.db


def use_system_context() -> Session:
    """For the auth endpoints only: the caller is not known yet."""
    session = db()
    set_context(session, SYSTEM.with_request(g.request_id, g.client_ip))
    return session


def principal() -> Principal:
    p = g.get("principal")
    if p is None:
        raise AuthenticationFailed("请先登录", code="AUTH_REQUIRED")
    return p


# -- authentication and permissions ----------------------------------------------------------------

def public(func: F) -> F:
    """Mark a view method as reachable without a token."""
    func._gm_public = True  # type: ignore[attr-defined]
    return func


def requires(*permissions: str) -> Callable[[F], F]:
    """Require a logged-in user holding every listed permission (none = login only)."""

    def decorate(func: F) -> F:
        func._gm_permissions = permissions  # type: ignore[attr-defined]
        doc = func.__dict__.setdefault("_apidoc", {}).setdefault("manual_doc", {})
        doc["security"] = [{"bearerAuth": []}]
        if permissions:
            note = "Requires permission: " + ", ".join(f"`{p}`" for p in permissions)
            doc["description"] = (doc.get("description", "") + "\n\n" + note).strip()
        return func

    return decorate


def _view_method() -> Callable[..., Any] | None:
    view = current_app.view_functions.get(request.endpoint or "")
    if view is None:
        return None
    cls = getattr(view, "view_class", None)
    return getattr(cls, request.method.lower(), None) if cls else view


def begin_request() -> None:
    rid = request.headers.get("X-Request-ID", "")
    g.request_id = rid if REQUEST_ID_RE.match(rid) else uuid.uuid4().hex
    g.client_ip = request.remote_addr
    g.db_context = NOBODY.with_request(g.request_id, g.client_ip)
    g.principal = None
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        authenticate(header[7:].strip())
    if not request.path.startswith("/api/v1/"):
        return
    method = _view_method()
    if method is None or getattr(method, "_gm_public", False):
        return
    if g.principal is None:
        raise AuthenticationFailed("请先登录", code="AUTH_REQUIRED")
    needed = getattr(method, "_gm_permissions", ())
    missing = [p for p in needed if not g.principal.has(p)]
    if missing:
        raise PermissionDenied(f"缺少权限：{', '.join(missing)}", code="PERMISSION_DENIED",
                               detail={"missing": missing})


def authenticate(token: str) -> None:
    """One statement: the principal, its data-scope context and the request's extra settings (geo_core.auth.fast)."""
    user_id, session_id = decode_access_token(settings(), token)
    if "db" not in g:
        g.db = state().sessions()  # no context bound yet: authenticate_session binds it in its own statement
    p = authenticate_session(g.db, user_id, session_id, request_id=g.request_id, client_ip=g.client_ip,
                             settings=request_settings())
    g.principal = p
    g.db_context = get_context(g.db)


def request_settings() -> tuple[tuple[str, str], ...]:
    """Transaction-local settings for this request from providers registered by `add_request_settings`."""
    return tuple(pair for provider in current_app.extensions.get("gridmarket_settings", ()) for pair in provider())


def add_request_settings(app: Flask, provider: Callable[[], tuple[tuple[str, str], ...]]) -> None:
    """Register settings (names in geo_core.db.SETTINGS) applied with the caller's context, e.g. a timeout."""
    app.extensions.setdefault("gridmarket_settings", []).append(provider)


def current_context() -> DbContext:
    return g.get("db_context", NOBODY)


class Bbox(fields.String):
    """minLon,minLat,maxLon,maxLat (WGS84), loaded as a tuple of four finite floats within the lon/lat ranges."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> tuple[float, ...]:
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            box = tuple(float(v) for v in text.split(","))
        except ValueError as exc:
            raise ValidationError("bbox 须为四个数字") from exc
        if len(box) != 4 or not (-180 <= box[0] < box[2] <= 180 and -90 <= box[1] < box[3] <= 90):
            raise ValidationError("bbox 须为 minLon,minLat,maxLon,maxLat（WGS84）")
        return box


class PageArgs(BaseSchema):
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=1_000_000))
    page_size = fields.Integer(load_default=20, validate=validate.Range(min=1, max=500))
    q = fields.String(load_default=None, validate=validate.Length(max=100))


class ExportArgs(BaseSchema):
    format = fields.String(load_default="csv", validate=validate.OneOf(["csv", "xlsx"]))
    q = fields.String(load_default=None, validate=validate.Length(max=100))


def page_body(page: Any, dump: Callable[[Any], Any]) -> dict[str, Any]:
    return {"items": [dump(i) for i in page.items], "total": page.total, "page": page.page,
            "page_size": page.page_size}
