"""Offline geocoding throughput: the address parser alone, the gazetteer (parser + PostGIS lookups), and a batch
geocode run (RQ job, chunks of 200, one transaction each) over N customers.

Uses its own database (default gridmarket_bench_geocode: created, migrated and seeded with the small demo if empty)
and Redis db (default 12). Addresses are synthetic but built from the real division names in admin_divisions:
community + building in 芙蓉/岳麓 (community grids exist there), villages elsewhere (street-level answers),
road + number (district-level without POIs), with noise (labels, spaces, full-width digits). No online provider.

    .venv/bin/python bench/geocode_bench.py [--addresses 20000] [--customers 5000]
"""

from __future__ import annotations

import argparse
import json
import os
import random
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
os.environ["GM_GEOCODER_CHAIN"] = "gazetteer"

from api.cli import owner_engine, upgrade_database  # noqa: E402
from bench.common import ensure_database  # noqa: E402
from geo_core.config import Settings  # noqa: E402
from geo_core.db import SYSTEM, make_engine, make_session_factory, set_context  # noqa: E402
from geo_core.seed.demo import is_seeded, seed_demo  # noqa: E402

ROADS = ("五一大道", "芙蓉中路二段", "人民东路", "韶山北路", "麓山南路", "银盆南路", "枫林一路", "解放西路")


def synthetic_addresses(session, n: int, seed: int = 7) -> list[str]:  # noqa: ANN001
    from geo_core.geocoding.gazetteer import load_index

    rng = random.Random(seed)
    index = load_index(session)
    villages = [d for d in index.by_code.values() if d.level == "village"]
    urban = [d for d in villages if d.code[:6] in ("430102", "430104")]
    districts = {d.code: d.name for d in index.by_code.values() if d.level == "district"}
    townships = {d.code: d.name for d in index.by_code.values() if d.level == "township"}
    out = []
    for i in range(n):
        kind = i % 4
        if kind in (0, 1):
            v = rng.choice(urban)
            out.append(f"长沙市{districts[v.code[:6]]}{townships.get(v.code[:9], '')}{v.short_name or v.name}"
                       f"{rng.randint(1, 30)}栋{rng.randint(1, 4)}单元")
        elif kind == 2:
            v = rng.choice(villages)
            out.append(f"地址：{districts[v.code[:6]]} {v.short_name or v.name} {rng.randint(1, 12)}组")
        else:
            number = str(rng.randint(1, 999)).translate(str.maketrans("0123456789", "０１２３４５６７８９"))
            out.append(f"湖南省长沙市{rng.choice(list(districts.values()))}{rng.choice(ROADS)}{number}号")
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--addresses", type=int, default=20_000)
    parser.add_argument("--customers", type=int, default=5_000)
    parser.add_argument("--database", default="gridmarket_bench_geocode")
    parser.add_argument("--redis-db", type=int, default=12)
    args = parser.parse_args()
    base = Settings.from_env()
    settings = base.with_database(args.database)
    os.environ["DATABASE_URL"] = settings.database_url  # the job reads its settings from the environment
    os.environ["REDIS_URL"] = base.redis_url.rsplit("/", 1)[0] + f"/{args.redis_db}"
    settings = Settings.from_env()
    ensure_database(settings)
    upgrade_database(settings)
    engine = owner_engine(settings)
    with make_session_factory(engine).begin() as session:
        if not is_seeded(session):
            seed_demo(session, "small", iterations=settings.pbkdf2_iterations, settings=settings)

    from geo_core.geocoding.gazetteer import geocode_parsed, parser_for
    from geo_core.geocoding.service import Geocoder

    report: dict[str, object] = {"machine": f"{os.cpu_count()} cores", "addresses": args.addresses}
    app_factory = make_session_factory(make_engine(settings.sa_app_database_url, pool_size=2))
    with app_factory() as session:
        set_context(session, SYSTEM)
        addresses = synthetic_addresses(session, args.addresses)
        address_parser = parser_for(session)
        t = time.perf_counter()
        parsed = [address_parser.parse(a) for a in addresses]
        report["parse_per_s"] = round(len(addresses) / (time.perf_counter() - t))
        sample = parsed[: min(len(parsed), 4000)]
        report["gazetteer_addresses"] = len(sample)
        t = time.perf_counter()
        for p in sample:  # no per-run cache: every division point looked up again
            geocode_parsed(session, p)
        report["gazetteer_uncached_per_s"] = round(len(sample) / (time.perf_counter() - t))
        geocoder = Geocoder(settings, online=False)
        levels: dict[str, int] = {}
        t = time.perf_counter()
        for p in sample:
            level = geocoder.geocode_parsed(session, p).best.level
            levels[level] = levels.get(level, 0) + 1
        report["gazetteer_per_s"] = round(len(sample) / (time.perf_counter() - t))
        report["gazetteer_levels"] = levels
        session.rollback()

    report["run_customers"] = args.customers
    report.update(run_job(settings, engine, addresses[: args.customers]))
    print(json.dumps(report, ensure_ascii=False, indent=2))
    return 0


def run_job(settings: Settings, engine, addresses: list[str]) -> dict[str, object]:  # noqa: ANN001
    from redis import Redis
    from rq import Queue, SimpleWorker

    from jobs.geocoding import geocode_run
    from jobs.queues import IMPORTS

    with engine.begin() as conn:
        user, org = conn.execute(text("SELECT id, org_id FROM users WHERE username = 'bl_430102'")).one()
        first = conn.scalar(text("SELECT coalesce(max(id), 0) FROM customers"))
        conn.execute(text("SELECT set_config('gm.audit_mode', 'summary', true)"))
        conn.execute(text(
            "INSERT INTO customers (kind, category, name, address, owner_user_id, org_id, status) "
            "SELECT 'person', 'potential', '基准客户' || i, a, :u, :o, 'active' "
            "FROM unnest(CAST(:a AS text[])) WITH ORDINALITY AS t(a, i)"), {"a": addresses, "u": user, "o": org})
        run_id = conn.scalar(text(
            "INSERT INTO geocode_runs (target, params, requested_by, org_id) VALUES ('missing', "
            "'{\"online\": false}'::jsonb, :u, :o) RETURNING id"), {"u": user, "o": org})
    redis = Redis.from_url(settings.redis_url)
    Queue(IMPORTS, connection=redis).enqueue(geocode_run, run_id, job_timeout=3600)
    t = time.perf_counter()
    SimpleWorker([Queue(IMPORTS, connection=redis)], connection=redis).work(burst=True)
    elapsed = time.perf_counter() - t
    with engine.begin() as conn:
        status, done, counts = conn.execute(text("SELECT status, done, counts FROM geocode_runs WHERE id = :r"),
                                            {"r": run_id}).one()
        conn.execute(text("SELECT set_config('gm.audit_mode', 'summary', true)"))
        conn.execute(text("DELETE FROM customers WHERE id > :f"), {"f": first})
        conn.execute(text("DELETE FROM geocode_runs WHERE id = :r"), {"r": run_id})
    return {"run_status": status, "run_done": done, "run_s": round(elapsed, 2),
            "run_per_s": round(done / elapsed) if elapsed else None, "run_counts": counts}


if __name__ == "__main__":
    raise SystemExit(main())
