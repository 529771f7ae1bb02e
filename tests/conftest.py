"""Test fixtures against real PostgreSQL/PostGIS and Redis.

A dedicated database (`<name>_test`) is dropped, created, migrated from empty with Alembic and seeded
once per run. Each test runs inside an outer transaction on an app-role connection (subject to RLS)
that is rolled back afterwards; the app's own commits become savepoints.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, pool, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import sessionmaker

os.environ.setdefault("GM_SECRET_KEY", "test-secret-key-test-secret-key-0123456789")
os.environ.setdefault("GM_PBKDF2_ITERATIONS", "1000")  # fast hashes in tests; production uses 150,000
os.environ.setdefault("GM_LOG_LEVEL", "WARNING")
os.environ.setdefault("GM_SM4_KEY", "0123456789abcdef0123456789abcdef")
os.environ.setdefault("GM_BLIND_INDEX_KEY", "test-blind-index-key-test-blind-index-key")

from geo_core.config import Settings  # noqa: E402

_base = Settings.from_env()
TEST_DB = os.environ.get("GM_TEST_DATABASE", f"{_base.database_name}_test")
os.environ["DATABASE_URL"] = make_url(_base.sa_database_url).set(database=TEST_DB).render_as_string(
    hide_password=False).replace("postgresql+psycopg://", "postgresql://")
os.environ["REDIS_URL"] = os.environ.get("GM_TEST_REDIS_URL", _base.redis_url.rsplit("/", 1)[0] + "/15")
os.environ.pop("GM_APP_DATABASE_URL", None)
DEMO_PASSWORD = "Gm@2026demo"


def _recreate_database(settings: Settings, name: str) -> None:
    admin = create_engine(make_url(settings.sa_database_url).set(database="postgres"),
                          poolclass=pool.NullPool, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :d "
                          "AND pid <> pg_backend_pid()"), {"d": name})
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings.from_env()


@pytest.fixture(scope="session")
def migrated_db(settings: Settings) -> Settings:
    from api.cli import owner_engine, upgrade_database
    from geo_core.db import make_session_factory
    from geo_core.seed.demo import seed_demo

    _recreate_database(settings, TEST_DB)
    upgrade_database(settings)
    with make_session_factory(owner_engine(settings)).begin() as session:
        seed_demo(session, "small", iterations=settings.pbkdf2_iterations, settings=settings)
    return settings


@pytest.fixture(scope="session")
def app(migrated_db: Settings):  # noqa: ANN201
    from api import create_app

    application = create_app(migrated_db)
    application.config["TESTING"] = True
    yield application
    application.extensions["gridmarket"].engine.dispose()


@pytest.fixture(scope="session")
def owner_engine(migrated_db: Settings):  # noqa: ANN201
    engine = create_engine(migrated_db.sa_database_url, poolclass=pool.NullPool)
    yield engine
    engine.dispose()


@pytest.fixture()
def connection(app):  # noqa: ANN001, ANN201
    """An app-role connection in a transaction that is rolled back after the test."""
    state = app.extensions["gridmarket"]
    conn = state.engine.connect()
    outer = conn.begin()
    original = state.sessions
    state.sessions = sessionmaker(bind=conn, join_transaction_mode="create_savepoint", expire_on_commit=False)
    try:
        yield conn
    finally:
        state.sessions = original
        outer.rollback()
        conn.close()


@pytest.fixture()
def db_session(connection):  # noqa: ANN001, ANN201
    """A session on the test connection (no scope set: use set_context)."""
    session = sessionmaker(bind=connection, join_transaction_mode="create_savepoint")()
    yield session
    session.close()


@pytest.fixture()
def client(app, connection):  # noqa: ANN001, ANN201
    return app.test_client()


@pytest.fixture()
def login(client):  # noqa: ANN001, ANN201
    """login(username, password=demo) -> Authorization headers."""
    cache: dict[str, dict[str, str]] = {}

    def _login(username: str, password: str = DEMO_PASSWORD) -> dict[str, str]:
        if username not in cache:
            r = client.post("/api/v1/auth/login", json={"username": username, "password": password})
            assert r.status_code == 200, r.get_json()
            cache[username] = {"Authorization": f"Bearer {r.get_json()['access_token']}"}
        return cache[username]

    return _login


@pytest.fixture()
def redis_conn(migrated_db: Settings) -> Iterator[object]:
    from redis import Redis

    conn = Redis.from_url(migrated_db.redis_url)
    conn.flushdb()
    yield conn
    conn.flushdb()
