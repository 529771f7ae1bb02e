"""Duplicate detection, merge with exact undo, generic reference moves, scope attacks, ownership history."""

from __future__ import annotations

import pytest
from rq import Queue, SimpleWorker
from sqlalchemy import text

from geo_core.customers.identifiers import id_check_char, uscc_check_char
from geo_core.db import SYSTEM, set_context
from jobs.queues import DEFAULT
from tests.conftest import DEMO_PASSWORD

C = "/api/v1/customers"
D = "/api/v1/customer-duplicates"
M = "/api/v1/customer-merges"
LON, LAT = 112.9912, 28.1913  # 芙蓉区
M20 = 0.00018  # about 20 m of latitude


def _id_number(seq: int) -> str:
    first17 = f"43010219790611{seq:03d}"
    return first17 + id_check_char(first17)


def _uscc(seq: int) -> str:
    first17 = f"91430102MA4L{seq:04d}X"
    return first17 + uscc_check_char(first17)


def _new(client, h, name, *, kind="person", dlat=0.0, lon=LON, **extra):
    body = {"kind": kind, "name": name, "lon": lon, "lat": LAT + dlat, **extra}
    r = client.post(C, json=body, headers=h)
    assert r.status_code == 201, r.get_json()
    return r.get_json()["id"]


def _pairs(client, h, status="open"):
    items = client.get(f"{D}?status={status}&page_size=500", headers=h).get_json()["items"]
    return {frozenset((i["customer_a"]["id"], i["customer_b"]["id"])): i for i in items}


@pytest.fixture()
def extra_ref_table(owner_engine, settings):
    """A table 'added by a later migration' referencing customers, with a unique key including customer_id."""
    with owner_engine.begin() as conn:
        conn.execute(text("""CREATE TABLE test_customer_labels (id serial PRIMARY KEY,
            customer_id integer NOT NULL REFERENCES customers(id) ON DELETE CASCADE, label text NOT NULL,
            UNIQUE (customer_id, label))"""))
        role = settings.app_db_role
        conn.execute(text(f"GRANT SELECT, INSERT, UPDATE, DELETE ON test_customer_labels TO {role}"))
        conn.execute(text(f"GRANT USAGE ON SEQUENCE test_customer_labels_id_seq TO {role}"))
    yield "test_customer_labels"  # requested before `client`: dropped after the test's transaction ended
    with owner_engine.begin() as conn:
        conn.execute(text("SET LOCAL lock_timeout = '20s'"))
        conn.execute(text("DROP TABLE test_customer_labels"))


