"""Coverage snapshot job: today's indicators of every grid, org and manager (and the bank total), upserted
into coverage_snapshots in one elevated, audited transaction. Idempotent per day; run it daily (see
docs/PROFILES.md) or by POST /api/v1/coverage/snapshots."""

from __future__ import annotations

from rq import get_current_job

from geo_core.coverage.snapshots import bank_today, write_snapshots
from jobs.queues import job_session, log, progress


def snapshot_coverage(not_visited_days: int = 90) -> dict:
    job = get_current_job()
    actor_id = job.meta.get("user_id") if job else None
    with job_session("coverage_snapshot", actor_id=actor_id) as session:
        counts = write_snapshots(session, not_visited_days=not_visited_days)
    rows = sum(counts.values())
    progress(rows, rows)
    log.info("coverage snapshot %s: %s", bank_today(), counts)
    return {"day": bank_today().isoformat(), "rows": counts}
