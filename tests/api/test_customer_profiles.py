"""Profiles (建档): versioned templates, validation against them, completeness, sealed phones, revisions,
collection tasks, statistics, and the data scope from the attacker's side; numbers checked against SQL."""

from __future__ import annotations

import random

from sqlalchemy import text

from geo_core import crypto
from geo_core.db import SYSTEM, set_context
from geo_core.seed.profiles import _sample

T = "/api/v1/profile-templates"
TASKS = "/api/v1/profile-tasks"


def sql(db_session, query: str, **params):
    set_context(db_session, SYSTEM)
    return db_session.execute(text(query), params)


def user_id(db_session, username: str) -> int:
    return sql(db_session, "SELECT id FROM users WHERE username = :u", u=username).scalar_one()


def scope_of(db_session, username: str) -> str:
    """SQL predicate over customers c: the rows a branch/sub-branch leader may see."""
    uid, path = sql(db_session, "SELECT u.id, o.path::text FROM users u JOIN orgs o ON o.id = u.org_id "
                                "WHERE u.username = :u", u=username).one()
    return f"(c.org_id IN (SELECT id FROM orgs WHERE path <@ '{path}') OR c.owner_user_id = {uid})"


def a_customer(db_session, profile_type: str, branch: str = "430102", profiled: bool = False) -> dict:
    row = sql(db_session, f"""
        SELECT c.id, c.owner_user_id, c.grid_id FROM customers c JOIN orgs o ON o.id = c.org_id
        WHERE c.profile_type = CAST(:p AS profile_type) AND o.path <@ (SELECT path FROM orgs WHERE code = :b)
          AND {'' if profiled else 'NOT'} EXISTS (SELECT 1 FROM customer_profiles p WHERE p.customer_id = c.id)
        ORDER BY c.id LIMIT 1""", p=profile_type, b=f"BR{branch}").one()
    return {"id": row[0], "owner": row[1], "grid_id": row[2]}


FARMER_OK = {"household_head": "王建国", "household_size": 4, "land_area_mu": 12.5, "crops": ["rice", "tea"],
             "main_income_source": "planting", "annual_income": "86000.50", "loan_need": True,
             "contact_phone": "13812345678"}


def test_builtin_templates_and_permissions(client, login):
    r = client.get(T, headers=login("am_430102_1_1"))
    assert r.status_code == 200
    by_type = {t["profile_type"]: t for t in r.get_json()}
    assert set(by_type) == {"farmer", "merchant", "micro_enterprise"}
    assert all(t["is_active"] and t["version"] == 1 and t["is_builtin"] for t in by_type.values())
    farmer_keys = {f["key"] for f in by_type["farmer"]["fields"]}
    assert {"household_size", "land_area_mu", "crops", "livestock", "annual_income", "housing",
            "loan_need"} <= farmer_keys
    merchant_keys = {f["key"] for f in by_type["merchant"]["fields"]}
    assert {"shop_area_m2", "business_hours", "monthly_turnover", "payment_methods", "restock_day"} <= merchant_keys
    body = {"code": "farmer_x", "profile_type": "farmer", "name": "x", "fields": by_type["farmer"]["fields"]}
    assert client.post(T, json=body, headers=login("bl_430102")).status_code == 403
    assert client.put(f"{T}/{by_type['farmer']['id']}", json={"name": "y"},
                      headers=login("am_430102_1_1")).status_code == 403
    assert client.get(T).status_code == 401


def test_template_field_definitions_are_validated(client, login):
    h = login("admin")
    bad = [{"key": "Bad Key", "label": "", "type": "colour"},
           {"key": "a", "label": "选项", "type": "enum"},
           {"key": "b", "label": "正则", "type": "string", "regex": "([unclosed"},
           {"key": "c", "label": "数值", "type": "integer", "min": 5, "max": 1},
           {"key": "c", "label": "重复", "type": "boolean", "colour": "red"}]
    r = client.post(T, json={"code": "bad_one", "profile_type": "farmer", "name": "坏模板", "fields": bad}, headers=h)
    assert r.status_code == 422, r.get_json()
    errors = r.get_json()["errors"]["fields"]
    assert set(errors) == {"0", "1", "2", "3", "4"}
    assert any("type" in m for m in errors["0"]) and any("选项" in m for m in errors["1"])
    assert any("正则" in m for m in errors["2"]) and any("min" in m for m in errors["3"])
    assert any("重复" in m for m in errors["4"]) and any("未知属性" in m for m in errors["4"])
    assert client.post(T, json={"code": "x1", "profile_type": "farmer", "name": "n", "fields": []},
                       headers=h).status_code == 422
    assert client.post(T, json={"code": "farmer_standard", "profile_type": "farmer", "name": "n",
                                "fields": [{"key": "a", "label": "A", "type": "string"}]}, headers=h).status_code == 409


