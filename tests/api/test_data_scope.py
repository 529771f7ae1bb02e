"""Data scope, tested as the attacker: a sub-branch leader of 芙蓉 probes another branch (岳麓)."""

from __future__ import annotations

import io

from sqlalchemy import select, text

ATTACKER = "sbl_430102_1"  # 文艺路支行 (under 芙蓉支行), data scope: org subtree


def _ids(client, headers, path, **params):
    q = "&".join(f"{k}={v}" for k, v in params.items())
    return client.get(f"{path}?page_size=500&{q}", headers=headers).get_json()


def _victim_ids(client, login):
    admin = login("admin")
    user = client.get("/api/v1/users?q=am_430104_1_1", headers=admin).get_json()["items"][0]
    org = client.get("/api/v1/orgs?q=BR430104", headers=admin).get_json()["items"][0]
    return user, org


def test_list_shows_only_own_subtree(client, login):
    body = _ids(client, login(ATTACKER), "/api/v1/users")
    assert body["total"] == 17  # leader + 7 outlet... of his sub-branch only
    assert all(u["username"].startswith(("sbl_430102_1", "am_430102_", "ga_430102_")) for u in body["items"])
    orgs = _ids(client, login(ATTACKER), "/api/v1/orgs")
    assert {o["code"][:8] for o in orgs["items"]} <= {"SB430102", "OU430102"}


def test_other_branch_user_and_org_by_id_are_404(client, login):
    user, org = _victim_ids(client, login)
    h = login(ATTACKER)
    assert client.get(f"/api/v1/users/{user['id']}", headers=h).status_code == 404
    assert client.get(f"/api/v1/orgs/{org['id']}", headers=h).status_code == 404


def test_cannot_write_other_branch_by_id(client, login):
    user, org = _victim_ids(client, login)
    h = login("bl_430102")  # a branch leader who may edit users, but only in 芙蓉
    assert client.patch(f"/api/v1/users/{user['id']}", json={"name": "x"}, headers=h).status_code == 404
    assert client.delete(f"/api/v1/users/{user['id']}", headers=h).status_code == 404
    assert client.post(f"/api/v1/users/{user['id']}/password", json={"password": "Aa1!aaaaaa"},
                       headers=h).status_code == 404
    assert client.post(f"/api/v1/users/{user['id']}/unlock", headers=h).status_code == 404


def test_cannot_move_own_user_into_another_branch_or_create_there(client, login):
    _, org = _victim_ids(client, login)
    h = login("bl_430102")
    mine = client.get("/api/v1/users?q=am_430102_1_1", headers=h).get_json()["items"][0]
    r = client.patch(f"/api/v1/users/{mine['id']}", json={"org_id": org["id"]}, headers=h)
    assert r.status_code == 422 and "org_id" in r.get_json()["errors"]
    r = client.post("/api/v1/users", json={"username": "spy", "name": "间谍", "org_id": org["id"]}, headers=h)
    assert r.status_code == 422 and "org_id" in r.get_json()["errors"]


def test_filters_cannot_widen_scope(client, login):
    _, org = _victim_ids(client, login)
    h = login(ATTACKER)
    assert _ids(client, h, "/api/v1/users", org_id=org["id"])["total"] == 0
    assert _ids(client, h, "/api/v1/orgs", under_id=org["id"])["total"] == 0
    assert _ids(client, h, "/api/v1/users", q="am_430104")["total"] == 0


def test_export_contains_only_own_scope(client, login):
    r = client.get("/api/v1/users/export?format=csv", headers=login(ATTACKER))
    assert r.status_code == 200
    lines = r.data.decode("utf-8-sig").strip().splitlines()[2:]
    assert len(lines) == 17
    assert not any("430104" in line for line in lines)
    r = client.get("/api/v1/users/export?format=csv&org_id=1", headers=login(ATTACKER))
    assert len(r.data.decode("utf-8-sig").strip().splitlines()) == 2  # headers only


def test_outlet_geojson_is_scoped(client, login):
    feats = client.get("/api/v1/orgs/geojson?level=outlet", headers=login(ATTACKER)).get_json()["features"]
    assert len(feats) == 4 and all(f["properties"]["code"].startswith("OU430102") for f in feats)
    assert len(client.get("/api/v1/orgs/geojson?level=outlet", headers=login("admin")).get_json()["features"]) == 63


def test_import_cannot_reach_other_branch(client, login):
    csv = "username,name,org_code,roles\nspy1,间谍,OU43010401,account_manager\n"
    r = client.post("/api/v1/users/import", headers=login("bl_430102"),
                    data={"file": (io.BytesIO(csv.encode()), "u.csv")}, content_type="multipart/form-data")
    assert r.status_code == 422
    assert r.get_json()["errors"][0]["field"] == "org_code"


def test_self_scope_sees_only_himself(client, login):
    h = login("am_430102_1_1")
    r = client.get("/api/v1/users", headers=h)
    assert r.status_code == 403  # account managers lack user:read
    me = client.get("/api/v1/me", headers=h).get_json()
    assert me["data_scope"] == "self"


def test_app_role_cannot_bypass_rls(connection):
    role = connection.execute(text("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user")).one()
    assert role == (False, False)
    # no scope set: default deny
    assert connection.execute(text("SELECT count(*) FROM users")).scalar() == 0
    assert connection.execute(text("SELECT count(*) FROM orgs")).scalar() == 0
    # the audit log cannot be written or rewritten directly by the app role
    import pytest
    from sqlalchemy.exc import ProgrammingError

    with pytest.raises(ProgrammingError):
        with connection.begin_nested():
            connection.execute(text("DELETE FROM audit_log"))


def test_spatial_index_is_used_under_rls(db_session):
    """LEAKPROOF bbox operators: the GiST index still serves spatial filters for the app role."""
    from geo_core.db import set_context
    from geo_core.orgs.models import Org
    from geo_core.scope import DataScope, scope_context

    head = db_session.execute(text("SET LOCAL enable_seqscan = off"))
    del head
    set_context(db_session, scope_context(1, 3, "n1.n2", DataScope.org_subtree))
    plan = "\n".join(r[0] for r in db_session.execute(text(
        "EXPLAIN SELECT id FROM orgs WHERE location && ST_MakeEnvelope(112.9, 28.1, 113.1, 28.3, 4326)")))
    assert "ix_orgs_location_gist" in plan, plan
    assert db_session.scalar(select(Org.id).limit(1)) is not None
