"""Daily reminder run (queue "default"): one business day, one transaction, idempotent.

Schedule it once a day after the feed import (enqueue `jobs.reminders.run_reminders` from the bank's
scheduler); POST /api/v1/reminders/runs enqueues it by hand."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from rq import get_current_job

from geo_core.reminders.generate import ReminderRules, generate_reminders
from jobs.queues import job_session, log

BANK_TZ = ZoneInfo("Asia/Shanghai")  # "today" is the bank's business day, not the server's UTC date


def run_reminders(day: str | None = None) -> dict[str, Any]:
    """Create the day's reminders for every manager and mark overdue open ones missed."""
    job = get_current_job()
    actor_id = job.meta.get("user_id") if job else None
    business_day = date.fromisoformat(day) if day else datetime.now(BANK_TZ).date()
    with job_session(f"reminders:{business_day.isoformat()}", actor_id=actor_id) as session:
        counts = generate_reminders(session, business_day, ReminderRules.from_env())
    if job is not None:
        job.meta.update({"day": business_day.isoformat(), "counts": counts})
        job.save_meta()
    log.info("reminders for %s: %s", business_day, counts)
    return {"day": business_day.isoformat(), "counts": counts}
