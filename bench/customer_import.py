"""Customer list import, end to end: upload -> validate (preview) -> submit -> RQ job, on N synthetic rows.

Uses its own database (default gridmarket_bench_lists on the DATABASE_URL server: created, migrated and seeded
with the small demo if empty) and its own Redis db (default 13). The CSV follows the built-in 个人客户名单
template: name, valid-checksum ID number, mobile, address and a point in the urban districts. The job runs in a
SimpleWorker in this process (the same code path as `gridmarket worker`). Created rows are deleted afterwards
unless --keep.

    .venv/bin/python bench/customer_import.py [--rows 100000] [--database gridmarket_bench_lists]
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import random
import sys
import time
from datetime import date, timedelta
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
from geo_core.customers.identifiers import id_check_char  # noqa: E402
from geo_core.db import make_session_factory  # noqa: E402
from geo_core.seed.demo import DEMO_PASSWORD, is_seeded, seed_demo  # noqa: E402

HEADER = ["姓名", "身份证号", "手机号码", "地址", "经度", "纬度"]
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华"


def synthetic_csv(n: int, seed: int = 11) -> bytes:
    """N rows with unique valid ID numbers (region 439901, which the demo never uses) and unique mobiles."""
    rng = random.Random(seed)
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(HEADER)
    for i in range(n):
        born = date(1950, 1, 1) + timedelta(days=i // 1000)
        first17 = f"439901{born:%Y%m%d}{i % 1000:03d}"
        name = rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2))))
        writer.writerow([name, first17 + id_check_char(first17), f"198{i:08d}", f"长沙市芙蓉区示例路{i % 997}号",
                         f"{112.93 + rng.random() * 0.12:.6f}", f"{28.15 + rng.random() * 0.08:.6f}"])
    return buf.getvalue().encode("utf-8-sig")


def timed(report: dict[str, object], key: str, func, *args, **kwargs):  # noqa: ANN001, ANN201
    t = time.perf_counter()
    out = func(*args, **kwargs)
    report[key] = round(time.perf_counter() - t, 2)
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--database", default="gridmarket_bench_lists")
    parser.add_argument("--redis-db", type=int, default=13)
    parser.add_argument("--keep", action="store_true", help="keep the imported customers and the batch")
    args = parser.parse_args()
    base = Settings.from_env()
    settings = base.with_database(args.database)
    redis_url = base.redis_url.rsplit("/", 1)[0] + f"/{args.redis_db}"
    os.environ["DATABASE_URL"] = settings.database_url  # the job reads its settings from the environment
    os.environ["REDIS_URL"] = redis_url
    settings = Settings.from_env()
    ensure_database(settings)
    upgrade_database(settings)
    engine = owner_engine(settings)
    with make_session_factory(engine).begin() as session:
        if not is_seeded(session):
            seed_demo(session, "small", iterations=settings.pbkdf2_iterations, settings=settings)

    from redis import Redis
    from rq import Queue, SimpleWorker

    from api import create_app
    from jobs.queues import IMPORTS

    app = create_app(settings)
    client = app.test_client()
    token = client.post("/api/v1/auth/login", json={"username": "bl_430102", "password": DEMO_PASSWORD})
    h = {"Authorization": f"Bearer {token.get_json()['access_token']}"}
    template = next(t["id"] for t in client.get("/api/v1/customer-list-templates", headers=h).get_json()
                    if t["code"] == "person_list")
    report: dict[str, object] = {"machine": f"{os.cpu_count()} cores", "rows": args.rows}
    data = timed(report, "generate_csv_s", synthetic_csv, args.rows)
    report["file_mb"] = round(len(data) / 1024 / 1024, 1)
    started = time.perf_counter()
    r = timed(report, "upload_s", client.post, "/api/v1/customer-imports", headers=h,
              content_type="multipart/form-data", query_string={"template_id": template, "name": "bench"},
              data={"file": (io.BytesIO(data), "bench.csv")})
    assert r.status_code == 201, r.get_json()
    batch_id = r.get_json()["id"]
    r = timed(report, "validate_s", client.get, f"/api/v1/customer-imports/{batch_id}/preview?page_size=20",
              headers=h)
    summary = r.get_json()["batch"]
    assert summary["valid_rows"] == args.rows, summary
    r = timed(report, "submit_s", client.post, f"/api/v1/customer-imports/{batch_id}/submit", json={}, headers=h)
    assert r.status_code == 202, r.get_json()
    redis = Redis.from_url(redis_url)
    worker = SimpleWorker([Queue(IMPORTS, connection=redis)], connection=redis)
    timed(report, "job_s", worker.work, burst=True)
    report["total_s"] = round(time.perf_counter() - started, 2)
    detail = client.get(f"/api/v1/customer-imports/{batch_id}", headers=h).get_json()
    assert detail["status"] == "done", detail
    report["created_rows"] = detail["created_rows"]
    report["job_rows_per_s"] = round(args.rows / report["job_s"])  # type: ignore[operator]
    report["end_to_end_rows_per_s"] = round(args.rows / report["total_s"])  # type: ignore[operator]
    report["job_progress"] = detail["job"]["progress"]
    if not args.keep:
        with engine.begin() as conn:
            conn.execute(text("SELECT set_config('gm.audit_mode', 'summary', true)"))
            conn.execute(text("DELETE FROM customers WHERE id IN (SELECT customer_id FROM customer_list_entries "
                              "WHERE batch_id = :b AND NOT matched)"), {"b": batch_id})
            conn.execute(text("DELETE FROM customer_import_batches WHERE id = :b"), {"b": batch_id})
    print(json.dumps(report, ensure_ascii=False, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
