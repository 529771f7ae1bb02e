"""Coverage indicators (入格率/建档率/授信率/用信率/not visited) per grid / org / manager inside the caller's
scope, checked against direct SQL; daily snapshots written by the RQ job on a real worker, read as series."""

from __future__ import annotations

from datetime import timedelta

import pytest
from rq import Queue, SimpleWorker
from rq.job import Job
from sqlalchemy import text

from geo_core.coverage.snapshots import bank_today
from jobs.queues import DEFAULT
from tests.api.test_customer_profiles import scope_of, sql

C = "/api/v1/coverage"

COUNTS_SQL = """
SELECT count(*) AS customers, count(c.grid_id) AS placed, count(c.profile_type) AS profileable,
       count(*) FILTER (WHERE c.profile_type IS NOT NULL AND p.customer_id IS NOT NULL) AS profiled,
       count(*) FILTER (WHERE c.category = 'formal') AS formal,
       count(*) FILTER (WHERE c.category = 'formal' AND c.credit_limit > 0) AS credited,
       count(*) FILTER (WHERE c.credit_limit > 0) AS with_credit_line,
       count(*) FILTER (WHERE c.credit_limit > 0 AND c.loan_balance > 0) AS borrowing,
       count(*) FILTER (WHERE c.last_visit_at IS NULL OR c.last_visit_at < now() - make_interval(days => :days))
         AS not_visited
FROM customers c LEFT JOIN customer_profiles p ON p.customer_id = c.id
WHERE c.status = 'active' AND {where}"""
KEYS = ("customers", "placed", "profileable", "profiled", "formal", "credited", "with_credit_line", "borrowing",
        "not_visited")


def expected(db_session, where: str, days: int = 90) -> dict:
    return dict(sql(db_session, COUNTS_SQL.format(where=where), days=days).mappings().one())


def subtree(table: str, column: str, key_sql: str) -> str:
    return f"{column} IN (SELECT id FROM {table} WHERE path <@ ({key_sql}))"


def test_totals_and_org_rollup_match_sql_in_the_scope(client, login, db_session):
    for username in ("bl_430102", "bl_430104", "sbl_430102_1"):
        h = login(username)
        r = client.get(f"{C}?group_by=org", headers=h)
        assert r.status_code == 200, r.get_json()
        body = r.get_json()
        want = expected(db_session, scope_of(db_session, username))
        assert {k: body["totals"][k] for k in KEYS} == want, username
        t = body["totals"]
        assert t["in_grid_rate"] == round(want["placed"] / want["customers"], 4)
        assert t["credit_rate"] == round(want["credited"] / want["formal"], 4)
        assert t["usage_rate"] == round(want["borrowing"] / want["with_credit_line"], 4)
        assert t["profile_rate"] == round(want["profiled"] / (want["profileable"] + t["unlinked_pois"]), 4)
        # each org row rolls up its subtree (inside the caller's scope)
        for row in body["items"]:
            path = f"SELECT path FROM orgs WHERE id = {row['key']}"
            where = f"{scope_of(db_session, username)} AND {subtree('orgs', 'c.org_id', path)}"
            assert {k: row[k] for k in KEYS} == expected(db_session, where), (username, row["name"])


def test_attacker_sees_no_other_branch_keys(client, login, db_session):
    h = login("bl_430104")
    furong_orgs = set(sql(db_session, "SELECT id FROM orgs WHERE path <@ (SELECT path FROM orgs "
                                      "WHERE code = 'BR430102')").scalars())
    furong_grids = set(sql(db_session, "SELECT g.id FROM grids g WHERE g.org_id = ANY(:o)",
                           o=list(furong_orgs)).scalars())
    furong_users = set(sql(db_session, "SELECT id FROM users WHERE org_id = ANY(:o)", o=list(furong_orgs)).scalars())
    orgs = {i["key"] for i in client.get(f"{C}?group_by=org", headers=h).get_json()["items"]}
    grids = {i["key"] for i in client.get(f"{C}?group_by=grid", headers=h).get_json()["items"]}
    managers = {i["key"] for i in client.get(f"{C}?group_by=manager", headers=h).get_json()["items"]}
    assert orgs and grids and managers
    assert not orgs & furong_orgs and not grids & furong_grids and not managers & furong_users
    furong_branch = sql(db_session, "SELECT id FROM orgs WHERE code = 'BR430102'").scalar()
    furong_grid = next(iter(furong_grids))
    assert client.get(f"{C}?group_by=org&parent_id={furong_branch}", headers=h).status_code == 404
    assert client.get(f"{C}?group_by=grid&parent_id={furong_grid}", headers=h).status_code == 404
    assert client.get(f"{C}?group_by=manager&parent_id={furong_branch}", headers=h).status_code == 404


