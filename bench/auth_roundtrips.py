"""Database round trips of one authenticated request: the one-statement authentication (geo_core.auth.fast) vs the
previous path (system context, principal with lazy role/permission loads, context again, tile timeout).

Counts what reaches PostgreSQL on a real pooled connection: every cursor execute (SQLAlchemy events), every raw
psycopg statement of tiles.sql.run, and each BEGIN / COMMIT / ROLLBACK / pool pre-ping. Loopback only, read-mostly
(each mode logs in once, which writes one auth session row).

    DATABASE_URL=postgresql://gridmarket:gridmarket@127.0.0.1:5432/gridmarket_bench \\
        .venv/bin/python bench/auth_roundtrips.py [--user admin] [--path /ogc/collections/customers/items/<id>]
"""

from __future__ import annotations

import argparse
import json
import sys
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--user", default="admin")
    parser.add_argument("--password", default="Gm@2026demo")
    parser.add_argument("--path", default=None, help="default: one customer item by id")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
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

    def run(session, query, params=None):  # noqa: ANN001, ANN202
        log.append("raw tiles.sql.run")
        return raw_run(session, query, params)

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
