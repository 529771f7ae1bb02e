"""Pieces shared by the bench scripts (run as `.venv/bin/python bench/<script>.py`; each puts the repository root on
sys.path first)."""

from __future__ import annotations

from sqlalchemy import create_engine, pool, text

from geo_core.config import Settings


def ensure_database(settings: Settings) -> None:
    """Create the bench's own database on the DATABASE_URL server if it does not exist yet (migrating and seeding
    it is up to the script)."""
    admin = create_engine(settings.sa_database_url.rsplit("/", 1)[0] + "/postgres", poolclass=pool.NullPool,
                          isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        if not conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :d"), {"d": settings.database_name}):
            conn.execute(text(f'CREATE DATABASE "{settings.database_name}"'))
    admin.dispose()