def test_detection_true_and_false_positives(client, login):
    h = login("bl_430102")
    zhang = _new(client, h, "张伟")
    homophone = _new(client, h, "章伟", dlat=M20)  # 20 m away: same fuzzy pinyin
    other_name = _new(client, h, "李伟", dlat=M20 / 2)  # near, different name
    far = _new(client, h, "张伟", dlat=10 * M20)  # same name, 200 m away, no address
    id_a = _new(client, h, "张伟", dlat=-M20 / 4, id_number=_id_number(1))
    id_b = _new(client, h, "张伟", dlat=-M20 / 2, id_number=_id_number(2))  # another person: other ID number
    # same address (different spellings), no location
    wang = _new(client, h, "王芳", lon=113.3, address="芙蓉区银杏小区3栋2单元501室")
    wang2 = _new(client, h, "汪芳", lon=113.4, address="长沙市银杏小区3-2-501")
    wang3 = _new(client, h, "王芳", lon=113.5, address="银杏小区3-2-502")  # next door: not the same address
    phone_a = _new(client, h, "赵六", lon=113.6, phone="13900001111")
    phone_b = _new(client, h, "钱七", lon=113.7, phone="139 0000 1111")
    firm = _new(client, h, "湖南兴旺农业科技有限公司", kind="company", lon=113.8, uscc=_uscc(1))
    firm2 = _new(client, h, "兴旺农业科技有限责任公司（长沙）", kind="company", lon=113.8, dlat=M20 / 2)
    person_named_like_firm = _new(client, h, "兴旺农业科技", lon=113.8, dlat=M20 / 4)

    r = client.post(f"{D}/detect", json={"customer_id": zhang}, headers=h)
    assert r.status_code == 200 and r.get_json()["count"] >= 2
    r = client.post(f"{D}/detect", json={}, headers=h)  # the whole scope, set-based
    assert r.status_code == 200, r.get_json()
    pairs = _pairs(client, h)
    pair = pairs[frozenset((zhang, homophone))]
    assert "same_pinyin" in pair["reasons"] and "within_50m" in pair["reasons"]
    assert 15 < pair["distance_m"] < 25 and 0.6 < pair["score"] < 1
    assert frozenset((zhang, id_a)) in pairs  # one ID number unknown: may be the same person
    assert "same_address" in pairs[frozenset((wang, wang2))]["reasons"]
    assert pairs[frozenset((phone_a, phone_b))]["reasons"] == ["same_phone"]
    assert "within_50m" in pairs[frozenset((firm, firm2))]["reasons"]
    for a, b in ((zhang, other_name), (zhang, far), (id_a, id_b), (wang, wang3), (wang2, wang3),
                 (firm, person_named_like_firm), (firm2, person_named_like_firm)):
        assert frozenset((a, b)) not in pairs, (a, b)

    detail = client.get(f"{D}/{pair['id']}", headers=h).get_json()
    by_field = {f["field"]: f for f in detail["fields"]}
    assert by_field["name"]["a"] in ("张伟", "章伟") and by_field["name"]["same"] is False
    assert by_field["kind"]["same"] is True and by_field["id_number"]["a"] is None
    phone_pair = client.get(f"{D}/{pairs[frozenset((phone_a, phone_b))]['id']}", headers=h).get_json()
    phone = {f["field"]: f for f in phone_pair["fields"]}["phone"]
    assert phone == {"field": "phone", "a": "139****1111", "b": "139****1111", "same": True}

    # dismissed pairs stay dismissed when detection runs again
    r = client.post(f"{D}/{pairs[frozenset((phone_a, phone_b))]['id']}/dismiss", json={"note": "夫妻共用手机"},
                    headers=h)
    assert r.status_code == 200 and r.get_json()["status"] == "dismissed"
    client.post(f"{D}/detect", json={"customer_id": phone_a}, headers=h)
    assert frozenset((phone_a, phone_b)) not in _pairs(client, h)
    assert frozenset((phone_a, phone_b)) in _pairs(client, h, "dismissed")
    assert client.post(f"{D}/{pair['id']}/dismiss", json={"note": ""}, headers=h).status_code == 422


