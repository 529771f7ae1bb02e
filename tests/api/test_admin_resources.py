"""System administration resources: roles, permissions, menus, dictionary, devices, audit log."""

from __future__ import annotations

import io

import pytest

ROLE = {
    "code": "test_viewer",
    "name": "测试查看员",
    "description": "测试",
    "data_scope": "org",
    "permissions": ["org:read", "map:view"],
}


def user_id(client, login, username: str) -> int:
    r = client.get("/api/v1/users", query_string={"q": username}, headers=login("admin"))
    return next(u["id"] for u in r.get_json()["items"] if u["username"] == username)


def upload(client, url: str, content: str | bytes, headers: dict[str, str], name: str = "x.csv"):
    data = content.encode("utf-8") if isinstance(content, str) else content
    return client.post(
        url, data={"file": (io.BytesIO(data), name)}, headers=headers, content_type="multipart/form-data"
    )


def grant_role_editor(client, login, username: str = "sbl_430102_1") -> None:
    """Give a sub-branch leader role:edit too (scope org_subtree), as the admin would."""
    admin = login("admin")
    r = client.post(
        "/api/v1/roles",
        json={
            "code": "role_editor",
            "name": "角色维护",
            "data_scope": "org_subtree",
            "permissions": ["role:read", "role:edit"],
        },
        headers=admin,
    )
    assert r.status_code == 201, r.get_json()
    uid = user_id(client, login, username)
    user = client.get(f"/api/v1/users/{uid}", headers=admin).get_json()
    r = client.patch(
        f"/api/v1/users/{uid}",
        headers=admin,
        json={
            "username": user["username"],
            "name": user["name"],
            "org_id": user["org_id"],
            "roles": [*user["roles"], "role_editor"],
        },
    )
    assert r.status_code == 200, r.get_json()


# -- roles ----------------------------------------------------------------------------------------


def test_role_crud(client, login):
    admin = login("admin")
    r = client.post("/api/v1/roles", json=ROLE, headers=admin)
    assert r.status_code == 201, r.get_json()
    role = r.get_json()
    assert role["permissions"] == ["map:view", "org:read"] and role["is_builtin"] is False
    r = client.get("/api/v1/roles", query_string={"q": "test_view"}, headers=admin)
    body = r.get_json()
    assert body["total"] == 1 and body["items"][0]["code"] == "test_viewer"
    assert set(body) == {"items", "total", "page", "page_size"}
    r = client.patch(
        f"/api/v1/roles/{role['id']}", json={"name": "改名", "permissions": ["dict:read"]}, headers=admin
    )
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["name"] == "改名" and r.get_json()["permissions"] == ["dict:read"]
    assert r.get_json()["data_scope"] == "org"
    assert client.delete(f"/api/v1/roles/{role['id']}", headers=admin).status_code == 204
    assert client.get(f"/api/v1/roles/{role['id']}", headers=admin).status_code == 404


def test_role_validation_and_builtin(client, login):
    admin = login("admin")
    r = client.post(
        "/api/v1/roles", json={**ROLE, "data_scope": "galaxy", "permissions": "org:read"}, headers=admin
    )
    assert r.status_code == 422
    assert {"data_scope", "permissions"} <= set(r.get_json()["errors"])
    r = client.post("/api/v1/roles", json={**ROLE, "permissions": ["nope:nothing"]}, headers=admin)
    assert r.status_code == 422 and "permissions" in r.get_json()["errors"]
    r = client.post("/api/v1/roles", json={**ROLE, "code": "admin"}, headers=admin)
    assert r.status_code == 409 and r.get_json()["errors"]["code"]
    builtin = client.get("/api/v1/roles", query_string={"q": "account_manager"}, headers=admin).get_json()[
        "items"
    ][0]
    r = client.patch(f"/api/v1/roles/{builtin['id']}", json={"code": "renamed"}, headers=admin)
    assert r.status_code == 409 and r.get_json()["code"] == "ROLE_BUILTIN"
    r = client.delete(f"/api/v1/roles/{builtin['id']}", headers=admin)
    assert r.status_code == 409 and r.get_json()["code"] == "ROLE_BUILTIN"
    assert (
        client.patch(
            f"/api/v1/roles/{builtin['id']}", json={"description": "内置"}, headers=admin
        ).status_code
        == 200
    )


