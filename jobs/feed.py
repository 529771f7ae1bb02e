"""Daily feed import (queue "imports"), also run in-process by `gridmarket feed import <dir>`.

One transaction for the whole day: a validation error or any failure writes nothing but a failed feed run
(its own transaction) naming the bad rows."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

from rq import get_current_job

from geo_core.errors import DomainError
from geo_core.feed.files import FeedFormatError
from geo_core.feed.importer import FeedKeys, FeedRejected, import_feed, record_failure
from jobs.queues import job_session, log, settings


def feed_keys() -> FeedKeys:
    s = settings()
    return FeedKeys(s.sm4_key, s.blind_index_key)


def run_feed_import(directory: str, day: str | None = None, force: bool = False,
                    actor_id: int | None = None) -> dict[str, Any]:
    """Import one day directory; returns {run_id, status, counts, checksum} or raises after recording failure."""
    job = get_current_job()
    job_id = job.id if job else None
    if job is not None and actor_id is None:
        actor_id = job.meta.get("user_id")
    business_day = date.fromisoformat(day) if day else None
    try:
        with job_session(f"feed_import:{Path(directory).name}", actor_id=actor_id,
                         retires=("customers",)) as session:
            result = import_feed(session, feed_keys(), Path(directory), day=business_day, actor_id=actor_id,
                                 job_id=job_id, force=force)
    except (FeedRejected, FeedFormatError, DomainError, Exception) as exc:
        log.warning("feed import %s failed: %s", directory, exc)
        error = exc if isinstance(exc, DomainError) else FeedRejected(
            str(exc) if isinstance(exc, FeedFormatError) else f"导入失败（{exc.__class__.__name__}），未写入任何数据")
        with job_session(f"feed_import:{Path(directory).name}:failed", actor_id=actor_id) as side:
            run_id = record_failure(side, directory, business_day, error, actor_id, job_id)
        if job is not None:
            job.meta.update({"feed_run_id": run_id})
            job.save_meta()
        raise
    if job is not None:
        job.meta.update({"feed_run_id": result.run_id})
        job.save_meta()
    log.info("feed import %s: run %s %s %s", directory, result.run_id, result.status, result.counts)
    return {"run_id": result.run_id, "status": result.status, "counts": result.counts, "checksum": result.checksum}
