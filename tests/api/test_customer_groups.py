"""Customer groups (客群): definition checks, live preview against direct SQL inside the caller's scope, polygon in
GCJ-02, list groups on imported batches, submit → approve/reject with log, member snapshot = submitter's scope ∩
approver's scope, and the attacker's side (other branches, private groups, own approval)."""

from __future__ import annotations

from sqlalchemy import text

from geo_core.crs import transform_geojson
from geo_core.db import SYSTEM, set_context
from tests.api.test_tags import FURONG, tag_by_code

G = "/api/v1/customer-groups"


def sql(db_session, query: str, **params):
    set_context(db_session, SYSTEM)
    return db_session.execute(text(query), params)


def user_id(db_session, username: str) -> int:
    return sql(db_session, "SELECT id FROM users WHERE username = :u", u=username).scalar()


def rich_definition(client, h) -> dict:
    return {"tags": {"any": [tag_by_code(client, h, "high_net_worth")["id"]]}}


def create(client, h, **extra) -> dict:
    body = {"name": "测试客群", "kind": "person", "category": "formal", "definition": rich_definition(client, h),
            **extra}
    r = client.post(G, json=body, headers=h)
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def test_definition_errors_name_the_bad_part(client, login):
    h = login("bl_430102")
    bad = {"kind": "person", "category": "formal", "definition": {
        "rule": {"all": [{"field": "age", "op": ">=", "value": "thirty"}]}, "grid_ids": [], "polygon":
            {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}, "colour": 1}}
    r = client.post(f"{G}/preview", json=bad, headers=h)
    assert r.status_code == 422, r.get_json()
    assert set(r.get_json()["errors"]) == {"definition", "definition.rule.all.0.value", "definition.grid_ids",
                                           "definition.polygon"}
    r = client.post(f"{G}/preview", json={"kind": "person", "category": "list", "definition": {}}, headers=h)
    assert r.status_code == 422 and "definition.batch_ids" in r.get_json()["errors"]
    r = client.post(f"{G}/preview", json={"kind": "person", "category": "formal", "definition": {"batch_ids": [1]}},
                    headers=h)
    assert r.status_code == 422 and "definition.batch_ids" in r.get_json()["errors"]
    r = client.post(f"{G}/preview", json={"kind": "person", "category": "formal",
                                          "definition": {"manager_ids": [999999]}}, headers=h)
    assert r.status_code == 422 and "999999" in str(r.get_json()["errors"])


def test_preview_counts_by_manager_and_grid_inside_my_scope(client, login, db_session):
    h = login("bl_430102")
    body = {"kind": "person", "category": "formal", "definition": rich_definition(client, h), "top": 100}
    where = ("c.kind = 'person' AND c.category = 'formal' AND c.status = 'active' AND c.deposit_balance >= 500000")
    everyone = sql(db_session, f"SELECT count(*) FROM customers c WHERE {where}").scalar()
    furong = sql(db_session, f"SELECT count(*) FROM customers c WHERE {where} AND c.org_id IN {FURONG}").scalar()
    by_owner = dict(sql(db_session, f"SELECT owner_user_id, count(*) FROM customers c WHERE {where} "
                                    f"AND c.org_id IN {FURONG} GROUP BY 1").all())
    assert 0 < furong < everyone
    r = client.post(f"{G}/preview", json=body, headers=h)
    assert r.status_code == 200, r.get_json()
    out = r.get_json()
    assert out["total"] == furong and out["managers"] == len(by_owner)
    assert {m["user_id"]: m["count"] for m in out["by_manager"]} == by_owner
    assert all(m["name"] for m in out["by_manager"])
    assert sum(g["count"] for g in out["by_grid"]) == furong
    counts = [m["count"] for m in out["by_manager"]]
    assert counts == sorted(counts, reverse=True)
    assert client.post(f"{G}/preview", json={**body, "top": 2}, headers=h).get_json()["by_manager"] == \
        out["by_manager"][:2]
    # the other branch never counts 芙蓉's customers; the admin counts everyone
    other = client.post(f"{G}/preview", json=body, headers=login("bl_430104")).get_json()
    assert other["total"] <= everyone - furong and not set(by_owner) & {m["user_id"] for m in other["by_manager"]}
    assert client.post(f"{G}/preview", json=body, headers=login("admin")).get_json()["total"] == everyone


