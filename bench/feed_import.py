"""Daily feed import, set-based: first load, the same day again (forced row-by-row compare), the next day with
a few changes. N customers with 5 accounts each and a loan for every third.

Uses its own database (default gridmarket_bench_feed on the DATABASE_URL server: created, migrated and seeded with
the small demo if empty). The import runs in-process through the same function as the RQ job and the CLI.
Created rows are deleted afterwards unless --keep.

    .venv/bin/python bench/feed_import.py [--customers 20000] [--database gridmarket_bench_feed]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("GM_SECRET_KEY", "bench-secret-bench-secret-bench-secret-00")
os.environ.setdefault("GM_SM4_KEY", "00112233445566778899aabbccddeeff")
os.environ.setdefault("GM_BLIND_INDEX_KEY", "bench-blind-index-key-bench-blind-index-key")
os.environ.setdefault("GM_PBKDF2_ITERATIONS", "1000")
os.environ.setdefault("GM_LOG_LEVEL", "WARNING")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--database", default="gridmarket_bench_feed")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()

    from bench.common import ensure_database
    from geo_core.config import Settings

    base = Settings.from_env()
    url = make_url(base.sa_database_url).set(database=args.database)
    os.environ["DATABASE_URL"] = url.render_as_string(hide_password=False).replace("postgresql+psycopg://",
                                                                                    "postgresql://")
    os.environ.pop("GM_APP_DATABASE_URL", None)
    settings = Settings.from_env()
    ensure_database(settings)

    from api.cli import owner_engine, upgrade_database
    from geo_core.customers.identifiers import id_check_char
    from geo_core.db import make_session_factory
    from geo_core.feed.files import read_feed
    from geo_core.seed.demo import is_seeded, seed_demo
    from jobs.feed import run_feed_import
    from tests.feed_helpers import write_day

    upgrade_database(settings)
    engine = owner_engine(settings)
    with make_session_factory(engine).begin() as session:
        if not is_seeded(session):
            seed_demo(session, "small", iterations=1000, settings=settings)
    with engine.connect() as conn:
        org_code, emp = conn.execute(text("SELECT o.code, u.employee_no FROM users u JOIN orgs o ON o.id = u.org_id "
                                          "WHERE u.username = 'am_430102_1_1'")).one()

    rng = random.Random(7)
    n = args.customers
    customers, accounts, loans = [], [], []
    for i in range(n):
        no = f"BF{i:08d}"
        born = date(1950, 1, 1) + timedelta(days=i // 1000)  # + a 3-digit sequence: unique ID numbers
        first17 = f"439901{born:%Y%m%d}{i % 1000:03d}"
        customers.append({"customer_no": no, "kind": "person", "name": f"批量客户{i}",
                          "id_number": first17 + id_check_char(first17), "phone": f"137{i:08d}",
                          "address": f"长沙市芙蓉区测试街{i}号", "org_code": org_code, "manager_employee_no": emp})
        for k in range(5):
            accounts.append({"account_no": f"BA{i:08d}{k}", "customer_no": no, "product_code": f"DEP_{k}",
                             "account_type": "deposit" if k < 3 else "card", "balance": f"{rng.randint(0, 10**6)}.00",
                             "currency": "CNY", "opened_on": "2020-01-01", "status": "active"})
        if i % 3 == 0:
            loans.append({"loan_no": f"BL{i:08d}", "customer_no": no, "product_code": "LOAN_CONSUMER",
                          "principal": "100000", "balance": f"{rng.randint(1, 10**5)}", "due_date": "2027-06-30",
                          "overdue_amount": "0", "overdue_days": "0", "status": "normal"})
    root = Path(tempfile.mkdtemp(prefix="gm_feed_bench_"))
    figures: dict[str, object] = {"customers": n, "accounts": len(accounts), "loans": len(loans)}

    def timed(label: str, directory: Path, **kw: object) -> None:
        start = time.perf_counter()
        result = run_feed_import(str(directory), **kw)
        figures[label] = {"seconds": round(time.perf_counter() - start, 2), "status": result["status"],
                          "counts": result["counts"]}

    try:
        day1 = write_day(root, "20261124", customers, accounts, loans)
        start = time.perf_counter()
        read_feed(day1)  # the Python part alone: decode, parse, validate every row
        figures["read_and_validate_only"] = {"seconds": round(time.perf_counter() - start, 2)}
        timed("first_load", day1)
        timed("same_day_checksum", day1)
        timed("same_day_forced_compare", day1, force=True)
        for a in rng.sample(accounts, len(accounts) // 20):
            a["balance"] = f"{rng.randint(0, 10**6)}.00"
        day2 = write_day(root, "20261125", customers, accounts, loans)
        timed("next_day_5pct_changed", day2)
    finally:
        if not args.keep:
            with engine.begin() as conn:
                conn.execute(text("SELECT set_config('gm.audit_mode', 'summary', true)"))
                conn.execute(text("DELETE FROM customers WHERE customer_no LIKE 'BF%'"))
                conn.execute(text("DELETE FROM feed_runs"))
        engine.dispose()
    print(json.dumps(figures, ensure_ascii=False, indent=2))


if __name__ == "__main__":
    main()
