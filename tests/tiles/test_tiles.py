"""Vector tiles and TileJSON: decoded with mapbox-vector-tile and checked against SQL ground truth - layers,
attributes per zoom, coordinates, clusters that count every point, GCJ-02 shifting, caching and conditional
requests, the GiST plan under row-level security, and data scope / PII from the attacker's side."""

from __future__ import annotations

import dataclasses
import math

import mapbox_vector_tile
import pytest
from sqlalchemy import text

from geo_core.crs import wgs84_to_gcj02
from tests.tiles import (
    EXTENT,
    FURONG_CENTRE,
    YUELU,
    clear_tile_cache,
    customer_points,
    customers_of_branch,
    tile_of,
    tile_px,
    visible_customer_ids,
)

ATTACKER = "sbl_430102_1"
CUSTOMER_TILE_PROPS = {"kind", "category", "profile_type", "grid_id", "status", "count", "formal"}
BUFFER = 64


@pytest.fixture(autouse=True)
def _fresh_cache(migrated_db):  # noqa: ANN001, ANN202
    clear_tile_cache(migrated_db.redis_url, migrated_db.database_name)
    yield
    clear_tile_cache(migrated_db.redis_url, migrated_db.database_name)


@pytest.fixture()
def layer_override():  # noqa: ANN201
    """Swap a registered layer's spec for one test."""
    from tiles.layers import LAYERS

    saved = dict(LAYERS)

    def _set(name: str, **changes):  # noqa: ANN202
        LAYERS[name] = dataclasses.replace(LAYERS[name], **changes)

    yield _set
    LAYERS.clear()
    LAYERS.update(saved)


def _tile(client, headers, layer: str, z: int, x: int, y: int, crs: str | None = None):  # noqa: ANN001, ANN202
    suffix = f"?crs={crs}" if crs else ""
    return client.get(f"/tiles/{layer}/{z}/{x}/{y}.mvt{suffix}", headers=headers)


def _decode(data: bytes) -> dict:
    return mapbox_vector_tile.decode(data, default_options={"y_coord_down": True})


def _features(client, headers, layer: str, z: int, x: int, y: int, crs: str | None = None) -> list[dict]:  # noqa: ANN001
    r = _tile(client, headers, layer, z, x, y, crs)
    if r.status_code == 204:
        return []
    assert r.status_code == 200, r.get_json()
    assert r.headers["Content-Type"] == "application/vnd.mapbox-vector-tile"
    decoded = _decode(r.data)
    assert set(decoded) == {layer}
    assert decoded[layer]["extent"] == EXTENT
    return decoded[layer]["features"]


def _in_tile(px: tuple[float, float], margin: float = 0) -> bool:
    return -margin <= px[0] <= EXTENT + margin and -margin <= px[1] <= EXTENT + margin


# --- TileJSON and the layer list -------------------------------------------------------------------------------------

def test_layer_list_and_tilejson(client, login):
    h = login("admin")
    layers = {entry["id"]: entry for entry in client.get("/tiles", headers=h).get_json()["layers"]}
    assert set(layers) == {"grids", "customers", "outlets", "pois"}
    assert "outlets" not in {e["id"] for e in client.get("/tiles", headers=login("ga_430102_1")).get_json()["layers"]}
    tj = client.get("/tiles/customers.json", headers=h).get_json()
    assert tj["tilejson"] == "3.0.0" and tj["tiles"] == ["http://localhost/tiles/customers/{z}/{x}/{y}.mvt"]
    assert tj["minzoom"] == 0 and tj["maxzoom"] == 18
    west, south, east, north = tj["bounds"]
    assert 112.5 < west < east < 113.2 and 27.9 < south < north < 28.4
    (layer,) = tj["vector_layers"]
    assert layer["id"] == "customers" and {"count", "formal", "kind", "category"} <= set(layer["fields"])
    assert not set(layer["fields"]) - CUSTOMER_TILE_PROPS
    gcj = client.get("/tiles/customers.json?crs=gcj02", headers=h).get_json()
    assert gcj["tiles"][0].endswith(".mvt?crs=gcj02") and gcj["bounds"][0] == pytest.approx(
        wgs84_to_gcj02(west, south)[0], abs=1e-6)
    assert client.get("/tiles/customers.json").status_code == 401
    assert client.get("/tiles/nope.json", headers=h).status_code == 404


def test_tiles_need_a_token_and_the_permission(client, login):
    assert _tile(client, {}, "customers", 12, 3334, 1713).status_code == 401
    r = _tile(client, login("ga_430102_1"), "outlets", 12, 3334, 1713)
    assert r.status_code == 403 and r.get_json()["code"] == "PERMISSION_DENIED"


