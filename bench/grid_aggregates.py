"""Grid aggregates (/aggregates/grids) at city scale: the raw join (before migration 0020) vs grid_customer_stats,
cold and warm, through the app (Flask test client: auth, RLS, rendering, Redis cache), per user scope.

Needs a city-scale database migrated to 0020 (the raw query stays callable as tiles.aggregates.RAW_SQL), e.g.

    REDIS_URL=redis://127.0.0.1:6379/8 .venv/bin/python bench/grid_aggregates.py --database gridmarket_bench_agg

Modes, per (user, level, form):
- before: the pre-0020 query (tiles.aggregates.grid_kpis with raw=True), no cache - what every request cost;
- cold: the stats query, Redis cache off (GM_TILES_CACHE=0 equivalent): every request renders;
- miss: cache on, this database's cache keys deleted before each run: fingerprints + render + store;
- warm: cache on and primed: a Redis hit (warm_hits: how many of the runs hit; cached_for_s: how long the entry
  stays servable - the 90-day visit share's exactness bounds it, see tiles.aggregates).
Medians of --runs runs (before: --raw-runs), milliseconds; PostgreSQL's buffers are warm after the first run of
each row (the first "before" run is reported separately). Also the write cost of the new trigger: one UPDATE of
--rows customers and one INSERT of --rows rows, with and without the 0020 triggers (rolled back).
--vacuum / --dirty set the visibility map of customers first (see `prepare_pages`).
Only keys `gm:tiles:<database>:*` of the given Redis are deleted. The database's data is left as found.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import time
from pathlib import Path

from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("GM_SECRET_KEY", "bench-secret-bench-secret-bench-secret-00")
os.environ.setdefault("GM_LOG_LEVEL", "WARNING")

from api.cli import owner_engine  # noqa: E402
from geo_core.config import Settings  # noqa: E402
from geo_core.db import make_session_factory  # noqa: E402
from geo_core.seed.demo import DEMO_PASSWORD  # noqa: E402

USERS = ("admin", "bl_430102", "sbl_430102_1")
LEVELS = ("district", "community")
TILE = (9, 416, 214)  # z9 tile over central Changsha (五一广场)
TILES_KEY = "gridmarket_tiles"
TRIGGERS = ("customers_grid_stats_insert", "customers_grid_stats_update", "customers_grid_stats_delete")


def timed(func, runs: int) -> list[float]:  # noqa: ANN001
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        func()
        out.append((time.perf_counter() - start) * 1000)
    return out


def med(values: list[float]) -> float:
    return round(statistics.median(values), 1)


class Bench:
    def __init__(self, settings: Settings, runs: int, raw_runs: int) -> None:  # raw_runs 0: no "before"
        from api import create_app

        self.app = create_app(settings)
        self.client = self.app.test_client()
        self.state = self.app.extensions["gridmarket"]
        self.namespace = settings.database_name
        self.saved = self.app.extensions[TILES_KEY]
        self.runs, self.raw_runs = runs, raw_runs
        self.headers = {}
        for user in USERS:
            r = self.client.post("/api/v1/auth/login", json={"username": user, "password": DEMO_PASSWORD})
            assert r.status_code == 200, r.get_json()
            self.headers[user] = {"Authorization": f"Bearer {r.get_json()['access_token']}"}

    def clear(self) -> None:
        keys = list(self.state.redis.scan_iter(f"gm:tiles:{self.namespace}:*", count=1000))
        if keys:
            self.state.redis.delete(*keys)

    def get(self, user: str, path: str, expect: str | None = None) -> bytes:
        r = self.client.get(path, headers=self.headers[user])
        assert r.status_code in (200, 204), (path, r.status_code, r.data[:200])
        assert expect is None or r.headers.get("X-Tile-Cache") == expect, (path, r.headers.get("X-Tile-Cache"))
        return r.data

    def status(self, user: str, path: str) -> str:
        return self.client.get(path, headers=self.headers[user]).headers.get("X-Tile-Cache", "")

    def cached_for(self) -> float | None:
        """Seconds the one cached answer stays servable (its expiry: the visit share's exactness), None: no limit."""
        keys = list(self.state.redis.scan_iter(f"gm:tiles:{self.namespace}:customers:*:agg*", count=1000))
        if len(keys) != 1:
            return None
        expires = float(self.state.redis.get(keys[0]).partition(b"\n")[0] or 0)
        return round(expires - time.time(), 1) if expires else None

    def cache(self, enabled: bool) -> None:
        self.app.extensions[TILES_KEY] = dataclasses.replace(self.saved, cache_enabled=enabled)

    def row(self, user: str, path: str) -> dict[str, object]:
        import tiles.aggregates as agg

        grid_kpis = agg.grid_kpis
        self.cache(False)
        agg.grid_kpis = lambda *a, **k: grid_kpis(*a, **k, raw=True)  # the pre-0020 query
        try:
            before = timed(lambda: self.get(user, path, "off"), self.raw_runs) or [float("nan")]
            old = self.get(user, path)
        finally:
            agg.grid_kpis = grid_kpis
        cold = timed(lambda: self.get(user, path, "off"), self.runs)
        assert self.get(user, path) == old, f"{path}: stats answer differs from the raw query"
        self.cache(True)

        def miss() -> None:
            self.clear()
            self.get(user, path, "miss")

        misses = timed(miss, self.runs)
        cached_for = self.cached_for()
        statuses: list[str] = []
        warm = timed(lambda: statuses.append(self.status(user, path)), self.runs * 2)
        self.cache(False)
        return {"user": user, "path": path, "bytes": len(old), "before_first_ms": round(before[0], 1),
                "before_ms": med(before), "cold_ms": med(cold), "cold_min_ms": round(min(cold), 1),
                "miss_ms": med(misses), "warm_ms": med(warm), "warm_hits": statuses.count("hit"),
                "cached_for_s": cached_for, "speedup_cold": round(med(before) / med(cold), 1)}


def prepare_pages(settings: Settings, vacuum: bool, dirty: bool) -> None:
    """--vacuum: VACUUM customers (visibility map all-visible: index-only scans never visit the heap). --dirty: a
    rolled-back UPDATE of the customers visited around the 90-day cutoff, which clears the visibility map of their
    pages the way any update (a daily holdings feed) does until autovacuum runs: the worst case of the raw part."""
    engine = owner_engine(settings)
    if vacuum:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM (ANALYZE) customers"))
    if dirty:
        with engine.connect() as conn:
            conn.execute(text("SET LOCAL gm.audit_mode = 'summary'"))
            conn.execute(text("UPDATE customers SET name = name WHERE last_visit_at >= now() - interval '91 days' "
                              "AND last_visit_at < now() - interval '82 days'"))
            conn.rollback()


def write_cost(settings: Settings, rows: int, runs: int) -> dict[str, float]:
    """UPDATE of `rows` customers (balance, last visit) and INSERT of `rows` copies, with and without the 0020
    triggers; every run rolled back."""
    session = make_session_factory(owner_engine(settings))()
    update = ("UPDATE customers SET deposit_balance = deposit_balance + 1, last_visit_at = now() "
              f"WHERE id IN (SELECT id FROM customers ORDER BY id LIMIT {rows})")
    insert = ("INSERT INTO customers (kind, category, name, org_id, grid_id, owner_user_id, deposit_balance, "
              "loan_balance, last_visit_at, geom, h3_r10) SELECT kind, category, name, org_id, grid_id, owner_user_id, "
              f"deposit_balance, loan_balance, last_visit_at, geom, h3_r10 FROM customers ORDER BY id LIMIT {rows}")
    out: dict[str, float] = {}
    try:
        for label, disable in (("with_trigger", False), ("without_trigger", True)):
            for name, sql in (("update", update), ("insert", insert)):
                times = []
                for _ in range(runs):
                    session.execute(text("SET LOCAL gm.audit_mode = 'summary'"))
                    if disable:
                        for trigger in TRIGGERS:
                            session.execute(text(f"ALTER TABLE customers DISABLE TRIGGER {trigger}"))
                    start = time.perf_counter()
                    session.execute(text(sql))
                    times.append((time.perf_counter() - start) * 1000)
                    session.rollback()
                out[f"{name}_{rows}_{label}_ms"] = med(times)
    finally:
        session.rollback()
        session.close()
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database", default="gridmarket_bench_agg")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--raw-runs", type=int, default=3)
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--no-writes", action="store_true", help="skip the trigger write-cost rows")
    parser.add_argument("--vacuum", action="store_true", help="VACUUM customers first (clean visibility map)")
    parser.add_argument("--dirty", action="store_true", help="clear the visibility map around the cutoff first")
    args = parser.parse_args()
    settings = Settings.from_env().with_database(args.database)
    prepare_pages(settings, args.vacuum, args.dirty)
    bench = Bench(settings, args.runs, args.raw_runs)
    with bench.app.app_context():
        counts = dict(zip(("customers", "grids", "stats_rows", "visit_rows"), make_session_factory(
            owner_engine(settings))().execute(text(
                "SELECT (SELECT count(*) FROM customers), (SELECT count(*) FROM grids), "
                "(SELECT count(*) FROM grid_customer_stats), (SELECT count(*) FROM grid_customer_visits)")).one(),
            strict=True))
    report: dict[str, object] = {"machine": f"{os.cpu_count()} cores", **counts, "vacuum": args.vacuum,
                                 "dirty": args.dirty, "rows": []}
    z, x, y = TILE
    try:
        for user in USERS:
            for level in LEVELS:
                for path in (f"/aggregates/grids?level={level}", f"/aggregates/grids/{z}/{x}/{y}.mvt?level={level}"):
                    row = bench.row(user, path)
                    report["rows"].append(row)  # type: ignore[union-attr]
                    print(json.dumps(row), file=sys.stderr, flush=True)
    finally:
        bench.clear()
        bench.app.extensions[TILES_KEY] = bench.saved
    if not args.no_writes:
        report["write_cost"] = write_cost(settings, args.rows, args.runs)
    print(json.dumps(report, ensure_ascii=False, indent=1))
    print("\n| user | request | before | cold | miss | warm | cached for (s) |\n|---|---|---|---|---|---|---|")
    for r in report["rows"]:  # type: ignore[union-attr]
        print(f"| {r['user']} | `{r['path']}` | {r['before_ms']} | {r['cold_ms']} | {r['miss_ms']} | "
              f"{r['warm_ms']} | {r['cached_for_s']} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
