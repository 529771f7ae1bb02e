"""Rule tag job (queue "default"): recompute one rule tag or all of them, set-based, in one transaction."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from rq import get_current_job

from geo_core.tags import service
from jobs.queues import job_session, log, progress


def recompute_rule_tags(tag_id: int | None = None) -> dict[str, Any]:
    """Insert missing and delete no-longer-matching customer tags; returns added/removed per tag and in total.

    Runs elevated (audited, acting for the user who asked): a rule tag covers its org's subtree whatever the
    requester's own scope. All tags are recomputed in one transaction: all or nothing."""
    job = get_current_job()
    actor_id = job.meta.get("user_id") if job else None
    with job_session(f"recompute_rule_tags:{tag_id if tag_id is not None else 'all'}", actor_id=actor_id) as session:
        results = service.recompute(session, tag_id)
    progress(len(results), len(results))
    summary = {"tags": [asdict(r) for r in results], "added": sum(r.added for r in results),
               "removed": sum(r.removed for r in results)}
    log.info("recomputed %d rule tags: +%d -%d", len(results), summary["added"], summary["removed"])
    return summary
