"""customer_points (migration 0021): raw-point customer tiles read a narrow, pre-projected table with arithmetic tile
coordinates. The tiles equal the customers-based rendering (ST_AsMVTGeom) for every scope; the table stays equal to
its definition over customers through every kind of write; the caller's scope holds from the attacker's side; the
plan uses the cell index as the app role."""

from __future__ import annotations

import dataclasses
import math

import mapbox_vector_tile
import pytest
from sqlalchemy import text

from geo_core.db import SYSTEM, set_context
from tests.tiles import FURONG_CENTRE, YUELU, clear_tile_cache, customers_of_branch, tile_of, visible_customer_ids

R = 6378137.0
HALF = 20037508.342789244
CELL = 2 * HALF / (1 << 18)
USERS = ["admin", "bl_430102", "sbl_430102_1", "am_430102_1_1", "bl_430104"]
ATTACKER = "sbl_430102_1"
EDGE = (-64, 4160)  # the outermost tile coordinates the 64-unit buffer keeps
COLUMNS = "id, org_id, owner_key, cx, cy, grid_id, mx, my, kind, category, profile_type, status"
TRUTH = f"""
SELECT {COLUMNS} FROM (
  SELECT id, org_id, coalesce(owner_user_id, 0) AS owner_key,
         floor((mx + {HALF}) / {CELL})::int AS cx, floor((my + {HALF}) / {CELL})::int AS cy, grid_id, mx, my,
         kind::text AS kind, category::text AS category, profile_type::text AS profile_type, status::text AS status
  FROM (SELECT *, radians(ST_X(geom)) * 6378137.0 AS mx, ln(tan(pi() / 4 + radians(ST_Y(geom)) / 2)) * 6378137.0 AS my
        FROM customers WHERE geom IS NOT NULL AND ST_Y(geom) BETWEEN -85.06 AND 85.06) c) t
"""


@pytest.fixture(autouse=True)
def _fresh_cache(migrated_db):  # noqa: ANN001, ANN202
    clear_tile_cache(migrated_db.redis_url, migrated_db.database_name)
    yield
    clear_tile_cache(migrated_db.redis_url, migrated_db.database_name)


def _points(session) -> dict:  # noqa: ANN001
    return {r[0]: tuple(r) for r in session.execute(text(f"SELECT {COLUMNS} FROM customer_points"))}


def _truth(session) -> dict:  # noqa: ANN001
    return {r[0]: tuple(r) for r in session.execute(text(TRUTH))}


def _assert_exact(session) -> None:  # noqa: ANN001
    set_context(session, SYSTEM)
    got, want = _points(session), _truth(session)
    assert got.keys() == want.keys()
    assert got == want  # floats too: the trigger computes the same expressions


def _features(data: bytes | None) -> dict[int, tuple]:
    if not data:
        return {}
    layer = mapbox_vector_tile.decode(bytes(data), default_options={"y_coord_down": True})["customers"]
    out = {}
    for f in layer["features"]:
        assert f["geometry"]["type"] == "Point"
        out[f["id"]] = (tuple(f["geometry"]["coordinates"]), f["properties"])
    return out


def _served(client, h, z: int, x: int, y: int) -> dict[int, tuple]:  # noqa: ANN001
    r = client.get(f"/tiles/customers/{z}/{x}/{y}.mvt", headers=h)
    assert r.status_code in (200, 204), r.get_json()
    return _features(r.data if r.status_code == 200 else None)


def _customers_rendering(client, h, z: int, x: int, y: int, *, margin_units: int = 64) -> dict[int, tuple]:  # noqa: ANN001
    """The tile as the customers-based statement renders it (ST_AsMVTGeom), in the caller's scope. A wider
    selection margin lets ST_AsMVTGeom alone decide which buffer points stay."""
    from api.extensions import db
    from tiles import sql
    from tiles.layers import LAYERS

    spec = dataclasses.replace(LAYERS["customers"], point_table=None)
    with client.application.test_request_context("/tiles", headers=h):
        client.application.preprocess_request()
        query, params = sql.mvt_query(spec, z, x, y)
        assert "customer_points" not in repr(query)
        params["margin"] = margin_units / sql.EXTENT
        data, clustered = sql.run(db(), query, params)[0]
    assert not clustered
    return _features(data)