def test_empty_out_of_range_and_bad_crs(client, login):
    h = login("admin")
    r = _tile(client, h, "customers", 10, 0, 0)  # the Pacific
    assert r.status_code == 204 and not r.data and r.headers["Cache-Control"].startswith("private")
    for z, x, y in ((19, 0, 0), (10, 1024, 0), (3, 2, 8)):
        r = _tile(client, h, "customers", z, x, y)
        assert r.status_code == 404 and r.get_json()["code"] == "TILE_OUT_OF_RANGE", (z, x, y)
    r = _tile(client, h, "customers", 12, 3334, 1713, crs="bd09")
    assert r.status_code == 400 and r.get_json()["errors"]["crs"]


# --- content -------------------------------------------------------------------------------------------------------

def test_raw_points_have_the_right_ids_positions_and_fields_per_zoom(client, login, owner_engine):
    h = login("admin")
    points = customer_points(owner_engine)
    for z in (12, 14):
        _, x, y = tile_of(*FURONG_CENTRE, z)
        features = _features(client, h, "customers", z, x, y)
        got = {f["id"]: f for f in features}
        # the tile holds its points plus those within the 64-unit buffer (give or take rounding at the buffer edge)
        must = {cid for cid, p in points.items() if _in_tile(tile_px(*p, z, x, y), margin=BUFFER - 1)}
        may = {cid for cid, p in points.items() if _in_tile(tile_px(*p, z, x, y), margin=BUFFER + 1)}
        assert must <= set(got) <= may and len(must) > 20
        for cid, f in got.items():
            px = tile_px(*points[cid], z, x, y)
            assert f["geometry"]["coordinates"] == pytest.approx(list(px), abs=1.0)
        keys = set().union(*(f["properties"] for f in features))
        assert keys == ({"kind", "category", "profile_type"} if z == 12 else
                        {"kind", "category", "profile_type", "grid_id", "status"})


def test_low_zoom_clusters_count_every_point(client, login, owner_engine):
    h = login("admin")
    points = customer_points(owner_engine)
    with owner_engine.connect() as conn:
        formal = set(conn.scalars(text("SELECT id FROM customers WHERE category = 'formal'")))
    z, x, y = tile_of(*FURONG_CENTRE, 10)
    features = _features(client, h, "customers", z, x, y)
    inside = [cid for cid, p in points.items() if _in_tile(tile_px(*p, z, x, y))]
    assert all(set(f["properties"]) == {"count", "formal"} for f in features)
    assert len(features) <= 32 * 32 + 64
    assert sum(f["properties"]["count"] for f in features) == len(inside) > 1000
    assert sum(f["properties"]["formal"] for f in features) == len(formal & set(inside))


@pytest.mark.parametrize("crs", [None, "gcj02"])
def test_clusters_partition_the_data_across_tiles(client, login, owner_engine, crs):
    """Adjacent tiles share their edges exactly: summed over all tiles, every point is counted once."""
    h = login("admin")
    total = len(customer_points(owner_engine))
    z = 9
    _, x0, y0 = tile_of(YUELU[0] - 0.3, YUELU[3] + 0.3, z)
    _, x1, y1 = tile_of(FURONG_CENTRE[0] + 0.5, YUELU[1] - 0.3, z)
    counted = sum(f["properties"]["count"] for x in range(x0, x1 + 1) for y in range(y0, y1 + 1)
                  for f in _features(client, h, "customers", z, x, y, crs))
    assert counted == total


def test_a_dense_tile_is_clustered_not_truncated(client, login, owner_engine, layer_override):
    from tiles.layers import LAYERS

    h = login("admin")
    z, x, y = tile_of(*FURONG_CENTRE, 12)
    raw = _features(client, h, "customers", z, x, y)
    inside = sum(1 for f in raw if _in_tile(tuple(f["geometry"]["coordinates"])))
    layer_override("customers", clustering=dataclasses.replace(LAYERS["customers"].clustering, max_points=50))
    for crs in (None, "gcj02"):
        clustered = _features(client, h, "customers", z, x, y, crs)
        assert clustered and all("count" in f["properties"] for f in clustered)
        if crs is None:
            assert sum(f["properties"]["count"] for f in clustered) == inside


