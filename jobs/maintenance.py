"""Housekeeping jobs."""

from __future__ import annotations

from sqlalchemy import update

from geo_core.auth.models import AuthSession
from geo_core.auth.service import now
from jobs.queues import job_session, log, progress


def revoke_expired_sessions() -> int:
    """Mark sessions whose refresh token has expired as revoked. Idempotent."""
    with job_session("revoke_expired_sessions") as session:
        result = session.execute(
            update(AuthSession)
            .where(AuthSession.revoked_at.is_(None), AuthSession.expires_at <= now())
            .values(revoked_at=now())
        )
        count = result.rowcount or 0
    progress(count, count)
    log.info("revoked %d expired sessions", count)
    return count
