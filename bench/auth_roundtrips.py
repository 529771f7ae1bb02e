"""Database round trips of one authenticated request: the one-statement authentication (geo_core.auth.fast) vs the
previous path (system context, principal with lazy role/permission loads, context again, tile timeout).

Counts what reaches PostgreSQL on a real pooled connection: every cursor execute (SQLAlchemy events), every raw
psycopg statement of tiles.sql.run, and each BEGIN / COMMIT / ROLLBACK / pool pre-ping. Loopback only, read-mostly
(each mode logs in once, which writes one auth session row).

    DATABASE_URL=postgresql://gridmarket:gridmarket@127.0.0.1:5432/gridmarket_bench \\
        .venv/bin/python bench/auth_roundtrips.py [--user admin] [--path /ogc/collections/customers/items/<id>]

`--server-time N`: instead, time N calls of `gm_auth_principal()` for the user's latest session on one connection,
alternating blocks where the user's `user_grants` row (migration 0022) is present and where it is deleted (inside a
transaction rolled back afterwards), i.e. the stored arrays vs the live DISTINCT over the role tables. Reports the
median microseconds per call (client round trip included, the same on both sides).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flask import g  # noqa: E402
from sqlalchemy import event, text  # noqa: E402

import api.extensions as ext  # noqa: E402
import tiles.sql  # noqa: E402
from geo_core.auth.service import decode_access_token, load_principal  # noqa: E402
from geo_core.config import Settings  # noqa: E402
from geo_core.db import SYSTEM, set_context  # noqa: E402


def legacy_authenticate(token: str) -> None:
    """The authentication before geo_core.auth.fast (kept here only to measure it)."""
    user_id, session_id = decode_access_token(ext.settings(), token)
    session = ext.db()
    set_context(session, SYSTEM.with_request(g.request_id, g.client_ip))
    p = load_principal(session, user_id, session_id)
    g.principal = p
    g.db_context = p.db_context().with_request(g.request_id, g.client_ip)
    set_context(session, g.db_context)


def server_time(user: str, password: str, n: int) -> dict[str, float]:
    import psycopg

    from api import create_app

    client = create_app(Settings.from_env()).test_client()  # a fresh session to authenticate
    assert client.post("/api/v1/auth/login", json={"username": user, "password": password}).status_code == 200

    url = os.environ["DATABASE_URL"].replace("postgresql+psycopg://", "postgresql://")
    q = "SELECT * FROM gm_auth_principal(%s, %s, 'bench', '127.0.0.1', CAST(%s AS text[]))"
    settings = ["statement_timeout", "15000", "jit", "off"]
    with psycopg.connect(url) as conn:
        uid, sid = conn.execute("SELECT s.user_id, s.id FROM auth_sessions s JOIN users u ON u.id = s.user_id "
                                "WHERE u.username = %s ORDER BY s.created_at DESC LIMIT 1", (user,)).fetchone()
        conn.rollback()
        samples: dict[str, list[float]] = {"stored": [], "live": []}
        for _block in range(10):
            for mode in ("stored", "live"):
                if mode == "live":
                    conn.execute("DELETE FROM user_grants WHERE user_id = %s", (uid,))
                for _ in range(5):
                    conn.execute(q, (uid, sid, settings)).fetchone()
                t = time.perf_counter()
                for _ in range(n // 10):
                    conn.execute(q, (uid, sid, settings)).fetchone()
                samples[mode].append((time.perf_counter() - t) / (n // 10) * 1e6)
                conn.rollback()
    return {mode: round(statistics.median(v), 1) for mode, v in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--user", default="admin")
    parser.add_argument("--password", default="Gm@2026demo")
    parser.add_argument("--path", default=None, help="default: one customer item by id")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--server-time", type=int, default=0, metavar="N")
    args = parser.parse_args()
    if args.server_time:
        print(json.dumps({"user": args.user, "us_per_call": server_time(args.user, args.password, args.server_time)}))
        return
    from api import create_app

    settings = Settings.from_env()
    app = create_app(settings)
    engine = app.extensions["gridmarket"].engine
    log: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *a: log.append(a[2]))
    for name in ("begin", "commit", "rollback"):
        event.listen(engine, name, lambda *a, n=name: log.append(n.upper()))
    event.listen(engine.pool, "checkout", lambda *a: log.append("PING"))  # pool_pre_ping: one round trip
    raw_run = tiles.sql.run

    def run(session, query, params=None, **kw):  # noqa: ANN001, ANN003, ANN202
        log.append("raw tiles.sql.run")
        return raw_run(session, query, params, **kw)

    tiles.sql.run = run
    client = app.test_client()
    token = client.post("/api/v1/auth/login", json={"username": args.user, "password": args.password}).get_json()
    headers = {"Authorization": f"Bearer {token['access_token']}"}
    path = args.path
    if path is None:
        with engine.connect() as conn:
            conn.execute(text("SELECT set_config('gm.scope', 'all', false)"))
            cid = conn.execute(text("SELECT id FROM customers WHERE geom IS NOT NULL ORDER BY id LIMIT 1")).scalar()
            conn.execute(text("SELECT set_config('gm.scope', '', false)"))
        path = f"/ogc/collections/customers/items/{cid}"
    report = {}
    for mode in ("before", "after"):
        ext.authenticate = legacy_authenticate if mode == "before" else fast
        counts = []
        for _ in range(args.repeat):
            log.clear()
            status = client.get(path, headers=headers).status_code
            counts.append((status, len(log), list(log)))
        status, n, statements = counts[-1]
        report[mode] = {"status": status, "round_trips": n,
                        "statements": [s.split("\n")[0][:100] for s in statements]}
    report["path"] = path
    print(json.dumps(report, ensure_ascii=False, indent=2))
    engine.dispose()


fast = ext.authenticate

if __name__ == "__main__":
    main()