def _assert_same_tile(new: dict, old: dict, wide: dict) -> None:
    """New == ST_AsMVTGeom over every point; the old statement's `&&` preselection (a float box) may have missed
    points in the outermost half unit of the buffer, which round onto its edge."""
    assert new == wide
    assert set(old) <= set(new)
    assert all(new[i] == old[i] for i in old)
    assert all(new[i][0][0] in EDGE or new[i][0][1] in EDGE for i in set(new) - set(old))


def _tiles_for(owner_engine, user: str) -> list[tuple[int, int, int]]:  # noqa: ANN001
    with owner_engine.connect() as conn:
        own = conn.execute(text("SELECT ST_X(c.geom), ST_Y(c.geom) FROM customers c JOIN orgs o ON o.id = c.org_id, "
                                "users u JOIN orgs uo ON uo.id = u.org_id WHERE u.username = :u AND c.geom IS NOT "
                                "NULL AND (o.path <@ uo.path OR c.owner_user_id = u.id) ORDER BY c.id LIMIT 1"),
                           {"u": user}).one()
    tiles = []
    for lon, lat in (FURONG_CENTRE, tuple(own)):
        for z in (12, 13, 14, 15, 16, 17):
            _, x, y = tile_of(lon, lat, z)
            tiles += [(z, x, y), (z, x + 1, y)]
    return sorted(set(tiles))


# --- tiles equal the customers-based rendering -----------------------------------------------------------------------

@pytest.mark.parametrize("user", USERS)
def test_tiles_equal_the_customers_rendering(client, login, owner_engine, user):
    h = login(user)
    seen = buffered = 0
    for z, x, y in _tiles_for(owner_engine, user):
        new = _served(client, h, z, x, y)
        _assert_same_tile(new, _customers_rendering(client, h, z, x, y),
                          _customers_rendering(client, h, z, x, y, margin_units=128))
        seen += len(new)
        buffered += sum(1 for (px, py), _ in new.values() if not (0 <= px <= 4096 and 0 <= py <= 4096))
    assert seen > 50 and buffered > 0  # real content, including points in the buffer


def _place(db_session, org_id: int, lonlats: list[tuple[float, float]]) -> list[int]:  # noqa: ANN001
    return list(db_session.scalars(text(
        "INSERT INTO customers (kind, category, name, org_id, geom, profile_type) "
        "SELECT 'person', 'formal', '边缘测试' || n, :o, ST_SetSRID(ST_MakePoint(lon, lat), 4326), 'merchant' "
        "FROM unnest(CAST(:lon AS float8[]), CAST(:lat AS float8[])) WITH ORDINALITY AS p(lon, lat, n) "
        "RETURNING id"), {"o": org_id, "lon": [p[0] for p in lonlats], "lat": [p[1] for p in lonlats]}))


def _lonlat(px: float, py: float, z: int, x: int, y: int) -> tuple[float, float]:
    from tiles import sql

    fx, xoff, fy, yoff = sql.mvt_transform(z, x, y)
    mx, my = (px - xoff) / fx, (py - yoff) / fy
    return math.degrees(mx / R), math.degrees(2 * math.atan(math.exp(my / R)) - math.pi / 2)


@pytest.mark.parametrize("z", [12, 14, 16])
def test_buffer_edge_points_follow_st_asmvtgeom(client, login, db_session, z):
    """Points 0.4 unit inside and beyond the rounding edge of the buffer, on all four sides and a corner."""
    _, x, y = tile_of(*FURONG_CENTRE, z)
    offsets = (-63.6, -64.4, -64.6, 4159.6, 4160.4, 4160.6, 2000.2)
    spots = [(ex, 1000.3) for ex in offsets] + [(1000.3, ey) for ey in offsets] + [(-64.4, 4160.4), (-64.6, -64.4)]
    set_context(db_session, SYSTEM)
    org = db_session.scalar(text("SELECT id FROM orgs WHERE code = 'BR430102'"))
    ids = _place(db_session, org, [_lonlat(px, py, z, x, y) for px, py in spots])
    db_session.flush()
    for user in ("admin", "bl_430102", "bl_430104"):
        h = login(user)
        clear_tile_cache(client.application.extensions["gridmarket"].settings.redis_url,
                         client.application.extensions["gridmarket"].settings.database_name)
        new = _served(client, h, z, x, y)
        _assert_same_tile(new, _customers_rendering(client, h, z, x, y),
                          _customers_rendering(client, h, z, x, y, margin_units=128))
        placed = {i: new[i][0] for i in ids if i in new}
        if user == "bl_430104":
            assert not placed  # another branch's customers
            continue
        kept = {i: (round(px), round(py)) for i, (px, py) in zip(ids, spots, strict=True)
                if all(-64.5 <= v <= 4160.5 for v in (px, py))}
        assert placed == kept and len(kept) == 11
        assert new[ids[0]][1] == {"kind": "person", "category": "formal", "profile_type": "merchant",
                                  **({"status": "active"} if z >= 14 else {})}