def test_byte_budget_forces_clusters(client, login, app, layer_override):
    import tiles
    from tiles.layers import LAYERS

    h = login("admin")
    z, x, y = tile_of(*FURONG_CENTRE, 12)
    assert len(_tile(client, h, "customers", z, x, y).data) > 10_000
    clear_tile_cache(app.extensions["gridmarket"].settings.redis_url,
                     app.extensions["gridmarket"].settings.database_name)
    original = app.extensions[tiles.EXTENSION_KEY]
    app.extensions[tiles.EXTENSION_KEY] = dataclasses.replace(original, byte_budget=10_000)
    try:
        features = _features(client, h, "customers", z, x, y)
    finally:
        app.extensions[tiles.EXTENSION_KEY] = original
    assert features and all("count" in f["properties"] for f in features)
    assert LAYERS["customers"].clustering.max_points == 20_000


def test_grid_tiles_thin_polygons_by_level(client, login):
    h = login("admin")
    levels = {}
    for z in (8, 10, 12):
        _, x, y = tile_of(*FURONG_CENTRE, z)
        features = _features(client, h, "grids", z, x, y)
        assert all(f["geometry"]["type"] in ("Polygon", "MultiPolygon") for f in features)
        levels[z] = {f["properties"].get("level") for f in features}
    assert levels[8] <= {"city", "district"}
    assert "township" in levels[10] and "community" not in levels[10]
    assert "community" in levels[12]
    z12 = _features(client, h, "grids", *tile_of(*FURONG_CENTRE, 12))
    assert {"code", "name", "level", "org_id", "area_m2"} <= set().union(*(f["properties"] for f in z12))


# --- GCJ-02 ----------------------------------------------------------------------------------------------------------

def test_gcj02_tiles_shift_points_exactly_and_keep_edge_features(client, login, owner_engine):
    h = login("admin")
    points = customer_points(owner_engine)
    z = 14
    _, x, y = tile_of(*FURONG_CENTRE, z)
    features = _features(client, h, "customers", z, x, y, "gcj02")
    got = {f["id"]: f["geometry"]["coordinates"] for f in features}
    shifted = {cid: tile_px(*wgs84_to_gcj02(*p), z, x, y) for cid, p in points.items()}
    expected = {cid for cid, px in shifted.items() if _in_tile(px, margin=BUFFER - 1)}
    assert expected <= set(got) <= {cid for cid, px in shifted.items() if _in_tile(px, margin=BUFFER + 1)}
    assert expected
    for cid, coords in got.items():
        assert coords == pytest.approx(list(shifted[cid]), abs=1.0)
    # the ~660 m offset moves points across tile edges: the shifted tile keeps some the WGS84 tile does not hold
    plain = {f["id"] for f in _features(client, h, "customers", z, x, y)}
    assert expected - plain


def test_gcj02_tiles_shift_polygons(client, login, owner_engine):
    h = login("admin")
    with owner_engine.connect() as conn:
        gid, lon, lat = conn.execute(text(
            "SELECT id, ST_X(p), ST_Y(p) FROM (SELECT id, ST_PointOnSurface(geom) AS p FROM grids "
            "WHERE level = 'community' AND ST_Area(geom::geography) > 500000 ORDER BY id LIMIT 1) s")).one()
    z, x, y = tile_of(lon, lat, 12)
    plain = {f["id"]: f for f in _features(client, h, "grids", z, x, y)}[gid]
    shifted = {f["id"]: f for f in _features(client, h, "grids", z, x, y, "gcj02")}[gid]

    def centre(f: dict) -> tuple[float, float]:
        rings = f["geometry"]["coordinates"] if f["geometry"]["type"] == "Polygon" else \
            [r for poly in f["geometry"]["coordinates"] for r in poly]
        xs = [c[0] for c in rings[0]]
        ys = [c[1] for c in rings[0]]
        return (min(xs) + max(xs)) / 2, (min(ys) + max(ys)) / 2

    (ax, ay), (bx, by) = centre(plain), centre(shifted)
    ex, ey = (a - b for a, b in zip(tile_px(*wgs84_to_gcj02(lon, lat), z, x, y), tile_px(lon, lat, z, x, y),
                                    strict=True))
    assert math.hypot(ex, ey) > 50  # the shift is visible at z12 (hundreds of metres)
    assert bx - ax == pytest.approx(ex, abs=3) and by - ay == pytest.approx(ey, abs=3)


# --- caching and conditional requests ------------------------------------------------------------------------------

