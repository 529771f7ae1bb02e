"""Org tree and user management: CRUD, rules, import (all-or-nothing), export, audit trail."""

from __future__ import annotations

import io

from openpyxl import Workbook, load_workbook
from sqlalchemy import text

from geo_core.db import SYSTEM, set_context


def _upload(client, url, headers, content: bytes, name: str):
    return client.post(url, headers=headers, data={"file": (io.BytesIO(content), name)},
                       content_type="multipart/form-data")


def _org(client, h, code):
    return client.get(f"/api/v1/orgs?q={code}", headers=h).get_json()["items"][0]


def test_org_crud_and_path_maintenance(client, login):
    h = login("admin")
    branch = _org(client, h, "BR430102")
    r = client.post("/api/v1/orgs", headers=h, json={"code": "SB-NEW-1", "name": "新建二级支行", "level": "sub_branch",
                                                    "parent_id": branch["id"], "lon": 113.0, "lat": 28.2})
    assert r.status_code == 201, r.get_json()
    sub = r.get_json()
    assert sub["path"] == f"{branch['path']}.n{sub['id']}" and sub["lon"] == 113.0
    outlet = client.post("/api/v1/orgs", headers=h, json={"code": "OU-NEW-1", "name": "新网点", "level": "outlet",
                                                         "parent_id": sub["id"]}).get_json()
    # moving the sub-branch to another branch moves its subtree
    other = _org(client, h, "BR430104")
    moved = client.patch(f"/api/v1/orgs/{sub['id']}", headers=h, json={"parent_id": other["id"]}).get_json()
    assert moved["path"].startswith(other["path"] + ".")
    outlet_path = client.get(f"/api/v1/orgs/{outlet['id']}", headers=h).get_json()["path"]
    assert outlet_path == f"{moved['path']}.n{outlet['id']}"
    # a parent cannot be moved under its own child
    r = client.patch(f"/api/v1/orgs/{sub['id']}", headers=h, json={"parent_id": outlet["id"]})
    assert r.status_code == 422
    # delete refused while it has children, then allowed bottom-up
    assert client.delete(f"/api/v1/orgs/{sub['id']}", headers=h).status_code == 409
    assert client.delete(f"/api/v1/orgs/{outlet['id']}", headers=h).status_code == 204
    assert client.delete(f"/api/v1/orgs/{sub['id']}", headers=h).status_code == 204


def test_org_rules(client, login):
    h = login("admin")
    outlet = _org(client, h, "OU43010201")
    cases = [
        ({"code": "X1", "name": "n", "level": "branch", "parent_id": outlet["id"]}, 422, "parent_id"),
        ({"code": "X2", "name": "n", "level": "outlet"}, 422, "parent_id"),
        ({"code": "HO0001", "name": "n", "level": "branch", "parent_id": 1}, 409, "code"),
        ({"code": "bad code!", "name": "n", "level": "branch", "parent_id": 1}, 422, "code"),
        ({"code": "X3", "name": "n", "level": "galaxy", "parent_id": 1}, 422, "level"),
        ({"code": "X4", "name": "n", "level": "branch", "parent_id": 1, "lon": 500}, 422, "lon"),
    ]
    for body, status, field in cases:
        r = client.post("/api/v1/orgs", headers=h, json=body)
        assert r.status_code == status, (body, r.get_json())
        assert field in r.get_json()["errors"], r.get_json()


def test_user_crud_and_audit_trail(client, login, db_session):
    h = login("admin")
    outlet = _org(client, h, "OU43010201")
    r = client.post("/api/v1/users", headers=h, json={"username": "New.User", "name": "新员工", "org_id": outlet["id"],
                                                     "employee_no": "E90001", "roles": ["account_manager"],
                                                     "password": "Start#2026"})
    assert r.status_code == 201, r.get_json()
    user = r.get_json()
    assert user["username"] == "new.user" and user["roles"] == ["account_manager"]
    assert client.post("/api/v1/auth/login", json={"username": "new.user", "password": "Start#2026"}).status_code == 200
    r = client.patch(f"/api/v1/users/{user['id']}", headers=h, json={"phone": "13912345678"})
    assert r.get_json()["phone"] == "13912345678" and r.get_json()["roles"] == ["account_manager"]
    dup = client.post("/api/v1/users", headers=h, json={"username": "new.user", "name": "x", "org_id": outlet["id"]})
    assert dup.status_code == 409 and "username" in dup.get_json()["errors"]
    weak = client.post(f"/api/v1/users/{user['id']}/password", headers=h, json={"password": "123"})
    assert weak.status_code == 422 and "password" in weak.get_json()["errors"]
    assert client.delete(f"/api/v1/users/{user['id']}", headers=h).status_code == 204
    assert client.get(f"/api/v1/users/{user['id']}", headers=h).status_code == 404

    set_context(db_session, SYSTEM)
    rows = db_session.execute(text(
        "SELECT action, actor_user_id, request_id IS NOT NULL, client_ip IS NOT NULL, before->>'phone', "
        "after->>'phone', coalesce(after, before)->>'password_hash' FROM audit_log "
        "WHERE entity = 'users' AND entity_id = :id AND action IN ('insert','update','delete') ORDER BY id"),
        {"id": str(user["id"])}).all()
    actions = [r[0] for r in rows]
    assert actions[0] == "insert" and actions[-1] == "delete" and "update" in actions
    # who (the admin, or the user himself for his own login), request id, client IP
    assert all(r[1] in (1, user["id"]) and r[2] and r[3] for r in rows), rows
    assert ("update", None, "13912345678") in [(r[0], r[4], r[5]) for r in rows]
    assert all(r[6] is None or r[6].startswith("[redacted:") for r in rows)  # no hash in the audit log