def test_polygon_in_gcj02_and_rule_parts(client, login, db_session):
    h = login("bl_430102")
    ring = sql(db_session, "SELECT ST_AsGeoJSON(ST_Envelope(ST_Collect(geom))) FROM (SELECT geom FROM customers "
                           f"WHERE org_id IN {FURONG} AND geom IS NOT NULL ORDER BY id LIMIT 60) s").scalar()
    import json

    wgs84 = json.loads(ring)
    gcj02 = transform_geojson(wgs84, "wgs84", "gcj02")
    definition = {"polygon": gcj02, "crs": "gcj02",
                  "rule": {"any": [{"field": "age", "op": "<", "value": 40},
                                   {"field": "products", "op": "contains", "value": "WEALTH"}]}}
    expected = sql(db_session, "SELECT count(*) FROM customers c WHERE c.kind = 'person' AND c.category = 'formal' "
                               "AND c.status = 'active' AND ST_Intersects(c.geom, ST_SetSRID(ST_GeomFromGeoJSON(:g), "
                               "4326)) AND (date_part('year', age(current_date, c.birth_date)) < 40 "
                               f"OR 'WEALTH' = ANY(c.products)) AND c.org_id IN {FURONG}", g=ring).scalar()
    assert expected > 0
    r = client.post(f"{G}/preview", json={"kind": "person", "category": "formal", "definition": definition},
                    headers=h)
    assert r.status_code == 200 and r.get_json()["total"] == expected, r.get_json()
    group = create(client, h, definition=definition)
    assert group["definition"]["crs"] == "wgs84" and group["definition"]["polygon_crs"] == "gcj02"
    assert client.get(f"{G}/{group['id']}/preview", headers=h).get_json()["total"] == expected


