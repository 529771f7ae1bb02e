"""Batch point-in-grid placement and single-point lookup, at city scale.

Uses its own database (default gridmarket_bench on the DATABASE_URL server): migrates it, seeds the
city-scale demo (~21,000 grids) if empty, loads N synthetic POIs (default 1,000,000; 70 % in the urban
districts, the rest anywhere in the city), then times:
  1. the batch placement job's SQL (place_points) from scratch, and a second, idempotent run;
  2. single-point lookups: H3 pre-filter (find_grid_for_point) vs plain PostGIS GiST, same points.

    .venv/bin/python bench/point_in_grid.py [--points 1000000] [--lookups 2000]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import sys
import time
from pathlib import Path

import h3
import numpy as np
from shapely import contains_xy
from shapely.geometry import shape
from sqlalchemy import text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("GM_SECRET_KEY", "bench-secret-bench-secret-bench-secret-00")

from api.cli import owner_engine, upgrade_database  # noqa: E402
from bench.common import ensure_database  # noqa: E402
from geo_core.config import Settings  # noqa: E402
from geo_core.db import make_session_factory  # noqa: E402
from geo_core.grids.placement import place_points  # noqa: E402
from geo_core.grids.service import find_grid_for_point  # noqa: E402
from geo_core.seed.demo import DATA_DIR, is_seeded, seed_demo  # noqa: E402

URBAN = ("430102", "430103", "430104", "430105", "430111")


def synthetic_points(n: int, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    districts = json.loads((DATA_DIR / "changsha_districts.geojson").read_text(encoding="utf-8"))["features"]
    urban = [shape(f["geometry"]) for f in districts if f["properties"]["adcode"] in URBAN]
    city = shape(json.loads((DATA_DIR / "changsha_city.geojson").read_text(encoding="utf-8"))["features"][0]
                 ["geometry"])
    out_x, out_y = [], []
    for geom, count in [(g, int(n * 0.7 / len(urban))) for g in urban] + [(city, n - int(n * 0.7 / len(urban))
                                                                           * len(urban))]:
        minx, miny, maxx, maxy = geom.bounds
        got = 0
        while got < count:
            xs = rng.uniform(minx, maxx, count * 3)
            ys = rng.uniform(miny, maxy, count * 3)
            keep = contains_xy(geom, xs, ys)
            xs, ys = xs[keep][: count - got], ys[keep][: count - got]
            out_x.append(xs)
            out_y.append(ys)
            got += len(xs)
    return np.concatenate(out_x), np.concatenate(out_y)


def load_points(engine, n: int) -> float:  # noqa: ANN001
    xs, ys = synthetic_points(n)
    t = time.perf_counter()
    cells = [h3.str_to_int(h3.latlng_to_cell(y, x, 10)) for x, y in zip(xs, ys, strict=True)]
    h3_s = time.perf_counter() - t
    buf = io.StringIO()
    for i, (x, y, c) in enumerate(zip(xs, ys, cells, strict=True)):
        buf.write(f"bench-{i}\tbench\tbench\t{i}\tSRID=4326;POINT({x:.7f} {y:.7f})\t{c}\n")
    raw = engine.raw_connection()
    try:
        with raw.cursor() as cur:
            cur.execute("SET gm.audit_mode = 'summary'")
            cur.execute("DELETE FROM pois WHERE source = 'bench'")
            with cur.copy("COPY pois (name, category, source, source_ref, geom, h3_r10) FROM STDIN") as copy:
                copy.write(buf.getvalue())
            cur.execute("ANALYZE pois")
        raw.commit()
    finally:
        raw.close()
    return h3_s


def timed(fn, *args, **kwargs):  # noqa: ANN001, ANN201
    t = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - t, result


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--lookups", type=int, default=2000)
    parser.add_argument("--database", default="gridmarket_bench")
    parser.add_argument("--gist-batch-sample", type=int, default=200_000)
    args = parser.parse_args()

    settings = Settings.from_env().with_database(args.database)
    ensure_database(settings)
    upgrade_database(settings)
    engine = owner_engine(settings)
    factory = make_session_factory(engine)
    report: dict[str, object] = {"machine": f"{os.cpu_count()} cores", "points": args.points}
    with factory.begin() as session:
        if not is_seeded(session):
            report["seed_city_s"], _ = timed(seed_demo, session, "city", iterations=1000)
        session.execute(text("ANALYZE grids"))
        session.execute(text("ANALYZE grid_h3"))
        report["grids"] = session.scalar(text("SELECT count(*) FROM grids"))
        report["grid_h3_rows"] = session.scalar(text("SELECT count(*) FROM grid_h3"))
    report["h3_cells_for_points_s"] = round(load_points(engine, args.points), 1)
    with factory.begin() as session:
        session.execute(text("UPDATE pois SET grid_id = NULL WHERE grid_id IS NOT NULL"))
    for run in ("first", "second (idempotent)"):
        with factory.begin() as session:
            elapsed, result = timed(place_points, session, "pois")
        report[f"placement_{run}"] = {"seconds": round(elapsed, 1), "placed": result.placed,
                                      "changed": result.changed}

    rng = random.Random(3)
    with factory.begin() as session:
        sample = session.execute(text("SELECT ST_X(geom), ST_Y(geom) FROM pois ORDER BY random() LIMIT :n"),
                                 {"n": args.lookups}).all()
        session.execute(text("SELECT set_config('gm.scope', 'all', true)"))
        rng.shuffle(sample)

        def ids(method: str) -> list[int | None]:
            return [getattr(find_grid_for_point(session, x, y, method=method), "id", None) for x, y in sample]

        ids("gist")  # warm the cache equally for both
        h3_s, h3_ids = timed(ids, "h3")
        gist_s, gist_ids = timed(ids, "gist")
    report["lookup"] = {"n": len(sample), "h3_prefilter_ms_each": round(h3_s / len(sample) * 1000, 2),
                        "gist_only_ms_each": round(gist_s / len(sample) * 1000, 2),
                        "same_answer": sum(a == b for a, b in zip(h3_ids, gist_ids, strict=True))}

    # the same batch placement without H3: a GiST spatial join, on a sample (bounded time)
    with factory.begin() as session:
        n = args.gist_batch_sample
        elapsed = session.execute(text("SET LOCAL statement_timeout = '600s'"))
        elapsed, _ = timed(session.execute, text("""
            CREATE TEMP TABLE gist_batch ON COMMIT DROP AS
            SELECT DISTINCT ON (p.id) p.id, g.id AS grid_id
            FROM (SELECT id, geom FROM pois ORDER BY id LIMIT :n) p
            JOIN grids g ON g.kind = 'physical' AND g.status = 'active' AND ST_Intersects(g.geom, p.geom)
            ORDER BY p.id, nlevel(g.path) DESC, g.area_m2"""), {"n": n})
        h3_elapsed, _ = timed(session.execute, text("""
            CREATE TEMP TABLE h3_batch ON COMMIT DROP AS
            SELECT DISTINCT ON (p.id) p.id, g.id AS grid_id
            FROM (SELECT id, geom, h3_r10 FROM pois ORDER BY id LIMIT :n) p
            CROSS JOIN LATERAL (VALUES (p.h3_r10, 10), (gm_h3_parent(p.h3_r10, 9), 9),
                                       (gm_h3_parent(p.h3_r10, 8), 8)) c(cell, res)
            JOIN grid_h3 h ON h.cell = c.cell AND h.res = c.res
            JOIN grids g ON g.id = h.grid_id
            WHERE g.kind = 'physical' AND g.status = 'active' AND (h.is_interior OR ST_Intersects(g.geom, p.geom))
            ORDER BY p.id, nlevel(g.path) DESC, g.area_m2"""), {"n": n})
        differ = session.scalar(text("SELECT count(*) FROM gist_batch a JOIN h3_batch b USING (id) "
                                     "WHERE a.grid_id IS DISTINCT FROM b.grid_id"))
    report["batch_candidates_sample"] = {"points": n, "gist_join_s": round(elapsed, 1),
                                         "h3_join_s": round(h3_elapsed, 1), "different_answers": differ}
    print(json.dumps(report, ensure_ascii=False, indent=2))
    engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
