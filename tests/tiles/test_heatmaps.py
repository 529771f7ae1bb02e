"""H3 heatmaps: counts add up to a direct SQL count, scope holds, no PII, crs shifts the hexagons."""

from __future__ import annotations

import h3
from shapely.geometry import shape
from sqlalchemy import text

from geo_core.db import SYSTEM, set_context

CITY = "111.8,27.8,114.3,28.7"


def test_counts_match_direct_sql(client, login, db_session):
    r = client.get(f"/heatmaps/customers?bbox={CITY}&res=7", headers=login("admin"))
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    set_context(db_session, SYSTEM)
    direct = db_session.scalar(text("SELECT count(*) FROM customers WHERE h3_r10 IS NOT NULL AND geom && "
                                    "ST_MakeEnvelope(111.8, 27.8, 114.3, 28.7, 4326)"))
    assert body["total"] == direct == sum(f["properties"]["count"] for f in body["features"])
    assert body["resolution"] == 7 and not body["truncated"]
    one = body["features"][0]
    assert h3.get_resolution(one["properties"]["cell"]) == 7
    assert set(one["properties"]) == {"cell", "count"}  # nothing about the customers themselves
    by_cell = db_session.execute(text(
        "SELECT gm_h3_parent(h3_r10, 7), count(*) FROM customers WHERE h3_r10 IS NOT NULL GROUP BY 1")).all()
    assert {h3.int_to_str(c): n for c, n in by_cell} == {f["id"]: f["properties"]["count"] for f in body["features"]}


def test_scope_and_filters(client, login, db_session):
    spy = login("sbl_430102_1")
    body = client.get(f"/heatmaps/customers?bbox={CITY}&res=6", headers=spy).get_json()
    visible = client.get("/api/v1/customers?page_size=1", headers=spy).get_json()["total"]
    assert body["total"] == visible > 0
    admin = login("admin")
    whole = client.get(f"/heatmaps/customers?bbox={CITY}&res=6", headers=admin).get_json()["total"]
    assert whole > body["total"]
    formal = client.get(f"/heatmaps/customers?bbox={CITY}&res=6&category=formal", headers=admin).get_json()
    set_context(db_session, SYSTEM)
    assert formal["total"] == db_session.scalar(text("SELECT count(*) FROM customers WHERE category = 'formal' "
                                                     "AND h3_r10 IS NOT NULL"))
    assert client.get(f"/heatmaps/customers?bbox={CITY}&category=nope", headers=admin).status_code == 422
    assert client.get(f"/heatmaps/customers?bbox={CITY}").status_code == 401
    assert client.get("/heatmaps/customers?bbox=1,2", headers=admin).status_code == 422
    assert client.get(f"/heatmaps/nope?bbox={CITY}", headers=admin).status_code == 404


def test_gcj02_shifts_the_hexagons(client, login):
    h = login("admin")
    wgs = client.get(f"/heatmaps/customers?bbox={CITY}&res=7", headers=h).get_json()["features"][0]
    gcj = client.get(f"/heatmaps/customers?bbox={CITY}&res=7&crs=gcj02", headers=h).get_json()["features"]
    same = next(f for f in gcj if f["id"] == wgs["id"])
    moved = shape(same["geometry"]).centroid.distance(shape(wgs["geometry"]).centroid)
    assert 0.003 < moved < 0.01  # a few hundred metres in Changsha
