"""Profiles and coverage indicators on a seeded database (default: the small demo of a test database).

Times: the demo profile seed (rolled back), /coverage per group_by and /profiles/stats as an admin (scope all)
and as a branch leader (RLS, scope org_subtree) through the app role, and the daily snapshot computation
(rolled back). Median of 5 runs each. The database is left as found.

    .venv/bin/python bench/profiles_coverage.py [--database gridmarket_test_h1]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("GM_SECRET_KEY", "bench-secret-bench-secret-bench-secret-00")

from api.cli import owner_engine  # noqa: E402
from geo_core.config import Settings  # noqa: E402
from geo_core.coverage.indicators import compute  # noqa: E402
from geo_core.coverage.snapshots import write_snapshots  # noqa: E402
from geo_core.customers.profile_stats import profile_stats  # noqa: E402
from geo_core.db import SYSTEM, make_engine, make_session_factory, set_context  # noqa: E402
from geo_core.scope import DataScope, scope_context  # noqa: E402
from geo_core.seed.profiles import seed_profiles  # noqa: E402


def median_ms(func, runs: int = 5) -> float:  # noqa: ANN001
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        func()
        times.append((time.perf_counter() - start) * 1000)
    return round(statistics.median(times), 1)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database", default="gridmarket_test_h1")
    args = parser.parse_args()
    settings = Settings.from_env().with_database(args.database)
    report: dict[str, object] = {"machine": f"{os.cpu_count()} cores"}
    owner = make_session_factory(owner_engine(settings))()
    try:
        report["customers"] = owner.scalar(text("SELECT count(*) FROM customers"))
        report["grids"] = owner.scalar(text("SELECT count(*) FROM grids"))
        owner.execute(text("DELETE FROM customer_profile_revisions"))
        owner.execute(text("DELETE FROM customer_profiles"))
        start = time.perf_counter()
        report["seeded_profiles"] = seed_profiles(owner, settings)
        report["seed_profiles_ms"] = round((time.perf_counter() - start) * 1000)
        leader = owner.execute(text("SELECT u.id, u.org_id, o.path::text FROM users u JOIN orgs o ON o.id = u.org_id "
                                    "WHERE u.username = 'bl_430102'")).one()
    finally:
        owner.rollback()
        owner.close()
    app = make_session_factory(make_engine(settings.sa_app_database_url, pool_size=1))()
    contexts = {"admin": SYSTEM, "bl_430102": scope_context(leader[0], leader[1], leader[2], DataScope.org_subtree)}
    try:
        for who, ctx in contexts.items():
            set_context(app, ctx)
            for group_by in ("org", "grid", "manager"):
                report[f"coverage_{group_by}_{who}_ms"] = median_ms(lambda g=group_by: compute(app, g))
            report[f"profile_stats_grid_{who}_ms"] = median_ms(lambda: profile_stats(app, "grid"))
            app.rollback()
        set_context(app, SYSTEM)
        start = time.perf_counter()
        report["snapshot_rows"] = write_snapshots(app)
        report["snapshot_ms"] = round((time.perf_counter() - start) * 1000)
    finally:
        app.rollback()
        app.close()
    print(json.dumps(report, ensure_ascii=False, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
