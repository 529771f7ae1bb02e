"""grid_customer_stats / grid_customer_visits (migration 0020): /aggregates/grids answered from the pre-aggregates is
identical to the raw join over customers for users of every scope, the triggers keep them exact through every kind
of write (multi-row statements included), the 90-day visit share is exact at the week boundary, another branch
learns nothing, and cached responses follow changes (API writes at once, any other write via the exact change
detector) and never outlive the visit share's exactness."""

from __future__ import annotations

import json

import mapbox_vector_tile
import pytest
from sqlalchemy import text

from geo_core.db import SYSTEM, set_context
from tests.tiles import FURONG_CENTRE, clear_tile_cache, tile_of
from tiles.aggregates import DAYS_90, _stable_for, grid_kpis

WORLD = (-180.0, -90.0, 180.0, 90.0)
USERS = ("admin", "bl_430102", "sbl_430102_1", "am_430102_1_1", "bl_430104")
ATTACKER = "sbl_430102_1"

STATS_TRUTH = """
SELECT grid_id, org_id, coalesce(owner_user_id, 0), kind::text, category::text, count(*),
       coalesce(sum(deposit_balance), 0), coalesce(sum(loan_balance), 0)
FROM customers WHERE grid_id IS NOT NULL GROUP BY 1, 2, 3, 4, 5"""
STATS = ("SELECT grid_id, org_id, owner_key, kind::text, category::text, n, deposit_sum, loan_sum "
         "FROM grid_customer_stats")
VISITS_TRUTH = """
SELECT w.days, gm_visit_bucket(last_visit_at, w.days), grid_id, org_id, coalesce(owner_user_id, 0), count(*)
FROM customers CROSS JOIN (VALUES (1), (7)) w(days) WHERE grid_id IS NOT NULL AND last_visit_at IS NOT NULL
GROUP BY 1, 2, 3, 4, 5"""
VISITS = "SELECT days, bucket, grid_id, org_id, owner_key, n FROM grid_customer_visits"


@pytest.fixture(autouse=True)
def _fresh_cache(migrated_db):  # noqa: ANN001, ANN202
    clear_tile_cache(migrated_db.redis_url, migrated_db.database_name)
    yield
    clear_tile_cache(migrated_db.redis_url, migrated_db.database_name)


def _kpis(app, headers, level: str, raw: bool) -> tuple[list[dict], float | None]:  # noqa: ANN001
    """grid_kpis over the whole world as the user behind `headers` (his RLS context)."""
    with app.test_request_context("/aggregates/grids", headers=headers):
        app.preprocess_request()
        rows, valid_for = grid_kpis(level, WORLD, "NULL", raw=raw)
    return [p for p, _ in rows], valid_for


def _assert_equal_to_raw(app, headers, level: str) -> list[dict]:  # noqa: ANN001
    raw, _ = _kpis(app, headers, level, raw=True)
    new, _ = _kpis(app, headers, level, raw=False)
    assert new == raw  # every grid, every KPI, floats bit for bit
    return new


def _check_exact(db_session) -> None:  # noqa: ANN001
    set_context(db_session, SYSTEM)
    for truth, agg, width in ((STATS_TRUTH, STATS, 5), (VISITS_TRUTH, VISITS, 5)):
        expected = {tuple(r[:width]): tuple(r[width:]) for r in db_session.execute(text(truth))}
        got = {tuple(r[:width]): tuple(r[width:]) for r in db_session.execute(text(agg))}
        assert got == expected, agg
    assert db_session.scalar(text("SELECT count(*) FROM grid_customer_stats WHERE n <= 0")) == 0
    assert db_session.scalar(text("SELECT count(*) FROM grid_customer_visits WHERE n <= 0")) == 0


def _get(client, headers, query: str):  # noqa: ANN001, ANN202
    r = client.get(f"/aggregates/grids?{query}", headers=headers)
    assert r.status_code == 200, r.data[:300]
    return r


def _props(response) -> dict[int, dict]:  # noqa: ANN001
    return {f["id"]: f["properties"] for f in response.get_json()["features"]}


# --- identical to the raw join, per scope ---------------------------------------------------------------------------

