"""Customers: SM4 at rest, blind-index search, masks and audited reveal, 纠偏, grid override, scope."""

from __future__ import annotations

from sqlalchemy import text

from geo_core.crs import transform_geojson
from geo_core.customers.identifiers import id_check_char, uscc_check_char
from geo_core.db import SYSTEM, set_context

C = "/api/v1/customers"


def _id_number(seq: int) -> str:
    first17 = f"43010219850315{seq:03d}"
    return first17 + id_check_char(first17)


def _new_person(client, h, seq=1, **extra):
    body = {"kind": "person", "name": "测试客户", "id_number": _id_number(seq), "phone": "13812345678",
            "lon": 112.99, "lat": 28.19, **extra}
    return client.post(C, json=body, headers=h)


def test_identifiers_are_encrypted_at_rest_and_masked(client, login, db_session):
    h = login("bl_430102")
    r = _new_person(client, h)
    assert r.status_code == 201, r.get_json()
    body = r.get_json()
    clear = _id_number(1)
    assert body["id_number_mask"] == clear[:3] + "*" * 11 + clear[-4:]
    assert body["phone_mask"] == "138****5678" and "id_number" not in body
    assert body["birth_date"] == "1985-03-15" and body["grid_id"] is not None
    set_context(db_session, SYSTEM)
    row = db_session.execute(text("SELECT to_jsonb(c)::text, encode(id_number_enc, 'escape') FROM customers c "
                                  "WHERE id = :i"), {"i": body["id"]}).one()
    assert clear not in row[0] and "13812345678" not in row[0] and clear not in row[1]
    audit = db_session.scalar(text("SELECT string_agg(coalesce(after::text, '') || coalesce(before::text, ''), '') "
                                   "FROM audit_log WHERE entity = 'customers' AND entity_id = :i"),
                              {"i": str(body["id"])})
    assert audit and clear not in audit and "13812345678" not in audit


def test_validation_and_duplicates(client, login):
    h = login("bl_430102")
    bad = _id_number(2)[:-1] + ("0" if _id_number(2)[-1] != "0" else "1")
    r = _new_person(client, h, id_number=bad)
    assert r.status_code == 422 and "id_number" in r.get_json()["errors"]
    assert _new_person(client, h, phone="12345").status_code == 422
    assert _new_person(client, h, seq=3).status_code == 201
    dup = _new_person(client, h, seq=3, name="另一个人")
    assert dup.status_code == 409 and dup.get_json()["code"] == "CUSTOMER_DUPLICATE"
    company = {"kind": "company", "name": "长沙某商贸有限公司", "id_number": _id_number(4)}
    assert client.post(C, json=company, headers=h).status_code == 422
    body17 = "91430102MA4L0000" + "1"
    ok = {"kind": "company", "name": "长沙某商贸有限公司", "uscc": body17 + uscc_check_char(body17)}
    r = client.post(C, json=ok, headers=h)
    assert r.status_code == 201 and r.get_json()["uscc_mask"].startswith("9143")


def test_exact_search_by_blind_index(client, login):
    h = login("bl_430102")
    created = _new_person(client, h, seq=5, phone="13912340005").get_json()
    found = client.get(f"{C}?id_number={_id_number(5)}", headers=h).get_json()
    assert [c["id"] for c in found["items"]] == [created["id"]]
    found = client.get(f"{C}?phone=139 1234 0005", headers=h).get_json()
    assert [c["id"] for c in found["items"]] == [created["id"]]
    assert client.get(f"{C}?id_number=123", headers=h).status_code == 422


def test_reveal_is_permissioned_and_audited(client, login, db_session):
    leader = login("bl_430102")
    cid = _new_person(client, leader, seq=6).get_json()["id"]
    r = client.post(f"{C}/{cid}/reveal", json={"fields": ["id_number", "phone"], "reason": "核实身份"},
                    headers=leader)
    assert r.status_code == 200 and r.get_json() == {"id_number": _id_number(6), "phone": "13812345678"}
    assert client.post(f"{C}/{cid}/reveal", json={"fields": ["id_number"], "reason": "看看"},
                       headers=login("sbl_430102_1")).status_code == 403
    set_context(db_session, SYSTEM)
    event = db_session.execute(text("SELECT detail FROM audit_log WHERE action = 'reveal' AND entity_id = :i"),
                               {"i": str(cid)}).scalar_one()
    assert event == {"fields": ["id_number", "phone"], "reason": "核实身份"}


