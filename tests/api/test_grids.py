"""Grids: topology rules, split/merge/rebuild, H3 lookup, versioning, CRS, data scope."""

from __future__ import annotations

import pytest
from shapely.geometry import box, mapping, shape

from geo_core.crs import transform_geojson

TS = "/api/v1/grids"


def _grid(client, h, code, crs="wgs84"):
    items = client.get(f"{TS}?q={code}", headers=h).get_json()["items"]
    gid = next(g["id"] for g in items if g["code"] == code)
    return client.get(f"{TS}/{gid}?crs={crs}", headers=h).get_json()


def _square_inside(parent, size=0.004, dx=0.0, dy=0.0):
    """A small square around the parent's representative point (WGS84 GeoJSON)."""
    p = shape(parent["geometry"]).representative_point()
    return mapping(box(p.x - size / 2 + dx, p.y - size / 2 + dy, p.x + size / 2 + dx, p.y + size / 2 + dy))


@pytest.fixture()
def township(client, login):
    # 坡子街街道 (天心区): no communities in the small demo, so the space is free
    return _grid(client, login("admin"), "G430103002")


def _create(client, h, parent, code, geometry, level="community", **extra):
    body = {"code": code, "name": f"测试{code}", "kind": "physical", "level": level, "parent_id": parent["id"],
            "geometry": geometry, **extra}
    return client.post(TS, json=body, headers=h)


def test_create_lookup_and_audit(client, login, township, db_session):
    h = login("admin")
    r = _create(client, h, township, "T-C1", _square_inside(township))
    assert r.status_code == 201, r.get_json()
    grid = r.get_json()
    assert grid["version"] == 1 and 150_000 < grid["area_m2"] < 250_000
    assert grid["path"] == f"{township['path']}.n{grid['id']}"
    centre = shape(grid["geometry"]).centroid
    found = client.get(f"{TS}/lookup?lon={centre.x}&lat={centre.y}", headers=h).get_json()
    assert found["id"] == grid["id"]  # the finest grid wins over township, district and city
    from sqlalchemy import text

    from geo_core.db import SYSTEM, set_context

    set_context(db_session, SYSTEM)
    assert db_session.scalar(text("SELECT count(*) FROM grid_h3 WHERE grid_id = :g"), {"g": grid["id"]}) > 5
    assert db_session.scalar(text("SELECT actor_user_id FROM audit_log WHERE entity = 'grids' AND entity_id = :g "
                                  "AND action = 'insert'"), {"g": str(grid["id"])}) == 1


def test_invalid_geometry_says_why_and_where_and_can_be_repaired(client, login, township):
    h = login("admin")
    p = shape(township["geometry"]).representative_point()
    bowtie = {"type": "Polygon", "coordinates": [[[p.x, p.y], [p.x + 0.002, p.y + 0.002], [p.x + 0.002, p.y],
                                                  [p.x, p.y + 0.002], [p.x, p.y]]]}
    r = _create(client, h, township, "T-BAD", bowtie)
    body = r.get_json()
    assert r.status_code == 422 and body["code"] == "INVALID_GEOMETRY"
    assert "Self-intersection" in body["detail"]["reason"]
    lon, lat = body["detail"]["location"]["coordinates"]
    assert abs(lon - (p.x + 0.001)) < 1e-6 and abs(lat - (p.y + 0.001)) < 1e-6
    r = client.post(f"{TS}?repair=true", headers=h, json={"code": "T-BAD", "name": "修复", "kind": "physical",
                                                          "level": "community", "parent_id": township["id"],
                                                          "geometry": bowtie})
    assert r.status_code == 201 and r.get_json()["geometry"]["type"] == "MultiPolygon"
    far = [[[500, 1], [501, 1], [501, 2], [500, 1]]]
    for junk in ({"type": "Point", "coordinates": [1, 2]}, {"type": "Polygon", "coordinates": [[[1, 2]]]},
                 {"type": "Polygon", "coordinates": "nope"}, {"type": "Polygon", "coordinates": far}):
        r = _create(client, h, township, "T-JUNK", junk)
        assert r.status_code == 422, (junk, r.get_json())


def test_child_must_lie_within_parent(client, login, township):
    h = login("admin")
    b = shape(township["geometry"]).bounds
    straddling = mapping(box(b[0] - 0.01, b[1], b[0] + 0.01, b[1] + 0.01))
    r = _create(client, h, township, "T-OUT", straddling)
    body = r.get_json()
    assert r.status_code == 422 and body["code"] == "TOPOLOGY_VIOLATION"
    assert body["detail"]["outside_parent"]["parent_code"] == "G430103002"
    assert body["detail"]["outside_parent"]["area_m2"] > 1000


