"""Tags: rule language (validation paths, parameterised SQL, counts equal to direct SQL), seeded rule tags,
manual tagging single / batch / from an imported list (all or nothing), and the attacker's side."""

from __future__ import annotations

from sqlalchemy import text

from geo_core.db import SYSTEM, set_context

T = "/api/v1/tags"
FURONG = "(SELECT id FROM orgs WHERE path <@ (SELECT path FROM orgs WHERE code = 'BR430102'))"


def sql_count(db_session, where: str, **params) -> int:
    set_context(db_session, SYSTEM)
    return db_session.scalar(text(f"SELECT count(*) FROM customers c WHERE c.status = 'active' AND ({where})"),
                             params)


def tag_by_code(client, h, code: str) -> dict:
    items = client.get(f"{T}?q={code}&page_size=50", headers=h).get_json()["items"]
    return next(t for t in items if t["code"] == code)


def furong_customers(db_session, n: int, **filters) -> list[int]:
    set_context(db_session, SYSTEM)
    where = " ".join(f"AND {k} = :{k}" for k in filters)
    return list(db_session.scalars(text(f"SELECT id FROM customers WHERE org_id IN {FURONG} {where} "
                                        f"ORDER BY id LIMIT {n}"), filters))


def test_rule_validation_reports_the_path_of_each_bad_node(client, login):
    h = login("bl_430102")
    rule = {"all": [{"field": "salary", "op": ">", "value": 1},
                    {"field": "deposit_balance", "op": ">=", "value": "500000"},
                    {"any": []},
                    {"not": {"field": "age", "op": "between", "value": [40, 30]}},
                    {"field": "kind", "op": "like", "value": "person"},
                    {"field": "products", "op": "contains", "value": "WEALTH", "extra": 1},
                    {"field": "outlet_distance", "op": "<=", "value": 99999}]}
    r = client.post(T, json={"code": "bad_rule", "name": "坏规则", "kind": "rule", "rule": rule}, headers=h)
    assert r.status_code == 422, r.get_json()
    errors = r.get_json()["errors"]
    assert set(errors) == {"rule.all.0.field", "rule.all.1.value", "rule.all.2.any", "rule.all.3.not.value",
                           "rule.all.4.op", "rule.all.5", "rule.all.6.value"}
    deep = {"not": {"not": {"not": {"not": {"not": {"not": {"field": "age", "op": ">", "value": 1}}}}}}}
    r = client.post(f"{T}/rule-preview", json={"rule": deep}, headers=h)
    assert r.status_code == 422 and "嵌套" in str(r.get_json()["errors"])
    r = client.post(T, json={"code": "m1", "name": "手工", "kind": "manual", "rule": {"field": "age"}}, headers=h)
    assert r.status_code == 422 and "rule" in r.get_json()["errors"]
    r = client.post(T, json={"code": "Bad Code", "name": "x", "kind": "manual"}, headers=h)
    assert r.status_code == 422 and "code" in r.get_json()["errors"]
    fields = client.get(f"{T}/fields", headers=h).get_json()
    assert {"deposit_balance", "age", "outlet_distance", "tag", "grid"} <= {f["field"] for f in fields}


def test_values_are_bound_parameters_never_sql(client, login, db_session):
    h = login("admin")
    hostile = "餐饮' OR 1=1; DROP TABLE customers; --"
    r = client.post(f"{T}/rule-preview", json={"rule": {"field": "industry", "op": "=", "value": hostile}},
                    headers=h)
    assert r.status_code == 200 and r.get_json() == {"count": 0}
    r = client.post(f"{T}/rule-preview", json={"rule": {"field": "industry", "op": "contains", "value": "%"}},
                    headers=h)
    assert r.get_json() == {"count": 0}  # wildcards are escaped: a literal %
    assert sql_count(db_session, "true") > 3000


def test_rule_preview_equals_direct_sql_inside_my_scope(client, login, db_session):
    rule = {"all": [{"field": "deposit_balance", "op": ">=", "value": 100000},
                    {"field": "age", "op": "between", "value": [30, 60]},
                    {"field": "products", "op": "contains_any", "value": ["WEALTH", "LOAN_CONSUMER"]},
                    {"not": {"field": "last_visit_days", "op": "<=", "value": 30}}]}
    where = ("c.deposit_balance >= 100000 AND date_part('year', age(current_date, c.birth_date)) BETWEEN 30 AND 60 "
             "AND c.products && ARRAY['WEALTH', 'LOAN_CONSUMER']::varchar[] "
             "AND (c.last_visit_at >= now() - interval '30 days') IS NOT TRUE")
    everyone = sql_count(db_session, where)
    furong = sql_count(db_session, f"{where} AND c.org_id IN {FURONG}")
    assert 0 < furong < everyone
    for user, expected in (("admin", everyone), ("bl_430102", furong)):
        r = client.post(f"{T}/rule-preview", json={"rule": rule}, headers=login(user))
        assert r.status_code == 200 and r.get_json()["count"] == expected, user
    owner = login("am_430102_1_1")
    mine = client.get("/api/v1/customers?page_size=1", headers=owner).get_json()["total"]
    r = client.post(f"{T}/rule-preview", json={"rule": {"field": "kind", "op": "in", "value": ["person", "company"]}},
                    headers=owner)
    assert r.get_json()["count"] == mine


