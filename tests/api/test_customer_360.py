"""Customer 360 view and the sortable 客户管理 list: sections, masks, crs, scope (attacker side), sorting."""

from __future__ import annotations

import json

from sqlalchemy import text

from geo_core.customers import view360
from geo_core.db import SYSTEM, set_context

C = "/api/v1/customers"


def _me(client, h) -> dict:
    return client.get("/api/v1/me", headers=h).get_json()


def _first_own_customer(client, h) -> dict:
    r = client.get(f"{C}/directory", query_string={"page_size": 5}, headers=h)
    assert r.status_code == 200, r.get_json()
    return r.get_json()["items"][0]


def test_manager_lists_exactly_his_own_customers_with_names(client, login):
    h = login("am_430102_1_1")
    me = _me(client, h)
    r = client.get(f"{C}/directory", query_string={"page_size": 100}, headers=h)
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert body["total"] > 0 and len(body["items"]) == min(body["total"], 100)
    assert {i["owner_user_id"] for i in body["items"]} == {me["id"]}
    assert {i["owner_name"] for i in body["items"]} == {me["name"]}
    # same count as the plain list API for the same caller
    plain = client.get(C, query_string={"page_size": 1}, headers=h).get_json()
    assert plain["total"] == body["total"]
    row = body["items"][0]
    assert row["grid_code"] and row["org_name"] and "id_number" not in row and "phone" not in row
    assert all("id_number_enc" not in i and "phone_bidx" not in i for i in body["items"])


def test_sorting_filters_and_views(client, login):
    h = login("bl_430102")
    desc = client.get(f"{C}/directory", query_string={"sort": "-deposit_balance", "page_size": 50}, headers=h)
    assert desc.status_code == 200
    values = [float(i["deposit_balance"]) for i in desc.get_json()["items"] if i["deposit_balance"] is not None]
    assert values == sorted(values, reverse=True) and len(values) > 10
    by_name = client.get(f"{C}/directory", query_string={"sort": "name", "page_size": 50}, headers=h).get_json()
    names = [i["name"] for i in by_name["items"]]
    assert len(names) == 50
    by_grid = client.get(f"{C}/directory", query_string={"view": "grid", "page_size": 50}, headers=h).get_json()
    codes = [i["grid_code"] for i in by_grid["items"] if i["grid_code"]]
    assert codes == sorted(codes)
    ownership = client.get(f"{C}/directory", query_string={"view": "ownership", "page_size": 50}, headers=h)
    assert ownership.status_code == 200 and ownership.get_json()["total"] == by_grid["total"]
    potential = client.get(f"{C}/directory", query_string={"category": "potential", "kind": "person"}, headers=h)
    assert all(i["category"] == "potential" and i["kind"] == "person" for i in potential.get_json()["items"])
    bad = client.get(f"{C}/directory", query_string={"sort": "id_number_enc"}, headers=h)
    assert bad.status_code == 422 and "sort" in bad.get_json()["errors"]
    assert client.get(f"{C}/directory", query_string={"page_size": 0}, headers=h).status_code == 422


def test_exact_search_by_phone_through_the_directory(client, login):
    h = login("bl_430102")
    body = {"kind": "person", "name": "精确查找测试", "phone": "13912340001", "lon": 112.99, "lat": 28.19}
    created = client.post(C, json=body, headers=h)
    assert created.status_code == 201, created.get_json()
    r = client.get(f"{C}/directory", query_string={"phone": "139 1234 0001"}, headers=h).get_json()
    assert [i["id"] for i in r["items"]] == [created.get_json()["id"]]
    assert r["items"][0]["phone_mask"] == "139****0001"


def test_360_view_sections(client, login):
    h = login("am_430102_1_1")
    customer = _first_own_customer(client, h)
    r = client.get(f"{C}/{customer['id']}/360", headers=h)
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert body["customer_id"] == customer["id"] and body["order"] == list(view360.SECTIONS)
    sections = body["sections"]
    profile = sections["profile"]
    assert profile["available"] and profile["name"] == customer["name"] and profile["owner_name"]
    assert "id_number_enc" not in profile and "phone_bidx" not in profile
    assert sections["holdings"]["available"] and "deposit_balance" in sections["holdings"]
    location = sections["location"]
    assert location["available"] and location["has_point"] and location["grid"]["id"] == customer["grid_id"]
    assert location["grid"]["code"] == customer["grid_code"] and location["crs"] == "wgs84"
    # the features nobody has built yet say so instead of failing
    for key in ("campaigns", "tasks", "visits", "footprints"):
        section = sections[key]
        assert section["title"] and ("items" in section or section["available"] is False), key
    # nothing in the whole answer is an identifier in clear or a ciphertext
    dumped = json.dumps(body, ensure_ascii=False)
    assert "_enc" not in dumped and "_bidx" not in dumped