def test_etag_304_and_cache_headers(client, login):
    h = login("admin")
    z, x, y = tile_of(*FURONG_CENTRE, 13)
    first = _tile(client, h, "customers", z, x, y)
    assert first.status_code == 200 and first.headers["X-Tile-Cache"] == "miss"
    assert first.headers["Cache-Control"].startswith("private, max-age=") and "Authorization" in first.headers["Vary"]
    etag = first.headers["ETag"]
    second = _tile(client, h, "customers", z, x, y)
    assert second.headers["X-Tile-Cache"] == "hit" and second.data == first.data and second.headers["ETag"] == etag
    conditional = client.get(f"/tiles/customers/{z}/{x}/{y}.mvt", headers={**h, "If-None-Match": etag})
    assert conditional.status_code == 304 and not conditional.data
    other = client.get(f"/tiles/customers/{z}/{x}/{y}.mvt", headers={**h, "If-None-Match": '"nope"'})
    assert other.status_code == 200


def test_cache_follows_data_changes_and_bumps(client, login, db_session, app):
    from geo_core.db import SYSTEM, set_context
    from tiles.cache import bump

    state = app.extensions["gridmarket"]
    h = login("admin")
    z, x, y = tile_of(*FURONG_CENTRE, 14)
    before = {f["id"] for f in _features(client, h, "customers", z, x, y)}
    assert _tile(client, h, "customers", z, x, y).headers["X-Tile-Cache"] == "hit"
    set_context(db_session, SYSTEM)
    lon, lat = FURONG_CENTRE
    mover = db_session.scalar(text("SELECT id FROM customers WHERE NOT ST_DWithin(geom, ST_Point(:x, :y, 4326), 0.2) "
                                   "ORDER BY id LIMIT 1"), {"x": lon, "y": lat})
    db_session.execute(text("UPDATE customers SET geom = ST_Point(:x, :y, 4326), updated_at = clock_timestamp() "
                            "WHERE id = :id"), {"x": lon, "y": lat, "id": mover})
    db_session.flush()
    # within the fingerprint's lifetime the cached tile stands; once it expires the change shows
    assert _tile(client, h, "customers", z, x, y).headers["X-Tile-Cache"] == "hit"
    for key in state.redis.scan_iter(f"gm:tiles:{state.settings.database_name}:fp:customers:*"):
        state.redis.delete(key)
    r = _tile(client, h, "customers", z, x, y)
    assert r.headers["X-Tile-Cache"] == "miss"
    assert {f["id"] for f in _decode(r.data)["customers"]["features"]} == before | {mover}
    assert _tile(client, h, "customers", z, x, y).headers["X-Tile-Cache"] == "hit"
    bump("customers", redis=state.redis, namespace=state.settings.database_name)
    assert _tile(client, h, "customers", z, x, y).headers["X-Tile-Cache"] == "miss"


def test_cached_tiles_are_never_shared_across_scopes(client, login, owner_engine):
    z, x, y = tile_of(*FURONG_CENTRE, 12)
    admin = _features(client, login("admin"), "customers", z, x, y)
    r = _tile(client, login(ATTACKER), "customers", z, x, y)
    assert r.headers["X-Tile-Cache"] == "miss"
    mine = {f["id"] for f in _decode(r.data)["customers"]["features"]}
    assert mine <= visible_customer_ids(owner_engine, ATTACKER) and len(mine) < len(admin)


# --- the plan under row-level security ------------------------------------------------------------------------------

@pytest.mark.parametrize(("layer", "index", "z"), [
    ("customers", "ix_customers_geom", 14), ("customers", "customer_cells_pkey", 9), ("grids", "ix_grids_geom", 12),
    ("outlets", "ix_orgs_location_gist", 14), ("pois", "ix_pois_geom", 14)])
def test_tile_sql_uses_the_gist_index_as_the_app_role(db_session, owner_engine, layer, index, z):
    from psycopg import sql as pgsql

    from geo_core.db import set_context
    from geo_core.scope import DataScope, scope_context
    from tiles import sql
    from tiles.layers import LAYERS

    with owner_engine.connect() as conn:
        user_id, org_id, path = conn.execute(text("SELECT u.id, o.id, o.path::text FROM users u JOIN orgs o "
                                                  "ON o.id = u.org_id WHERE u.username = :u"), {"u": ATTACKER}).one()
    set_context(db_session, scope_context(user_id, org_id, path, DataScope.org_subtree))
    db_session.execute(text("SET LOCAL enable_seqscan = off"))
    assert db_session.scalar(text("SELECT current_user")) != "postgres"
    spec = LAYERS[layer]
    query, params = sql.mvt_query(spec, *tile_of(*FURONG_CENTRE, z))
    plan = "\n".join(r[0] for r in sql.run(db_session, pgsql.SQL("EXPLAIN ") + query, params))
    assert index in plan, plan
    where = sql.Where(spec)
    sql.bbox_condition(spec, where, (113.0, 28.18, 113.05, 28.22))
    items, params = sql.count_query(spec, where)
    plan = "\n".join(r[0] for r in sql.run(db_session, pgsql.SQL("EXPLAIN ") + items, params))
    gist = {"customers": "ix_customers_geom", "grids": "ix_grids_geom", "outlets": "ix_orgs_location_gist",
            "pois": "ix_pois_geom"}
    assert gist[layer] in plan, plan  # low-zoom customer tiles read customer_cells, items the GiST index