def test_role_in_use_cannot_be_deleted(client, login):
    admin = login("admin")
    role = client.post("/api/v1/roles", json=ROLE, headers=admin).get_json()
    am = client.get(f"/api/v1/users/{user_id(client, login, 'am_430102_1_1')}", headers=admin).get_json()
    r = client.post(
        "/api/v1/users",
        headers=admin,
        json={"username": "role_holder", "name": "持有人", "org_id": am["org_id"], "roles": ["test_viewer"]},
    )
    assert r.status_code == 201, r.get_json()
    r = client.delete(f"/api/v1/roles/{role['id']}", headers=admin)
    assert r.status_code == 409 and r.get_json()["code"] == "ROLE_IN_USE"


def test_role_permission_denied(client, login):
    r = client.post("/api/v1/roles", json=ROLE, headers=login("am_430102_1_1"))
    assert r.status_code == 403 and r.get_json()["code"] == "PERMISSION_DENIED"
    assert client.get("/api/v1/roles", headers=login("am_430102_1_1")).status_code == 403
    # a sub-branch leader lacks role:edit, so he cannot hand it out in a role either
    r = client.post(
        "/api/v1/roles", json={**ROLE, "permissions": ["role:edit"]}, headers=login("sbl_430102_1")
    )
    assert r.status_code == 403


def test_role_escalation_refused(client, login):
    grant_role_editor(client, login)
    sbl = login("sbl_430102_1")
    r = client.post("/api/v1/roles", json={**ROLE, "data_scope": "all"}, headers=sbl)
    assert r.status_code == 403 and r.get_json()["code"] == "ROLE_NOT_GRANTABLE"
    r = client.post("/api/v1/roles", json={**ROLE, "permissions": ["user:edit"]}, headers=sbl)
    assert r.status_code == 403 and r.get_json()["code"] == "ROLE_NOT_GRANTABLE"
    r = client.post("/api/v1/roles", json={**ROLE, "permissions": ["org:read", "role:edit"]}, headers=sbl)
    assert r.status_code == 201, r.get_json()
    mine = r.get_json()
    r = client.patch(f"/api/v1/roles/{mine['id']}", json={"data_scope": "all"}, headers=sbl)
    assert r.status_code == 403 and r.get_json()["code"] == "ROLE_NOT_GRANTABLE"
    admin_role = client.get("/api/v1/roles", query_string={"q": "admin"}, headers=sbl).get_json()["items"][0]
    r = client.patch(f"/api/v1/roles/{admin_role['id']}", json={"permissions": []}, headers=sbl)
    assert r.status_code == 403 and r.get_json()["code"] == "ROLE_NOT_GRANTABLE"
    # roles are global: without scope "all" nobody can be sure a role is unused
    assert client.delete(f"/api/v1/roles/{mine['id']}", headers=sbl).status_code == 403


