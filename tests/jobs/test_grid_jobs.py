"""Point placement job on a real RQ worker: finest grid wins, idempotent, audited as a summary."""

from __future__ import annotations

import pytest
from rq import SimpleWorker
from sqlalchemy import text

from geo_core.grids.spatial import point_cell
from geo_core.tile_generations import generation_key
from jobs.grids import place_all_points
from jobs.queues import job_session, queue
from jobs.queues import settings as job_settings


def _generation(redis_conn, layer: str) -> int:  # noqa: ANN001
    return int(redis_conn.get(generation_key(job_settings().database_name, layer)) or 0)


def test_a_job_session_retires_its_layers_only_after_a_commit(redis_conn):
    assert _generation(redis_conn, "customers") == 0
    with job_session("test:retire", retires=("customers", "pois")) as session:
        session.execute(text("SELECT 1"))
        assert _generation(redis_conn, "customers") == 0  # not before the commit
    assert _generation(redis_conn, "customers") == 1 and _generation(redis_conn, "pois") == 1
    with pytest.raises(RuntimeError), job_session("test:retire", retires=("customers",)):
        raise RuntimeError("rolled back")
    assert _generation(redis_conn, "customers") == 1  # nothing committed, nothing retired
    with job_session("test:no-layers"):
        pass
    assert _generation(redis_conn, "grids") == 0


def test_place_all_points_job(owner_engine, redis_conn):
    with owner_engine.begin() as conn:
        community = conn.execute(text(
            "SELECT id, ST_X(ST_PointOnSurface(geom)), ST_Y(ST_PointOnSurface(geom)) FROM grids "
            "WHERE level = 'community' ORDER BY code LIMIT 1")).one()
        township = conn.execute(text(
            "SELECT id, ST_X(ST_PointOnSurface(geom)), ST_Y(ST_PointOnSurface(geom)) FROM grids "
            "WHERE code = 'G430103002'")).one()  # no communities under it in the small demo
        points = [("in-community", community[1], community[2]), ("in-township", township[1], township[2]),
                  ("outside-city", 120.0, 30.0)]
        for name, x, y in points:
            conn.execute(text("INSERT INTO pois (name, category, source, source_ref, geom, h3_r10) VALUES "
                              "(:n, 'shop', 'test', :n, ST_SetSRID(ST_MakePoint(:x, :y), 4326), :c)"),
                         {"n": name, "x": x, "y": y, "c": point_cell(x, y)})
        conn.execute(text("INSERT INTO pois (name, category, source, source_ref, geom, h3_r10, grid_id) "
                          "SELECT 'stale', 'shop', 'test', 'stale', ST_SetSRID(ST_MakePoint(120.1, 30.1), 4326), "
                          ":c, :g"), {"c": point_cell(120.1, 30.1), "g": community[0]})
    try:
        q = queue("default", connection=redis_conn)
        job = q.enqueue(place_all_points)
        SimpleWorker([q], connection=redis_conn).work(burst=True)
        job.refresh()
        assert job.is_finished, job.latest_result()
        assert _generation(redis_conn, "pois") == 1  # cached POI tiles (grid_id is a tile attribute) are retired
        first = job.return_value()[0]
        assert first["table"] == "pois" and first["changed"] >= 3
        with owner_engine.connect() as conn:
            got = dict(conn.execute(text("SELECT source_ref, grid_id FROM pois WHERE source = 'test'")).all())
            assert got == {"in-community": community[0], "in-township": township[0], "outside-city": None,
                           "stale": None}
            bulk = conn.scalar(text("SELECT sum((detail->>'rows')::int) FROM audit_log WHERE action = 'update_bulk' "
                                    "AND entity = 'pois' AND request_id = :j"), {"j": job.id})
            assert bulk == first["changed"]  # one summary row per statement, not one per point
        job2 = q.enqueue(place_all_points)
        SimpleWorker([q], connection=redis_conn).work(burst=True)
        job2.refresh()
        assert job2.return_value()[0]["changed"] == 0  # idempotent
    finally:
        with owner_engine.begin() as conn:
            conn.execute(text("DELETE FROM pois WHERE source = 'test'"))