def test_grid_drill_down_and_manager_groups(client, login, db_session):
    h = login("bl_430102")
    scope = scope_of(db_session, "bl_430102")
    parent = sql(db_session, """
        SELECT g.id FROM grids g JOIN orgs o ON o.id = g.org_id
        WHERE o.path <@ (SELECT path FROM orgs WHERE code = 'BR430102')
          AND EXISTS (SELECT 1 FROM grids ch WHERE ch.parent_id = g.id)
        ORDER BY nlevel(g.path), g.id LIMIT 1""").scalar()
    body = client.get(f"{C}?group_by=grid&parent_id={parent}", headers=h).get_json()
    children = set(sql(db_session, "SELECT id FROM grids WHERE parent_id = :p", p=parent).scalars())
    keys = {i["key"] for i in body["items"]}
    assert parent in keys and keys - {parent} <= children and len(keys) > 1
    for row in body["items"]:
        path = f"SELECT path FROM grids WHERE id = {row['key']}"
        where = f"{scope} AND {subtree('grids', 'c.grid_id', path)}"
        assert {k: row[k] for k in KEYS} == expected(db_session, where)
        assert row["in_grid_rate"] in (1.0, None)
    parent_row = next(i for i in body["items"] if i["key"] == parent)
    assert {k: body["totals"][k] for k in KEYS} == {k: parent_row[k] for k in KEYS}
    # managers: the customers each one manages
    managers = client.get(f"{C}?group_by=manager&not_visited_days=30", headers=h).get_json()
    for row in managers["items"][:5]:
        owner = "c.owner_user_id IS NULL" if row["key"] is None else f"c.owner_user_id = {row['key']}"
        assert {k: row[k] for k in KEYS} == expected(db_session, f"{scope} AND {owner}", days=30)
    # an account manager (scope self) sees his own row only
    am = login("am_430102_1_1")
    me = sql(db_session, "SELECT id FROM users WHERE username = 'am_430102_1_1'").scalar()
    rows = client.get(f"{C}?group_by=manager", headers=am).get_json()["items"]
    assert [r["key"] for r in rows] == [me]
    assert client.get(f"{C}?group_by=manager", headers=login("ga_430102_1")).status_code == 403


def test_unlinked_merchant_pois_join_the_profile_rate_denominator(client, login, db_session):
    h, admin = login("bl_430102"), login("admin")
    grid, lon, lat, customer_name = sql(db_session, """
        SELECT g.id, ST_X(c.geom), ST_Y(c.geom), c.name FROM customers c JOIN grids g ON g.id = c.grid_id
        JOIN orgs o ON o.id = g.org_id WHERE o.path <@ (SELECT path FROM orgs WHERE code = 'BR430102')
        ORDER BY c.id LIMIT 1""").one()
    before = next(i for i in client.get(f"{C}?group_by=grid", headers=h).get_json()["items"] if i["key"] == grid)
    for name, category in (("新开副食店", "retail"), ("某某小学", "school"), (customer_name, "catering")):
        r = client.post("/api/v1/pois", json={"name": name, "category": category, "lon": lon, "lat": lat},
                        headers=admin)
        assert r.status_code == 201 and r.get_json()["grid_id"] == grid, r.get_json()
    after = next(i for i in client.get(f"{C}?group_by=grid", headers=h).get_json()["items"] if i["key"] == grid)
    # only the retail POI counts: schools are not merchants, the catering POI matches a customer by name
    assert after["unlinked_pois"] == before["unlinked_pois"] + 1
    assert after["known_units"] == after["profileable"] + after["unlinked_pois"]
    yuelu = client.get(f"{C}?group_by=org", headers=login("bl_430104")).get_json()
    assert yuelu["totals"]["unlinked_pois"] == 0


def test_bad_arguments(client, login):
    h = login("admin")
    for query in ("group_by=nope", "not_visited_days=0", "parent_id=-1", "parent_id=99999999999"):
        assert client.get(f"{C}?{query}", headers=h).status_code in (404, 422), query
    assert client.get(f"{C}?group_by=org&parent_id=999999", headers=h).status_code == 404
    for query in ("level=nope", "level=org&since=2026-02-01&until=2026-01-01",
                  "level=org&since=2020-01-01&until=2026-01-01", "level=org&key=abc"):
        assert client.get(f"{C}/series?{query}", headers=h).status_code == 422, query
    assert client.get(f"{C}/series?level=org").status_code == 401