def test_role_import_all_or_nothing(client, login):
    admin = login("admin")
    bad = (
        "code,name,description,data_scope,permissions\n"
        "imp_ok,导入角色,,org,org:read;map:view\n"
        "imp_bad_perm,坏权限,,org,org:read;nope:nothing\n"
        "imp_bad_scope,坏范围,,everywhere,org:read\n"
    )
    r = upload(client, "/api/v1/roles/import", bad, admin)
    assert r.status_code == 422
    errors = r.get_json()["errors"]
    assert {(e["row"], e["field"]) for e in errors} == {(3, "permissions"), (4, "data_scope")}
    assert client.get("/api/v1/roles", query_string={"q": "imp_"}, headers=admin).get_json()["total"] == 0
    good = "角色代码,角色名称,数据范围,权限代码\nimp_ok,导入角色,本机构,org:read;map:view\n"
    r = upload(client, "/api/v1/roles/import", good, admin)
    assert r.status_code == 200 and r.get_json() == {"created": 1, "updated": 0}
    r = upload(client, "/api/v1/roles/import", good.replace("导入角色", "导入角色2"), admin)
    assert r.get_json() == {"created": 0, "updated": 1}
    export = client.get("/api/v1/roles/export", query_string={"q": "imp_"}, headers=admin)
    assert export.status_code == 200 and "imp_ok" in export.get_data(as_text=True)
    assert "map:view;org:read" in export.get_data(as_text=True)
    assert upload(client, "/api/v1/roles/import", export.get_data(), admin).status_code == 200


def test_role_import_not_grantable(client, login):
    grant_role_editor(client, login)
    content = "code,name,data_scope,permissions\nimp_x,越权,all,org:read\nimp_y,越权2,org,audit:read\n"
    r = upload(client, "/api/v1/roles/import", content, login("sbl_430102_1"))
    assert r.status_code == 422
    assert {(e["row"], e["field"]) for e in r.get_json()["errors"]} == {(2, "data_scope"), (3, "permissions")}


def test_role_export_xlsx(client, login):
    r = client.get("/api/v1/roles/export", query_string={"format": "xlsx"}, headers=login("admin"))
    assert r.status_code == 200 and r.data[:2] == b"PK"


# -- permissions ----------------------------------------------------------------------------------


def test_permission_crud(client, login):
    admin = login("admin")
    r = client.post("/api/v1/permissions", json={"code": "report:view", "name": "查看报表"}, headers=admin)
    assert r.status_code == 201, r.get_json()
    perm = r.get_json()
    assert perm["is_builtin"] is False
    r = client.post("/api/v1/permissions", json={"code": "Report-View", "name": "x"}, headers=admin)
    assert r.status_code == 422 and "code" in r.get_json()["errors"]
    r = client.post("/api/v1/permissions", json={"code": "report:view", "name": "x"}, headers=admin)
    assert r.status_code == 409
    r = client.patch(f"/api/v1/permissions/{perm['id']}", json={"description": "报表"}, headers=admin)
    assert r.status_code == 200 and r.get_json()["description"] == "报表"
    r = client.get("/api/v1/permissions", query_string={"q": "report:"}, headers=admin)
    assert r.get_json()["total"] == 1
    builtin = client.get("/api/v1/permissions", query_string={"q": "org:read"}, headers=admin).get_json()[
        "items"
    ][0]
    r = client.delete(f"/api/v1/permissions/{builtin['id']}", headers=admin)
    assert r.status_code == 409 and r.get_json()["code"] == "PERMISSION_BUILTIN"
    assert client.delete(f"/api/v1/permissions/{perm['id']}", headers=admin).status_code == 204
    assert (
        client.post(
            "/api/v1/permissions", json={"code": "a:b", "name": "x"}, headers=login("sbl_430102_1")
        ).status_code
        == 403
    )


def test_permission_import_export(client, login):
    admin = login("admin")
    r = upload(client, "/api/v1/permissions/import", "code,name\nreport:view,查看报表\nBAD CODE,坏\n", admin)
    assert r.status_code == 422 and [e["row"] for e in r.get_json()["errors"]] == [3]
    r = upload(client, "/api/v1/permissions/import", "code,name,description\nreport:view,查看报表,x\n", admin)
    assert r.get_json() == {"created": 1, "updated": 0}
    text = client.get("/api/v1/permissions/export", headers=admin).get_data(as_text=True)
    assert "report:view" in text and "org:read" in text


# -- menus ----------------------------------------------------------------------------------------


