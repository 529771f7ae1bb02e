"""Jobs run by a real RQ worker (SimpleWorker, burst) against real Redis and PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from rq import SimpleWorker
from sqlalchemy import text

from jobs.maintenance import revoke_expired_sessions
from jobs.queues import queue


def test_revoke_expired_sessions_job(owner_engine, redis_conn):
    expired, alive = uuid.uuid4(), uuid.uuid4()
    now = datetime.now(UTC)
    with owner_engine.begin() as conn:
        uid = conn.scalar(text("SELECT id FROM users WHERE username = 'ga_430103_1'"))
        for sid, exp in ((expired, now - timedelta(hours=1)), (alive, now + timedelta(hours=1))):
            conn.execute(text("INSERT INTO auth_sessions (id, user_id, refresh_token_hash, client, auth_method, "
                              "expires_at) VALUES (:id, :u, :h, 'web', 'password', :e)"),
                         {"id": sid, "u": uid, "h": uuid.uuid4().hex, "e": exp})
    try:
        q = queue("default", connection=redis_conn)
        job = q.enqueue(revoke_expired_sessions)
        SimpleWorker([q], connection=redis_conn).work(burst=True)
        job.refresh()
        assert job.is_finished, job.latest_result()
        assert job.return_value() >= 1
        with owner_engine.connect() as conn:
            revoked = dict(conn.execute(text("SELECT id, revoked_at IS NOT NULL FROM auth_sessions "
                                             "WHERE id IN (:a, :b)"), {"a": expired, "b": alive}).all())
            assert revoked == {expired: True, alive: False}
            # the elevation was audited with the job id
            assert conn.scalar(text("SELECT count(*) FROM audit_log WHERE action = 'elevate' AND request_id = :j"),
                               {"j": job.id}) == 1
    finally:
        with owner_engine.begin() as conn:
            conn.execute(text("DELETE FROM auth_sessions WHERE id IN (:a, :b)"), {"a": expired, "b": alive})
