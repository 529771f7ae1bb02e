"""Grid aggregates for choropleths: KPIs per grid equal direct SQL, the caller's scope decides which grids and
customers count, MVT decodes with the same figures, crs shifts."""

from __future__ import annotations

import mapbox_vector_tile
import pytest
from shapely.geometry import shape
from sqlalchemy import text

from geo_core.db import SYSTEM, set_context
from tests.tiles import FURONG_CENTRE, tile_of

KPI_SQL = """
SELECT t.id, count(c.id), count(c.id) FILTER (WHERE c.kind = 'person'), count(c.id) FILTER (WHERE c.kind = 'company'),
       count(c.id) FILTER (WHERE c.category = 'formal'), coalesce(sum(c.deposit_balance), 0),
       coalesce(sum(c.loan_balance), 0), count(c.id) FILTER (WHERE c.owner_user_id IS NOT NULL),
       count(c.id) FILTER (WHERE c.last_visit_at >= now() - interval '90 days'), t.households_estimate
FROM grids t LEFT JOIN grids cg ON cg.path <@ t.path LEFT JOIN customers c ON c.grid_id = cg.id
WHERE t.level = CAST(:level AS grid_level) AND t.kind = 'physical' GROUP BY t.id
"""


def _direct(db_session, level: str) -> dict[int, tuple]:  # noqa: ANN001
    set_context(db_session, SYSTEM)
    return {r[0]: r[1:] for r in db_session.execute(text(KPI_SQL), {"level": level}).all()}


@pytest.mark.parametrize("level", ["community", "township", "district"])
def test_kpis_match_direct_sql(client, login, db_session, level):
    r = client.get(f"/aggregates/grids?level={level}", headers=login("admin"))
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    expected = _direct(db_session, level)
    got = {f["id"]: f["properties"] for f in body["features"]}
    assert got.keys() == expected.keys() and not body["truncated"]
    assert sum(p["customers"] for p in got.values()) > 0
    for gid, (n, persons, companies, formal, dep, loan, placed, visited, households) in expected.items():
        p = got[gid]
        assert (p["customers"], p["persons"], p["companies"], p["formal"]) == (n, persons, companies, formal)
        assert p["potential"] == n - formal
        assert p["deposit_sum"] == pytest.approx(float(dep), abs=0.01)
        assert p["loan_sum"] == pytest.approx(float(loan), abs=0.01)
        assert p["placed_share"] == (round(placed / n, 4) if n else None)
        assert p["visited_90d_share"] == (round(visited / n, 4) if n else None)
        assert p["coverage_rate"] == (round(persons / households, 4) if households else None)
        assert p["task_completion"] is None and p["level"] == level
    one = next(f for f in body["features"] if f["properties"]["customers"])
    assert one["geometry"]["type"] == "MultiPolygon"


def test_scope_from_the_attackers_side(client, login, db_session):
    spy = login("sbl_430102_1")
    body = client.get("/aggregates/grids?level=community", headers=spy).get_json()
    visible = client.get("/api/v1/customers?page_size=1", headers=spy).get_json()["total"]
    counted = sum(f["properties"]["customers"] for f in body["features"])
    assert 0 < counted <= visible
    set_context(db_session, SYSTEM)
    yuelu = set(db_session.scalars(text("SELECT g.id FROM grids g JOIN orgs o ON o.id = g.org_id WHERE "
                                        "o.path <@ (SELECT path FROM orgs WHERE code = 'BR430104')")))
    assert yuelu and not yuelu & {f["id"] for f in body["features"]}
    # a bbox over 岳麓 gives the attacker nothing, the admin something
    box = "112.60,27.95,112.97,28.30"
    assert client.get(f"/aggregates/grids?level=community&bbox={box}", headers=spy).get_json()["features"] == []
    admin = client.get(f"/aggregates/grids?level=community&bbox={box}", headers=login("admin")).get_json()
    assert any(f["properties"]["customers"] for f in admin["features"])
    # his figures: the same grids as the admin sees them, but only his customers
    whole = {f["id"]: f["properties"] for f in client.get("/aggregates/grids?level=community",
                                                          headers=login("admin")).get_json()["features"]}
    assert all(f["properties"]["customers"] <= whole[f["id"]]["customers"] for f in body["features"])


def test_bad_input_and_auth(client, login):
    h = login("admin")
    assert client.get("/aggregates/grids").status_code == 401
    assert client.get("/aggregates/grids?level=planet", headers=h).status_code == 422
    assert client.get("/aggregates/grids?bbox=1,2,3", headers=h).status_code == 422
    assert client.get("/aggregates/grids?bbox=inf,2,3,4", headers=h).status_code == 422
    assert client.get("/aggregates/grids?crs=epsg:9999", headers=h).status_code == 422
    assert client.get("/aggregates/grids/12/0/5000.mvt", headers=h).status_code == 404
    assert client.get("/aggregates/grids/12/0/0.mvt", headers=h).status_code == 204
    assert client.get("/aggregates/grids/12/0/0.mvt?crs=bd09", headers=h).status_code == 422


def test_gcj02_and_mvt(client, login):
    h = login("admin")
    wgs = client.get("/aggregates/grids?level=township", headers=h).get_json()["features"]
    gcj = {f["id"]: f for f in client.get("/aggregates/grids?level=township&crs=gcj02", headers=h
                                          ).get_json()["features"]}
    moved = shape(wgs[0]["geometry"]).centroid.distance(shape(gcj[wgs[0]["id"]]["geometry"]).centroid)
    assert 0.003 < moved < 0.01 and gcj[wgs[0]["id"]]["properties"] == wgs[0]["properties"]
    by_id = {f["id"]: f["properties"] for f in wgs}
    z, x, y = tile_of(*FURONG_CENTRE, 11)
    r = client.get(f"/aggregates/grids/{z}/{x}/{y}.mvt?level=township", headers=h)
    assert r.status_code == 200 and r.mimetype == "application/vnd.mapbox-vector-tile"
    feats = mapbox_vector_tile.decode(r.data, default_options={"y_coord_down": True})["grid_aggregates"]["features"]
    assert feats
    for f in feats:
        expected = {k: v for k, v in by_id[f["id"]].items() if v is not None and k != "id"}
        assert f["properties"].keys() == expected.keys()
        for k, v in expected.items():
            assert f["properties"][k] == (pytest.approx(v) if isinstance(v, float) else v)
        assert f["geometry"]["type"] in ("Polygon", "MultiPolygon")
    spy = login("sbl_430102_1")
    spied = client.get(f"/aggregates/grids/{z}/{x}/{y}.mvt?level=township", headers=spy)
    if spied.status_code == 200:
        mine = mapbox_vector_tile.decode(spied.data)["grid_aggregates"]["features"]
        assert all(f["properties"]["customers"] <= by_id[f["id"]]["customers"] for f in mine)
    assert client.get(f"/aggregates/grids/{z}/{x}/{y}.mvt?level=township&crs=gcj02", headers=h).status_code == 200
