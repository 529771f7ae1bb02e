"""user_grants (migration 0022): each user's scopes and permission codes, kept exact by triggers on the role tables
and read by gm_auth_principal. Every change to roles must act on the very next request, exactly as when the
function computed the arrays itself; a user without a row is computed live."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import ProgrammingError

LIVE = """
SELECT u.id,
       ARRAY(SELECT DISTINCT ro.data_scope::text FROM user_roles ur JOIN roles ro ON ro.id = ur.role_id
             WHERE ur.user_id = u.id ORDER BY 1) AS scopes,
       ARRAY(SELECT DISTINCT pe.code::text FROM user_roles ur JOIN role_permissions rp ON rp.role_id = ur.role_id
             JOIN permissions pe ON pe.id = rp.permission_id WHERE ur.user_id = u.id ORDER BY 1) AS permissions
FROM users u WHERE EXISTS (SELECT 1 FROM user_roles ur WHERE ur.user_id = u.id) ORDER BY u.id"""
STORED = "SELECT user_id, scopes, permissions FROM user_grants ORDER BY user_id"


def _system(connection) -> None:  # noqa: ANN001
    connection.execute(text("SELECT set_config('gm.scope', 'all', true)"))


def _me(client, headers) -> dict:  # noqa: ANN001
    r = client.get("/api/v1/me", headers=headers)
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def _rows(conn, sql: str) -> list[tuple]:  # noqa: ANN001
    return [tuple(r) for r in conn.execute(text(sql)).all()]


def test_stored_grants_equal_the_live_computation(owner_engine):
    with owner_engine.connect() as conn:
        stored = _rows(conn, STORED)
        assert stored and stored == _rows(conn, LIVE)


def test_the_app_role_cannot_read_or_write_user_grants(connection):
    with pytest.raises(ProgrammingError, match="permission denied"), connection.begin_nested():
        connection.execute(text("SELECT * FROM user_grants"))
    with pytest.raises(ProgrammingError, match="permission denied"), connection.begin_nested():
        connection.execute(text("UPDATE user_grants SET permissions = '{}'"))


def test_a_permission_taken_from_a_role_is_gone_on_the_next_request(client, login, connection):
    h = login("am_430102_1_1")
    assert "customer:read" in _me(client, h)["permissions"]
    assert client.get("/api/v1/customers", headers=h).status_code == 200
    _system(connection)
    connection.execute(text("DELETE FROM role_permissions WHERE role_id = (SELECT id FROM roles WHERE code = "
                            "'account_manager') AND permission_id = (SELECT id FROM permissions WHERE code = "
                            "'customer:read')"))
    assert "customer:read" not in _me(client, h)["permissions"]
    assert client.get("/api/v1/customers", headers=h).status_code == 403
    # and given back
    _system(connection)
    connection.execute(text("INSERT INTO role_permissions (role_id, permission_id) SELECT r.id, p.id FROM roles r, "
                            "permissions p WHERE r.code = 'account_manager' AND p.code = 'customer:read'"))
    assert client.get("/api/v1/customers", headers=h).status_code == 200


def test_a_changed_role_scope_acts_on_the_next_request(client, login, connection):
    h = login("sbl_430102_1")
    assert _me(client, h)["data_scope"] == "org_subtree"
    _system(connection)
    connection.execute(text("UPDATE roles SET data_scope = 'org' WHERE code = 'sub_branch_leader'"))
    assert _me(client, h)["data_scope"] == "org"


def test_a_role_given_and_taken_in_bulk(client, login, connection):
    h = login("ga_430102_1")
    before = set(_me(client, h)["permissions"])
    _system(connection)
    # one statement gives the branch-leader role to every grid assistant
    connection.execute(text("INSERT INTO user_roles (user_id, role_id) SELECT ur.user_id, (SELECT id FROM roles "
                            "WHERE code = 'branch_leader') FROM user_roles ur JOIN roles r ON r.id = ur.role_id "
                            "WHERE r.code = 'grid_assistant'"))
    after = set(_me(client, h)["permissions"])
    assert after > before and _me(client, h)["data_scope"] == "org_subtree"
    _system(connection)
    connection.execute(text("DELETE FROM user_roles WHERE role_id = (SELECT id FROM roles WHERE code = "
                            "'branch_leader') AND user_id IN (SELECT ur.user_id FROM user_roles ur JOIN roles r ON "
                            "r.id = ur.role_id WHERE r.code = 'grid_assistant')"))
    assert set(_me(client, h)["permissions"]) == before


def test_a_renamed_permission_code_is_renamed_for_its_holders(client, login, connection):
    h = login("am_430102_1_1")
    _system(connection)
    connection.execute(text("UPDATE permissions SET code = 'customer:peek' WHERE code = 'customer:read'"))
    perms = _me(client, h)["permissions"]
    assert "customer:peek" in perms and "customer:read" not in perms


@pytest.fixture()
def grants_restored(owner_engine):  # noqa: ANN001, ANN201
    """Requested before `client`: its teardown runs after the test transaction is rolled back (whose login holds
    row locks on users that the refresh's foreign-key check would wait for)."""
    yield
    with owner_engine.begin() as conn:
        conn.execute(text("SELECT gm_user_grants_rebuild()"))
    with owner_engine.connect() as conn:
        assert _rows(conn, STORED) == _rows(conn, LIVE)


def test_a_user_without_a_row_is_computed_live(grants_restored, client, login, owner_engine):  # noqa: ANN001
    h = login("am_430102_1_1")
    expected = _me(client, h)["permissions"]
    with owner_engine.begin() as conn:  # committed; restored by the fixture
        conn.execute(text("DELETE FROM user_grants WHERE user_id = (SELECT id FROM users WHERE username = "
                          "'am_430102_1_1')"))
    assert expected and _me(client, h)["permissions"] == expected


def test_changes_in_one_statement_and_truncate_keep_it_exact(owner_engine):
    with owner_engine.connect() as conn, conn.begin() as tx:
        ga = "(SELECT id FROM roles WHERE code = 'grid_assistant')"
        conn.execute(text(f"UPDATE role_permissions SET permission_id = (SELECT id FROM permissions WHERE id NOT IN "
                          f"(SELECT permission_id FROM role_permissions WHERE role_id = {ga}) ORDER BY id LIMIT 1) "
                          f"WHERE role_id = {ga} AND permission_id = (SELECT min(permission_id) FROM role_permissions "
                          f"WHERE role_id = {ga})"))
        assert _rows(conn, STORED) == _rows(conn, LIVE)
        conn.execute(text("DELETE FROM roles WHERE code = 'grid_assistant'"))
        assert _rows(conn, STORED) == _rows(conn, LIVE)
        conn.execute(text("TRUNCATE user_roles"))
        assert _rows(conn, STORED) == [] == _rows(conn, LIVE)
        tx.rollback()