def test_360_location_in_other_crs_and_after_correction(client, login):
    h = login("bl_430102")
    created = client.post(C, json={"kind": "person", "name": "纠偏测试", "lon": 112.99, "lat": 28.19}, headers=h)
    cid = created.get_json()["id"]
    gcj = client.get(f"{C}/{cid}/360", query_string={"crs": "gcj02", "sections": "location"}, headers=h).get_json()
    assert list(gcj["sections"]) == ["location"]
    loc = gcj["sections"]["location"]
    assert loc["crs"] == "gcj02" and abs(loc["lon"] - 112.99) > 1e-3 and loc["source"] == "imported"
    # the manager drags the point on a Gaode map: sent in GCJ-02, stored in WGS84, provenance corrected
    moved = client.post(f"{C}/{cid}/location", query_string={"crs": "gcj02"},
                        json={"lon": loc["lon"] + 0.001, "lat": loc["lat"]}, headers=h)
    assert moved.status_code == 200, moved.get_json()
    after = client.get(f"{C}/{cid}/360", query_string={"sections": "location"}, headers=h).get_json()
    loc2 = after["sections"]["location"]
    assert loc2["source"] == "corrected" and abs(loc2["lon"] - 112.991) < 1e-4 and abs(loc2["lat"] - 28.19) < 1e-4
    assert loc2["updated_by_name"] == _me(client, h)["name"]
    assert client.get(f"{C}/{cid}/360", query_string={"crs": "mars"}, headers=h).status_code == 422
    assert client.get(f"{C}/{cid}/360", query_string={"sections": "nope"}, headers=h).status_code == 422


def test_lists_section_shows_the_batches_of_the_customer(client, login, db_session):
    h = login("bl_430102")
    customer = _first_own_customer(client, h)
    set_context(db_session, SYSTEM)
    tpl = db_session.scalar(text("SELECT id FROM customer_list_templates WHERE is_builtin ORDER BY id LIMIT 1"))
    me = _me(client, h)
    batch = db_session.scalar(text(
        "INSERT INTO customer_import_batches (name, template_id, template_snapshot, importer_user_id, org_id, "
        "status, filename, file_size, file_sha256, total_rows) SELECT '360测试名单', t.id, "
        "jsonb_build_object('name', t.name), :u, :o, 'done', 'x.csv', 1, repeat('0', 64), 1 "
        "FROM customer_list_templates t WHERE t.id = :t RETURNING id"),
        {"u": me["id"], "o": customer["org_id"], "t": tpl})
    db_session.execute(text("INSERT INTO customer_list_entries (batch_id, row_no, customer_id, matched) "
                            "VALUES (:b, 2, :c, true)"), {"b": batch, "c": customer["id"]})
    db_session.flush()
    body = client.get(f"{C}/{customer['id']}/360", query_string={"sections": "lists"}, headers=h).get_json()
    lists = body["sections"]["lists"]
    assert lists["available"] and lists["total"] == 1
    assert lists["items"][0]["name"] == "360测试名单" and lists["items"][0]["matched"] is True


def test_scope_attacker_gets_404_and_empty_lists(client, login):
    own = _first_own_customer(client, login("am_430102_1_1"))
    for attacker in ("bl_430104", "sbl_430102_2"):
        h = login(attacker)
        r = client.get(f"{C}/{own['id']}/360", headers=h)
        assert r.status_code == 404 and r.get_json()["code"] == "CUSTOMER_NOT_FOUND"
        # filters naming the other branch's owner or grid give nothing
        for q in ({"owner_user_id": own["owner_user_id"]}, {"grid_id": own["grid_id"]}, {"org_id": own["org_id"]}):
            body = client.get(f"{C}/directory", query_string=q, headers=h).get_json()
            assert body["total"] == 0 and body["items"] == [], (attacker, q)
        totals = client.get(f"{C}/directory", headers=h).get_json()["total"]
        assert totals == client.get(C, headers=h).get_json()["total"]
    # another account manager of the same sub-branch does not see this manager's customers either
    peer = login("am_430102_1_2")
    assert client.get(f"{C}/{own['id']}/360", headers=peer).status_code == 404
    assert client.get(f"{C}/999999999/360", headers=peer).status_code == 404
    assert client.get(f"{C}/{own['id']}/360").status_code == 401
    assert client.get(f"{C}/directory").status_code == 401