@pytest.mark.parametrize("user", USERS)
@pytest.mark.parametrize("level", ["community", "district"])
def test_equal_to_the_raw_query_for_every_scope(app, client, login, user, level):
    h = login(user)
    expected = _assert_equal_to_raw(app, h, level)
    if level == "community" or user in ("admin", "bl_430102", "bl_430104"):  # no district grid in a sub-branch
        assert sum(p["customers"] for p in expected) > 0
    got = _props(_get(client, h, f"level={level}"))
    assert got == {p["id"]: p for p in expected}  # the HTTP answer carries the same figures


def test_scopes_see_different_figures(app, login):
    totals = {u: sum(p["customers"] for p in _kpis(app, login(u), "community", raw=False)[0]) for u in USERS}
    assert totals["admin"] > totals["bl_430102"] > totals["sbl_430102_1"] > 0
    assert 0 < totals["am_430102_1_1"] < totals["bl_430102"] and 0 < totals["bl_430104"] < totals["admin"]


# --- the triggers keep it exact --------------------------------------------------------------------------------------

def _sample(db_session) -> tuple[int, int, int, int, int]:  # noqa: ANN001
    """(grid, org, owner) of a placed customer in 芙蓉, a grid of 岳麓 and a user of 岳麓."""
    set_context(db_session, SYSTEM)
    grid, org, owner = db_session.execute(text(
        "SELECT grid_id, org_id, owner_user_id FROM customers WHERE grid_id IS NOT NULL AND owner_user_id IS NOT NULL "
        "AND org_id IN (SELECT o.id FROM orgs o WHERE o.path <@ (SELECT path FROM orgs WHERE code = 'BR430102')) "
        "ORDER BY id LIMIT 1")).one()
    other_grid, other_owner = db_session.execute(text(
        "SELECT grid_id, owner_user_id FROM customers WHERE grid_id IS NOT NULL AND owner_user_id IS NOT NULL "
        "AND org_id IN (SELECT o.id FROM orgs o WHERE o.path <@ (SELECT path FROM orgs WHERE code = 'BR430104')) "
        "ORDER BY id LIMIT 1")).one()
    return grid, org, owner, other_grid, other_owner


def test_triggers_keep_it_exact_through_every_write(app, login, db_session):
    grid, org, owner, other_grid, other_owner = _sample(db_session)
    h = login("admin")
    _check_exact(db_session)
    # one multi-row INSERT, with visits on both sides of the cutoff and of the boundary day's and week's ends
    db_session.execute(text("""
        INSERT INTO customers (kind, category, name, org_id, grid_id, owner_user_id, deposit_balance, loan_balance,
                               last_visit_at)
        SELECT (ARRAY['person', 'company'])[1 + i % 2]::customer_kind,
               (ARRAY['formal', 'potential'])[1 + i / 2 % 2]::customer_category, '汇总测试' || i, :org, :grid,
               CASE WHEN i % 3 = 0 THEN NULL ELSE :owner END, 1000.01 * i, CASE WHEN i % 4 = 0 THEN NULL ELSE 7.5 END,
               (ARRAY[now() - interval '90 days', now() - interval '90 days' - interval '1 microsecond',
                      gm_visit_bucket_end(gm_visit_bucket(now() - interval '90 days', 1), 1),
                      gm_visit_bucket_end(gm_visit_bucket(now() - interval '90 days', 1), 1)
                        - interval '1 microsecond',
                      gm_visit_bucket_end(gm_visit_bucket(now() - interval '90 days', 7), 7),
                      gm_visit_bucket_end(gm_visit_bucket(now() - interval '90 days', 7), 7)
                        - interval '1 microsecond',
                      now(), NULL, now() - interval '200 days', now() + interval '1 day'])[1 + i % 10]
        FROM generate_series(1, 30) i"""), {"org": org, "grid": grid, "owner": owner})
    ids = list(db_session.scalars(text("SELECT id FROM customers WHERE name LIKE '汇总测试%' ORDER BY id")))
    assert len(ids) == 30
    _check_exact(db_session)
    for level in ("community", "district"):
        _assert_equal_to_raw(app, h, level)
    writes = [
        ("UPDATE customers SET grid_id = :g WHERE id = ANY(:ids)", {"g": other_grid, "ids": ids[:4]}),  # move grid
        ("UPDATE customers SET owner_user_id = :u WHERE id = ANY(:ids)", {"u": other_owner, "ids": ids[4:7]}),
        ("UPDATE customers SET owner_user_id = NULL WHERE id = ANY(:ids)", {"ids": ids[7:9]}),
        ("UPDATE customers SET kind = CASE kind WHEN 'person' THEN 'company'::customer_kind "
         "ELSE 'person'::customer_kind END WHERE id = ANY(:ids)", {"ids": ids[9:12]}),
        ("UPDATE customers SET category = 'formal' WHERE id = ANY(:ids)", {"ids": ids[12:14]}),
        ("UPDATE customers SET deposit_balance = deposit_balance + 0.01, loan_balance = NULL WHERE id = ANY(:ids)",
         {"ids": ids[14:17]}),
        ("UPDATE customers SET last_visit_at = CASE WHEN last_visit_at IS NULL THEN now() "
         "ELSE last_visit_at - interval '3 days' END WHERE id = ANY(:ids)", {"ids": ids[17:21]}),
        ("UPDATE customers SET grid_id = NULL WHERE id = ANY(:ids)", {"ids": ids[21:22]}),
        ("UPDATE customers SET name = name || '·' WHERE id = ANY(:ids)", {"ids": ids}),  # no KPI input: no change
        ("UPDATE customers SET org_id = (SELECT id FROM orgs WHERE code = 'BR430104'), grid_id = :g "
         "WHERE id = ANY(:ids)", {"g": other_grid, "ids": ids[22:24]}),
        ("UPDATE customers SET last_visit_at = last_visit_at + interval '1 day' WHERE id = ANY(:ids)",
         {"ids": ids[24:30]}),  # across the day and week boundaries
        ("DELETE FROM customers WHERE id = ANY(:ids)", {"ids": ids[::5]}),  # multi-row delete
    ]
    for sql, params in writes:
        db_session.execute(text(sql), params)
        _check_exact(db_session)
    for user in ("admin", "bl_430102", "bl_430104"):
        for level in ("community", "district"):
            _assert_equal_to_raw(app, login(user), level)
    db_session.execute(text("DELETE FROM customers WHERE id = ANY(:ids)"), {"ids": ids})
    _check_exact(db_session)