def test_correction_in_gcj02_and_grid_override(client, login):
    h = login("bl_430102")
    created = _new_person(client, h, seq=7).get_json()
    target = {"type": "Point", "coordinates": [112.995, 28.195]}
    gcj = transform_geojson(target, "wgs84", "gcj02")["coordinates"]
    r = client.post(f"{C}/{created['id']}/location?crs=gcj02", json={"lon": gcj[0], "lat": gcj[1]}, headers=h)
    assert r.status_code == 200
    moved = client.get(f"{C}/{created['id']}", headers=h).get_json()
    assert abs(moved["lon"] - 112.995) < 1e-7 and abs(moved["lat"] - 28.195) < 1e-7
    assert moved["location_source"] == "corrected"
    grid = client.get("/api/v1/grids/lookup?lon=112.995&lat=28.195", headers=h).get_json()
    assert moved["grid_id"] == grid["id"]
    other = client.get("/api/v1/grids?level=community&page_size=1", headers=h).get_json()["items"][0]
    r = client.post(f"{C}/{created['id']}/grid", json={"grid_id": other["id"], "reason": "实际在此网格经营"},
                    headers=h)
    assert r.status_code == 200 and r.get_json()["grid_id"] == other["id"]
    r = client.post(f"{C}/{created['id']}/grid", json={"grid_id": None}, headers=h)
    assert r.get_json()["grid_id"] == grid["id"] and r.get_json()["grid_override_reason"] is None


def test_batch_assign_and_delete_rules(client, login):
    h = login("bl_430102")
    a = _new_person(client, h, seq=8).get_json()
    b = _new_person(client, h, seq=9, category="formal").get_json()
    am = client.get("/api/v1/users?q=am_430102_2_1", headers=h).get_json()["items"][0]
    r = client.post(f"{C}/batch-assign", json={"customer_ids": [a["id"], b["id"]], "owner_user_id": am["id"],
                                               "reason": "调整管户"}, headers=h)
    assert r.status_code == 200 and r.get_json() == {"updated": 2}
    assert client.get(f"{C}/{a['id']}", headers=h).get_json()["owner_user_id"] == am["id"]
    r = client.post(f"{C}/batch-assign", json={"customer_ids": [a["id"], 99999999], "owner_user_id": am["id"],
                                               "reason": "x1"}, headers=h)
    assert r.status_code == 422
    assert client.delete(f"{C}/{b['id']}", headers=h).status_code == 409  # formal
    assert client.delete(f"{C}/{a['id']}", headers=h).status_code == 204


def test_scope_from_the_attackers_side(client, login, db_session):
    set_context(db_session, SYSTEM)
    yuelu_id = db_session.scalar(text("SELECT c.id FROM customers c JOIN orgs o ON o.id = c.org_id "
                                      "WHERE o.code LIKE 'OU430104%' LIMIT 1"))
    spy = login("sbl_430102_1")
    assert client.get(f"{C}/{yuelu_id}", headers=spy).status_code == 404
    assert client.patch(f"{C}/{yuelu_id}", json={"name": "x"}, headers=spy).status_code == 404
    listing = client.get(f"{C}?page_size=500", headers=spy).get_json()
    assert listing["total"] > 0 and yuelu_id not in [c["id"] for c in listing["items"]]
    # an account manager (scope: self) sees exactly the customers he manages
    am = login("am_430102_1_1")
    me = client.get("/api/v1/me", headers=am).get_json()["id"]
    mine = client.get(f"{C}?page_size=500", headers=am).get_json()
    owned = db_session.scalar(text("SELECT count(*) FROM customers WHERE owner_user_id = :u"), {"u": me})
    assert mine["total"] == owned > 0 and all(c["owner_user_id"] == me for c in mine["items"])
    peer = db_session.scalar(text("SELECT id FROM customers WHERE owner_user_id <> :u AND org_id = "
                                  "(SELECT org_id FROM users WHERE id = :u) LIMIT 1"), {"u": me})
    if peer:
        assert client.get(f"{C}/{peer}", headers=am).status_code == 404
    # he cannot hand his customer to another branch's org by editing
    assert client.post(f"{C}/{mine['items'][0]['id']}/reveal", json={"fields": ["phone"], "reason": "xx"},
                       headers=am).status_code == 403


def test_grid_with_customers_cannot_be_deleted(client, login):
    h = login("admin")
    created = _new_person(client, h, seq=10).get_json()
    r = client.delete(f"/api/v1/grids/{created['grid_id']}", headers=h)
    assert r.status_code == 409 and r.get_json()["detail"]["customers"] >= 1