def test_seeded_rule_tags_match_their_rules(client, login, db_session):
    h = login("admin")
    checks = {
        "high_net_worth": "c.deposit_balance >= 500000",
        "young_adult": "c.kind = 'person' AND date_part('year', age(current_date, c.birth_date)) BETWEEN 22 AND 35",
        "catering_merchant": "c.kind = 'company' AND c.industry = '餐饮'",
        "near_outlet_500m": "EXISTS (SELECT 1 FROM orgs o WHERE o.location IS NOT NULL "
                            "AND ST_DWithin(o.location::geography, c.geom::geography, 500))",
    }
    for code, where in checks.items():
        tag = tag_by_code(client, h, code)
        assert tag["kind"] == "rule" and tag["computed_at"] is not None
        expected = sql_count(db_session, where)
        assert expected > 0, code
        assert tag["customer_count"] == expected, code
        carriers = db_session.scalar(text(
            "SELECT count(*) FROM customer_tags ct JOIN customers c ON c.id = ct.customer_id "
            f"WHERE ct.tag_id = :t AND ct.source = 'rule' AND NOT ({where})"), {"t": tag["id"]})
        assert carriers == 0, code


def test_manual_tagging_single_batch_and_atomic(client, login, db_session):
    h = login("am_430102_1_1")
    key = tag_by_code(client, h, "key_account")
    me = client.get("/api/v1/me", headers=h).get_json()["id"]
    set_context(db_session, SYSTEM)
    mine = list(db_session.scalars(text(
        "SELECT id FROM customers c WHERE owner_user_id = :u AND NOT EXISTS (SELECT 1 FROM customer_tags t "
        "WHERE t.customer_id = c.id AND t.tag_id = :t) ORDER BY id LIMIT 5"), {"u": me, "t": key["id"]}))
    assert len(mine) == 5
    foreign = db_session.scalar(text("SELECT id FROM customers WHERE org_id NOT IN " + FURONG + " LIMIT 1"))
    # one customer out of scope: the whole batch is refused, nothing written
    r = client.post(f"{T}/assign", json={"tag_ids": [key["id"]], "customer_ids": [*mine, foreign]}, headers=h)
    assert r.status_code == 422 and str(foreign) in str(r.get_json()["errors"]["customer_ids"])
    set_context(db_session, SYSTEM)
    assert db_session.scalar(text("SELECT count(*) FROM customer_tags WHERE tag_id = :t AND customer_id = ANY(:c)"),
                             {"t": key["id"], "c": mine}) == 0
    r = client.post(f"{T}/assign", json={"tag_ids": [key["id"]], "customer_ids": mine}, headers=h)
    assert r.status_code == 200 and r.get_json() == {"added": len(mine)}
    assert client.post(f"{T}/assign", json={"tag_ids": [key["id"]], "customer_ids": mine},
                       headers=h).get_json() == {"added": 0}
    tags = client.get(f"/api/v1/customers/{mine[0]}/tags", headers=h).get_json()
    assert {(t["code"], t["source"], t["created_by"]) for t in tags if t["kind"] == "manual"} == {
        ("key_account", "manual", me)}
    # a rule tag cannot be put on or taken off by hand
    rich = tag_by_code(client, h, "high_net_worth")
    r = client.put(f"/api/v1/customers/{mine[0]}/tags/{rich['id']}", headers=h)
    assert r.status_code == 422
    assert client.delete(f"/api/v1/customers/{mine[0]}/tags/{key['id']}", headers=h).status_code == 204
    r = client.post(f"{T}/unassign", json={"tag_ids": [key["id"]], "customer_ids": mine[1:]}, headers=h)
    assert r.get_json() == {"removed": len(mine) - 1}
    assert client.put(f"/api/v1/customers/{mine[0]}/tags/{key['id']}", headers=h).get_json() == {"added": 1}
    set_context(db_session, SYSTEM)  # the requests' contexts were set in the same outer transaction
    audited = db_session.scalar(text("SELECT count(*) FROM audit_log WHERE entity = 'customer_tags' "
                                     "AND entity_id = :k AND actor_user_id = :u"),
                                {"k": f"{mine[0]}:{key['id']}", "u": me})
    assert audited == 3  # insert, delete, insert


