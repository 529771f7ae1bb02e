"""Rate every grid of the city-scale demo (run bench/point_in_grid.py first: it builds the database
with ~21,000 grids and 1,000,000 POIs placed in them; customers come from `seed-demo --scale city`).

Times the default scheme and a scheme using every dimension (customer count, value, formal share and
coverage included). Everything runs in one transaction that is rolled back: the database is left as found.

    .venv/bin/python bench/grid_rating.py [--database gridmarket_bench] [--no-upgrade]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("GM_SECRET_KEY", "bench-secret-bench-secret-bench-secret-00")

from api.cli import owner_engine, upgrade_database  # noqa: E402
from geo_core.config import Settings  # noqa: E402
from geo_core.db import make_session_factory  # noqa: E402
from geo_core.grids.rating import DIMENSIONS, RatingScheme, get_scheme, rate_grids  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database", default="gridmarket_bench")
    parser.add_argument("--no-upgrade", action="store_true", help="do not migrate (a database in use by others)")
    args = parser.parse_args()
    settings = Settings.from_env().with_database(args.database)
    if not args.no_upgrade:
        upgrade_database(settings)
    factory = make_session_factory(owner_engine(settings))
    report: dict[str, object] = {"machine": f"{os.cpu_count()} cores"}
    session = factory()
    try:
        report["grids"] = session.scalar(text("SELECT count(*) FROM grids WHERE kind = 'physical'"))
        report["pois"] = session.scalar(text("SELECT count(*) FROM pois"))
        report["customers"] = session.scalar(text("SELECT count(*) FROM customers"))
        default = get_scheme(session)
        every = RatingScheme(code="bench-all", name="bench", is_active=True,
                             dimensions=[{"key": k, "weight": 1} for k in DIMENSIONS],
                             grade_thresholds=default.grade_thresholds)
        session.add(every)
        session.flush()
        one = session.scalar(text("SELECT id FROM grids WHERE level = 'community' LIMIT 1"))
        for label, scheme in (("default", default), ("all_dimensions", every)):
            t = time.perf_counter()
            rated = rate_grids(session, scheme)
            report[f"{label}_dimensions"] = [d["key"] for d in scheme.dimensions]
            report[f"{label}_rate_all_s"] = round(time.perf_counter() - t, 1)
            report[f"{label}_rated"] = rated
            report[f"{label}_grades"] = dict(session.execute(text(
                "SELECT grade, count(*) FROM (SELECT DISTINCT ON (grid_id) grid_id, grade FROM grid_ratings "
                "WHERE scheme_id = :s ORDER BY grid_id, computed_at DESC, id DESC) r GROUP BY 1 ORDER BY 1"),
                {"s": scheme.id}).all())
            t = time.perf_counter()
            rate_grids(session, scheme, grid_id=one)
            report[f"{label}_rate_one_community_s"] = round(time.perf_counter() - t, 2)
    finally:
        session.rollback()  # leave the database as it was
        session.close()
    print(json.dumps(report, ensure_ascii=False, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