def test_merge_and_undo_restore_rows_and_references_exactly(extra_ref_table, client, login, db_session):
    h = login("bl_430102")
    am = client.get("/api/v1/users?q=am_430102_1_1", headers=h).get_json()["items"][0]
    survivor = _new(client, h, "张伟", phone="13811112222", address="五一大道100号")
    merged = _new(client, h, "章伟", dlat=M20, id_number=_id_number(3), phone="13833334444",
                  owner_user_id=am["id"], category="formal")
    set_context(db_session, SYSTEM)
    batch = db_session.scalar(text("""
        INSERT INTO customer_import_batches (name, template_id, template_snapshot, importer_user_id, org_id, filename,
                                             file_size, file_sha256, status)
        SELECT '测试名单', t.id, '{}'::jsonb, :u, :o, 'a.csv', 1, repeat('0', 64), 'done'
        FROM customer_list_templates t WHERE t.code = 'person_list' RETURNING id"""),
        {"u": am["id"], "o": am["org_id"]})
    for row_no, cid in ((1, merged), (2, merged), (3, survivor)):
        db_session.execute(text("INSERT INTO customer_list_entries (batch_id, row_no, customer_id, matched) "
                                "VALUES (:b, :r, :c, true)"), {"b": batch, "r": row_no, "c": cid})
    for cid, label in ((survivor, "vip"), (merged, "vip"), (merged, "farmer")):
        db_session.execute(text(f"INSERT INTO {extra_ref_table} (customer_id, label) VALUES (:c, :l)"),
                           {"c": cid, "l": label})
    db_session.commit()

    def snapshot():
        set_context(db_session, SYSTEM)
        rows = db_session.scalars(text("SELECT c::text FROM customers c WHERE id IN (:s, :m) ORDER BY id"),
                                  {"s": survivor, "m": merged}).all()
        entries = db_session.scalars(text("SELECT e::text FROM customer_list_entries e WHERE batch_id = :b "
                                          "ORDER BY row_no"), {"b": batch}).all()
        labels = db_session.scalars(text(f"SELECT t::text FROM {extra_ref_table} t ORDER BY id")).all()
        return rows, entries, labels

    before = snapshot()
    r = client.post(M, json={"survivor_id": survivor, "merged_id": merged, "reason": "同一客户重复建档",
                             "choices": {"id_number": "merged", "phone": "merged", "owner": "merged",
                                         "category": "merged"}}, headers=h)
    assert r.status_code == 201, r.get_json()
    record = r.get_json()
    refs = {x["table"]: x for x in record["references"]}
    assert refs["customer_list_entries"]["moved"] == 2 and refs["customer_list_entries"]["deleted"] == 0
    assert refs[extra_ref_table]["moved"] == 1 and refs[extra_ref_table]["deleted"] == 1  # survivor had 'vip'
    s = client.get(f"{C}/{survivor}", headers=h).get_json()
    m = client.get(f"{C}/{merged}", headers=h).get_json()
    assert s["id_number_mask"] is not None and s["phone_mask"] == "138****4444" and s["name"] == "张伟"
    assert s["owner_user_id"] == am["id"] and s["category"] == "formal" and s["birth_date"] == "1979-06-11"
    assert m["status"] == "merged" and m["id_number_mask"] is None
    assert client.patch(f"{C}/{merged}", json={"name": "改名"}, headers=h).get_json()["code"] == "CUSTOMER_MERGED"
    listed = client.get(f"{C}?q=伟&page_size=500", headers=h).get_json()["items"]
    assert survivor in {c["id"] for c in listed} and merged not in {c["id"] for c in listed}
    set_context(db_session, SYSTEM)
    assert db_session.scalar(text("SELECT merged_into FROM customers WHERE id = :m"), {"m": merged}) == survivor
    assert set(db_session.scalars(text("SELECT DISTINCT customer_id FROM customer_list_entries WHERE batch_id = :b"),
                                  {"b": batch})) == {survivor}
    assert sorted(db_session.scalars(text(f"SELECT label FROM {extra_ref_table} WHERE customer_id = :s"),
                                     {"s": survivor})) == ["farmer", "vip"]
    audited = db_session.scalar(text("SELECT count(*) FROM audit_log WHERE entity = 'customer_merges' "
                                     "AND entity_id = :i AND action = 'insert'"), {"i": str(record["id"])})
    assert audited == 1
    assert client.post(M, json={"survivor_id": survivor, "merged_id": merged}, headers=h).status_code == 409

    r = client.post(f"{M}/{record['id']}/undo", headers=h)
    assert r.status_code == 200 and r.get_json()["status"] == "undone", r.get_json()
    assert snapshot() == before  # byte-identical rows, list entries and the re-inserted label
    assert client.post(f"{M}/{record['id']}/undo", headers=h).get_json()["code"] == "MERGE_ALREADY_UNDONE"
    history = client.get(f"{C}/{survivor}/ownerships", headers=h).get_json()
    assert [o["source"] for o in history[:2]] == ["merge_undo", "merge"]


def test_undo_refused_after_later_changes(client, login, db_session):
    h = login("bl_430102")
    survivor = _new(client, h, "刘洋")
    merged = _new(client, h, "柳阳", dlat=M20)
    merge_id = client.post(M, json={"survivor_id": survivor, "merged_id": merged}, headers=h).get_json()["id"]
    assert client.patch(f"{C}/{survivor}", json={"name": "刘洋（已核实）"}, headers=h).status_code == 200
    r = client.post(f"{M}/{merge_id}/undo", headers=h)
    assert r.status_code == 409 and r.get_json()["code"] == "MERGE_UNDO_CONFLICT"
    conflict = r.get_json()["detail"]["conflicts"][0]
    assert conflict["customer_id"] == survivor and "name" in conflict["changed"]
    set_context(db_session, SYSTEM)
    assert db_session.scalar(text("SELECT status::text FROM customers WHERE id = :m"), {"m": merged}) == "merged"
    assert client.get(f"{M}/{merge_id}", headers=h).get_json()["status"] == "done"