def test_edit_makes_a_new_version_and_old_profiles_keep_theirs(client, login, db_session):
    admin, h = login("admin"), login("bl_430102")
    customer = a_customer(db_session, "farmer")
    first = client.put(f"/api/v1/customers/{customer['id']}/profile", json={"data": FARMER_OK}, headers=h)
    assert first.status_code == 200, first.get_json()
    assert first.get_json()["template_version"] == 1
    farmer = next(t for t in client.get(T, headers=admin).get_json() if t["profile_type"] == "farmer")
    fields = farmer["fields"] + [{"key": "solar_panels", "label": "光伏", "type": "boolean", "required": True}]
    r = client.put(f"{T}/{farmer['id']}", json={"fields": fields}, headers=admin)
    assert r.status_code == 201, r.get_json()
    v2 = r.get_json()
    assert (v2["version"], v2["code"], v2["is_active"], v2["is_current"]) == (2, "farmer_standard", True, True)
    old = client.get(f"{T}/{farmer['id']}", headers=admin).get_json()
    assert (old["is_current"], old["is_active"]) == (False, False)
    assert client.put(f"{T}/{farmer['id']}", json={"name": "again"}, headers=admin).status_code == 409
    versions = client.get(f"{T}?code=farmer_standard&all_versions=true", headers=admin).get_json()
    assert [t["version"] for t in versions] == [2, 1]
    audited = sql(db_session, "SELECT action, actor_user_id FROM audit_log WHERE entity = 'profile_templates' "
                              "AND entity_id = :i", i=str(v2["id"])).all()
    assert audited == [("insert", user_id(db_session, "admin"))]
    # the saved profile still names version 1; saving again fills it against version 2
    prof = client.get(f"/api/v1/customers/{customer['id']}/profile", headers=h).get_json()
    assert prof["template_version"] == 1 and prof["template_is_active"] is False
    again = client.put(f"/api/v1/customers/{customer['id']}/profile", json={"data": FARMER_OK}, headers=h).get_json()
    assert again["template_version"] == 2 and "solar_panels" in again["missing_required"]
    assert again["is_complete"] is False and again["revision"] == 2
    # deactivated: profiles of the type cannot be saved
    assert client.post(f"{T}/{v2['id']}/deactivate", headers=admin).status_code == 200
    r = client.put(f"/api/v1/customers/{customer['id']}/profile", json={"data": FARMER_OK}, headers=h)
    assert r.status_code == 422 and r.get_json()["code"] == "NO_ACTIVE_TEMPLATE"
    assert client.post(f"{T}/{v2['id']}/activate", headers=admin).get_json()["is_active"] is True


def test_profile_is_validated_field_by_field(client, login, db_session):
    h = login("bl_430102")
    customer = a_customer(db_session, "merchant")
    url = f"/api/v1/customers/{customer['id']}/profile"
    bad = {"shop_name": "张记副食", "business_hours": "8点到晚上", "business_type": "casino", "employees": 2.5,
           "shop_area_m2": -3, "payment_methods": ["cash", "bitcoin"], "loan_need": "yes", "colour": "red",
           "contact_phone": "12345", "years_in_business": True}
    r = client.put(url, json={"data": bad}, headers=h)
    assert r.status_code == 422
    errors = r.get_json()["errors"]["data"]
    assert set(errors) == {"business_hours", "business_type", "employees", "shop_area_m2", "payment_methods",
                           "loan_need", "colour", "contact_phone", "years_in_business"}
    assert "格式不正确" in errors["business_hours"][0] and "模板中没有该字段" in errors["colour"][0]
    assert client.put(url, json={"data": "x"}, headers=h).status_code == 422
    for value in ("NaN", "1e999999", 10**30, {"a": 1}, "1.00001"):
        r = client.put(url, json={"data": {"monthly_turnover": value}}, headers=h)
        assert r.status_code == 422 and "monthly_turnover" in r.get_json()["errors"]["data"], value
    assert client.put(url, json={"data": {}, "source": "fax"}, headers=h).status_code == 422
    assert client.get(url, headers=h).status_code == 404  # nothing saved
    blank = client.get(f"{url}?or_blank=true", headers=h).get_json()
    assert blank["revision"] == 0 and blank["completeness"] == 0 and len(blank["missing"]) == len(blank["fields"])