def test_menu_crud_tree_and_cycle(client, login):
    admin = login("admin")
    r = client.get("/api/v1/menus", query_string={"q": "system.", "page_size": 100}, headers=admin)
    assert r.status_code == 200 and all(m["parent_code"] == "system" for m in r.get_json()["items"])
    r = client.post(
        "/api/v1/menus",
        json={"code": "t.parent", "name": "测试组", "permission_code": "nope:x"},
        headers=admin,
    )
    assert r.status_code == 422 and "permission_code" in r.get_json()["errors"]
    parent = client.post(
        "/api/v1/menus", json={"code": "t.parent", "name": "测试组"}, headers=admin
    ).get_json()
    r = client.post(
        "/api/v1/menus",
        json={
            "code": "t.child",
            "name": "子菜单",
            "parent_id": parent["id"],
            "route": "/app/t",
            "permission_code": "org:read",
        },
        headers=admin,
    )
    assert r.status_code == 201, r.get_json()
    child = r.get_json()
    assert child["parent_code"] == "t.parent"
    r = client.patch(f"/api/v1/menus/{parent['id']}", json={"parent_id": child["id"]}, headers=admin)
    assert r.status_code == 422 and "parent_id" in r.get_json()["errors"]
    r = client.patch(f"/api/v1/menus/{parent['id']}", json={"parent_id": parent["id"]}, headers=admin)
    assert r.status_code == 422
    r = client.patch(f"/api/v1/menus/{child['id']}", json={"sort_order": 5, "icon": "star"}, headers=admin)
    assert r.status_code == 200 and r.get_json()["sort_order"] == 5
    r = client.post(
        "/api/v1/menus/batch", json={"ids": [parent["id"], child["id"]], "is_visible": False}, headers=admin
    )
    assert r.status_code == 200 and r.get_json()["updated"] == 2
    tree = client.get("/api/v1/menus/tree", headers=admin).get_json()
    node = next(n for n in tree if n["code"] == "t.parent")
    assert node["is_visible"] is False and node["children"][0]["code"] == "t.child"
    assert any(n["code"] == "system" and len(n["children"]) >= 8 for n in tree)
    my_menus = client.get("/api/v1/me/menus", headers=admin).get_json()
    assert all(n["code"] != "t.parent" for n in my_menus)
    r = client.post("/api/v1/menus/batch", json={"ids": [child["id"], 999999]}, headers=admin)
    assert r.status_code == 422
    r = client.post(
        "/api/v1/menus/batch", json={"ids": [child["id"], 999999], "is_visible": True}, headers=admin
    )
    assert r.status_code == 422 and "ids" in r.get_json()["errors"]
    assert client.delete(f"/api/v1/menus/{parent['id']}", headers=admin).status_code == 409
    assert client.delete(f"/api/v1/menus/{child['id']}", headers=admin).status_code == 204
    assert client.delete(f"/api/v1/menus/{parent['id']}", headers=admin).status_code == 204
    assert (
        client.post(
            "/api/v1/menus", json={"code": "x", "name": "x"}, headers=login("sbl_430102_1")
        ).status_code
        == 403
    )


def test_menu_import(client, login):
    admin = login("admin")
    cycle = "code,name,parent_code\nt.a,A,t.b\nt.b,B,t.a\nt.c,C,missing\n"
    r = upload(client, "/api/v1/menus/import", cycle, admin)
    assert r.status_code == 422
    assert {(e["row"], e["field"]) for e in r.get_json()["errors"]} == {
        (2, "parent_code"),
        (3, "parent_code"),
        (4, "parent_code"),
    }
    ok = (
        "code,name,parent_code,route,sort_order,permission_code,is_visible\n"
        "t.leaf,叶子,t.group,/app/leaf,1,org:read,是\nt.group,分组,system,,,,否\n"
    )
    r = upload(client, "/api/v1/menus/import", ok, admin)
    assert r.status_code == 200 and r.get_json() == {"created": 2, "updated": 0}
    leaf = client.get("/api/v1/menus", query_string={"q": "t.leaf"}, headers=admin).get_json()["items"][0]
    assert leaf["parent_code"] == "t.group" and leaf["permission_code"] == "org:read"
    text = client.get("/api/v1/menus/export", headers=admin).get_data(as_text=True)
    assert "t.leaf" in text
    # columns left out of the file leave those attributes alone
    r = upload(client, "/api/v1/menus/import", "code,name\nsystem.orgs,机构维护\n", admin)
    assert r.get_json() == {"created": 0, "updated": 1}
    orgs = client.get("/api/v1/menus", query_string={"q": "system.orgs"}, headers=admin).get_json()["items"][0]
    assert orgs["name"] == "机构维护" and orgs["route"] == "/app/system/orgs" and orgs["parent_code"] == "system"


