"""Geocode runs on a real RQ worker: results by level written to customers (point, H3, source, grid), protected
points and grid overrides kept, list batches, row-level security from the attacker's side, online providers
through a local stub with learning of known addresses, progress, and a failed run resumed after its cursor.

The worker runs in its own transactions, so these tests commit (through a client whose requests commit) and delete
what they created afterwards."""

from __future__ import annotations

import pytest
from rq import Queue, SimpleWorker
from rq.job import Job
from sqlalchemy import text

from geo_core.geocoding import providers, runs
from jobs.geocoding import geocode_run
from jobs.queues import IMPORTS
from tests.adapters.geocode_stub import BAIDU, KEYS, geocode_stub
from tests.api.test_customer_lists import builtin, person_rows, preview, to_csv, upload
from tests.committing import committing_client

G = "/api/v1/geocode"
C = "/api/v1/customers"
TABLES = ("geocode_runs", "known_addresses", "customer_import_batches", "customers", "pois")


@pytest.fixture()
def live(app, redis_conn, owner_engine, monkeypatch):
    """(client, login) whose requests commit, the app on the test Redis; created rows are deleted afterwards."""
    for var in ("GM_GEOCODER_BAIDU_KEY", "GM_GEOCODER_GAODE_KEY", "GM_GEOCODER_TIANDITU_KEY", "GM_BAIDU_AK",
                "GM_GAODE_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    providers.reset_rate_limiters()
    with owner_engine.connect() as conn:
        first = {t: conn.scalar(text(f"SELECT coalesce(max(id), 0) FROM {t}")) for t in TABLES}
    with committing_client(app, redis_conn) as (client, login):
        try:
            yield client, login
        finally:
            with owner_engine.begin() as conn:
                conn.execute(text("SELECT set_config('gm.audit_mode', 'summary', true)"))
                for table in TABLES:
                    conn.execute(text(f"DELETE FROM {table} WHERE id > :b"), {"b": first[table]})


def run_worker(redis_conn) -> None:
    SimpleWorker([Queue(IMPORTS, connection=redis_conn)], connection=redis_conn).work(burst=True)


def customer(client, h, name: str, address: str | None, **extra) -> dict:
    r = client.post(C, json={"kind": "person", "name": name, "address": address, **extra}, headers=h)
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def start(client, h, **body) -> dict:
    r = client.post(G + "/runs", json=body, headers=h)
    assert r.status_code == 202, r.get_json()
    return r.get_json()


def get(client, h, path: str) -> dict:
    r = client.get(path, headers=h)
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def grid_of(owner_engine, division_code: str) -> int:
    with owner_engine.connect() as conn:
        return conn.scalar(text("SELECT id FROM grids WHERE division_code = :c"), {"c": division_code})


def test_run_by_ids_writes_points_by_level(live, owner_engine, redis_conn):
    client, login = live
    h = login("bl_430102")
    with owner_engine.begin() as conn:
        conn.execute(text("INSERT INTO pois (name, category, address, source, source_ref, geom, h3_r10) VALUES "
                          "('华天大酒店', 'hotel', NULL, 'test', 'geo-job-1', "
                          " ST_SetSRID(ST_MakePoint(112.9990, 28.1965), 4326), 0)"))
    a = customer(client, h, "社区客户", "长沙市芙蓉区识字里社区5栋")
    b = customer(client, h, "酒店客户", "芙蓉区五一大道389号华天大酒店")
    c = customer(client, h, "街道客户", "长沙市天心区坡子街街道太平街22号")
    d = customer(client, h, "无地址", None)
    e = customer(client, h, "乱写", "随便写的一些字")
    f = customer(client, h, "已纠偏", "长沙市芙蓉区识字里社区9栋", lon=112.98, lat=28.19)
    moved = client.post(f"{C}/{f['id']}/location", json={"lon": 112.9801, "lat": 28.1901}, headers=h).get_json()
    assert moved["location_source"] == "corrected"
    g = customer(client, h, "人工网格", "长沙市芙蓉区识字里社区5栋")
    override = grid_of(owner_engine, "430102001002")  # 文艺新村社区
    assert client.post(f"{C}/{g['id']}/grid", json={"grid_id": override, "reason": "客户要求"},
                       headers=h).status_code == 200
    ids = [x["id"] for x in (a, b, c, d, e, f, g)]
    run = start(client, h, customer_ids=ids)
    run_worker(redis_conn)
    job = Job.fetch(run["job"]["id"], connection=redis_conn)
    assert job.is_finished, job.latest_result()
    detail = get(client, h, f"{G}/runs/{run['id']}")
    assert detail["status"] == "done" and detail["total"] == detail["done"] == 6  # the corrected point is not a target
    assert detail["counts"] == {"community": 2, "poi": 1, "street": 1, "none": 1, "skipped_no_address": 1,
                                "applied": 3, "too_coarse": 1}
    assert detail["job"]["progress"]["phase"] == "done" and detail["job"]["progress"]["done"] == 6
    # per customer, least confident first, for review on the map
    found = get(client, h, f"{G}/runs/{run['id']}/results")
    assert found["total"] == 5 and [i["level"] for i in found["items"]] == ["none", "street", "community",
                                                                             "community", "poi"]
    assert [i["applied"] for i in found["items"]] == [False, False, True, True, True]
    assert found["items"][4] == {"customer_id": b["id"], "name": "酒店客户", "address": "芙蓉区五一大道389号华天大酒店",
                                 "level": "poi", "confidence": 0.85, "provider": "gazetteer", "applied": True,
                                 "matched": "华天大酒店"}
    assert get(client, h, f"{G}/runs/{run['id']}/results?applied=false&max_confidence=0.4")["total"] == 2
    assert client.get(f"{G}/runs/{run['id']}/results", headers=login("bl_430104")).status_code == 404
    got = {x["id"]: get(client, h, f"{C}/{x['id']}") for x in (a, b, c, d, e, f, g)}
    community = grid_of(owner_engine, "430102001001")
    assert got[a["id"]]["location_source"] == "geocoded" and got[a["id"]]["grid_id"] == community
    assert (got[b["id"]]["lon"], got[b["id"]]["lat"]) == (112.999, 28.1965)
    for skipped in (c, d, e):  # street-level is too coarse to place; nothing / no address
        assert got[skipped["id"]]["lon"] is None and got[skipped["id"]]["location_source"] is None
    assert (got[f["id"]]["lon"], got[f["id"]]["location_source"]) == (112.9801, "corrected")
    assert got[g["id"]]["grid_id"] == override and got[g["id"]]["lon"] is not None  # override kept
    with owner_engine.connect() as conn:
        h3 = conn.scalar(text("SELECT h3_r10 FROM customers WHERE id = :i"), {"i": a["id"]})
        audited = conn.scalar(text("SELECT count(*) FROM audit_log WHERE entity = 'customers' AND action = 'update' "
                                   "AND request_id = :j"), {"j": job.id})
    assert h3 is not None and audited == 3
    # the same job again changes nothing; force includes the corrected point
    Queue(IMPORTS, connection=redis_conn).enqueue(geocode_run, run["id"])
    run_worker(redis_conn)
    assert get(client, h, f"{G}/runs/{run['id']}")["done"] == 6
    forced = start(client, h, customer_ids=[f["id"]], force=True)
    run_worker(redis_conn)
    # its own confirmed point was learnt as the known address of "识字里社区9栋": found again, now 'geocoded'
    assert get(client, h, f"{G}/runs/{forced['id']}")["counts"] == {"exact_address": 1, "applied": 1}
    assert get(client, h, f"{C}/{f['id']}")["location_source"] == "geocoded"


def test_geocode_a_list_batch(live, redis_conn):
    client, login = live
    h = login("bl_430102")
    rows = person_rows(4, start=7100)
    rows[0][3], rows[1][3] = "长沙市芙蓉区文艺路街道识字里社区", "芙蓉区韭菜园社区2栋"
    for row in rows[:2]:
        row[4] = row[5] = ""  # no coordinates: to be geocoded
    batch = upload(client, h, to_csv(rows), builtin(client, h), name="待解析名单").get_json()
    preview(client, h, batch["id"])
    assert client.post(f"/api/v1/customer-imports/{batch['id']}/submit", json={}, headers=h).status_code == 202
    run_worker(redis_conn)
    run = start(client, h, batch_id=batch["id"])
    assert run["target"] == "batch" and run["batch_id"] == batch["id"]
    run_worker(redis_conn)
    detail = get(client, h, f"{G}/runs/{run['id']}")
    assert detail["status"] == "done" and detail["total"] == 2  # only those lacking a point
    assert detail["counts"]["community"] == 2 and detail["counts"]["applied"] == 2
    entries = get(client, h, f"/api/v1/customer-imports/{batch['id']}/rows?page_size=10")["items"]
    placed = [get(client, h, f"{C}/{e['customer_id']}") for e in entries]
    assert all(p["lon"] is not None for p in placed)
    assert [p["location_source"] for p in placed] == ["geocoded", "geocoded", "imported", "imported"]
    assert client.post(G + "/runs", json={"batch_id": batch["id"]}, headers=login("bl_430104")).status_code == 404


def test_runs_never_touch_customers_outside_the_requesters_scope(live, owner_engine, redis_conn):
    client, login = live
    leader = login("bl_430102")
    branch_customer = customer(client, leader, "支行客户", "长沙市芙蓉区识字里社区5栋")
    managed = customer(client, login("am_430102_1_1"), "客户经理的客户", "长沙市芙蓉区识字里社区6栋")
    # a sub-branch leader's "missing" run covers his subtree only
    run = start(client, login("sbl_430102_1"), missing=True)
    run_worker(redis_conn)
    assert get(client, leader, f"{C}/{managed['id']}")["lon"] is not None
    assert get(client, leader, f"{C}/{branch_customer['id']}")["lon"] is None
    assert get(client, leader, f"{G}/runs/{run['id']}")["total"] == 1
    # the attacker: another branch's leader with a run naming 芙蓉's customers (the API refuses it, so we plant
    # the run row directly): his job sees none of them
    assert client.post(G + "/runs", json={"customer_ids": [branch_customer["id"]]},
                       headers=login("bl_430104")).status_code == 422
    with owner_engine.begin() as conn:
        attacker = conn.execute(text("SELECT id, org_id FROM users WHERE username = 'bl_430104'")).one()
        planted = conn.scalar(text(
            "INSERT INTO geocode_runs (target, params, requested_by, org_id) VALUES ('ids', CAST(:p AS jsonb), :u, :o) "
            "RETURNING id"), {"p": f'{{"customer_ids": [{branch_customer["id"]}], "force": true}}',
                              "u": attacker[0], "o": attacker[1]})
    Queue(IMPORTS, connection=redis_conn).enqueue(geocode_run, planted)
    run_worker(redis_conn)
    assert get(client, leader, f"{C}/{branch_customer['id']}")["lon"] is None
    with owner_engine.connect() as conn:
        assert conn.execute(text("SELECT status, total, done FROM geocode_runs WHERE id = :i"),
                            {"i": planted}).one() == ("done", 0, 0)
    assert client.get(f"{G}/runs/{planted}", headers=leader).status_code == 404


def test_online_provider_and_learnt_known_addresses(live, owner_engine, redis_conn, monkeypatch):
    client, login = live
    h = login("bl_430102")
    with geocode_stub() as stub:
        monkeypatch.setenv("GM_GEOCODER_CHAIN", "gazetteer,baidu")
        monkeypatch.setenv("GM_GEOCODER_BAIDU_KEY", KEYS[BAIDU])
        monkeypatch.setenv("GM_GEOCODER_BAIDU_URL", stub.url + BAIDU)
        first = customer(client, h, "门址客户", "芙蓉区五一大道1号")
        start(client, h, customer_ids=[first["id"]])
        run_worker(redis_conn)
        placed = get(client, h, f"{C}/{first['id']}")
        assert placed["location_source"] == "geocoded" and abs(placed["lon"] - stub.point[0]) < 1e-5
        assert stub.count(BAIDU) == 1
        with owner_engine.connect() as conn:
            known = conn.execute(text("SELECT address_key, source, provider, level FROM known_addresses "
                                      "WHERE address_key = 'R|430102|五一大道|1||'")).one()
        assert known[1:] == ("geocoded", "baidu", "exact_address")
        # the same door written differently: answered offline from the learnt address, no request
        second = customer(client, h, "同门址", "湖南省长沙市芙蓉区五一大道１号")
        run = start(client, h, customer_ids=[second["id"]])
        run_worker(redis_conn)
        assert stub.count(BAIDU) == 1 and get(client, h, f"{G}/runs/{run['id']}")["counts"]["exact_address"] == 1
        # a confirmed point (纠偏) becomes a known address for the next customers at that door
        confirmed = customer(client, h, "纠偏客户", "芙蓉区识字里社区3组7号")
        client.post(f"{C}/{confirmed['id']}/location", json={"lon": 112.9877, "lat": 28.1866}, headers=h)
        third = customer(client, h, "同一户", "长沙市芙蓉区识字里社区三组7号")
        start(client, h, customer_ids=[third["id"]])
        run_worker(redis_conn)
        assert (get(client, h, f"{C}/{third['id']}")["lon"], stub.count(BAIDU)) == (112.9877, 1)
        # an invalid key stops the provider for the run; the run still finishes offline
        monkeypatch.setenv("GM_GEOCODER_BAIDU_KEY", "wrong-key")
        fourth = customer(client, h, "区级", "芙蓉区五一大道2号")
        fifth = customer(client, h, "区级2", "芙蓉区五一大道3号")
        run = start(client, h, customer_ids=[fourth["id"], fifth["id"]])
        run_worker(redis_conn)
        detail = get(client, h, f"{G}/runs/{run['id']}")
        assert detail["status"] == "done" and "baidu" in detail["error"] and stub.count(BAIDU) == 2
        assert detail["counts"] == {"district": 2, "too_coarse": 2}


def test_failed_run_resumes_after_its_cursor(live, redis_conn, monkeypatch):
    client, login = live
    h = login("bl_430102")
    made = [customer(client, h, f"续跑{i}", f"长沙市芙蓉区识字里社区{i + 1}栋") for i in range(5)]
    monkeypatch.setattr(runs, "CHUNK", 2)
    original, calls = runs.geocode_chunk, []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("worker lost the database")
        return original(*args, **kwargs)

    monkeypatch.setattr(runs, "geocode_chunk", flaky)
    run = start(client, h, customer_ids=[c["id"] for c in made])
    run_worker(redis_conn)
    failed = get(client, h, f"{G}/runs/{run['id']}")
    assert failed["status"] == "failed" and failed["done"] == 2 and "可继续" in failed["error"]
    assert [get(client, h, f"{C}/{c['id']}")["lon"] is not None for c in made] == [True, True, False, False, False]
    Job.fetch(failed["job"]["id"], connection=redis_conn).cancel()  # drop the automatic retry: resume by hand
    r = client.post(f"{G}/runs/{run['id']}/resume", headers=h)
    assert r.status_code == 202, r.get_json()
    run_worker(redis_conn)
    done = get(client, h, f"{G}/runs/{run['id']}")
    assert done["status"] == "done" and done["done"] == done["total"] == 5
    assert done["counts"] == {"community": 5, "applied": 5}  # nothing geocoded twice
    assert all(get(client, h, f"{C}/{c['id']}")["lon"] is not None for c in made)
    assert client.post(f"{G}/runs/{run['id']}/resume", headers=h).status_code == 409