def test_completeness_missing_fields_sealed_phone_and_revisions(client, login, db_session, settings):
    h = login("bl_430102")
    customer = a_customer(db_session, "farmer")
    url = f"/api/v1/customers/{customer['id']}/profile"
    r = client.put(url, json={"data": FARMER_OK, "source": "mobile"}, headers=h)
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    fields = body["fields"]
    weights = {f["key"]: (2.0 if f["required"] else 1.0) for f in fields}
    expected = round(sum(weights[k] for k in FARMER_OK) / sum(weights.values()), 4)
    assert body["completeness"] == expected and body["is_complete"] is True
    assert body["missing"] == [f["key"] for f in fields if f["key"] not in FARMER_OK]
    assert body["missing_required"] == []
    assert body["data"]["annual_income"] == 86000.5 and body["data"]["crops"] == ["rice", "tea"]
    assert body["data"]["contact_phone"] == "138****5678" and body["source"] == "mobile"
    # the number is sealed (SM4), never in clear in the table or the audit log
    sealed, row = sql(db_session, "SELECT sealed, to_jsonb(p)::text FROM customer_profiles p WHERE customer_id = :c",
                      c=customer["id"]).one()
    assert "13812345678" not in row
    clear = crypto.sm4_decrypt(bytes(sealed), settings.sm4_key, aad=b"customer_profile")
    assert clear == '{"contact_phone": "13812345678"}'
    audit = sql(db_session, "SELECT string_agg(coalesce(after::text, '') || coalesce(before::text, ''), '') "
                            "FROM audit_log WHERE entity = 'customer_profiles' AND entity_id = :c",
                c=str(customer["id"])).scalar()
    assert audit and "13812345678" not in audit and "household_head" in audit
    # sending the mask back keeps the number; a required field removed makes it incomplete
    data = {**body["data"]}
    data.pop("loan_need")
    second = client.put(url, json={"data": data}, headers=h).get_json()
    assert second["is_complete"] is False and second["missing_required"] == ["loan_need"]
    sealed = sql(db_session, "SELECT sealed FROM customer_profiles WHERE customer_id = :c", c=customer["id"]).scalar()
    assert "13812345678" in crypto.sm4_decrypt(bytes(sealed), settings.sm4_key, aad=b"customer_profile")
    # reveal: customer:reveal only, audited with the reason
    r = client.post(f"{url}/reveal", json={"fields": ["contact_phone"], "reason": "核实联系方式"}, headers=h)
    assert r.status_code == 200 and r.get_json() == {"contact_phone": "13812345678"}
    assert client.post(f"{url}/reveal", json={"fields": ["household_head"], "reason": "看看"},
                       headers=h).status_code == 422
    assert client.post(f"{url}/reveal", json={"fields": ["contact_phone"], "reason": "看看"},
                       headers=login("sbl_430102_1")).status_code == 403
    assert client.post(f"{url}/reveal", json={"fields": ["contact_phone"], "reason": "看看"},
                       headers=login("bl_430104")).status_code == 404
    event = sql(db_session, "SELECT detail FROM audit_log WHERE action = 'reveal' AND entity = 'customer_profiles' "
                            "AND entity_id = :c", c=str(customer["id"])).scalar_one()
    assert event == {"fields": ["contact_phone"], "reason": "核实联系方式"}
    revisions = client.get(f"{url}/revisions", headers=h).get_json()
    assert [x["revision"] for x in revisions["items"]] == [2, 1] and revisions["items"][1]["source"] == "mobile"
    assert "loan_need" in revisions["items"][1]["data"] and "loan_need" not in revisions["items"][0]["data"]


def test_profile_type_is_set_when_missing(client, login, db_session):
    h = login("bl_430102")
    cid = sql(db_session, "SELECT c.id FROM customers c JOIN orgs o ON o.id = c.org_id WHERE c.profile_type IS NULL "
                          "AND o.path <@ (SELECT path FROM orgs WHERE code = 'BR430102') "
                          "ORDER BY c.id LIMIT 1").scalar()
    url = f"/api/v1/customers/{cid}/profile"
    r = client.put(url, json={"data": FARMER_OK}, headers=h)
    assert r.status_code == 422 and "profile_type" in r.get_json()["errors"]
    r = client.put(url, json={"data": FARMER_OK, "profile_type": "farmer"}, headers=h)
    assert r.status_code == 200
    assert client.get(f"/api/v1/customers/{cid}", headers=h).get_json()["profile_type"] == "farmer"