# -- dictionary -----------------------------------------------------------------------------------


def test_dict_types_and_items(client, login):
    admin = login("admin")
    r = client.post(
        "/api/v1/dict/types",
        json={"code": "test_int", "name": "整数参数", "value_type": "integer"},
        headers=admin,
    )
    assert r.status_code == 201, r.get_json()
    dtype = r.get_json()
    r = client.post(
        "/api/v1/dict/items",
        json={"type_code": "test_int", "code": "a", "label": "甲", "value": "abc"},
        headers=admin,
    )
    assert r.status_code == 422 and "value" in r.get_json()["errors"]
    r = client.post(
        "/api/v1/dict/items",
        json={"type_code": "test_int", "code": "a", "label": "甲", "value": 42},
        headers=admin,
    )
    assert r.status_code == 201 and r.get_json()["value"] == "42"
    item = r.get_json()
    r = client.post(
        "/api/v1/dict/items",
        json={"type_code": "test_int", "code": "a", "label": "乙", "value": "1"},
        headers=admin,
    )
    assert r.status_code == 409 and "code" in r.get_json()["errors"]
    r = client.post(
        "/api/v1/dict/items", json={"type_code": "nope", "code": "a", "label": "乙"}, headers=admin
    )
    assert r.status_code == 422 and "type_code" in r.get_json()["errors"]
    r = client.patch(f"/api/v1/dict/items/{item['id']}", json={"value": "4.5"}, headers=admin)
    assert r.status_code == 422
    r = client.patch(f"/api/v1/dict/items/{item['id']}", json={"label": "甲甲", "value": "-7"}, headers=admin)
    assert r.status_code == 200 and r.get_json()["value"] == "-7" and r.get_json()["label"] == "甲甲"
    r = client.get("/api/v1/dict/types/test_int/items", headers=login("am_430102_1_1"))
    assert r.status_code == 200 and [i["code"] for i in r.get_json()["items"]] == ["a"]
    assert client.get("/api/v1/dict/types/nope/items", headers=admin).status_code == 404
    r = client.get(
        "/api/v1/dict/items", query_string={"type_code": "settlement_currency", "q": "美"}, headers=admin
    )
    assert r.get_json()["total"] == 1 and r.get_json()["items"][0]["value"] == "840"
    r = client.patch(f"/api/v1/dict/types/{dtype['id']}", json={"value_type": "boolean"}, headers=admin)
    assert r.status_code == 422 and "value_type" in r.get_json()["errors"]
    assert (
        client.patch(f"/api/v1/dict/types/{dtype['id']}", json={"name": "新名"}, headers=admin).status_code
        == 200
    )
    system = client.get("/api/v1/dict/types", query_string={"q": "product_status"}, headers=admin).get_json()
    r = client.delete(f"/api/v1/dict/types/{system['items'][0]['id']}", headers=admin)
    assert r.status_code == 409
    assert client.delete(f"/api/v1/dict/items/{item['id']}", headers=admin).status_code == 204
    assert client.delete(f"/api/v1/dict/types/{dtype['id']}", headers=admin).status_code == 204
    assert (
        client.post(
            "/api/v1/dict/types", json={"code": "x", "name": "x"}, headers=login("am_430102_1_1")
        ).status_code
        == 403
    )


