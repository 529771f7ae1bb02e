"""Without pre-ping (the web app's default), a pooled connection lost to a database restart costs one request a
503 with Retry-After — never a 500 — and the pool reconnects for the next one."""

from __future__ import annotations

from sqlalchemy import text

from api import create_app
from geo_core.db import make_engine
from tests.conftest import DEMO_PASSWORD

APP_NAME = "gm-reconnect-test"


def test_lost_connections_give_one_503_then_the_pool_reconnects(migrated_db, owner_engine):
    assert migrated_db.db_pre_ping is False
    engine = make_engine(migrated_db.sa_app_database_url, pre_ping=False,
                         connect_args={"application_name": APP_NAME})
    try:
        client = create_app(migrated_db, engine=engine).test_client()
        r = client.post("/api/v1/auth/login", json={"username": "admin", "password": DEMO_PASSWORD})
        assert r.status_code == 200, r.get_json()
        h = {"Authorization": f"Bearer {r.get_json()['access_token']}"}
        assert client.get("/api/v1/me", headers=h).status_code == 200

        with owner_engine.connect() as conn:  # what a database restart does to the pooled connections
            killed = conn.execute(text("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                       "WHERE application_name = :a"), {"a": APP_NAME}).scalar()
        assert killed >= 1

        r = client.get("/api/v1/me", headers=h)
        assert r.status_code == 503, r.get_json()
        assert r.get_json()["code"] == "DB_RECONNECTING" and r.headers["Retry-After"] == "1"
        for _ in range(3):
            assert client.get("/api/v1/me", headers=h).status_code == 200
    finally:
        engine.dispose()