def test_missing_feature_tables_are_not_installed_not_errors(client, login, monkeypatch):
    h = login("bl_430102")
    customer = _first_own_customer(client, h)
    spec = view360.SECTIONS["campaigns"]
    monkeypatch.setitem(view360.SECTIONS, "campaigns",
                        view360.SectionSpec(spec.key, spec.title, spec.provider, ("no_such_table_xyz",)))
    body = client.get(f"{C}/{customer['id']}/360", query_string={"sections": "campaigns"}, headers=h).get_json()
    assert body["sections"]["campaigns"] == {"title": "营销活动", "available": False, "reason": "not_installed",
                                             "missing": ["no_such_table_xyz"]}


def test_a_failing_section_does_not_break_the_view(client, login, monkeypatch):
    h = login("bl_430102")
    customer = _first_own_customer(client, h)

    def broken(ctx):
        ctx.session.execute(text("SELECT no_such_column FROM customers"))
        return {"available": True}

    monkeypatch.setitem(view360.SECTIONS, "broken", view360.SectionSpec("broken", "坏的", broken))
    r = client.get(f"{C}/{customer['id']}/360", headers=h)
    assert r.status_code == 200
    sections = r.get_json()["sections"]
    assert sections["broken"] == {"title": "坏的", "available": False, "reason": "error"}
    assert sections["profile"]["available"] and sections["location"]["available"]


def _exists(db_session, table: str) -> bool:
    return bool(db_session.scalar(text("SELECT to_regclass(:t) IS NOT NULL"), {"t": f"public.{table}"}))


def test_sections_of_other_features_read_their_tables_under_scope(client, login, db_session):
    """Tags, groups, credit decisions and reminders of a customer show in his 360 view — and only his."""
    h = login("bl_430102")
    customer = _first_own_customer(client, h)
    other = _first_own_customer(client, login("bl_430104"))
    intruder = _me(client, login("bl_430104"))["id"]
    set_context(db_session, SYSTEM)  # after the calls above: a request leaves its own context on the connection
    expected: dict[str, str] = {}
    if _exists(db_session, "customer_tags"):
        tag = db_session.scalar(text(
            "INSERT INTO tags (code, name, category, color, kind, visibility) VALUES ('e2e_360', '三六零测试标签', "
            "'other', '#123456', 'manual', 'public') RETURNING id"))
        db_session.execute(text("INSERT INTO customer_tags (customer_id, tag_id, source) VALUES (:c, :t, 'manual'), "
                                "(:o, :t, 'manual')"), {"c": customer["id"], "o": other["id"], "t": tag})
        expected["tags"] = "三六零测试标签"
    if _exists(db_session, "credit_decisions"):
        for cid, ref in ((customer["id"], "360-a"), (other["id"], "360-b")):
            db_session.execute(text(
                "INSERT INTO credit_decisions (customer_id, request_id, decision, credit_limit, rate, raw_response) "
                "VALUES (:c, :r, 'approve', 200000, 4.35, '{\"secret\": \"RAW-ANSWER-XYZ\"}')"), {"c": cid, "r": ref})
        expected["credit"] = "approve"
    if _exists(db_session, "reminders"):
        db_session.execute(text(
            "INSERT INTO reminders (customer_id, owner_user_id, org_id, kind, due_date, title) "
            "VALUES (:c, :u, :o, 'loan_due', current_date + 3, '三六零贷款到期提醒')"),
            {"c": customer["id"], "u": customer["owner_user_id"], "o": customer["org_id"]})
        expected["reminders"] = "三六零贷款到期提醒"
    if _exists(db_session, "customer_group_members"):
        group = db_session.scalar(text(
            "INSERT INTO customer_groups (name, kind, category, definition, org_id, created_by, visibility, status) "
            "VALUES ('三六零测试客群', 'person', 'formal', '{}', :o, :u, 'public', 'approved') RETURNING id"),
            {"o": customer["org_id"], "u": customer["owner_user_id"]})
        db_session.execute(text("INSERT INTO customer_group_members (group_id, customer_id) VALUES (:g, :c), (:g, :o)"),
                           {"g": group, "c": customer["id"], "o": other["id"]})
        # another user's private draft holding the customer stays his alone (the groups' own RLS applies)
        draft = db_session.scalar(text(
            "INSERT INTO customer_groups (name, kind, category, definition, org_id, created_by) "
            "VALUES ('三六零私有草稿', 'person', 'formal', '{}', :o, :u) RETURNING id"),
            {"o": customer["org_id"], "u": intruder})
        db_session.execute(text("INSERT INTO customer_group_members (group_id, customer_id) VALUES (:g, :c)"),
                           {"g": draft, "c": customer["id"]})
        expected["groups"] = "三六零测试客群"
    db_session.flush()
    assert set(expected) == {"tags", "groups", "credit", "reminders"}  # those features' tables are installed
    body = client.get(f"{C}/{customer['id']}/360", headers=h).get_json()
    sections = body["sections"]
    dumped = json.dumps(sections, ensure_ascii=False)
    for key, needle in expected.items():
        assert sections[key]["available"] and sections[key]["total"] >= 1, (key, sections[key])
        # once: the other branch's customer carries the same tag / decision, which must not leak in
        assert json.dumps(sections[key]["items"], ensure_ascii=False).count(needle) == 1, key
    assert "RAW-ANSWER-XYZ" not in dumped and "raw_response" not in dumped and "三六零私有草稿" not in dumped
    if "credit" in expected:
        latest = sections["credit"]["latest"]
        assert latest["credit_limit"] == 200000 and latest["decision"] == "approve"
    # the manager of the customer sees the same sections; the other branch gets a 404, not the sections
    manager = login("am_430102_1_1")
    if customer["owner_user_id"] == _me(client, manager)["id"]:
        assert client.get(f"{C}/{customer['id']}/360", headers=manager).get_json()["sections"]["tags"]["available"]
    assert client.get(f"{C}/{customer['id']}/360", headers=login("bl_430104")).status_code == 404


