"""Structured JSON logs with the request id, and Prometheus metrics (/metrics)."""

from __future__ import annotations

import logging
import os
import time

from flask import Flask, Response, g, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, Histogram, generate_latest
from rq import Queue

from geo_core.logs import configure_logging  # noqa: F401  (re-exported for the app factory)

REQUEST_LATENCY = Histogram(
    "gm_http_request_duration_seconds",
    "HTTP request latency by endpoint",
    ["method", "endpoint", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


access_log = logging.getLogger("gridmarket.access")


def init_observability(app: Flask) -> None:
    @app.before_request
    def _start_timer() -> None:
        g.started = time.perf_counter()

    @app.after_request
    def _observe(response: Response) -> Response:
        elapsed = time.perf_counter() - g.get("started", time.perf_counter())
        endpoint = request.url_rule.rule if request.url_rule else "unmatched"
        REQUEST_LATENCY.labels(request.method, endpoint, str(response.status_code)).observe(elapsed)
        response.headers["X-Request-ID"] = g.get("request_id", "")
        principal = g.get("principal")
        access_log.info(
            "%s %s %s", request.method, request.path, response.status_code,
            extra={"request_id": g.get("request_id"), "method": request.method, "path": request.path,
                   "status": response.status_code, "duration_ms": round(elapsed * 1000, 1),
                   "user_id": principal.user_id if principal else None, "endpoint": endpoint},
        )
        return response


def metrics_response(redis_conn, queue_names) -> Response:  # noqa: ANN001
    """Latency histograms (merged across gunicorn workers when multiprocess mode is on) + queue depth."""
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(REQUEST_LATENCY)
    depth = Gauge("gm_job_queue_depth", "Jobs waiting per RQ queue", ["queue"], registry=registry)
    failed = Gauge("gm_job_failed_total", "Jobs in the failed registry per RQ queue", ["queue"], registry=registry)
    for name in queue_names:
        queue = Queue(name, connection=redis_conn)
        depth.labels(name).set(queue.count)
        failed.labels(name).set(queue.failed_job_registry.count)
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)
