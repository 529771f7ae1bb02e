"""customer_h3_r8 (migration 0019): the heatmap aggregate stays equal to grouping the customers through every kind
of write, and /heatmaps/customers answered from it gives the same cells, counts and sums as grouping the points -
for every scope, for bboxes cutting through cells, with the filters the aggregate carries."""

from __future__ import annotations

import pytest
from sqlalchemy import text

import tiles.heatmap_cells as heatmap_cells
from tests.tiles import FURONG_CENTRE, clear_tile_cache, tile_of

TRUTH = """
SELECT gm_h3_parent(h3_r10, 8), org_id, coalesce(owner_user_id, 0), kind::text, category::text, count(*),
       coalesce(sum(deposit_balance), 0), coalesce(sum(loan_balance), 0),
       min(ST_X(geom)), min(ST_Y(geom)), max(ST_X(geom)), max(ST_Y(geom))
FROM customers WHERE h3_r10 IS NOT NULL AND geom IS NOT NULL GROUP BY 1, 2, 3, 4, 5"""
AGG = ("SELECT h3_r8, org_id, owner_key, kind::text, category::text, n, deposit_sum, loan_sum, lon0, lat0, lon1, lat1 "
       "FROM customer_h3_r8")


def _check(conn) -> None:  # noqa: ANN001
    agg = {r[:5]: r[5:] for r in conn.execute(text(AGG)).all()}
    truth = {r[:5]: r[5:] for r in conn.execute(text(TRUTH)).all()}
    assert agg.keys() == truth.keys()
    for key, (n, dep, loan, x0, y0, x1, y1) in truth.items():
        a = agg[key]
        assert (a[0], a[1], a[2]) == (n, dep, loan), key
        assert a[3] <= x0 and a[4] <= y0 and a[5] >= x1 and a[6] >= y1, key  # the box holds every member


def test_aggregate_follows_every_write(owner_engine):
    with owner_engine.connect() as conn:
        tx = conn.begin()
        try:
            _check(conn)  # the backfill / seed
            ids = list(conn.scalars(text("SELECT id FROM customers WHERE geom IS NOT NULL ORDER BY id LIMIT 40")))
            other_org = conn.scalar(text("SELECT id FROM orgs WHERE code = 'BR430104'"))
            conn.execute(text("UPDATE customers SET geom = ST_Translate(geom, 0.05, 0.03), "
                              "h3_r10 = h3_r10 # 1 WHERE id = ANY(:ids)"), {"ids": ids[:10]})
            conn.execute(text("UPDATE customers SET org_id = :o, owner_user_id = NULL WHERE id = ANY(:ids)"),
                         {"o": other_org, "ids": ids[10:15]})
            conn.execute(text("UPDATE customers SET category = CASE category WHEN 'formal' THEN 'potential'::"
                              "customer_category ELSE 'formal'::customer_category END WHERE id = ANY(:ids)"),
                         {"ids": ids[15:20]})
            conn.execute(text("UPDATE customers SET deposit_balance = coalesce(deposit_balance, 0) + 1234.56, "
                              "loan_balance = NULL WHERE id = ANY(:ids)"), {"ids": ids[20:25]})
            conn.execute(text("UPDATE customers SET name = name || '·' WHERE id = ANY(:ids)"), {"ids": ids[25:30]})
            conn.execute(text("UPDATE customers SET geom = NULL WHERE id = ANY(:ids)"), {"ids": ids[30:32]})
            conn.execute(text("UPDATE customers SET h3_r10 = NULL WHERE id = ANY(:ids)"), {"ids": ids[32:34]})
            conn.execute(text("INSERT INTO customers (kind, category, name, org_id, geom, h3_r10, deposit_balance) "
                              "SELECT kind, category, name || '（复制）', org_id, geom, h3_r10, 99.99 FROM customers "
                              "WHERE id = ANY(:ids)"), {"ids": ids[34:40]})
            conn.execute(text("DELETE FROM customers WHERE id IN (SELECT id FROM customers "
                              "WHERE name LIKE '%（复制）' LIMIT 3)"))
            _check(conn)
            assert conn.scalar(text("SELECT count(*) FROM customer_h3_r8 WHERE n <= 0")) == 0
            conn.execute(text("TRUNCATE customers CASCADE"))
            assert conn.scalar(text("SELECT count(*) FROM customer_h3_r8")) == 0
        finally:
            tx.rollback()