def test_merge_via_candidate_settles_it_and_undo_reopens(client, login):
    h = login("bl_430102")
    a = _new(client, h, "王芳", lon=113.1)
    b = _new(client, h, "汪芳", lon=113.1, dlat=M20)
    client.post(f"{D}/detect", json={"customer_id": a}, headers=h)
    cand = _pairs(client, h)[frozenset((a, b))]
    r = client.post(M, json={"survivor_id": b, "merged_id": a, "candidate_id": cand["id"]}, headers=h)
    assert r.status_code == 201
    assert _pairs(client, h, "merged")[frozenset((a, b))]["merge_id"] == r.get_json()["id"]
    assert client.post(f"{M}/{r.get_json()['id']}/undo", headers=h).status_code == 200
    assert frozenset((a, b)) in _pairs(client, h)


def test_scope_attacks(client, login, db_session):
    victim_h = login("bl_430102")
    a = _new(client, victim_h, "张伟", lon=113.2)
    b = _new(client, victim_h, "章伟", lon=113.2, dlat=M20)
    client.post(f"{D}/detect", json={"customer_id": a}, headers=victim_h)
    cand = _pairs(client, victim_h)[frozenset((a, b))]
    set_context(db_session, SYSTEM)
    rows = "SELECT string_agg(c::text, '|' ORDER BY id) FROM customers c WHERE id IN (:a, :b)"
    before = db_session.scalar(text(rows), {"a": a, "b": b})

    attacker = login("bl_430104")  # 岳麓 branch leader, holds customer:merge
    assert client.post(M, json={"survivor_id": a, "merged_id": b}, headers=attacker).status_code == 404
    mine = _new(client, attacker, "张伟", lon=112.95)
    assert client.post(M, json={"survivor_id": mine, "merged_id": a}, headers=attacker).status_code == 404
    assert client.post(M, json={"survivor_id": a, "merged_id": mine}, headers=attacker).status_code == 404
    assert client.get(f"{D}/{cand['id']}", headers=attacker).status_code == 404
    assert client.post(f"{D}/{cand['id']}/dismiss", json={"note": "不是重复"}, headers=attacker).status_code == 404
    assert frozenset((a, b)) not in _pairs(client, attacker)
    assert client.post(f"{D}/detect", json={"customer_id": a}, headers=attacker).status_code == 404
    assert client.get(f"{C}/{a}/ownerships", headers=attacker).status_code == 404
    set_context(db_session, SYSTEM)
    assert db_session.scalar(text(rows), {"a": a, "b": b}) == before

    merge_id = client.post(M, json={"survivor_id": a, "merged_id": b}, headers=victim_h).get_json()["id"]
    assert client.get(f"{M}/{merge_id}", headers=attacker).status_code == 404
    assert client.post(f"{M}/{merge_id}/undo", headers=attacker).status_code == 404
    # a sub-branch leader sees the pair's branch but may not merge (no customer:merge)
    sub = login("sbl_430102_1")
    assert client.post(M, json={"survivor_id": a, "merged_id": b}, headers=sub).status_code == 403
    assert client.post(M, json={"survivor_id": a, "merged_id": a}, headers=victim_h).status_code == 422
    r = client.post(M, json={"survivor_id": a, "merged_id": mine, "choices": {"nope": "x"}}, headers=victim_h)
    assert r.status_code == 422


