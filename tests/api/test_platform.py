"""Health, readiness, metrics, OpenAPI document, docs UI served locally, request ids, JSON logs."""

from __future__ import annotations

import json
import logging

from openapi_spec_validator import validate


def test_healthz_and_readyz(client):
    assert client.get("/healthz").get_json() == {"status": "ok"}
    r = client.get("/readyz")
    assert r.status_code == 200 and r.get_json()["checks"] == {"database": "ok", "redis": "ok"}


def test_metrics_expose_latency_histogram_and_queue_depth(client, login):
    client.get("/api/v1/me", headers=login("admin"))
    text = client.get("/metrics").data.decode()
    assert 'gm_http_request_duration_seconds_bucket{endpoint="/api/v1/me"' in text
    assert 'gm_job_queue_depth{queue="default"}' in text


def test_openapi_document_is_valid_and_documents_security(client):
    spec = client.get("/api/openapi.json").get_json()
    validate(spec)
    assert spec["openapi"].startswith("3.0")
    me = spec["paths"]["/api/v1/me"]["get"]
    assert me["security"] == [{"bearerAuth": []}]
    assert "security" not in spec["paths"]["/api/v1/auth/login"]["post"]


def test_swagger_ui_is_served_without_cdn(client):
    html = client.get("/api/docs").data.decode()
    assert "/vendor/swagger-ui/" in html
    assert "cdn" not in html.lower() and "unpkg" not in html.lower()


def test_request_id_is_echoed_and_logged_as_json(client, caplog):
    with caplog.at_level(logging.INFO, logger="gridmarket.access"):
        r = client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert r.headers["X-Request-ID"] == "abc-123"
    record = next(rec for rec in caplog.records if getattr(rec, "request_id", None) == "abc-123")
    from geo_core.logs import JsonFormatter

    entry = json.loads(JsonFormatter().format(record))
    assert entry["status"] == 200 and entry["path"] == "/healthz" and "duration_ms" in entry
    # a hostile request id is replaced, not echoed
    r = client.get("/healthz", headers={"X-Request-ID": "<script>"})
    assert r.headers["X-Request-ID"] != "<script>" and len(r.headers["X-Request-ID"]) == 32
