"""Rule tags and group previews on a larger synthetic customer set.

Uses its own database (default gridmarket_bench_tags on the DATABASE_URL server: created, migrated and seeded with
the small demo if empty), then clones the 3,300 demo customers with jittered positions (fixed seed) until there
are --customers rows, and ANALYZEs. Times (median of 5, app role under RLS): group previews (total + by manager +
by grid) for four definitions as an admin (scope all) and as a branch leader (org subtree), and the recompute of
every rule tag (one elevated transaction, rolled back so each run starts equal). The database is kept
(drop it when done).

    .venv/bin/python bench/tags_groups.py [--customers 200000] [--database gridmarket_bench_tags]
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
from geo_core.db import SYSTEM, make_engine, make_session_factory, set_context  # noqa: E402
from geo_core.groups import definition as defs  # noqa: E402
from geo_core.groups.models import GroupCategory  # noqa: E402
from geo_core.groups.service import preview  # noqa: E402
from geo_core.scope import DataScope, scope_context  # noqa: E402
from geo_core.seed.demo import is_seeded, seed_demo  # noqa: E402
from geo_core.tags.service import recompute  # noqa: E402

CLONE_SQL = """
INSERT INTO customers (kind, category, name, profile_type, gender, birth_date, industry, address, geom, h3_r10,
                       location_source, grid_id, owner_user_id, org_id, status, deposit_balance, loan_balance,
                       credit_limit, overdue_amount, products, holdings_as_of, last_visit_at)
SELECT kind, category, name, profile_type, gender, birth_date - (random() * 3000)::int, industry, address,
       ST_SetSRID(ST_MakePoint(ST_X(geom) + (random() - 0.5) * 0.004, ST_Y(geom) + (random() - 0.5) * 0.004), 4326),
       h3_r10, location_source, grid_id, owner_user_id, org_id, status, deposit_balance * (0.5 + random()),
       loan_balance, credit_limit, overdue_amount, products, holdings_as_of, last_visit_at
FROM customers c, generate_series(1, :copies) WHERE c.id <= :base
"""


def grow(settings: Settings, target: int) -> int:
    engine = owner_engine(settings)
    with make_session_factory(engine).begin() as session:
        if not is_seeded(session):
            seed_demo(session, "small", iterations=settings.pbkdf2_iterations, settings=settings)
    with engine.begin() as conn:
        base = conn.scalar(text("SELECT max(id) FROM customers WHERE id <= 3300"))
        count = conn.scalar(text("SELECT count(*) FROM customers"))
        if count < target:
            conn.execute(text("SELECT set_config('gm.audit_mode', 'summary', true), setseed(0.42)"))
            conn.execute(text(CLONE_SQL), {"copies": (target - count) // base + 1, "base": base})
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("ANALYZE customers"))
        conn.execute(text("ANALYZE customer_tags"))
        count = conn.scalar(text("SELECT count(*) FROM customers"))
    engine.dispose()
    return count


def median_ms(func, runs: int = 5) -> float:  # noqa: ANN001
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        func()
        times.append((time.perf_counter() - start) * 1000)
    return round(statistics.median(times), 1)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=200_000)
    parser.add_argument("--database", default="gridmarket_bench_tags")
    args = parser.parse_args()
    settings = Settings.from_env().with_database(args.database)
    ensure_database(settings)
    upgrade_database(settings)
    total = grow(settings, args.customers)
    factory = make_session_factory(make_engine(settings.sa_app_database_url, pool_size=2))
    results: dict[str, object] = {"customers": total}

    with factory() as session:  # rule tags first, so tag-based definitions have carriers
        set_context(session, SYSTEM)
        start = time.perf_counter()
        tags = recompute(session)
        session.commit()
        results["recompute_all_first_ms"] = round((time.perf_counter() - start) * 1000, 1)
        ids = {t.code: t.tag_id for t in tags}
        results["tag_totals"] = {t.code: t.total for t in tags}
        set_context(session, SYSTEM)
        leader = session.execute(text("SELECT u.id, u.org_id, o.path::text FROM users u JOIN orgs o ON "
                                      "o.id = u.org_id WHERE u.username = 'bl_430102'")).one()
        ring = session.scalar(text("SELECT ST_AsGeoJSON(ST_Envelope(ST_Collect(geom))) FROM (SELECT geom FROM "
                                   "customers WHERE id <= 200 ORDER BY id) s"))
        session.rollback()

        def timed_recompute() -> None:
            set_context(session, SYSTEM)
            recompute(session)
            session.rollback()

        results["recompute_all_again_ms"] = median_ms(timed_recompute, 3)

    definitions = {
        "tag_any": {"tags": {"any": [ids["high_net_worth"]]}},
        "rule_holdings_age": {"rule": {"all": [
            {"field": "deposit_balance", "op": ">=", "value": 100000},
            {"field": "age", "op": "between", "value": [30, 60]},
            {"field": "products", "op": "contains_any", "value": ["WEALTH", "LOAN_CONSUMER"]}]}},
        "polygon": {"polygon": json.loads(ring)},
        "near_outlet_500m": {"rule": {"field": "outlet_distance", "op": "<=", "value": 500}},
    }
    contexts = {"admin": SYSTEM, "branch_leader": scope_context(leader[0], leader[1], leader[2],
                                                                DataScope.org_subtree)}
    for who, ctx in contexts.items():
        for name, definition in definitions.items():
            with factory() as session:
                set_context(session, ctx)
                normalised = defs.normalise(session, definition, GroupCategory.formal)
                out = preview(session, normalised, "person", "formal")
                results[f"preview_{who}_{name}"] = {
                    "total": out["total"],
                    "ms": median_ms(lambda s=session, d=normalised: preview(s, d, "person", "formal"))}
                session.rollback()
    print(json.dumps(results, ensure_ascii=False, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
