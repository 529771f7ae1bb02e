"""H3 heatmaps: counts and sums add up to direct SQL, scope holds, no PII, crs shifts the hexagons, MVT hexagons
decode with the expected cells and attributes, filters (time field, org, manager) narrow correctly."""

from __future__ import annotations

import h3
import mapbox_vector_tile
import pytest
from shapely.geometry import shape
from sqlalchemy import text

from geo_core.db import SYSTEM, set_context
from tests.tiles import FURONG_CENTRE, clear_tile_cache, tile_of

CITY = "111.8,27.8,114.3,28.7"
CITY_BOX = "geom && ST_MakeEnvelope(111.8, 27.8, 114.3, 28.7, 4326) AND h3_r10 IS NOT NULL"


@pytest.fixture(autouse=True)
def _fresh_cache(migrated_db):  # noqa: ANN001, ANN202
    clear_tile_cache(migrated_db.redis_url, migrated_db.database_name)
    yield
    clear_tile_cache(migrated_db.redis_url, migrated_db.database_name)


def _direct(db_session, sql: str, **params):  # noqa: ANN001, ANN202
    set_context(db_session, SYSTEM)
    return db_session.execute(text(sql), params).all()


def test_counts_and_sums_match_direct_sql(client, login, db_session):
    r = client.get(f"/heatmaps/customers?bbox={CITY}&res=7", headers=login("admin"))
    assert r.status_code == 200, r.get_json()
    assert r.mimetype == "application/geo+json"
    body = r.get_json()
    (n, dep, loan), = _direct(db_session, f"SELECT count(*), sum(deposit_balance), sum(loan_balance) FROM customers "
                                          f"WHERE {CITY_BOX}")
    assert body["total"] == n == sum(f["properties"]["count"] for f in body["features"])
    assert dep > 0 and loan > 0  # the demo has holdings
    assert body["sums"]["deposit_balance"] == pytest.approx(float(dep), abs=0.05)
    assert body["sums"]["loan_balance"] == pytest.approx(float(loan), abs=0.05)
    assert body["resolution"] == 7 and not body["truncated"]
    one = body["features"][0]
    assert h3.get_resolution(one["properties"]["cell"]) == 7
    # nothing about the customers themselves: only the cell, the count and the sums
    assert set(one["properties"]) == {"cell", "count", "deposit_balance", "loan_balance"}
    by_cell = _direct(db_session, "SELECT gm_h3_parent(h3_r10, 7), count(*), coalesce(sum(deposit_balance), 0), "
                                  f"coalesce(sum(loan_balance), 0) FROM customers WHERE {CITY_BOX} GROUP BY 1")
    expected = {h3.int_to_str(c): (k, float(d), float(v)) for c, k, d, v in by_cell}
    got = {f["id"]: (f["properties"]["count"], f["properties"]["deposit_balance"], f["properties"]["loan_balance"])
           for f in body["features"]}
    assert got.keys() == expected.keys()
    for cell, (k, d, v) in expected.items():
        assert got[cell][0] == k and got[cell][1] == pytest.approx(d, abs=0.01) and got[cell][2] == pytest.approx(
            v, abs=0.01)
    # POIs: counts only, no sums
    pois = client.get(f"/heatmaps/pois?bbox={CITY}&res=6", headers=login("admin")).get_json()
    assert all(set(f["properties"]) == {"cell", "count"} for f in pois["features"]) and pois["sums"] == {}


