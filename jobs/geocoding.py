"""Batch geocoding job (queue "imports"): a geocode run in chunks, one transaction per chunk, resumable.

Each chunk locks the run row, reads the next customers after the run's cursor under the requester's row-level
security, geocodes them (gazetteer, then online providers with retries and backoff), writes points, grids and
known addresses, and advances the cursor and counts, all in one commit. A killed or failed job loses at most the
chunk it was in; running the job again (RQ retries it, or POST /geocode/runs/{id}/resume) continues after the
cursor, and customers already placed are not targeted again. Progress (done / total / ETA) is in job.meta and in
the geocode_runs row.
"""

from __future__ import annotations

import time
from typing import Any

from redis import Redis
from rq import get_current_job
from rq.job import Job
from sqlalchemy import func, select

from geo_core.customers.lists import acting_as
from geo_core.errors import DomainError
from geo_core.geocoding import runs
from geo_core.geocoding.models import GeocodeRun
from geo_core.geocoding.service import Geocoder
from jobs.queues import job_session, log, settings

RETRIES = 2
BACKOFF_S = 0.2
RATE_WAIT_S = 10.0


class Meter:
    """done / total, addresses per second and ETA in job.meta (at most a few times a second)."""

    def __init__(self, job: Job | None, start_done: int, min_interval_s: float = 0.25) -> None:
        self.job, self.min_interval_s = job, min_interval_s
        self.started, self.start_done, self.last = time.monotonic(), start_done, 0.0

    def __call__(self, phase: str, done: int, total: int, *, force: bool = False) -> None:
        now = time.monotonic()
        if self.job is None or (not force and now - self.last < self.min_interval_s):
            return
        self.last = now
        elapsed = now - self.started
        rate = (done - self.start_done) / elapsed if elapsed > 0 and done > self.start_done else None
        eta = round((total - done) / rate, 1) if rate else None
        self.job.meta.update({"phase": phase, "done": done, "total": total, "eta_s": eta,
                              "rows_per_s": round(rate, 1) if rate else None})
        self.job.save_meta()


def geocode_run(run_id: int) -> dict[str, Any]:
    """Process a geocode run to the end (or continue it after its cursor)."""
    job = get_current_job()
    job_id = job.id if job else None
    conf = settings()
    redis = job.connection if job is not None else Redis.from_url(conf.redis_url)
    reason = f"geocode_run:{run_id}"
    try:
        with job_session(f"{reason}:start") as session:
            run = runs.get_run(session, run_id)
            if run.status == "done":
                return summary(run)
            actor = runs.load_actor(session, run.requested_by)
            learned = runs.learn_confirmed(session, actor)
            with acting_as(session, actor):
                remaining = session.scalar(select(func.count()).select_from(
                    runs.select_targets(run, run.cursor).subquery())) or 0
            total = run.done + remaining
            runs.mark(session, run_id, status="running", job_id=job_id, total=total, error=None,
                      started_at=func.coalesce(GeocodeRun.started_at, func.now()), finished_at=None)
            done = run.done
        log.info("geocode run %s: %s to go (%s known addresses learnt)", run_id, remaining, learned)
        geocoder = Geocoder(conf, redis, online=bool(run.params.get("online", True)), retries=RETRIES,
                            backoff_s=BACKOFF_S, max_wait_s=RATE_WAIT_S)
        meter = Meter(job, done)
        meter("geocode", done, total, force=True)
        while True:
            with job_session(reason, actor_id=actor.user_id, retires=("customers",)) as session:
                run = session.scalars(select(GeocodeRun).where(GeocodeRun.id == run_id).with_for_update()).one()
                with acting_as(session, actor):
                    ids = list(session.scalars(runs.select_targets(run, run.cursor).limit(runs.CHUNK)))
                if not ids:
                    run.status, run.finished_at, run.total = "done", func.now(), run.done
                    if geocoder.stopped:
                        run.error = "；".join(f"{p}: {why}" for p, why in geocoder.stopped.items())[:1000]
                    session.flush()
                    session.refresh(run)
                    result = summary(run)
                    break
                counts = runs.geocode_chunk(session, actor, run, geocoder, ids)
                run.counts = runs.merge_counts(run.counts or {}, counts)
                run.done, run.cursor = run.done + len(ids), ids[-1]
                done, total = run.done, max(total, run.done)
            meter("geocode", done, total)
        meter("done", result["done"], result["done"], force=True)
        log.info("geocode run %s: %s", run_id, result)
        return result
    except Exception as exc:
        log.exception("geocode run %s failed", run_id)
        message = exc.message if isinstance(exc, DomainError) else exc.__class__.__name__
        with job_session(f"{reason}:failed") as side:
            error = f"地址解析中断（已完成的部分已保存，可继续）：{message}"[:1000]
            runs.mark(side, run_id, status="failed", error=error, finished_at=func.now())
        raise


def summary(run: GeocodeRun) -> dict[str, Any]:
    return {"run_id": run.id, "status": run.status, "done": run.done, "total": run.total, "counts": run.counts,
            "error": run.error}