def test_ownership_history_after_batch_assign(client, login):
    h = login("bl_430102")
    me = client.get("/api/v1/me", headers=h).get_json()
    am = client.get("/api/v1/users?q=am_430102_2_1", headers=h).get_json()["items"][0]
    cid = _new(client, h, "孙八")
    r = client.post(f"{C}/batch-assign", json={"customer_ids": [cid], "owner_user_id": am["id"],
                                               "reason": "网格调整，改由二组管户"}, headers=h)
    assert r.status_code == 200
    history = client.get(f"{C}/{cid}/ownerships", headers=h).get_json()
    assert len(history) == 2
    current, first = history
    assert current["owner_user_id"] == am["id"] and current["valid_to"] is None
    assert current["source"] == "batch_assign" and current["reason"] == "网格调整，改由二组管户"
    assert current["changed_by"] == me["id"] and current["owner_name"] == am["name"]
    assert first["source"] == "create" and first["valid_to"] is not None and first["reason"] is None
    # a plain edit records the change without a reason; the setting does not leak past batch_assign
    assert client.patch(f"{C}/{cid}", json={"owner_user_id": me["id"]}, headers=h).status_code == 200
    latest = client.get(f"{C}/{cid}/ownerships", headers=h).get_json()[0]
    assert latest["source"] == "edit" and latest["reason"] is None and latest["owner_user_id"] == me["id"]
    assert client.get(f"{C}/999999999/ownerships", headers=h).status_code == 404


def test_spatial_pairs_use_the_gist_index_under_rls(db_session):
    from geo_core.customers.dedup import Scope, _evidence_sql
    from geo_core.scope import DataScope, scope_context

    set_context(db_session, SYSTEM)
    uid, org_id, path = db_session.execute(text("SELECT u.id, u.org_id, o.path::text FROM users u "
                                                "JOIN orgs o ON o.id = u.org_id WHERE username = 'bl_430102'")).one()
    set_context(db_session, scope_context(uid, org_id, path, DataScope.org_subtree))
    db_session.execute(text("SET LOCAL enable_seqscan = off"))  # the small test table: is the index usable at all?
    for scope in (Scope.of(), Scope.of(customer_id=1)):
        plan = "\n".join(db_session.scalars(text("EXPLAIN " + _evidence_sql(scope)), {**scope.params, "radius": 50}))
        assert "Index Scan using ix_customers_geom on customers b" in plan, plan


@pytest.fixture()
def committing(app, redis_conn, owner_engine):
    """A client whose requests commit (the RQ worker runs its own transactions); created customers are deleted."""
    state = app.extensions["gridmarket"]
    original, state.redis = state.redis, redis_conn
    with owner_engine.connect() as conn:
        first = conn.scalar(text("SELECT coalesce(max(id), 0) FROM customers"))
    try:
        yield app.test_client()
    finally:
        state.redis = original
        with owner_engine.begin() as conn:
            conn.execute(text("SELECT set_config('gm.audit_mode', 'summary', true)"))
            conn.execute(text("DELETE FROM customers WHERE id > :c"), {"c": first})


def test_scan_job_runs_on_a_real_worker_with_the_callers_scope(committing, redis_conn):
    client = committing

    def login(username):
        r = client.post("/api/v1/auth/login", json={"username": username, "password": DEMO_PASSWORD})
        return {"Authorization": f"Bearer {r.get_json()['access_token']}"}

    h, other = login("bl_430102"), login("bl_430104")
    org_id = client.get("/api/v1/me", headers=h).get_json()["org"]["id"]
    a = _new(client, h, "张伟", lon=113.25)
    b = _new(client, h, "章伟", lon=113.25, dlat=M20)
    assert client.post(f"{D}/scans", json={"org_id": org_id}, headers=other).status_code == 404  # not his org
    assert client.post(f"{D}/scans", json={}, headers=h).status_code == 422
    r = client.post(f"{D}/scans", json={"org_id": org_id}, headers=h)
    assert r.status_code == 202 and r.get_json()["status"] == "queued", r.get_json()
    job_id = r.get_json()["id"]
    assert client.get(f"{D}/scans/{job_id}", headers=other).status_code == 404
    SimpleWorker([Queue(DEFAULT, connection=redis_conn)], connection=redis_conn).work(burst=True)
    done = client.get(f"{D}/scans/{job_id}", headers=h).get_json()
    assert done["status"] == "finished" and done["candidates"] >= 1, done
    pair = _pairs(client, h)[frozenset((a, b))]
    assert "same_pinyin" in pair["reasons"]
    assert frozenset((a, b)) not in _pairs(client, other)
    assert client.get(f"{D}/scans/not-a-job", headers=h).status_code == 404