@pytest.fixture()
def snapshots_cleanup(owner_engine):
    yield
    with owner_engine.begin() as conn:
        conn.execute(text("SELECT set_config('gm.audit_mode', 'summary', true)"))
        conn.execute(text("DELETE FROM coverage_snapshots"))


def test_snapshot_job_on_a_real_worker_and_series_in_scope(app, client, login, db_session, redis_conn,
                                                           owner_engine, snapshots_cleanup):
    state = app.extensions["gridmarket"]
    original, state.redis = state.redis, redis_conn
    try:
        r = client.post(f"{C}/snapshots", headers=login("admin"))
        assert r.status_code == 202, r.get_json()
        assert client.post(f"{C}/snapshots", headers=login("bl_430102")).status_code == 403
    finally:
        state.redis = original
    SimpleWorker([Queue(DEFAULT, connection=redis_conn)], connection=redis_conn).work(burst=True)
    job = Job.fetch(r.get_json()["id"], connection=redis_conn)
    assert job.is_finished, job.latest_result()
    counts = job.return_value()["rows"]
    with owner_engine.connect() as conn:
        stored = dict(conn.execute(text("SELECT level, count(*) FROM coverage_snapshots WHERE day = :d GROUP BY 1"),
                                   {"d": bank_today()}).all())
        assert stored == counts and counts["org"] > 10 and counts["grid"] > 100
        audited = conn.scalar(text("SELECT count(*) FROM audit_log WHERE entity = 'coverage_snapshots' "
                                   "AND action = 'insert_bulk' AND request_id = :j"), {"j": job.id})
        elevated = conn.scalar(text("SELECT count(*) FROM audit_log WHERE action = 'elevate' AND request_id = :j"),
                               {"j": job.id})
        assert audited == 1 and elevated == 1
        # an earlier day for the series
        conn.execute(text("""
            INSERT INTO coverage_snapshots (day, level, key, org_id, name, metrics)
            SELECT day - 1, level, key, org_id, name, metrics || '{"customers": 1}' FROM coverage_snapshots
            WHERE day = :d"""), {"d": bank_today()})
        conn.commit()
    # the admin's total equals the live computation over everything
    admin = login("admin")
    series = client.get(f"{C}/series?level=total", headers=admin).get_json()["items"]
    assert len(series) == 1 and [p["day"] for p in series[0]["points"]] == [
        (bank_today() - timedelta(days=1)).isoformat(), bank_today().isoformat()]
    live = client.get(f"{C}?group_by=org", headers=admin).get_json()["totals"]
    assert {k: series[0]["points"][1]["metrics"][k] for k in KEYS} == {k: live[k] for k in KEYS}
    # a branch leader sees his branch's orgs only, and no bank total
    h = login("bl_430104")
    assert client.get(f"{C}/series?level=total", headers=h).get_json()["items"] == []
    yuelu = set(sql(db_session, "SELECT id FROM orgs WHERE path <@ (SELECT path FROM orgs "
                                "WHERE code = 'BR430104')").scalars())
    keys = {i["key"] for i in client.get(f"{C}/series?level=org", headers=h).get_json()["items"]}
    assert keys == yuelu & set(sql(db_session, "SELECT key FROM coverage_snapshots WHERE level = 'org'").scalars())
    furong_branch = sql(db_session, "SELECT id FROM orgs WHERE code = 'BR430102'").scalar()
    assert client.get(f"{C}/series?level=org&key={furong_branch}", headers=h).get_json()["items"] == []
    branch = sql(db_session, "SELECT id FROM orgs WHERE code = 'BR430104'").scalar()
    mine = client.get(f"{C}/series?level=org&key={branch}&since={bank_today().isoformat()}", headers=h).get_json()
    assert len(mine["items"][0]["points"]) == 1
    where = subtree("orgs", "c.org_id", f"SELECT path FROM orgs WHERE id = {branch}")
    assert {k: mine["items"][0]["points"][0]["metrics"][k] for k in KEYS if k != "not_visited"} == {
        k: v for k, v in expected(db_session, where).items() if k != "not_visited"}
    # an account manager sees his own manager series
    am = login("am_430104_1_1")
    me = sql(db_session, "SELECT id FROM users WHERE username = 'am_430104_1_1'").scalar()
    assert {i["key"] for i in client.get(f"{C}/series?level=manager", headers=am).get_json()["items"]} <= {me}