def test_ownership_history_follows_a_reassignment(client, login, db_session):
    h = login("bl_430102")
    created = client.post(C, json={"kind": "person", "name": "管户历史测试", "lon": 112.99, "lat": 28.19}, headers=h)
    cid = created.get_json()["id"]
    if not _exists(db_session, "customer_ownerships"):
        body = client.get(f"{C}/{cid}/360", query_string={"sections": "ownerships"}, headers=h).get_json()
        assert body["sections"]["ownerships"]["reason"] == "not_installed"
        return
    manager = _me(client, login("am_430102_1_1"))
    r = client.post(f"{C}/batch-assign", json={"customer_ids": [cid], "owner_user_id": manager["id"],
                                                "reason": "调整管户"}, headers=h)
    assert r.status_code == 200, r.get_json()
    section = client.get(f"{C}/{cid}/360", query_string={"sections": "ownerships"},
                         headers=h).get_json()["sections"]["ownerships"]
    assert section["available"] and section["total"] >= 2
    latest, previous = section["items"][0], section["items"][1]
    assert latest["owner_name"] == manager["name"] and latest["valid_to"] is None
    assert latest["reason"] == "调整管户" and latest["changed_by_name"] == _me(client, h)["name"]
    assert previous["valid_to"] is not None and latest["org_name"]


def test_directory_filters_match_the_customer_list(client, login):
    """The page's list applies exactly the filters of GET /customers (same totals, same rows)."""
    h = login("bl_430102")
    first = _first_own_customer(client, h)
    created = client.post(C, json={"kind": "person", "name": "无坐标客户"}, headers=h).get_json()
    for query in ({"grid_id": first["grid_id"]}, {"org_id": first["org_id"]}, {"unplaced": "true"},
                  {"owner_user_id": first["owner_user_id"], "kind": "company"}, {"q": "无坐标"},
                  {"category": "formal", "view": "grid"}):
        page = {"page_size": 500, **query}
        mine = client.get(f"{C}/directory", query_string=page, headers=h).get_json()
        plain = client.get(C, query_string=page, headers=h).get_json()
        assert mine["total"] == plain["total"], query
        assert sorted(i["id"] for i in mine["items"]) == sorted(i["id"] for i in plain["items"]), query
    unplaced = client.get(f"{C}/directory", query_string={"unplaced": "true"}, headers=h).get_json()
    assert created["id"] in [i["id"] for i in unplaced["items"]]
    assert all(i["grid_id"] is None and i["grid_code"] is None for i in unplaced["items"])