def test_review_workflow_log_and_snapshot(client, login, db_session):
    author, approver = login("sbl_430102_1"), login("bl_430102")
    group = create(client, author, name="南门口高净值", visibility="public")
    gid = group["id"]
    assert group["status"] == "draft" and group["version"] == 1
    # a reviewer cannot act on a draft; the author cannot approve (no permission) nor anyone his own group
    assert client.post(f"{G}/{gid}/approve", json={}, headers=approver).status_code == 409
    r = client.post(f"{G}/{gid}/submit", json={"comment": "请审核"}, headers=author)
    assert r.status_code == 200 and r.get_json()["status"] == "submitted"
    assert client.patch(f"{G}/{gid}", json={"name": "改"}, headers=author).status_code == 409
    assert client.post(f"{G}/{gid}/approve", json={}, headers=author).status_code == 403
    assert client.post(f"{G}/{gid}/approve", json={}, headers=login("bl_430104")).status_code == 404
    assert client.post(f"{G}/{gid}/reject", json={}, headers=approver).status_code == 422  # comment required
    r = client.post(f"{G}/{gid}/reject", json={"comment": "范围过大"}, headers=approver)
    assert r.status_code == 200
    assert (r.get_json()["status"], r.get_json()["review_comment"]) == ("rejected", "范围过大")
    r = client.patch(f"{G}/{gid}", json={"definition": {**rich_definition(client, author),
                                                        "rule": {"field": "age", "op": ">=", "value": 30}}},
                     headers=author)
    assert r.status_code == 200 and r.get_json()["status"] == "draft"
    client.post(f"{G}/{gid}/submit", json={}, headers=author)
    preview = client.get(f"{G}/{gid}/preview", headers=author).get_json()["total"]
    r = client.post(f"{G}/{gid}/approve", json={"comment": "同意"}, headers=approver)
    assert r.status_code == 200, r.get_json()
    approved = r.get_json()
    assert approved["status"] == "approved" and approved["member_count"] == preview > 0
    members = client.get(f"{G}/{gid}/members?page_size=500", headers=author).get_json()
    assert members["total"] == preview
    first = members["items"][0]
    assert "id_number" not in first and first["id_number_mask"] and "*" in first["id_number_mask"]
    log = client.get(f"{G}/{gid}/reviews", headers=author).get_json()
    assert [(e["action"], e["comment"]) for e in log] == [("submit", "请审核"), ("reject", "范围过大"),
                                                          ("submit", None), ("approve", "同意")]
    assert log[-1]["member_count"] == preview and log[-1]["actor_user_id"] == user_id(db_session, "bl_430102")
    set_context(db_session, SYSTEM)
    audited = sql(db_session, "SELECT count(*) FROM audit_log WHERE entity = 'customer_group_members' "
                              "AND entity_id LIKE :k", k=f"{gid}:%").scalar()
    assert audited == preview
    # editing an approved group: back to draft, next version, snapshot dropped, logged
    r = client.patch(f"{G}/{gid}", json={"name": "南门口高净值（新）"}, headers=author)
    assert r.status_code == 200
    assert (r.get_json()["status"], r.get_json()["version"], r.get_json()["member_count"]) == ("draft", 2, None)
    assert client.get(f"{G}/{gid}/members", headers=author).get_json()["total"] == 0
    assert client.get(f"{G}/{gid}/reviews", headers=author).get_json()[-1]["action"] == "reset"
    r = client.patch(f"{G}/{gid}", json={"name": "领导改名"}, headers=approver)
    assert r.status_code == 403 and r.get_json()["code"] == "NOT_GROUP_OWNER"
    # own group: never approved by its author, whatever his permissions
    own = create(client, approver, name="自己的")
    client.post(f"{G}/{own['id']}/submit", json={}, headers=approver)
    r = client.post(f"{G}/{own['id']}/approve", json={}, headers=approver)
    assert r.status_code == 403 and r.get_json()["code"] == "OWN_GROUP"


def test_snapshot_is_submitter_scope_intersect_approver_scope(client, login, db_session):
    manager = login("am_430102_1_1")
    me = user_id(db_session, "am_430102_1_1")
    # the manager also manages (管户) one customer of 岳麓: he sees it, 芙蓉's leader does not
    foreign = sql(db_session, "SELECT id FROM customers WHERE kind = 'person' AND category = 'formal' AND org_id "
                              f"NOT IN {FURONG} ORDER BY id LIMIT 1").scalar()
    sql(db_session, "UPDATE customers SET owner_user_id = :u WHERE id = :c", u=me, c=foreign)
    r = client.post(G, json={"name": "我的正式客户", "kind": "person", "category": "formal", "definition": {}},
                    headers=manager)
    assert r.status_code == 201, r.get_json()
    gid = r.get_json()["id"]
    mine = client.post(f"{G}/preview", json={"kind": "person", "category": "formal", "definition": {}},
                       headers=manager).get_json()["total"]
    client.post(f"{G}/{gid}/submit", json={}, headers=manager)
    # private and submitted: the branch leader (an approver) sees it; another manager of the branch does not
    assert client.get(f"{G}/{gid}", headers=login("am_430102_1_2")).status_code == 404
    assert client.get(f"{G}/{gid}", headers=login("sbl_430102_1")).status_code == 404
    approved = client.post(f"{G}/{gid}/approve", json={}, headers=login("bl_430102")).get_json()
    assert approved["member_count"] == mine - 1
    members = {m["id"] for m in client.get(f"{G}/{gid}/members?page_size=500", headers=manager).get_json()["items"]}
    assert foreign not in members and len(members) == mine - 1


