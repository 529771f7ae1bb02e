"""Liveness, readiness and Prometheus metrics (outside /api/v1: no auth, for the platform)."""

from __future__ import annotations

from flask import Blueprint, jsonify
from sqlalchemy import text

from api.extensions import state
from api.observability import metrics_response

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():  # noqa: ANN201
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz():  # noqa: ANN201
    checks: dict[str, str] = {}
    st = state()
    try:
        with st.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001 - report any failure as not ready
        checks["database"] = f"error: {exc.__class__.__name__}"
    try:
        st.redis.ping()
        checks["redis"] = "ok"
    except Exception as exc:  # noqa: BLE001
        checks["redis"] = f"error: {exc.__class__.__name__}"
    ready = all(v == "ok" for v in checks.values())
    return jsonify(status="ready" if ready else "not_ready", checks=checks), (200 if ready else 503)


@bp.get("/metrics")
def metrics():  # noqa: ANN201
    st = state()
    return metrics_response(st.redis, st.settings.queue_names)
