"""Large grid imports in the background (POST /grids/import-jobs): a real RQ worker imports the file as the
uploader (his scope), all or nothing, with progress; a rejected file is a result with per-row errors."""

from __future__ import annotations

import io
import json

import pytest
from rq import SimpleWorker
from shapely.geometry import box, mapping, shape
from sqlalchemy import text

from geo_core.db import make_session_factory
from geo_core.grids import file_reader
from jobs.queues import IMPORTS, queue
from tests.conftest import DEMO_PASSWORD

TS = "/api/v1/grids"
PARENT = "G430102001001"
PREFIX = "JOBIMP"


def _lattice(client, h, n_side: int = 6) -> list[dict]:
    """Building groups tiling the community: the lattice cells clipped to it (inside, no overlaps)."""
    gid = next(g["id"] for g in client.get(f"{TS}?q={PARENT}", headers=h).get_json()["items"] if g["code"] == PARENT)
    parent = shape(client.get(f"{TS}/{gid}", headers=h).get_json()["geometry"])
    minx, miny, maxx, maxy = parent.bounds
    dx, dy = (maxx - minx) / n_side, (maxy - miny) / n_side
    feats = []
    for i in range(n_side):
        for j in range(n_side):
            part = parent.intersection(box(minx + i * dx, miny + j * dy, minx + (i + 1) * dx, miny + (j + 1) * dy))
            if part.geom_type not in ("Polygon", "MultiPolygon") or part.area < 1e-8:
                continue
            feats.append({"type": "Feature", "geometry": mapping(part), "properties": {
                "code": f"{PREFIX}-{i}-{j}", "name": f"测试组{i}-{j}", "level": "building_group",
                "parent_code": PARENT}})
    return feats


def _post(client, h, feats, path="/import-jobs"):
    raw = json.dumps({"type": "FeatureCollection", "features": feats}).encode()
    return client.post(f"{TS}{path}", headers=h, content_type="multipart/form-data",
                       data={"file": (io.BytesIO(raw), "big.geojson")})


@pytest.fixture()
def login_committed(app):
    """Log in outside the test's transaction: the job's writes (FK checks on the user's row) must not wait for
    the rolled-back test transaction that a login inside it would leave holding that row."""
    cache: dict[str, dict[str, str]] = {}

    def _login(username: str) -> dict[str, str]:
        if username not in cache:
            state = app.extensions["gridmarket"]
            saved = state.sessions
            state.sessions = make_session_factory(state.engine)
            try:
                r = app.test_client().post("/api/v1/auth/login", json={"username": username,
                                                                         "password": DEMO_PASSWORD})
            finally:
                state.sessions = saved
            assert r.status_code == 200, r.get_json()
            cache[username] = {"Authorization": f"Bearer {r.get_json()['access_token']}"}
        return cache[username]

    return _login


@pytest.fixture()
def jobs_app(app, redis_conn, owner_engine):
    """The app's Redis is the test Redis; grids the (committing) job wrote are removed afterwards."""
    state = app.extensions["gridmarket"]
    original = state.redis
    state.redis = redis_conn
    try:
        yield redis_conn
    finally:
        state.redis = original
        with owner_engine.begin() as conn:
            conn.execute(text("DELETE FROM grid_h3 WHERE grid_id IN (SELECT id FROM grids WHERE code LIKE :p)"),
                         {"p": f"{PREFIX}%"})
            conn.execute(text("DELETE FROM grids WHERE code LIKE :p"), {"p": f"{PREFIX}%"})


def _work(redis_conn) -> None:
    SimpleWorker([queue(IMPORTS, connection=redis_conn)], connection=redis_conn).work(burst=True)