def test_visit_share_is_exact_at_the_boundary_and_says_how_long(app, login, db_session):
    grid, org, owner, _, _ = _sample(db_session)
    h = login("admin")
    _, valid_for = _kpis(app, h, "community", raw=False)
    assert 0 < valid_for <= 86400  # at most until the boundary day's end is 90 days old
    # a visit exactly at the cutoff leaves the window at once: the answer is exact now, and not for long
    db_session.execute(text("INSERT INTO customers (kind, category, name, org_id, grid_id, owner_user_id, "
                            "last_visit_at) VALUES ('person', 'formal', '边界', :o, :g, :u, "
                            "now() - interval '90 days')"), {"o": org, "g": grid, "u": owner})
    for level in ("community", "district"):
        _assert_equal_to_raw(app, h, level)
    _, valid_for = _kpis(app, h, "community", raw=False)
    assert valid_for <= 0
    # such an answer is served but never cached
    client = app.test_client()
    assert _get(client, h, "level=district").headers["X-Tile-Cache"] == "miss"
    assert _get(client, h, "level=district").headers["X-Tile-Cache"] == "miss"


def test_the_answer_stays_exact_until_it_says(app, login, db_session):
    """Moving every visit back by d is what d seconds of time do to the 90-day window: just inside the lifetime the
    raw query still gives the same answer."""
    h = login("admin")
    before, valid_for = _kpis(app, h, "community", raw=False)
    assert valid_for is not None and valid_for > 60
    set_context(db_session, SYSTEM)
    db_session.execute(text("UPDATE customers SET last_visit_at = last_visit_at - make_interval(secs => :d) "
                            "WHERE last_visit_at IS NOT NULL"), {"d": valid_for - 30})
    assert _assert_equal_to_raw(app, h, "community") == before