def test_visibility_private_public_and_other_branches(client, login, db_session):
    leader, other = login("bl_430102"), login("bl_430104")
    private = create(client, leader, name="私有客群")
    public = create(client, leader, name="公共客群", visibility="public")
    for gid in (private["id"], public["id"]):
        assert client.get(f"{G}/{gid}", headers=other).status_code == 404
        assert client.get(f"{G}/{gid}/members", headers=other).status_code == 404
        assert client.get(f"{G}/{gid}/reviews", headers=other).status_code == 404
        assert client.get(f"{G}/{gid}/preview", headers=other).status_code == 404
        assert client.patch(f"{G}/{gid}", json={"name": "x"}, headers=other).status_code == 404
        assert client.delete(f"{G}/{gid}", headers=other).status_code == 404
    names = {g["name"] for g in client.get(f"{G}?page_size=100", headers=other).get_json()["items"]}
    assert not names & {"私有客群", "公共客群"}
    # a draft is its author's: the sub-branch leader sees the public draft, not the private one, edits neither
    sub = login("sbl_430102_1")
    assert client.get(f"{G}/{private['id']}", headers=sub).status_code == 404
    assert client.get(f"{G}/{public['id']}", headers=sub).status_code == 404  # his scope does not cover the branch
    # the seeded approved public group of 芙蓉 reaches the branch's managers, members limited to their scope
    seeded = next(g for g in client.get(f"{G}?status=approved&visibility=public", headers=leader).get_json()["items"]
                  if g["name"] == "芙蓉高净值个人客户")
    manager = login("am_430102_1_1")
    seen = client.get(f"{G}/{seeded['id']}", headers=manager)
    assert seen.status_code == 200 and seen.get_json()["member_count"] > 0
    own = client.get(f"{G}/{seeded['id']}/members?page_size=500", headers=manager).get_json()
    assert own["total"] < seeded["member_count"]
    me = user_id(db_session, "am_430102_1_1")
    assert all(m["owner_user_id"] == me for m in own["items"])
    assert client.get(f"{G}/{seeded['id']}", headers=other).status_code == 404
    # filters
    mine = client.get(f"{G}?mine=true&page_size=100", headers=leader).get_json()["items"]
    assert {g["name"] for g in mine} >= {"私有客群", "公共客群"} and all(g["created_by"] == mine[0]["created_by"]
                                                                    for g in mine)
    drafts = client.get(f"{G}?status=draft&visibility=private&page_size=100", headers=leader).get_json()["items"]
    assert "私有客群" in {g["name"] for g in drafts} and "公共客群" not in {g["name"] for g in drafts}
    assert client.delete(f"{G}/{private['id']}", headers=leader).status_code == 204


def test_list_group_on_imported_batches(client, login, db_session):
    h = login("bl_430102")
    me = user_id(db_session, "bl_430102")
    ids = list(sql(db_session, f"SELECT id FROM customers WHERE org_id IN {FURONG} ORDER BY id LIMIT 12").scalars())
    batch = sql(db_session,
                "INSERT INTO customer_import_batches (name, template_id, template_snapshot, importer_user_id, "
                "org_id, status, filename, file_size, file_sha256) SELECT '客群名单', t.id, '{}'::jsonb, u.id, "
                "u.org_id, 'done', 'a.csv', 1, 'x' FROM customer_list_templates t, users u "
                "WHERE t.code = 'person_list' AND u.id = :u RETURNING id", u=me).scalar()
    sql(db_session, "INSERT INTO customer_list_entries (batch_id, row_no, customer_id, matched) "
                    "SELECT :b, row_number() OVER (), id, true FROM unnest(CAST(:c AS int[])) id", b=batch, c=ids)
    persons = sql(db_session, "SELECT count(*) FROM customers WHERE id = ANY(:c) AND kind = 'person'", c=ids).scalar()
    body = {"kind": "person", "category": "list", "definition": {"batch_ids": [batch]}}
    r = client.post(f"{G}/preview", json=body, headers=h)
    assert r.status_code == 200 and r.get_json()["total"] == persons > 0
    assert client.post(f"{G}/preview", json=body, headers=login("bl_430104")).status_code == 422
    r = client.post(G, json={**body, "name": "名单客群"}, headers=h)
    assert r.status_code == 201 and r.get_json()["category"] == "list"