@pytest.mark.parametrize(
    ("value_type", "bad", "good", "stored"),
    [
        ("boolean", "maybe", True, "true"),
        ("date", "2026-13-01", "2026-02-28", "2026-02-28"),
        ("decimal", "12,5", "12.50", "12.50"),
        ("string", "x" * 201, "任意文本", "任意文本"),
    ],
)
def test_dict_value_types(client, login, value_type, bad, good, stored):
    admin = login("admin")
    assert (
        client.post(
            "/api/v1/dict/types",
            json={"code": f"t_{value_type}", "name": "t", "value_type": value_type},
            headers=admin,
        ).status_code
        == 201
    )
    item = {"type_code": f"t_{value_type}", "code": "v", "label": "值"}
    r = client.post("/api/v1/dict/items", json={**item, "value": bad}, headers=admin)
    assert r.status_code == 422 and "value" in r.get_json()["errors"]
    r = client.post("/api/v1/dict/items", json={**item, "value": good}, headers=admin)
    assert r.status_code == 201 and r.get_json()["value"] == stored


def test_dict_item_import_all_or_nothing(client, login):
    admin = login("admin")
    bad = (
        "type_code,code,label,value,sort_order,is_active\n"
        "large_change_threshold,vip,贵宾,1000000.50,20,是\n"
        "large_change_threshold,small,小额,abc,30,是\n"
        "no_such_type,x,X,,,\n"
        "channel,atm,自助设备,,x,\n"
    )
    r = upload(client, "/api/v1/dict/items/import", bad, admin)
    assert r.status_code == 422
    assert {(e["row"], e["field"]) for e in r.get_json()["errors"]} == {
        (3, "value"),
        (4, "type_code"),
        (5, "sort_order"),
    }
    r = client.get("/api/v1/dict/items", query_string={"type_code": "large_change_threshold"}, headers=admin)
    assert [i["code"] for i in r.get_json()["items"]] == ["default"]
    good = (
        "type_code,code,label,value,sort_order,is_active\n"
        "large_change_threshold,vip,贵宾,1000000.50,20,是\nchannel,atm,自助终端,,,否\n"
    )
    r = upload(client, "/api/v1/dict/items/import", good, admin)
    assert r.status_code == 200 and r.get_json() == {"created": 1, "updated": 1}
    atm = client.get("/api/v1/dict/items", query_string={"type_code": "channel", "q": "atm"}, headers=admin)
    assert (
        atm.get_json()["items"][0]["label"] == "自助终端" and atm.get_json()["items"][0]["is_active"] is False
    )
    export = client.get(
        "/api/v1/dict/items/export", query_string={"type_code": "large_change_threshold"}, headers=admin
    )
    assert "1000000.50" in export.get_data(as_text=True)
    assert upload(client, "/api/v1/dict/items/import", export.get_data(), admin).status_code == 200


# -- devices --------------------------------------------------------------------------------------