def test_scope_and_filters(client, login, db_session):
    spy = login("sbl_430102_1")
    body = client.get(f"/heatmaps/customers?bbox={CITY}&res=6", headers=spy).get_json()
    visible = client.get("/api/v1/customers?page_size=1", headers=spy).get_json()["total"]
    assert body["total"] == visible > 0
    admin = login("admin")
    whole = client.get(f"/heatmaps/customers?bbox={CITY}&res=6", headers=admin).get_json()
    assert whole["total"] > body["total"]
    # the attacker's sums cover only his customers, never the other branch's
    (dep,), = _direct(db_session, "SELECT coalesce(sum(c.deposit_balance), 0) FROM customers c JOIN orgs o ON "
                                  "o.id = c.org_id WHERE o.path <@ (SELECT path FROM orgs WHERE code = 'SB43010201') "
                                  "OR c.owner_user_id IN (SELECT id FROM users WHERE username = 'sbl_430102_1')")
    assert body["sums"]["deposit_balance"] == pytest.approx(float(dep), abs=0.05)
    assert 0 < body["sums"]["deposit_balance"] < whole["sums"]["deposit_balance"]
    # asking for another branch's org explicitly gives nothing
    (yuelu_org,), = _direct(db_session, "SELECT id FROM orgs WHERE code = 'BR430104'")
    stolen = client.get(f"/heatmaps/customers?bbox={CITY}&res=6&org_id={yuelu_org}", headers=spy).get_json()
    assert stolen["total"] == 0 and stolen["features"] == []
    yuelu = client.get(f"/heatmaps/customers?bbox={CITY}&res=6&org_id={yuelu_org}", headers=admin).get_json()
    (n_yuelu,), = _direct(db_session, "SELECT count(*) FROM customers c JOIN orgs o ON o.id = c.org_id WHERE o.path "
                                      "<@ (SELECT path FROM orgs WHERE id = :o) AND c.h3_r10 IS NOT NULL AND c.geom && "
                                      "ST_MakeEnvelope(111.8, 27.8, 114.3, 28.7, 4326)", o=yuelu_org)
    assert yuelu["total"] == n_yuelu > 0
    formal = client.get(f"/heatmaps/customers?bbox={CITY}&res=6&category=formal", headers=admin).get_json()
    (n_formal,), = _direct(db_session, f"SELECT count(*) FROM customers WHERE category = 'formal' AND {CITY_BOX}")
    assert formal["total"] == n_formal
    (manager, n_managed), = _direct(db_session, f"SELECT owner_user_id, count(*) FROM customers WHERE {CITY_BOX} "
                                                "GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 1")
    managed = client.get(f"/heatmaps/customers?bbox={CITY}&res=6&manager_id={manager}", headers=admin).get_json()
    assert managed["total"] == n_managed
    visited = client.get(f"/heatmaps/customers?bbox={CITY}&res=6&time_field=last_visit_at"
                         "&since=2026-10-01T00:00:00Z", headers=admin).get_json()
    (n_visited,), = _direct(db_session, f"SELECT count(*) FROM customers WHERE {CITY_BOX} "
                                        "AND last_visit_at >= '2026-10-01T00:00:00Z'")
    assert visited["total"] == n_visited and 0 < n_visited < whole["total"]
    assert client.get(f"/heatmaps/customers?bbox={CITY}&category=nope", headers=admin).status_code == 422
    assert client.get(f"/heatmaps/customers?bbox={CITY}&time_field=name", headers=admin).status_code == 422
    assert client.get(f"/heatmaps/pois?bbox={CITY}&manager_id=3", headers=admin).status_code == 422
    assert client.get(f"/heatmaps/customers?bbox={CITY}&tag=x", headers=admin).status_code == 422
    assert client.get(f"/heatmaps/customers?bbox={CITY}").status_code == 401
    assert client.get("/heatmaps/customers?bbox=1,2", headers=admin).status_code == 422
    assert client.get("/heatmaps/customers?bbox=nan,1,2,3", headers=admin).status_code == 422
    assert client.get(f"/heatmaps/nope?bbox={CITY}", headers=admin).status_code == 404


def test_tag_filter_when_the_tag_table_exists(client, login, db_session):
    (exists,), = _direct(db_session, "SELECT to_regclass('public.customer_tags') IS NOT NULL")
    r = client.get(f"/heatmaps/customers?bbox={CITY}&res=6&tag=1,2", headers=login("admin"))
    if not exists:
        assert r.status_code == 422 and "tag" in r.get_json()["errors"]
        return
    assert r.status_code == 200, r.get_json()
    (n,), = _direct(db_session, f"SELECT count(*) FROM customers t WHERE {CITY_BOX} AND EXISTS (SELECT 1 FROM "
                                "customer_tags x WHERE x.customer_id = t.id AND x.tag_id IN (1, 2))")
    assert r.get_json()["total"] == n


def test_gcj02_shifts_the_hexagons(client, login):
    h = login("admin")
    wgs = client.get(f"/heatmaps/customers?bbox={CITY}&res=7", headers=h).get_json()["features"][0]
    gcj = client.get(f"/heatmaps/customers?bbox={CITY}&res=7&crs=gcj02", headers=h).get_json()["features"]
    same = next(f for f in gcj if f["id"] == wgs["id"])
    moved = shape(same["geometry"]).centroid.distance(shape(wgs["geometry"]).centroid)
    assert 0.003 < moved < 0.01  # a few hundred metres in Changsha
    assert same["properties"] == wgs["properties"]


def _decode(data: bytes) -> dict:
    return mapbox_vector_tile.decode(data, default_options={"y_coord_down": True})


