"""Customer list import job on real RQ workers: one transaction (all rows or none), skip_invalid, matches,
progress in job.meta, and a worker process killed mid-import that leaves nothing behind.

The worker runs in its own transactions, so these tests commit their batches (through a client whose requests
commit) and delete what they created afterwards."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from rq import Queue, SimpleWorker
from rq.job import Job
from sqlalchemy import text

from geo_core import crypto
from geo_core.crs import gcj02_to_wgs84
from geo_core.tile_generations import generation_key
from jobs.customer_imports import import_customer_list
from jobs.queues import IMPORTS
from jobs.queues import settings as job_settings
from tests.api.test_customer_lists import B, builtin, id_number, person_rows, phone, preview, to_csv, upload
from tests.committing import committing_client

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def live(app, redis_conn, owner_engine):
    """(client, login) whose requests commit, the app on the test Redis; created rows are deleted afterwards."""
    with owner_engine.connect() as conn:
        first_batch = conn.scalar(text("SELECT coalesce(max(id), 0) FROM customer_import_batches"))
        first_customer = conn.scalar(text("SELECT coalesce(max(id), 0) FROM customers"))
    with committing_client(app, redis_conn) as (client, login):
        try:
            yield client, login
        finally:
            with owner_engine.begin() as conn:
                conn.execute(text("SELECT set_config('gm.audit_mode', 'summary', true)"))
                conn.execute(text("DELETE FROM customer_import_batches WHERE id > :b"), {"b": first_batch})
                conn.execute(text("DELETE FROM customers WHERE id > :c"), {"c": first_customer})


def customers_generation(redis_conn) -> int:  # noqa: ANN001
    return int(redis_conn.get(generation_key(job_settings().database_name, "customers")) or 0)


def run_worker(redis_conn) -> None:
    SimpleWorker([Queue(IMPORTS, connection=redis_conn)], connection=redis_conn).work(burst=True)


def submit(client, h, batch_id: int, **body) -> dict:
    r = client.post(f"{B}/{batch_id}/submit", json=body, headers=h)
    assert r.status_code == 202, r.get_json()
    return r.get_json()


def count_by_id_numbers(owner_engine, settings, numbers: list[str]) -> int:
    bidx = [crypto.blind_index(n, settings.blind_index_key, "id_number") for n in numbers]
    with owner_engine.connect() as conn:
        return conn.scalar(text("SELECT count(*) FROM customers WHERE id_number_bidx = ANY(:b)"), {"b": bidx})


def test_import_creates_and_matches_in_one_transaction(live, owner_engine, redis_conn, settings):
    client, login = live
    h = login("bl_430102")
    existing = client.post("/api/v1/customers", json={"kind": "person", "name": "老客户", "id_number": id_number(900)},
                           headers=h).get_json()
    rows = person_rows(50, start=900)
    batch = upload(client, h, to_csv(rows), builtin(client, h), name="作业测试").get_json()
    assert preview(client, h, batch["id"])["batch"]["matched_rows"] == 1
    job_id = submit(client, h, batch["id"])["job"]["id"]
    generation = customers_generation(redis_conn)
    run_worker(redis_conn)
    job = Job.fetch(job_id, connection=redis_conn)
    assert job.is_finished, job.latest_result()
    assert job.return_value()["created_rows"] == 49
    assert customers_generation(redis_conn) == generation + 1  # cached customer tiles retired after the commit
    # progress: done / total rows with the rate, via the batch and the generic job endpoint
    detail = client.get(f"{B}/{batch['id']}", headers=h).get_json()
    assert detail["status"] == "done" and (detail["created_rows"], detail["matched_rows"]) == (49, 1)
    assert detail["job"]["status"] == "finished"
    assert detail["job"]["progress"]["phase"] == "done"
    assert detail["job"]["progress"]["done"] == detail["job"]["progress"]["total"] == 50
    assert client.get(f"/api/v1/jobs/{job_id}", headers=h).get_json()["progress"] == {"done": 50, "total": 50,
                                                                                  "phase": "done"}
    assert client.get(f"/api/v1/jobs/{job_id}", headers=login("bl_430104")).status_code == 404
    assert client.get(f"{B}/{batch['id']}", headers=login("bl_430104")).status_code == 404
    # the saved list: masks only, the matched customer and the new ones
    page = client.get(f"{B}/{batch['id']}/rows?page_size=100", headers=h).get_json()
    assert page["total"] == 50 and page["items"][0]["customer_id"] == existing["id"] and page["items"][0]["matched"]
    assert page["items"][1]["id_number_mask"].startswith("439***") and "id_number" not in page["items"][1]
    assert client.get(f"{B}/{batch['id']}/rows?matched=true", headers=h).get_json()["total"] == 1
    me = client.get("/api/v1/me", headers=h).get_json()
    with owner_engine.connect() as conn:
        created = conn.execute(text(
            "SELECT c.owner_user_id, c.org_id, c.category::text, c.location_source::text, c.grid_id, "
            "to_jsonb(c)::text FROM customer_list_entries e JOIN customers c ON c.id = e.customer_id "
            "WHERE e.batch_id = :b AND NOT e.matched ORDER BY e.row_no LIMIT 1"), {"b": batch["id"]}).one()
        assert created[:4] == (me["id"], me["org"]["id"], "potential", "imported")
        assert created[4] is not None  # placed in its grid
        assert id_number(901) not in created[5] and phone(901) not in created[5]  # encrypted at rest
        audited = dict(conn.execute(text(
            "SELECT action, coalesce((detail->>'rows')::int, (detail->>'created')::int) FROM audit_log "
            "WHERE request_id = :j AND entity IN ('customers', 'customer_import_batches') "
            "AND action IN ('insert_bulk', 'import') AND actor_user_id = :u"), {"j": job_id, "u": me["id"]}).all())
        assert audited == {"insert_bulk": 49, "import": 49}  # by the importer, in the job's transaction
    # submitting again is refused; running the job again changes nothing
    assert client.post(f"{B}/{batch['id']}/submit", json={}, headers=h).status_code == 409
    Queue(IMPORTS, connection=redis_conn).enqueue(import_customer_list, batch["id"], meta={"user_id": me["id"]})
    run_worker(redis_conn)
    assert count_by_id_numbers(owner_engine, settings, [r[1] for r in rows]) == 50


def test_extra_attributes_owner_and_coordinate_system(live, owner_engine, redis_conn):
    client, login = live
    h = login("bl_430102")
    fields = [{"key": "name", "label": "商户", "maps_to": "name", "required": True},
              {"key": "owner", "label": "客户经理", "maps_to": "owner"},
              {"key": "lon", "label": "经度", "type": "decimal", "maps_to": "lon"},
              {"key": "lat", "label": "纬度", "type": "decimal", "maps_to": "lat"},
              {"key": "channel", "label": "渠道", "type": "enum", "dict_code": "channel"},
              {"key": "opened", "label": "开业日期", "type": "date"},
              {"key": "turnover", "label": "月流水", "type": "decimal"},
              {"key": "has_pos", "label": "有POS", "type": "boolean"}]
    r = client.post("/api/v1/customer-list-templates", headers=h, json={
        "name": "商圈名单", "customer_kind": "company", "profile_type": "merchant", "crs": "gcj02", "fields": fields})
    assert r.status_code == 201, r.get_json()
    header = [f["label"] for f in fields]
    rows = [["某某粉店", "am_430102_1_1", "112.985", "28.195", "手机银行", "2020/5/1", "86,000.5", "是"]]
    batch = upload(client, h, to_csv(rows, header), r.get_json()["id"]).get_json()
    submit(client, h, batch["id"])
    run_worker(redis_conn)
    entry = client.get(f"{B}/{batch['id']}/rows", headers=h).get_json()["items"][0]
    assert entry["extra"] == {"channel": "mobile_banking", "opened": "2020-05-01", "turnover": 86000.5,
                              "has_pos": True}
    with owner_engine.connect() as conn:
        got = conn.execute(text(
            "SELECT c.kind::text, c.profile_type::text, u.username, ST_X(c.geom), ST_Y(c.geom) FROM customers c "
            "JOIN users u ON u.id = c.owner_user_id WHERE c.id = :c"), {"c": entry["customer_id"]}).one()
    assert got[:3] == ("company", "merchant", "am_430102_1_1")
    lon, lat = gcj02_to_wgs84(112.985, 28.195)  # GCJ-02 in the file, WGS84 stored (~600 m apart here)
    assert abs(got[3] - lon) < 1e-9 and abs(got[4] - lat) < 1e-9 and abs(got[3] - 112.985) > 0.003


def test_skip_invalid_imports_the_valid_rows_and_reports_the_rest(live, owner_engine, redis_conn, settings):
    client, login = live
    h = login("bl_430102")
    rows = person_rows(6, start=1000)
    rows[1][1] = rows[1][1][:-1] + ("0" if rows[1][1][-1] != "0" else "1")  # bad checksum
    rows[3][2] = "12345"  # bad phone
    rows[4][1] = rows[0][1]  # duplicate ID number
    batch = upload(client, h, to_csv(rows), builtin(client, h)).get_json()
    r = client.post(f"{B}/{batch['id']}/submit", json={}, headers=h)
    assert r.status_code == 422 and r.get_json()["code"] == "IMPORT_HAS_ERRORS"
    submit(client, h, batch["id"], skip_invalid=True)
    run_worker(redis_conn)
    detail = client.get(f"{B}/{batch['id']}", headers=h).get_json()
    assert detail["status"] == "done" and (detail["created_rows"], detail["skipped_rows"]) == (3, 3)
    assert [s["row"] for s in detail["report"]["skipped"]] == [3, 5, 6]
    assert "phone" in detail["report"]["skipped"][1]["errors"]
    assert count_by_id_numbers(owner_engine, settings, [rows[i][1] for i in (0, 2, 5)]) == 3


def test_job_rejects_invalid_rows_without_skip_invalid(live, owner_engine, redis_conn, settings):
    client, login = live
    h = login("bl_430102")
    rows = person_rows(5, start=1100)
    batch = upload(client, h, to_csv(rows), builtin(client, h)).get_json()
    me = client.get("/api/v1/me", headers=h).get_json()
    # an identical customer archived by another branch after the preview makes row 3 invalid at import time
    preview(client, h, batch["id"])
    admin = login("admin")
    yuelu = client.get("/api/v1/orgs?q=BR430104", headers=admin).get_json()["items"][0]["id"]
    r = client.post("/api/v1/customers", json={"kind": "person", "name": "岳麓", "id_number": rows[1][1],
                                               "org_id": yuelu, "owner_user_id": None}, headers=admin)
    assert r.status_code == 201
    job = Queue(IMPORTS, connection=redis_conn).enqueue(import_customer_list, batch["id"], False,
                                                        meta={"user_id": me["id"]})
    run_worker(redis_conn)
    assert job.return_value()["status"] == "rejected"
    detail = client.get(f"{B}/{batch['id']}", headers=h).get_json()
    assert detail["status"] == "rejected" and detail["invalid_rows"] == 1 and "未写入" in detail["error"]
    assert count_by_id_numbers(owner_engine, settings, [rows[i][1] for i in (0, 2, 3, 4)]) == 0


def test_failure_rolls_back_and_marks_the_batch_failed(live, owner_engine, redis_conn, settings):
    client, login = live
    h = login("sbl_430102_2")
    rows = person_rows(5, start=1200)
    batch = upload(client, h, to_csv(rows), builtin(client, h)).get_json()
    job_id = submit(client, h, batch["id"])["job"]["id"]
    with owner_engine.begin() as conn:  # the importer is disabled before the job runs
        conn.execute(text("UPDATE users SET status = 'disabled' WHERE username = 'sbl_430102_2'"))
    generation = customers_generation(redis_conn)
    try:
        run_worker(redis_conn)
    finally:
        with owner_engine.begin() as conn:
            conn.execute(text("UPDATE users SET status = 'active' WHERE username = 'sbl_430102_2'"))
    assert Job.fetch(job_id, connection=redis_conn).is_failed
    assert customers_generation(redis_conn) == generation  # nothing committed, nothing retired
    detail = client.get(f"{B}/{batch['id']}", headers=h).get_json()
    assert detail["status"] == "failed" and "停用" in detail["error"]
    assert count_by_id_numbers(owner_engine, settings, [r[1] for r in rows]) == 0


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def test_killed_worker_leaves_nothing_and_the_batch_can_run_again(live, owner_engine, redis_conn, settings):
    client, login = live
    h = login("bl_430102")
    n = 30_000
    rows = person_rows(n, start=20_000)
    batch = upload(client, h, to_csv(rows), builtin(client, h), name="大名单").get_json()
    assert preview(client, h, batch["id"], page_size=1)["batch"]["valid_rows"] == n
    job_id = submit(client, h, batch["id"])["job"]["id"]
    job = Job.fetch(job_id, connection=redis_conn)
    worker = subprocess.Popen([str(ROOT / ".venv/bin/gridmarket"), "worker", "--burst"], cwd=ROOT, env=os.environ,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            meta = job.get_meta(refresh=True)
            if meta.get("phase") == "write" and meta.get("done", 0) > 0:
                break
            assert worker.poll() is None, "worker exited before the import got going"
            time.sleep(0.02)
        else:
            pytest.fail("no progress reported")
        assert meta["done"] < n and meta["total"] == n
        # SIGKILL the work horse running the import, then the worker itself: nobody cleans up
        for pid in _children(worker.pid):
            os.kill(pid, signal.SIGKILL)
        os.kill(worker.pid, signal.SIGKILL)
    finally:
        if worker.poll() is None:
            worker.kill()
        worker.wait(timeout=30)
    deadline, status = time.monotonic() + 30, None
    while time.monotonic() < deadline:  # PostgreSQL notices the dead connection and rolls the import back
        status = client.get(f"{B}/{batch['id']}", headers=h).get_json()
        if status["status"] == "failed":
            break
        time.sleep(0.2)
    assert status["status"] == "failed" and "未写入" in status["error"], status
    assert count_by_id_numbers(owner_engine, settings, [r[1] for r in rows]) == 0
    with owner_engine.connect() as conn:
        assert conn.scalar(text("SELECT count(*) FROM customer_list_entries WHERE batch_id = :b"),
                           {"b": batch["id"]}) == 0
    # the failed batch is submitted again and imported whole
    submit(client, h, batch["id"])
    run_worker(redis_conn)
    detail = client.get(f"{B}/{batch['id']}", headers=h).get_json()
    assert detail["status"] == "done" and detail["created_rows"] == n
    assert count_by_id_numbers(owner_engine, settings, [r[1] for r in rows]) == n