def test_siblings_may_not_overlap(client, login, township):
    h = login("admin")
    assert _create(client, h, township, "T-A", _square_inside(township)).status_code == 201
    r = _create(client, h, township, "T-B", _square_inside(township, dx=0.002))
    body = r.get_json()
    assert r.status_code == 422 and body["code"] == "TOPOLOGY_VIOLATION"
    overlap = body["detail"]["overlaps"][0]
    assert overlap["code"] == "T-A" and 40_000 < overlap["area_m2"] < 110_000
    assert overlap["geometry"]["type"] in ("Polygon", "MultiPolygon")
    assert "T-A" in body["errors"]["geometry"][0]
    # touching (shared edge) is fine
    assert _create(client, h, township, "T-B", _square_inside(township, dx=0.004)).status_code == 201


def test_level_rules(client, login, township):
    h = login("admin")
    r = _create(client, h, township, "T-LVL", _square_inside(township), level="building_group")
    assert r.status_code == 422 and "level" in r.get_json()["errors"]
    r = client.post(TS, headers=h, json={"code": "T-V", "name": "v", "kind": "physical", "level": "community",
                                         "parent_id": township["id"]})
    assert r.status_code == 422 and "geometry" in r.get_json()["errors"]
    r = client.post(TS, headers=h, json={"code": "T-V", "name": "供应链", "kind": "virtual",
                                         "virtual_type": "supply_chain"})
    assert r.status_code == 201 and r.get_json()["geometry"] is None


def test_split_and_merge(client, login, township):
    h = login("admin")
    grid = _create(client, h, township, "T-S", _square_inside(township)).get_json()
    sq = shape(grid["geometry"])
    cx = sq.centroid.x
    line = {"type": "LineString", "coordinates": [[cx, sq.bounds[1] - 0.001], [cx, sq.bounds[3] + 0.001]]}
    r = client.post(f"{TS}/{grid['id']}/split", json={"line": line}, headers=h)
    assert r.status_code == 200, r.get_json()
    parts = r.get_json()
    assert len(parts) == 2 and parts[0]["id"] == grid["id"] and parts[1]["code"] == "T-S-2"
    assert abs(sum(p["area_m2"] for p in parts) - grid["area_m2"]) < 1
    miss = {"type": "LineString", "coordinates": [[cx + 1, 0], [cx + 1, 1]]}
    assert client.post(f"{TS}/{grid['id']}/split", json={"line": miss}, headers=h).status_code == 422
    r = client.post(f"{TS}/merge", json={"grid_ids": [parts[0]["id"], parts[1]["id"]]}, headers=h)
    assert r.status_code == 200, r.get_json()
    merged = r.get_json()
    assert merged["id"] == grid["id"] and abs(merged["area_m2"] - grid["area_m2"]) < 1
    assert client.get(f"{TS}/{parts[1]['id']}", headers=h).status_code == 404


def test_merge_refuses_non_adjacent(client, login, township):
    h = login("admin")
    a = _create(client, h, township, "T-M1", _square_inside(township, size=0.002)).get_json()
    b = _create(client, h, township, "T-M2", _square_inside(township, size=0.002, dx=0.004)).get_json()
    r = client.post(f"{TS}/merge", json={"grid_ids": [a["id"], b["id"]]}, headers=h)
    assert r.status_code == 422 and r.get_json()["code"] == "GRIDS_NOT_ADJACENT"


def test_rebuild_parent_and_delete_rules(client, login, township):
    h = login("admin")
    community = _create(client, h, township, "T-P", _square_inside(township, size=0.006)).get_json()
    c = shape(community["geometry"]).representative_point()
    kids = [mapping(box(c.x - 0.002, c.y - 0.002, c.x, c.y)), mapping(box(c.x, c.y - 0.002, c.x + 0.002, c.y))]
    for i, g in enumerate(kids):
        assert _create(client, h, community, f"T-P-{i}", g, level="building_group").status_code == 201
    assert client.delete(f"{TS}/{community['id']}", headers=h).status_code == 409
    r = client.post(f"{TS}/{community['id']}/rebuild", headers=h)
    assert r.status_code == 200
    rebuilt = shape(r.get_json()["geometry"])
    assert rebuilt.equals_exact(shape(kids[0]).union(shape(kids[1])), 1e-7) or abs(
        rebuilt.area - shape(kids[0]).union(shape(kids[1])).area) < 1e-10


def test_version_conflict(client, login, township):
    h = login("admin")
    grid = _create(client, h, township, "T-VER", _square_inside(township)).get_json()
    r = client.patch(f"{TS}/{grid['id']}", json={"name": "改名", "version": 1}, headers=h)
    assert r.status_code == 200 and r.get_json()["version"] == 2
    r = client.patch(f"{TS}/{grid['id']}", json={"name": "再改", "version": 1}, headers=h)
    assert r.status_code == 409 and r.get_json()["code"] == "GRID_VERSION_CONFLICT"