def test_spatial_filters_can_use_the_gist_index_under_rls(db_session):
    """Polygon and outlet-distance filters stay indexable under row-level security (LEAKPROOF `&&` on columns):
    with sequential scans disabled, the plan of a branch leader's member query uses ix_customers_geom."""
    from sqlalchemy import func, select
    from sqlalchemy.dialects import postgresql

    from geo_core.customers.models import Customer
    from geo_core.groups import definition as defs
    from geo_core.scope import DataScope, scope_context

    leader = sql(db_session, "SELECT u.id, u.org_id, o.path::text FROM users u JOIN orgs o ON o.id = u.org_id "
                             "WHERE u.username = 'bl_430102'").one()
    polygon = {"type": "MultiPolygon", "coordinates": [[[[112.97, 28.18], [113.0, 28.18], [113.0, 28.2],
                                                         [112.97, 28.2], [112.97, 28.18]]]]}
    set_context(db_session, scope_context(leader[0], leader[1], leader[2], DataScope.org_subtree))
    db_session.execute(text("SET LOCAL enable_seqscan = off"))
    for definition in ({"polygon": polygon}, {"rule": {"field": "outlet_distance", "op": "<=", "value": 500}}):
        stmt = select(func.count()).select_from(Customer).where(*defs.conditions(definition, "person", "formal"))
        query = str(stmt.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))
        plan = "\n".join(r[0] for r in db_session.execute(text("EXPLAIN " + query)))
        assert "ix_customers_geom" in plan, plan
    db_session.execute(text("SET LOCAL enable_seqscan = on"))


def test_preview_by_managers_grids_and_orgs(client, login, db_session):
    h = login("bl_430102")
    base = "c.kind = 'company' AND c.category = 'potential' AND c.status = 'active'"
    owner, grid = sql(db_session, f"SELECT owner_user_id, grid_id FROM customers c WHERE {base} AND c.org_id IN "
                                  f"{FURONG} GROUP BY 1, 2 ORDER BY count(*) DESC LIMIT 1").one()
    parent = sql(db_session, "SELECT parent_id FROM grids WHERE id = :g", g=grid).scalar()
    sub = sql(db_session, "SELECT id FROM orgs WHERE code = 'SB43010201'").scalar()
    cases = {
        "manager_ids": ([owner], f"c.owner_user_id = {int(owner)}"),
        "grid_ids": ([parent], f"c.grid_id IN (SELECT id FROM grids WHERE path <@ (SELECT path FROM grids "
                               f"WHERE id = {int(parent)}))"),
        "org_ids": ([sub], f"c.org_id IN (SELECT id FROM orgs WHERE path <@ (SELECT path FROM orgs "
                           f"WHERE id = {int(sub)}))"),
    }
    for key, (ids, where) in cases.items():
        expected = sql(db_session, f"SELECT count(*) FROM customers c WHERE {base} AND {where}").scalar()
        r = client.post(f"{G}/preview", json={"kind": "company", "category": "potential", "definition": {key: ids}},
                        headers=h)
        assert r.status_code == 200 and r.get_json()["total"] == expected > 0, (key, r.get_json(), expected)
    # another branch cannot name 芙蓉's manager, grid or org
    for key, (ids, _) in cases.items():
        r = client.post(f"{G}/preview", json={"kind": "company", "category": "potential", "definition": {key: ids}},
                        headers=login("bl_430104"))
        assert r.status_code == 422, key