def test_stable_for_rounding_and_fallbacks():
    edge_end = 1_000_000.0
    # 1 of 3 leaving changes 0.6667 at once: the earliest boundary visit + 90 days
    assert _stable_for(2, 3, 2, [10.0, 20.0], edge_end) == 10.0 + DAYS_90
    # 100,000 customers: the share moves in steps of 0.00001, the rounded one only every ~10 departures
    k = _stable_for(50_000, 100_000, 64, [float(i) for i in range(64)], edge_end) - DAYS_90
    assert 0 < k < 64 and round((50_000 - k - 1) / 100_000, 4) != 0.5
    assert round((50_000 - k) / 100_000, 4) == 0.5
    # more departures needed than boundary visits known: the last known one (truncated) or the week's end
    assert _stable_for(50_000, 100_000, 500, [1.0] * 3, edge_end) == 1.0 + DAYS_90
    assert _stable_for(50_000, 100_000, 3, [1.0] * 3, edge_end) == edge_end + DAYS_90
    # nothing visited, or a share that rounds to 0 whatever happens: forever
    assert _stable_for(0, 10, 0, None, edge_end) == float("inf")
    assert _stable_for(1, 1_000_000, 1, [5.0], edge_end) == float("inf")


# --- scope from the attacker's side ----------------------------------------------------------------------------------

def test_a_sub_branch_manager_gets_nothing_of_another_branch(app, client, login, db_session, owner_engine):
    spy = login(ATTACKER)
    with owner_engine.connect() as conn:
        user_id, path = conn.execute(text("SELECT u.id, o.path::text FROM users u JOIN orgs o ON o.id = u.org_id "
                                          "WHERE u.username = :u"), {"u": ATTACKER}).one()
        yuelu_orgs = set(conn.scalars(text("SELECT id FROM orgs WHERE path <@ (SELECT path FROM orgs "
                                           "WHERE code = 'BR430104')")))
        yuelu_grids = set(conn.scalars(text("SELECT id FROM grids WHERE org_id = ANY(:o)"), {"o": list(yuelu_orgs)}))
        mine = set(conn.scalars(text("SELECT id FROM orgs WHERE path <@ CAST(:p AS ltree)"), {"p": path}))
        expected = {t: conn.scalar(text(f"SELECT count(*) FROM {t} WHERE org_id = ANY(:o) OR owner_key = :u"),
                                   {"o": list(mine), "u": user_id})
                    for t in ("grid_customer_stats", "grid_customer_visits", "grid_customer_stats_versions")}
    assert yuelu_orgs and yuelu_grids
    # admin's cached answer is never served to him
    admin = _get(client, login("admin"), "level=community")
    assert _get(client, login("admin"), "level=community").headers["X-Tile-Cache"] == "hit"
    r = _get(client, spy, "level=community")
    assert r.headers["X-Tile-Cache"] == "miss" and r.data != admin.data
    # the tables themselves, read as him: only rows of his sub-branch or customers he manages
    with app.test_request_context("/aggregates/grids", headers=spy):
        app.preprocess_request()
        from api.extensions import db

        for table, n in expected.items():
            rows = db().execute(text(f"SELECT org_id, owner_key FROM {table}")).all()
            assert len(rows) == n and all(o in mine or k == user_id for o, k in rows), table
            assert not {o for o, _ in rows} & yuelu_orgs
        with pytest.raises(Exception, match="permission denied"), db().begin_nested():
            db().execute(text("UPDATE grid_customer_stats SET n = n + 1"))
    # the endpoint: no grid of 岳麓, at no level, in no form; a bbox over 岳麓 is empty
    for level in ("community", "district"):
        assert not set(_props(_get(client, spy, f"level={level}"))) & yuelu_grids
    assert _get(client, spy, "level=community&bbox=112.60,27.95,112.97,28.30").get_json()["features"] == []


# --- cache ------------------------------------------------------------------------------------------------------------

def test_cache_hit_etag_and_mvt(client, login):
    h = login("admin")
    first = _get(client, h, "level=district")
    assert first.headers["X-Tile-Cache"] == "miss" and first.headers["Cache-Control"].startswith("private")
    second = _get(client, h, "level=district")
    assert second.headers["X-Tile-Cache"] == "hit" and second.data == first.data
    assert second.headers["ETag"] == first.headers["ETag"]
    assert client.get("/aggregates/grids?level=district", headers={**h, "If-None-Match": first.headers["ETag"]}
                      ).status_code == 304
    assert _get(client, h, "level=district&crs=gcj02").headers["X-Tile-Cache"] == "miss"  # other parameters
    by_id = _props(first)
    z, x, y = tile_of(*FURONG_CENTRE, 9)
    tile = client.get(f"/aggregates/grids/{z}/{x}/{y}.mvt?level=district", headers=h)
    assert tile.status_code == 200 and tile.headers["X-Tile-Cache"] == "miss"
    again = client.get(f"/aggregates/grids/{z}/{x}/{y}.mvt?level=district", headers=h)
    assert again.headers["X-Tile-Cache"] == "hit" and again.data == tile.data
    assert client.get(f"/aggregates/grids/{z}/{x}/{y}.mvt?level=district",
                      headers={**h, "If-None-Match": tile.headers["ETag"]}).status_code == 304
    feats = mapbox_vector_tile.decode(tile.data)["grid_aggregates"]["features"]
    assert feats and all(f["properties"]["customers"] == by_id[f["id"]]["customers"] for f in feats)