def test_role_escalation_is_refused(client, login):
    h = login("bl_430102")
    mine = client.get("/api/v1/users?q=am_430102_1_1", headers=h).get_json()["items"][0]
    r = client.patch(f"/api/v1/users/{mine['id']}", headers=h, json={"roles": ["admin"]})
    assert r.status_code == 403 and r.get_json()["code"] == "ROLE_NOT_GRANTABLE"
    me = client.get("/api/v1/me", headers=h).get_json()
    r = client.patch(f"/api/v1/users/{me['id']}", headers=h, json={"roles": ["branch_leader", "account_manager"]})
    assert r.status_code == 403


def test_user_import_all_or_nothing_with_row_errors(client, login):
    h = login("admin")
    good = "username,employee_no,name,org_code,roles\nimp1,E80001,导入一,OU43010201,account_manager\n"
    bad = good + ("imp2,E80002,导入二,NO-SUCH-ORG,account_manager\n"
                  "imp3,E80001,导入三,OU43010201,no_such_role\n"
                  "imp1,E80004,,OU43010201,\n")
    r = _upload(client, "/api/v1/users/import", h, bad.encode(), "users.csv")
    assert r.status_code == 422
    body = r.get_json()
    assert body["code"] == "IMPORT_REJECTED"
    got = {(e["row"], e["field"]) for e in body["errors"]}
    assert {(3, "org_code"), (4, "roles"), (4, "employee_no"), (5, "name"), (5, "username")} <= got
    assert client.get("/api/v1/users?q=imp1", headers=h).get_json()["total"] == 0  # nothing written
    r = _upload(client, "/api/v1/users/import", h, good.encode(), "users.csv")
    assert r.status_code == 200 and r.get_json() == {"created": 1, "updated": 0}
    # the same file again updates instead of duplicating
    assert _upload(client, "/api/v1/users/import", h, good.encode(), "users.csv").get_json() == {"created": 0,
                                                                                                 "updated": 1}


def test_xlsx_export_reimports_unchanged(client, login):
    h = login("admin")
    r = client.get("/api/v1/orgs/export?format=xlsx", headers=h)
    assert r.status_code == 200 and r.mimetype.endswith("sheet")
    ws = load_workbook(io.BytesIO(r.data)).active
    rows = list(ws.iter_rows(values_only=True))
    assert rows[0][0] == "机构代码" and rows[1][0] == "code" and len(rows) == 2 + 91
    r = _upload(client, "/api/v1/orgs/import", h, r.data, "orgs.xlsx")
    assert r.status_code == 200, r.get_json()
    assert r.get_json() == {"created": 0, "updated": 91}


def test_org_import_with_parents_later_in_file_and_gbk_csv(client, login):
    h = login("admin")
    csv = ("机构代码,机构名称,机构层级,上级机构代码\n"
           "OU-IMP-1,导入网点,网点,SB-IMP-1\n"
           "SB-IMP-1,导入支行,二级支行,BR430102\n")
    r = _upload(client, "/api/v1/orgs/import", h, csv.encode("gb18030"), "orgs.csv")
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["created"] == 2
    wb = Workbook()
    wb.active.append(["code", "name", "level", "parent_code"])
    wb.active.append(["OU-IMP-2", "坏行", "outlet", "NOPE"])
    buf = io.BytesIO()
    wb.save(buf)
    r = _upload(client, "/api/v1/orgs/import", h, buf.getvalue(), "orgs.xlsx")
    assert r.status_code == 422 and r.get_json()["errors"][0] == {"row": 2, "field": "parent_code",
                                                                   "message": "上级机构 NOPE 不存在或不在权限范围内"}


def test_import_rejects_bad_files(client, login):
    h = login("admin")
    for content, name in ((b"", "x.csv"), (b"\x00\x01garbage", "x.xlsx"), (b"a,b\n1,2\n", "x.txt"),
                          (b"name\nfoo\n", "x.csv")):
        r = _upload(client, "/api/v1/users/import", h, content, name)
        assert r.status_code == 422, (name, r.get_json())
    r = client.post("/api/v1/users/import", headers=h, data={}, content_type="multipart/form-data")
    assert r.status_code == 422


def test_permission_denied_is_403_with_missing_permission(client, login):
    h = login("am_430102_1_1")
    r = client.post("/api/v1/orgs", headers=h, json={"code": "X", "name": "x", "level": "outlet", "parent_id": 1})
    assert r.status_code == 403 and r.get_json()["detail"]["missing"] == ["org:edit"]
    assert client.get("/api/v1/users/export", headers=h).status_code == 403


def test_menus_follow_permissions(client, login):
    admin = client.get("/api/v1/me/menus", headers=login("admin")).get_json()
    system = next(m for m in admin if m["code"] == "system")
    assert len(system["children"]) == 8
    am = client.get("/api/v1/me/menus", headers=login("am_430102_1_1")).get_json()
    assert [m["code"] for m in am] == ["home", "map", "grids", "customers", "system"]
    assert [c["code"] for c in am[3]["children"]] == ["customers.list", "customers.imports", "customers.groups",
                                                      "customers.tags", "customers.reminders",
                                                      "customers.coverage",  # MANAGER_BASE holds coverage:read
                                                      "customers.profile_tasks"]  # customer:read
    assert [c["code"] for c in am[4]["children"]] == ["system.orgs", "system.dict"]


def test_import_rejects_a_huge_cell_with_422(client, login):
    h = login("admin")
    huge = "username,name,org_code\nu1," + "长" * 200_000 + ",OU43010201\n"
    r = _upload(client, "/api/v1/users/import", h, huge.encode(), "users.csv")
    assert r.status_code == 422 and r.get_json()["code"] == "IMPORT_REJECTED"