def test_tag_customers_of_an_imported_list(client, login, db_session):
    h = login("bl_430102")
    key = tag_by_code(client, h, "key_account")
    ids = furong_customers(db_session, 6)
    set_context(db_session, SYSTEM)
    user = db_session.scalar(text("SELECT id FROM users WHERE username = 'bl_430102'"))
    batch = db_session.scalar(text(
        "INSERT INTO customer_import_batches (name, template_id, template_snapshot, importer_user_id, org_id, "
        "status, filename, file_size, file_sha256) SELECT '测试名单', t.id, '{}'::jsonb, u.id, u.org_id, 'done', "
        "'a.csv', 1, 'x' FROM customer_list_templates t, users u WHERE t.code = 'person_list' AND u.id = :u "
        "RETURNING id"), {"u": user})
    db_session.execute(text("INSERT INTO customer_list_entries (batch_id, row_no, customer_id, matched) "
                            "SELECT :b, row_number() OVER (), id, true FROM unnest(CAST(:c AS int[])) id"),
                       {"b": batch, "c": ids})
    db_session.flush()
    r = client.post(f"{T}/assign", json={"tag_ids": [key["id"]], "batch_id": batch}, headers=h)
    assert r.status_code == 200, r.get_json()
    set_context(db_session, SYSTEM)
    tagged = db_session.execute(text("SELECT customer_id, source::text FROM customer_tags WHERE tag_id = :t "
                                     "AND customer_id = ANY(:c)"), {"t": key["id"], "c": ids}).all()
    assert {c for c, _ in tagged} == set(ids)
    assert {s for c, s in tagged} <= {"import", "manual"}
    assert client.post(f"{T}/assign", json={"tag_ids": [key["id"]], "batch_id": batch},
                       headers=login("bl_430104")).status_code == 404
    r = client.post(f"{T}/assign", json={"tag_ids": [key["id"]]}, headers=h)
    assert r.status_code == 422


def test_private_tags_and_counts_stay_in_scope(client, login, db_session):
    leader = login("bl_430102")
    r = client.post(T, json={"code": "furong_vip", "name": "芙蓉贵宾", "kind": "manual", "category": "service",
                             "color": "#ff0000"}, headers=leader)
    assert r.status_code == 201, r.get_json()
    private = r.get_json()
    assert private["visibility"] == "private" and private["org_id"] is not None
    ids = furong_customers(db_session, 3)
    assert client.post(f"{T}/assign", json={"tag_ids": [private["id"]], "customer_ids": ids},
                       headers=leader).get_json() == {"added": 3}
    # the branch's own staff see it; another branch does not, by id, list or customer
    assert client.get(f"{T}/{private['id']}", headers=login("sbl_430102_1")).status_code == 200
    other = login("bl_430104")
    assert client.get(f"{T}/{private['id']}", headers=other).status_code == 404
    assert "furong_vip" not in {t["code"] for t in client.get(f"{T}?page_size=100", headers=other).get_json()["items"]}
    assert client.get(f"/api/v1/customers/{ids[0]}/tags", headers=other).status_code == 404
    assert client.get(f"{T}/{private['id']}/customers", headers=other).status_code == 404
    r = client.post(f"{T}/assign", json={"tag_ids": [private["id"]], "customer_ids": ids}, headers=other)
    assert r.status_code == 422 and set(r.get_json()["errors"]) == {"tag_ids"}
    # a public tag's count covers my scope only
    rich = tag_by_code(client, leader, "high_net_worth")
    furong = sql_count(db_session, f"c.deposit_balance >= 500000 AND c.org_id IN {FURONG}")
    assert rich["customer_count"] == furong
    assert client.get(f"{T}/{rich['id']}/customers?page_size=1", headers=leader).get_json()["total"] == furong
    # editing: not a bank-wide tag, not another branch's; not without tag:edit
    assert client.patch(f"{T}/{rich['id']}", json={"name": "改名"}, headers=leader).status_code == 403
    assert client.patch(f"{T}/{private['id']}", json={"name": "改名"}, headers=other).status_code == 404
    assert client.post(T, json={"code": "am_tag", "name": "x", "kind": "manual"},
                       headers=login("am_430102_1_1")).status_code == 403
    r = client.patch(f"{T}/{private['id']}", json={"visibility": "public", "color": "#00ff00"}, headers=leader)
    assert r.status_code == 200 and r.get_json()["visibility"] == "public"
    assert client.get(f"{T}/{private['id']}", headers=other).get_json()["customer_count"] == 0


def test_rule_tag_references_and_delete(client, login):
    h = login("bl_430102")
    key = tag_by_code(client, h, "key_account")
    rich = tag_by_code(client, h, "high_net_worth")
    body = {"code": "rich_key", "name": "重点高净值", "kind": "rule",
            "rule": {"all": [{"field": "tag", "op": "has", "value": rich["id"]}]}}
    r = client.post(T, json=body, headers=h)
    assert r.status_code == 422 and "rule" in r.get_json()["errors"]  # no rule tag inside a rule tag
    body["rule"] = {"all": [{"field": "tag", "op": "has", "value": key["id"]},
                            {"field": "grid", "op": "in", "value": [999999]}]}
    r = client.post(T, json=body, headers=h)
    assert r.status_code == 422 and "999999" in str(r.get_json()["errors"])
    body["rule"] = {"field": "tag", "op": "has", "value": key["id"]}
    r = client.post(T, json=body, headers=h)
    assert r.status_code == 201, r.get_json()
    created = r.get_json()
    assert client.delete(f"{T}/{key['id']}", headers=login("admin")).status_code == 409  # referenced
    assert client.delete(f"{T}/{created['id']}", headers=h).status_code == 204
    assert client.get(f"{T}/{created['id']}", headers=h).status_code == 404