# --- data scope and PII from the attacker's side --------------------------------------------------------------------

def test_tiles_over_yuelu_give_the_attacker_nothing(client, login, owner_engine):
    h = login(ATTACKER)
    yuelu = customers_of_branch(owner_engine, "n1.n22")
    visible = visible_customer_ids(owner_engine, ATTACKER)
    with owner_engine.connect() as conn:
        yuelu_grids = set(conn.scalars(text("SELECT g.id FROM grids g JOIN orgs o ON o.id = g.org_id "
                                            "WHERE o.path <@ 'n1.n22'")))
    west, south, east, north = YUELU
    for z in (12, 14, 16):
        seen: set[int] = set()
        for lon, lat in list(yuelu.values())[:: max(1, len(yuelu) // 15)]:
            _, x, y = tile_of(lon, lat, z)
            for crs in (None, "gcj02"):
                for f in _features(client, h, "customers", z, x, y, crs):
                    assert "count" not in f["properties"]
                    seen.add(f["id"])
                grids = {f["id"] for f in _features(client, h, "grids", z, x, y, crs)}
                assert not grids & yuelu_grids
        assert seen <= visible and not seen & set(yuelu)
    # clusters at low zoom count only his customers
    z, x, y = tile_of((west + east) / 2, (south + north) / 2, 10)
    counted = sum(f["properties"]["count"] for f in _features(client, h, "customers", z, x, y))
    points = customer_points(owner_engine)
    assert counted == sum(1 for cid in visible if _in_tile(tile_px(*points[cid], z, x, y)))
    tj = client.get("/tiles/customers.json", headers=h).get_json()
    assert tj["bounds"][0] > east  # TileJSON bounds cover only 芙蓉 (east of the river)


def test_no_pii_in_any_customer_tile(client, login, owner_engine):
    with owner_engine.connect() as conn:
        secrets = set()
        for row in conn.execute(text("SELECT name, phone_mask, id_number_mask, uscc_mask, address, customer_no "
                                     "FROM customers")):
            secrets.update(str(v) for v in row if v)
    h = login("admin")
    for z in (8, 10, 12, 14, 16, 18):
        _, x, y = tile_of(*FURONG_CENTRE, z)
        for crs in (None, "gcj02"):
            for f in _features(client, h, "customers", z, x, y, crs):
                assert set(f["properties"]) <= CUSTOMER_TILE_PROPS, f
                assert not {str(v) for v in f["properties"].values()} & secrets, f


def test_python_mvt_encoder_round_trips():
    """The encoder of the shifted path: values of every type, ids, point and polygon-with-hole geometry, ring
    orientation (exterior positive area with y down, holes negative), degenerate shapes dropped."""
    import shapely

    from tiles.vector_tiles import encode_layer

    def area(ring: list) -> float:
        return sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in zip(ring, ring[1:], strict=False))

    hole_cw = [(20, 20), (40, 20), (40, 40), (20, 40)]
    polygon = shapely.Polygon([(0, 0), (0, 100), (100, 100), (100, 0)], [hole_cw])
    props = {"a": 1, "b": -5, "c": 2.5, "d": True, "e": "网格", "skip": None}
    data = encode_layer("l", [{"geometry": polygon, "properties": props, "id": 9},
                              {"geometry": shapely.Point(10.4, 4095.6), "properties": {"a": 1}, "id": None},
                              {"geometry": shapely.Polygon([(0, 0), (0.2, 0), (0.2, 0.2)]), "properties": {}}])
    layer = _decode(data)["l"]
    assert layer["extent"] == EXTENT and len(layer["features"]) == 2
    poly, point = layer["features"]
    assert poly["id"] == 9 and poly["properties"] == {k: v for k, v in props.items() if v is not None}
    shell, hole = poly["geometry"]["coordinates"]
    assert area(shell) > 0 > area(hole) and sorted(map(tuple, shell[:-1])) == [(0, 0), (0, 100), (100, 0), (100, 100)]
    assert point["geometry"]["coordinates"] == [10, 4096] and point["properties"] == {"a": 1}
    assert encode_layer("l", [{"geometry": shapely.Polygon([(0, 0), (0.2, 0), (0.2, 0.2)]), "properties": {}}]) == b""
