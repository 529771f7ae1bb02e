"""Rate every grid of the city-scale demo (run bench/point_in_grid.py first: it builds the database
with ~21,000 grids and 1,000,000 POIs placed in them).

    .venv/bin/python bench/grid_rating.py [--database gridmarket_bench]
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
from geo_core.grids.rating import get_scheme, rate_grids  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database", default="gridmarket_bench")
    args = parser.parse_args()
    settings = Settings.from_env().with_database(args.database)
    upgrade_database(settings)
    factory = make_session_factory(owner_engine(settings))
    report: dict[str, object] = {"machine": f"{os.cpu_count()} cores"}
    with factory.begin() as session:
        report["grids"] = session.scalar(text("SELECT count(*) FROM grids WHERE kind = 'physical'"))
        report["pois"] = session.scalar(text("SELECT count(*) FROM pois"))
        scheme = get_scheme(session)
        t = time.perf_counter()
        rated = rate_grids(session, scheme)
        report["rate_all_s"] = round(time.perf_counter() - t, 1)
        report["rated"] = rated
        report["grades"] = dict(session.execute(text(
            "SELECT grade, count(*) FROM (SELECT DISTINCT ON (grid_id) grid_id, grade FROM grid_ratings "
            "ORDER BY grid_id, computed_at DESC, id DESC) r GROUP BY 1 ORDER BY 1")).all())
        one = session.scalar(text("SELECT id FROM grids WHERE level = 'community' LIMIT 1"))
        t = time.perf_counter()
        rate_grids(session, scheme, grid_id=one)
        report["rate_one_community_s"] = round(time.perf_counter() - t, 2)
    print(json.dumps(report, ensure_ascii=False, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
