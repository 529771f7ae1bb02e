"""Migrations run up from an empty database, down to base, and up again."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, inspect, pool, text

from api.cli import ROOT, upgrade_database
from tests.conftest import _recreate_database


def test_upgrade_downgrade_upgrade(migrated_db):
    settings = migrated_db.with_database(migrated_db.database_name + "_mig")
    _recreate_database(settings, settings.database_name)
    upgrade_database(settings)
    engine = create_engine(settings.sa_database_url, poolclass=pool.NullPool)
    with engine.connect() as conn:
        tables = set(inspect(conn).get_table_names())
        assert {"orgs", "users", "roles", "permissions", "menus", "dict_types", "dict_items", "devices",
                "audit_log", "auth_sessions", "admin_divisions"} <= tables
        exts = set(conn.scalars(text("SELECT extname FROM pg_extension")))
        assert {"postgis", "ltree", "pg_trgm", "btree_gist"} <= exts
        rls = set(conn.scalars(text("SELECT relname FROM pg_class WHERE relrowsecurity")))
        assert {"orgs", "users", "devices", "auth_sessions", "user_roles", "audit_log"} <= rls
        leakproof = conn.scalar(text("SELECT proleakproof FROM pg_proc WHERE proname = 'geometry_overlaps'"))
        assert leakproof is True
    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.attributes["database_url"] = settings.sa_database_url
    command.downgrade(cfg, "base")
    with engine.connect() as conn:
        assert set(inspect(conn).get_table_names()) <= {"alembic_version", "spatial_ref_sys"}
    upgrade_database(settings)
    with engine.connect() as conn:
        assert conn.scalar(text("SELECT count(*) FROM permissions")) > 10
    engine.dispose()
