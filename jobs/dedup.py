"""Duplicate detection over an org or grid subtree as an RQ job (queue "default").

Unlike most jobs this one is not elevated: it runs with the data scope of the user who asked (rebuilt from his
roles when the job starts), so row-level security bounds both customers of every pair exactly as it would in
his own request, and a user disabled in the meantime gets nothing.
"""

from __future__ import annotations

from typing import Any

from rq import get_current_job
from sqlalchemy import select

from geo_core.customers import dedup
from geo_core.db import SYSTEM, transaction
from geo_core.errors import PermissionDenied
from geo_core.orgs.models import Org
from geo_core.scope import Principal, widest
from geo_core.users.models import User, UserStatus
from jobs.queues import _factory, log, settings


def principal_of(user_id: int, job_id: str | None) -> Principal:
    """The user's principal as his next request would see it (active users only)."""
    with transaction(_factory(settings().sa_app_database_url), SYSTEM.with_request(job_id, None)) as session:
        user = session.get(User, user_id)
        if user is None or user.status is not UserStatus.active:
            raise PermissionDenied("用户不存在或已停用", code="ACCOUNT_DISABLED")
        path = session.scalar(select(Org.path).where(Org.id == user.org_id))
        return Principal(user_id=user.id, username=user.username, name=user.name, org_id=user.org_id,
                         org_path=str(path), scope=widest(r.data_scope for r in user.roles),
                         permissions=frozenset(p.code for r in user.roles for p in r.permissions), client="job")


def detect_duplicates(user_id: int, org_id: int | None = None, grid_id: int | None = None) -> dict[str, Any]:
    """Refresh matching keys and upsert candidate pairs inside the subtree, as `user_id`."""
    job = get_current_job()
    job_id = job.id if job else None
    actor = principal_of(user_id, job_id)
    if job is not None:
        job.meta.update({"phase": "detect"})
        job.save_meta()
    ctx = actor.db_context().with_request(job_id, None)
    with transaction(_factory(settings().sa_app_database_url), ctx) as session:
        ids = dedup.detect(session, actor.user_id, dedup.Scope.of(org_id=org_id, grid_id=grid_id))
    log.info("duplicate detection done", extra={"candidates": len(ids), "org_id": org_id, "grid_id": grid_id})
    if job is not None:
        job.meta.update({"phase": "done", "candidates": len(ids)})
        job.save_meta()
    return {"candidates": len(ids)}
