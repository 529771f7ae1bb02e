"""The feed import and the daily reminder run as RQ jobs on a real worker (committed, then cleaned up)."""

from __future__ import annotations

import pytest
from rq import Queue, SimpleWorker
from rq.job import Job
from sqlalchemy import text

from jobs.queues import DEFAULT, IMPORTS
from tests.committing import committing_client
from tests.feed_helpers import cleanup, max_ids, sample_day, write_day


@pytest.fixture()
def live(app, redis_conn, owner_engine):
    """(client, login) whose requests commit, the app on the test Redis; created rows are deleted afterwards."""
    before = max_ids(owner_engine)
    with committing_client(app, redis_conn) as (client, login):
        try:
            yield client, login
        finally:
            cleanup(owner_engine, before)


def work(redis_conn, queue: str) -> None:
    SimpleWorker([Queue(queue, connection=redis_conn)], connection=redis_conn).work(burst=True)


def test_feed_import_job(live, redis_conn, owner_engine, tmp_path, monkeypatch):
    client, login = live
    monkeypatch.setenv("GM_FEED_ROOT", str(tmp_path))
    customers, accounts, loans = sample_day(owner_engine, "FJ", n=3)
    write_day(tmp_path, "20261124", customers, accounts, loans)
    admin = login("admin")
    r = client.post("/api/v1/feed-runs", json={"directory": "20261124"}, headers=admin)
    assert r.status_code == 202, r.get_json()
    job_id = r.get_json()["job"]["id"]
    work(redis_conn, IMPORTS)
    job = Job.fetch(job_id, connection=redis_conn)
    assert job.is_finished, job.latest_result()
    result = job.return_value()
    assert result["status"] == "done" and result["counts"]["customers"]["inserted"] == 3
    run = client.get(f"/api/v1/feed-runs/{result['run_id']}", headers=admin).get_json()
    assert run["status"] == "done" and run["files"]["accounts.csv"]["rows"] == 3 and run["requested_by"]
    # the same day again: recognised by its checksums, nothing written
    client.post("/api/v1/feed-runs", json={"directory": "20261124"}, headers=admin)
    work(redis_conn, IMPORTS)
    assert client.get("/api/v1/feed-runs", headers=admin).get_json()["total"] == 1
    # bad rows: the job fails, the failed run lists them
    accounts[0]["balance"] = "-5"
    write_day(tmp_path, "20261125", customers, accounts, loans)
    job_id = client.post("/api/v1/feed-runs", json={"directory": "20261125"}, headers=admin).get_json()["job"]["id"]
    work(redis_conn, IMPORTS)
    assert Job.fetch(job_id, connection=redis_conn).is_failed
    failed = client.get("/api/v1/feed-runs", headers=admin).get_json()["items"][0]
    assert failed["status"] == "failed" and failed["errors"][0]["field"] == "balance"
    assert failed["business_day"] == "2026-11-25"
    # only directories below GM_FEED_ROOT; only holders of feed:import
    for directory in ("../", "/etc", "20261126", ""):
        r = client.post("/api/v1/feed-runs", json={"directory": directory}, headers=admin)
        assert r.status_code == 422 and "directory" in str(r.get_json()), directory
    assert client.post("/api/v1/feed-runs", json={"directory": "20261124"},
                       headers=login("bl_430102")).status_code == 403
    assert client.get("/api/v1/feed-runs", headers=login("bl_430102")).status_code == 403


def test_reminder_job_is_idempotent(live, redis_conn, owner_engine):
    client, login = live
    admin = login("admin")
    r = client.post("/api/v1/reminders/runs", json={"day": "2026-11-24"}, headers=admin)
    assert r.status_code == 202, r.get_json()
    work(redis_conn, DEFAULT)
    job = Job.fetch(r.get_json()["job"]["id"], connection=redis_conn)
    assert job.is_finished, job.latest_result()
    # The counts are what this run created; the browser test may have generated (and committed) this day's
    # reminders earlier in the session, so check what exists rather than what was created.
    with owner_engine.connect() as conn:
        kinds = set(conn.execute(text("SELECT DISTINCT kind::text FROM reminders")).scalars())
    assert {"loan_due", "balance_change"} <= kinds, kinds
    am = login("am_430102_1_1")
    mine = client.get("/api/v1/reminders?page_size=500", headers=am).get_json()
    assert mine["total"] > 0
    again = client.post("/api/v1/reminders/runs", json={"day": "2026-11-24"}, headers=admin).get_json()
    work(redis_conn, DEFAULT)
    assert set(Job.fetch(again["job"]["id"], connection=redis_conn).return_value()["counts"].values()) == {0}
    assert client.get("/api/v1/reminders?page_size=500", headers=am).get_json()["total"] == mine["total"]
    assert client.post("/api/v1/reminders/runs", json={}, headers=login("bl_430102")).status_code == 403
