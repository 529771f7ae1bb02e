"""Duplicate detection on a larger synthetic customer set (keys, set-based pairs, one-customer checks).

Uses its own database (default gridmarket_bench_dedup on the DATABASE_URL server: created, migrated and seeded
with the small demo if empty), clones the 3,300 demo customers with jittered positions (fixed seed, ±100 m) until
there are --customers rows, and ANALYZEs. The clones keep their names, so every customer has same-name
neighbours: a hard case for the spatial join. As the branch leader of 芙蓉 (org subtree, app role under RLS) it
times: a cold scan of his whole scope (all matching keys computed), a warm scan (keys fresh, pairs upserted
again), the pair/evidence SQL alone, and single-customer detections (median of 20). Each run is rolled
back, so runs start equal.

    .venv/bin/python bench/dedup_detect.py [--customers 50000] [--database gridmarket_bench_dedup]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

from sqlalchemy import text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("GM_SECRET_KEY", "bench-secret-bench-secret-bench-secret-00")
os.environ.setdefault("GM_SM4_KEY", "00112233445566778899aabbccddeeff")
os.environ.setdefault("GM_BLIND_INDEX_KEY", "bench-blind-index-key-bench-blind-index-key")
os.environ.setdefault("GM_PBKDF2_ITERATIONS", "1000")
os.environ.setdefault("GM_LOG_LEVEL", "WARNING")

from api.cli import owner_engine, upgrade_database  # noqa: E402
from bench.common import ensure_database  # noqa: E402
from geo_core.config import Settings  # noqa: E402
from geo_core.customers import dedup  # noqa: E402
from geo_core.db import SYSTEM, make_engine, make_session_factory, set_context  # noqa: E402
from geo_core.scope import DataScope, scope_context  # noqa: E402
from geo_core.seed.demo import is_seeded, seed_demo  # noqa: E402

CLONE_SQL = """
INSERT INTO customers (kind, category, name, profile_type, industry, address, geom, h3_r10, location_source,
                       grid_id, owner_user_id, org_id, status)
SELECT kind, category, name, profile_type, industry, address,
       ST_SetSRID(ST_MakePoint(ST_X(geom) + (random() - 0.5) * 0.002, ST_Y(geom) + (random() - 0.5) * 0.002), 4326),
       h3_r10, location_source, grid_id, owner_user_id, org_id, status
FROM customers c, generate_series(1, :copies) WHERE c.id <= :base
"""


def prepare(settings: Settings, customers: int) -> None:
    ensure_database(settings)
    upgrade_database(settings)
    engine = owner_engine(settings)
    with make_session_factory(engine).begin() as session:
        if not is_seeded(session):
            seed_demo(session, "small", iterations=settings.pbkdf2_iterations, settings=settings)
    with engine.begin() as conn:
        conn.execute(text("SELECT setseed(0.2026)"))
        conn.execute(text("SELECT set_config('gm.audit_mode', 'summary', true)"))
        have = conn.scalar(text("SELECT count(*) FROM customers"))
        base = conn.scalar(text("SELECT max(id) FROM customers WHERE id <= 3300"))
        if have < customers:
            copies = -(-(customers - have) // base)
            conn.execute(text(CLONE_SQL), {"copies": copies, "base": base})
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("ANALYZE customers"))
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=50_000)
    parser.add_argument("--database", default="gridmarket_bench_dedup")
    args = parser.parse_args()
    settings = Settings.from_env().with_database(args.database)
    prepare(settings, args.customers)
    factory = make_session_factory(make_engine(settings.sa_app_database_url, pool_size=2))
    with factory() as session:
        set_context(session, SYSTEM)
        uid, org_id, path = session.execute(text(
            "SELECT u.id, u.org_id, o.path::text FROM users u JOIN orgs o ON o.id = u.org_id "
            "WHERE u.username = 'bl_430102'")).one()
    ctx = scope_context(uid, org_id, path, DataScope.org_subtree)

    def timed(scope: dedup.Scope, *, cold: bool, keep: bool = False) -> tuple[float, int, int]:
        with factory() as session:
            set_context(session, ctx)
            if cold:
                session.execute(text("DELETE FROM customer_match_keys"))
            visible = session.scalar(text("SELECT count(*) FROM customers"))
            start = time.perf_counter()
            ids = dedup.detect(session, uid, scope)
            elapsed = time.perf_counter() - start
            if keep:
                session.commit()
            else:
                session.rollback()
        return elapsed, len(ids), visible

    cold_s, pairs, visible = timed(dedup.Scope.of(), cold=True, keep=True)  # keys stay for the warm runs
    warm = [timed(dedup.Scope.of(), cold=False)[0] for _ in range(3)]
    with factory() as session:
        set_context(session, ctx)
        sample = session.scalars(text("SELECT id FROM customers WHERE geom IS NOT NULL ORDER BY md5(id::text) "
                                      "LIMIT 20")).all()
    single = [timed(dedup.Scope.of(customer_id=cid), cold=False)[0] for cid in sample]
    evidence = []
    for _ in range(3):  # the set-based pair SQL alone (keys fresh)
        with factory() as session:
            set_context(session, ctx)
            start = time.perf_counter()
            rows = session.execute(text(dedup._evidence_sql(dedup.Scope.of())), {"radius": dedup.RADIUS_M}).all()
            evidence.append(time.perf_counter() - start)
    print(f"{args.customers:,} customers in the database, {visible:,} visible to bl_430102 (org subtree, RLS)")
    print(f"cold scan of his scope (keys for every customer + pairs): {cold_s:.2f} s, {pairs:,} candidate pairs")
    print(f"warm scan (keys fresh): median {statistics.median(warm):.2f} s of {len(warm)}")
    print(f"of which the pair/evidence SQL: median {statistics.median(evidence):.2f} s of 3, {len(rows):,} rows")
    print(f"one customer against his scope: median {statistics.median(single) * 1000:.0f} ms, "
          f"max {max(single) * 1000:.0f} ms of {len(single)}")


if __name__ == "__main__":
    main()
