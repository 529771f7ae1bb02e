"""Per-request database statements: authentication loads the principal and binds the data-scope context (and the
tile server's statement timeout) in ONE statement (geo_core.auth.fast). Counting statements is a regression guard,
not a timing assertion. Revocation must still take effect on the very next request (no cache)."""

from __future__ import annotations

from contextlib import contextmanager

from sqlalchemy import event, text

import tiles.sql


@contextmanager
def counted(connection, monkeypatch):  # noqa: ANN001, ANN201
    statements: list[str] = []

    def before(conn, cursor, statement, *args):  # noqa: ANN001, ANN202
        statements.append(statement)

    raw_run = tiles.sql.run

    def run(session, query, params=None, **kw):  # noqa: ANN001, ANN003, ANN202
        statements.append(f"raw: {query!r}"[:200])
        return raw_run(session, query, params, **kw)

    monkeypatch.setattr(tiles.sql, "run", run)
    event.listen(connection, "before_cursor_execute", before)
    try:
        yield statements
    finally:
        event.remove(connection, "before_cursor_execute", before)


def _customer_id(owner_engine, org_like: str = "%") -> int:  # noqa: ANN001
    with owner_engine.connect() as conn:
        return conn.execute(text("SELECT c.id FROM customers c JOIN orgs o ON o.id = c.org_id "
                                 "WHERE o.code LIKE :o AND c.geom IS NOT NULL ORDER BY c.id LIMIT 1"),
                            {"o": org_like}).scalar_one()


def test_item_by_id_needs_few_statements(client, login, connection, owner_engine, monkeypatch):
    h = login("admin")
    cid = _customer_id(owner_engine)
    client.get(f"/ogc/collections/customers/items/{cid}", headers=h)  # warm caches (catalog, column lists)
    with counted(connection, monkeypatch) as statements:
        r = client.get(f"/ogc/collections/customers/items/{cid}", headers=h)
    assert r.status_code == 200 and r.get_json()["id"] == cid
    auth = [s for s in statements if "gm_auth_principal" in s]
    assert len(auth) == 1, statements
    # nothing else sets the context or the timeout: one auth statement + the item query (+ savepoint handling of
    # the test connection, which a real pooled connection does not have)
    assert not [s for s in statements if "set_config" in s], statements
    work = [s for s in statements if "SAVEPOINT" not in s.upper()]
    assert len(work) <= 3, work


def test_context_and_timeout_are_applied(client, login, connection):
    h = login("bl_430102")
    r = client.get("/api/v1/me", headers=h)
    assert r.status_code == 200
    from flask import g

    from api.extensions import db
    with client.application.test_request_context("/ogc/collections", headers=h):
        client.application.preprocess_request()
        session = db()
        row = session.execute(text("SELECT current_setting('gm.user_id'), current_setting('gm.scope'), "
                                   "current_setting('gm.lqueries'), current_setting('statement_timeout'), "
                                   "current_setting('jit')")).one()
        assert g.principal.username == "bl_430102"
        assert row[0] == str(g.principal.user_id) and row[1] == "lqueries" and row[2].endswith(".*}")
        assert row[3] != "0" and row[4] == "off"
        g.pop("db").close()


def test_revocation_takes_effect_at_once(client, login, connection):
    h = login("sbl_430102_1")
    assert client.get("/api/v1/me", headers=h).status_code == 200
    # logout revokes the session: the very next request is refused
    assert client.post("/api/v1/auth/logout", headers=h).status_code in (200, 204)
    r = client.get("/api/v1/me", headers=h)
    assert r.status_code == 401 and r.get_json()["code"] == "SESSION_INVALID"


def test_disabled_user_and_changed_roles(client, login, connection):
    h = login("am_430102_1_1")
    assert client.get("/api/v1/me", headers=h).status_code == 200
    assert client.get("/ogc/collections", headers=h).status_code == 200
    # drop every role: permissions vanish on the next request
    connection.execute(text("SELECT set_config('gm.scope', 'all', true)"))
    connection.execute(text("DELETE FROM user_roles WHERE user_id = (SELECT id FROM users WHERE username = :u)"),
                       {"u": "am_430102_1_1"})
    r = client.get("/api/v1/customers", headers=h)
    assert r.status_code == 403, r.get_json()
    connection.execute(text("SELECT set_config('gm.scope', 'all', true)"))
    connection.execute(text("UPDATE users SET status = 'disabled' WHERE username = :u"), {"u": "am_430102_1_1"})
    r = client.get("/api/v1/me", headers=h)
    assert r.status_code == 401 and r.get_json()["code"] == "ACCOUNT_DISABLED"


def test_invalid_session_sets_no_context(client, connection):
    import uuid

    from api.extensions import settings as app_settings
    from geo_core.auth.service import issue_access_token

    with client.application.app_context():
        token = issue_access_token(app_settings(), 1, uuid.uuid4())
    r = client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401 and r.get_json()["code"] == "SESSION_INVALID"