def _heat(client, headers, url: str, migrated_db, fast: bool, monkeypatch, force: bool = True) -> dict:  # noqa: ANN001
    clear_tile_cache(migrated_db.redis_url, migrated_db.database_name)
    used: list[bool] = []
    original = heatmap_cells.query

    def spy(args, limit):  # noqa: ANN001, ANN202
        used.append(True)
        return original(args, limit)

    monkeypatch.setattr(heatmap_cells, "query", spy)
    if not fast and force:
        monkeypatch.setattr(heatmap_cells, "eligible", lambda *a: False)
    try:
        r = client.get(url, headers=headers)
    finally:
        monkeypatch.undo()
    assert r.status_code == 200, r.get_json()
    assert bool(used) == fast
    body = r.get_json()
    return {"cells": [(f["id"], f["properties"]) for f in body["features"]], "total": body["total"],
            "sums": body["sums"]}


CX, CY = FURONG_CENTRE
BOXES = ["111.8,27.8,114.3,28.7", f"{CX - 0.03},{CY - 0.02},{CX + 0.025},{CY + 0.03}",
         f"{CX - 0.2},{CY - 0.1},{CX + 0.1},{CY + 0.15}"]


@pytest.mark.parametrize("user", ["admin", "bl_430102", "sbl_430102_1", "am_430102_1_1"])
def test_same_cells_counts_and_sums_as_the_points(client, login, migrated_db, monkeypatch, user):
    h = login(user)
    me = client.get("/api/v1/me", headers=h).get_json()
    checked = 0
    for box in BOXES:
        for res, extra in ((8, ""), (7, "&kind=person"), (6, "&category=formal"), (5, ""),
                           (8, f"&manager_id={me['id']}"), (7, f"&org_id={me['org']['id'] if 'org' in me else 1}")):
            url = f"/heatmaps/customers?bbox={box}&res={res}{extra}"
            fast = _heat(client, h, url, migrated_db, True, monkeypatch)
            raw = _heat(client, h, url, migrated_db, False, monkeypatch)
            assert fast == raw, url
            checked += len(raw["cells"])
    assert checked > 0


def test_raw_only_filters_and_fine_resolutions_take_the_points(client, login, migrated_db, monkeypatch):
    h = login("admin")
    box = BOXES[2]
    for extra in ("&res=9", "&res=8&since=2020-01-01T00:00:00", "&res=7&grid_id=1"):
        _heat(client, h, f"/heatmaps/customers?bbox={box}{extra}", migrated_db, False, monkeypatch, force=False)
    # a bad enum value is still a 400, not a 500
    r = client.get(f"/heatmaps/customers?bbox={box}&res=7&kind=nonsense", headers=h)
    assert r.status_code in (400, 422) and r.get_json()["code"]


def test_mvt_from_the_aggregate_equals_the_points(client, login, migrated_db, monkeypatch):
    h = login("sbl_430102_1")
    z, x, y = tile_of(*FURONG_CENTRE, 11)
    bodies = []
    for fast in (True, False):
        clear_tile_cache(migrated_db.redis_url, migrated_db.database_name)
        if not fast:
            monkeypatch.setattr(heatmap_cells, "eligible", lambda *a: False)
        r = client.get(f"/heatmaps/customers/{z}/{x}/{y}.mvt", headers=h)
        monkeypatch.undo()
        assert r.status_code == 200 and r.headers["X-H3-Resolution"] == "8"
        bodies.append(r.data)
    assert bodies[0] == bodies[1]
