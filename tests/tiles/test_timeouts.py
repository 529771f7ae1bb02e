"""Statement timeouts: a tile/feature/heatmap/aggregate statement that runs past GM_TILES_STATEMENT_TIMEOUT_MS is
cancelled by PostgreSQL and answered 503 QUERY_TIMEOUT with Retry-After - never a 500, never a hung worker.

The slow statement is made deterministic by holding an ACCESS EXCLUSIVE lock on `customers` from another
connection: every read of the table waits, and statement_timeout cancels the wait."""

from __future__ import annotations

import dataclasses

import pytest
from sqlalchemy import text

from tests.tiles import FURONG_CENTRE, clear_tile_cache, tile_of

EXTENSION_KEY = "gridmarket_tiles"


@pytest.fixture()
def tiny_timeout(app, migrated_db):  # noqa: ANN001, ANN201
    saved = app.extensions[EXTENSION_KEY]
    app.extensions[EXTENSION_KEY] = dataclasses.replace(saved, statement_timeout_ms=300, retry_after_s=7)
    clear_tile_cache(migrated_db.redis_url, migrated_db.database_name)
    yield
    app.extensions[EXTENSION_KEY] = saved
    clear_tile_cache(migrated_db.redis_url, migrated_db.database_name)


def test_slow_statements_become_503_with_retry_after(client, login, owner_engine, tiny_timeout):
    h = login("admin")
    z, x, y = tile_of(*FURONG_CENTRE, 14)
    paths = [f"/tiles/customers/{z}/{x}/{y}.mvt",
             "/ogc/collections/customers/items?limit=5",
             "/heatmaps/customers?bbox=111.8,27.8,114.3,28.7&res=7",
             f"/heatmaps/customers/{z - 3}/{x >> 3}/{y >> 3}.mvt",
             "/aggregates/grids?level=community"]
    with owner_engine.connect() as locker:
        locker.execute(text("LOCK TABLE customers IN ACCESS EXCLUSIVE MODE"))
        try:
            for path in paths:
                r = client.get(path, headers=h)
                assert r.status_code == 503, (path, r.status_code, r.data[:200])
                body = r.get_json()
                assert body["code"] == "QUERY_TIMEOUT" and body["detail"]["timeout_ms"] == 300
                assert r.headers["Retry-After"] == "7"
        finally:
            locker.rollback()
    # the lock is gone: the same requests answer normally on the same workers/connections
    for path in paths:
        assert client.get(path, headers=h).status_code in (200, 204), path


def test_the_timeout_is_set_per_request(client, login, app, tiny_timeout):
    from api.extensions import db

    with app.test_request_context("/tiles", headers=login("admin")):
        app.preprocess_request()
        assert db().scalar(text("SHOW statement_timeout")) == "300ms"
    with app.test_request_context("/api/v1/me", headers=login("admin")):
        app.preprocess_request()
        assert db().scalar(text("SHOW statement_timeout")) != "300ms"  # only the tile server's blueprints


def test_settings_from_env():
    from tiles import TilesSettings, TilesSettingsError

    conf = TilesSettings.from_env({"GM_TILES_STATEMENT_TIMEOUT_MS": "2500", "GM_TILES_RETRY_AFTER": "3"})
    assert (conf.statement_timeout_ms, conf.retry_after_s) == (2500, 3)
    assert TilesSettings.from_env({}).statement_timeout_ms == 15_000
    with pytest.raises(TilesSettingsError):
        TilesSettings.from_env({"GM_TILES_STATEMENT_TIMEOUT_MS": "-1"})