def test_gcj02_round_trip_keeps_the_stored_geometry(client, login, township):
    h = login("admin")
    grid = _create(client, h, township, "T-CRS", _square_inside(township)).get_json()
    gcj = client.get(f"{TS}/{grid['id']}?crs=gcj02", headers=h).get_json()
    shifted = shape(gcj["geometry"]).centroid.distance(shape(grid["geometry"]).centroid)
    assert shifted > 0.003  # several hundred metres in Changsha
    r = client.patch(f"{TS}/{grid['id']}?crs=gcj02", json={"geometry": gcj["geometry"]}, headers=h)
    assert r.status_code == 200
    back = client.get(f"{TS}/{grid['id']}", headers=h).get_json()
    assert shape(back["geometry"]).symmetric_difference(shape(grid["geometry"])).area < 1e-12
    gcj_point = transform_geojson({"type": "Point", "coordinates": list(shape(grid["geometry"]).centroid.coords[0])},
                                  "wgs84", "gcj02")["coordinates"]
    found = client.get(f"{TS}/lookup?lon={gcj_point[0]}&lat={gcj_point[1]}&crs=gcj02", headers=h).get_json()
    assert found["id"] == grid["id"]
    assert client.get(f"{TS}/{grid['id']}?crs=mars", headers=h).status_code == 422


def test_data_scope_on_grids(client, login):
    admin, spy = login("admin"), login("sbl_430102_1")
    mine = client.get(f"{TS}?page_size=500", headers=spy).get_json()
    assert mine["total"] > 0
    assert all(g["code"].startswith("G430102") or g["code"].startswith("V-") for g in mine["items"])
    yuelu = _grid(client, admin, "G430104007")
    assert client.get(f"{TS}/{yuelu['id']}", headers=spy).status_code == 404
    assert client.patch(f"{TS}/{yuelu['id']}", json={"name": "x"}, headers=spy).status_code == 404
    p = shape(yuelu["geometry"]).representative_point()
    assert client.get(f"{TS}/lookup?lon={p.x}&lat={p.y}", headers=spy).status_code == 404
    feats = client.get(f"{TS}/geojson?bbox=111,27,115,29&limit=5000", headers=spy).get_json()["features"]
    assert len(feats) == mine["total"]
    assert client.get(f"{TS}?under_id={yuelu['id']}", headers=spy).get_json()["total"] == 0


def test_summary_counts_within_scope(client, login):
    h = login("bl_430102")
    township = _grid(client, h, "G430102001")
    r = client.get(f"{TS}/{township['id']}/summary", headers=h)
    assert r.status_code == 200
    body = r.get_json()
    assert body["children"]["community"] >= 1
    assert body["grid"]["code"] == "G430102001" and body["households"]["range"] == [500, 1000]
    community = client.get(f"{TS}?parent_id={township['id']}", headers=h).get_json()["items"][0]
    s = client.get(f"{TS}/{community['id']}/summary", headers=h).get_json()["households"]
    low, high = s["range"]
    assert s["flag"] == (None if low <= s["estimate"] <= high else ("too_small" if s["estimate"] < low
                                                                   else "too_large"))
    yuelu = _grid(client, login("admin"), "G430104007")
    assert client.get(f"{TS}/{yuelu['id']}/summary", headers=h).status_code == 404


def test_assigned_staff_can_read_their_grids_but_not_edit(client, login):
    """An account manager (scope: self) sees the grids he holds a post on — 「我的网格」 — read-only."""
    h = login("am_430102_1_1")
    mine = client.get(f"{TS}?page_size=500", headers=h).get_json()
    assert mine["total"] >= 1
    me = client.get("/api/v1/me", headers=h).get_json()
    posts = client.get(f"/api/v1/users/{me['id']}/grid-assignments", headers=h).get_json()
    held = {p["grid_id"] for p in (posts["items"] if isinstance(posts, dict) else posts)}
    assert held and held <= {g["id"] for g in mine["items"]}
    gid = next(iter(held))
    assert client.get(f"{TS}/{gid}", headers=h).status_code == 200
    assert client.patch(f"{TS}/{gid}", json={"name": "x"}, headers=h).status_code == 403  # lacks grid:edit
    # another branch's grid stays invisible
    yuelu = _grid(client, login("admin"), "G430104007")
    assert client.get(f"{TS}/{yuelu['id']}", headers=h).status_code == 404


def test_topology_error_geometries_come_back_in_the_request_crs(client, login, township):
    h = login("admin")
    assert _create(client, h, township, "T-E1", _square_inside(township)).status_code == 201
    overlapping = _square_inside(township, dx=0.002)
    gcj = transform_geojson(overlapping, "wgs84", "gcj02")
    body = {"code": "T-E2", "name": "x", "kind": "physical", "level": "community", "parent_id": township["id"],
            "geometry": gcj}
    r = client.post(f"{TS}?crs=gcj02", json=body, headers=h)
    assert r.status_code == 422
    overlap = shape(r.get_json()["detail"]["overlaps"][0]["geometry"])
    assert overlap.within(shape(gcj).buffer(1e-7))  # drawn where the user drew, on the Gaode map