# --- the table follows every write ---------------------------------------------------------------------------------

def test_backfill_and_seed_equal_the_definition(db_session):
    _assert_exact(db_session)
    assert db_session.scalar(text("SELECT count(*) FROM customer_points")) > 100


def test_points_follow_every_write(db_session):
    """Multi-row statements as the app role (the trigger is SECURITY DEFINER), checked after each one."""
    set_context(db_session, SYSTEM)
    ids = list(db_session.scalars(text("SELECT id FROM customers WHERE geom IS NOT NULL AND status = 'active' "
                                       "ORDER BY id LIMIT 60")))
    other_org = db_session.scalar(text("SELECT id FROM orgs WHERE code = 'BR430104'"))
    owner = db_session.scalar(text("SELECT id FROM users WHERE username = 'am_430102_1_1'"))
    grid = db_session.scalar(text("SELECT id FROM grids WHERE level = 'community' ORDER BY id DESC LIMIT 1"))
    steps = [
        ("UPDATE customers SET geom = ST_Translate(geom, 0.05, 0.03) WHERE id = ANY(:a)", ids[0:10]),
        ("UPDATE customers SET geom = ST_Translate(geom, 1e-9, 0) WHERE id = ANY(:a)", ids[10:12]),  # a hair
        (f"UPDATE customers SET org_id = {other_org}, owner_user_id = NULL WHERE id = ANY(:a)", ids[12:16]),
        (f"UPDATE customers SET owner_user_id = {owner} WHERE id = ANY(:a)", ids[16:20]),
        ("UPDATE customers SET kind = CASE kind WHEN 'person' THEN 'company'::customer_kind "
         "ELSE 'person'::customer_kind END, id_number_enc = NULL, id_number_bidx = NULL, id_number_mask = NULL, "
         "uscc_enc = NULL, uscc_bidx = NULL, uscc_mask = NULL WHERE id = ANY(:a)", ids[20:24]),
        ("UPDATE customers SET category = CASE category WHEN 'formal' THEN 'potential'::customer_category "
         "ELSE 'formal'::customer_category END WHERE id = ANY(:a)", ids[24:28]),
        ("UPDATE customers SET profile_type = CASE WHEN profile_type IS NULL THEN 'farmer'::profile_type END "
         "WHERE id = ANY(:a)", ids[28:32]),
        ("UPDATE customers SET status = 'closed' WHERE id = ANY(:a)", ids[32:35]),
        (f"UPDATE customers SET grid_id = CASE WHEN grid_id IS NULL THEN {grid} END WHERE id = ANY(:a)", ids[35:40]),
        ("UPDATE customers SET geom = NULL WHERE id = ANY(:a)", ids[40:43]),
        ("UPDATE customers SET geom = ST_SetSRID(ST_MakePoint(113.0, 28.2), 4326) WHERE id = ANY(:a)", ids[40:42]),
        ("UPDATE customers SET geom = ST_SetSRID(ST_MakePoint(113.0, 89.5), 4326) WHERE id = ANY(:a)", ids[43:44]),
        ("DELETE FROM customers WHERE id = ANY(:a)", ids[44:46]),
        # one statement: some rows change, some do not, one loses and one gains its point
        ("UPDATE customers SET name = name || '·', geom = CASE WHEN id = :a0 THEN NULL WHEN geom IS NULL "
         "THEN ST_SetSRID(ST_MakePoint(113.01, 28.21), 4326) WHEN id = :a1 THEN ST_Translate(geom, 0.001, 0) "
         "ELSE geom END WHERE id = ANY(:a)", ids[46:52] + ids[42:43]),
    ]
    assert len(ids) == 60
    for statement, some in steps:
        params = {"a": some, "a0": some[0], "a1": some[1] if len(some) > 1 else some[0]}
        db_session.execute(text(statement), params)
        _assert_exact(db_session)
    # a name-only statement rewrites nothing
    before = dict(db_session.execute(text("SELECT id, xmin::text FROM customer_points WHERE id = ANY(:a)"),
                                     {"a": ids[52:60]}).all())
    db_session.execute(text("UPDATE customers SET name = name || '·' WHERE id = ANY(:a)"), {"a": ids[52:60]})
    assert dict(db_session.execute(text("SELECT id, xmin::text FROM customer_points WHERE id = ANY(:a)"),
                                   {"a": ids[52:60]}).all()) == before and before
    # multi-row insert (with and without a point), a multi-row delete
    new = list(db_session.scalars(text(
        "INSERT INTO customers (kind, category, name, org_id, owner_user_id, geom, grid_id, status) "
        "SELECT kind, category, name || '（复制）', org_id, owner_user_id, CASE WHEN id % 3 = 0 THEN NULL "
        "ELSE geom END, grid_id, status FROM customers WHERE id = ANY(:a) RETURNING id"), {"a": ids[:30]}))
    assert len(new) == 30
    _assert_exact(db_session)
    db_session.execute(text("DELETE FROM customers WHERE name LIKE '%（复制）'"))
    _assert_exact(db_session)


