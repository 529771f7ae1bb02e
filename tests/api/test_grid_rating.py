"""Grid rating: schemes, on-demand equals batch, grades, scope, background job status."""

from __future__ import annotations

from rq import SimpleWorker
from sqlalchemy import text

from jobs.grids import rate_all_grids
from jobs.queues import queue


def _grid_id(client, h, code):
    return next(g["id"] for g in client.get(f"/api/v1/grids?q={code}", headers=h).get_json()["items"]
                if g["code"] == code)


def test_default_scheme_and_on_demand_rating(client, login):
    h = login("bl_430102")
    schemes = client.get("/api/v1/grid-rating-schemes", headers=h).get_json()
    assert schemes[0]["code"] == "default" and "outlet_distance_km" in schemes[0]["available_dimensions"]
    gid = _grid_id(client, h, "G430102001001")
    assert client.get(f"/api/v1/grids/{gid}/rating", headers=h).status_code == 404  # not rated yet
    r = client.post(f"/api/v1/grids/{gid}/rating", headers=h)
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert body["grade"] in "ABCD" and 0 <= body["score"] <= 100
    assert set(body["components"]) == {"households", "customers", "customer_value", "poi_density",
                                       "outlet_distance_km", "area_km2"}
    assert body["components"]["outlet_distance_km"]["value"] >= 0
    assert client.get(f"/api/v1/grids/{gid}/rating", headers=h).get_json()["score"] == body["score"]


def test_scheme_validation(client, login):
    h = login("admin")
    bad = [
        {"code": "x", "name": "x", "dimensions": [{"key": "nope", "weight": 1}], "grade_thresholds":
            {"A": 80, "B": 60, "C": 40}},
        {"code": "x", "name": "x", "dimensions": [{"key": "households", "weight": 1}], "grade_thresholds":
            {"A": 40, "B": 60, "C": 80}},
        {"code": "x", "name": "x", "dimensions": [{"key": "households", "weight": -1}], "grade_thresholds":
            {"A": 80, "B": 60, "C": 40}},
    ]
    for body in bad:
        assert client.post("/api/v1/grid-rating-schemes", json=body, headers=h).status_code == 422
    ok = {"code": "density", "name": "密度优先", "dimensions": [{"key": "poi_count", "weight": 1},
                                                            {"key": "households", "weight": 3}],
          "grade_thresholds": {"A": 80, "B": 60, "C": 40}}
    assert client.post("/api/v1/grid-rating-schemes", json=ok, headers=h).status_code == 201


def test_rating_scope_and_permissions(client, login):
    yuelu = _grid_id(client, login("admin"), "G430104007")
    spy = login("sbl_430102_1")
    assert client.get(f"/api/v1/grids/{yuelu}/rating", headers=spy).status_code == 404
    assert client.post(f"/api/v1/grids/{yuelu}/rating", headers=login("bl_430102")).status_code == 404
    assert client.post("/api/v1/grid-ratings/run", headers=login("am_430102_1_1")).status_code == 403


def test_batch_job_rates_all_grids_like_on_demand(client, login, owner_engine, redis_conn, app):
    q = queue("default", connection=redis_conn)
    job = q.enqueue(rate_all_grids, meta={"user_id": 1})
    try:
        SimpleWorker([q], connection=redis_conn).work(burst=True)
        job.refresh()
        assert job.is_finished, job.latest_result()
        with owner_engine.connect() as conn:
            physical = conn.scalar(text("SELECT count(*) FROM grids WHERE kind = 'physical' AND status = 'active'"))
            assert job.return_value()["rated"] == physical
            grades = dict(conn.execute(text("SELECT grade, count(*) FROM grid_ratings GROUP BY 1")).all())
            assert set(grades) <= set("ABCD") and len(grades) >= 3  # the scale discriminates
            gid, batch_score = conn.execute(text(
                "SELECT r.grid_id, r.score FROM grid_ratings r JOIN grids g ON g.id = r.grid_id "
                "WHERE g.code = 'G430102001001'")).one()
        h = login("bl_430102")
        on_demand = client.post(f"/api/v1/grids/{gid}/rating", headers=h).get_json()
        assert on_demand["score"] == batch_score
        # job status: the starter (admin, id 1) sees it, someone else does not
        state = app.extensions["gridmarket"]
        original = state.redis
        state.redis = redis_conn
        try:
            assert client.get(f"/api/v1/jobs/{job.id}", headers=login("admin")).get_json()["status"] == "finished"
            assert client.get(f"/api/v1/jobs/{job.id}", headers=h).status_code == 404
        finally:
            state.redis = original
    finally:
        with owner_engine.begin() as conn:
            conn.execute(text("DELETE FROM grid_ratings"))


def test_customer_dimensions_count_the_subtree(client, login, db_session):
    """customers / customer_value / formal_share / customer_coverage match direct SQL over the grid's subtree."""
    from geo_core.db import SYSTEM, set_context

    admin = login("admin")
    scheme = {"code": "customers", "name": "客户优先", "grade_thresholds": {"A": 80, "B": 60, "C": 40},
              "dimensions": [{"key": k, "weight": 1} for k in ("customers", "customer_value", "formal_share",
                                                               "customer_coverage")]}
    assert client.post("/api/v1/grid-rating-schemes", json=scheme, headers=admin).status_code == 201
    township = _grid_id(client, admin, "G430102001")
    body = client.post(f"/api/v1/grids/{township}/rating?scheme=customers", headers=login("bl_430102")).get_json()
    set_context(db_session, SYSTEM)
    n, value, formal, households = db_session.execute(text("""
        SELECT count(*), sum(coalesce(c.deposit_balance, 0) + coalesce(c.loan_balance, 0)),
               count(*) FILTER (WHERE c.category = 'formal'), (SELECT households_estimate FROM grids WHERE id = :g)
        FROM customers c WHERE c.status = 'active'
          AND c.grid_id IN (SELECT id FROM grids WHERE path <@ (SELECT path FROM grids WHERE id = :g))"""),
        {"g": township}).one()
    comps = body["components"]
    assert n > 0 and comps["customers"]["value"] == n
    assert abs(comps["customer_value"]["value"] - float(value) / 1e4) < 1e-3
    assert abs(comps["formal_share"]["value"] - formal / n) < 1e-3
    if households:
        assert abs(comps["customer_coverage"]["value"] - n / households) < 1e-3
    else:
        assert comps["customer_coverage"]["value"] is None
    assert comps["customer_value"]["unit"] == "万元" and comps["customers"]["label"] == "客户数"