def test_large_file_imports_in_a_job_with_progress(client, login_committed, jobs_app, owner_engine, monkeypatch):
    login = login_committed
    h = login("bl_430102")
    feats = _lattice(client, h)
    assert len(feats) >= 20
    # in the request the file is too large (limit lowered to show the switch), and the answer says where to go
    monkeypatch.setattr(file_reader, "MAX_FEATURES", 10)
    r = _post(client, h, feats, "/import")
    assert r.status_code == 422 and "import-jobs" in json.dumps(r.get_json(), ensure_ascii=False)
    r = _post(client, h, feats)
    assert r.status_code == 202, r.get_json()
    job = r.get_json()
    assert job["status"] == "queued" and job["progress"]["phase"] == "queued"
    assert len(jobs_app.keys("gm:grid-import:*")) == 1  # the file waits in Redis for the worker
    _work(jobs_app)
    done = client.get(f"/api/v1/jobs/{job['id']}", headers=h).get_json()
    assert done["status"] == "finished", done
    assert done["result"] == {"status": "done", "created": len(feats), "updated": 0}
    assert done["progress"] == {"phase": "done", "done": len(feats), "total": len(feats)}
    assert jobs_app.keys("gm:grid-import:*") == []  # the stored file is gone
    with owner_engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT count(*), count(DISTINCT created_by), min(u.username), count(*) FILTER (WHERE h3 > 0) "
            "FROM grids g JOIN users u ON u.id = g.created_by "
            "LEFT JOIN LATERAL (SELECT count(*) AS h3 FROM grid_h3 WHERE grid_id = g.id) x ON true "
            "WHERE g.code LIKE :p"), {"p": f"{PREFIX}%"}).one()
    assert rows == (len(feats), 1, "bl_430102", len(feats))  # written as the uploader, H3 cover kept current
    # the job is the uploader's: another user does not see it
    assert client.get(f"/api/v1/jobs/{job['id']}", headers=login("bl_430104")).status_code == 404


def test_rejected_file_writes_nothing_and_reports_rows(client, login_committed, jobs_app, owner_engine):
    login = login_committed
    h = login("bl_430102")
    feats = _lattice(client, h)
    feats[3]["geometry"] = feats[4]["geometry"]  # two siblings on the same spot: overlap
    r = _post(client, h, feats)
    assert r.status_code == 202
    _work(jobs_app)
    body = client.get(f"/api/v1/jobs/{r.get_json()['id']}", headers=h).get_json()
    assert body["status"] == "finished" and body["result"]["status"] == "rejected", body
    assert body["result"]["error_count"] >= 1 and any(e["row"] in (4, 5) for e in body["result"]["errors"])
    with owner_engine.connect() as conn:
        assert conn.scalar(text("SELECT count(*) FROM grids WHERE code LIKE :p"), {"p": f"{PREFIX}%"}) == 0


def test_job_acts_within_the_uploaders_scope(client, login_committed, jobs_app, owner_engine):
    """A 岳麓 leader cannot import under a 芙蓉 community: the parent is unknown to him; nothing written."""
    login = login_committed
    feats = _lattice(client, login("bl_430102"))
    r = _post(client, login("bl_430104"), feats)
    assert r.status_code == 202
    _work(jobs_app)
    body = client.get(f"/api/v1/jobs/{r.get_json()['id']}", headers=login("bl_430104")).get_json()
    assert body["result"]["status"] == "rejected"
    assert any(e["field"] == "parent_code" for e in body["result"]["errors"])
    with owner_engine.connect() as conn:
        assert conn.scalar(text("SELECT count(*) FROM grids WHERE code LIKE :p"), {"p": f"{PREFIX}%"}) == 0


def test_import_job_input_and_permissions(client, login, jobs_app):
    h = login("bl_430102")
    assert client.post(f"{TS}/import-jobs", headers=h, content_type="multipart/form-data", data={}).status_code == 422
    empty = client.post(f"{TS}/import-jobs", headers=h, content_type="multipart/form-data",
                        data={"file": (io.BytesIO(b""), "x.geojson")})
    assert empty.status_code == 422
    bad_mode = client.post(f"{TS}/import-jobs?mode=nope", headers=h, content_type="multipart/form-data",
                           data={"file": (io.BytesIO(b"{}"), "x.geojson")})
    assert bad_mode.status_code == 422
    assert client.post(f"{TS}/import-jobs", headers=login("am_430102_1_1"), content_type="multipart/form-data",
                       data={"file": (io.BytesIO(b"{}"), "x.geojson")}).status_code == 403
    assert client.post(f"{TS}/import-jobs").status_code == 401