def test_scope_from_the_attackers_side(client, login, db_session):
    furong = a_customer(db_session, "farmer", profiled=True)
    for attacker in ("bl_430104", "sbl_430104_1"):
        h = login(attacker)
        url = f"/api/v1/customers/{furong['id']}/profile"
        assert client.get(url, headers=h).status_code == 404
        assert client.put(url, json={"data": FARMER_OK}, headers=h).status_code == 404
        assert client.get(f"{url}/revisions", headers=h).status_code == 404
    # an account manager sees his own customers' profiles only
    owner = sql(db_session, "SELECT username FROM users WHERE id = :u", u=furong["owner"]).scalar()
    assert client.get(f"/api/v1/customers/{furong['id']}/profile", headers=login(owner)).status_code == 200
    other = sql(db_session, "SELECT username FROM users WHERE username LIKE 'am_430102_%' AND id <> :u "
                            "ORDER BY id LIMIT 1", u=furong["owner"]).scalar()
    assert client.get(f"/api/v1/customers/{furong['id']}/profile", headers=login(other)).status_code == 404
    stored = sql(db_session, "SELECT data FROM customer_profiles WHERE customer_id = :c", c=furong["id"]).scalar()
    assert stored  # untouched


def test_collection_tasks_idempotent_scoped_and_closed_by_profiling(client, login, db_session):
    h = login("bl_430102")
    grid = sql(db_session, """
        SELECT g.id FROM grids g JOIN orgs o ON o.id = g.org_id
        WHERE o.path <@ (SELECT path FROM orgs WHERE code = 'BR430102') AND g.level = 'community'
          AND EXISTS (SELECT 1 FROM customers c WHERE c.grid_id = g.id AND c.profile_type IS NOT NULL)
        ORDER BY g.id LIMIT 1""").scalar()
    expected = sql(db_session, f"""
        SELECT count(*) FROM customers c LEFT JOIN customer_profiles p ON p.customer_id = c.id
        WHERE c.grid_id IN (SELECT id FROM grids WHERE path <@ (SELECT path FROM grids WHERE id = :g))
          AND c.profile_type IS NOT NULL AND c.status = 'active' AND coalesce(p.completeness, 0) < 0.9
          AND (p.customer_id IS NULL OR cardinality(p.missing) > 0) AND {scope_of(db_session, 'bl_430102')}""",
                   g=grid).scalar()
    assert expected > 0
    r = client.post(TASKS, json={"grid_id": grid, "completeness_below": 0.9, "note": "补录"}, headers=h)
    assert r.status_code == 201, r.get_json()
    batch = r.get_json()
    assert (batch["selected"], batch["created"], batch["already_open"]) == (expected, expected, 0)
    again = client.post(TASKS, json={"grid_id": grid, "completeness_below": 0.9}, headers=h).get_json()
    assert (again["created"], again["already_open"]) == (0, expected)
    listed = client.get(f"{TASKS}?batch_key={batch['batch_key']}&page_size=500", headers=h).get_json()
    assert listed["total"] == expected
    task = listed["items"][0]
    owner = sql(db_session, "SELECT owner_user_id, profile_type::text FROM customers WHERE id = :c",
                c=task["customer_id"]).one()
    assert task["assignee_user_id"] == owner[0] and task["status"] == "open" and task["missing_fields"]
    # the assignee sees it among his tasks; another branch sees none of them
    am = sql(db_session, "SELECT username FROM users WHERE id = :u", u=owner[0]).scalar()
    mine = client.get(f"{TASKS}?mine=true&status=open&page_size=500", headers=login(am)).get_json()
    assert task["id"] in [t["id"] for t in mine["items"]]
    assert client.get(f"{TASKS}?batch_key={batch['batch_key']}", headers=login("bl_430104")).get_json()["total"] == 0
    assert client.post(f"{TASKS}/{task['id']}/cancel", headers=login("bl_430104")).status_code == 404
    # filling every field the task asked for closes it in the same transaction
    template = next(t for t in client.get(T, headers=h).get_json() if t["profile_type"] == owner[1])
    url = f"/api/v1/customers/{task['customer_id']}/profile"
    current = client.get(f"{url}?or_blank=true", headers=h).get_json()["data"]
    rng = random.Random(1)
    data = {**current, **{f["key"]: _sample(rng, f, "张三") for f in template["fields"]
                          if f["key"] in task["missing_fields"]}}
    assert client.put(url, json={"data": data}, headers=h).status_code == 200
    closed = client.get(f"{TASKS}?customer_id={task['customer_id']}", headers=h).get_json()["items"][0]
    assert closed["status"] == "done" and closed["closed_by"] == user_id(db_session, "bl_430102")
    # cancel; ids out of scope are refused as a whole
    other = listed["items"][1]
    assert client.post(f"{TASKS}/{other['id']}/cancel", headers=h).get_json()["status"] == "cancelled"
    assert client.post(f"{TASKS}/{other['id']}/cancel", headers=h).status_code == 409
    yuelu = a_customer(db_session, "farmer", branch="430104")
    r = client.post(TASKS, json={"customer_ids": [yuelu["id"]]}, headers=h)
    assert r.status_code == 422 and "customer_ids" in r.get_json()["errors"]
    assert client.post(TASKS, json={}, headers=h).status_code == 422
    assert client.post(TASKS, json={"grid_id": grid}, headers=login("am_430102_1_1")).status_code == 403