def test_a_changed_id_moves_the_point(owner_engine):
    """Ids do not change in the app (references are not cascaded), but the trigger matches old and new rows by id:
    a changed id is a delete of the old and an insert of the new one."""
    with owner_engine.connect() as conn:
        tx = conn.begin()
        try:
            ids = list(conn.scalars(text(
                "INSERT INTO customers (kind, category, name, org_id, geom) SELECT kind, category, name || '（改号）', "
                "org_id, geom FROM customers ORDER BY id LIMIT 3 RETURNING id")))
            conn.execute(text("DELETE FROM customer_ownerships WHERE customer_id = ANY(:a)"), {"a": ids})
            conn.execute(text("UPDATE customers SET id = id + 1000000, name = name || '·' WHERE id = ANY(:a)"),
                         {"a": ids})
            assert _points(conn) == _truth(conn)
            assert not set(ids) & set(_points(conn)) and {i + 1000000 for i in ids} <= set(_points(conn))
        finally:
            tx.rollback()


def test_truncate_empties_the_points(owner_engine):
    with owner_engine.connect() as conn:
        tx = conn.begin()
        try:
            assert conn.scalar(text("SELECT count(*) FROM customer_points")) > 0
            conn.execute(text("TRUNCATE customers CASCADE"))
            assert conn.scalar(text("SELECT count(*) FROM customer_points")) == 0
        finally:
            tx.rollback()


def test_merge_and_undo_keep_the_points_exact(client, login, db_session):
    """A merge tombstones one archive (status 'merged') and may give the survivor the other's point, org and
    owner; the undo restores both. Tiles show the result at once."""
    h = login("bl_430102")
    set_context(db_session, SYSTEM)
    survivor, merged = db_session.scalars(text(
        "SELECT c.id FROM customers c JOIN orgs o ON o.id = c.org_id WHERE o.path <@ 'n1.n2' AND c.kind = 'person' "
        "AND c.status = 'active' AND c.geom IS NOT NULL ORDER BY c.id LIMIT 2")).all()
    db_session.execute(text("UPDATE customers SET geom = ST_Translate(geom, 0.002, 0.001), category = 'potential' "
                            "WHERE id = :m"), {"m": merged})
    db_session.flush()
    _assert_exact(db_session)
    r = client.post("/api/v1/customer-merges", json={
        "survivor_id": survivor, "merged_id": merged, "reason": "瓦片点表测试",
        "choices": {"location": "merged", "owner": "merged", "category": "merged"}}, headers=h)
    assert r.status_code == 201, r.get_json()
    _assert_exact(db_session)
    rows = _points(db_session)
    assert rows[merged][11] == "merged" and rows[survivor][6:8] == rows[merged][6:8]
    z, x, y = tile_of(*db_session.execute(text("SELECT ST_X(geom), ST_Y(geom) FROM customers WHERE id = :s"),
                                          {"s": survivor}).one(), 16)
    tile = _served(client, h, z, x, y)
    assert tile[merged][1]["status"] == "merged" and tile[survivor][0] == tile[merged][0]
    assert client.post(f"/api/v1/customer-merges/{r.get_json()['id']}/undo", headers=h).status_code == 200
    _assert_exact(db_session)