def test_cache_follows_api_writes_at_once(app, client, login, db_session):
    h = login("admin")
    before = _props(_get(client, h, "level=district"))
    set_context(db_session, SYSTEM)
    cid, grid = db_session.execute(text("SELECT id, grid_id FROM customers WHERE category = 'potential' "
                                        "AND grid_id IS NOT NULL ORDER BY id LIMIT 1")).one()
    r = client.patch(f"/api/v1/customers/{cid}", json={"category": "formal"}, headers=h)
    assert r.status_code == 200, r.get_json()
    after = _get(client, h, "level=district")
    assert after.headers["X-Tile-Cache"] == "miss"
    changed = _props(after)
    assert sum(p["formal"] for p in changed.values()) == sum(p["formal"] for p in before.values()) + 1
    assert changed == {p["id"]: p for p in _assert_equal_to_raw(app, h, "district")}


def test_cache_follows_writes_that_bypass_the_api(app, client, login, db_session):
    """A balance change by SQL that leaves updated_at alone: the customers tile fingerprint cannot see it, the
    aggregates' own change detector does once its lifetime (GM_TILES_VERSION_TTL) is over."""
    from tiles.layers import get_layer
    from tiles.vector_tiles import fingerprint

    state = app.extensions["gridmarket"]
    h = login("admin")
    before = _props(_get(client, h, "level=district"))
    set_context(db_session, SYSTEM)
    tile_fp = fingerprint(db_session, get_layer("customers"))
    cid = db_session.scalar(text("SELECT id FROM customers WHERE grid_id IS NOT NULL ORDER BY id LIMIT 1"))
    db_session.execute(text("UPDATE customers SET deposit_balance = coalesce(deposit_balance, 0) + 500 "
                            "WHERE id = :id"), {"id": cid})
    assert fingerprint(db_session, get_layer("customers")) == tile_fp
    assert _get(client, h, "level=district").headers["X-Tile-Cache"] == "hit"  # within the detector's lifetime
    namespace = state.settings.database_name
    for key in state.redis.scan_iter(f"gm:tiles:{namespace}:fp:grid_customer_stats:*"):
        state.redis.delete(key)
    r = _get(client, h, "level=district")
    assert r.headers["X-Tile-Cache"] == "miss"
    after = _props(r)
    assert sum(p["deposit_sum"] for p in after.values()) == pytest.approx(
        sum(p["deposit_sum"] for p in before.values()) + 500, abs=0.01)
    assert after == {p["id"]: p for p in _assert_equal_to_raw(app, h, "district")}


def test_an_expired_entry_is_not_served(app, client, login):
    state = app.extensions["gridmarket"]
    h = login("admin")
    first = _get(client, h, "level=community")
    assert _get(client, h, "level=community").headers["X-Tile-Cache"] == "hit"
    keys = list(state.redis.scan_iter(f"gm:tiles:{state.settings.database_name}:customers:*:agg:*"))
    assert len(keys) == 1
    entry = state.redis.get(keys[0])
    head, _, body = entry.partition(b"\n")
    assert float(head) > 0 and json.loads(body) == first.get_json()  # the visit share bounds its lifetime
    state.redis.set(keys[0], b"1.0\n" + body)  # as if that moment had passed
    assert _get(client, h, "level=community").headers["X-Tile-Cache"] == "miss"


def test_cache_off_answers_the_same(app, client, login):
    import dataclasses

    h = login("bl_430102")
    cached = _get(client, h, "level=community")
    saved = app.extensions["gridmarket_tiles"]
    app.extensions["gridmarket_tiles"] = dataclasses.replace(saved, cache_enabled=False)
    try:
        r = _get(client, h, "level=community")
    finally:
        app.extensions["gridmarket_tiles"] = saved
    assert r.headers["X-Tile-Cache"] == "off" and r.get_json() == cached.get_json()
