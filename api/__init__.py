"""Flask app factory: settings -> extensions -> blueprints. Nothing runs at import time."""

from __future__ import annotations

from flask import Flask, g
from sqlalchemy.engine import Engine
from werkzeug.middleware.proxy_fix import ProxyFix

from geo_core.config import Settings


def create_app(settings: Settings | None = None, *, engine: Engine | None = None) -> Flask:
    from api import errors, observability
    from api.extensions import Api, begin_request, init_state

    settings = settings or Settings.from_env()
    observability.configure_logging(settings.log_level)
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=settings.secret_key,
        MAX_CONTENT_LENGTH=25 * 1024 * 1024,
        JSON_AS_ASCII=False,
        API_TITLE="GridMarket API",
        API_VERSION="1.0.0",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/api",
        OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_SWAGGER_UI_PATH="/docs",
        OPENAPI_SWAGGER_UI_URL="/vendor/swagger-ui/",
        API_SPEC_OPTIONS={
            "info": {"description": "GridMarket 网格化精准营销系统 API. Authenticate with `POST /api/v1/auth/login` "
                                    "and send `Authorization: Bearer <access_token>`."},
            "components": {"securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer",
                                                              "bearerFormat": "JWT"}}},
        },
    )
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    if settings.trusted_proxies:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.trusted_proxies)  # type: ignore[method-assign]
    init_state(app, settings, engine)
    observability.init_observability(app)
    app.before_request(begin_request)
    app.after_request(_finish_transaction)
    app.teardown_request(_close_session)

    api = Api(app)
    from api import (
        audit,
        auth,
        coverage,
        customer_360,
        customer_dedup,
        customer_groups,
        customer_lists,
        customer_profiles,
        customers,
        devices,
        dictionary,
        divisions,
        geocoding,
        grid_balancing,
        grid_files,
        grid_rating,
        grid_staffing,
        grids,
        health,
        me,
        menus,
        orgs,
        permissions,
        pois,
        roles,
        tags,
        users,
        watch_items,
    )

    for module in (auth, me, orgs, users, divisions, grids, grid_staffing, grid_rating, grid_balancing, roles,
                   permissions, menus, dictionary, devices, audit, watch_items, pois, grid_files,
                   customers, customer_lists, customer_dedup, customer_360, customer_profiles, coverage, geocoding):
        api.register_blueprint(module.blp)
    for module in (tags, customer_groups):  # customer tags and groups (客群)
        api.register_blueprint(module.blp)
    from api import credit, customer_events, feed, reminders  # data feed, reminders, credit engine

    for module in (feed, reminders, customer_events, credit):
        api.register_blueprint(module.blp)
    from tiles import register as register_tiles
    register_tiles(app, api)
    app.register_blueprint(health.bp)
    try:
        from api.pages import bp as pages_bp
    except ImportError:  # pragma: no cover - pages are optional in API-only deployments
        pages_bp = None
    if pages_bp is not None:
        app.register_blueprint(pages_bp)
    errors.register_error_handlers(app)
    return app


def _finish_transaction(response):  # noqa: ANN001, ANN202
    session = g.pop("db", None)
    if session is None:
        return response
    try:
        if response.status_code < 400:
            session.commit()
            g.committed = True  # read by teardown hooks that act only on committed writes (tile cache)
        else:
            session.rollback()
    except Exception as exc:  # a failed commit must not leave a success response behind
        session.rollback()
        from sqlalchemy.exc import IntegrityError

        from api.errors import handle_integrity, handle_unexpected

        response = handle_integrity(exc) if isinstance(exc, IntegrityError) else handle_unexpected(exc)
    finally:
        session.close()
    return response


def _close_session(exc: BaseException | None) -> None:
    session = g.pop("db", None)
    if session is not None:
        session.rollback()
        session.close()