# --- scope, privileges, plan -----------------------------------------------------------------------------------------

def test_a_sub_branch_manager_never_gets_other_branches_points(client, login, owner_engine, db_session):
    h = login(ATTACKER)
    visible = visible_customer_ids(owner_engine, ATTACKER)
    yuelu = customers_of_branch(owner_engine, "n1.n22")
    with owner_engine.connect() as conn:
        others = dict(conn.execute(text(
            "SELECT c.id, ST_AsText(c.geom) FROM customers c JOIN orgs o ON o.id = c.org_id "
            "WHERE NOT o.path <@ 'n1.n2.n3' AND c.geom IS NOT NULL ORDER BY c.id")).all())
    guesses = {tile_of(lon, lat, z) for z in (12, 14, 16, 17) for lon, lat in list(yuelu.values())[::40]}
    west, south, east, north = YUELU
    guesses |= {tile_of(west + (east - west) * i / 4, south + (north - south) * j / 4, 15)
                for i in range(5) for j in range(5)}
    seen: set[int] = set()
    for z, x, y in sorted(guesses):
        for fid, (_, props) in _served(client, h, z, x, y).items():
            assert "count" not in props
            seen.add(fid)
    assert seen <= visible and not seen & set(yuelu)
    # the guessed tiles do hold other branches' points: admin gets them there
    admin = login("admin")
    shown = set().union(*(_served(client, admin, z, x, y) for z, x, y in sorted(guesses) if z == 14))
    assert shown & set(yuelu) and shown & set(others) - visible
    # read directly, in his scope: exactly his located customers; and he cannot write the derived table
    from geo_core.scope import DataScope, scope_context

    with owner_engine.connect() as conn:
        user_id, org_id, path = conn.execute(text("SELECT u.id, o.id, o.path::text FROM users u JOIN orgs o ON "
                                                  "o.id = u.org_id WHERE u.username = :u"), {"u": ATTACKER}).one()
        located = set(conn.scalars(text("SELECT id FROM customers WHERE geom IS NOT NULL")))
    set_context(db_session, scope_context(user_id, org_id, path, DataScope.org_subtree))
    assert set(db_session.scalars(text("SELECT id FROM customer_points"))) == visible & located
    for statement in ("INSERT INTO customer_points SELECT * FROM customer_points LIMIT 1",
                      "UPDATE customer_points SET org_id = org_id", "DELETE FROM customer_points"):
        db_session.execute(text("SAVEPOINT attack"))
        with pytest.raises(Exception, match="permission denied"):
            db_session.execute(text(statement))
        db_session.execute(text("ROLLBACK TO SAVEPOINT attack"))


@pytest.mark.parametrize("z", [12, 14, 16, 18])
def test_raw_tiles_use_the_cell_index_as_the_app_role(db_session, owner_engine, z):
    from psycopg import sql as pgsql

    from geo_core.scope import DataScope, scope_context
    from tiles import sql
    from tiles.layers import LAYERS

    with owner_engine.connect() as conn:
        user_id, org_id, path = conn.execute(text("SELECT u.id, o.id, o.path::text FROM users u JOIN orgs o "
                                                  "ON o.id = u.org_id WHERE u.username = :u"), {"u": ATTACKER}).one()
    set_context(db_session, scope_context(user_id, org_id, path, DataScope.org_subtree))
    db_session.execute(text("SET LOCAL enable_seqscan = off"))
    assert db_session.scalar(text("SELECT current_user")) != "postgres"
    query, params = sql.mvt_query(LAYERS["customers"], *tile_of(*FURONG_CENTRE, z))
    plan = "\n".join(r[0] for r in sql.run(db_session, pgsql.SQL("EXPLAIN ") + query, params))
    assert "Scan on ix_customer_points_cell" in plan or "Scan using ix_customer_points_cell" in plan, plan
    assert "Index Cond: ((cx = ANY (" in plan and "Seq Scan" not in plan
