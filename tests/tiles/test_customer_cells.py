"""customer_cells (migration 0018): the pre-aggregated z11 cluster grid stays equal to aggregating the customers
themselves through inserts, moves, re-assignments and deletes; low-zoom tiles built from it give the same clusters
as clustering the points, for every scope."""

from __future__ import annotations

import mapbox_vector_tile
import pytest
from sqlalchemy import text

from tests.tiles import FURONG_CENTRE, clear_tile_cache, tile_of

HALF = 20037508.342789244
CELL = 2 * HALF / 65536
TRUTH = f"""
SELECT floor((radians(ST_X(geom)) * 6378137.0 + {HALF}) / {CELL})::int AS ix,
       floor((ln(tan(pi() / 4 + radians(ST_Y(geom)) / 2)) * 6378137.0 + {HALF}) / {CELL})::int AS iy,
       org_id, coalesce(owner_user_id, 0) AS owner_key, count(*) AS n,
       count(*) FILTER (WHERE category = 'formal') AS n_formal,
       sum(radians(ST_X(geom)) * 6378137.0) AS sx, sum(ln(tan(pi() / 4 + radians(ST_Y(geom)) / 2)) * 6378137.0) AS sy
FROM customers WHERE geom IS NOT NULL GROUP BY 1, 2, 3, 4
"""


def _cells(conn) -> dict:  # noqa: ANN001
    return {r[:4]: r[4:] for r in conn.execute(text("SELECT ix, iy, org_id, owner_key, n, n_formal, sx, sy "
                                                    "FROM customer_cells")).all()}


def _truth(conn) -> dict:  # noqa: ANN001
    return {r[:4]: r[4:] for r in conn.execute(text(TRUTH)).all()}


def _same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key, (n, f, sx, sy) in b.items():
        assert a[key][:2] == (n, f), key
        assert a[key][2] == pytest.approx(sx, rel=1e-9) and a[key][3] == pytest.approx(sy, rel=1e-9)


def test_cells_follow_every_write(owner_engine):
    with owner_engine.connect() as conn:
        tx = conn.begin()
        try:
            _same(_cells(conn), _truth(conn))  # the backfill / seed
            some = conn.execute(text("SELECT id, org_id FROM customers ORDER BY id LIMIT 30")).all()
            ids = [r[0] for r in some]
            other_org = conn.scalar(text("SELECT id FROM orgs WHERE code = 'BR430104'"))
            conn.execute(text("UPDATE customers SET geom = ST_Translate(geom, 0.05, 0.03) WHERE id = ANY(:ids)"),
                         {"ids": ids[:10]})
            conn.execute(text("UPDATE customers SET org_id = :o, owner_user_id = NULL WHERE id = ANY(:ids)"),
                         {"o": other_org, "ids": ids[10:15]})
            conn.execute(text("UPDATE customers SET category = CASE category WHEN 'formal' THEN 'potential'::"
                              "customer_category ELSE 'formal'::customer_category END WHERE id = ANY(:ids)"),
                         {"ids": ids[15:20]})
            conn.execute(text("UPDATE customers SET name = name || '·' WHERE id = ANY(:ids)"), {"ids": ids[20:25]})
            conn.execute(text("UPDATE customers SET geom = NULL WHERE id = ANY(:ids)"), {"ids": ids[25:27]})
            # a merged-away customer is deleted only if nothing references it; just delete what can go
            conn.execute(text("INSERT INTO customers (kind, category, name, org_id, geom) SELECT kind, category, "
                              "name || '（复制）', org_id, geom FROM customers WHERE id = ANY(:ids)"), {"ids": ids[:5]})
            conn.execute(text("DELETE FROM customers WHERE name LIKE '%（复制）' AND id IN (SELECT id FROM customers "
                              "WHERE name LIKE '%（复制）' LIMIT 2)"))
            _same(_cells(conn), _truth(conn))
            assert conn.scalar(text("SELECT count(*) FROM customer_cells WHERE n <= 0")) == 0
        finally:
            tx.rollback()


def test_truncate_empties_the_cells(owner_engine):
    with owner_engine.connect() as conn:
        tx = conn.begin()
        try:
            assert conn.scalar(text("SELECT count(*) FROM customer_cells")) > 0
            conn.execute(text("TRUNCATE customers CASCADE"))
            assert conn.scalar(text("SELECT count(*) FROM customer_cells")) == 0
        finally:
            tx.rollback()


@pytest.mark.parametrize("user", ["admin", "sbl_430102_1", "bl_430104", "am_430102_1_1"])
def test_low_zoom_tiles_equal_clustering_the_points(client, login, migrated_db, user):
    """The aggregated path gives the same clusters as the raw clustering SQL, in the caller's scope."""
    from api.extensions import db
    from tiles import sql
    from tiles.layers import LAYERS

    clear_tile_cache(migrated_db.redis_url, migrated_db.database_name)
    h = login(user)
    spec = LAYERS["customers"]
    seen = 0
    for z in (8, 10, 11):
        zz, x, y = tile_of(*FURONG_CENTRE, z)
        r = client.get(f"/tiles/customers/{zz}/{x}/{y}.mvt", headers=h)
        got = [] if r.status_code == 204 else mapbox_vector_tile.decode(r.data)["customers"]["features"]
        # the reference: the point-clustering statement, under the same user's scope
        with client.application.test_request_context("/tiles", headers=h):
            client.application.preprocess_request()
            query, params = sql.mvt_query(spec, zz, x, y, force_cluster=True)
            assert "customer_cells" not in repr(query)
            raw, _ = sql.run(db(), query, params)[0]
        want = mapbox_vector_tile.decode(bytes(raw))["customers"]["features"] if raw else []
        assert len(got) == len(want)
        assert sorted((f["properties"]["count"], f["properties"]["formal"]) for f in got) == \
            sorted((f["properties"]["count"], f["properties"]["formal"]) for f in want)
        for a in got:
            ax, ay = a["geometry"]["coordinates"]
            assert any(b["properties"] == a["properties"] and abs(b["geometry"]["coordinates"][0] - ax) <= 1
                       and abs(b["geometry"]["coordinates"][1] - ay) <= 1 for b in want), a
        seen += sum(f["properties"]["count"] for f in got)
    assert seen > 0