def test_device_flow_in_scope(client, login):
    sbl = login("sbl_430102_1")
    am_id = user_id(client, login, "am_430102_1_1")
    r = client.post(
        "/api/v1/devices",
        json={"device_id": "IMEI-0001", "user_id": am_id, "model": "Mate 60", "platform": "android"},
        headers=sbl,
    )
    assert r.status_code == 201, r.get_json()
    device = r.get_json()
    assert device["status"] == "active" and device["username"] == "am_430102_1_1" and device["approved_by"]
    r = client.post("/api/v1/devices", json={"device_id": "IMEI-0001", "user_id": am_id}, headers=sbl)
    assert r.status_code == 409 and "device_id" in r.get_json()["errors"]
    r = client.post(f"/api/v1/devices/{device['id']}/disable", json={}, headers=sbl)
    assert r.status_code == 422 and "reason" in r.get_json()["errors"]
    r = client.post(f"/api/v1/devices/{device['id']}/disable", json={"reason": "丢失"}, headers=sbl)
    assert (
        r.status_code == 200
        and r.get_json()["status"] == "disabled"
        and r.get_json()["disabled_reason"] == "丢失"
    )
    assert (
        client.post(f"/api/v1/devices/{device['id']}/disable", json={"reason": "x"}, headers=sbl).status_code
        == 409
    )
    r = client.post(
        "/api/v1/auth/login",
        json={
            "username": "am_430102_1_1",
            "password": "Gm@2026demo",
            "client": "mobile",
            "device_id": "IMEI-0001",
        },
    )
    assert r.status_code == 403 and r.get_json()["code"] == "DEVICE_DISABLED"
    r = client.post(f"/api/v1/devices/{device['id']}/enable", headers=sbl)
    assert (
        r.status_code == 200
        and r.get_json()["status"] == "active"
        and r.get_json()["disabled_reason"] is None
    )
    r = client.get("/api/v1/devices", query_string={"q": "mate"}, headers=sbl)
    assert r.get_json()["total"] == 1
    assert client.delete(f"/api/v1/devices/{device['id']}", headers=sbl).status_code == 204
    assert client.get(f"/api/v1/devices/{device['id']}", headers=sbl).status_code == 404


def test_device_approval_of_mobile_request(client, login):
    creds = {
        "username": "am_430102_1_1",
        "password": "Gm@2026demo",
        "client": "mobile",
        "device_id": "NEW-PHONE-1",
    }
    r = client.post("/api/v1/auth/login", json=creds)
    assert r.status_code == 403 and r.get_json()["code"] == "DEVICE_NOT_REGISTERED"
    sbl = login("sbl_430102_1")
    pending = client.get("/api/v1/devices", query_string={"status": "pending"}, headers=sbl).get_json()[
        "items"
    ]
    device = next(d for d in pending if d["device_id"] == "NEW-PHONE-1")
    r = client.post(f"/api/v1/devices/{device['id']}/approve", headers=sbl)
    assert r.status_code == 200 and r.get_json()["status"] == "active" and r.get_json()["approved_at"]
    assert client.post(f"/api/v1/devices/{device['id']}/approve", headers=sbl).status_code == 409
    assert client.post("/api/v1/auth/login", json=creds).status_code == 200


def test_device_out_of_scope(client, login):
    other_id = user_id(client, login, "am_430104_1_1")
    r = client.post(
        "/api/v1/devices", json={"device_id": "OTHER-BRANCH-1", "user_id": other_id}, headers=login("admin")
    )
    assert r.status_code == 201
    device = r.get_json()
    sbl = login("sbl_430102_1")
    assert client.get(f"/api/v1/devices/{device['id']}", headers=sbl).status_code == 404
    assert (
        client.post(f"/api/v1/devices/{device['id']}/disable", json={"reason": "x"}, headers=sbl).status_code
        == 404
    )
    assert client.post(f"/api/v1/devices/{device['id']}/approve", headers=sbl).status_code == 404
    assert client.delete(f"/api/v1/devices/{device['id']}", headers=sbl).status_code == 404
    ids = [d["id"] for d in client.get("/api/v1/devices", headers=sbl).get_json()["items"]]
    assert device["id"] not in ids
    r = client.post("/api/v1/devices", json={"device_id": "MINE-1", "user_id": other_id}, headers=sbl)
    assert r.status_code == 422 and "user_id" in r.get_json()["errors"]
    r = client.post(
        "/api/v1/devices",
        json={"device_id": "OTHER-BRANCH-1", "user_id": user_id(client, login, "am_430102_1_1")},
        headers=sbl,
    )
    assert r.status_code == 409
    assert client.get("/api/v1/devices", headers=login("am_430102_1_1")).status_code == 403


