"""Queue names, the shared job context and logger. Jobs take ids, open their own transaction and run
in an explicit, audited elevated context (they act for nobody in particular)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

from redis import Redis
from rq import Queue, get_current_job
from sqlalchemy.orm import Session

from geo_core import tile_generations
from geo_core.config import Settings
from geo_core.db import NOBODY, elevated, make_engine, make_session_factory, transaction

DEFAULT = "default"
IMPORTS = "imports"

log = logging.getLogger("gridmarket.jobs")


@cache
def _factory(url: str):  # noqa: ANN202
    return make_session_factory(make_engine(url, pool_size=2))


def settings() -> Settings:
    return Settings.from_env()


def queue(name: str = DEFAULT, connection: Redis | None = None) -> Queue:
    return Queue(name, connection=connection or Redis.from_url(settings().redis_url))


@contextmanager
def job_session(reason: str, actor_id: int | None = None, *, retires: tuple[str, ...] = ()) -> Iterator[Session]:
    """One transaction as the RLS-bound app role, elevated (and audited) for this job. `retires`: map layers whose
    rows the job writes; their cached tiles are retired once the transaction has committed."""
    job = get_current_job()
    job_id = job.id if job else None
    with transaction(_factory(settings().sa_app_database_url), NOBODY.with_request(job_id, None)) as session:
        with elevated(session, reason=f"job:{reason}", actor_id=actor_id):
            yield session
    retire_layers(retires)


def retire_layers(layers: tuple[str, ...]) -> None:
    """Bump the tile generation of `layers` (after a commit): tiles, heatmaps and aggregates of them refresh now."""
    if layers:
        current = settings()
        tile_generations.retire(Redis.from_url(current.redis_url), current.database_name, layers)


def progress(done: int, total: int) -> None:
    job = get_current_job()
    if job is not None:
        job.meta.update({"done": done, "total": total})
        job.save_meta()