def test_mvt_hexagons_carry_counts_and_sums(client, login, db_session):
    h = login("admin")
    z, x, y = tile_of(*FURONG_CENTRE, 11)
    r = client.get(f"/heatmaps/customers/{z}/{x}/{y}.mvt", headers=h)
    assert r.status_code == 200 and r.mimetype == "application/vnd.mapbox-vector-tile"
    res = int(r.headers["X-H3-Resolution"])
    assert res == 8
    layer = _decode(r.data)["heatmap"]
    feats = layer["features"]
    assert feats and all(f["geometry"]["type"] in ("Polygon", "MultiPolygon") for f in feats)
    assert all(set(f["properties"]) == {"cell", "count", "deposit_balance", "loan_balance"} for f in feats)
    got = {f["properties"]["cell"]: f["properties"] for f in feats}
    # every hexagon whose centre lies in the tile is there, with the whole cell's count and sums
    from tiles.sql import tile_lonlat_bounds

    w, s, e, n = tile_lonlat_bounds(z, x, y)
    rows = _direct(db_session, "SELECT gm_h3_parent(h3_r10, 8), count(*), coalesce(sum(deposit_balance), 0), "
                               "coalesce(sum(loan_balance), 0) FROM customers WHERE h3_r10 IS NOT NULL GROUP BY 1")
    inside = 0
    for cell, count, dep, loan in rows:
        lat, lon = h3.cell_to_latlng(h3.int_to_str(cell))
        if w < lon < e and s < lat < n:
            inside += 1
            props = got[h3.int_to_str(cell)]
            assert props["count"] == count
            assert props["deposit_balance"] == pytest.approx(float(dep), abs=0.01)
            assert props["loan_balance"] == pytest.approx(float(loan), abs=0.01)
    assert inside > 3
    # geometry: a hexagon's vertices in tile coordinates match h3's boundary projected onto the tile
    cell = max(got, key=lambda c: got[c]["count"])
    lat, lon = h3.cell_to_latlng(cell)
    if w < lon < e and s < lat < n:
        from tests.tiles import tile_px

        poly = next(f for f in feats if f["properties"]["cell"] == cell)["geometry"]["coordinates"]
        ring = poly[0] if isinstance(poly[0][0][0], (int, float)) else poly[0][0]
        expected = [tile_px(blon, blat, z, x, y) for blat, blon in h3.cell_to_boundary(cell)]
        for px, py in expected:
            assert min(abs(px - a) + abs(py - b) for a, b in ring) <= 2
    # cached, conditional, empty, scope
    again = client.get(f"/heatmaps/customers/{z}/{x}/{y}.mvt", headers=h)
    assert again.headers["X-Tile-Cache"] == "hit" and again.data == r.data
    assert client.get(f"/heatmaps/customers/{z}/{x}/{y}.mvt", headers={**h, "If-None-Match": r.headers["ETag"]}
                      ).status_code == 304
    assert client.get("/heatmaps/customers/11/0/0.mvt", headers=h).status_code == 204
    assert client.get(f"/heatmaps/customers/{z}/{1 << z}/{y}.mvt", headers=h).status_code == 404
    assert client.get(f"/heatmaps/customers/{z}/{x}/{y}.mvt?crs=bd09", headers=h).status_code == 422
    assert client.get(f"/heatmaps/customers/{z}/{x}/{y}.mvt").status_code == 401


def test_mvt_scope_gcj02_and_filters(client, login, db_session):
    spy = login("sbl_430102_1")
    admin = login("admin")
    z = 9
    tile = "/".join(str(v) for v in tile_of(*FURONG_CENTRE, z))

    def total(headers, query: str = "") -> int:  # noqa: ANN001
        r = client.get(f"/heatmaps/customers/{tile}.mvt?res=6{query}", headers=headers)
        if r.status_code == 204:
            return 0
        return sum(f["properties"]["count"] for f in _decode(r.data)["heatmap"]["features"])

    visible = client.get("/api/v1/customers?page_size=1", headers=spy).get_json()["total"]
    assert total(spy) == visible < total(admin)
    (yuelu_org,), = _direct(db_session, "SELECT id FROM orgs WHERE code = 'BR430104'")
    assert total(spy, f"&org_id={yuelu_org}") == 0
    (n_formal,), = _direct(db_session, "SELECT count(*) FROM customers WHERE category = 'formal' "
                                       "AND h3_r10 IS NOT NULL")
    assert total(admin, "&category=formal") == n_formal
    # GCJ-02: same cells and counts, hexagons moved by the offset (hundreds of metres = a few px at z9)
    wgs = _decode(client.get(f"/heatmaps/customers/{tile}.mvt?res=6", headers=admin).data)["heatmap"]["features"]
    gcj = _decode(client.get(f"/heatmaps/customers/{tile}.mvt?res=6&crs=gcj02", headers=admin).data
                  )["heatmap"]["features"]
    assert {f["properties"]["cell"]: f["properties"]["count"] for f in gcj} == \
        {f["properties"]["cell"]: f["properties"]["count"] for f in wgs}
    big = max(wgs, key=lambda f: f["properties"]["count"])  # a central one: not clipped at the tile edge
    a = shape(big["geometry"]).centroid
    b = shape(next(f for f in gcj if f["properties"]["cell"] == big["properties"]["cell"])["geometry"]).centroid
    assert 20 < a.distance(b) < 60  # ~650 m at z9 in Changsha: ~38 tile units
    assert client.get(f"/heatmaps/customers/{tile}.mvt?res=6&tag=0", headers=admin).status_code == 422