STATS_SQL = """
SELECT {key} AS key, count(*), count(p.customer_id), count(*) FILTER (WHERE p.is_complete),
       round(avg(p.completeness), 4)
FROM customers c LEFT JOIN customer_profiles p ON p.customer_id = c.id
WHERE c.status = 'active' AND c.profile_type IS NOT NULL AND {scope}
GROUP BY 1"""


def test_stats_match_sql_inside_the_scope(client, login, db_session):
    for username in ("bl_430102", "bl_430104", "sbl_430102_1"):
        h = login(username)
        scope = scope_of(db_session, username)
        for group_by, key in (("type", "c.profile_type::text"), ("org", "c.org_id"), ("manager", "c.owner_user_id"),
                              ("grid", "c.grid_id")):
            r = client.get(f"/api/v1/profiles/stats?group_by={group_by}", headers=h)
            assert r.status_code == 200, r.get_json()
            items = r.get_json()["items"]
            got = {i["key"]: (i["customers"], i["profiled"], i["complete"]) for i in items}
            rows = sql(db_session, STATS_SQL.format(key=key, scope=scope)).all()
            assert got == {k: (n, p, c) for k, n, p, c, _ in rows}, (username, group_by)
            avg = {k: a for k, _, _, _, a in rows}
            for i in items:
                assert (i["avg_completeness"] is None) == (avg[i["key"]] is None)
                assert i["avg_completeness"] is None or abs(i["avg_completeness"] - float(avg[i["key"]])) < 1e-9
        totals = client.get("/api/v1/profiles/stats", headers=h).get_json()["totals"]
        n, p = sql(db_session, STATS_SQL.format(key="0", scope=scope)).one()[1:3]
        assert (totals["customers"], totals["profiled"]) == (n, p)
    # the attacker's org keys are all his own branch's
    furong_orgs = set(sql(db_session, "SELECT id FROM orgs WHERE path <@ (SELECT path FROM orgs "
                                      "WHERE code = 'BR430102')").scalars())
    keys = {i["key"] for i in client.get("/api/v1/profiles/stats?group_by=org",
                                         headers=login("bl_430104")).get_json()["items"]}
    assert keys and not keys & furong_orgs
    furong = sql(db_session, "SELECT id FROM orgs WHERE code = 'BR430102'").scalar()
    assert client.get(f"/api/v1/profiles/stats?org_id={furong}", headers=login("bl_430104")).status_code == 404
    assert client.get("/api/v1/profiles/stats?group_by=nope", headers=login("admin")).status_code == 422


def test_demo_seed_profiles_about_half_with_varied_completeness(db_session):
    n, profiled, complete, low, distinct = sql(db_session, """
        SELECT count(*), count(p.customer_id), count(*) FILTER (WHERE p.completeness = 1),
               count(*) FILTER (WHERE p.completeness < 0.6), count(DISTINCT p.completeness)
        FROM customers c LEFT JOIN customer_profiles p ON p.customer_id = c.id
        WHERE c.profile_type IS NOT NULL""").one()
    assert 0.4 <= profiled / n <= 0.6
    assert complete > 0 and low > 0 and distinct > 20
    revisions = sql(db_session, "SELECT count(*) FROM customer_profile_revisions").scalar()
    assert revisions >= profiled
