"""Statement timeouts for the feature and tile server.

Every request to a tiles blueprint (/ogc, /tiles, /heatmaps, /aggregates) made by a logged-in caller gets
`SET LOCAL statement_timeout` (GM_TILES_STATEMENT_TIMEOUT_MS) in its transactions - set by authentication in the same
statement as the caller's data-scope context (api.extensions.add_request_settings, geo_core.auth.fast) - so no
filter, deep offset or huge extent can keep a worker busy for longer. A cancelled statement (SQLSTATE 57014, raised
raw by psycopg in `tiles.sql.run` or wrapped by SQLAlchemy) becomes a **503 `QUERY_TIMEOUT` with `Retry-After`** in
the app's error shape - never a 500. The transaction is rolled back by the app's normal teardown.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, g, jsonify, request
from psycopg import errors as pg_errors
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from geo_core.db import get_context
from tiles import tiles_settings


def apply(session: Any, timeout_ms: int) -> None:
    """`SET LOCAL statement_timeout` (0 = none) and `jit = off` on the session's transaction."""
    # JIT off as well: its compile time (0.2-0.4 s measured per statement on 2 million customers, triggered by the
    # large cost estimates of spatial filters) exceeds the run time of every tile, item and heatmap statement
    session.execute(text("SELECT set_config('statement_timeout', :v, true), set_config('jit', 'off', true)"),
                    {"v": f"{timeout_ms}ms" if timeout_ms > 0 else "0"})


def _is_cancel(exc: BaseException) -> bool:
    return isinstance(exc, pg_errors.QueryCanceled) or isinstance(getattr(exc, "orig", None),
                                                                  pg_errors.QueryCanceled)


def timeout_response(exc: BaseException) -> Any:
    from api.errors import error_body, handle_db_programming

    if not _is_cancel(exc):
        return handle_db_programming(exc)
    conf = tiles_settings()
    response = jsonify(error_body(503, "QUERY_TIMEOUT", "查询超时：请缩小范围、减少筛选条件或稍后重试",
                                  detail={"timeout_ms": conf.statement_timeout_ms}))
    response.status_code = 503
    response.headers["Retry-After"] = str(conf.retry_after_s)
    return response


def install(app: Flask, blueprint_names: set[str]) -> None:
    """Apply the timeout to requests of the given blueprints; map cancelled statements to 503 app-wide."""

    from api.extensions import add_request_settings, db

    def settings() -> tuple[tuple[str, str], ...]:
        if request.blueprint not in blueprint_names:
            return ()
        timeout_ms = tiles_settings().statement_timeout_ms
        return (("statement_timeout", f"{timeout_ms}ms" if timeout_ms > 0 else "0"), ("jit", "off"))

    def before() -> None:  # authentication applied them in its own statement; this is a safety net
        if request.blueprint in blueprint_names and g.get("principal") is not None:
            session = db()
            if "statement_timeout" not in dict(get_context(session).settings):
                apply(session, tiles_settings().statement_timeout_ms)

    add_request_settings(app, settings)
    app.before_request(before)
    app.register_error_handler(pg_errors.QueryCanceled, timeout_response)
    app.register_error_handler(OperationalError, timeout_response)
