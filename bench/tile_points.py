"""Raw-point customer tiles from `customer_points` (migration 0021) against the customers-based rendering, and the
cost of the customer_points trigger on a 10,000-row insert.

Needs a migrated city-scale copy (never the shared bench databases), by default gridmarket_bench_pts:

    DATABASE_URL=postgresql://gridmarket:gridmarket@127.0.0.1:5432/gridmarket_bench_pts .venv/bin/gridmarket db upgrade
    .venv/bin/python bench/tile_points.py [--runs 25] [--insert-runs 7]

First, ST_AsMVTGeom against the arithmetic of tiles.sql for every customer around 42 random tiles at z12-18.
Tiles: the statement `tiles.sql.mvt_query` composes, executed as the app role (row-level security on) with
`jit = off` (as the tile server) in scope "all" and in the scope of the branch holding most of the z14 tile; "old"
is the same layer with `point_table=None` (the customers GiST path), "new" the point table. Old and new alternate
within one run (which goes first alternates too), medians and p90 of wall time per statement over `--runs` each,
after warm-up (cold = no Redis tile cache, not a cold PostgreSQL buffer cache). Before timing, both tiles are
decoded and compared: same ids, properties and coordinates, the new one may only add points on the buffer edge.

Trigger: as the owner, one `INSERT INTO customers ... SELECT` of 10,000 located customers (copies of existing
rows without identifiers) in a transaction that is rolled back, with the customer_points insert trigger enabled or
disabled (`ALTER TABLE ... DISABLE TRIGGER` inside the same rolled-back transaction), alternating; also one
`UPDATE` moving 10,000 customers. The wall-time difference is within this machine's noise (customers' other
triggers - audit, ownership history, the other aggregates - take seconds), so the trigger's own time is also read
from EXPLAIN ANALYZE (its "Triggers" list).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import mapbox_vector_tile
import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tiles import sql  # noqa: E402
from tiles.layers import LAYERS  # noqa: E402

TILES = ((14, 13333, 6853, "z14 central Changsha"), (12, 3333, 1715, "z12 (raw, < 20,000 points)"),
         (16, 53333, 27413, "z16 central Changsha"))
COPIED_COLUMNS = ("kind, category, name, profile_type, industry, address, geom, h3_r10, location_source, grid_id, "
                "owner_user_id, org_id, status, deposit_balance, loan_balance")


def scopes(conn: psycopg.Connection) -> list[tuple[str, dict[str, str]]]:
    """Scope "all" and the branch (second-level org) with most customers in the z14 tile."""
    z, x, y, _ = TILES[0]
    minx, miny, maxx, maxy = sql.tile_envelope(z, x, y)
    with conn.transaction():
        conn.execute("SELECT set_config('gm.scope', 'all', true)")
        path, user_id = conn.execute(
            "SELECT b.path::text, (SELECT u.id FROM users u JOIN orgs uo ON uo.id = u.org_id WHERE uo.path = b.path "
            "ORDER BY u.id LIMIT 1) FROM (SELECT subpath(o.path, 0, 2) AS path FROM customer_points p "
            "JOIN orgs o ON o.id = p.org_id WHERE p.mx BETWEEN %s AND %s AND p.my BETWEEN %s AND %s "
            "AND nlevel(o.path) >= 2 GROUP BY 1 ORDER BY count(*) DESC LIMIT 1) b",
            (minx, maxx, miny, maxy)).fetchone()
    return [("all", {"gm.scope": "all", "gm.user_id": "", "gm.lqueries": "{}"}),
            (f"branch {path}", {"gm.scope": "lqueries", "gm.user_id": str(user_id or ""),
                                "gm.lqueries": "{" + path + ".*}"})]


def set_scope(conn: psycopg.Connection, scope: dict[str, str]) -> None:
    for key, value in scope.items():
        conn.execute("SELECT set_config(%s, %s, true)", (key, value))


def features(data: bytes) -> dict[int, tuple[Any, Any]]:
    if not data:
        return {}
    layer = mapbox_vector_tile.decode(data, default_options={"y_coord_down": True})["customers"]
    return {f["id"]: (f["geometry"]["coordinates"], f["properties"]) for f in layer["features"]}


def check_same(old: bytes, new: bytes) -> str:
    a, b = features(old), features(new)
    assert set(a) <= set(b), "old features missing from the new tile"
    assert all(a[i] == b[i] for i in a), "a feature differs"
    extra = set(b) - set(a)
    edge = (-sql.BUFFER, sql.EXTENT + sql.BUFFER)
    assert all(b[i][0][0] in edge or b[i][0][1] in edge for i in extra), "an extra point off the buffer edge"
    return f"{len(b):,} points, {len(extra)} more on the buffer edge, {len(old):,} → {len(new):,} bytes"


def timed(conn: psycopg.Connection, query: str, params: dict[str, Any]) -> tuple[float, bytes]:
    t = time.perf_counter()
    data, _ = conn.execute(query, params).fetchone()
    return (time.perf_counter() - t) * 1000, bytes(data)


def stats(ms: list[float]) -> str:
    q = statistics.quantiles(ms, n=10)
    return f"median {statistics.median(ms):6.1f} ms, p90 {q[-1]:6.1f} ms"


def _scans(node: dict[str, Any]) -> list[dict[str, Any]]:
    found = [node] if node.get("Relation Name") in ("customers", "customer_points") and node["Actual Loops"] else []
    return found + [n for child in node.get("Plans", []) for n in _scans(child)]


def plan_buffers(conn: psycopg.Connection, query: str, params: dict[str, Any]) -> str:
    plan = conn.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + query, params).fetchone()[0][0]
    top = plan["Plan"]
    scan = max(_scans(top), key=lambda n: n["Actual Rows"])
    read = scan["Actual Rows"] + scan.get("Rows Removed by Filter", 0) + scan.get("Rows Removed by Index Recheck", 0)
    return (f"execution {plan['Execution Time']:.1f} ms, shared buffers hit {top.get('Shared Hit Blocks', 0):,} "
            f"read {top.get('Shared Read Blocks', 0):,}; {scan['Node Type']} on {scan['Relation Name']}: "
            f"{read:,} rows read, {scan['Actual Rows']:,} kept, {scan['Actual Total Time']:.1f} ms")


def verify_arithmetic(conn: psycopg.Connection, tiles_per_zoom: int = 6) -> None:
    """ST_AsMVTGeom vs the arithmetic of tiles.sql (mvt_transform, rounding, the buffer test) for every customer
    around random tiles at z12-18 (a selection margin twice the buffer): same kept points, same coordinates."""
    rng = random.Random(5)
    mx, my = "(radians(ST_X(geom)) * 6378137.0)", "(ln(tan(pi() / 4 + radians(ST_Y(geom)) / 2)) * 6378137.0)"
    px, py = f"round(%(fx)s * {mx} + %(xoff)s)", f"round(%(fy)s * {my} + %(yoff)s)"
    check = f"""SELECT count(*), count(*) FILTER (WHERE a IS DISTINCT FROM b), count(a) FROM (
        SELECT ST_AsText(ST_AsMVTGeom(ST_SetSRID(ST_MakePoint({mx}, {my}), 3857), ST_TileEnvelope(%(z)s, %(x)s, %(y)s),
                                      4096, 64, true)) AS a,
               CASE WHEN {px} BETWEEN -64 AND 4160 AND {py} BETWEEN -64 AND 4160
                    THEN ST_AsText(ST_MakePoint({px}, {py})) END AS b
        FROM customers WHERE geom && ST_Transform(ST_TileEnvelope(%(z)s, %(x)s, %(y)s, margin => 0.03125), 4326)) s"""
    pairs = mismatches = kept = 0
    with conn.transaction():
        conn.execute("SELECT set_config('gm.scope', 'all', true)")
        for z in range(12, 19):
            for _ in range(tiles_per_zoom):
                lon, lat = 112.9 + rng.random() * 0.15, 28.12 + rng.random() * 0.15
                x = int((lon + 180) / 360 * (1 << z))
                y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * (1 << z))
                fx, xoff, fy, yoff = sql.mvt_transform(z, x, y)
                n, bad, k = conn.execute(check, {"z": z, "x": x, "y": y, "fx": fx, "xoff": xoff, "fy": fy,
                                                 "yoff": yoff}).fetchone()
                pairs, mismatches, kept = pairs + n, mismatches + bad, kept + k
    print(f"\nST_AsMVTGeom vs arithmetic: {pairs:,} point-tile pairs at z12-18 ({kept:,} kept), "
          f"{mismatches} differ")
    assert mismatches == 0


def bench_tiles(app_url: str, runs: int) -> None:
    spec = LAYERS["customers"]
    old_spec = dataclasses.replace(spec, point_table=None)
    with psycopg.connect(app_url, autocommit=True) as conn:
        conn.execute("SET jit = off")
        assert conn.execute("SELECT current_user").fetchone()[0] != "gridmarket"
        verify_arithmetic(conn)
        for scope_name, scope in scopes(conn):
            for z, x, y, label in TILES:
                variants = {}
                for name, s in (("old", old_spec), ("new", spec)):
                    query, params = sql.mvt_query(s, z, x, y)
                    variants[name] = (query.as_string(conn), params)
                times: dict[str, list[float]] = {"old": [], "new": []}
                with conn.transaction():
                    set_scope(conn, scope)
                    data = {name: timed(conn, q, p)[1] for name, (q, p) in variants.items()}
                    same = check_same(data["old"], data["new"])
                    for i in range(runs + 3):
                        for name in (("old", "new") if i % 2 else ("new", "old")):
                            ms, _ = timed(conn, *variants[name])
                            if i >= 3:
                                times[name].append(ms)
                    plans = {name: plan_buffers(conn, *variants[name]) for name in variants}
                print(f"\n{label} {z}/{x}/{y}, scope {scope_name}: {same}")
                for name in ("old", "new"):
                    print(f"  {name}: {stats(times[name])}   EXPLAIN ANALYZE: {plans[name]}")
                ratio = statistics.median(times["new"]) / statistics.median(times["old"])
                print(f"  new / old median: {ratio:.2f}")


def _trigger_times(conn: psycopg.Connection, statement: str, params: dict[str, Any]) -> dict[str, float]:
    """Per-trigger time (ms) of one statement, from EXPLAIN ANALYZE, in a rolled-back transaction."""
    with conn.transaction(force_rollback=True):
        plan = conn.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + statement, params).fetchone()[0][0]
    out = {t["Trigger Name"]: t["Time"] for t in plan.get("Triggers", [])}
    out["statement"] = plan["Execution Time"]
    return out


def bench_trigger(owner_url: str, runs: int, rows: int) -> None:
    insert = (f"INSERT INTO customers ({COPIED_COLUMNS}) SELECT {COPIED_COLUMNS.replace('name', 'name || %(tag)s')} "
              "FROM customers WHERE geom IS NOT NULL AND status <> 'merged' ORDER BY id LIMIT %(n)s")
    move = ("UPDATE customers SET geom = ST_Translate(geom, 0.0005, 0.0003) WHERE id IN "
            "(SELECT id FROM customers WHERE geom IS NOT NULL ORDER BY id DESC LIMIT %(n)s)")
    triggers = {"INSERT": "customers_points_insert", "UPDATE (move)": "customers_points_update"}
    params = {"n": rows, "tag": "·bench"}
    with psycopg.connect(owner_url, autocommit=True) as conn:
        conn.execute("SET jit = off")
        for label, statement in (("INSERT", insert), ("UPDATE (move)", move)):
            times: dict[str, list[float]] = {"with": [], "without": []}
            for i in range(runs + 1):
                for variant in (("with", "without") if i % 2 else ("without", "with")):
                    with conn.transaction(force_rollback=True):
                        if variant == "without":
                            conn.execute(f"ALTER TABLE customers DISABLE TRIGGER {triggers[label]}")
                        t = time.perf_counter()
                        conn.execute(statement, params)
                        if i:
                            times[variant].append((time.perf_counter() - t) * 1000)
            w, wo = statistics.median(times["with"]), statistics.median(times["without"])
            explained = [_trigger_times(conn, statement, params) for _ in range(runs)]
            own = statistics.median(e[triggers[label]] for e in explained)
            others = statistics.median(sum(v for k, v in e.items() if k not in (triggers[label], "statement"))
                                       for e in explained)
            whole = statistics.median(e["statement"] for e in explained)
            print(f"\n{label} of {rows:,} customers in one statement ({runs} runs each, rolled back): wall time with "
                  f"the customer_points trigger median {w:.0f} ms, without {wo:.0f} ms ({w - wo:+.0f} ms); "
                  f"EXPLAIN ANALYZE: the trigger {own:.1f} ms ({own / rows * 1000:.1f} µs per row), customers' other "
                  f"triggers {others:.0f} ms, whole statement {whole:.0f} ms")


def main() -> int:
    parser = argparse.ArgumentParser()
    base = "127.0.0.1:5432/gridmarket_bench_pts"
    parser.add_argument("--app-url", default=os.environ.get("BENCH_APP_URL",
                                                            f"postgresql://gridmarket_app:gridmarket_app@{base}"))
    parser.add_argument("--owner-url", default=os.environ.get("BENCH_OWNER_URL",
                                                              f"postgresql://gridmarket:gridmarket@{base}"))
    parser.add_argument("--runs", type=int, default=25)
    parser.add_argument("--insert-runs", type=int, default=7)
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--skip-trigger", action="store_true")
    args = parser.parse_args()
    for url in (args.app_url, args.owner_url):
        if url.rsplit("/", 1)[-1] in ("gridmarket_bench", "gridmarket_bench_agg"):
            parser.error("this script alters customers inside rolled-back transactions: use a copy of the bench DB")
    print(json.dumps({"started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
                      "load": os.getloadavg()}))
    bench_tiles(args.app_url, args.runs)
    if not args.skip_trigger:
        bench_trigger(args.owner_url, args.insert_runs, args.rows)
    print(json.dumps({"finished": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
                      "load": os.getloadavg()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