def test_device_import_export(client, login):
    sbl = login("sbl_430102_1")
    bad = (
        "device_id,username,model,platform,os_version,status\n"
        "IMP-1,am_430102_1_1,P1,android,14,\nIMP-2,am_430104_1_1,P2,ios,17,\nIMP-3,am_430102_1_1,,,,lost\n"
    )
    r = upload(client, "/api/v1/devices/import", bad, sbl)
    assert r.status_code == 422
    assert {(e["row"], e["field"]) for e in r.get_json()["errors"]} == {(3, "username"), (4, "status")}
    good = "设备号,用户名,设备型号,状态\nIMP-1,am_430102_1_1,P1,\nIMP-2,am_430102_1_1,P2,待审批\n"
    r = upload(client, "/api/v1/devices/import", good, sbl)
    assert r.status_code == 200 and r.get_json() == {"created": 2, "updated": 0}
    statuses = {
        d["device_id"]: d["status"]
        for d in client.get("/api/v1/devices", query_string={"q": "IMP-"}, headers=sbl).get_json()["items"]
    }
    assert statuses == {"IMP-1": "active", "IMP-2": "pending"}
    text = client.get("/api/v1/devices/export", query_string={"q": "IMP-"}, headers=sbl).get_data(
        as_text=True
    )
    assert "IMP-1" in text and "am_430102_1_1" in text


# -- audit ----------------------------------------------------------------------------------------


def test_audit_shows_my_writes(client, login):
    admin = {**login("admin"), "X-Request-ID": "test-audit-role-1"}
    role = client.post("/api/v1/roles", json=ROLE, headers=admin).get_json()
    r = client.get(
        "/api/v1/audit", query_string={"entity": "roles", "entity_id": str(role["id"])}, headers=admin
    )
    assert r.status_code == 200
    rows = r.get_json()["items"]
    assert [e["action"] for e in rows] == ["insert"]
    assert rows[0]["after"]["code"] == "test_viewer" and rows[0]["actor_username"] == "admin"
    r = client.get("/api/v1/audit", query_string={"request_id": "test-audit-role-1"}, headers=admin)
    entities = {(e["entity"], e["action"]) for e in r.get_json()["items"]}
    assert {("roles", "insert"), ("role_permissions", "insert")} <= entities
    client.patch(f"/api/v1/roles/{role['id']}", json={"name": "改"}, headers=admin)
    r = client.get(
        "/api/v1/audit", query_string={"entity": "roles", "entity_id": str(role["id"])}, headers=admin
    )
    items = r.get_json()["items"]
    assert [e["action"] for e in items] == ["update", "insert"]  # newest first
    assert items[0]["before"]["name"] == "测试查看员" and items[0]["after"]["name"] == "改"
    one = client.get(f"/api/v1/audit/{items[0]['id']}", headers=admin)
    assert one.status_code == 200 and one.get_json()["entity"] == "roles"
    assert client.get("/api/v1/audit/999999999999", headers=admin).status_code == 404
    r = client.get(
        "/api/v1/audit", query_string={"entity": "roles", "since": "2999-01-01T00:00:00"}, headers=admin
    )
    assert r.get_json()["total"] == 0
    r = client.get("/api/v1/audit", query_string={"since": "yesterday"}, headers=admin)
    assert r.status_code == 422 and "since" in r.get_json()["errors"]
    export = client.get(
        "/api/v1/audit/export", query_string={"request_id": "test-audit-role-1"}, headers=admin
    )
    assert export.status_code == 200 and "role_permissions" in export.get_data(as_text=True)


def test_audit_scope_and_permission(client, login):
    admin = {**login("admin"), "X-Request-ID": "test-audit-scope-1"}
    client.post("/api/v1/roles", json=ROLE, headers=admin)
    r = client.get(
        "/api/v1/audit", query_string={"request_id": "test-audit-scope-1"}, headers=login("bl_430102")
    )
    assert (
        r.status_code == 200 and r.get_json()["total"] == 0
    )  # the head office's actors are outside his scope
    assert client.get("/api/v1/audit", headers=login("sbl_430102_1")).status_code == 403
